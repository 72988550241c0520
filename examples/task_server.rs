//! A 2025-11-25 MCP server with tasks whose ids collide on purpose: every task it
//! creates is `"1"`, as it would be in every other copy of it. A fixture for
//! `tests/era_tasks.rs`: two copies behind mcp-warden must never see or answer each
//! other's task, and a status about a task it never created (`"2"`) must not reach
//! the client.
//!
//! Tool `work {text}` (`execution.taskSupport: "optional"`): with `params.task` it
//! answers `CreateTaskResult` for task `"1"` (status `completed` at once), after a
//! `notifications/tasks/status` for `"1"` and one for `"2"`; without it, the result
//! itself. `tasks/result` of `"1"` answers `NAME: TEXT` (`NAME` from `--name`) tagged
//! `related-task` `"1"`; `tasks/get` and `tasks/cancel` answer the task; `tasks/list`
//! answers it too (mcp-warden never asks). Anything else about an unknown task: -32602.
// A test fixture: it reports on stderr.
#![allow(clippy::print_stderr)]

#[path = "support/mini_mcp.rs"]
mod mini_mcp;

use std::process::ExitCode;

use mini_mcp::{Args, Out, Outcome, Server, tool};
use serde_json::{Value, json};

struct TaskServer {
    name: String,
    /// The text of the last task-augmented call (the one task there is).
    text: Option<String>,
}

fn task() -> Value {
    json!({"taskId": "1", "status": "completed", "ttl": 60000, "createdAt": "2026-12-07T00:00:00Z", "lastUpdatedAt": "2026-12-07T00:00:00Z", "pollInterval": 100})
}

impl TaskServer {
    fn answer_of(&self, text: &str) -> String {
        format!("{}: {text}", self.name)
    }
}

impl Server for TaskServer {
    fn tools(&self) -> Vec<Value> {
        let mut work = tool(
            "work",
            "Echoes its text, as a task when asked",
            json!({"type": "object", "properties": {"text": {"type": "string"}}}),
        );
        work["execution"] = json!({"taskSupport": "optional"});
        vec![work]
    }

    fn call(&mut self, name: &str, arguments: &Value) -> Option<Outcome> {
        let text = arguments.get("text").and_then(Value::as_str)?;
        (name == "work").then(|| Outcome::Text(self.answer_of(text)))
    }

    fn capabilities(&self) -> Option<Value> {
        Some(json!({"tasks": {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}}))
    }

    fn answer(
        &mut self,
        method: &str,
        params: &Value,
        out: &mut Out,
    ) -> Option<Result<Value, String>> {
        let asked = params.get("taskId").and_then(Value::as_str);
        match method {
            "tools/call" if params.get("task").is_some() => {
                let text = params.pointer("/arguments/text").and_then(Value::as_str)?;
                self.text = Some(text.to_owned());
                for id in ["1", "2"] {
                    let mut status = task();
                    status["taskId"] = json!(id);
                    if out
                        .notify("notifications/tasks/status", Some(status))
                        .is_err()
                    {
                        return Some(Err("stdout failed".to_owned()));
                    }
                }
                Some(Ok(json!({"task": task()})))
            }
            "tasks/get" | "tasks/cancel" | "tasks/result" | "tasks/list"
                if asked.is_some_and(|id| id != "1") =>
            {
                Some(Err(format!("unknown task {asked:?}")))
            }
            "tasks/get" | "tasks/cancel" => Some(Ok(task())),
            "tasks/list" => Some(Ok(json!({"tasks": [task()]}))),
            "tasks/result" => {
                let text = self.answer_of(self.text.as_deref().unwrap_or_default());
                Some(Ok(json!({
                    "content": [{"type": "text", "text": text}],
                    "_meta": {"io.modelcontextprotocol/related-task": {"taskId": "1"}},
                })))
            }
            _ => None,
        }
    }
}

fn main() -> ExitCode {
    let mut args = Args::new("task_server");
    let mut name = "task_server".to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--name" => name = args.value("--name"),
            other => args.usage(&format!("unknown argument {other}")),
        }
    }
    mini_mcp::run("task_server", &mut TaskServer { name, text: None })
}
