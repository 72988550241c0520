//! `notifications/tasks` through the real binary (issue 15 items 6 and 7,
//! docs/dual-era.md §2.4, §2.5, §7.1): a modern client's `subscriptions/listen`
//! naming `taskIds` of ours, in front of `examples/ext_task_server.rs --push-tasks`
//! (a server that pushes task statuses on its listen, one of them for a task it never
//! made, the completed one with a fake AWS key inline, and one no listen asked for).
//! Raw JSON lines: no SDK ships the tasks extension.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use support::{Env, Serve, example_table};

const TAG: &str = "io.modelcontextprotocol/subscriptionId";
/// The fake key `ext_task_server` puts in every job result.
const KEY: &str = "AKIAQ3EGRTXB5NLM7HZD";

/// The `_meta` of a modern request; `tasks`: it declares the tasks extension.
fn meta(tasks: bool) -> Value {
    let mut caps = json!({"elicitation": {}});
    if tasks {
        caps["extensions"] = json!({"io.modelcontextprotocol/tasks": {}});
    }
    support::modern_meta_with(caps)
}

fn modern(mut params: Value, tasks: bool) -> Value {
    params["_meta"] = meta(tasks);
    params
}

/// Starts `server`'s job as a task; gives our id for it.
fn start(serve: &mut Serve, id: i64, server: &str) -> String {
    let created = serve.request(
        json!(id),
        "tools/call",
        modern(
            json!({"name": format!("{server}__job"), "arguments": {"text": server}}),
            true,
        ),
    );
    let ours = created["result"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("no task in {created}"));
    assert!(ours.starts_with("mwt-"), "{created}");
    ours.to_owned()
}

fn listen_request(id: &Value, task_ids: &Value, tasks: bool) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
        "params": modern(json!({"notifications": {"taskIds": task_ids}}), tasks)})
}

fn is(method: &str, tag: &Value) -> impl Fn(&Value) -> bool {
    move |m: &Value| m["method"] == method && m["params"]["_meta"][TAG] == *tag
}

/// `server`'s `stats`: what it was asked (`gets`: how many `tasks/get`; `listens`:
/// each listen's `notifications`). `None`: it is not (back) up.
fn try_stats(serve: &mut Serve, id: i64, server: &str) -> Option<Value> {
    let answer = serve.request(
        json!(id),
        "tools/call",
        modern(
            json!({"name": format!("{server}__stats"), "arguments": {}}),
            false,
        ),
    );
    let text = answer["result"]["content"][0]["text"].as_str()?;
    serde_json::from_str::<Value>(text).ok()
}

fn stats(serve: &mut Serve, id: i64, server: &str) -> Value {
    try_stats(serve, id, server).unwrap_or_else(|| panic!("no stats of {server}"))
}

/// Servers `a` and `b` (`--push-tasks`), each with a job task started (both name
/// theirs `"1"`): our ids for them.
fn two_servers_with_a_task_each() -> (Env, Serve, String, String) {
    let env = Env::new();
    env.user_config(&format!(
        "{}\n{}",
        example_table("a", "ext_task_server", &["--push-tasks"]),
        example_table("b", "ext_task_server", &["--push-tasks"]),
    ));
    let mut serve = env.serve();
    let task_a = start(&mut serve, 1, "a");
    let task_b = start(&mut serve, 2, "b");
    (env, serve, task_a, task_b)
}

