//! Issue 16, item 13: what people expect of a CLI of this kind, through the binary:
//! `status`, `completions SHELL`, `schema`, `check --json`, and colour on a terminal
//! only (a real pseudo-terminal from `script(1)`), never with `NO_COLOR`.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::process::Output;

use serde_json::Value;
use support::{Env, path_str, test_server_table};

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn status_shows_the_workspace_and_why_trust_servers_and_their_pins() {
    let env = Env::new();
    env.user_config_exact(&test_server_table("t", &[]));
    let pinned = env.run(&["pin", "--yes"]);
    assert_eq!(pinned.status.code(), Some(0), "{}", err(&pinned));
    env.user_config_exact(&format!(
        "{}\n[servers.gone]\ncommand = \"no-such-server-command\"\n",
        test_server_table("t", &[])
    ));
    env.workspace_config("[policy]\ndefault = \"allow\"\n");
    std::fs::create_dir_all(env.workspace.join("src")).unwrap();
    let mut cmd = env.command(&["status"]);
    cmd.current_dir(env.workspace.join("src"));
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    let text = out(&o);
    assert!(
        text.contains(&format!(
            "Workspace  `{}` (the nearest `mcp-warden.toml` walking up from the current directory `{}`)",
            path_str(&env.workspace),
            path_str(&env.workspace.join("src"))
        )),
        "{text}"
    );
    assert!(text.contains("is untrusted"), "{text}");
    assert!(
        text.contains("1 server will start, 1 cannot (command missing), 0 skipped"),
        "{text}"
    );
    assert!(text.contains("names `t__*`; 17 tools pinned"), "{text}");
    assert!(
        text.contains("cannot start: command `no-such-server-command` is not found"),
        "{text}"
    );
    assert!(text.contains("Pinning    strict"), "{text}");
    assert!(
        text.contains(&format!(
            "Audit      `{}`",
            path_str(&env.warden_home.join("data").join("audit"))
        )),
        "{text}"
    );

    let o = env.run(&["status", "--json"]);
    let doc: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(doc["workspace"]["trusted"], false, "{doc}");
    let t = &doc["servers"][1];
    assert_eq!(t["name"], "t", "{doc}");
    assert_eq!(t["pinned"]["tools"], 17, "{doc}");
    assert_eq!(t["missing_command"], Value::Null, "{doc}");
    assert!(doc["servers"][0]["missing_command"].is_string(), "{doc}");

    // No workspace file anywhere up to the home directory: said, with why.
    std::fs::remove_file(env.workspace.join("mcp-warden.toml")).unwrap();
    let text = out(&env.run(&["status"]));
    assert!(
        text.contains("Workspace  none: no `mcp-warden.toml` in"),
        "{text}"
    );
}

#[test]
fn completions_are_generated_for_each_shell() {
    let env = Env::new();
    let bash = env.run(&["completions", "bash"]);
    assert_eq!(bash.status.code(), Some(0));
    let script = out(&bash);
    assert!(script.contains("complete -F _mcp__warden"), "{script}");
    for sub in ["status", "schema", "doctor", "explain"] {
        assert!(script.contains(sub), "{sub} missing");
    }
    let zsh = out(&env.run(&["completions", "zsh"]));
    assert!(zsh.starts_with("#compdef mcp-warden"), "{zsh}");
    let fish = out(&env.run(&["completions", "fish"]));
    assert!(fish.contains("complete -c mcp-warden"), "{fish}");
    assert_eq!(
        env.run(&["completions", "tcsh"]).status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn schema_is_json_schema_of_the_config_files() {
    let env = Env::new();
    let o = env.run(&["schema"]);
    assert_eq!(o.status.code(), Some(0));
    let schema: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["additionalProperties"], false);
    let server = &schema["properties"]["servers"]["additionalProperties"];
    assert_eq!(server["required"], serde_json::json!(["command"]));
    assert_eq!(
        server["properties"]["sandbox"]["properties"]["preset"]["enum"],
        serde_json::json!(["auto", "node", "python", "none"])
    );
}

#[test]
fn check_json_has_errors_with_positions_findings_and_missing_commands() {
    let env = Env::new();
    env.user_config_exact("[servers.a]\ncomand = \"x\"\n");
    let o = env.run(&["check", "--json"]);
    assert_eq!(o.status.code(), Some(2));
    let doc: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["exit"], 2);
    let e = &doc["errors"][0];
    assert_eq!(
        (e["line"].as_u64(), e["col"].as_u64()),
        (Some(2), Some(1)),
        "{doc}"
    );
    assert_eq!(e["severity"], "error");
    assert_eq!(e["hint"], "did you mean `command`?", "{doc}");

    env.user_config_exact(
        "[servers.a]\ncommand = \"no-such-server-command\"\n[servers.b]\ncommand = \"npx\"\nargs = [\"-y\", \"pkg\"]\nenabled = false\n",
    );
    let o = env.run(&["check", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let doc: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(doc["servers"]["start"], serde_json::json!([]), "{doc}");
    assert_eq!(doc["servers"]["missing_command"][0]["server"], "a", "{doc}");
    assert_eq!(doc["servers"]["skipped"][0]["name"], "b", "{doc}");
    assert!(
        doc["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unversioned package"),
        "{doc}"
    );

    env.user_config_exact("[servers.a]\ncommand = \"sh\"\n");
    let doc: Value = serde_json::from_str(&out(&env.run(&["check", "--json"]))).unwrap();
    assert_eq!(
        (doc["ok"].clone(), doc["exit"].clone()),
        (Value::Bool(true), Value::from(0))
    );
}

/// Runs `mcp-warden ARGS` on a pseudo-terminal (`script(1)`), with `extra` variables;
/// returns what the terminal showed.
fn on_a_terminal(env: &Env, args: &str, extra: &[(&str, &str)]) -> Option<String> {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: script(1) is not installed");
        return None;
    }
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-q", "-e", "-c"])
        .arg(format!("{} {args}", path_str(&support::bin())))
        .arg("/dev/null");
    env.apply(&mut cmd);
    cmd.env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env("TERM", "xterm");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    Some(out(&cmd.output().unwrap()))
}

#[test]
fn colour_on_a_terminal_only_and_never_with_no_color() {
    let env = Env::new();
    env.user_config_exact("[servers.a]\ncommand = \"npx\"\nargs = [\"-y\", \"pkg\"]\n");
    let Some(shown) = on_a_terminal(&env, "check", &[]) else {
        return;
    };
    assert!(
        shown.contains("\x1b[33mwarning\x1b[0m: unversioned package"),
        "{shown:?}"
    );
    let shown = on_a_terminal(&env, "doctor", &[]).unwrap();
    assert!(shown.contains("\x1b[1mMachine\x1b[0m"), "{shown:?}");
    let shown = on_a_terminal(&env, "check", &[("NO_COLOR", "1")]).unwrap();
    assert!(!shown.contains('\x1b'), "{shown:?}");
    assert!(
        shown.contains(": warning: unversioned package"),
        "{shown:?}"
    );
    // Not a terminal: plain text.
    let piped = out(&env.run(&["check"]));
    assert!(!piped.contains('\x1b'), "{piped:?}");
}
