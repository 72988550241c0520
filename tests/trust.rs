//! A workspace file cannot start a process before the user trusts it, and an edit
//! withdraws that trust (SPEC "Merging"), proven with a server that leaves a marker
//! file when it starts.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Env, Serve, path_str, test_server_table};

/// A workspace whose server leaves a marker file; pinning is off (these tests are
/// about trust, not pins).
fn marker_workspace(env: &Env, dir: &Path) -> PathBuf {
    env.user_config("");
    // In the workspace, which the sandbox lets a server write (the world may, too:
    // run as root, the server has a uid of its own).
    let marker = dir.join(".started");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::write(
        dir.join("mcp-warden.toml"),
        test_server_table("marked", &["--marker", &path_str(&marker)]),
    )
    .unwrap();
    marker
}

/// `mcp-warden trust --workspace ROOT`, which must succeed.
fn trust_workspace(env: &Env, root: &Path) {
    let out = env
        .command(&["trust", "--yes", "--workspace", &path_str(root)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn messages(serve: &Serve) -> String {
    serve
        .seen
        .iter()
        .filter(|m| m["method"] == "notifications/message")
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Serves once, lists tools, and reports (tool names, stderr, client messages).
fn serve_once(env: &Env) -> (Vec<String>, String, String) {
    let mut serve = env.serve();
    serve.initialize();
    let names = serve.tool_names(1);
    // Logging notifications are sent after `initialized`; a ping flushes them through.
    serve.request(json!(2), "ping", json!({}));
    let said = messages(&serve);
    let (status, stderr) = serve.close();
    assert!(status.success());
    (names, stderr, said)
}

#[test]
fn an_untrusted_workspace_starts_nothing_and_says_so() {
    let env = Env::new();
    let marker = marker_workspace(&env, &env.workspace);
    let (names, stderr, said) = serve_once(&env);
    assert!(names.is_empty(), "{names:?}");
    assert!(
        !marker.exists(),
        "an untrusted workspace server was started"
    );
    assert!(
        stderr.contains("not trusted") && stderr.contains("mcp-warden trust"),
        "{stderr}"
    );
    assert!(
        said.contains("not trusted") && said.contains("mcp-warden trust"),
        "client not told: {said}"
    );
}

#[test]
fn trust_starts_the_servers_and_an_edit_withdraws_it() {
    let env = Env::new();
    let marker = marker_workspace(&env, &env.workspace);
    let trust = env.run(&["trust", "--yes"]);
    assert!(
        trust.status.success(),
        "{}",
        String::from_utf8_lossy(&trust.stderr)
    );

    let (names, _, _) = serve_once(&env);
    assert!(names.contains(&"marked__echo".to_owned()), "{names:?}");
    assert!(marker.exists());

    std::fs::remove_file(&marker).unwrap();
    let file = env.workspace.join("mcp-warden.toml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("# an innocent-looking edit\n");
    std::fs::write(&file, text).unwrap();
    let (names, stderr, said) = serve_once(&env);
    assert!(names.is_empty(), "{names:?}");
    assert!(!marker.exists(), "an edited workspace's server was started");
    assert!(stderr.contains("no longer trusted"), "{stderr}");
    assert!(said.contains("no longer trusted"), "{said}");

    assert!(env.run(&["trust", "--yes"]).status.success());
    assert!(env.run(&["untrust"]).status.success());
    let (names, _, _) = serve_once(&env);
    assert!(names.is_empty() && !marker.exists());
}

#[test]
fn the_client_roots_choose_the_workspace_when_no_flag_is_given() {
    let env = Env::new();
    // The process starts in a directory with no workspace file of its own...
    let elsewhere = env.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    // ...and the client's root is a trusted workspace.
    let root = env.home.join("other-project");
    let marker = marker_workspace(&env, &root);
    trust_workspace(&env, &root);

    let mut cmd = env.command(&["serve"]);
    cmd.current_dir(&elsewhere);
    let mut serve = Serve::spawn(cmd);
    serve.initialize_with(json!({"roots": {"listChanged": true}}));
    let ask = serve.recv();
    assert_eq!(ask["method"], "roots/list", "{ask}");
    let uri = format!("file://{}", path_str(&root));
    serve.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"roots": [{"uri": uri}]}}));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut names = Vec::new();
    while std::time::Instant::now() < deadline {
        names = serve.tool_names(1);
        if !names.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(names.contains(&"marked__echo".to_owned()), "{names:?}");
    assert!(marker.exists());
}

#[test]
fn the_workspace_flag_wins_over_roots_and_cwd() {
    let env = Env::new();
    let root = env.home.join("flagged");
    let marker = marker_workspace(&env, &root);
    trust_workspace(&env, &root);
    let mut serve = env.serve_with(&["--workspace", &path_str(&root)]);
    serve.initialize_with(json!({"roots": {}}));
    // With --workspace, roots are not asked for.
    assert!(serve.tool_names(1).contains(&"marked__echo".to_owned()));
    assert!(
        serve.seen.iter().all(|m| m["method"] != "roots/list"),
        "{:?}",
        serve.seen
    );
    assert!(marker.exists());
}
