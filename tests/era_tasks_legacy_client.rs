//! A legacy client's 2025-11-25 task on a modern server, through the real binary
//! (issue 15 item 7, docs/dual-era.md §2.5 cell LC→MS): mcp-warden declares the
//! `io.modelcontextprotocol/tasks` extension upstream, answers the 2025 shapes under
//! ids of ours, and polls the server for `tasks/result`. The server is
//! `examples/ext_task_server.rs` (raw JSON lines: no SDK ships the extension), also
//! in its hostile modes.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Env, Serve, example_table};

/// A token the default out-filter redacts.
const SECRET: &str = "ghp_R8x2Lq9ZtW4mKp7Vn3Jc6Hs1Fd5Gb0YeUa2T";
/// The start of the fake AWS key the server's result carries.
const AWS: &str = "AKIA";

/// `initialize` at 2025-11-25 offering elicitation, and `initialized`.
fn initialize(serve: &mut Serve) -> Value {
    let answer = serve.request(
        json!(0),
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}}, "clientInfo": {"name": "legacy", "version": "1"}}),
    );
    serve.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    answer
}

/// A task-augmented call of `tool`; gives our task id.
fn start_task(serve: &mut Serve, id: i64, tool: &str, text: &str) -> String {
    let created = serve.request(
        json!(id),
        "tools/call",
        json!({"name": tool, "arguments": {"text": text}, "task": {"ttl": 60000}}),
    );
    let task = &created["result"]["task"];
    let ours = task["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("no 2025 task in {created}"));
    assert!(ours.starts_with("mwt-") && ours.len() == 26, "{created}");
    assert_eq!(task["status"], "working", "{created}");
    // The 2025 shape: ttl in ms (the server's `ttlMs`), the modern members gone.
    assert!(
        task["ttl"].as_u64().is_some_and(|ms| ms % 1000 == 0),
        "{created}"
    );
    for modern in ["ttlMs", "pollIntervalMs", "requestState"] {
        assert!(task.get(modern).is_none(), "{modern} in {created}");
    }
    assert!(created["result"].get("resultType").is_none(), "{created}");
    ours.to_owned()
}

/// What the server was asked (its `stats` tool).
fn stats(serve: &mut Serve, id: i64, tool: &str) -> Value {
    let answer = serve.request(
        json!(id),
        "tools/call",
        json!({"name": tool, "arguments": {}}),
    );
    serde_json::from_str(answer["result"]["content"][0]["text"].as_str().unwrap()).unwrap()
}

/// The lines the client gets until the answer to `id`, that answer last.
fn until_answer(
    serve: &mut Serve,
    id: &Value,
    mut on_request: impl FnMut(&mut Serve, &Value),
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "no answer to {id}: {seen:?}");
        let Some(line) = serve.recv_line_within(Duration::from_secs(20)) else {
            panic!("no answer to {id}: {seen:?}");
        };
        let msg: Value = serde_json::from_str(&line).unwrap();
        if msg.get("method").is_some() && msg.get("id").is_some() {
            on_request(serve, &msg);
        }
        let done = msg.get("method").is_none() && msg["id"] == *id;
        seen.push(msg);
        if done {
            return seen;
        }
    }
}

/// The server's own task id and a made-up one of ours route nowhere.
fn forged_ids_route_nowhere(serve: &mut Serve) {
    for (id, forged) in [(4, "1"), (5, "mwt-AAAAAAAAAAAAAAAAAAAAAA")] {
        let got = serve.request(json!(id), "tasks/get", json!({"taskId": forged}));
        assert_eq!(got["error"]["code"], -32602, "{got}");
    }
}

/// A `tasks/result` answer of `ext__job` for our task `ours`: its text starts with
/// `start`, the fake key redacted, and `related-task` names our id.
fn assert_the_jobs_answer(answer: &Value, ours: &str, start: &str) {
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(
        text.starts_with(start) && text.contains("[REDACTED:") && !text.contains(AWS),
        "{answer}"
    );
    assert_eq!(
        answer["result"]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"],
        json!(ours),
        "{answer}"
    );
}

