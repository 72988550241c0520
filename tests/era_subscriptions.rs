//! `subscriptions/listen` through the real binary (issue 15 item 6, docs/dual-era.md
//! §2.4), with raw JSON lines: a modern client in front of `examples/era_server.rs`
//! (`--subscribe`: it keeps the URIs it was subscribed to, and its `touch` tool sends
//! an update for each and a `tools/list_changed`, then names them).

mod support;

use serde_json::{Value, json};
use support::{Env, Serve, example_table};

const TAG: &str = "io.modelcontextprotocol/subscriptionId";

fn envelope() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "modern-client", "version": "1"},
    })
}

fn with_envelope(mut params: Value) -> Value {
    params["_meta"] = envelope();
    params
}

fn serve(mode: &str) -> (Env, Serve) {
    serve_with_policy(mode, "")
}

fn serve_with_policy(mode: &str, policy: &str) -> (Env, Serve) {
    let env = Env::new();
    env.user_config(&format!(
        "{}{policy}",
        example_table("era", "era_server", &[mode, "--subscribe"])
    ));
    let serve = env.serve();
    (env, serve)
}

/// Opens a listen and waits for its acknowledgement, which it gives.
fn listen(serve: &mut Serve, id: &Value, notifications: &Value) -> Value {
    serve.send(
        &json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
        "params": with_envelope(json!({ "notifications": notifications }))}),
    );
    serve.wait_for(
        &format!("the acknowledgement of {id}"),
        is("notifications/subscriptions/acknowledged", id),
    )
}

fn cancel(serve: &mut Serve, id: &Value) {
    serve.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": id}}),
    );
}

/// Calls `touch`: the URIs the server is subscribed to.
fn touch(serve: &mut Serve, id: i64) -> String {
    let answer = serve.request(
        json!(id),
        "tools/call",
        with_envelope(json!({"name": "era__touch", "arguments": {}})),
    );
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {answer}"))
        .to_owned()
}

fn is(method: &str, tag: &Value) -> impl Fn(&Value) -> bool {
    move |m: &Value| m["method"] == method && m["params"]["_meta"][TAG] == *tag
}

#[test]
fn a_listen_is_acknowledged_told_of_changes_and_updates_and_ends_on_cancel_or_shutdown() {
    let (_env, mut serve) = serve("--legacy");
    let first = json!("L1");
    let ack = listen(
        &mut serve,
        &first,
        &json!({"toolsListChanged": true, "resourceSubscriptions": ["era://known", "era://known"]}),
    );
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true, "resourceSubscriptions": ["era://known"]}),
        "{ack}"
    );
    // The legacy server was subscribed to the URI for the listen.
    assert_eq!(touch(&mut serve, 2), "subscribed=era://known");
    let updated = serve.wait_for(
        "resources/updated tagged L1",
        is("notifications/resources/updated", &first),
    );
    assert_eq!(updated["params"]["uri"], "era://known");
    // The out-filter applies to it as to every notification.
    assert!(
        !updated
            .to_string()
            .contains(&format!("{}{}", "AKIA", "Q3EGRTXB5NLM7HZD")),
        "{updated}"
    );
    serve.wait_for(
        "tools/list_changed tagged L1",
        is("notifications/tools/list_changed", &first),
    );

    // A second listen on the same URI: the upstream subscription is counted.
    let second = json!(3);
    listen(
        &mut serve,
        &second,
        &json!({"resourceSubscriptions": ["era://known"]}),
    );
    cancel(&mut serve, &first);
    assert_eq!(touch(&mut serve, 4), "subscribed=era://known");
    serve.wait_for(
        "resources/updated tagged 3",
        is("notifications/resources/updated", &second),
    );
    cancel(&mut serve, &second);
    assert_eq!(touch(&mut serve, 5), "subscribed=");
    // Neither listen was answered, and the first heard nothing after its cancel.
    serve.seen.clear();
    let last = json!("last");
    listen(&mut serve, &last, &json!({"promptsListChanged": true}));
    assert!(
        !serve.seen.iter().any(|m| m.get("id") == Some(&first)
            || m.get("id") == Some(&second)
            || m["params"]["_meta"][TAG] == first),
        "{:?}",
        serve.seen
    );
    // At the end the open listen is closed with a result.
    serve.close_stdin();
    let closing = serve.wait_for("the listen's result", |m| {
        m.get("id") == Some(&last) && m.get("method").is_none()
    });
    assert_eq!(
        closing["result"],
        json!({"resultType": "complete", "_meta": {TAG: "last"}}),
        "{closing}"
    );
}

