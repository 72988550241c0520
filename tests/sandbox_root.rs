//! What running as root changes: each server gets a uid of its own, and a server
//! binary that uid cannot reach (our own binary under `/root`, say) still starts,
//! because the launcher execs it from a descriptor opened before the drop.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::os::unix::fs::PermissionsExt;

use serde_json::{Value, json};
use support::{Env, example, path_str, q};

fn root_or_skip() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: servers get a uid of their own only when mcp-warden runs as root");
    }
    root
}

#[test]
fn a_server_binary_its_uid_cannot_reach_still_starts_and_runs_as_that_uid() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new();
    let private = env.dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    let binary = private.join("probe");
    std::fs::copy(example("probe_server"), &binary).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Like /root: nobody else may enter.
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    env.user_config(&format!(
        "[servers.p]\ncommand = {}\n",
        q(path_str(&binary))
    ));

    let doctor = env.run(&["doctor"]);
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(0), "{said}");

    let mut serve = env.serve();
    serve.initialize();
    assert!(serve.tool_names(1).contains(&"p__whoami".to_owned()));
    let answer = serve.call_tool(2, "p__whoami", json!({}));
    let text = answer["result"]["content"][0]["text"].as_str().unwrap();
    let who: Value = serde_json::from_str(text).unwrap();
    let uid = who["uid"].as_u64().unwrap();
    assert!(
        (1_900_000_000..1_900_100_000).contains(&uid),
        "not a uid of its own: {who}"
    );
    assert_eq!(who["groups"], json!([]), "{who}");
    assert_eq!(who["cap_eff"], "0000000000000000", "{who}");
    // It cannot read what it was started from.
    let read = serve.call_tool(3, "p__list_dir", json!({"path": path_str(&private)}));
    let text = read["result"]["content"][0]["text"].as_str().unwrap();
    let failed: Value = serde_json::from_str(text).unwrap();
    assert_eq!(failed["errno"], 13, "{failed}");
}
