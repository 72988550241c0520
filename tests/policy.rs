//! The policy through the real binary: `mcp-warden explain` (which rule of which layer
//! decides, each rule passed over and why, exit codes) and `--effective`, in a sandbox
//! of temporary directories as in `cli_config.rs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

struct Sandbox {
    _dir: tempfile::TempDir,
    base: PathBuf,
    home: PathBuf,
    warden_home: PathBuf,
    managed: PathBuf,
    workspace: PathBuf,
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

impl Sandbox {
    fn new() -> Self {
        let dir = ok(tempfile::tempdir());
        let base = ok(dir.path().canonicalize());
        let home = base.join("home");
        let workspace = home.join("proj");
        ok(fs::create_dir_all(workspace.join("src")));
        Self {
            warden_home: base.join("warden"),
            managed: base.join("etc"),
            home,
            workspace,
            base,
            _dir: dir,
        }
    }

    fn write_workspace(&self, text: &str) {
        ok(fs::write(self.workspace.join("mcp-warden.toml"), text));
    }

    fn write_user(&self, text: &str) {
        ok(fs::create_dir_all(&self.warden_home));
        ok(fs::write(self.warden_home.join("config.toml"), text));
    }

    fn write_managed(&self, text: &str) {
        ok(fs::create_dir_all(&self.managed));
        ok(fs::write(self.managed.join("policy.toml"), text));
    }