/// The audit records of `ext__job` that redacted something.
fn redactions(env: &Env) -> usize {
    env.audit_text()
        .lines()
        .filter(|l| l.contains("ext__job") && l.contains(r#""decision":"redact""#))
        .count()
}

/// The task's result is audited as the call's answer once, with its redaction, and
/// the secret in the user's answer flagged.
fn audited_once(env: &Env) {
    let audit = env.audit_text();
    assert_eq!(redactions(env), 1, "audited once:\n{audit}");
    assert!(
        audit
            .lines()
            .any(|l| l.contains(r#""decision":"flag""#) && l.contains("secret")),
        "the secret in the answer is flagged:\n{audit}"
    );
}

#[test]
fn a_legacy_clients_task_on_a_modern_server_is_polled_and_its_result_filtered_once() {
    let env = Env::new();
    env.user_config(&example_table(
        "ext",
        "ext_task_server",
        &["--working", "2"],
    ));
    let mut serve = env.serve();
    let init = initialize(&mut serve);
    // The modern server's extension is offered as 2025 tasks.
    assert_eq!(
        init["result"]["capabilities"]["tasks"]["requests"]["tools"]["call"],
        json!({}),
        "{init}"
    );
    // A tool only a task can run is listed: the legacy client can make a task of it.
    let names = serve.tool_names(1);
    assert!(names.contains(&"ext__only_task".to_owned()), "{names:?}");

    // Without `params.task` the call runs synchronously (no extension declared).
    let plain = serve.call_tool(2, "ext__job", json!({"text": "now"}));
    assert_eq!(
        plain["result"]["content"][0]["text"], "sync: now",
        "{plain}"
    );

    let ours = start_task(&mut serve, 3, "ext__job", "later");
    forged_ids_route_nowhere(&mut serve);
    // The legacy client's task is not reachable by the extension's methods.
    let modern = serve.request(
        json!(50),
        "tasks/get",
        json!({"taskId": ours, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}},
        }}),
    );
    assert_eq!(modern["error"]["code"], -32602, "{modern}");
    let got = serve.request(json!(6), "tasks/get", json!({"taskId": ours}));
    assert_eq!(got["result"]["taskId"], json!(ours), "{got}");
    assert_eq!(got["result"]["status"], "working", "{got}");
    assert!(got["result"].get("result").is_none(), "{got}");
    let list = serve.request(json!(7), "tasks/list", json!({}));
    assert_eq!(list["result"]["tasks"][0]["taskId"], json!(ours), "{list}");

    // `tasks/result`: mcp-warden polls (the server says poll at once: it waits at
    // least 250 ms), asks the client the server's question, answers roots itself.
    let asked_at = Instant::now();
    serve.send(
        &json!({"jsonrpc": "2.0", "id": 8, "method": "tasks/result", "params": {"taskId": ours}}),
    );
    let mut questions = Vec::new();
    let seen = until_answer(&mut serve, &json!(8), |serve, request| {
        questions.push(request.clone());
        serve.send(&json!({"jsonrpc": "2.0", "id": request["id"], "result": {"action": "accept", "content": {"ok": true, "note": SECRET}}}));
    });
    let took = asked_at.elapsed();
    assert!(
        took >= Duration::from_millis(450),
        "two waits of 250 ms at least: {took:?}"
    );
    assert_eq!(questions.len(), 1, "{questions:?}");
    assert_eq!(
        questions[0]["method"], "elicitation/create",
        "{questions:?}"
    );
    assert_eq!(
        questions[0]["params"]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"],
        json!(ours),
        "{questions:?}"
    );
    let statuses: Vec<&Value> = seen
        .iter()
        .filter(|m| m["method"] == "notifications/tasks/status")
        .map(|m| &m["params"])
        .collect();
    assert!(
        statuses.iter().all(|s| s["taskId"] == json!(ours)),
        "{statuses:?}"
    );
    let said: Vec<&str> = statuses
        .iter()
        .filter_map(|s| s["status"].as_str())
        .collect();
    assert_eq!(said, ["input_required", "completed"], "{seen:?}");

    let answer = seen.last().unwrap();
    assert_the_jobs_answer(answer, &ours, "done: later");
    // Again: the same bytes, not asked upstream again.
    let again = serve.request(json!(9), "tasks/result", json!({"taskId": ours}));
    assert_eq!(again["result"], answer["result"], "{again}");
    let got = serve.request(json!(10), "tasks/get", json!({"taskId": ours}));
    assert_eq!(got["result"]["status"], "completed", "{got}");
    assert!(got["result"].get("result").is_none(), "{got}");

    server_got_answers_to_what_was_asked(&mut serve);

    // A terminal task cannot be cancelled (2025-11-25: -32602).
    let cancelled = serve.request(json!(12), "tasks/cancel", json!({"taskId": ours}));
    assert_eq!(cancelled["error"]["code"], -32602, "{cancelled}");
    let (status, _) = serve.close();
    assert!(status.success());

    audited_once(&env);
}

/// What `ext_task_server` got (its `stats` tool): the client's get, two polls
/// (`working`, `input_required`), the completed one and the client's last get; our
/// `tasks/update` for roots, then the client's answer, each with the server's state.
fn server_got_answers_to_what_was_asked(serve: &mut Serve) {
    let seen = stats(serve, 11, "ext__stats");
    assert_eq!(seen["gets"], 5, "{seen}");
    let updates = seen["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 2, "{seen}");
    assert_eq!(updates[0]["taskId"], "1", "{seen}");
    assert_eq!(updates[0]["requestState"], "rs-1", "{seen}");
    let keys: Vec<&String> = updates[0]["inputResponses"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(keys, ["where"], "ours: roots {seen}");
    assert_eq!(
        updates[1],
        json!({"taskId": "1", "requestState": "rs-1", "inputResponses": {"confirm": {"action": "accept", "content": {"ok": true, "note": "[REDACTED:github-pat]"}}}}),
        "{seen}"
    );
}

#[test]
fn a_task_asking_for_sampling_is_stopped_and_cancelled_at_the_server() {
    let env = Env::new();
    env.user_config(&example_table(
        "ext",
        "ext_task_server",
        &["--ask-sampling"],
    ));
    let mut serve = env.serve();
    serve.request(
        json!(0),
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}, "sampling": {}}, "clientInfo": {"name": "legacy", "version": "1"}}),
    );
    serve.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    let ours = start_task(&mut serve, 1, "ext__job", "x");
    serve.send(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tasks/result", "params": {"taskId": ours}}),
    );
    let mut questions = Vec::new();
    let seen = until_answer(&mut serve, &json!(2), |_, request| {
        questions.push(request.clone());
    });
    assert!(
        questions.is_empty(),
        "nothing asked of the client: {questions:?}"
    );
    let answer = seen.last().unwrap();
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(answer.to_string().contains("sampling"), "{answer}");
    let later = serve.request(json!(3), "tasks/result", json!({"taskId": ours}));
    assert!(later.get("error").is_some(), "{later}");
    let seen = stats(&mut serve, 4, "ext__stats");
    assert_eq!(seen["cancelled"], true, "{seen}");
    assert_eq!(seen["updates"], json!([]), "{seen}");
    serve.close();
    let audit = env.audit_text();
    assert!(
        audit.lines().any(|l| l.contains(r#""decision":"deny""#)
            && l.contains("sampling")
            && l.contains("ext__job")),
        "{audit}"
    );
}

