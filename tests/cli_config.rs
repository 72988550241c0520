//! `check`, `init`, `trust` and `untrust` through the real binary, in a sandbox of
//! temporary directories: `HOME`, `MCP_WARDEN_HOME` (user config and data) and
//! `MCP_WARDEN_MANAGED_DIR` all point inside one temp dir, so nothing of the machine's
//! own configuration is read or written.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One sandbox: a home directory holding a workspace `proj`.
struct Sandbox {
    _dir: tempfile::TempDir,
    home: PathBuf,
    warden_home: PathBuf,
    managed: PathBuf,
    workspace: PathBuf,
}

/// What a run printed and how it exited.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
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
        ok(fs::create_dir_all(&workspace));
        Self {
            warden_home: base.join("warden"),
            managed: base.join("etc"),
            home,
            workspace,
            _dir: dir,
        }
    }

    fn workspace_file(&self) -> PathBuf {
        self.workspace.join("mcp-warden.toml")
    }

    fn write_workspace(&self, text: &str) {
        ok(fs::write(self.workspace_file(), text));
    }

    fn write_user(&self, text: &str) {
        ok(fs::create_dir_all(&self.warden_home));
        ok(fs::write(self.warden_home.join("config.toml"), text));
    }

    /// Runs `mcp-warden ARGS` in `cwd`.
    fn run_in(&self, cwd: &Path, args: &[&str]) -> Run {
        let output: Output = ok(Command::new(env!("CARGO_BIN_EXE_mcp-warden"))
            .args(args)
            .current_dir(cwd)
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

    /// Runs `mcp-warden ARGS` in the workspace.
    fn run(&self, args: &[&str]) -> Run {
        self.run_in(&self.workspace, args)
    }
}

const GOOD: &str = r#"
[servers.fs]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem@2026.8.31", "${workspace}"]
env = { LOG_LEVEL = "info" }
request_timeout = "30s"
"#;

#[test]
fn check_on_a_good_file_exits_0() {
    let sb = Sandbox::new();
    sb.write_workspace(GOOD);
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("checked 1 file (workspace `"),
        "{run:?}"
    );
    assert!(run.stdout.contains("is untrusted"), "{run:?}");
}

#[test]
fn check_without_any_file_exits_0() {
    let sb = Sandbox::new();
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("no configuration files"), "{run:?}");
}

#[test]
fn unknown_key_is_exit_2_with_position_and_suggestion() {
    let sb = Sandbox::new();
    sb.write_workspace("[servers.fs]\ncomand = \"npx\"\n");
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.all()
            .contains("mcp-warden.toml:2:1: error: unknown key `comand`"),
        "{run:?}"
    );
    assert!(run.all().contains("did you mean `command`?"), "{run:?}");
}

#[test]
fn toml_syntax_error_has_file_line_col() {
    let sb = Sandbox::new();
    sb.write_workspace("[servers.fs]\ncommand = \"npx\nargs = []\n");
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let file = sb.workspace_file();
    assert!(
        run.all().contains(&format!("{}:2:", file.display())),
        "{run:?}"
    );
}

#[test]
fn unsupported_audit_is_exit_2_not_supported_yet() {
    let sb = Sandbox::new();
    sb.write_workspace("[audit]\narguments = true\n");
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.all()
            .contains("mcp-warden.toml:2:1: error: `audit.arguments`"),
        "{run:?}"
    );
    assert!(run.all().contains("not supported yet"), "{run:?}");
}

/// The SPEC's policy example, every key of every policy section.
const POLICY: &str = r#"
[policy]
default = "allow"
mode = "enforce"
scan_arguments = true

[[policy.rules]]
id = "writes-stay-in-workspace"
tools = ["fs__write_file", "fs__edit_file"]
when = { arg = "path", not_under = ["${workspace}"] }
action = "deny"
message = "writes outside the workspace are not allowed"

[[policy.rules]]
id = "no-secret-resources"
resources = ["file:///**/.env"]
action = "deny"

[labels]
private = ["fs__read_*", "github__get_*"]
untrusted = ["fetch__*", "github__get_issue"]
egress = ["fetch__*", "slack__post_*", "github__create_*"]
secrets = ["vault__*"]

[flows]
trifecta = "deny"
[[flows.rules]]
id = "no-upload-after-secrets"
after = ["secrets"]
deny = ["egress"]

[output]
secrets = "redact"
injection = "flag"
strip_invisible = true

[limits]
calls_per_minute = 120
tool_calls_per_minute = 60
max_message_bytes = 8388608
max_result_bytes = 4194304
"#;

