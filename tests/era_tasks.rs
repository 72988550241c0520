//! Tasks through the real binary (issue 15 item 7, docs/dual-era.md §2.5): 2025-11-25
//! `tasks/*` between a legacy client and a legacy server, cross-checked against the
//! real reference server (`@modelcontextprotocol/server-everything` 2026.8.31 offers
//! 2025-11-25 tasks: its `simulate-research-query` has `taskSupport: "required"`);
//! and the 2026 `io.modelcontextprotocol/tasks` extension between a modern client
//! and a modern server (`examples/ext_task_server.rs`, raw JSON lines: no SDK ships
//! the extension).

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::prefix::{node_bin, test_prefix};
use support::{Env, Serve, example_table, path_str, q};

/// A token the default out-filter redacts; the research report echoes its topic.
const SECRET: &str = "ghp_R8x2Lq9ZtW4mKp7Vn3Jc6Hs1Fd5Gb0YeUa2T";

/// server-everything from the test prefix; `scan_arguments` off, so that a secret may
/// go to the server and come back in its report (where the out-filter meets it).
fn everything(env: &Env) -> Option<()> {
    let prefix = test_prefix()?;
    env.user_config(&format!(
        "[policy]\nscan_arguments = false\n\n[servers.everything]\ncommand = {}\n",
        q(path_str(&node_bin(&prefix, "mcp-server-everything"))),
    ));
    Some(())
}

/// `initialize` at 2025-11-25 (the version with tasks) and `initialized`.
fn initialize(serve: &mut Serve) -> Value {
    let answer = serve.request(
        json!(0),
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "harness", "version": "1"}}),
    );
    serve.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    answer
}

/// Starts a research task through mcp-warden; gives its task id (ours).
fn start_task(serve: &mut Serve, id: i64, topic: &str) -> String {
    let created = serve.request(
        json!(id),
        "tools/call",
        json!({"name": "everything__simulate-research-query", "arguments": {"topic": topic}, "task": {"ttl": 60000}}),
    );
    let task = &created["result"]["task"];
    let task_id = task["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("no task in {created}"));
    assert!(
        task_id.starts_with("mwt-"),
        "our id, not the server's: {created}"
    );
    assert_eq!(
        task_id.len(),
        26,
        "mwt- and 16 bytes in base64url: {task_id}"
    );
    assert_eq!(task["status"], "working", "{created}");
    task_id.to_owned()
}

#[test]
fn legacy_tasks_of_server_everything_run_through_warden_under_ids_of_ours() {
    let env = Env::new();
    if everything(&env).is_none() {
        return;
    }
    let mut serve = env.serve();
    let init = initialize(&mut serve);
    assert_eq!(
        init["result"]["capabilities"]["tasks"],
        json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}),
        "tasks advertised because the upstream offers them: {init}"
    );
    let tools = serve.request(json!(1), "tools/list", json!({}));
    let research = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "everything__simulate-research-query")
        .unwrap_or_else(|| panic!("no research tool in {tools}"));
    assert_eq!(research["execution"]["taskSupport"], "required");

    let ours = start_task(&mut serve, 2, SECRET);

    // Polled under our id: the server's id never shows.
    let got = serve.request(json!(3), "tasks/get", json!({"taskId": ours}));
    assert_eq!(got["result"]["taskId"], json!(ours), "{got}");
    let listed = serve.request(json!(4), "tasks/list", json!({}));
    let tasks = listed["result"]["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "{listed}");
    assert_eq!(tasks[0]["taskId"], json!(ours));

    // The terminal result: through the out-filter like the call's answer, and
    // tagged with our id.
    let result = serve.request(json!(5), "tasks/result", json!({"taskId": ours}));
    let text = result["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{result}"));
    assert!(text.contains("# Research Report"), "{result}");
    assert!(!text.contains(SECRET), "the secret is redacted: {text}");
    assert!(text.contains("[REDACTED:"), "{text}");
    assert_eq!(
        result["result"]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"],
        json!(ours),
        "{result}"
    );

    // Status notifications came re-tagged, and only with ids of ours.
    let statuses: Vec<&Value> = serve
        .seen
        .iter()
        .filter(|m| m["method"] == "notifications/tasks/status")
        .collect();
    assert!(!statuses.is_empty(), "no status seen: {:?}", serve.seen);
    for s in &statuses {
        assert_eq!(s["params"]["taskId"], json!(ours), "{s}");
    }
    let listed = serve.request(json!(6), "tasks/list", json!({}));
    assert_eq!(
        listed["result"]["tasks"][0]["status"], "completed",
        "{listed}"
    );

    // The server's own ids, or made-up ones, route nowhere.
    let unknown = serve.request(
        json!(7),
        "tasks/get",
        json!({"taskId": "mwt-AAAAAAAAAAAAAAAAAAAAAA"}),
    );
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    let (status, _) = serve.close();
    assert!(status.success());

    // The terminal result is audited as the call's answer, with the redaction.
    let audit = env.audit_text();
    let redacted = audit
        .lines()
        .filter(|l| l.contains("simulate-research-query") && l.contains("redact"))
        .count();
    assert!(
        redacted >= 1,
        "the terminal result's redaction is audited:\n{audit}"
    );
}

