//! The policy in `serve`, against the real `@modelcontextprotocol/server-filesystem`
//! (and server-memory, server-everything): path escapes denied, the trifecta across
//! three real calls on several servers, a secret in a real file redacted, a workspace
//! that cannot loosen a user's deny, and monitor mode.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::prefix::{node_bin, test_prefix};
use support::{Env, Serve, path_str, q, text_of};

/// server-filesystem as `fs`, allowed the whole test directory (so only the policy
/// keeps a call inside the workspace).
/// The real filesystem server over the test's whole directory; its sandbox lets it
/// read there too (by default it could read only the workspace), so what stops a call
/// in these tests is the policy.
fn fs_table(prefix: &Path, env: &Env) -> String {
    let dir = q(path_str(env.dir.path()));
    format!(
        "[servers.fs]\ncommand = {}\nargs = [{dir}]\n[servers.fs.sandbox]\nfs_read = [{dir}]\n",
        q(path_str(&node_bin(prefix, "mcp-server-filesystem"))),
    )
}

fn assert_denied(response: &Value, rule: &str) {
    let result = &response["result"];
    assert_eq!(result["isError"], true, "{response}");
    assert_eq!(result["_meta"]["mcp-warden/decision"], "deny", "{response}");
    assert_eq!(result["_meta"]["mcp-warden/rule"], rule, "{response}");
}

fn read(serve: &mut Serve, id: i64, path: &str) -> Value {
    serve.call_tool(id, "fs__read_text_file", json!({"path": path}))
}

const STAY_INSIDE: &str = r#"
[[policy.rules]]
id = "reads-stay-in-workspace"
tools = ["fs__read_*"]
when = { arg = "path", not_under = ["${workspace}"] }
action = "deny"
message = "reads outside the workspace are not allowed"
"#;

/// The Python client as a legacy client: `ask` and a server's elicitation are
/// server-to-client requests in that era (a modern client gets them as
/// `input_required`, issue 15 items 3 and 4).
const LEGACY: &[&str] = &["--mode", "legacy"];

#[test]
fn path_escapes_are_denied_by_dotdot_symlink_and_absolute_path() {
    let Some(prefix) = test_prefix() else { return };
    let env = Env::new();
    let outside = env.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "outside").unwrap();
    std::fs::write(env.workspace.join("inside.txt"), "inside").unwrap();
    std::os::unix::fs::symlink(&outside, env.workspace.join("link")).unwrap();
    env.user_config(&format!("{}{STAY_INSIDE}", fs_table(&prefix, &env)));
    let mut serve = env.serve_with(&["--workspace", &path_str(&env.workspace)]);
    serve.initialize();
    serve.tool_names(1);
    let ws = path_str(&env.workspace);
    let inside = read(&mut serve, 2, &format!("{ws}/inside.txt"));
    assert_eq!(text_of(&inside), "inside", "{inside}");
    for (id, path) in [
        (3, format!("{ws}/../outside/secret.txt")),
        (4, format!("{ws}/link/secret.txt")),
        (5, path_str(&outside.join("secret.txt"))),
    ] {
        let denied = read(&mut serve, id, &path);
        assert_denied(&denied, "reads-stay-in-workspace");
        assert!(!text_of(&denied).contains("outside\n"), "{denied}");
    }
}

#[test]
fn the_trifecta_is_denied_on_the_third_call_across_servers() {
    let Some(prefix) = test_prefix() else { return };
    let env = Env::new();
    std::fs::write(env.workspace.join("notes.txt"), "private notes").unwrap();
    env.user_config(&format!(
        "{}\n[servers.web]\ncommand = {}\n\n[servers.mem]\ncommand = {}\n\n\
         [labels]\nprivate = [\"fs__read_*\"]\nuntrusted = [\"web__*\"]\negress = [\"mem__*\"]\n\n\
         [flows]\ntrifecta = \"deny\"\n",
        fs_table(&prefix, &env),
        q(path_str(&node_bin(&prefix, "mcp-server-everything"))),
        q(path_str(&node_bin(&prefix, "mcp-server-memory"))),
    ));
    let mut serve = env.serve_with(&["--workspace", &path_str(&env.workspace)]);
    serve.initialize();
    let names = serve.tool_names(1);
    assert!(
        names.contains(&"mem__create_entities".to_owned()),
        "{names:?}"
    );
    let ws = path_str(&env.workspace);
    let private = read(&mut serve, 2, &format!("{ws}/notes.txt"));
    assert_eq!(text_of(&private), "private notes");
    let untrusted = serve.call_tool(3, "web__echo", json!({"message": "from the web"}));
    assert!(text_of(&untrusted).contains("from the web"), "{untrusted}");
    let egress = serve.call_tool(
        4,
        "mem__create_entities",
        json!({"entities": [{"name": "x", "entityType": "note", "observations": ["private notes"]}]}),
    );
    assert_denied(&egress, "flow:trifecta");
    let said = text_of(&egress);
    assert!(
        said.contains("fs__read_text_file") && said.contains("web__echo"),
        "the blocked result names the earlier calls: {said}"
    );
}

