//! Issue 13, "Output side": every kind of message a server sends passes the output
//! filters (SPEC "Output filters": results, JSON-RPC errors, notifications,
//! server-to-client requests and list items), not only tool results. Each test runs
//! the real binary in front of `examples/hostile_output_server.rs`, which tries one
//! way out per tool.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use support::{Env, Serve, example_table, test_server_table};

/// The token, AWS key id, ANSI escape and bidi override the hostile server sends.
fn token() -> String {
    format!("{}{}", "ghp_", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8")
}

fn aws_key() -> String {
    format!("{}{}", "AKIA", "Q3EGRTXB5NLM7HZD")
}

/// Asserts that nothing the hostile server hid in `what` reached the client raw.
fn assert_filtered(what: &str, text: &str) {
    for raw in [token(), aws_key(), "\u{1b}".into(), "\u{202e}".into()] {
        assert!(!text.contains(&raw), "{what} carries {raw:?} raw: {text}");
    }
    assert!(
        text.contains("[REDACTED:"),
        "{what} is not redacted: {text}"
    );
}

/// The hostile server as `h` with `args`, sampling and elicitation allowed, and
/// `extra` config after it.
fn serve_hostile(args: &[&str], extra: &str) -> (Env, Serve) {
    let env = Env::new();
    env.user_config(&format!(
        "{}sampling = \"allow\"\nelicitation = \"allow\"\n{extra}",
        example_table("h", "hostile_output_server", args)
    ));
    let mut serve = env.serve();
    serve.initialize_with(json!({"sampling": {}, "elicitation": {}}));
    serve.tool_names(1);
    (env, serve)
}

/// The first message from the server with `method`, among those seen so far (not
/// mcp-warden's own log messages).
fn seen(serve: &Serve, method: &str) -> Value {
    serve
        .seen
        .iter()
        .find(|m| m["method"] == method && m["params"]["logger"] != "mcp-warden")
        .cloned()
        .unwrap_or_else(|| panic!("no {method} in {:?}", serve.seen))
}

/// Item 1: a JSON-RPC error answer is filtered like a result: its `message` and
/// `data` are redacted, stripped and flagged where the text is.
#[test]
fn an_error_answer_is_filtered_like_a_result() {
    let (_env, mut serve) = serve_hostile(&[], "");
    let answer = serve.call_tool(2, "h__fail", json!({}));
    let error = &answer["error"];
    assert!(error.is_object(), "{answer}");
    assert_filtered("the error", &error.to_string());
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("[mcp-warden flagged:"),
        "the injection is flagged in the message: {message}"
    );
    assert_eq!(answer["id"], 2);
}

/// Item 2: an elicitation that asks for a secret is flagged and filtered too.
#[test]
fn an_elicitation_for_a_secret_is_flagged_and_filtered() {
    let (_env, mut serve) = serve_hostile(&[], "");
    serve.call_tool(2, "h__elicit", json!({}));
    let ask = seen(&serve, "elicitation/create");
    assert_filtered("the elicitation", &ask.to_string());
    let message = ask["params"]["message"].as_str().unwrap();
    assert!(
        message.contains("asks you for a secret"),
        "the secret flag stays: {message}"
    );
    assert!(
        message.contains("prompt injection"),
        "the injection is flagged too: {message}"
    );
}

/// Item 3: injection in notifications and sampling requests is flagged in the text a
/// model or person sees, not only in `_meta`.
#[test]
fn injection_in_notifications_and_sampling_is_flagged_where_the_text_is() {
    let (_env, mut serve) = serve_hostile(&[], "");
    serve.request(
        json!(2),
        "tools/call",
        json!({"name": "h__notify", "arguments": {}, "_meta": {"progressToken": "p1"}}),
    );
    let log = seen(&serve, "notifications/message");
    assert_filtered("the log message", &log.to_string());
    let note = log["params"]["data"]["note"].as_str().unwrap();
    assert!(note.starts_with("[mcp-warden flagged:"), "{note}");
    let progress = seen(&serve, "notifications/progress");
    assert_filtered("the progress", &progress.to_string());
    assert_eq!(progress["params"]["progressToken"], "p1");
    let text = progress["params"]["message"].as_str().unwrap();
    assert!(text.starts_with("[mcp-warden flagged:"), "{text}");

    serve.call_tool(3, "h__sample", json!({}));
    let sample = seen(&serve, "sampling/createMessage");
    assert_filtered("the sampling request", &sample.to_string());
    let params = &sample["params"];
    for text in [
        params["systemPrompt"].as_str().unwrap(),
        params["messages"][0]["content"]["text"].as_str().unwrap(),
    ] {
        assert!(text.starts_with("[mcp-warden flagged:"), "{text}");
    }
}

