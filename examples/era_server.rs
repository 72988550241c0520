//! An MCP server for the dual-era tests (issue 15): it plays each kind of upstream
//! the 2026-07-28 revision allows, and checks what mcp-warden sends it the way real
//! SDKs do (a legacy connection refuses a modern envelope; a modern request needs
//! one). Raw newline-delimited JSON over stdio.
//!
//! One mode: `--legacy` (`server/discover` is -32601), `--dual` (answers both eras;
//! the first request locks the era, like the Python SDK's runner), `--modern-only`
//! (`initialize` is -32022 naming 2026-07-28), `--refuse` (modern at 2099-01-01 only),
//! `--garbage-probe` / `--silent-probe` / `--exit-on-probe` / `--overlong-probe`
//! (legacy servers that answer the probe with a non-JSON line, never, by exiting, or
//! with a discover result over mcp-warden's 8 MiB line limit).
//! A modern server's `tools/list` also has `listed_N` (N: its count of listings) and
//! `ttlMs` 45000 (`--list-ttl MS`).
//! `--subscribe`: resources offer `subscribe` (legacy `resources/subscribe` and
//! `unsubscribe` are kept in a set) and a tool `touch` sends
//! `notifications/resources/updated` for each subscribed URI and a
//! `notifications/tools/list_changed`, then answers `subscribed=` and the set.
//! Modern, `subscriptions/listen` is acknowledged and kept open (until cancelled);
//! `touch` then sends, for each listen, an update of each URI it names and a
//! `tools/list_changed` if it asked, tagged with its id; its answer names the URIs of
//! every listen and ends ` listens=N`. Tool `exit` ends the process (a crash); tool
//! `close` closes every listen with `notifications/cancelled`.
//! Other options: `--starts FILE` (a line appended per start), `--probe-delay MS`
//! (answer the first `server/discover` that late: a slow start that outlasts the
//! probe's wait).
//!
//! Tools: `zeta`, `alpha`, `echo` (returns `message`), `raw` (returns the request
//! line exactly as it arrived), `log` (first sends a `notifications/message` at `info`
//! naming the level last set with `logging/setLevel`). Resources: `era://known` only; another URI is -32002
//! (legacy) or -32602 (modern).
// A test fixture: it may panic, print, and list one behaviour per match arm.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::too_many_lines,
    clippy::needless_pass_by_value
)]

use std::io::{BufRead, Write};

use serde_json::{Value, json};

const MODERN: &str = "2026-07-28";
const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Legacy,
    Dual,
    ModernOnly,
    Refuse,
    GarbageProbe,
    SilentProbe,
    ExitOnProbe,
    OverlongProbe,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Locked {
    None,
    Legacy,
    Modern,
}

fn send(value: &Value) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}").unwrap();
    out.flush().unwrap();
}

fn answer(id: &Value, result: Value) {
    send(&json!({"jsonrpc": "2.0", "id": id, "result": result}));
}

fn error(id: &Value, code: i64, message: &str, data: Option<Value>) {
    let mut error = json!({"code": code, "message": message});
    if let Some(data) = data {
        error["data"] = data;
    }
    send(&json!({"jsonrpc": "2.0", "id": id, "error": error}));
}

fn tools() -> Value {
    let tool = |name: &str| json!({"name": name, "description": format!("The `{name}` tool."), "inputSchema": {"type": "object"}});
    json!([
        tool("zeta"),
        tool("echo"),
        tool("alpha"),
        tool("raw"),
        tool("log")
    ])
}

fn capabilities(subscribe: bool) -> Value {
    let resources = if subscribe {
        json!({"subscribe": true})
    } else {
        json!({})
    };
    json!({"tools": {"listChanged": true}, "resources": resources, "logging": {}})
}

