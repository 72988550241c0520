//! Lossless both ways: what a real server sends reaches the client byte for byte, and
//! what the client sends reaches the server byte for byte, except the documented
//! rewrites (the id; a namespaced name; merged lists, which are rebuilt from the
//! servers' items, each item kept byte for byte).

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::{Value, json};
use support::prefix::{node_bin, test_prefix};
use support::{Env, path_str, q, test_server_table};

/// The traffic: one request of each kind server-everything answers deterministically.
const REQUESTS: &[&str] = &[
    r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    r#"{"jsonrpc":"2.0","id":2,"method":"prompts/list"}"#,
    r#"{"jsonrpc":"2.0","id":3,"method":"resources/list"}"#,
    r#"{"jsonrpc":"2.0","id":4,"method":"resources/templates/list"}"#,
    r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"h\u00e9llo \"quoted\" ☃"}}}"#,
    r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":1.5,"b":2.25}}}"#,
    r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get-annotated-message","arguments":{"messageType":"error","includeImage":true}}}"#,
    r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"get-tiny-image","arguments":{}}}"#,
    r#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"get-resource-links","arguments":{"count":3}}}"#,
    r#"{"jsonrpc":"2.0","id":12,"method":"resources/read","params":{"uri":"demo://resource/static/document/architecture.md"}}"#,
    r#"{"jsonrpc":"2.0","id":13,"method":"prompts/get","params":{"name":"args-prompt","arguments":{"city":"Lyon"}}}"#,
    r#"{"jsonrpc":"2.0","id":14,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"completable-prompt"},"argument":{"name":"department","value":"E"}}}"#,
];
/// Answers compared byte for byte (the lists are compared item by item).
const EXACT: &[u64] = &[5, 6, 7, 8, 11, 12, 13, 14];
const LISTS: &[(u64, &str)] = &[
    (1, "tools"),
    (2, "prompts"),
    (3, "resources"),
    (4, "resourceTemplates"),
];

/// Sends every request to `cmd` and collects the answer line of each id.
fn exchange(mut cmd: Command) -> BTreeMap<u64, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    for request in REQUESTS {
        writeln!(stdin, "{request}").unwrap();
    }
    let wanted = REQUESTS.iter().filter(|r| r.contains("\"id\"")).count();
    let mut answers = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while answers.len() < wanted {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("answers so far: {answers:?}"));
        let msg: Value = serde_json::from_str(&line).unwrap();
        if let (None, Some(id)) = (msg.get("method"), msg["id"].as_u64()) {
            answers.insert(id, line);
        }
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    answers
}

/// The `name` of an item's raw text.
fn name_of(item: &str) -> String {
    let item: BTreeMap<String, &RawValue> = serde_json::from_str(item).unwrap();
    serde_json::from_str(item["name"].get()).unwrap()
}

/// The raw text of each item of a list answer.
fn items(line: &str, field: &str) -> Vec<String> {
    let msg: BTreeMap<String, &RawValue> = serde_json::from_str(line).unwrap();
    let result: BTreeMap<String, &RawValue> = serde_json::from_str(msg["result"].get()).unwrap();
    let list: Vec<&RawValue> = serde_json::from_str(result[field].get()).unwrap();
    list.iter().map(|r| r.get().to_owned()).collect()
}

#[test]
fn real_server_answers_pass_byte_for_byte() {
    let Some(prefix) = test_prefix() else { return };
    let everything = node_bin(&prefix, "mcp-server-everything");
    let direct = exchange(Command::new(&everything));

    let env = Env::new();
    // No prefix: exposed names equal the server's, so answers can be compared whole.
    env.user_config(&format!(
        "[servers.everything]\ncommand = {}\nnamespace = \"\"\n",
        q(path_str(&everything))
    ));
    let proxied = exchange(env.command(&["serve"]));

    for id in EXACT {
        assert_eq!(proxied[id], direct[id], "answer {id} changed on the way");
    }
    for (id, field) in LISTS {
        // Each item byte for byte; `tools/list` in order of name (issue 15: sorted).
        let mut want = items(&direct[id], field);
        if *field == "tools" {
            want.sort_by_key(|t| name_of(t));
        }
        assert_eq!(
            items(&proxied[id], field),
            want,
            "items of answer {id} changed"
        );
    }
    // The answers carry numbers and escapes as the server wrote them.
    assert!(direct[&6].contains("3.75") && direct[&5].contains(r#"\"quoted\""#));
}

#[test]
fn client_requests_reach_the_server_byte_for_byte_but_id_and_name() {
    let env = Env::new();
    env.user_config(&test_server_table("a", &[]));
    let mut serve = env.ready_serve();
    // Unknown fields, `_meta`, a progress token, newer-protocol fields, odd number
    // formats and escapes: all of it must arrive as written.
    let sent = r#"{"jsonrpc":"2.0", "method":"tools/call","id":"x-7","params":{"name":"a__raw","arguments":{"n":1.0e2,"z":-0,"f":1.50,"big":123456789012345678901234567890,"s":"\u00e9\ud83d\ude00\n"},"_meta":{"progressToken":"tok","vendor/x":{"nested":[null,true]}},"task":{"ttl":1000}},"futureField":{"a":[]}}"#;
    serve.send_raw(format!("{sent}\n").as_bytes());
    let answer = serve.answer_to(&json!("x-7"));
    let received = answer["result"]["content"][0]["text"].as_str().unwrap();
    // mcp-warden's own id, the server's own name for the tool, and mcp-warden's own
    // progress token (the request's id, restored on the way back) are the only changes.
    let ours: Value = serde_json::from_str(received).unwrap();
    let our_id = ours["id"].to_string();
    let expected = sent
        .replacen(r#""id":"x-7""#, &format!(r#""id":{our_id}"#), 1)
        .replacen(r#""name":"a__raw""#, r#""name":"raw""#, 1)
        .replacen(
            r#""progressToken":"tok""#,
            &format!(r#""progressToken":{our_id}"#),
            1,
        );
    assert_eq!(received, expected);
}