/// How many answers to `tool` the audit records as redacted.
fn redactions(env: &Env, tool: &str) -> usize {
    env.audit_text()
        .lines()
        .filter(|l| l.contains(tool) && l.contains(r#""decision":"redact""#))
        .count()
}

#[test]
fn a_listen_naming_our_task_gets_its_pushes_filtered_audited_once_and_nothing_else() {
    let (env, mut serve, task_a, task_b) = two_servers_with_a_task_each();

    // Ours and this session's only: a made-up id and a server's own are left out.
    let listen = json!("L1");
    serve.send(&listen_request(
        &listen,
        &json!([task_a, "mwt-AAAAAAAAAAAAAAAAAAAAAA", "1"]),
        true,
    ));
    let ack = serve.wait_for(
        "the acknowledgement",
        is("notifications/subscriptions/acknowledged", &listen),
    );
    assert_eq!(
        ack["params"]["notifications"],
        json!({"taskIds": [task_a]}),
        "{ack}"
    );
    // The server's pushes: `working`, then `completed`, under our id, tagged with
    // the client's listen, the inline result through the out-filter.
    let done = serve.wait_for("the completed task", |m| {
        is("notifications/tasks", &listen)(m) && m["params"]["status"] == "completed"
    });
    assert_eq!(done["params"]["taskId"], json!(task_a), "{done}");
    let text = done["params"]["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{done}"));
    assert!(
        text.starts_with("done: a") && text.contains("[REDACTED:") && !text.contains(KEY),
        "{done}"
    );
    // b's unsolicited push (its task "1", which no listen named) and a's second one.
    assert_eq!(stats(&mut serve, 3, "b")["gets"], 0);
    // a's listen (ours) was widened with its own id for the task, b got none.
    let a = stats(&mut serve, 4, "a");
    assert_eq!(a["gets"], 0, "{a}");
    assert_eq!(a["listens"], json!([{"taskIds": ["1"]}]), "{a}");

    // A poll now is the pushed task, not asked upstream, not audited again.
    let polled = serve.request(
        json!(5),
        "tasks/get",
        modern(json!({"taskId": task_a}), true),
    );
    assert_eq!(polled["result"]["status"], "completed", "{polled}");
    assert_eq!(
        polled["result"]["result"], done["params"]["result"],
        "{polled}"
    );
    assert_eq!(
        stats(&mut serve, 6, "a")["gets"],
        0,
        "answered from the kept bytes"
    );
    assert_eq!(stats(&mut serve, 8, "b")["listens"], json!([]));
    // b's task is b's own business: still waiting for input at b.
    let other = serve.request(
        json!(7),
        "tasks/get",
        modern(json!({"taskId": task_b}), true),
    );
    assert_eq!(other["result"]["status"], "input_required", "{other}");

    let pushed: Vec<&Value> = serve
        .seen
        .iter()
        .filter(|m| m["method"] == "notifications/tasks")
        .collect();
    assert!(
        pushed.iter().any(|m| m["params"]["status"] == "working"),
        "{pushed:?}"
    );
    for m in &pushed {
        assert_eq!(
            m["params"]["taskId"],
            json!(task_a),
            "only the named task: {m}"
        );
        assert_eq!(m["params"]["_meta"][TAG], listen, "{m}");
        assert!(!m.to_string().contains(KEY), "{m}");
    }
    let (status, _) = serve.close();
    assert!(status.success());

    // The terminal result is audited once, as the call's answer, with the redaction.
    assert_eq!(redactions(&env, "a__job"), 1, "{}", env.audit_text());
}

#[test]
fn a_listen_asking_task_ids_without_the_extension_is_refused() {
    let env = Env::new();
    env.user_config(&example_table("a", "ext_task_server", &["--push-tasks"]));
    let mut serve = env.serve();
    let task = start(&mut serve, 1, "a");
    serve.send(&listen_request(&json!(2), &json!([task]), false));
    let refused = serve.answer_to(&json!(2));
    assert_eq!(refused["error"]["code"], -32021, "{refused}");
    assert_eq!(
        refused["error"]["data"]["requiredCapabilities"],
        json!({"extensions": {"io.modelcontextprotocol/tasks": {}}}),
        "{refused}"
    );
    serve.close();
}

#[test]
fn a_legacy_servers_task_is_pushed_as_a_tasks_get_would_give_it_the_payload_judged_once() {
    let env = Env::new();
    env.user_config(&example_table("t", "task_server", &["--name", "t"]));
    let mut serve = env.serve();
    // `ask` waits for the client's answer to its question (asked during our
    // `tasks/result`), then its payload carries a fake AWS key.
    let ours = {
        let created = serve.request(
            json!(1),
            "tools/call",
            modern(json!({"name": "t__ask", "arguments": {"text": "hi"}}), true),
        );
        created["result"]["taskId"]
            .as_str()
            .unwrap_or_else(|| panic!("{created}"))
            .to_owned()
    };
    let listen = json!(2);
    serve.send(&listen_request(&listen, &json!([ours]), true));
    let ack = serve.wait_for(
        "the acknowledgement",
        is("notifications/subscriptions/acknowledged", &listen),
    );
    assert_eq!(ack["params"]["notifications"], json!({"taskIds": [ours]}));
    // The question, by poll (it may have come before the listen).
    let key = loop {
        let got = serve.request(json!(3), "tasks/get", modern(json!({"taskId": ours}), true));
        if let Some(requests) = got["result"]["inputRequests"].as_object() {
            break requests.keys().next().unwrap().clone();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let update = serve.request(
        json!(4),
        "tasks/update",
        modern(
            json!({"taskId": ours, "inputResponses": {key: {"action": "accept", "content": {"colour": "blue"}}}}),
            true,
        ),
    );
    assert!(update.get("result").is_some(), "{update}");
    // The payload, fetched by mcp-warden, pushed as the completed task: filtered.
    let done = serve.wait_for("the completed task", |m| {
        is("notifications/tasks", &listen)(m) && m["params"]["status"] == "completed"
    });
    assert_eq!(done["params"]["taskId"], json!(ours), "{done}");
    let text = done["params"]["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{done}"));
    assert!(
        text.starts_with("t: ask: hi, told: ")
            && text.contains("[REDACTED:")
            && !text.contains("AKIA"),
        "{done}"
    );
    // The poll replays it.
    let polled = serve.request(json!(5), "tasks/get", modern(json!({"taskId": ours}), true));
    assert_eq!(
        polled["result"]["result"], done["params"]["result"],
        "{polled}"
    );
    // Never the server's 2025 status as it came, nor a 2026 one without our id.
    for m in &serve.seen {
        assert_ne!(m["method"], "notifications/tasks/status", "{m}");
        if m["method"] == "notifications/tasks" {
            assert_eq!(m["params"]["taskId"], json!(ours), "{m}");
            assert_eq!(m["params"]["_meta"][TAG], listen, "{m}");
        }
    }
    let (status, _) = serve.close();
    assert!(status.success());
    assert_eq!(redactions(&env, "t__ask"), 1, "{}", env.audit_text());
}

#[test]
fn after_a_restart_a_listen_keeps_its_other_tasks_and_the_dead_ones_are_asked_no_more() {
    let (_env, mut serve, task_a, task_b) = two_servers_with_a_task_each();
    let listen = json!("L");
    serve.send(&listen_request(&listen, &json!([task_a, task_b]), true));
    let ack = serve.wait_for(
        "the acknowledgement",
        is("notifications/subscriptions/acknowledged", &listen),
    );
    let mut honoured: Vec<&str> = ack["params"]["notifications"]["taskIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    honoured.sort_unstable();
    let mut both = vec![task_a.as_str(), task_b.as_str()];
    both.sort_unstable();
    assert_eq!(honoured, both, "{ack}");
    for task in [&task_a, &task_b] {
        serve.wait_for("a completed task", |m| {
            is("notifications/tasks", &listen)(m) && m["params"]["taskId"] == json!(task)
        });
    }

    // b's process dies, and with it its task.
    let exit = serve.request(
        json!(3),
        "tools/call",
        modern(json!({"name": "b__exit", "arguments": {}}), false),
    );
    assert!(exit.get("error").is_some(), "{exit}");
    let back = (10..110)
        .find_map(|id| {
            let stats = try_stats(&mut serve, id, "b");
            if stats.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            stats
        })
        .unwrap_or_else(|| panic!("b never came back: {}", serve.stderr()));
    assert_eq!(
        back["listens"],
        json!([]),
        "the dead task is asked no more: {back}"
    );
    // It ended before: a poll still gets the answer kept then, asking nobody.
    let kept = serve.request(
        json!(200),
        "tasks/get",
        modern(json!({"taskId": task_b}), true),
    );
    assert_eq!(kept["result"]["status"], "completed", "{kept}");

    // The listen still has a's task: its next push reaches it (the kept bytes).
    serve.seen.clear();
    let a = stats(&mut serve, 201, "a");
    assert_eq!(a["listens"], json!([{"taskIds": ["1"]}]), "{a}");
    let again = serve.wait_for("a's task again", |m| {
        is("notifications/tasks", &listen)(m) && m["params"]["taskId"] == json!(task_a)
    });
    assert_eq!(again["params"]["status"], "completed", "{again}");
    // b's new process pushes about its own task "1": not one this listen named.
    let task_b2 = start(&mut serve, 202, "b");
    stats(&mut serve, 203, "b");
    stats(&mut serve, 204, "a");
    for m in &serve.seen {
        if m["method"] == "notifications/tasks" {
            assert_eq!(
                m["params"]["taskId"],
                json!(task_a),
                "{m} (b's new task: {task_b2})"
            );
        }
    }
    serve.close();
}

#[test]
fn two_polls_at_the_server_when_an_extension_task_ends_are_audited_once() {
    let env = Env::new();
    env.user_config(&example_table("a", "ext_task_server", &[]));
    let mut serve = env.serve();
    let ours = start(&mut serve, 1, "a");
    let waiting = serve.request(json!(2), "tasks/get", modern(json!({"taskId": ours}), true));
    assert_eq!(waiting["result"]["status"], "input_required", "{waiting}");
    let update = serve.request(
        json!(3),
        "tasks/update",
        modern(
            json!({"taskId": ours, "inputResponses": {"confirm": {"action": "accept", "content": {"ok": true}}}}),
            true,
        ),
    );
    assert!(update.get("result").is_some(), "{update}");
    // Both at the server before either answer is back: written in one write, so
    // mcp-warden reads them in one turn and forwards both before it reads an answer
    // (sent one by one, the first one's answer may be read before the second line).
    let mut polls = String::new();
    for id in [4, 5] {
        polls += &json!({"jsonrpc": "2.0", "id": id, "method": "tasks/get",
            "params": modern(json!({"taskId": ours}), true)})
        .to_string();
        polls.push('\n');
    }
    serve.send_raw(polls.as_bytes());
    let first = serve.answer_to(&json!(4));
    let second = serve.answer_to(&json!(5));
    assert_eq!(first["result"]["status"], "completed", "{first}");
    assert_eq!(first["result"], second["result"]);
    assert_eq!(stats(&mut serve, 6, "a")["gets"], 3, "both went up");
    let (status, _) = serve.close();
    assert!(status.success());
    assert_eq!(redactions(&env, "a__job"), 1, "{}", env.audit_text());
}