/// Item 5: a secret as an object key is seen (and redacted) in a result.
#[test]
fn a_secret_as_an_object_key_is_redacted() {
    let (_env, mut serve) = serve_hostile(&[], "");
    let answer = serve.call_tool(2, "h__keys", json!({}));
    let structured = answer["result"]["structuredContent"].as_object().unwrap();
    assert!(
        !structured.keys().any(|k| k.contains(&token())),
        "the key leaked: {answer}"
    );
    assert!(
        structured.keys().any(|k| k.starts_with("[REDACTED:")),
        "{answer}"
    );
}

/// Item 5, the way in: a secret as a key of a tool call's arguments is blocked.
#[test]
fn a_secret_as_an_argument_key_is_blocked() {
    let (_env, mut serve) = serve_hostile(&[], "");
    let mut arguments = serde_json::Map::new();
    arguments.insert(token(), json!("x"));
    let answer = serve.call_tool(2, "h__echo", Value::Object(arguments));
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert_eq!(
        answer["result"]["_meta"]["mcp-warden/rule"], "output:secrets",
        "{answer}"
    );
}

/// Item 6: with `secrets = "block"`, one item whose description carries a token is
/// left out of the list; the other items, and every other server's, stay.
#[test]
fn secrets_block_leaves_out_the_item_not_the_list() {
    let env = Env::new();
    env.user_config(&format!(
        "{}\n{}\n[output]\nsecrets = \"block\"\n",
        example_table("h", "hostile_output_server", &["--secret-in-description"]),
        test_server_table("b", &[])
    ));
    let mut serve = env.serve();
    serve.initialize();
    let names = serve.tool_names(1);
    assert!(!names.iter().any(|n| n == "h__docs"), "{names:?}");
    assert!(names.iter().any(|n| n == "h__echo"), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("b__")), "{names:?}");
}

/// Item 4: a listed resource whose description hides instructions is not listed and
/// reads of it are held; a held template's URIs are held on read too (they would
/// otherwise reach the only server that offers resources).
#[test]
fn a_flagged_resource_is_not_listed_and_reads_of_it_and_of_a_held_template_are_held() {
    let env = Env::new();
    env.user_config(&format!(
        "{}\n[pinning]\nmode = \"tofu\"\n",
        example_table("h", "hostile_output_server", &[])
    ));
    let mut serve = env.serve();
    serve.initialize();
    let listed = serve.request(json!(1), "resources/list", json!({}));
    let uris: Vec<&str> = listed["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris, ["memo://clean"], "{listed}");
    let templates = serve.request(json!(2), "resources/templates/list", json!({}));
    assert_eq!(
        templates["result"]["resourceTemplates"],
        json!([]),
        "the flagged template is held: {templates}"
    );

    let clean = serve.request(json!(3), "resources/read", json!({"uri": "memo://clean"}));
    assert_eq!(
        clean["result"]["contents"][0]["text"], "contents of memo://clean",
        "{clean}"
    );
    for (id, uri) in [(4, "memo://poisoned"), (5, "notes://42")] {
        let read = serve.request(json!(id), "resources/read", json!({"uri": uri}));
        assert_eq!(read["error"]["code"], -32003, "{uri}: {read}");
        assert_eq!(
            read["error"]["data"]["mcp-warden/decision"], "hold",
            "{read}"
        );
        let rule = read["error"]["data"]["mcp-warden/rule"].as_str().unwrap();
        assert!(rule.starts_with("scan:"), "{rule}");
        let sub = serve.request(json!(id + 10), "resources/subscribe", json!({"uri": uri}));
        assert_eq!(sub["error"]["code"], -32003, "{uri}: {sub}");
    }
    // A completion for the held template is held too (not forwarded to the server).
    let complete = serve.request(
        json!(20),
        "completion/complete",
        json!({"ref": {"type": "ref/resource", "uri": "notes://{id}"}, "argument": {"name": "id", "value": "4"}}),
    );
    assert_eq!(complete["error"]["code"], -32003, "{complete}");
    assert_eq!(
        complete["error"]["data"]["mcp-warden/decision"], "hold",
        "{complete}"
    );
}

/// The pin files under this world's data directory.
fn lock_files(env: &Env) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.file_name().is_some_and(|n| n == "mcp-warden.lock") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&env.warden_home, &mut out);
    out
}