#[test]
fn a_servers_pushed_status_and_foreign_ids_never_reach_the_legacy_client() {
    let env = Env::new();
    env.user_config(&example_table(
        "ext",
        "ext_task_server",
        &["--push-status", "--foreign-ids"],
    ));
    let mut serve = env.serve();
    initialize(&mut serve);
    let ours = start_task(&mut serve, 1, "ext__job", "x");
    // The pushed `completed` status with the key in its result: dropped (its modern
    // shape would hand the result over past the filters and the audit).
    serve.send(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"taskId": ours}}),
    );
    let before = until_answer(&mut serve, &json!(2), |_, _| {});
    let pushed = |m: &Value| {
        m["method"] == "notifications/tasks/status"
            && (m["params"].get("result").is_some() || m["params"].get("ttlMs").is_some())
    };
    assert!(!before.iter().any(pushed), "{before:?}");
    let got = before.last().unwrap();
    assert_eq!(
        got["result"]["taskId"],
        json!(ours),
        "not the server's \"2\": {got}"
    );
    serve.send(
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tasks/result", "params": {"taskId": ours}}),
    );
    let seen = until_answer(&mut serve, &json!(3), |serve, request| {
        serve.send(&json!({"jsonrpc": "2.0", "id": request["id"], "result": {"action": "accept", "content": {"ok": true}}}));
    });
    let all = seen
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!all.contains(AWS), "{all}");
    assert!(
        !all.contains(r#""taskId":"2""#) && !all.contains(r#""taskId":"1""#),
        "{all}"
    );
    let answer = seen.last().unwrap();
    assert_eq!(
        answer["result"]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"],
        json!(ours),
        "{answer}"
    );
    serve.close();
}

