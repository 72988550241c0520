//! The real binary between a real client (the Python `mcp` SDK) and real reference
//! servers (`@modelcontextprotocol/server-everything` from npm, `mcp-server-time` from
//! the Python package index), installed at pinned versions by `./install.sh --test-deps`.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use support::prefix::{node_bin, run_client, run_client_with, step, test_prefix, venv_bin};
use support::{Env, path_str, processes_with_env, q};

/// A user config with server-everything and mcp-server-time from the test prefix.
fn everything_and_time(prefix: &Path) -> String {
    format!(
        "[servers.everything]\ncommand = {}\n\n[servers.time]\ncommand = {}\n",
        q(path_str(&node_bin(prefix, "mcp-server-everything"))),
        q(path_str(&venv_bin(prefix, "mcp-server-time"))),
    )
}

#[test]
fn python_sdk_client_lists_and_calls_server_everything_and_mcp_server_time_through_warden() {
    let Some(prefix) = test_prefix() else { return };
    let env = Env::new();
    env.user_config(&everything_and_time(&prefix));
    let script = json!([
        {"op": "list_tools", "all": true, "label": "list"},
        {"op": "call_tool", "name": "everything__echo", "arguments": {"message": "through the warden"}, "label": "echo"},
        {"op": "call_tool", "name": "time__get_current_time", "arguments": {"timezone": "UTC"}, "label": "time"},
        {"op": "ping", "label": "ping"},
    ]);
    let out = run_client(&env, &prefix, &script, &[]);
    assert_eq!(out["server_info"]["name"], "mcp-warden", "{out}");
    // The SDK's client probes `server/discover` and, since mcp-warden speaks
    // 2026-07-28, goes modern (issue 15): a modern client in front of a legacy server
    // (server-everything) and a dual one (mcp-server-time, modern by our probe).
    assert_eq!(
        out["negotiation"], "discover",
        "a dual client goes modern through mcp-warden: {out}"
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

#[test]
fn python_sdk_client_uses_resources_prompts_completion_progress_sampling_and_logging_of_three_servers()
 {
    let Some(prefix) = test_prefix() else { return };
    let env = Env::new();
    std::fs::write(
        env.workspace.join("notes.txt"),
        "hello from the workspace\n",
    )
    .unwrap();
    env.user_config(&format!(
        "[servers.everything]\ncommand = {}\nsampling = \"allow\"\n\n[servers.fs]\ncommand = {}\nargs = [\"${{workspace}}\"]\n\n[servers.time]\ncommand = {}\n",
        q(path_str(&node_bin(&prefix, "mcp-server-everything"))),
        q(path_str(&node_bin(&prefix, "mcp-server-filesystem"))),
        q(path_str(&venv_bin(&prefix, "mcp-server-time"))),
    ));
    env.workspace_config("");
    let script = json!([
        {"op": "list_resources", "label": "resources"},
        {"op": "read_resource", "uri": "demo://resource/static/document/architecture.md", "label": "read-static"},
        {"op": "read_resource", "uri": "demo://resource/dynamic/text/42", "label": "read-templated"},
        {"op": "list_resource_templates", "label": "templates"},
        {"op": "list_prompts", "label": "prompts"},
        {"op": "get_prompt", "name": "everything__args-prompt", "arguments": {"city": "Lyon", "state": "Rhône"}, "label": "prompt"},
        {"op": "complete", "ref": {"type": "ref/prompt", "name": "everything__completable-prompt"}, "argument": {"name": "department", "value": "E"}, "label": "complete"},
        {"op": "set_logging_level", "level": "debug", "label": "loglevel"},
        {"op": "call_tool", "name": "everything__trigger-long-running-operation", "arguments": {"duration": 1, "steps": 3}, "progress": true, "label": "progress"},
        {"op": "call_tool", "name": "fs__read_text_file", "arguments": {"path": path_str(&env.workspace.join("notes.txt"))}, "label": "fs-read"},
        {"op": "call_tool", "name": "everything__get-roots-list", "arguments": {}, "label": "roots"},
        {"op": "call_tool", "name": "everything__trigger-elicitation-request", "arguments": {}, "label": "elicit"},
        {"op": "call_tool", "name": "everything__trigger-sampling-request", "arguments": {"prompt": "hi", "maxTokens": 5}, "label": "sample"},
        {"op": "call_tool", "name": "time__get_current_time", "arguments": {"timezone": "UTC"}, "label": "time"},
    ]);
    // A legacy client (`initialize`), so that elicitation and sampling are real
    // server-to-client requests; mcp-server-time is modern behind it (our probe).
    let root = path_str(&env.workspace);
    let options = ["--root", root.as_str(), "--mode", "legacy"];
    let out = run_client_with(&env, &prefix, &script, &options);
    assert_eq!(out["negotiation"], "initialize", "{out}");
    assert_resources_prompts_and_completion(&out);
    assert_calls_progress_and_server_requests(&out, &env);
}

fn assert_resources_prompts_and_completion(out: &Value) {
    let caps = &out["capabilities"];
    assert!(
        caps["resources"].is_object()
            && caps["prompts"].is_object()
            && caps["completions"].is_object(),
        "{caps}"
    );

    let resources = step(out, "resources")["result"]["resources"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        resources
            .iter()
            .any(|r| r["uri"] == "demo://resource/static/document/architecture.md"),
        "{resources:?}"
    );
    assert!(
        step(out, "read-static")["result"]["contents"][0]["text"].is_string(),
        "{out}"
    );
    assert!(
        step(out, "read-templated")["result"]["contents"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("42"),
        "{out}"
    );
    let templates = &step(out, "templates")["result"]["resourceTemplates"];
    assert!(
        templates
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["uriTemplate"] == "demo://resource/dynamic/text/{resourceId}")
    );
    let prompts: Vec<&str> = step(out, "prompts")["result"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        prompts.contains(&"everything__args-prompt")
            && prompts.contains(&"everything__simple-prompt"),
        "{prompts:?}"
    );
    assert!(
        step(out, "prompt")["result"]["messages"][0]["content"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Lyon"),
        "{out}"
    );
    let values = &step(out, "complete")["result"]["completion"]["values"];
    assert!(values.as_array().is_some_and(|v| !v.is_empty()), "{out}");
    assert!(step(out, "loglevel").get("error").is_none(), "{out}");
}

fn assert_calls_progress_and_server_requests(out: &Value, env: &Env) {
    let progress_step = step(out, "progress");
    assert!(progress_step.get("error").is_none(), "{progress_step}");
    let progress: Vec<&Value> = out["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .collect();
    assert!(
        progress.len() >= 2,
        "progress notifications expected: {:?}",
        out["notifications"]
    );

    let fs_text = step(out, "fs-read")["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(fs_text.contains("hello from the workspace"), "{out}");
    let roots = step(out, "roots")["result"].to_string();
    assert!(
        roots.contains(&format!("file://{}", path_str(&env.workspace))),
        "{roots}"
    );
    assert!(
        out["server_requests"].to_string().contains("elicitation"),
        "{out}"
    );
    // Sampling is allowed in this config: the client's model answered.
    let sample = step(out, "sample").to_string();
    assert!(
        sample.contains("This is a test sampling response."),
        "{sample}"
    );
    assert!(
        out["server_requests"]
            .to_string()
            .contains("sampling/createMessage"),
        "{out}"
    );
    assert!(step(out, "time")["result"]["content"][0]["text"].is_string());
}

/// Kills (SIGKILL) the live processes of this test whose command line mentions `what`.
fn kill_processes(env: &Env, what: &str) -> usize {
    let mut killed = 0;
    for pid in processes_with_env(&path_str(env.dir.path())) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(what) {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
            if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
    }
    killed
}

#[test]
fn python_sdk_client_sees_a_crash_mid_call_and_a_cancellation_while_other_servers_go_on() {
    let Some(prefix) = test_prefix() else { return };
    let env = Env::new();
    env.user_config(&everything_and_time(&prefix));
    let script = json!([
        // The SDK gives up after 1 s and cancels; the server is told, and goes on.
        {"op": "call_tool", "name": "everything__trigger-long-running-operation", "arguments": {"duration": 5, "steps": 5}, "timeout": 1, "label": "cancelled"},
        {"op": "call_tool", "name": "everything__echo", "arguments": {"message": "after the cancel"}, "label": "after-cancel"},
        // The server is killed while this call runs (by the thread below).
        {"op": "call_tool", "name": "everything__trigger-long-running-operation", "arguments": {"duration": 30, "steps": 3}, "label": "crashed"},
        {"op": "call_tool", "name": "time__get_current_time", "arguments": {"timezone": "UTC"}, "label": "time"},
    ]);
    let (out, killed) = std::thread::scope(|scope| {
        let client = scope.spawn(|| run_client(&env, &prefix, &script, &[]));
        // The third step starts as soon as the echo before it is answered, and runs
        // for 30 s: wait for the echo's audit record (a fixed sleep missed it on a
        // loaded machine, killing the server before the call and failing with
        // `unknown tool`), then give the call 2 s to reach the server.
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while !env.audit_text().contains("everything__echo") && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(2));
        let killed = kill_processes(&env, "server-everything");
        (client.join().unwrap(), killed)
    });
    assert!(killed >= 1, "nothing to kill");
    let cancelled = step(&out, "cancelled");
    assert!(cancelled.get("error").is_some(), "{cancelled}");
    assert_eq!(
        step(&out, "after-cancel")["result"]["content"][0]["text"],
        "Echo: after the cancel"
    );
    let crashed = step(&out, "crashed");
    assert_eq!(crashed["error"]["code"], -32004, "{crashed}");
    assert!(
        crashed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`everything`"),
        "{crashed}"
    );
    assert!(
        step(&out, "time")["result"]["content"][0]["text"].is_string(),
        "{out}"
    );
}