/// `h` (the hostile server) under strict pinning, with `HOSTILE_META` set to `meta`.
fn pinned_hostile(env: &Env, meta: Option<&str>) {
    let env_table = meta.map_or_else(String::new, |m| {
        format!("[servers.h.env]\nHOSTILE_META = {}\n", support::q(m))
    });
    env.user_config(&format!(
        "{}{env_table}\n[pinning]\nmode = \"strict\"\n",
        example_table("h", "hostile_output_server", &[])
    ));
}

/// The answer to a call of `h__echo` in a fresh session.
fn call_echo(env: &Env) -> Value {
    let mut serve = env.serve();
    serve.initialize();
    serve.tool_names(1);
    serve.call_tool(2, "h__echo", json!({}))
}

/// Item 17: a tool's `_meta` is in its digest. A lock written before (`version = 1`,
/// without `_meta`) does not approve a tool that has one: it is held, saying so; once
/// pinned, a change of `_meta` alone holds it again.
#[test]
fn a_tools_meta_is_pinned_and_an_old_lock_does_not_approve_it() {
    let env = Env::new();
    pinned_hostile(&env, None);
    let pin = env.run(&["pin", "--yes", "h"]);
    assert!(pin.status.success(), "{pin:?}");
    let locks = lock_files(&env);
    assert_eq!(locks.len(), 1, "{locks:?}");
    let text = std::fs::read_to_string(&locks[0]).unwrap();
    assert!(text.contains("version = 2"), "{text}");
    // The same pins as an older mcp-warden wrote them.
    std::fs::write(&locks[0], text.replace("version = 2", "version = 1")).unwrap();

    pinned_hostile(&env, Some("ui://a"));
    let held = call_echo(&env);
    assert_eq!(
        held["result"]["_meta"]["mcp-warden/rule"], "pin:changed",
        "{held}"
    );
    let said = support::text_of(&held);
    assert!(said.contains("`_meta` its pin does not cover"), "{said}");

    let pin = env.run(&["pin", "--yes", "h"]);
    assert!(pin.status.success(), "{pin:?}");
    let text = std::fs::read_to_string(&locks[0]).unwrap();
    assert!(
        text.contains("version = 2") && text.contains("ui://a"),
        "{text}"
    );
    assert_eq!(support::text_of(&call_echo(&env)), "ok");

    pinned_hostile(&env, Some("ui://b"));
    let held = call_echo(&env);
    assert_eq!(
        held["result"]["_meta"]["mcp-warden/rule"], "pin:changed",
        "{held}"
    );
    assert!(
        support::text_of(&held).contains("changed since it was pinned"),
        "{held}"
    );
}