#[test]
fn the_policy_sections_are_accepted_in_every_layer() {
    let sb = Sandbox::new();
    ok(fs::create_dir_all(&sb.managed));
    ok(fs::write(sb.managed.join("policy.toml"), POLICY));
    sb.write_user(POLICY);
    sb.write_workspace(&format!("{GOOD}{POLICY}"));
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!run.all().contains("not supported"), "{run:?}");
    assert!(
        run.stdout
            .contains("policy: 6 rules (managed 2, user 2, workspace 2), 4 labels, 3 flow rules;"),
        "{run:?}"
    );
}

/// Runs `check` on a workspace file and returns the run, expecting exit 2.
fn check_error(text: &str) -> (Run, String) {
    let sb = Sandbox::new();
    sb.write_workspace(text);
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let file = sb.workspace_file().display().to_string();
    (run, file)
}

#[test]
fn a_bad_regex_is_exit_2_at_its_position() {
    let (run, file) = check_error(
        "[[policy.rules]]\nid = \"q\"\ntools = [\"db__*\"]\nwhen = { arg = \"sql\", matches = \"^(DROP\" }\naction = \"deny\"\n",
    );
    assert!(
        run.all().contains(&format!(
            "{file}:4:35: error: invalid regex in `matches`: unclosed group"
        )),
        "{run:?}"
    );
}

#[test]
fn a_bad_glob_is_exit_2_at_its_position() {
    let (run, file) =
        check_error("[[policy.rules]]\nid = \"g\"\ntools = [\"fs__{read\"]\naction = \"deny\"\n");
    assert!(
        run.all()
            .contains(&format!("{file}:3:10: error: invalid glob `fs__{{read`")),
        "{run:?}"
    );
    let (run, file) = check_error("[labels]\nprivate = [\"ok\", \"fs__[\"]\n");
    assert!(
        run.all()
            .contains(&format!("{file}:2:18: error: invalid glob `fs__[`")),
        "{run:?}"
    );
}

#[test]
fn a_duplicate_rule_id_is_exit_2_at_the_second() {
    let rule = "[[policy.rules]]\nid = \"same\"\ntools = [\"a__*\"]\naction = \"deny\"\n";
    let (run, file) = check_error(&format!("{rule}\n{rule}"));
    assert!(
        run.all()
            .contains(&format!("{file}:7:6: error: duplicate rule id `same`")),
        "{run:?}"
    );
    assert!(
        run.all().contains("the first `same` is on line 2"),
        "{run:?}"
    );
}

#[test]
fn a_rule_without_id_is_exit_2() {
    let (run, file) = check_error("[[policy.rules]]\ntools = [\"a__*\"]\naction = \"deny\"\n");
    assert!(
        run.all().contains(&format!(
            "{file}:1:1: error: missing key `id` in `policy.rules[0]`"
        )),
        "{run:?}"
    );
}

#[test]
fn unknown_policy_keys_are_exit_2_with_suggestions() {
    for (text, at, key, hint) in [
        (
            "[policy]\ndefualt = \"deny\"\n",
            "2:1",
            "`defualt` in `policy`",
            "`default`",
        ),
        (
            "[[policy.rules]]\nid = \"r\"\ntols = [\"x\"]\naction = \"deny\"\n",
            "3:1",
            "`tols` in `policy.rules[0]`",
            "`tools`",
        ),
        (
            "[[policy.rules]]\nid = \"r\"\ntools = [\"x\"]\nwhen = { arg = \"p\", not_undr = [\"/\"] }\naction = \"deny\"\n",
            "4:21",
            "`not_undr` in `policy.rules[0]`",
            "`not_under`",
        ),
        (
            "[flows]\ntrifceta = \"deny\"\n",
            "2:1",
            "`trifceta` in `flows`",
            "`trifecta`",
        ),
        (
            "[output]\nsecret = \"block\"\n",
            "2:1",
            "`secret` in `output`",
            "`secrets`",
        ),
        (
            "[limits]\nmax_message_byte = 1\n",
            "2:1",
            "`max_message_byte` in `limits`",
            "`max_message_bytes`",
        ),
    ] {
        let (run, file) = check_error(text);
        assert!(
            run.all()
                .contains(&format!("{file}:{at}: error: unknown key {key}")),
            "{text}\n{run:?}"
        );
        assert!(
            run.all().contains(&format!("hint: did you mean {hint}?")),
            "{text}\n{run:?}"
        );
    }
}

#[test]
fn a_bad_policy_value_lists_the_allowed_ones() {
    let (run, file) = check_error("[output]\ninjection = \"warn\"\n");
    assert!(
        run.all().contains(&format!(
            "{file}:2:13: error: unknown value `warn` in `output`"
        )),
        "{run:?}"
    );
    assert!(
        run.all().contains("expected one of `flag`, `block`, `off`"),
        "{run:?}"
    );
}