#[test]
fn more_than_1024_listens_are_refused() {
    let (_env, mut serve) = serve("--legacy");
    for n in 0..1024 {
        listen(&mut serve, &json!(n), &json!({"toolsListChanged": true}));
    }
    let over = serve.request(
        json!(5000),
        "subscriptions/listen",
        with_envelope(json!({"notifications": {"toolsListChanged": true}})),
    );
    assert_eq!(over["error"]["code"], -32603, "{over}");
    assert_eq!(
        over["error"]["message"], "Subscription limit reached",
        "{over}"
    );
    // One closed makes room again.
    cancel(&mut serve, &json!(7));
    let again = json!(5001);
    listen(&mut serve, &again, &json!({}));
}

/// A legacy client's `resources/subscribe` or `unsubscribe` of `era://known`,
/// answered `{}`.
fn legacy_subscription(serve: &mut Serve, id: i64, method: &str) {
    let answer = serve.request(json!(id), method, json!({"uri": "era://known"}));
    assert_eq!(answer["result"], json!({}), "{answer}");
}

/// A legacy client's `touch`: its text.
fn legacy_touch(serve: &mut Serve, id: i64) -> String {
    let answer = serve.call_tool(id, "era__touch", json!({}));
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {answer}"))
        .to_owned()
}

