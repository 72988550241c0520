//! A modern-only MCP server (2026-07-28) speaking the `io.modelcontextprotocol/tasks`
//! extension (seps/2663-tasks-extension.md), which no SDK ships: the fixture of
//! `tests/era_tasks.rs` for the cell modern client → modern server. Raw
//! newline-delimited JSON over stdio; `initialize` is -32022.
//!
//! `server/discover` offers the extension. Tool `job {text}`: when the request's
//! `clientCapabilities` declare the extension it answers `resultType: "task"` for task
//! `"1"` (every copy of this server names its task `"1"`), else `sync: TEXT` at once.
//! `tasks/get` of `"1"`: `input_required` with `inputRequests` `confirm`
//! (`elicitation/create`) and `where` (`roots/list`) and `requestState` `"rs-1"`, until
//! a `tasks/update` has answered `confirm`; then `completed` with the call's result:
//! `done: TEXT` and a fake AWS key (the out-filter's to redact). `tasks/update` and
//! `tasks/cancel` answer `{}`; any other task id is -32602. Tool `stats` answers
//! `{"gets":N,"updates":[…]}`: how many `tasks/get` it got, and each `tasks/update`'s
//! params as they arrived (without `_meta`). `--always-task`: `job` answers a task even
//! to a request that did not declare the extension (a server breaking the rule).
//! `--escaped-task`: every `resultType: "task"` is written `"t\u0061sk"` (the same
//! value to a JSON parser, other bytes to a byte search).
//!
//! For a legacy client's task (`tests/era_tasks_legacy_client.rs`): `job` is listed
//! with `execution.taskSupport: "optional"` and `only_task` (the same job) with
//! `"required"`. `--working N`: the first N `tasks/get` answer `working` (and
//! `pollIntervalMs` 0, which a poller must not take as "at once"). `--ttl S`:
//! the task is created with `ttlMs` S × 1000.
//! Hostile tricks: `--ask-sampling` adds a `sampling/createMessage` entry `think` to
//! the questions; `--push-status` follows the task's creation with a
//! `notifications/tasks/status` of the task `completed`, its result carrying the
//! fake key; `--foreign-ids` answers `tasks/get` under task id `"2"` and tags the
//! completed result with `related-task` `"2"` (another task's ids). `--never-task`:
//! `job` answers at once even when the extension is declared (the server decides),
//! with the job's result and its fake key.
//!
//! For `notifications/tasks` (`tests/era_task_listen.rs`): `--push-tasks` takes a
//! `subscriptions/listen` naming `taskIds` (it keeps it open, never answers it),
//! acknowledges the ids it has (`"1"`), then pushes on that listen, tagged with its
//! id: task `"2"` (which it never made) `completed` with the fake key, task `"1"`
//! `working`, then `"1"` `completed` with the job's result and the fake key, twice.
//! And each call of `stats` is followed by an untagged `notifications/tasks` of
//! `"1"` `completed` with the fake key (a push no listen asked for); `stats` also
//! says `listens`: the `notifications` of each listen it got. Tool `exit` (listed
//! with `--push-tasks` only) ends the process.
// A test fixture: it may panic and print.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::io::{BufRead, Write};

use serde_json::{Value, json};

const MODERN: &str = "2026-07-28";
const EXTENSION: &str = "io.modelcontextprotocol/tasks";

#[derive(Default)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "a fixture's command-line switches and what it was asked"
)]
struct State {
    always_task: bool,
    escaped_task: bool,
    never_task: bool,
    working: u64,
    ttl: Option<u64>,
    ask_sampling: bool,
    push_status: bool,
    foreign_ids: bool,
    push_tasks: bool,
    listens: Vec<Value>,
    text: String,
    gets: u64,
    updates: Vec<Value>,
    confirmed: bool,
    cancelled: bool,
}

fn task(status: &str) -> Value {
    json!({
        "taskId": "1",
        "status": status,
        "createdAt": "2026-12-07T00:00:00Z",
        "lastUpdatedAt": "2026-12-07T00:00:00Z",
        "ttlMs": 60000,
        "pollIntervalMs": 10,
    })
}

fn declares_extension(params: &Value) -> bool {
    params
        .pointer("/_meta/io.modelcontextprotocol~1clientCapabilities/extensions")
        .and_then(|e| e.get(EXTENSION))
        .is_some()
}