#[test]
fn an_undefined_flow_label_is_a_finding() {
    let sb = Sandbox::new();
    sb.write_user("[labels]\negress = [\"fetch__*\"]\n");
    sb.write_workspace("[[flows.rules]]\nid = \"f\"\nafter = [\"egres\"]\ndeny = [\"egress\"]\n");
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.all().contains(
            "mcp-warden.toml:3:10: warning: label `egres` of flow rule `f` is not defined"
        ),
        "{run:?}"
    );
    assert!(run.all().contains("did you mean `egress`?"), "{run:?}");
}

#[test]
fn pinning_is_accepted_in_every_layer() {
    let sb = Sandbox::new();
    ok(fs::create_dir_all(&sb.managed));
    ok(fs::write(
        sb.managed.join("policy.toml"),
        "[pinning]\nmode = \"strict\"\n",
    ));
    sb.write_user("[pinning]\nmode = \"tofu\"\nask = true\n");
    sb.write_workspace(&format!("{GOOD}\n[pinning]\nmode = \"off\"\nask = false\n"));
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!run.all().contains("not supported"), "{run:?}");
    assert!(run.stdout.contains("checked 3 files"), "{run:?}");
}

#[test]
fn unknown_pinning_key_is_exit_2_with_position_and_suggestion() {
    let sb = Sandbox::new();
    sb.write_workspace("[pinning]\nmdoe = \"strict\"\n");
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let file = sb.workspace_file();
    assert!(
        run.all().contains(&format!(
            "{}:2:1: error: unknown key `mdoe` in `pinning`",
            file.display()
        )),
        "{run:?}"
    );
    assert!(run.all().contains("hint: did you mean `mode`?"), "{run:?}");
}

#[test]
fn bad_pinning_mode_is_exit_2_at_the_value_listing_the_modes() {
    let sb = Sandbox::new();
    sb.write_user("[pinning]\nmode = \"loose\"\n");
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.all()
            .contains("config.toml:2:8: error: unknown value `loose` in `pinning`"),
        "{run:?}"
    );
    assert!(
        run.all()
            .contains("hint: expected one of `strict`, `tofu`, `off`"),
        "{run:?}"
    );
}

#[test]
fn errors_in_the_user_config_are_reported_too() {
    let sb = Sandbox::new();
    sb.write_user("[servers.a]\ncommand = \"x\"\nrequest_timeout = \"soon\"\n");
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.all()
            .contains("config.toml:3:19: error: invalid `request_timeout`"),
        "{run:?}"
    );
}

#[test]
fn findings_only_exit_1() {
    let sb = Sandbox::new();
    let token = format!("ghp_{}", "Ab12".repeat(9));
    sb.write_workspace(&format!(
        "[servers.gh]\ncommand = \"npx\"\nargs = [\"-y\", \"github-mcp\"]\nenv = {{ GITHUB_TOKEN = \"{token}\" }}\n"
    ));
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.all()
            .contains("warning: unversioned package `github-mcp`"),
        "{run:?}"
    );
    assert!(
        run.all()
            .contains("warning: literal secret in `servers.gh.env.GITHUB_TOKEN`"),
        "{run:?}"
    );
    assert!(
        !run.all().contains(&token),
        "the secret itself is never printed: {run:?}"
    );
}

#[test]
fn unset_env_variable_is_an_error_in_check() {
    let sb = Sandbox::new();
    sb.write_user("[servers.a]\ncommand = \"x\"\nenv = { T = \"${env:MCP_WARDEN_TEST_UNSET}\" }\n");
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.all().contains("server `a` cannot start"), "{run:?}");
}