/// Calls `touch` until it answers (the server may be restarting): its text.
fn touch_when_back(serve: &mut Serve, from: i64, modern: bool) -> String {
    for n in from..from + 100 {
        let params = json!({"name": "era__touch", "arguments": {}});
        let params = if modern {
            with_envelope(params)
        } else {
            params
        };
        let answer = serve.request(json!(n), "tools/call", params);
        if let Some(text) = answer["result"]["content"][0]["text"].as_str() {
            return text.to_owned();
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("the server never came back; stderr:\n{}", serve.stderr());
}

fn crash(serve: &mut Serve, id: i64, modern: bool) {
    let params = json!({"name": "era__exit", "arguments": {}});
    let params = if modern {
        with_envelope(params)
    } else {
        params
    };
    let answer = serve.request(json!(id), "tools/call", params);
    assert!(answer.get("error").is_some(), "{answer}");
}

#[test]
fn a_modern_server_gets_our_own_listen_widened_for_a_client_listen_and_again_after_a_restart() {
    let (_env, mut serve) = serve("--modern-only");
    // Before any client listens: mcp-warden's own listen, for the tools' changes.
    // Its `tools/list_changed` (tagged with our listen's id) relists the server at
    // once: its list names the count of listings, and its `ttlMs` (45 s) is far off.
    let listed = |serve: &mut Serve, id: i64| {
        let listing = serve.request(json!(id), "tools/list", with_envelope(json!({})));
        let text = listing.to_string();
        let at = text
            .find("era__listed_")
            .unwrap_or_else(|| panic!("{text}"));
        text[at..].split('"').next().unwrap_or_default().to_owned()
    };
    let before = listed(&mut serve, 100);
    assert_eq!(touch(&mut serve, 1), "subscribed= listens=1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for n in 101.. {
        if listed(&mut serve, n) != before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not relisted on our listen's list_changed (still {before})"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let client = json!("M");
    let ack = listen(
        &mut serve,
        &client,
        &json!({"toolsListChanged": true, "resourceSubscriptions": ["era://known"]}),
    );
    assert_eq!(
        ack["params"]["notifications"]["resourceSubscriptions"],
        json!(["era://known"]),
        "{ack}"
    );
    // Ours replaced by one that also names the URI (the old one cancelled).
    assert_eq!(touch(&mut serve, 2), "subscribed=era://known listens=1");
    let updated = serve.wait_for(
        "resources/updated re-tagged M",
        is("notifications/resources/updated", &client),
    );
    assert_eq!(updated["params"]["uri"], "era://known", "{updated}");
    serve.wait_for(
        "tools/list_changed tagged M",
        is("notifications/tools/list_changed", &client),
    );
    // A crash: the new process is listened to again, for the same.
    crash(&mut serve, 3, true);
    assert_eq!(
        touch_when_back(&mut serve, 10, true),
        "subscribed=era://known listens=1"
    );
    serve.wait_for(
        "resources/updated after the restart",
        is("notifications/resources/updated", &client),
    );
    // The server closes our listen: opened again, the same.
    let closed = serve.request(
        json!(150),
        "tools/call",
        with_envelope(json!({"name": "era__close", "arguments": {}})),
    );
    assert!(closed.get("result").is_some(), "{closed}");
    assert_eq!(touch(&mut serve, 151), "subscribed=era://known listens=1");
    cancel(&mut serve, &client);
    assert_eq!(touch(&mut serve, 200), "subscribed= listens=1");
}

#[test]
fn a_legacy_servers_subscriptions_are_made_again_after_a_restart() {
    let (_env, mut serve) = serve("--legacy");
    let client = json!(1);
    listen(
        &mut serve,
        &client,
        &json!({"resourceSubscriptions": ["era://known"]}),
    );
    assert_eq!(touch(&mut serve, 2), "subscribed=era://known");
    crash(&mut serve, 3, true);
    assert_eq!(
        touch_when_back(&mut serve, 10, true),
        "subscribed=era://known"
    );
}

#[test]
fn a_legacy_clients_subscribe_to_a_modern_server_is_a_listen_and_its_updates_come_untagged() {
    let (_env, mut serve) = serve("--modern-only");
    serve.initialize();
    legacy_subscription(&mut serve, 1, "resources/subscribe");
    assert_eq!(
        legacy_touch(&mut serve, 2),
        "subscribed=era://known listens=1"
    );
    let updated = serve.wait_for("resources/updated", |m| {
        m["method"] == "notifications/resources/updated"
    });
    assert_eq!(
        updated["params"],
        json!({"uri": "era://known"}),
        "{updated}"
    );
    legacy_subscription(&mut serve, 3, "resources/unsubscribe");
    assert_eq!(legacy_touch(&mut serve, 4), "subscribed= listens=1");
}

/// Hostile: a listen must not reach a URI the policy denies a subscription to (the
/// listen is a second way to subscribe, so it is judged as `resources/subscribe`).
#[test]
fn a_listen_does_not_subscribe_to_a_uri_the_policy_denies() {
    let (_env, mut serve) = serve_with_policy(
        "--legacy",
        "[[policy.rules]]\nid = \"no-secret\"\nresources = [\"era://secret/**\"]\naction = \"deny\"\n",
    );
    let client = json!("H");
    let ack = listen(
        &mut serve,
        &client,
        &json!({"resourceSubscriptions": ["era://secret/keys", "ERA://secret/keys", "era://known"]}),
    );
    assert_eq!(
        ack["params"]["notifications"],
        json!({"resourceSubscriptions": ["era://known"]}),
        "{ack}"
    );
    assert_eq!(touch(&mut serve, 2), "subscribed=era://known");
}

/// A listen is never answered while open, so a batch holding one would never be.
#[test]
fn a_listen_in_a_batch_is_refused() {
    let (_env, mut serve) = serve("--legacy");
    serve.request(
        json!(0),
        "initialize",
        json!({"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}),
    );
    serve.send(&json!([
        {"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen",
         "params": with_envelope(json!({"notifications": {"toolsListChanged": true}}))},
        {"jsonrpc": "2.0", "id": 2, "method": "ping"},
    ]));
    let answers = serve.wait_for("the batch's answers", Value::is_array);
    let refused = answers
        .as_array()
        .and_then(|all| all.iter().find(|a| a["id"] == 1))
        .unwrap_or_else(|| panic!("{answers}"));
    assert_eq!(refused["error"]["code"], -32600, "{answers}");
}

/// One connection speaking both eras: the legacy `resources/unsubscribe` does not
/// take away a URI a listen still needs, and the listen's end does.
#[test]
fn a_legacy_unsubscribe_keeps_what_a_listen_still_needs() {
    let (_env, mut serve) = serve("--legacy");
    serve.initialize();
    let client = json!("both");
    listen(
        &mut serve,
        &client,
        &json!({"resourceSubscriptions": ["era://known"]}),
    );
    legacy_subscription(&mut serve, 1, "resources/subscribe");
    legacy_subscription(&mut serve, 2, "resources/unsubscribe");
    assert_eq!(touch(&mut serve, 3), "subscribed=era://known");
    cancel(&mut serve, &client);
    assert_eq!(touch(&mut serve, 4), "subscribed=");
}