/// The job's result: its text and a fake AWS key (the out-filter's to redact).
fn job_result(state: &State) -> Value {
    let key = format!("{}{}", "AKIA", "Q3EGRTXB5NLM7HZD");
    json!({"content": [{"type": "text", "text": format!("done: {} with key {key}", state.text)}]})
}

fn tasks_get(state: &mut State) -> Value {
    state.gets += 1;
    let mut t = tasks_get_inner(state);
    if state.foreign_ids {
        t["taskId"] = json!("2");
        if let Some(result) = t.get_mut("result") {
            result["_meta"] = json!({"io.modelcontextprotocol/related-task": {"taskId": "2"}});
        }
    }
    t
}

fn tasks_get_inner(state: &mut State) -> Value {
    if state.gets <= state.working {
        let mut t = task("working");
        t["resultType"] = json!("complete");
        t["pollIntervalMs"] = json!(0);
        return t;
    }
    if state.cancelled {
        let mut t = task("cancelled");
        t["resultType"] = json!("complete");
        return t;
    }
    if !state.confirmed {
        let mut t = task("input_required");
        t["resultType"] = json!("complete");
        t["requestState"] = json!("rs-1");
        t["inputRequests"] = json!({
            "confirm": {"method": "elicitation/create", "params": {
                "message": "Run the job?",
                "requestedSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}
            }},
            "where": {"method": "roots/list", "params": {}},
        });
        if state.ask_sampling {
            t["inputRequests"]["think"] = json!({"method": "sampling/createMessage", "params": {
                "messages": [{"role": "user", "content": {"type": "text", "text": "Say yes."}}],
                "maxTokens": 10
            }});
        }
        return t;
    }
    let mut t = task("completed");
    t["resultType"] = json!("complete");
    t["result"] = job_result(state);
    t
}

/// The answer to one request: a result, or an error (code, message).
fn answer(state: &mut State, method: &str, params: &Value) -> Result<Value, (i64, String)> {
    let unknown = || (-32602, "unknown task".to_owned());
    match method {
        "server/discover" => Ok(json!({
            "resultType": "complete",
            "supportedVersions": [MODERN],
            "capabilities": {"tools": {}, "extensions": {EXTENSION: {}}},
            "ttlMs": 60000,
            "cacheScope": "public",
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "ext-task-server", "version": "1"}},
        })),
        "initialize" => Err((-32022, "Unsupported protocol version".to_owned())),
        "tools/list" => Ok(json!({"resultType": "complete", "tools": tools(state)})),
        "tools/call" if params["name"] == "stats" => {
            let seen = json!({"gets": state.gets, "updates": state.updates,
                "cancelled": state.cancelled, "listens": state.listens});
            Ok(json!({"content": [{"type": "text", "text": seen.to_string()}]}))
        }
        "tools/call" if params["name"] == "exit" => std::process::exit(1),
        "tools/call" => {
            let text = params["arguments"]["text"].as_str().unwrap_or_default();
            if !declares_extension(params) && !state.always_task {
                return Ok(json!({"content": [{"type": "text", "text": format!("sync: {text}")}]}));
            }
            text.clone_into(&mut state.text);
            if state.never_task {
                return Ok(job_result(state));
            }
            let mut t = task("working");
            t["resultType"] = json!("task");
            if let Some(ttl) = state.ttl {
                t["ttlMs"] = json!(ttl.saturating_mul(1000));
            }
            Ok(t)
        }
        _ if method.starts_with("tasks/") && params["taskId"] != "1" => Err(unknown()),
        "tasks/get" => Ok(tasks_get(state)),
        "tasks/update" => {
            let mut seen = params.clone();
            if let Some(p) = seen.as_object_mut() {
                p.remove("_meta");
            }
            state.updates.push(seen);
            if params["inputResponses"].get("confirm").is_some() {
                state.confirmed = true;
            }
            Ok(json!({"resultType": "complete"}))
        }
        "tasks/cancel" => {
            state.cancelled = true;
            Ok(json!({"resultType": "complete"}))
        }
        _ => Err((-32601, "method not found".to_owned())),
    }
}

