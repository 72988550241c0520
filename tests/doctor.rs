//! `mcp-warden doctor`: the machine's sandbox support, what each server will really
//! get (its launcher applies the plan and reports without starting it), the traps of
//! a dropped uid, and the clients found and whether each points at mcp-warden.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use support::{Env, example_table, path_str, q};

fn doctor(env: &Env, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["doctor"];
    args.extend_from_slice(extra);
    let out = env.run(&args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn probe(name: &str, sandbox: &str) -> String {
    format!(
        "{}[servers.{name}.sandbox]\n{sandbox}\n",
        example_table(name, "probe_server", &[])
    )
}

#[test]
fn doctor_shows_the_machine_and_each_servers_layers_and_exits_0_when_all_is_well() {
    let env = Env::new();
    env.user_config(&probe("p", "network = false"));
    let (code, out, err) = doctor(&env, &[]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    for expected in [
        "Machine",
        "landlock",
        "Servers",
        "  p  (",
        "no_new_privs",
        "filesystem",
        "network",
        "Clients",
        "Nothing wrong found.",
    ] {
        assert!(out.contains(expected), "`{expected}` missing:\n{out}");
    }

    let (code, out, _) = doctor(&env, &["--json"]);
    assert_eq!(code, Some(0));
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert!(doc["machine"]["root"].is_boolean(), "{doc}");
    let layers = doc["servers"][0]["report"]["layers"].as_array().unwrap();
    let state = |name: &str| {
        layers
            .iter()
            .find(|l| l["layer"] == name)
            .map(|l| l["state"].as_str().unwrap().to_owned())
    };
    assert_eq!(state("no_new_privs").as_deref(), Some("applied"), "{doc}");
    assert_eq!(state("network").as_deref(), Some("applied"), "{doc}");
    if doc["machine"]["landlock_abi"].is_null() {
        eprintln!("note: no Landlock on this machine; the filesystem layer is reported missing");
    } else {
        assert_eq!(state("filesystem").as_deref(), Some("applied"), "{doc}");
    }
    assert_eq!(doc["wrong"], serde_json::json!([]));
}

#[test]
fn doctor_names_a_write_path_the_servers_own_uid_cannot_write_and_exits_1() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: servers get a uid of their own only when mcp-warden runs as root");
        return;
    }
    let env = Env::new();
    let closed = env.dir.path().join("root-only");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o755)).unwrap();
    let gone = env.dir.path().join("gone");
    env.user_config(&probe(
        "p",
        &format!(
            "fs_write = [{}]\nfs_read = [{}]",
            q(path_str(&closed)),
            q(path_str(&gone))
        ),
    ));
    let (code, out, err) = doctor(&env, &[]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "cannot write `{}` (in `fs_write`)",
            path_str(&closed)
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "sandbox path `{}` does not exist",
            path_str(&gone)
        )),
        "{out}"
    );
}

#[test]
fn doctor_says_a_server_whose_required_layer_is_missing_will_not_start() {
    let env = Env::new();
    // Debug builds let a test act as a machine without Landlock.
    env.user_config(&format!(
        "{}env = {{ MCP_WARDEN_SIMULATE_MISSING = \"landlock\" }}\n[servers.p.sandbox]\nrequired = true\n",
        example_table("p", "probe_server", &[])
    ));
    let (code, out, err) = doctor(&env, &[]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(out.contains("filesystem      MISSING"), "{out}");
    assert!(
        out.contains("will not start: `required = true` and this machine cannot apply: filesystem"),
        "{out}"
    );
}

#[test]
fn doctor_lists_installed_clients_and_whether_each_points_at_mcp_warden() {
    let env = Env::new();
    env.user_config("");
    let cursor = env.home.join(".cursor");
    std::fs::create_dir_all(&cursor).unwrap();
    std::fs::write(
        cursor.join("mcp.json"),
        r#"{"mcpServers": {"files": {"command": "npx", "args": ["-y", "some-server@1.0.0"]}}}"#,
    )
    .unwrap();
    let (code, out, err) = doctor(&env, &[]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        out.contains("cursor (user): ~/.cursor/mcp.json: does not point at mcp-warden"),
        "{out}"
    );

    let install = env.run(&["install", "--client", "cursor", "--yes"]);
    assert!(
        install.status.success(),
        "{}",
        String::from_utf8_lossy(&install.stderr)
    );
    let (_, out, err) = doctor(&env, &["--json"]);
    let doc: Value = serde_json::from_str(&out).unwrap();
    let cursor = doc["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client"] == "cursor" && c["scope"] == "user")
        .unwrap();
    assert!(cursor["mcp_warden"].is_object(), "{cursor}");
    assert_eq!(cursor["bypassing"], serde_json::json!([]), "{cursor}");
    // The moved server now runs behind mcp-warden; whatever else doctor finds about
    // it (it is not installed here), the client is no longer on the wrong list.
    let wrong = doc["wrong"].to_string();
    assert!(!wrong.contains("cursor"), "{wrong}\n{err}");
}

/// A script server installed where only root may enter, like a venv under /root: a
/// script is run by path, so its uid must reach it (a native binary need not).
/// Returns the script and the directory that blocks it.
fn server_its_uid_cannot_enter(env: &Env) -> (std::path::PathBuf, std::path::PathBuf) {
    let private = env.dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    let script = private.join("server.sh");
    std::fs::write(&script, "#!/bin/sh\nexec cat\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    env.user_config(&format!(
        "[servers.s]\ncommand = {}\n",
        q(path_str(&script))
    ));
    (script, private)
}

