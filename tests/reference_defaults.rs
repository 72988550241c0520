//! Issue 16, item 12: the reference servers work under the default sandbox with their
//! default settings, as a new user would configure them: server-memory (whose data
//! file defaults to its own, read-only, package directory), server-filesystem,
//! server-everything, mcp-server-time and mcp-server-git. And `doctor` names the paths
//! a server may write instead of only counting them.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use support::prefix::{node_bin, test_prefix, venv_bin};
use support::{Env, path_str, q, text_of};

fn table(name: &str, command: &std::path::Path, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(q).collect();
    format!(
        "[servers.{name}]\ncommand = {}\nargs = [{}]\n",
        q(path_str(command)),
        args.join(", ")
    )
}

fn ok(answer: &Value) -> String {
    assert!(answer.get("result").is_some(), "{answer}");
    assert_ne!(answer["result"]["isError"], true, "{answer}");
    text_of(answer)
}

/// Regression: with default settings server-memory wrote `memory.jsonl` next to its
/// own code, which the sandbox keeps read-only, so every write failed.
#[test]
fn server_memory_with_default_settings_keeps_its_graph_under_the_default_sandbox() {
    let Some(prefix) = test_prefix() else { return };
    let env = Env::new();
    env.user_config(&table("mem", &node_bin(&prefix, "mcp-server-memory"), &[]));
    let mut serve = env.ready_serve();
    let created = serve.call_tool(
        2,
        "mem__create_entities",
        json!({"entities": [{"name": "warden", "entityType": "tool", "observations": ["guards MCP"]}]}),
    );
    ok(&created);
    let graph = ok(&serve.call_tool(3, "mem__read_graph", json!({})));
    assert!(graph.contains("guards MCP"), "{graph}");
    let (status, stderr) = serve.close();
    assert!(status.success(), "{stderr}");
    // The graph outlives the session: a new one reads it back.
    let mut serve = env.ready_serve();
    let graph = ok(&serve.call_tool(2, "mem__read_graph", json!({})));
    assert!(graph.contains("guards MCP"), "{graph}");
    drop(serve);
    // And it is in the server's private home, not in the shared package.
    let package = prefix.join("node/node_modules/@modelcontextprotocol/server-memory/dist");
    assert!(!package.join("memory.jsonl").exists());
}

#[test]
fn the_other_reference_servers_work_under_the_defaults() {
    let Some(prefix) = test_prefix() else { return };
    let env = Env::new();
    std::fs::write(env.workspace.join("notes.txt"), "hello from the workspace").unwrap();
    let ws = path_str(&env.workspace);
    let status = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(&env.workspace)
        .status()
        .unwrap();
    assert!(status.success());
    env.user_config(&format!(
        "{}{}{}{}",
        table("fs", &node_bin(&prefix, "mcp-server-filesystem"), &[&ws]),
        table(
            "everything",
            &node_bin(&prefix, "mcp-server-everything"),
            &[]
        ),
        table("time", &venv_bin(&prefix, "mcp-server-time"), &[]),
        table(
            "git",
            &venv_bin(&prefix, "mcp-server-git"),
            &["--repository", &ws]
        ),
    ));
    let mut serve = env.serve_with(&["--workspace", &ws]);
    serve.initialize();
    let names = serve.tool_names(1);
    for name in [
        "fs__read_text_file",
        "everything__echo",
        "time__get_current_time",
        "git__git_status",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
    }
    let read = ok(&serve.call_tool(
        2,
        "fs__read_text_file",
        json!({"path": format!("{ws}/notes.txt")}),
    ));
    assert!(read.contains("hello from the workspace"), "{read}");
    ok(&serve.call_tool(
        3,
        "fs__write_file",
        json!({"path": format!("{ws}/out.txt"), "content": "written"}),
    ));
    assert_eq!(
        std::fs::read_to_string(env.workspace.join("out.txt")).unwrap(),
        "written"
    );
    assert!(ok(&serve.call_tool(4, "everything__echo", json!({"message": "hi"}))).contains("hi"));
    assert!(
        ok(&serve.call_tool(5, "time__get_current_time", json!({"timezone": "UTC"})))
            .contains("UTC")
    );
    let git = ok(&serve.call_tool(6, "git__git_status", json!({"repo_path": ws})));
    assert!(git.contains("notes.txt"), "{git}");
}

#[test]
fn doctor_names_the_paths_a_server_may_write() {
    let Some(prefix) = test_prefix() else { return };
    let env = Env::new();
    env.user_config(&table("mem", &node_bin(&prefix, "mcp-server-memory"), &[]));
    let out = env.run(&["doctor", "--json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let writes: Vec<String> = doc["servers"][0]["write"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    assert!(writes.iter().any(|p| p == "/dev/null"), "{doc}");
    // The server's private directory (its HOME and TMPDIR), where its data lives.
    assert!(writes.iter().any(|p| p.contains("mem")), "{doc}");
    let out = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let quoted: Vec<String> = writes.iter().map(|p| format!("`{p}`")).collect();
    assert!(
        text.contains(&format!("    writes          {}", quoted.join(", "))),
        "{text}"
    );
    assert!(text.contains("    reads           `"), "{text}");
}