/// The tools listed: `exit` only with `--push-tasks`.
fn tools(state: &State) -> Value {
    let mut tools = json!([
        {"name": "job", "description": "Runs a job, as a task when it may.", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}, "execution": {"taskSupport": "optional"}},
        {"name": "only_task", "description": "Runs a job, only as a task.", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}, "execution": {"taskSupport": "required"}},
        {"name": "stats", "description": "What this server was asked.", "inputSchema": {"type": "object"}},
    ]);
    if state.push_tasks
        && let Some(all) = tools.as_array_mut()
    {
        all.push(json!({"name": "exit", "description": "Ends this process.", "inputSchema": {"type": "object"}}));
    }
    tools
}

fn number(name: &str) -> Option<u64> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .map(|n| n.parse().unwrap())
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn main() {
    let mut state = State {
        always_task: flag("--always-task"),
        escaped_task: flag("--escaped-task"),
        never_task: flag("--never-task"),
        working: number("--working").unwrap_or(0),
        ttl: number("--ttl"),
        ask_sampling: flag("--ask-sampling"),
        push_status: flag("--push-status"),
        foreign_ids: flag("--foreign-ids"),
        push_tasks: flag("--push-tasks"),
        ..State::default()
    };
    let mut out = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { return };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let (Some(id), Some(method)) = (msg.get("id"), msg["method"].as_str()) else {
            continue;
        };
        if method == "subscriptions/listen" && state.push_tasks {
            state.listens.push(msg["params"]["notifications"].clone());
            for push in listen_pushes(&state, id, &msg["params"]) {
                writeln!(out, "{push}").unwrap();
            }
            out.flush().unwrap();
            continue;
        }
        let reply = match answer(&mut state, method, &msg["params"]) {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err((code, message)) => {
                let data = (code == -32022).then(|| json!({"supported": [MODERN]}));
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message, "data": data}})
            }
        };
        let line = reply.to_string();
        if state.escaped_task {
            // The same result a client decodes, spelled so a byte search for `"task"` misses it.
            writeln!(
                out,
                "{}",
                line.replace(r#""resultType":"task""#, r#""resultType":"t\u0061sk""#)
            )
            .unwrap();
        } else {
            writeln!(out, "{line}").unwrap();
        }
        let created = reply["result"]["resultType"] == "task";
        if created && state.push_status {
            let mut t = task("completed");
            t["result"] = job_result(&state);
            let push =
                json!({"jsonrpc": "2.0", "method": "notifications/tasks/status", "params": t});
            writeln!(out, "{push}").unwrap();
        }
        if state.push_tasks && msg["params"]["name"] == "stats" {
            writeln!(out, "{}", task_push(&state, "1", "completed", None)).unwrap();
        }
        out.flush().unwrap();
    }
}

/// A `notifications/tasks` of task `task_id` in `status` (the job's result inline
/// when `completed`), tagged with listen `listen` when given.
fn task_push(state: &State, task_id: &str, status: &str, listen: Option<&Value>) -> Value {
    let mut t = task(status);
    t["taskId"] = json!(task_id);
    if status == "completed" {
        t["result"] = job_result(state);
    }
    if let Some(listen) = listen {
        t["_meta"] = json!({"io.modelcontextprotocol/subscriptionId": listen});
    }
    json!({"jsonrpc": "2.0", "method": "notifications/tasks", "params": t})
}

/// What `--push-tasks` writes for a `subscriptions/listen`: its acknowledgement (of
/// the ids it knows), then, when it names task `"1"`, the pushes the module docs list.
fn listen_pushes(state: &State, listen: &Value, params: &Value) -> Vec<Value> {
    let asked: Vec<&Value> = params["notifications"]["taskIds"]
        .as_array()
        .map(|ids| ids.iter().filter(|id| *id == "1").collect())
        .unwrap_or_default();
    let ack = json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
        "params": {"notifications": {"taskIds": asked},
            "_meta": {"io.modelcontextprotocol/subscriptionId": listen}}});
    let mut out = vec![ack];
    if !asked.is_empty() {
        out.push(task_push(state, "2", "completed", Some(listen)));
        out.push(task_push(state, "1", "working", Some(listen)));
        out.push(task_push(state, "1", "completed", Some(listen)));
        out.push(task_push(state, "1", "completed", Some(listen)));
    }
    out
}