    fn run(&self, args: &[&str]) -> Run {
        let output = ok(Command::new(env!("CARGO_BIN_EXE_mcp-warden"))
            .args(args)
            .current_dir(&self.workspace)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("MCP_WARDEN_HOME", &self.warden_home)
            .env("MCP_WARDEN_MANAGED_DIR", &self.managed)
            .output());
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn json(&self, args: &[&str]) -> (Run, Value) {
        let run = self.run(args);
        let value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"));
        (run, value)
    }

    fn p(&self, rel: &str) -> String {
        self.workspace.join(rel).display().to_string()
    }
}

const USER: &str = r#"
[[policy.rules]]
id = "no-git-push"
tools = ["git__push"]
action = "deny"

[[policy.rules]]
id = "short-queries"
tools = ["fs__write_file"]
when = { arg = "content", max_len = 10 }
action = "allow"

[[policy.rules]]
id = "writes-stay-in-workspace"
tools = ["fs__write_file", "fs__edit_file"]
when = { arg = "path", not_under = ["${workspace}"] }
action = "deny"
message = "writes outside the workspace are not allowed"

[labels]
private = ["fs__read_*"]
untrusted = ["fetch__*"]
egress = ["fetch__*", "slack__post_*"]
"#;

const WORKSPACE: &str = r#"
[policy]
default = "allow"

[[policy.rules]]
id = "push-is-fine-here"
tools = ["git__push"]
action = "allow"
"#;

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.write_user(USER);
    sb.write_workspace(WORKSPACE);
    sb
}

#[test]
fn a_denied_call_names_the_layer_the_rule_and_every_rule_passed_over() {
    let sb = sandbox();
    let args = r#"{"path": "/etc/passwd", "content": "a long body of text"}"#;
    let run = sb.run(&["explain", "fs__write_file", args]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let out = &run.stdout;
    assert!(out.contains("explain tool `fs__write_file`"), "{run:?}");
    assert!(
        out.contains(
            "rule `no-git-push` (line 3) passed over: does not cover tool `fs__write_file`"
        ),
        "{run:?}"
    );
    assert!(
        out.contains(
            "rule `short-queries` (line 8) passed over: `max_len = 10` does not hold: `content`: 19 characters, more than 10"
        ),
        "{run:?}"
    );
    assert!(
        out.contains("rule `writes-stay-in-workspace` (line 14) decides: deny"),
        "{run:?}"
    );
    assert!(
        out.contains("`/etc/passwd` is not under `${workspace}`"),
        "{run:?}"
    );
    assert!(
        out.contains("workspace policy `")
            && out.contains("no rule matches; the default decides: allow"),
        "{run:?}"
    );
    assert!(
        out.contains(
            "decision: deny by rule `writes-stay-in-workspace` of the user layer: writes outside the workspace are not allowed"
        ),
        "{run:?}"
    );
}

#[test]
fn an_allowed_call_exits_0() {
    let sb = sandbox();
    let args = format!(
        r#"{{"path": "{}", "content": "a long body"}}"#,
        sb.p("src/new.rs")
    );
    let run = sb.run(&["explain", "fs__write_file", &args]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("decision: allow"), "{run:?}");
    // No arguments at all: the `not_under` condition cannot be evaluated, so the deny
    // rule matches (fail closed).
    let run = sb.run(&["explain", "fs__write_file"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("argument `path` is missing"), "{run:?}");
    // A tool no rule covers.
    let run = sb.run(&["explain", "time__now"]);
    assert_eq!(run.code, Some(0), "{run:?}");
}

#[test]
fn a_workspace_allow_cannot_loosen_a_user_deny() {
    let sb = sandbox();
    let run = sb.run(&["explain", "git__push"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout
            .contains("rule `no-git-push` (line 3) decides: deny"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("rule `push-is-fine-here` (line 6) decides: allow"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("decision: deny by rule `no-git-push` of the user layer"),
        "{run:?}"
    );
    // Trusting the workspace changes nothing: rules are never merged.
    assert_eq!(sb.run(&["trust", "--yes"]).code, Some(0));
    assert_eq!(sb.run(&["explain", "git__push"]).code, Some(1));
}

#[cfg(unix)]
#[test]
fn a_symlink_out_of_the_workspace_is_denied() {
    let sb = sandbox();
    let outside = sb.base.join("outside");
    ok(fs::create_dir_all(&outside));
    ok(std::os::unix::fs::symlink(
        &outside,
        sb.workspace.join("escape"),
    ));
    let args = format!(r#"{{"path": "{}", "content": "x"}}"#, sb.p("escape/x"));
    // `short-queries` allows short content first: use long content.
    let args = args.replace(r#""x"}"#, r#""0123456789abc"}"#);
    let run = sb.run(&["explain", "fs__write_file", &args]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("resolves to `{}`", outside.join("x").display())),
        "{run:?}"
    );
}

#[test]
fn the_trifecta_needs_earlier_calls() {
    let sb = sandbox();
    let run = sb.run(&["explain", "slack__post_message"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains("labels of `slack__post_message`: egress"),
        "{run:?}"
    );
    let run = sb.run(&[
        "explain",
        "slack__post_message",
        "--after",
        "fs__read_file",
        "--after",
        "fetch__fetch",
    ]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("rule `flow:trifecta` fires"), "{run:?}");
    assert!(
        run.stdout
            .contains("decision: deny by rule `flow:trifecta`: this session has already read private data (`fs__read_file`) and taken in untrusted content (`fetch__fetch`)"),
        "{run:?}"
    );
}

#[test]
fn json_output_is_one_document() {
    let sb = sandbox();
    let (run, v) = sb.json(&[
        "explain",
        "--json",
        "fs__write_file",
        r#"{"path": "/etc/passwd", "content": "a long body of text"}"#,
    ]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["rule"], "writes-stay-in-workspace");
    assert_eq!(v["layer"], "user");
    assert_eq!(v["reason"], "writes outside the workspace are not allowed");
    let user = &v["layers"][0];
    assert_eq!(user["layer"], "user");
    assert_eq!(user["decided_by"]["rule"], "writes-stay-in-workspace");
    assert_eq!(user["decided_by"]["line"], 14);
    assert_eq!(user["passed_over"][0]["why"], "not covered");
    assert_eq!(user["passed_over"][1]["conditions"][0]["result"], "no");
    assert_eq!(v["layers"][1]["decided_by"]["default"], "allow");
    let (run, v) = sb.json(&["explain", "--json", "git__status"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["rule"], Value::Null);
}

#[test]
fn effective_prints_every_layers_rules_settings_and_labels() {
    let sb = sandbox();
    sb.write_managed("[policy]\nmode = \"enforce\"\n[output]\nsecrets = \"block\"\n");
    let run = sb.run(&["explain", "--effective"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let out = &run.stdout;
    assert!(out.contains("output.secrets = \"block\""), "{run:?}");
    assert!(
        out.contains("egress = [\"fetch__*\" (user), \"slack__post_*\" (user)]"),
        "{run:?}"
    );
    let managed = out.find("managed policy `").unwrap_or(usize::MAX);
    let user = out.find("user policy `").unwrap_or(usize::MAX);
    let workspace = out.find("workspace policy `").unwrap_or(usize::MAX);
    assert!(
        managed < user && user < workspace && workspace < usize::MAX,
        "{run:?}"
    );
    assert!(
        out.contains(
            "3. `writes-stay-in-workspace` (line 14): tools = [\"fs__write_file\", \"fs__edit_file\"] when { arg = \"path\", not_under = [\"${workspace}\"] } → deny"
        ),
        "{run:?}"
    );
    let (run, v) = sb.json(&["explain", "--effective", "--json"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(v["settings"]["output"]["secrets"], "block");
    assert_eq!(v["settings"]["trifecta"], "deny");
    assert_eq!(v["layers"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["layers"][1]["rules"][2]["id"], "writes-stay-in-workspace");
    assert_eq!(v["labels"]["private"][0]["glob"], "fs__read_*");
    // With a tool too: both, in one document.
    let (_, v) = sb.json(&["explain", "--effective", "--json", "git__push"]);
    assert_eq!(v["explain"]["decision"], "deny");
    assert!(v["effective"]["settings"].is_object());
}

#[test]
fn annotations_are_unknown_and_said_so() {
    let sb = Sandbox::new();
    sb.write_user(
        "[[policy.rules]]\nid = \"ask-destructive\"\ntools = [\"*\"]\nwhen = { annotation = \"destructiveHint\" }\naction = \"ask\"\n",
    );
    let run = sb.run(&["explain", "fs__delete"]);
    assert_eq!(run.code, Some(1), "ask is not a pass: {run:?}");
    assert!(
        run.stdout.contains("annotations are unknown here"),
        "{run:?}"
    );
    assert!(run.stdout.contains("decision: ask"), "{run:?}");
}

#[test]
fn monitor_mode_passes_and_says_what_would_happen() {
    let sb = Sandbox::new();
    sb.write_user("[policy]\nmode = \"monitor\"\ndefault = \"deny\"\n");
    let run = sb.run(&["explain", "fs__read_file"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains("decision: monitor (it would be denied but the rule is in monitor mode"),
        "{run:?}"
    );
    assert!(run.stdout.contains("rule `default:user`"), "{run:?}");
}

#[test]
fn resources_and_prompts() {
    let sb = Sandbox::new();
    sb.write_user(
        "[[policy.rules]]\nid = \"env\"\nresources = [\"file:///**/.env\"]\naction = \"deny\"\n",
    );
    let run = sb.run(&["explain", "--resource", "file:///home/u/p/.env"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout
            .contains("explain resource `file:///home/u/p/.env`"),
        "{run:?}"
    );
    let run = sb.run(&["explain", "--prompt", "file:///home/u/p/.env"]);
    assert_eq!(run.code, Some(0), "{run:?}");
}

#[test]
fn usage_and_configuration_errors_exit_2() {
    let sb = sandbox();
    let run = sb.run(&["explain", "fs__write_file", "{not json"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("ARGS_JSON is not valid JSON"),
        "{run:?}"
    );
    let run = sb.run(&["explain", "fs__write_file", "[1, 2]"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let run = sb.run(&["explain"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    sb.write_workspace("[[policy.rules]]\nid = \"x\"\ntools = [\"a[\"]\naction = \"deny\"\n");
    let run = sb.run(&["explain", "a__b"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let file = sb.workspace.join("mcp-warden.toml");
    assert!(
        run.stderr.contains(&format!(
            "{}:3:10: error: invalid glob `a[`",
            file.display()
        )),
        "{run:?}"
    );
}

#[test]
fn relative_paths_are_relative_to_the_workspace_by_default() {
    let sb = sandbox();
    let long = "0123456789abc";
    let inside = format!(r#"{{"path": "src/x.rs", "content": "{long}"}}"#);
    assert_eq!(
        sb.run(&["explain", "fs__write_file", &inside]).code,
        Some(0)
    );
    let escape = format!(r#"{{"path": "../../x", "content": "{long}"}}"#);
    assert_eq!(
        sb.run(&["explain", "fs__write_file", &escape]).code,
        Some(1)
    );
    let other = Path::new("/");
    let run = sb.run(&[
        "explain",
        "--cwd",
        &other.display().to_string(),
        "fs__write_file",
        &inside,
    ]);
    assert_eq!(run.code, Some(1), "{run:?}");
}

/// Regression (issue 16, item 2): `explain` on a tool no server offers said "allow".
#[test]
fn explain_an_unknown_tool_says_so_with_did_you_mean() {
    let sb = sandbox();
    sb.write_user(&format!(
        "[servers.fs]\ncommand = \"true\"\n\n[servers.git]\ncommand = \"true\"\n{USER}"
    ));
    let run = sb.run(&["explain", "fss__write_file"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains(
            "error: unknown tool `fss__write_file`: no server that would start offers it (the servers' names begin `fs__*`, `git__*`); did you mean `fs__write_file`?"
        ),
        "{run:?}"
    );
    assert!(!run.stdout.contains("decision: allow"), "{run:?}");
    // A known namespace is explained as before.
    let run = sb.run(&["explain", "git__push"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    // Without any server, the policy alone decides, and that is said.
    sb.write_user(USER);
    let run = sb.run(&["explain", "git__status"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr
            .contains("note: no server would start, so no server offers `git__status`"),
        "{run:?}"
    );
}
