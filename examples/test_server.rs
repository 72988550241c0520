//! A small MCP server for mcp-warden's own tests: it does what the reference servers
//! cannot be made to do on demand (print garbage on stdout, answer a byte at a time,
//! crash, hang, report its environment and pid). Raw newline-delimited JSON over
//! stdio, so every byte it writes is under the test's control.
//!
//! Options: `--name NAME` (serverInfo), `--marker FILE` (created at start: proves the
//! server was started), `--tool NAME` (an extra tool, repeatable), `--instructions TEXT`
//! (or `--instructions-file FILE`),
//! `--exit-at-start CODE` (exit before reading anything), `--list-delay MS` (a slow
//! `tools/list`).
// A test fixture: it may panic, print, and list one behaviour per match arm.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::too_many_lines
)]

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

struct Options {
    name: String,
    extra_tools: Vec<String>,
    instructions: Option<String>,
    echo_description: String,
    endless_cursor: bool,
    /// Milliseconds to wait before answering each `tools/list`.
    list_delay: u64,
}

fn parse_args() -> Options {
    let mut opts = Options {
        endless_cursor: false,
        list_delay: 0,
        echo_description: "Echoes `message` back; `_meta` carries a number written 1.50.".into(),
        name: "test-server".into(),
        extra_tools: Vec::new(),
        instructions: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_default();
        match arg.as_str() {
            "--name" => opts.name = value,
            "--marker" => {
                std::fs::write(&value, b"started\n").expect("marker file");
            }
            "--tool" => opts.extra_tools.push(value),
            // Every tools/list page says there is another one (takes a dummy value).
            "--endless-cursor" => opts.endless_cursor = true,
            "--instructions" => opts.instructions = Some(value),
            // Read at start: other instructions without other arguments.
            "--instructions-file" => {
                opts.instructions = std::fs::read_to_string(&value).ok();
            }
            // Read at start, so a restarted server can describe `echo` differently.
            "--description-file" => {
                opts.echo_description = std::fs::read_to_string(&value).unwrap_or_default();
            }
            // A slow listing: requests that need the catalog wait meanwhile.
            "--list-delay" => opts.list_delay = value.parse().unwrap_or(0),
            "--delay-start" => {
                // A slow start (an `npx` download, say): nothing is read meanwhile.
                std::thread::sleep(std::time::Duration::from_millis(value.parse().unwrap_or(0)));
            }
            "--exit-at-start" => {
                eprintln!("test-server: exiting at start as asked");
                std::process::exit(value.parse().unwrap_or(1));
            }
            other => panic!("unknown option {other}"),
        }
    }
    opts
}

fn tool(name: &str, description: &str) -> Value {
    json!({"name": name, "description": description, "inputSchema": {"type": "object", "properties": {}}})
}

type Out = Arc<Mutex<std::io::Stdout>>;

fn write_line(out: &Out, line: &str) {
    let mut out = out.lock().unwrap();
    out.write_all(line.as_bytes()).unwrap();
    out.write_all(b"\n").unwrap();
    out.flush().unwrap();
}

fn answer(out: &Out, id: &Value, result: &Value) {
    write_line(
        out,
        &json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
    );
}

fn answer_text(out: &Out, id: &Value, text: &str) {
    answer(out, id, &text_result(text));
}

fn text_result(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}]})
}

fn main() {
    let opts = parse_args();
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    eprintln!("test-server {} starting", opts.name);
    let mut asked: std::collections::HashMap<String, Value> = std::collections::HashMap::new();
    let mut next_request = 0u32;
    let mut listings = 0u64;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            eprintln!("test-server: not JSON: {line}");
            continue;
        };
        let Some(method) = msg.get("method").and_then(Value::as_str) else {
            // An answer to one of our own requests: finish the tool call that asked.
            if let Some(call_id) = msg.get("id").and_then(|i| asked.remove(&i.to_string())) {
                let answer = msg
                    .get("result")
                    .or_else(|| msg.get("error"))
                    .cloned()
                    .unwrap_or_default();
                answer_text(&out, &call_id, &answer.to_string());
            }
            continue;
        };
        let Some(id) = msg.get("id").cloned() else {
            // Notifications are only logged, so tests can see what arrived.
            eprintln!(
                "test-server: notification {method} {}",
                msg.get("params").cloned().unwrap_or_default()
            );
            continue;
        };
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        match method {
            "initialize" => {
                let mut result = json!({
                    "protocolVersion": params["protocolVersion"],
                    "capabilities": {"tools": {"listChanged": true}},
                    "serverInfo": {"name": opts.name, "version": "1.0.0"},
                });
                if let Some(text) = &opts.instructions {
                    result["instructions"] = json!(text);
                }
                answer(&out, &id, &result);
            }
            "ping" => answer(&out, &id, &json!({})),
            "tools/list" => {
                std::thread::sleep(std::time::Duration::from_millis(opts.list_delay));
                let mut tools = vec![
                    tool("echo", &opts.echo_description),
                    tool("stop_reading", "Stops reading stdin for good (answers first)."),
                    tool("big", "Answers with a result of `mb` MiB."),
                    tool("env", "Returns the server's environment as JSON."),
                    tool("pid", "Returns the server's process id."),
                    tool("noisy", "Writes garbage to stdout, then answers a byte at a time."),
                    tool("sleep", "Answers after `ms` milliseconds."),
                    tool("crash", "Exits without answering."),
                    tool("grandchild", "Starts a descendant in a new session (setsid)."),
                    tool("stderr", "Writes `lines` lines to stderr."),
                    tool("elicit", "Asks the user a question (elicitation) and returns the answer."),
                    tool("sample", "Asks the client's model (sampling) and returns the answer."),
                    tool("roots", "Asks the client for its roots and returns them."),
                    tool("progress", "Reports progress twice, answers, then reports once more."),
                    tool("churn", "Sends `n` tools/list_changed notifications, then answers."),
                    tool("flood_stderr", "Writes `mb` MiB to stderr as fast as it can."),
                    tool("raw", "Returns the request line exactly as it arrived."),
                ];
                tools.extend(opts.extra_tools.iter().map(|t| tool(t, "An extra tool.")));
                let mut result = json!({ "tools": tools });
                if opts.endless_cursor {
                    listings += 1;
                    result["nextCursor"] = json!(format!("page-{listings}"));
                }
                answer(&out, &id, &result);
            }
            "tools/call" => match params["name"].as_str() {
                // Tools that ask the client something and return its answer.
                Some(tool @ ("elicit" | "sample" | "roots")) => {
                    next_request += 1;
                    let ours = json!(format!("srv-{next_request}"));
                    let (method, params) = match tool {
                        "elicit" => (
                            "elicitation/create",
                            json!({"message": params["arguments"]["message"].as_str().unwrap_or("Your name?"), "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}}}),
                        ),
                        "sample" => (
                            "sampling/createMessage",
                            json!({"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}], "maxTokens": 5}),
                        ),
                        _ => ("roots/list", json!({})),
                    };
                    asked.insert(ours.to_string(), id);
                    write_line(&out, &json!({"jsonrpc": "2.0", "id": ours, "method": method, "params": params}).to_string());
                }
                // Returns the request exactly as it arrived, to prove what a proxy changed.
                Some("raw") => answer_text(&out, &id, &line),
                Some("stop_reading") => {
                    answer_text(&out, &id, "no longer reading");
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(60));
                    }
                }
                _ => call(&out, &id, &params, &opts.name),
            },
            _ => write_line(
                &out,
                &json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}}).to_string(),
            ),
        }
    }
    eprintln!("test-server {}: stdin closed, exiting", opts.name);
}