#[test]
fn a_cancelled_task_is_cancelled_at_the_server_under_its_own_id() {
    let env = Env::new();
    if everything(&env).is_none() {
        return;
    }
    let mut serve = env.serve();
    initialize(&mut serve);
    serve.request(json!(1), "tools/list", json!({}));
    let ours = start_task(&mut serve, 2, "cats");
    let cancelled = serve.request(json!(3), "tasks/cancel", json!({"taskId": ours}));
    assert_eq!(cancelled["result"]["taskId"], json!(ours), "{cancelled}");
    assert_eq!(cancelled["result"]["status"], "cancelled", "{cancelled}");
    // The server agrees when asked again, still under our id.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = serve.request(json!(4), "tasks/get", json!({"taskId": ours}));
        if got["result"]["status"] == "cancelled" {
            break;
        }
        assert!(Instant::now() < deadline, "{got}");
        std::thread::sleep(Duration::from_millis(100));
    }
    serve.close();
}

#[test]
fn a_tasks_elicitation_reaches_the_client_tagged_with_our_task_id() {
    let env = Env::new();
    if everything(&env).is_none() {
        return;
    }
    let mut serve = env.serve();
    serve.request(
        json!(0),
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}}, "clientInfo": {"name": "harness", "version": "1"}}),
    );
    serve.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    serve.request(json!(1), "tools/list", json!({}));
    let created = serve.request(
        json!(2),
        "tools/call",
        json!({"name": "everything__simulate-research-query", "arguments": {"topic": "python", "ambiguous": true}, "task": {"ttl": 60000}}),
    );
    let ours = created["result"]["task"]["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    // `tasks/result` is where the server asks its question (related-task tagged).
    serve.send(
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tasks/result", "params": {"taskId": ours}}),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let ask = loop {
        let msg: Value = serde_json::from_str(&serve.recv_line()).unwrap();
        if msg["method"] == "elicitation/create" {
            break msg;
        }
        assert!(Instant::now() < deadline, "no elicitation: {msg}");
    };
    assert_eq!(
        ask["params"]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"],
        json!(ours),
        "{ask}"
    );
    let schema = &ask["params"]["requestedSchema"]["properties"];
    let field = schema.as_object().unwrap().keys().next().unwrap().clone();
    let choice = schema[&field]["enum"][0].clone();
    serve.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept", "content": {field: choice}}}));
    let result = serve.answer_to(&json!(3));
    let text = result["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{result}"));
    assert!(text.contains("# Research Report"), "{result}");
    serve.close();
}

#[test]
fn a_modern_client_is_not_shown_tools_only_a_task_can_run() {
    let env = Env::new();
    if everything(&env).is_none() {
        return;
    }
    let mut serve = env.serve();
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "modern-client", "version": "1"},
    });
    let listed = serve.request(json!(1), "tools/list", json!({"_meta": meta}));
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"everything__echo"), "{listed}");
    assert!(
        !names.contains(&"everything__simulate-research-query"),
        "taskSupport required, and tasks are not mediated for modern clients: {names:?}"
    );
    // Nor are 2025-11-25 tasks (a legacy capability) offered, nor their methods.
    let discover = serve.request(json!(3), "server/discover", json!({"_meta": meta}));
    let caps = &discover["result"]["capabilities"];
    assert!(caps["tools"].is_object(), "{discover}");
    assert!(caps.get("tasks").is_none(), "{discover}");
    let get = serve.request(json!(2), "tasks/list", json!({"_meta": meta}));
    assert_eq!(get["error"]["code"], -32601, "{get}");
    serve.close();
}