#[test]
fn two_modern_servers_naming_their_tasks_alike_never_meet() {
    let env = Env::new();
    env.user_config(&format!(
        "{}\n{}",
        example_table("a", "ext_task_server", &[]),
        example_table("b", "ext_task_server", &[])
    ));
    let mut serve = env.serve();
    initialize(&mut serve);
    let on_a = start_task(&mut serve, 1, "a__job", "a");
    let on_b = start_task(&mut serve, 2, "b__job", "b");
    assert_ne!(on_a, on_b);
    // A `tasks/result` the client gives up on stops waiting; the task goes on.
    serve.send(
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tasks/result", "params": {"taskId": on_b}}),
    );
    // Its question comes first (the first poll), then the client cancels.
    serve.wait_for("the question", |m| m["method"] == "elicitation/create");
    serve.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}}),
    );
    let cancelled = serve.request(json!(4), "tasks/cancel", json!({"taskId": on_a}));
    assert_eq!(cancelled["result"]["status"], "cancelled", "{cancelled}");
    let a = stats(&mut serve, 5, "a__stats");
    let b = stats(&mut serve, 6, "b__stats");
    assert_eq!(a["cancelled"], true, "{a}");
    assert_eq!(b["cancelled"], false, "{b}");
    assert_eq!(a["gets"], 0, "{a}");
    assert_eq!(b["gets"], 1, "{b}");
    // Cancelled on a, so its result is an error; b's is still b's.
    let result = serve.request(json!(7), "tasks/result", json!({"taskId": on_a}));
    assert!(result.get("error").is_some(), "{result}");
    serve.close();
}

/// The real SDK in the legacy client's role: Python `mcp` 1.30.0 (2025-11-25 only, its
/// experimental task API) makes a task of a modern server's tool through mcp-warden,
/// polls it, answers the question asked during `tasks/result`, and gets the result.
#[test]
fn the_python_sdks_legacy_task_client_runs_a_task_on_a_modern_server() {
    let Some(prefix) = support::prefix::test_prefix() else {
        return;
    };
    let python = prefix.join("venv-mcp1").join("bin").join("python");
    // Installed with the others by `install.sh --test-deps`: never a silent skip.
    assert!(python.exists(), "{} is missing", python.display());
    let env = Env::new();
    env.user_config(&example_table(
        "ext",
        "ext_task_server",
        &["--working", "1"],
    ));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("clients")
        .join("legacy_task_client.py");
    let mut client = std::process::Command::new(&python);
    client
        .arg(&script)
        .args(["ext__job", "from the sdk", "--"])
        .arg(support::bin())
        .arg("serve");
    env.apply(&mut client);
    let output = client.stdin(std::process::Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the SDK client failed ({}):\nstdout: {stdout}\nstderr: {}\nlog:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        env.log()
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["protocol_version"], "2025-11-25", "{doc}");
    assert!(
        doc["capabilities"]["tasks"]["requests"]["tools"]["call"].is_object(),
        "{doc}"
    );
    let ours = doc["created"]["task"]["taskId"].as_str().unwrap();
    assert!(ours.starts_with("mwt-"), "{doc}");
    assert_eq!(doc["polled"][0], "working", "{doc}");
    assert_eq!(doc["elicitations"][0]["message"], "Run the job?", "{doc}");
    let text = doc["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("done: from the sdk")
            && text.contains("[REDACTED:")
            && !text.contains(AWS),
        "{doc}"
    );
    assert_eq!(doc["tasks"]["tasks"][0]["taskId"], json!(ours), "{doc}");
    assert_eq!(doc["tasks"]["tasks"][0]["status"], "completed", "{doc}");
}