#[test]
fn doctor_warns_about_a_server_install_its_uid_cannot_read() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: servers get a uid of their own only when mcp-warden runs as root");
        return;
    }
    let env = Env::new();
    let (script, private) = server_its_uid_cannot_enter(&env);
    let (code, out, err) = doctor(&env, &[]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "cannot read `{}`, which it needs",
            path_str(&script)
        )) && out.contains(&format!("`{}`: cannot enter it", path_str(&private))),
        "{out}"
    );
}

/// Regression (issue 16, item 2): `doctor` said "Nothing wrong" in an untrusted
/// workspace, whose servers do not start.
#[test]
fn doctor_says_the_workspace_is_untrusted() {
    let env = Env::new();
    env.workspace_config(&format!(
        "{}[pinning]\nmode = \"off\"\n",
        support::test_server_table("w", &[])
    ));
    let (code, out, err) = doctor(&env, &[]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(!out.contains("Nothing wrong"), "{out}");
    assert!(
        out.contains(&format!(
            "workspace `{}` is untrusted: its servers will not start",
            path_str(&env.workspace)
        )),
        "{out}"
    );
    let (_, json, _) = doctor(&env, &["--json"]);
    let doc: Value = serde_json::from_str(&json).unwrap();
    assert!(doc["wrong"].to_string().contains("is untrusted"), "{doc}");
    // Trusted, the workspace is no longer on the list.
    assert_eq!(env.run(&["trust", "--yes"]).status.code(), Some(0));
    let (_, out, _) = doctor(&env, &[]);
    assert!(!out.contains("is untrusted"), "{out}");
}

/// Regression (issue 16, item 3): as root, `pin`/`pins`/`scan` failed on such a server
/// with a bare "Permission denied"; only `doctor` explained. Each says what `doctor`
/// says, with the fix.
#[test]
fn commands_that_start_servers_say_what_doctor_says_when_the_uid_cannot_enter() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: servers get a uid of their own only when mcp-warden runs as root");
        return;
    }
    let env = Env::new();
    let (script, private) = server_its_uid_cannot_enter(&env);
    for args in [&["pins"][..], &["scan"], &["pin", "--yes"]] {
        let out = env.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_ne!(out.status.code(), Some(0), "{args:?}: {err}");
        let said = err
            .lines()
            .find(|l| l.starts_with("mcp-warden: server `s`: uid "))
            .unwrap_or_else(|| panic!("{args:?}: {err}"));
        assert!(
            said.contains(&format!(
                "cannot read `{}`, which it needs: `{}`: cannot enter it",
                path_str(&script),
                path_str(&private)
            )),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("install it where every user can read it, or set `sandbox.user`"),
            "{args:?}: {err}"
        );
    }
}

/// Regression (issue 16 item 3, the `serve` half): a server its uid cannot reach
/// exited before its handshake, and the client heard only "exited"; it hears what
/// `doctor` says, the directory that blocks it and the fix, and the log says it too.
#[test]
fn serve_tells_the_client_what_doctor_says_when_the_uid_cannot_enter() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: servers get a uid of their own only when mcp-warden runs as root");
        return;
    }
    let env = Env::new();
    let (script, private) = server_its_uid_cannot_enter(&env);
    let finding = format!(
        "server `s`: uid {{}} cannot read `{}`, which it needs: `{}`: cannot enter it",
        path_str(&script),
        path_str(&private)
    );
    let (head, tail) = finding.split_once("{}").unwrap();
    let fix = "install it where every user can read it, or set `sandbox.user`";
    let diagnosis = |msg: &Value| {
        let text = msg["params"]["data"].as_str().unwrap_or_default();
        (msg["method"] == "notifications/message" && text.starts_with(head)).then(|| {
            // `error`, or `warning` when it was held for the client's `initialize`.
            let level = &msg["params"]["level"];
            assert!(level == "error" || level == "warning", "{msg}");
            text.to_owned()
        })
    };
    let mut serve = env.serve();
    serve.initialize();
    // It may come while `initialize` waits for the server, or after.
    let mut told = serve.seen.iter().find_map(diagnosis);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while told.is_none() && std::time::Instant::now() < deadline {
        if let Some(line) = serve.recv_line_within(std::time::Duration::from_millis(200)) {
            told = diagnosis(&serde_json::from_str(&line).unwrap());
        }
    }
    let text = told.unwrap_or_else(|| panic!("no diagnosis; stderr:\n{}", serve.stderr()));
    assert!(text.contains(tail) && text.ends_with(fix), "{text}");
    // Said once for the run of failures, not again at each restart (250 ms, 500 ms,
    // 1 s apart: three more within two seconds).
    let quiet = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < quiet {
        if let Some(line) = serve.recv_line_within(std::time::Duration::from_millis(200)) {
            let again = diagnosis(&serde_json::from_str(&line).unwrap());
            assert!(again.is_none(), "said again: {again:?}");
        }
    }
    let (_, stderr) = serve.close();
    assert!(stderr.contains(&format!("mcp-warden: {head}")), "{stderr}");
    let log = env.log();
    assert!(
        log.contains("why the server cannot start") && log.contains(fix),
        "{log}"
    );
}