#[test]
fn two_servers_using_the_same_task_id_never_meet() {
    let env = Env::new();
    env.user_config(&format!(
        "{}\n{}",
        example_table("a", "task_server", &["--name", "a"]),
        example_table("b", "task_server", &["--name", "b"]),
    ));
    let mut serve = env.serve();
    initialize(&mut serve);
    serve.request(json!(1), "tools/list", json!({}));
    let mut ours = Vec::new();
    for (id, server) in [(2, "a"), (3, "b")] {
        let created = serve.request(
            json!(id),
            "tools/call",
            json!({"name": format!("{server}__work"), "arguments": {"text": format!("for {server}")}, "task": {"ttl": 60000}}),
        );
        let task_id = created["result"]["task"]["taskId"]
            .as_str()
            .unwrap_or_else(|| panic!("{created}"));
        assert!(task_id.starts_with("mwt-"), "{created}");
        ours.push(task_id.to_owned());
    }
    assert_ne!(ours[0], ours[1], "both servers said task \"1\"");
    for (i, (task_id, server)) in ours.iter().zip(["a", "b"]).enumerate() {
        let result = serve.request(json!(10 + i), "tasks/result", json!({"taskId": task_id}));
        assert_eq!(
            result["result"]["content"][0]["text"],
            format!("{server}: for {server}"),
            "{result}"
        );
        assert_eq!(
            result["result"]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"],
            json!(task_id)
        );
    }
    // The server's own id routes nowhere: it is not one of ours.
    let raw = serve.request(json!(20), "tasks/get", json!({"taskId": "1"}));
    assert_eq!(raw["error"]["code"], -32602, "{raw}");
    // Statuses: ours only, and none for the task "2" no server made through us.
    let listed = serve.request(json!(21), "tasks/list", json!({}));
    let listed_ids: Vec<&Value> = listed["result"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["taskId"])
        .collect();
    assert_eq!(listed_ids, [&json!(ours[0]), &json!(ours[1])], "{listed}");
    for s in serve
        .seen
        .iter()
        .filter(|m| m["method"] == "notifications/tasks/status")
    {
        let id = s["params"]["taskId"].as_str().unwrap();
        assert!(id.starts_with("mwt-"), "a server's own task id leaked: {s}");
    }
    serve.close();
}

/// The `_meta` of a modern request; `tasks`: it declares the tasks extension.
fn modern_meta(tasks: bool) -> Value {
    let mut caps = json!({"elicitation": {}});
    if tasks {
        caps["extensions"] = json!({"io.modelcontextprotocol/tasks": {}});
    }
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": caps,
        "io.modelcontextprotocol/clientInfo": {"name": "modern-client", "version": "1"},
    })
}

/// With `_meta` (the tasks extension declared) added to `params`.
fn modern(mut params: Value) -> Value {
    params["_meta"] = modern_meta(true);
    params
}