#[test]
fn a_secret_in_a_real_files_content_is_redacted() {
    let Some(prefix) = test_prefix() else { return };
    let env = Env::new();
    let token = format!("{}{}", "ghp_", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8");
    std::fs::write(
        env.workspace.join(".env"),
        format!("GITHUB_TOKEN={token}\n"),
    )
    .unwrap();
    env.user_config(&fs_table(&prefix, &env));
    let mut serve = env.serve_with(&["--workspace", &path_str(&env.workspace)]);
    serve.initialize();
    serve.tool_names(1);
    let got = read(&mut serve, 2, &format!("{}/.env", path_str(&env.workspace)));
    let text = text_of(&got);
    assert!(!got.to_string().contains(&token), "{got}");
    assert!(text.contains("GITHUB_TOKEN=[REDACTED:"), "{text}");
    assert_eq!(got["result"]["_meta"]["mcp-warden/decision"], "redact");
}

#[test]
fn a_trusted_workspace_cannot_loosen_a_users_deny() {
    let Some(prefix) = test_prefix() else { return };
    let env = Env::new();
    env.user_config(&format!(
        "{}\n[[policy.rules]]\nid = \"no-writes\"\ntools = [\"fs__write_file\"]\naction = \"deny\"\n",
        fs_table(&prefix, &env)
    ));
    env.workspace_config(
        "[[policy.rules]]\nid = \"let-me-write\"\ntools = [\"fs__write_file\"]\naction = \"allow\"\n",
    );
    let out = env.run(&["trust", "--yes"]);
    assert!(out.status.success());
    let mut serve = env.serve();
    serve.initialize();
    // An unconditional deny hides the tool from the list, and a call still fails.
    let names = serve.tool_names(1);
    assert!(!names.contains(&"fs__write_file".to_owned()), "{names:?}");
    let target = env.workspace.join("x.txt");
    let denied = serve.call_tool(
        2,
        "fs__write_file",
        json!({"path": path_str(&target), "content": "x"}),
    );
    assert_denied(&denied, "no-writes");
    assert!(!target.exists(), "the write went through");
}

#[test]
fn monitor_mode_lets_a_denied_call_through_and_records_it() {
    let Some(prefix) = test_prefix() else { return };
    let env = Env::new();
    let outside = env.dir.path().join("elsewhere.txt");
    std::fs::write(&outside, "elsewhere").unwrap();
    env.user_config(&format!(
        "[policy]\nmode = \"monitor\"\n{STAY_INSIDE}\n{}",
        fs_table(&prefix, &env)
    ));
    let mut serve = env.serve_with(&["--workspace", &path_str(&env.workspace)]);
    serve.initialize();
    serve.tool_names(1);
    let got = read(&mut serve, 2, &path_str(&outside));
    assert_eq!(text_of(&got), "elsewhere", "monitor blocks nothing: {got}");
    assert_eq!(got["result"]["_meta"]["mcp-warden/decision"], "monitor");
    assert_eq!(
        got["result"]["_meta"]["mcp-warden/rule"],
        "reads-stay-in-workspace"
    );
    serve.close();
    let out = env.run(&["audit", "--decision", "monitor", "--json"]);
    let audit = String::from_utf8_lossy(&out.stdout);
    assert!(
        audit.contains("reads-stay-in-workspace") && audit.contains("fs__read_text_file"),
        "{audit}"
    );
}

#[test]
fn ask_asks_the_user_and_a_decline_is_a_deny() {
    let Some(prefix) = test_prefix() else { return };
    let env = Env::new();
    env.user_config(&format!(
        "{}\n[[policy.rules]]\nid = \"confirm-echo\"\ntools = [\"a__echo\"]\naction = \"ask\"\n",
        support::test_server_table("a", &[])
    ));
    let script = json!([{"op": "request", "label": "call", "method": "tools/call",
                         "params": {"name": "a__echo", "arguments": {"message": "hi"}}}]);
    let out = support::prefix::run_client_with(&env, &prefix, &script, LEGACY);
    let asked = out["server_requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == "elicitation/create")
        .unwrap_or_else(|| panic!("no elicitation: {out}"));
    assert!(
        asked["params"]["message"]
            .as_str()
            .unwrap()
            .contains("confirm-echo"),
        "{asked}"
    );
    let result = &support::prefix::step(&out, "call")["result"];
    assert_eq!(result["content"][0]["text"], "hi", "allowed once: {result}");

    let out = support::prefix::run_client_with(
        &env,
        &prefix,
        &script,
        &["--elicit", "decline", "--mode", "legacy"],
    );
    let result = &support::prefix::step(&out, "call")["result"];
    assert_eq!(
        result["_meta"]["mcp-warden/rule"], "confirm-echo",
        "{result}"
    );
    assert!(
        result["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("declined by the user"),
        "{result}"
    );

    // Without elicitation in the client, `ask` is a deny.
    let mut serve = env.serve();
    serve.initialize();
    let denied = serve.call_tool(2, "a__echo", json!({"message": "hi"}));
    assert_denied(&denied, "confirm-echo");
}

#[test]
fn limits_give_the_blocked_result_and_the_session_goes_on() {
    let env = Env::new();
    env.user_config(&format!(
        "{}\n[limits]\ncalls_per_minute = 3\ntool_calls_per_minute = 2\nmax_result_bytes = 4096\nmax_message_bytes = 2048\n",
        support::test_server_table("a", &[])
    ));
    let mut serve = env.serve();
    serve.initialize();
    serve.tool_names(1);
    for id in 2..4 {
        let ok = serve.call_tool(id, "a__echo", json!({"message": "hi"}));
        assert_eq!(text_of(&ok), "hi", "{ok}");
    }
    assert_denied(
        &serve.call_tool(4, "a__echo", json!({"message": "hi"})),
        "limit:tool_calls_per_minute",
    );
    // A result over max_result_bytes (1 MiB here) never reaches the client.
    let big = serve.call_tool(5, "a__big", json!({"mb": 1}));
    assert_denied(&big, "limit:max_result_bytes");
    assert_denied(
        &serve.call_tool(6, "a__pid", json!({})),
        "limit:calls_per_minute",
    );
    // A message over max_message_bytes is refused with an error; the session goes on.
    let long = "x".repeat(4096);
    let refused = serve.call_tool(7, "a__echo", json!({"message": long}));
    assert!(refused.get("error").is_some(), "{refused}");
    let pong = serve.request(json!(8), "ping", json!({}));
    assert_eq!(pong["result"], json!({}));
}

#[test]
fn an_elicitation_asking_for_a_token_reaches_the_user_flagged() {
    let Some(prefix) = test_prefix() else { return };
    let env = Env::new();
    env.user_config(&support::test_server_table("a", &[]));
    let script = json!([
        {"op": "request", "label": "plain", "method": "tools/call",
         "params": {"name": "a__elicit", "arguments": {}}},
        {"op": "request", "label": "secret", "method": "tools/call",
         "params": {"name": "a__elicit", "arguments": {"message": "Paste your GitHub token here"}}},
    ]);
    let out = support::prefix::run_client_with(&env, &prefix, &script, LEGACY);
    let asked: Vec<&str> = out["server_requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "elicitation/create")
        .map(|r| r["params"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(asked.len(), 2, "{out}");
    assert_eq!(asked[0], "Your name?");
    assert!(asked[1].starts_with("[mcp-warden flagged:"), "{}", asked[1]);
    assert!(
        asked[1].ends_with("Paste your GitHub token here"),
        "{}",
        asked[1]
    );
    let audit = env.run(&["audit", "--decision", "flag", "--json"]);
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(audit.contains("elicitation:secret-request"), "{audit}");
}

/// Calls `a__echo` until `done` holds for the answer, for at most 10 s.
fn call_until(serve: &mut Serve, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut id = 100;
    loop {
        id += 1;
        let answer = serve.call_tool(id, "a__echo", json!({"message": "hi"}));
        if done(&answer) {
            return answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never happened: {answer}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_valid_edit_takes_effect_at_once_and_an_invalid_one_is_refused() {
    let env = Env::new();
    let server = support::test_server_table("a", &[]);
    env.user_config(&server);
    let mut serve = env.serve();
    serve.initialize();
    serve.tool_names(1);
    assert_eq!(
        text_of(&serve.call_tool(2, "a__echo", json!({"message": "hi"}))),
        "hi"
    );

    // A rule added while serving applies to the next call.
    let deny = "\n[[policy.rules]]\nid = \"no-echo\"\ntools = [\"a__echo\"]\nwhen = { arg = \"message\", equals = \"hi\" }\naction = \"deny\"\n";
    env.user_config(&format!("{server}{deny}"));
    let denied = call_until(&mut serve, "the new rule", |a| {
        a["result"]["_meta"]["mcp-warden/rule"] == "no-echo"
    });
    assert_denied(&denied, "no-echo");

    // A broken edit is refused with its position; the previous policy stays.
    env.user_config(&format!("{server}{deny}\n[policy]\ndefualt = \"allow\"\n"));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_denied(
        &serve.call_tool(3, "a__echo", json!({"message": "hi"})),
        "no-echo",
    );
    assert!(
        serve.stderr().contains("the previous one stays")
            && serve.stderr().contains("config.toml:"),
        "{}",
        serve.stderr()
    );

    // A server added while serving joins, and the client hears of it.
    env.user_config(&format!("{server}{}", support::test_server_table("b", &[])));
    serve.relist_until(
        std::time::Duration::from_secs(15),
        "server b joining",
        |l| {
            l["result"]["tools"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["name"] == "b__echo"))
        },
    );
    let echoed = call_until(&mut serve, "the rule gone", |a| text_of(a) == "hi");
    assert_eq!(text_of(&echoed), "hi");
}