fn main() {
    let mut mode = Mode::Legacy;
    let mut probe_delay = 0u64;
    let mut list_ttl = 45_000u64;
    let mut listings = 0u32;
    let mut subscribe = false;
    let mut subscribed: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    // Open listens: (id, URIs, whether it asked for tools/list_changed).
    let mut listens: Vec<(Value, Vec<String>, bool)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--legacy" => mode = Mode::Legacy,
            "--subscribe" => subscribe = true,
            "--dual" => mode = Mode::Dual,
            "--modern-only" => mode = Mode::ModernOnly,
            "--refuse" => mode = Mode::Refuse,
            "--garbage-probe" => mode = Mode::GarbageProbe,
            "--silent-probe" => mode = Mode::SilentProbe,
            "--exit-on-probe" => mode = Mode::ExitOnProbe,
            "--overlong-probe" => mode = Mode::OverlongProbe,
            "--probe-delay" => probe_delay = args.next().unwrap().parse().unwrap(),
            "--list-ttl" => list_ttl = args.next().unwrap().parse().unwrap(),
            "--starts" => {
                let file = args.next().unwrap();
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(file)
                    .unwrap();
                writeln!(f, "start").unwrap();
            }
            other => panic!("unknown option {other}"),
        }
    }
    let speaks_legacy = !matches!(mode, Mode::ModernOnly | Mode::Refuse);
    let mut locked = Locked::None;
    let mut level = String::from("unset");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if msg["method"] == "notifications/cancelled" {
            listens.retain(|(id, _, _)| *id != msg["params"]["requestId"]);
        }
        let (Some(method), Some(id)) = (msg["method"].as_str(), msg.get("id").cloned()) else {
            eprintln!("era-server: notification or answer: {line}");
            continue;
        };
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        let enveloped = params["_meta"].get(VERSION_KEY).is_some();
        match method {
            "server/discover" => match mode {
                Mode::Legacy => error(&id, -32601, "Method not found", None),
                Mode::GarbageProbe => {
                    println!("this is not JSON-RPC at all");
                }
                Mode::SilentProbe => {}
                Mode::ExitOnProbe => std::process::exit(3),
                Mode::OverlongProbe => answer(
                    &id,
                    json!({"supportedVersions": ["2026-07-28"], "capabilities": {}, "pad": "x".repeat(9 << 20)}),
                ),
                Mode::Refuse => error(
                    &id,
                    -32022,
                    "Unsupported protocol version",
                    Some(
                        json!({"supported": ["2099-01-01"], "requested": params["_meta"][VERSION_KEY]}),
                    ),
                ),
                Mode::Dual | Mode::ModernOnly => {
                    // Slow once, as a server's start is.
                    std::thread::sleep(std::time::Duration::from_millis(probe_delay));
                    probe_delay = 0;
                    locked = Locked::Modern;
                    answer(
                        &id,
                        json!({
                            "resultType": "complete",
                            "supportedVersions": [MODERN],
                            "capabilities": capabilities(subscribe),
                            "instructions": "era-server instructions",
                            "ttlMs": 60000,
                            "cacheScope": "public",
                            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "era-server", "version": "1"}},
                        }),
                    );
                }
            },
            "initialize" if !speaks_legacy || locked == Locked::Modern => {
                let supported = if mode == Mode::Refuse {
                    "2099-01-01"
                } else {
                    MODERN
                };
                error(
                    &id,
                    -32022,
                    "Unsupported protocol version",
                    Some(json!({"supported": [supported], "requested": params["protocolVersion"]})),
                );
            }
            "initialize" => {
                locked = Locked::Legacy;
                answer(
                    &id,
                    json!({
                        "protocolVersion": params["protocolVersion"],
                        "capabilities": capabilities(subscribe),
                        "serverInfo": {"name": "era-server", "version": "1"},
                    }),
                );
            }
            // As the Python SDK's dual runner: an enveloped request on a legacy
            // connection, or a modern connection's request without one, is refused.
            _ if locked == Locked::Legacy && enveloped => {
                error(&id, -32600, "modern envelope on a legacy connection", None);
            }
            _ if locked == Locked::Modern && !enveloped => {
                error(&id, -32600, "modern request without its envelope", None);
            }
            _ if locked == Locked::None => {
                error(&id, -32600, "request before initialize", None);
            }
            "tools/list" => {
                let mut result = json!({"tools": tools()});
                if subscribe && let Some(all) = result["tools"].as_array_mut() {
                    all.push(json!({"name": "touch", "inputSchema": {"type": "object"}}));
                    all.push(json!({"name": "exit", "inputSchema": {"type": "object"}}));
                    all.push(json!({"name": "close", "inputSchema": {"type": "object"}}));
                }
                listings += 1;
                if locked == Locked::Modern {
                    // Its list changes at every listing: `listed_N` names the count.
                    if let Some(all) = result["tools"].as_array_mut() {
                        let name = format!("listed_{listings}");
                        all.push(json!({"name": name, "inputSchema": {"type": "object"}}));
                    }
                    result["resultType"] = json!("complete");
                    result["ttlMs"] = json!(list_ttl);
                    result["cacheScope"] = json!("public");
                }
                answer(&id, result);
            }
            "logging/setLevel" if locked == Locked::Legacy => {
                params["level"]
                    .as_str()
                    .unwrap_or_default()
                    .clone_into(&mut level);
                answer(&id, json!({}));
            }
            "tools/call" => {
                if params["name"] == "log" {
                    // One message at `info`, carrying the level last set.
                    send(
                        &json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "logger": "era", "data": format!("level={level}")}}),
                    );
                }
                if params["name"] == "exit" {
                    std::process::exit(9);
                }
                if params["name"] == "close" {
                    for (listen, _, _) in listens.drain(..) {
                        send(
                            &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": listen}}),
                        );
                    }
                }
                if params["name"] == "touch" {
                    for (listen, uris, tools) in &listens {
                        let tag = json!({"io.modelcontextprotocol/subscriptionId": listen});
                        for uri in uris {
                            send(
                                &json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": uri, "_meta": tag}}),
                            );
                        }
                        if *tools {
                            send(
                                &json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed", "params": {"_meta": tag}}),
                            );
                        }
                    }
                    for uri in &subscribed {
                        send(
                            &json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": uri, "title": format!("key {}{}", "AKIA", "Q3EGRTXB5NLM7HZD")}}),
                        );
                    }
                    send(&json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}));
                }
                let text = match params["name"].as_str() {
                    Some("raw") => line.clone(),
                    Some("touch") if locked == Locked::Modern => {
                        let mut all: Vec<String> = listens
                            .iter()
                            .flat_map(|(_, uris, _)| uris.clone())
                            .collect();
                        all.sort();
                        all.dedup();
                        format!("subscribed={} listens={}", all.join(","), listens.len())
                    }
                    Some("touch") => format!(
                        "subscribed={}",
                        subscribed.iter().cloned().collect::<Vec<_>>().join(",")
                    ),
                    Some("echo") => params["arguments"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    Some(name) => format!("{name} called"),
                    None => String::new(),
                };
                let mut result = json!({"content": [{"type": "text", "text": text}]});
                if locked == Locked::Modern {
                    result["resultType"] = json!("complete");
                }
                answer(&id, result);
            }
            "resources/list" => answer(
                &id,
                json!({"resources": [{"uri": "era://known", "name": "known"}]}),
            ),
            "resources/read" => {
                if params["uri"] == "era://known" {
                    answer(
                        &id,
                        json!({"contents": [{"uri": "era://known", "text": "known"}]}),
                    );
                } else if locked == Locked::Modern {
                    error(
                        &id,
                        -32602,
                        "Resource not found",
                        Some(json!({"uri": params["uri"]})),
                    );
                } else {
                    error(
                        &id,
                        -32002,
                        "Resource not found",
                        Some(json!({"uri": params["uri"]})),
                    );
                }
            }
            "subscriptions/listen" if subscribe && locked == Locked::Modern => {
                let asked = &params["notifications"];
                let uris = asked["resourceSubscriptions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|u| u.as_str().map(str::to_owned))
                    .collect();
                let tools = asked["toolsListChanged"] == true;
                send(
                    &json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged", "params": {"notifications": asked, "_meta": {"io.modelcontextprotocol/subscriptionId": id}}}),
                );
                listens.push((id, uris, tools));
            }
            "resources/subscribe" if subscribe && locked == Locked::Legacy => {
                subscribed.insert(params["uri"].as_str().unwrap_or_default().to_owned());
                answer(&id, json!({}));
            }
            "resources/unsubscribe" if subscribe && locked == Locked::Legacy => {
                subscribed.remove(params["uri"].as_str().unwrap_or_default());
                answer(&id, json!({}));
            }
            "ping" if locked == Locked::Legacy => answer(&id, json!({})),
            _ => error(&id, -32601, "Method not found", None),
        }
    }
}
