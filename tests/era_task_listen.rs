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
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": caps,
        "io.modelcontextprotocol/clientInfo": {"name": "modern-client", "version": "1"},
    })
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

/// `server`'s `stats`: how many `tasks/get` it was sent.
fn gets(serve: &mut Serve, id: i64, server: &str) -> Value {
    let answer = serve.request(
        json!(id),
        "tools/call",
        modern(
            json!({"name": format!("{server}__stats"), "arguments": {}}),
            false,
        ),
    );
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    serde_json::from_str::<Value>(text).unwrap()["gets"].clone()
}

#[test]
fn a_listen_naming_our_task_gets_its_pushes_filtered_audited_once_and_nothing_else() {
    let env = Env::new();
    env.user_config(&format!(
        "{}\n{}",
        example_table("a", "ext_task_server", &["--push-tasks"]),
        example_table("b", "ext_task_server", &["--push-tasks"]),
    ));
    let mut serve = env.serve();
    // Both servers name their task "1".
    let task_a = start(&mut serve, 1, "a");
    let task_b = start(&mut serve, 2, "b");

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
    assert_eq!(gets(&mut serve, 3, "b"), 0);
    assert_eq!(gets(&mut serve, 4, "a"), 0);

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
    assert_eq!(gets(&mut serve, 6, "a"), 0, "answered from the kept bytes");
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
    let audit = env.audit_text();
    let redacted = audit
        .lines()
        .filter(|l| l.contains("a__job") && l.contains(r#""decision":"redact""#))
        .count();
    assert_eq!(redacted, 1, "{audit}");
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