fn call(out: &Out, id: &Value, params: &Value, server: &str) {
    let name = params["name"].as_str().unwrap_or_default();
    let args = &params["arguments"];
    match name {
        "echo" => {
            let message = args["message"].as_str().unwrap_or_default();
            // Written by hand so the number keeps its exact text on the wire.
            let line = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":{}}}],"_meta":{{"test/number":1.50,"test/server":{}}}}}}}"#,
                json!(message),
                json!(server)
            );
            write_line(out, &line);
        }
        "env" => {
            let env: serde_json::Map<String, Value> =
                std::env::vars().map(|(k, v)| (k, json!(v))).collect();
            answer(out, id, &text_result(&Value::Object(env).to_string()));
        }
        "pid" => answer(out, id, &text_result(&std::process::id().to_string())),
        "noisy" => {
            write_line(out, "this is log text on stdout, not JSON");
            write_line(out, &"x".repeat(9 * 1024 * 1024));
            {
                let mut o = out.lock().unwrap();
                o.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\xfe\"}\n")
                    .unwrap();
                o.flush().unwrap();
            }
            write_line(out, r#"{"jsonrpc":"2.0","id":1"#);
            write_line(
                out,
                r#"{"jsonrpc":"2.0","id":424242,"result":{"spoofed":true}}"#,
            );
            let line =
                json!({"jsonrpc": "2.0", "id": id, "result": text_result("after the noise")})
                    .to_string();
            let mut o = out.lock().unwrap();
            for byte in line.as_bytes().iter().chain(b"\n") {
                o.write_all(&[*byte]).unwrap();
                o.flush().unwrap();
            }
        }
        "sleep" => {
            let ms = args["ms"].as_u64().unwrap_or(1000);
            let out = Arc::clone(out);
            let id = id.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                answer(&out, &id, &text_result("slept"));
            });
        }
        "crash" => std::process::exit(3),
        "grandchild" => {
            // As npx wrappers can: a descendant in a session of its own, outside our
            // process group, that would outlive us if nothing took it down.
            let spawned = std::process::Command::new("setsid")
                .args(["-f", "sleep", "300"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .status();
            let text = match spawned {
                Ok(s) if s.success() => "started".to_owned(),
                other => format!("failed: {other:?}"),
            };
            answer(out, id, &text_result(&text));
        }
        "progress" => {
            let token = params["_meta"]["progressToken"].clone();
            let progress = |n: u32| {
                json!({"jsonrpc": "2.0", "method": "notifications/progress",
                       "params": {"progressToken": token, "progress": n, "total": 2}})
                .to_string()
            };
            write_line(out, &progress(1));
            write_line(out, &progress(2));
            answer(out, id, &text_result("done"));
            // Too late: the request is finished, so this one must be dropped.
            write_line(out, &progress(3));
        }
        "churn" => {
            for _ in 0..args["n"].as_u64().unwrap_or(1000) {
                write_line(
                    out,
                    r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
                );
            }
            answer(out, id, &text_result("churned"));
        }
        "flood_stderr" => {
            let line = "x".repeat(1023);
            let mut err = std::io::stderr().lock();
            for _ in 0..args["mb"].as_u64().unwrap_or(20) * 1024 {
                let _ = writeln!(err, "{line}");
            }
            answer(out, id, &text_result("flooded"));
        }
        "big" => {
            let mb = usize::try_from(args["mb"].as_u64().unwrap_or(9)).unwrap_or(9);
            answer(out, id, &text_result(&"z".repeat(mb * 1024 * 1024)));
        }
        "stderr" => {
            let lines = args["lines"].as_u64().unwrap_or(1);
            for i in 0..lines {
                eprintln!("stderr line {i} from the test server");
            }
            answer(out, id, &text_result("written"));
        }
        other => answer(out, id, &text_result(other)),
    }
}
