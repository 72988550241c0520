//! An MCP server that answers calls the 2026-07-28 way: with `resultType:
//! "input_required"` (multi round-trip requests), for mcp-warden's bridging tests
//! (`tests/mrtr.rs`). It speaks `initialize` too, so the session reaches it as any
//! server; its answers are written as raw text, so every byte is the test's.
//!
//! Tool `ask`: the first call (no `requestState`) is answered `input_required` with
//! the entries chosen by `--ask` (default `elicitation,sampling,roots`; keys
//! `confirm`, `llm`, `where`) and `requestState` `"a\u0022b\/c#1"`, escapes and all.
//! A retry must carry that state back byte for byte (the raw line is searched for
//! `"requestState":"a\u0022b\/c#N"`): then it is answered with one text item holding
//! `{"round":N,"keys":[…],"answers":{…},"meta":{…}}` (the `inputResponses` keys it got,
//! sorted, the answers, and the retry's `_meta`), or, with `--forever`, asked again
//! with `#N+1`. A state that changed is answered `isError` with `state changed: …`.
//! Tool `shed`: `input_required` with only a `requestState` (load shedding), then done.
//! Every call with a progress token first reports progress 1 of 2 on it.
//! Tool `plain`: answers `called plain`, or an error when the call carries
//! `inputResponses` or `requestState` (it never asked for any).
//! `--escaped`: every `"input_required"` it writes is spelled `"input_requ\u0069red"`.
// A test fixture: it may panic and print.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::io::{BufRead, Write};

use serde_json::{Value, json};

/// The server's state as it writes it: escapes a re-serializer would change.
const STATE_HEAD: &str = r#""a\u0022b\/c#"#;

struct Options {
    ask: Vec<String>,
    forever: bool,
    escaped: bool,
}

fn options() -> Options {
    let mut opts = Options {
        ask: vec!["elicitation".into(), "sampling".into(), "roots".into()],
        forever: false,
        escaped: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--ask" => {
                let list = args.next().unwrap_or_default();
                opts.ask = list
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "--forever" => opts.forever = true,
            "--escaped" => opts.escaped = true,
            other => panic!("unknown option {other}"),
        }
    }
    opts
}

fn entry(kind: &str) -> Option<(&'static str, Value)> {
    match kind {
        "elicitation" => Some((
            "confirm",
            json!({"method": "elicitation/create", "params": {
                "message": "Go ahead?",
                "requestedSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}
            }}),
        )),
        "sampling" => Some((
            "llm",
            json!({"method": "sampling/createMessage", "params": {
                "messages": [{"role": "user", "content": {"type": "text", "text": "Capital of France?"}}],
                "maxTokens": 10
            }}),
        )),
        "roots" => Some(("where", json!({"method": "roots/list", "params": {}}))),
        _ => None,
    }
}

fn input_required(opts: &Options, round: u64) -> String {
    let entries: serde_json::Map<String, Value> = opts
        .ask
        .iter()
        .filter_map(|k| entry(k))
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let mut result =
        format!(r#"{{"resultType":"input_required","requestState":{STATE_HEAD}{round}""#);
    if !entries.is_empty() {
        result.push_str(r#","inputRequests":"#);
        result.push_str(&Value::Object(entries).to_string());
    }
    result.push('}');
    result
}

/// The round number of the state the retry carries, when it is ours byte for byte.
fn state_round(line: &str) -> Option<u64> {
    let head = format!(r#""requestState":{STATE_HEAD}"#);
    let rest = &line[line.find(&head)? + head.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    rest[digits.len()..]
        .starts_with('"')
        .then(|| digits.parse().ok())?
}

fn text_result(text: &str, is_error: bool) -> String {
    json!({"content": [{"type": "text", "text": text}], "isError": is_error}).to_string()
}

fn call(opts: &Options, line: &str, params: &Value) -> String {
    let name = params["name"].as_str().unwrap_or_default();
    let state = params.get("requestState");
    match (name, state) {
        ("ask" | "shed", None) => {
            if name == "shed" {
                return format!(
                    r#"{{"resultType":"input_required","requestState":{STATE_HEAD}1"}}"#
                );
            }
            input_required(opts, 1)
        }
        ("ask" | "shed", Some(state)) => {
            let Some(round) = state_round(line) else {
                return text_result(&format!("state changed: {state}"), true);
            };
            if opts.forever && name == "ask" {
                return input_required(opts, round + 1);
            }
            let answers = params.get("inputResponses").cloned().unwrap_or(json!({}));
            let mut keys: Vec<&String> = answers
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            keys.sort();
            let report = json!({"round": round, "keys": keys, "answers": answers, "meta": params.get("_meta")});
            text_result(&report.to_string(), false)
        }
        // A first try: anything of a retry in it is reported.
        _ if params.get("inputResponses").is_some() || state.is_some() => {
            text_result(&format!("called {name} with a retry's members"), true)
        }
        _ => text_result(&format!("called {name}"), false),
    }
}

fn main() {
    let opts = options();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let (Some(id), Some(method)) = (msg.get("id"), msg["method"].as_str()) else {
            continue;
        };
        let params = &msg["params"];
        let result = match method {
            "initialize" => json!({
                "protocolVersion": params["protocolVersion"].as_str().unwrap_or("2025-06-18"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "mrtr-server", "version": "1.0.0"}
            })
            .to_string(),
            "tools/list" => json!({"tools": [
                {"name": "ask", "description": "Asks for input first.", "inputSchema": {"type": "object"}},
                {"name": "shed", "description": "Sheds load once.", "inputSchema": {"type": "object"}},
                {"name": "plain", "description": "Answers at once.", "inputSchema": {"type": "object"}}
            ]})
            .to_string(),
            "tools/call" => {
                // Each try reports progress from 1 again, as a stateless server does.
                if let Some(token) = params["_meta"].get("progressToken") {
                    let note = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                        "params": {"progressToken": token, "progress": 1, "total": 2}});
                    writeln!(out, "{note}").unwrap();
                }
                call(&opts, &line, params)
            }
            "ping" => "{}".to_owned(),
            _ => {
                let error = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}});
                writeln!(out, "{error}").unwrap();
                out.flush().unwrap();
                continue;
            }
        };
        let result = if opts.escaped {
            // The same value to a JSON parser, other bytes to a byte search.
            result.replace(r#""input_required""#, r#""input_requ\u0069red""#)
        } else {
            result
        };
        writeln!(out, r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#).unwrap();
        out.flush().unwrap();
    }
}