/// Item 18: what the scan missed is found: a request to decode a blob and follow it,
/// instructions aimed at other servers' tools in general terms, the conversation
/// copied into an argument. Those tools are held (tofu); the rest are served. And an
/// AWS access key id with `0`, `1`, `8` and `9` in it is redacted.
#[test]
fn the_scan_finds_what_it_missed_and_the_aws_key_rule_takes_every_digit() {
    let env = Env::new();
    env.user_config(&format!(
        "{}\n[pinning]\nmode = \"tofu\"\n",
        example_table("h", "hostile_output_server", &["--sneaky"])
    ));
    let scan = env.run(&["scan", "--json"]);
    let report = String::from_utf8_lossy(&scan.stdout);
    for id in [
        "decode-and-follow",
        "cross-server-general",
        "context-exfiltration",
    ] {
        assert!(report.contains(id), "{id} not found: {report}");
    }
    let mut serve = env.serve();
    serve.initialize();
    let names = serve.tool_names(1);
    for held in ["h__decoder", "h__general", "h__context"] {
        assert!(!names.iter().any(|n| n == held), "{held} served: {names:?}");
    }
    let answer = serve.call_tool(2, "h__echo", json!({}));
    let text = support::text_of(&answer);
    assert_eq!(text, "key [REDACTED:aws-access-key-id]", "{answer}");
}

/// The answers to server requests: what the user typed reaches the server unchanged
/// (the user's choice), and a secret in it is recorded as `flag`, with the rule and
/// never the secret.
#[test]
fn a_secret_in_the_users_answer_reaches_the_server_unchanged_and_is_flagged() {
    let (env, mut serve) = serve_hostile(&[], "");
    serve.call_tool(2, "h__elicit", json!({}));
    let ask = seen(&serve, "elicitation/create");
    let typed = json!({"action": "accept", "content": {"token": token()}});
    serve.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": typed}));
    let answer = serve.call_tool(3, "h__answered", json!({}));
    let reversed: String = support::text_of(&answer).chars().rev().collect();
    let arrived: Value = serde_json::from_str(&reversed).unwrap();
    assert_eq!(arrived, typed, "{answer}");
    serve.close();
    let audit = env.audit_text();
    let flagged = audit
        .lines()
        .find(|l| l.contains(r#""direction":"to_server""#) && l.contains(r#""decision":"flag""#))
        .unwrap_or_else(|| panic!("no flag recorded:\n{audit}"));
    assert!(
        flagged.contains(r#""method":"elicitation/create""#)
            && flagged.contains(r#""rule":"output:secrets""#),
        "{flagged}"
    );
    assert!(
        !audit.contains(&token()),
        "the secret is in the audit:\n{audit}"
    );
}

/// Notifications to the client: their flag / redaction is recorded, within a budget
/// per server (a flood of 100 does not write 100 records), and a blocked one too.
#[test]
fn decisions_on_notifications_are_recorded_within_a_budget_and_blocks_too() {
    let notes = |audit: &str| -> Vec<String> {
        audit
            .lines()
            .filter(|l| l.contains(r#""method":"notifications/message""#))
            .map(str::to_owned)
            .collect()
    };
    let (env, mut serve) = serve_hostile(&[], "");
    serve.call_tool(2, "h__notify", json!({"count": 100}));
    serve.close();
    let audit = env.audit_text();
    let records = notes(&audit);
    assert!(
        (1..=10).contains(&records.len()),
        "{} records for 100 notifications:\n{audit}",
        records.len()
    );
    for record in &records {
        assert!(
            record.contains(r#""decision":"flag""#) || record.contains(r#""decision":"redact""#),
            "{record}"
        );
    }
    assert!(
        !audit.contains(&token()),
        "the secret is in the audit:\n{audit}"
    );

    let (env, mut serve) = serve_hostile(&[], "[output]\ninjection = \"block\"\n");
    serve.call_tool(2, "h__notify", json!({}));
    assert!(
        !serve.seen.iter().any(
            |m| m["method"] == "notifications/message" && m["params"]["logger"] != "mcp-warden"
        ),
        "a blocked notification reached the client: {:?}",
        serve.seen
    );
    serve.close();
    let audit = env.audit_text();
    let records = notes(&audit);
    assert!(
        records
            .iter()
            .any(|r| r.contains(r#""decision":"deny""#)
                && r.contains(r#""rule":"output:injection""#)),
        "the dropped notification is not recorded:\n{audit}"
    );
}