#[test]
fn the_tasks_extension_runs_under_our_ids_and_its_result_is_filtered_once() {
    let env = Env::new();
    env.user_config(&example_table("ext", "ext_task_server", &[]));
    let mut serve = env.serve();

    // Advertised: a ready server offers it.
    let discover = serve.request(json!(1), "server/discover", modern(json!({})));
    assert_eq!(
        discover["result"]["capabilities"]["extensions"],
        json!({"io.modelcontextprotocol/tasks": {}}),
        "{discover}"
    );
    // Declared upstream only when the client declares it: without, a plain answer.
    let plain = serve.request(
        json!(2),
        "tools/call",
        json!({"name": "ext__job", "arguments": {"text": "now"}, "_meta": modern_meta(false)}),
    );
    assert_eq!(
        plain["result"]["content"][0]["text"], "sync: now",
        "{plain}"
    );

    let created = serve.request(
        json!(3),
        "tools/call",
        modern(json!({"name": "ext__job", "arguments": {"text": "later"}})),
    );
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    let ours = created["result"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("no task in {created}"))
        .to_owned();
    assert!(ours.starts_with("mwt-") && ours.len() == 26, "{created}");

    // The server's own id, and a made-up one, route nowhere.
    for (id, forged) in [(4, "1"), (5, "mwt-AAAAAAAAAAAAAAAAAAAAAA")] {
        let got = serve.request(json!(id), "tasks/get", modern(json!({"taskId": forged})));
        assert_eq!(got["error"]["code"], -32602, "{got}");
    }
    // Methods the extension does not have: -32601.
    for (id, method) in [
        (6, "tasks/result"),
        (7, "tasks/list"),
        (8, "tasks/frobnicate"),
    ] {
        let got = serve.request(json!(id), method, modern(json!({"taskId": ours})));
        assert_eq!(got["error"]["code"], -32601, "{method}: {got}");
    }

    // Waiting for input: the client is asked what is its to answer (roots are ours).
    let waiting = serve.request(json!(9), "tasks/get", modern(json!({"taskId": ours})));
    let task = &waiting["result"];
    assert_eq!(task["status"], "input_required", "{waiting}");
    assert_eq!(task["taskId"], json!(ours), "{waiting}");
    assert_eq!(task["requestState"], "rs-1", "{waiting}");
    let keys: Vec<&String> = task["inputRequests"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["confirm"], "{waiting}");

    // The update answers only the keys asked, under the server's id.
    let update_answer = serve.request(
        json!(10),
        "tasks/update",
        modern(
            json!({"taskId": ours, "requestState": "rs-1", "inputResponses": {
                "confirm": {"action": "accept", "content": {"ok": true, "note": SECRET}},
                "where": {"roots": [{"uri": "file:///etc"}]},
                "made-up": {"x": 1},
            }}),
        ),
    );
    assert!(update_answer.get("result").is_some(), "{update_answer}");
    let nothing_asked = serve.request(
        json!(11),
        "tasks/update",
        modern(json!({"taskId": ours, "inputResponses": {"made-up": {}}})),
    );
    assert_eq!(nothing_asked["error"]["code"], -32602, "{nothing_asked}");

    // Completed: the inline result is the call's answer, redacted.
    let done = serve.request(json!(12), "tasks/get", modern(json!({"taskId": ours})));
    assert_eq!(done["result"]["status"], "completed", "{done}");
    assert_eq!(done["result"]["taskId"], json!(ours), "{done}");
    let text = done["result"]["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{done}"));
    assert!(
        text.starts_with("done: later") && text.contains("[REDACTED:") && !text.contains("AKIA"),
        "{done}"
    );
    // A later poll is the same answer, not asked upstream again.
    let again = serve.request(json!(13), "tasks/get", modern(json!({"taskId": ours})));
    assert_eq!(again["result"], done["result"], "{again}");

    server_got_answers_to_what_was_asked(&mut serve);

    let cancelled = serve.request(json!(15), "tasks/cancel", modern(json!({"taskId": ours})));
    assert!(cancelled.get("result").is_some(), "{cancelled}");
    let (status, _) = serve.close();
    assert!(status.success());

    // Audited as the call's answer once, with the redaction.
    let audit = env.audit_text();
    let redacted = audit
        .lines()
        .filter(|l| l.contains("ext__job") && l.contains(r#""decision":"redact""#))
        .count();
    assert_eq!(redacted, 1, "{audit}");
    assert!(
        audit
            .lines()
            .any(|l| l.contains(r#""decision":"flag""#) && l.contains("secret")),
        "the secret in the update is flagged:\n{audit}"
    );
}

/// What `ext_task_server` got (its `stats` tool): two `tasks/get` (the third poll was
/// answered by mcp-warden), our `tasks/update` for roots, then the client's with only
/// the key it was asked.
fn server_got_answers_to_what_was_asked(serve: &mut Serve) {
    let answer = serve.request(
        json!(14),
        "tools/call",
        json!({"name": "ext__stats", "arguments": {}, "_meta": modern_meta(false)}),
    );
    let seen: Value =
        serde_json::from_str(answer["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(seen["gets"], 2, "input_required, then completed: {seen}");
    let updates = seen["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 2, "{seen}");
    // Ours first: the roots question answered with the workspace.
    assert_eq!(updates[0]["taskId"], "1", "{seen}");
    assert_eq!(
        updates[0]["inputResponses"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["where"],
        "{seen}"
    );
    assert!(
        !updates[0]["inputResponses"]["where"]["roots"]
            .to_string()
            .contains("/etc"),
        "{seen}"
    );
    // The client's: its answer to `confirm` only (the user's words, secret and all:
    // flagged, not dropped; `stats` itself is out-filtered on its way back), its
    // state passed back.
    assert_eq!(
        updates[1],
        json!({"taskId": "1", "requestState": "rs-1", "inputResponses": {"confirm": {"action": "accept", "content": {"ok": true, "note": "[REDACTED:github-pat]"}}}}),
        "{seen}"
    );
}

#[test]
fn a_task_the_request_did_not_allow_is_refused() {
    assert_task_refused(&["--always-task"]);
}

#[test]
fn a_task_spelled_with_escapes_is_still_a_task_the_request_did_not_allow() {
    // `"resultType":"t\u0061sk"` is a task to the client's JSON parser: it must meet
    // the same refusal as the plain spelling, not pass with the server's own task id.
    assert_task_refused(&["--always-task", "--escaped-task"]);
}

/// A modern call that does not declare the extension, to `ext_task_server` started
/// with `args` (which make it answer a task anyway), is refused with -32603 and no
/// task id of the server's reaches the client.
fn assert_task_refused(args: &[&str]) {
    let env = Env::new();
    env.user_config(&example_table("ext", "ext_task_server", args));
    let mut serve = env.serve();
    let answer = serve.request(
        json!(1),
        "tools/call",
        json!({"name": "ext__job", "arguments": {"text": "now"}, "_meta": modern_meta(false)}),
    );
    assert_eq!(answer["error"]["code"], -32603, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("did not allow")),
        "{answer}"
    );
    assert!(!answer.to_string().contains("\"taskId\""), "{answer}");
    serve.close();
}