#[test]
fn a_call_the_server_answers_at_once_is_still_a_task_to_the_legacy_client() {
    let env = Env::new();
    env.user_config(&example_table("ext", "ext_task_server", &["--never-task"]));
    let mut serve = env.serve();
    initialize(&mut serve);
    let created = serve.request(
        json!(1),
        "tools/call",
        json!({"name": "ext__job", "arguments": {"text": "quick"}, "task": {"ttl": 60000}}),
    );
    let task = &created["result"]["task"];
    let ours = task["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"));
    assert!(ours.starts_with("mwt-"), "{created}");
    assert_eq!(task["status"], "completed", "{created}");
    // The key is not in the creation: the answer waits for `tasks/result`.
    assert!(!created.to_string().contains(AWS), "{created}");
    let got = serve.request(json!(2), "tasks/get", json!({"taskId": ours}));
    assert_eq!(got["result"]["status"], "completed", "{got}");
    let result = serve.request(json!(3), "tasks/result", json!({"taskId": ours}));
    assert_the_jobs_answer(&result, ours, "done: quick");
    let again = serve.request(json!(4), "tasks/result", json!({"taskId": ours}));
    assert_eq!(again["result"], result["result"], "{again}");
    let cancel = serve.request(json!(5), "tasks/cancel", json!({"taskId": ours}));
    assert_eq!(cancel["error"]["code"], -32602, "{cancel}");
    serve.close();
    assert_eq!(redactions(&env), 1, "audited once:\n{}", env.audit_text());
}

/// How many `tasks/get` the server `tool` belongs to has had.
fn gets(serve: &mut Serve, id: i64, tool: &str) -> u64 {
    stats(serve, id, tool)["gets"].as_u64().unwrap()
}

#[test]
fn polling_ends_when_nobody_waits_and_when_the_ttl_passes() {
    let env = Env::new();
    env.user_config(&format!(
        "{}\n{}",
        example_table("a", "ext_task_server", &["--working", "1000000"]),
        example_table(
            "b",
            "ext_task_server",
            &["--working", "1000000", "--ttl", "1"]
        )
    ));
    let mut serve = env.serve();
    initialize(&mut serve);

    // Nobody waits any more: the polls stop.
    let on_a = start_task(&mut serve, 1, "a__job", "a");
    serve.send(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tasks/result", "params": {"taskId": on_a}}),
    );
    std::thread::sleep(Duration::from_millis(700));
    serve.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}}),
    );
    let polled = gets(&mut serve, 3, "a__stats");
    // At least 250 ms apart: no busy loop.
    assert!((1..=4).contains(&polled), "{polled} polls in 700 ms");
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        gets(&mut serve, 4, "a__stats") <= polled + 1,
        "polling went on"
    );

    // The ttl passed: the wait ends with an error, and so do later ones.
    let on_b = start_task(&mut serve, 5, "b__job", "b");
    let started = Instant::now();
    let expired = serve.request(json!(6), "tasks/result", json!({"taskId": on_b}));
    assert!(started.elapsed() >= Duration::from_millis(900), "{expired}");
    assert!(
        expired["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired")),
        "{expired}"
    );
    let later = serve.request(json!(7), "tasks/result", json!({"taskId": on_b}));
    assert!(later.get("error").is_some(), "{later}");
    let polled = gets(&mut serve, 8, "b__stats");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(gets(&mut serve, 9, "b__stats"), polled, "polling went on");
    serve.close();
}

#[test]
fn a_modern_servers_tools_are_listed_as_optional_tasks_to_a_legacy_client() {
    // The 2026 `Tool` has no `execution` (the server decides per call whether to make
    // a task), and a 2025 client reads an absent `taskSupport` as "forbidden": without
    // "optional" a strict legacy client would never ask the bridge for a task.
    let env = Env::new();
    env.user_config(&example_table("ext", "ext_task_server", &[]));
    let mut serve = env.serve();
    initialize(&mut serve);
    let listed = serve.request(json!(1), "tools/list", json!({}));
    let tools = listed["result"]["tools"].as_array().unwrap();
    let support = |name: &str| {
        tools
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["execution"]["taskSupport"].clone())
            .unwrap_or_default()
    };
    assert_eq!(support("ext__stats"), "optional", "{listed}");
    // What a definition says already stays.
    assert_eq!(support("ext__job"), "optional", "{listed}");
    assert_eq!(support("ext__only_task"), "required", "{listed}");
    let stats = tools.iter().find(|t| t["name"] == "ext__stats").unwrap();
    assert_eq!(stats["inputSchema"], json!({"type": "object"}), "{listed}");
}