#[test]
fn init_writes_a_file_that_check_accepts_and_refuses_to_overwrite() {
    let sb = Sandbox::new();
    let run = sb.run(&["init"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(sb.workspace_file().is_file());
    let check = sb.run(&["check"]);
    assert_eq!(
        check.code,
        Some(0),
        "the starter file must pass check: {check:?}"
    );

    ok(fs::write(sb.workspace_file(), "# mine\n"));
    let again = sb.run(&["init"]);
    assert_eq!(again.code, Some(2), "{again:?}");
    assert!(again.all().contains("already exists"), "{again:?}");
    assert_eq!(ok(fs::read_to_string(sb.workspace_file())), "# mine\n");

    let forced = sb.run(&["init", "--force"]);
    assert_eq!(forced.code, Some(0), "{forced:?}");
    assert_ne!(ok(fs::read_to_string(sb.workspace_file())), "# mine\n");
}

#[test]
fn init_pinning_block_uncommented_passes_check() {
    let sb = Sandbox::new();
    assert_eq!(sb.run(&["init"]).code, Some(0));
    let starter = ok(fs::read_to_string(sb.workspace_file()));
    assert!(starter.contains("# [pinning]\n"), "{starter}");
    let mut in_block = false;
    let uncommented: Vec<&str> = starter
        .lines()
        .map(|line| {
            in_block = (in_block && !line.is_empty()) || line == "# [pinning]";
            if in_block {
                line.strip_prefix('#').unwrap_or(line)
            } else {
                line
            }
        })
        .collect();
    let text = uncommented.join("\n");
    assert!(text.contains("\n [pinning]\n mode = \"strict\""), "{text}");
    sb.write_workspace(&text);
    let check = sb.run(&["check"]);
    assert_eq!(check.code, Some(0), "{check:?}\n{text}");
}

#[test]
fn init_honours_workspace_flag() {
    let sb = Sandbox::new();
    let other = sb.home.join("other");
    ok(fs::create_dir_all(&other));
    let run = sb.run_in(&sb.home, &["--workspace", &other.to_string_lossy(), "init"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(other.join("mcp-warden.toml").is_file());
}

#[test]
fn trust_then_edit_makes_check_say_untrusted() {
    let sb = Sandbox::new();
    sb.write_workspace(GOOD);
    let trust = sb.run(&["trust", "--yes"]);
    assert_eq!(trust.code, Some(0), "{trust:?}");
    assert!(trust.stdout.contains("trusted workspace"), "{trust:?}");
    assert!(trust.stdout.contains("sha256:"), "{trust:?}");

    let check = sb.run(&["check"]);
    assert_eq!(check.code, Some(0), "{check:?}");
    assert!(check.stdout.contains("is trusted"), "{check:?}");
    assert!(check.stdout.contains("1 server will start"), "{check:?}");

    sb.write_workspace(&format!("{GOOD}\n# edited\n"));
    let check = sb.run(&["check"]);
    assert_eq!(check.code, Some(0), "{check:?}");
    assert!(check.stdout.contains("is untrusted"), "{check:?}");
    assert!(
        check.stdout.contains("changed since it was trusted"),
        "{check:?}"
    );
    assert!(check.stdout.contains("0 servers will start"), "{check:?}");
}

#[test]
fn trust_is_found_from_a_subdirectory() {
    let sb = Sandbox::new();
    sb.write_workspace(GOOD);
    let sub = sb.workspace.join("src/deep");
    ok(fs::create_dir_all(&sub));
    let run = sb.run_in(&sub, &["trust", "--yes"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("`{}`", sb.workspace.display())),
        "{run:?}"
    );
}

#[test]
fn trust_without_a_workspace_file_is_exit_2() {
    let sb = Sandbox::new();
    let run = sb.run(&["trust", "--yes"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("no `mcp-warden.toml`"), "{run:?}");
    let run = sb.run(&[
        "--workspace",
        &sb.workspace.to_string_lossy(),
        "trust",
        "--yes",
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("nothing to trust"), "{run:?}");
}

#[test]
fn untrust_withdraws_trust() {
    let sb = Sandbox::new();
    sb.write_workspace(GOOD);
    assert_eq!(sb.run(&["trust", "--yes"]).code, Some(0));
    let run = sb.run(&["untrust"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("withdrew trust"), "{run:?}");
    let check = sb.run(&["check"]);
    assert!(check.stdout.contains("is untrusted"), "{check:?}");
    let again = sb.run(&["untrust"]);
    assert!(again.stdout.contains("was not trusted"), "{again:?}");
}

#[cfg(unix)]
#[test]
fn trust_store_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    sb.write_workspace(GOOD);
    assert_eq!(sb.run(&["trust", "--yes"]).code, Some(0));
    let file = sb.warden_home.join("data/trust.toml");
    let mode = ok(fs::metadata(&file)).permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// Regression (issue 16, item 2): `check` said "2 servers will start" for commands that
/// do not exist. A missing command is stated with the PATH searched, and is a finding.
#[test]
fn check_states_a_missing_command_with_the_path_it_searched() {
    let sb = Sandbox::new();
    sb.write_user(
        "[servers.ghost]\ncommand = \"no-such-mcp-server-anywhere\"\n\n[servers.lost]\ncommand = \"/nonexistent/bin/server\"\n\n[servers.sh]\ncommand = \"sh\"\n",
    );
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let path = std::env::var("PATH").unwrap_or_default();
    assert!(
        run.stdout
            .contains("1 server will start, 2 cannot (command missing)"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains(&format!(
            "cannot start `ghost`: command `no-such-mcp-server-anywhere` is not found in mcp-warden's PATH (`{path}`)"
        )),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("cannot start `lost`: command `/nonexistent/bin/server` cannot be run"),
        "{run:?}"
    );
    // A server's own `env.PATH` is the one searched, and said to be.
    sb.write_user("[servers.ghost]\ncommand = \"sh\"\nenv = { PATH = \"/nowhere\" }\n");
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout
            .contains("command `sh` is not found in the server's `env.PATH` (`/nowhere`)"),
        "{run:?}"
    );
}
