//! A modern client's task on a legacy server through the real binary (issue 15 item 7,
//! docs/dual-era.md §2.5 cell MC→LS): the client speaks the 2026
//! `io.modelcontextprotocol/tasks` extension (raw JSON lines: no SDK ships it), the
//! server 2025-11-25 `tasks/*` (`examples/task_server.rs`, and the real
//! `@modelcontextprotocol/server-everything` 2026.8.31, whose
//! `simulate-research-query` runs only as a task).

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::prefix::{node_bin, test_prefix};
use support::{Env, Serve, example_table, path_str, q};

/// A token the default out-filter redacts.
const SECRET: &str = "ghp_R8x2Lq9ZtW4mKp7Vn3Jc6Hs1Fd5Gb0YeUa2T";

/// The `_meta` of a modern request; `tasks`: it declares the tasks extension.
fn modern_meta(tasks: bool) -> Value {
    let mut caps = json!({"elicitation": {}, "sampling": {}});
    if tasks {
        caps["extensions"] = json!({"io.modelcontextprotocol/tasks": {}});
    }
    support::modern_meta_with(caps)
}

/// `params` with `_meta` (the extension declared).
fn modern(mut params: Value) -> Value {
    params["_meta"] = modern_meta(true);
    params
}

fn tool_names(listed: &Value) -> Vec<String> {
    listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Calls `tool` as a modern client declaring the extension; gives our task id.
fn create(serve: &mut Serve, id: i64, tool: &str, arguments: &Value) -> String {
    let created = serve.request(
        json!(id),
        "tools/call",
        modern(json!({"name": tool, "arguments": arguments})),
    );
    let result = &created["result"];
    assert_eq!(result["resultType"], "task", "{created}");
    assert!(result.get("task").is_none(), "the 2026 shape: {created}");
    let ours = result["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("no task in {created}"));
    assert!(ours.starts_with("mwt-") && ours.len() == 26, "{created}");
    ours.to_owned()
}

/// Polls `tasks/get` (ids from `first` on) until `done` accepts the task; panics
/// after `wait`.
fn poll_until(
    serve: &mut Serve,
    first: i64,
    ours: &str,
    wait: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + wait;
    for id in first.. {
        let got = serve.request(json!(id), "tasks/get", modern(json!({"taskId": ours})));
        let task = &got["result"];
        assert_eq!(task["taskId"], json!(ours), "{got}");
        if done(task) {
            return got;
        }
        assert!(Instant::now() < deadline, "still {got}");
        std::thread::sleep(Duration::from_millis(50));
    }
    unreachable!()
}

/// What `task_server` `t` got back to its own requests (its `seen` tool).
fn seen_by(serve: &mut Serve, id: i64) -> Value {
    let seen = serve.request(
        json!(id),
        "tools/call",
        json!({"name": "t__seen", "arguments": {}, "_meta": modern_meta(false)}),
    );
    serde_json::from_str(seen["result"]["content"][0]["text"].as_str().unwrap()).unwrap()
}

/// No task status of a server's reached the modern client: it never listened for
/// any (seps/2663: `notifications/tasks` only on a listen naming `taskIds`).
fn no_task_notifications(serve: &Serve) {
    for m in &serve.seen {
        let method = m["method"].as_str().unwrap_or_default();
        assert!(!method.starts_with("notifications/tasks"), "{m}");
    }
}

#[test]
fn a_legacy_servers_task_is_the_extension_to_a_modern_client_and_its_questions_are_judged() {
    let env = Env::new();
    env.user_config(&example_table(
        "t",
        "task_server",
        &["--name", "t", "--sample"],
    ));
    let mut serve = env.serve();

    // Advertised, since a ready legacy server offers tasks for `tools/call`.
    let discover = serve.request(json!(1), "server/discover", modern(json!({})));
    let caps = &discover["result"]["capabilities"];
    assert_eq!(
        caps["extensions"],
        json!({"io.modelcontextprotocol/tasks": {}}),
        "{discover}"
    );
    assert!(caps.get("tasks").is_none(), "{discover}");
    // The task-only tool is listed to a client that declares the extension only.
    let with = tool_names(&serve.request(json!(2), "tools/list", modern(json!({}))));
    assert!(with.contains(&"t__ask".to_owned()), "{with:?}");
    let without = serve.request(json!(3), "tools/list", json!({"_meta": modern_meta(false)}));
    assert!(!tool_names(&without).contains(&"t__ask".to_owned()));

    let ours = create(&mut serve, 4, "t__ask", &json!({"text": "hi"}));

    // The server's question comes during our `tasks/result`: shown as inputRequests
    // under a key of ours; its sampling request was refused by default.
    let waiting = poll_until(&mut serve, 10, &ours, Duration::from_secs(10), |t| {
        t["status"] == "input_required"
    });
    let task = &waiting["result"];
    assert_eq!(task["resultType"], "complete", "{waiting}");
    assert_eq!(task["ttlMs"], 60000, "{waiting}");
    assert_eq!(task["pollIntervalMs"], 50, "{waiting}");
    let requests = task["inputRequests"].as_object().unwrap();
    assert_eq!(
        requests.len(),
        1,
        "the sampling request is not the client's: {waiting}"
    );
    let (key, entry) = requests.iter().next().unwrap();
    assert_eq!(entry["method"], "elicitation/create", "{waiting}");
    assert_eq!(entry["params"]["message"], "Which colour, says t?");
    assert_eq!(
        entry["params"]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"],
        json!(ours),
        "the server's own task id never shows: {waiting}"
    );
    // The same question on the next poll (not answered yet), under the same key.
    let again = serve.request(json!(30), "tasks/get", modern(json!({"taskId": ours})));
    assert_eq!(again["result"]["inputRequests"], task["inputRequests"]);

    // Only the key asked is answered, and only once.
    let update = serve.request(
        json!(31),
        "tasks/update",
        modern(json!({"taskId": ours, "inputResponses": {
            key.as_str(): {"action": "accept", "content": {"colour": "blue"}},
            "made-up": {"action": "accept"},
        }})),
    );
    assert!(update.get("result").is_some(), "{update}");
    let twice = serve.request(
        json!(32),
        "tasks/update",
        modern(json!({"taskId": ours, "inputResponses": {key.as_str(): {"action": "decline"}}})),
    );
    assert_eq!(twice["error"]["code"], -32602, "{twice}");

    // Completed: the payload inline, out-filtered as the call's answer.
    let done = poll_until(&mut serve, 40, &ours, Duration::from_secs(10), |t| {
        t["status"] == "completed"
    });
    let text = done["result"]["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{done}"));
    assert!(text.starts_with("t: ask: hi, told: "), "{done}");
    assert!(text.contains("blue"), "{done}");
    assert!(
        !text.contains("AKIA") && text.contains("[REDACTED:"),
        "{done}"
    );
    let replay = serve.request(json!(60), "tasks/get", modern(json!({"taskId": ours})));
    assert_eq!(replay["result"], done["result"], "later polls replay it");

    // What the server got back: the sampling refused, the one answer given.
    let seen = seen_by(&mut serve, 61);
    assert_eq!(
        seen["e1"],
        json!({"action": "accept", "content": {"colour": "blue"}}),
        "{seen}"
    );
    assert!(seen["s1"]["code"].is_i64(), "sampling refused: {seen}");

    // The 2025 methods are not the modern client's.
    let result = serve.request(json!(62), "tasks/result", modern(json!({"taskId": ours})));
    assert_eq!(result["error"]["code"], -32601, "{result}");
    no_task_notifications(&serve);
    let (status, _) = serve.close();
    assert!(status.success());

    // Audited as the call's answer once, with the redaction; the sampling refusal.
    let audit = env.audit_text();
    let redacted = audit
        .lines()
        .filter(|l| l.contains("t__ask") && l.contains(r#""decision":"redact""#))
        .count();
    assert_eq!(redacted, 1, "{audit}");
    assert!(
        audit
            .lines()
            .any(|l| l.contains("sampling/createMessage") && l.contains(r#""decision":"deny""#)),
        "{audit}"
    );
}

#[test]
fn a_task_of_an_optional_tool_only_for_a_client_declaring_the_extension() {
    let env = Env::new();
    env.user_config(&example_table("t", "task_server", &["--name", "t"]));
    let mut serve = env.serve();
    // Not declared: synchronous, as before.
    let plain = serve.request(
        json!(1),
        "tools/call",
        json!({"name": "t__work", "arguments": {"text": "now"}, "_meta": modern_meta(false)}),
    );
    assert_eq!(plain["result"]["content"][0]["text"], "t: now", "{plain}");
    assert!(plain["result"].get("task").is_none(), "{plain}");

    // A task the call did not ask mcp-warden for (a 2025 `task` param from a client
    // that does not declare the extension): refused, its id never shown.
    let unasked = serve.request(
        json!(30),
        "tools/call",
        json!({"name": "t__work", "arguments": {"text": "x"}, "task": {"ttl": 1000}, "_meta": modern_meta(false)}),
    );
    assert_eq!(unasked["error"]["code"], -32603, "{unasked}");
    assert!(!unasked.to_string().contains("taskId"), "{unasked}");

    // Declared: a task, already completed at the server; its statuses (one about a
    // task "2" it never made) are not forwarded.
    let ours = create(&mut serve, 2, "t__work", &json!({"text": "later"}));
    let done = poll_until(&mut serve, 3, &ours, Duration::from_secs(10), |t| {
        t["status"] == "completed"
    });
    assert_eq!(
        done["result"]["result"]["content"][0]["text"], "t: later",
        "{done}"
    );
    // Cancelled after the end: the server's word, as an empty acknowledgement.
    let cancelled = serve.request(json!(20), "tasks/cancel", modern(json!({"taskId": ours})));
    assert!(cancelled["result"].get("taskId").is_none(), "{cancelled}");
    assert!(cancelled.get("result").is_some(), "{cancelled}");
    // The server's own id, and a made-up one, route nowhere.
    for (id, forged) in [(21, "1"), (22, "mwt-AAAAAAAAAAAAAAAAAAAAAA")] {
        let got = serve.request(json!(id), "tasks/get", modern(json!({"taskId": forged})));
        assert_eq!(got["error"]["code"], -32602, "{got}");
    }
    no_task_notifications(&serve);
    serve.close();
}

#[test]
fn a_task_that_ended_before_its_payload_came_is_answered_on_the_same_poll() {
    let env = Env::new();
    env.user_config(&example_table(
        "t",
        "task_server",
        &["--name", "t", "--late-result"],
    ));
    let mut serve = env.serve();
    // mcp-warden's own `tasks/result` (asked at creation) is held by the server.
    let ours = create(&mut serve, 1, "t__work", &json!({"text": "late"}));
    // The server says `completed`: the payload is asked on this poll and inlined.
    let done = serve.request(json!(2), "tasks/get", modern(json!({"taskId": ours})));
    assert_eq!(done["result"]["taskId"], json!(ours), "{done}");
    assert_eq!(done["result"]["status"], "completed", "{done}");
    assert_eq!(
        done["result"]["result"]["content"][0]["text"], "t: late",
        "{done}"
    );
    let replay = serve.request(json!(3), "tasks/get", modern(json!({"taskId": ours})));
    assert_eq!(replay["result"], done["result"]);
    let (status, _) = serve.close();
    assert!(status.success());
    assert_created_then_answered_once(&env, "t__work");
}

#[test]
fn two_polls_in_flight_when_a_task_ends_get_one_answer_audited_once() {
    let env = Env::new();
    env.user_config(&example_table("t", "task_server", &["--name", "t"]));
    let mut serve = env.serve();
    // Completed at once: mcp-warden fetches its payload as it is created.
    let ours = create(&mut serve, 1, "t__work", &json!({"text": "twice"}));
    for id in [2, 3] {
        serve.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tasks/get", "params": modern(json!({"taskId": ours}))}));
    }
    let first = serve.answer_to(&json!(2));
    let second = serve.answer_to(&json!(3));
    assert_eq!(first["result"]["status"], "completed", "{first}");
    assert_eq!(first["result"], second["result"]);
    let (status, _) = serve.close();
    assert!(status.success());
    assert_created_then_answered_once(&env, "t__work");
}

#[test]
fn cancelling_a_task_answers_its_open_questions_at_the_server() {
    let env = Env::new();
    env.user_config(&example_table("t", "task_server", &["--name", "t"]));
    let mut serve = env.serve();
    let ours = create(&mut serve, 1, "t__ask", &json!({"text": "hi"}));
    poll_until(&mut serve, 2, &ours, Duration::from_secs(10), |t| {
        t["status"] == "input_required"
    });
    let cancelled = serve.request(json!(50), "tasks/cancel", modern(json!({"taskId": ours})));
    assert_eq!(cancelled["result"]["resultType"], "complete", "{cancelled}");
    assert!(cancelled["result"].get("taskId").is_none(), "{cancelled}");
    // The server's question was answered for it: -32603, never by a made-up answer.
    let seen = seen_by(&mut serve, 51);
    assert_eq!(seen["e1"]["code"], -32603, "{seen}");
    // Nothing is left to answer.
    let update = serve.request(
        json!(52),
        "tasks/update",
        modern(json!({"taskId": ours, "inputResponses": {"mw-1": {"action": "accept"}}})),
    );
    assert_eq!(update["error"]["code"], -32602, "{update}");
    serve.close();
}

#[test]
fn a_question_tagged_with_a_task_not_ours_reaches_no_client() {
    let env = Env::new();
    env.user_config(&example_table(
        "t",
        "task_server",
        &["--name", "t", "--foreign-tag"],
    ));
    let mut serve = env.serve();
    let ours = create(&mut serve, 1, "t__ask", &json!({"text": "hi"}));
    // Asked while our `tasks/result` is out, tagged `"zz"`: refused to the server.
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        let got = serve.request(json!(2), "tasks/get", modern(json!({"taskId": ours})));
        assert_ne!(got["result"]["status"], "input_required", "{got}");
        let seen = seen_by(&mut serve, 3);
        if seen.get("e1").is_some() {
            break seen;
        }
        assert!(Instant::now() < deadline, "{seen}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(seen["e1"]["code"].is_i64(), "refused: {seen}");
    let cancelled = serve.request(json!(4), "tasks/cancel", modern(json!({"taskId": ours})));
    assert!(cancelled.get("result").is_some(), "{cancelled}");
    serve.close();
}

#[test]
fn two_legacy_servers_tasks_and_questions_never_cross() {
    let env = Env::new();
    env.user_config(&format!(
        "{}\n{}",
        example_table("a", "task_server", &["--name", "a"]),
        example_table("b", "task_server", &["--name", "b"]),
    ));
    let mut serve = env.serve();
    // Both servers call their task "q".
    let tasks = [
        (
            "a",
            create(&mut serve, 1, "a__ask", &json!({"text": "for a"})),
            "red",
        ),
        (
            "b",
            create(&mut serve, 2, "b__ask", &json!({"text": "for b"})),
            "green",
        ),
    ];
    assert_ne!(tasks[0].1, tasks[1].1);
    for (i, (server, ours, colour)) in tasks.iter().enumerate() {
        let first = 10 + 100 * i64::try_from(i).unwrap();
        let waiting = poll_until(&mut serve, first, ours, Duration::from_secs(10), |t| {
            t["status"] == "input_required"
        });
        let requests = waiting["result"]["inputRequests"].as_object().unwrap();
        assert_eq!(requests.len(), 1, "{waiting}");
        let (key, entry) = requests.iter().next().unwrap();
        assert_eq!(
            entry["params"]["message"],
            format!("Which colour, says {server}?")
        );
        let update = serve.request(
            json!(first + 50),
            "tasks/update",
            modern(json!({"taskId": ours, "inputResponses": {
                key.as_str(): {"action": "accept", "content": {"colour": colour}}}})),
        );
        assert!(update.get("result").is_some(), "{update}");
    }
    for (i, (server, ours, colour)) in tasks.iter().enumerate() {
        let first = 300 + 100 * i64::try_from(i).unwrap();
        let done = poll_until(&mut serve, first, ours, Duration::from_secs(10), |t| {
            t["status"] == "completed"
        });
        let text = done["result"]["result"]["content"][0]["text"]
            .as_str()
            .unwrap();
        assert!(
            text.starts_with(&format!("{server}: ask: for {server}, told: ")),
            "{text}"
        );
        assert!(text.contains(colour), "{text}");
    }
    serve.close();
}

#[test]
fn a_modern_client_makes_a_task_of_server_everythings_task_only_tool() {
    let env = Env::new();
    let Some(prefix) = test_prefix() else {
        return;
    };
    env.user_config(&format!(
        "[policy]\nscan_arguments = false\n\n[servers.everything]\ncommand = {}\n",
        q(path_str(&node_bin(&prefix, "mcp-server-everything"))),
    ));
    let mut serve = env.serve();
    let listed = serve.request(json!(1), "tools/list", modern(json!({})));
    let research = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "everything__simulate-research-query")
        .unwrap_or_else(|| panic!("not listed to a client declaring the extension: {listed}"));
    assert_eq!(research["execution"]["taskSupport"], "required");
    let ours = create(
        &mut serve,
        2,
        "everything__simulate-research-query",
        &json!({"topic": SECRET}),
    );
    let done = poll_until(&mut serve, 3, &ours, Duration::from_secs(60), |t| {
        t["status"] == "completed" || t["status"] == "failed"
    });
    assert_eq!(done["result"]["status"], "completed", "{done}");
    let text = done["result"]["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{done}"));
    assert!(text.contains("# Research Report"), "{done}");
    assert!(
        !text.contains(SECRET) && text.contains("[REDACTED:"),
        "{text}"
    );
    no_task_notifications(&serve);
    let (status, _) = serve.close();
    assert!(status.success());
}

#[test]
fn server_everythings_question_during_a_task_reaches_a_modern_client_as_input_requests() {
    let env = Env::new();
    let Some(prefix) = test_prefix() else {
        return;
    };
    env.user_config(&format!(
        "[servers.everything]\ncommand = {}\n",
        q(path_str(&node_bin(&prefix, "mcp-server-everything"))),
    ));
    let mut serve = env.serve();
    serve.request(json!(1), "tools/list", modern(json!({})));
    let ours = create(
        &mut serve,
        2,
        "everything__simulate-research-query",
        &json!({"topic": "python", "ambiguous": true}),
    );
    // Its SDK asks during `tasks/result`, tagged with its task: ours to the client.
    let waiting = poll_until(&mut serve, 3, &ours, Duration::from_secs(30), |t| {
        t["status"] == "input_required"
    });
    let requests = waiting["result"]["inputRequests"].as_object().unwrap();
    assert_eq!(requests.len(), 1, "{waiting}");
    let (key, entry) = requests.iter().next().unwrap();
    assert_eq!(entry["method"], "elicitation/create", "{waiting}");
    let schema = &entry["params"]["requestedSchema"]["properties"];
    let field = schema.as_object().unwrap().keys().next().unwrap().clone();
    let choice = schema[&field]["enum"][0].clone();
    let update = serve.request(
        json!(200),
        "tasks/update",
        modern(json!({"taskId": ours, "inputResponses": {
            key.as_str(): {"action": "accept", "content": {field: choice}}}})),
    );
    assert!(update.get("result").is_some(), "{update}");
    let done = poll_until(&mut serve, 201, &ours, Duration::from_secs(60), |t| {
        t["status"] == "completed" || t["status"] == "failed"
    });
    let text = done["result"]["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{done}"));
    assert!(text.contains("# Research Report"), "{done}");
    serve.close();
}

#[test]
fn a_task_only_tool_called_without_the_extension_is_minus_32021_naming_it() {
    // `ask` runs only as a task. A modern client that does not declare the extension
    // is not shown it; calling it by name gets the 2026 code for what it lacks, not
    // the legacy server's -32601.
    let env = Env::new();
    env.user_config(&example_table("t", "task_server", &["--name", "t"]));
    let mut serve = env.serve();
    let refused = serve.request(
        json!(1),
        "tools/call",
        json!({"name": "t__ask", "arguments": {"text": "hi"}, "_meta": modern_meta(false)}),
    );
    assert_eq!(refused["error"]["code"], -32021, "{refused}");
    assert_eq!(
        refused["error"]["data"]["requiredCapabilities"],
        json!({"extensions": {"io.modelcontextprotocol/tasks": {}}}),
        "{refused}"
    );
    serve.close();
}

/// The audit trail holds two answers to the client about `tool`: the task created,
/// then its result, once however many polls asked for it.
fn assert_created_then_answered_once(env: &Env, tool: &str) {
    let audit = env.audit_text();
    let answers = audit
        .lines()
        .filter(|l| l.contains(tool) && l.contains(r#""direction":"to_client""#))
        .count();
    assert_eq!(
        answers, 2,
        "the task created, then its result, once:\n{audit}"
    );
}
