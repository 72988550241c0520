//! The real binary between a real client (the Python `mcp` SDK) and real reference
//! servers (`@modelcontextprotocol/server-everything` from npm, `mcp-server-time` from
//! the Python package index), installed at pinned versions by `./install.sh --test-deps`.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use support::prefix::{mcp_client_script, node_bin, test_prefix, venv_bin};
use support::{Env, path_str, processes_with_env, q};

/// Runs the Python SDK client with `script` against `mcp-warden serve` in `env`.
fn run_client(env: &Env, prefix: &Path, script: &Value, roots: &[&Path]) -> Value {
    let script_path = env.dir.path().join("script.json");
    std::fs::write(&script_path, script.to_string()).unwrap();
    let mut args = vec![
        path_str(&mcp_client_script()),
        "--script".into(),
        path_str(&script_path),
        "--timeout".into(),
        "120".into(),
    ];
    for root in roots {
        args.push("--root".into());
        args.push(path_str(root));
    }
    args.extend(["--".into(), path_str(&support::bin()), "serve".into()]);
    let mut client = std::process::Command::new(venv_bin(prefix, "python"));
    client.args(&args);
    env.apply(&mut client);
    let output = client.stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client failed ({}):\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("client output is not JSON ({e}): {stdout}"))
}

fn step<'a>(out: &'a Value, label: &str) -> &'a Value {
    out["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"] == label)
        .unwrap_or_else(|| panic!("no step {label} in {out}"))
}

#[test]
fn python_sdk_client_lists_and_calls_server_everything_and_mcp_server_time_through_warden() {
    let Some(prefix) = test_prefix() else { return };
    let env = Env::new();
    env.user_config(&format!(
        "[servers.everything]\ncommand = {}\n\n[servers.time]\ncommand = {}\n",
        q(path_str(&node_bin(&prefix, "mcp-server-everything"))),
        q(path_str(&venv_bin(&prefix, "mcp-server-time"))),
    ));
    let script = json!([
        {"op": "list_tools", "all": true, "label": "list"},
        {"op": "call_tool", "name": "everything__echo", "arguments": {"message": "through the warden"}, "label": "echo"},
        {"op": "call_tool", "name": "time__get_current_time", "arguments": {"timezone": "UTC"}, "label": "time"},
        {"op": "ping", "label": "ping"},
    ]);
    let out = run_client(&env, &prefix, &script, &[]);
    assert_eq!(out["server_info"]["name"], "mcp-warden", "{out}");
    assert_eq!(
        out["negotiation"], "initialize",
        "server/discover must fall back: {out}"
    );

    let tools: Vec<&str> = step(&out, "list")["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for name in [
        "everything__echo",
        "everything__get-sum",
        "time__get_current_time",
        "time__convert_time",
    ] {
        assert!(tools.contains(&name), "{name} missing from {tools:?}");
    }
    assert!(
        tools
            .iter()
            .all(|t| t.starts_with("everything__") || t.starts_with("time__")),
        "{tools:?}"
    );

    let echo = &step(&out, "echo")["result"];
    assert_eq!(
        echo["content"][0]["text"], "Echo: through the warden",
        "{echo}"
    );
    let time = &step(&out, "time")["result"];
    assert!(
        time["content"][0]["text"].as_str().unwrap().contains("UTC"),
        "{time}"
    );
    assert!(step(&out, "ping").get("error").is_none(), "{out}");

    // The client has gone and so has mcp-warden: no server process may be left.
    let needle = path_str(env.dir.path());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut left = processes_with_env(&needle);
    while !left.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = processes_with_env(&needle);
    }
    assert!(
        left.is_empty(),
        "processes left running after the client left: {left:?}"
    );
}
