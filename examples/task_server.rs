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
//!
//! Tool `ask {text}` (`taskSupport: "required"`, for `tests/era_tasks_modern_client.rs`)
//! makes task `"q"`, `input_required` until its question is answered. `tasks/result`
//! of `"q"` is where it asks: an `elicitation/create` tagged `related-task` `"q"`
//! (`Which colour, says NAME?`; with `--sample`, first a `sampling/createMessage` tagged the same, which
//! mcp-warden should refuse by default); the `tasks/result` is answered once the
//! elicitation is: `ask: TEXT, told: ANSWER` and a fake AWS key (the out-filter's to
//! redact). `--foreign-tag`: the elicitation is tagged with task `"zz"`, which it
//! never created. `--late-result`: the first `tasks/result` of `"1"` is answered only
//! when a second one comes (a payload that comes after the server says `completed`).
//! Tool `seen` answers what came back to its own requests, by id:
//! `{"e1": {…result or error…}, "s1": …}`.
// A test fixture: it reports on stderr.
#![allow(clippy::print_stderr)]

#[path = "support/mini_mcp.rs"]
mod mini_mcp;

use std::process::ExitCode;

use mini_mcp::{Args, Out, Outcome, Server, tool};
use serde_json::{Map, Value, json};

/// What the command line asked this server to try.
#[derive(Default)]
struct Tricks {
    /// `--sample`: a sampling request before the task's question.
    sample: bool,
    /// `--foreign-tag`: the question tagged with a task it never made.
    foreign_tag: bool,
    /// `--late-result`: the first `tasks/result` of `"1"` waits for the next one.
    late_result: bool,
}

#[derive(Default)]
struct TaskServer {
    name: String,
    /// The text of the last task-augmented call (the one task there is).
    text: Option<String>,
    /// `ask`: its text, the elicitation's answer once given, and the `tasks/result`
    /// requests waiting for it.
    ask: Option<String>,
    told: Option<Value>,
    waiting: Vec<Value>,
    asked: bool,
    tricks: Tricks,
    /// `tasks/result` requests of `"1"` held back (`--late-result`).
    late: Vec<Value>,
    /// What came back to our own requests, by id.
    seen: Map<String, Value>,
}

fn ask_task(status: &str) -> Value {
    json!({"taskId": "q", "status": status, "ttl": 60000, "createdAt": "2026-12-07T00:00:00Z", "lastUpdatedAt": "2026-12-07T00:00:00Z", "pollInterval": 50})
}

fn task() -> Value {
    json!({"taskId": "1", "status": "completed", "ttl": 60000, "createdAt": "2026-12-07T00:00:00Z", "lastUpdatedAt": "2026-12-07T00:00:00Z", "pollInterval": 100})
}

impl TaskServer {
    fn answer_of(&self, text: &str) -> String {
        format!("{}: {text}", self.name)
    }

    /// The payload of task `"1"`.
    fn work_result(&self) -> Value {
        let text = self.answer_of(self.text.as_deref().unwrap_or_default());
        json!({
            "content": [{"type": "text", "text": text}],
            "_meta": {"io.modelcontextprotocol/related-task": {"taskId": "1"}},
        })
    }

    /// The payload of task `"q"`: its text, what the user said, and a fake key.
    fn ask_result(&self) -> Value {
        let told = self.told.as_ref().map(Value::to_string).unwrap_or_default();
        // A fake AWS access key, in two pieces so no scanner flags this file.
        let text = format!(
            "{}: ask: {}, told: {told}, key {}{}",
            self.name,
            self.ask.as_deref().unwrap_or_default(),
            "AKIA",
            "Q3EGRTXB5NLM7HZD"
        );
        json!({
            "content": [{"type": "text", "text": text}],
            "_meta": {"io.modelcontextprotocol/related-task": {"taskId": "q"}},
        })
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
        let mut ask = tool(
            "ask",
            "Asks the user something, as a task only",
            json!({"type": "object", "properties": {"text": {"type": "string"}}}),
        );
        ask["execution"] = json!({"taskSupport": "required"});
        let seen = tool(
            "seen",
            "What came back to its requests",
            json!({"type": "object"}),
        );
        vec![work, ask, seen]
    }

    fn call(&mut self, name: &str, arguments: &Value) -> Option<Outcome> {
        if name == "seen" {
            return Some(Outcome::Text(Value::Object(self.seen.clone()).to_string()));
        }
        let text = arguments.get("text").and_then(Value::as_str)?;
        (name == "work").then(|| Outcome::Text(self.answer_of(text)))
    }

    fn on_response(&mut self, message: &Map<String, Value>) {
        let Some(id) = message.get("id").and_then(Value::as_str) else {
            return;
        };
        let answer = message
            .get("result")
            .or_else(|| message.get("error"))
            .cloned()
            .unwrap_or_default();
        if id == "e1" {
            self.told = Some(answer.clone());
        }
        self.seen.insert(id.to_owned(), answer);
    }

    fn after_response(&mut self, out: &mut Out) -> std::io::Result<()> {
        if self.told.is_some() {
            for id in std::mem::take(&mut self.waiting) {
                out.result(&id, &self.ask_result())?;
            }
        }
        Ok(())
    }

    fn defer(
        &mut self,
        id: &Value,
        method: &str,
        params: &Value,
        out: &mut Out,
    ) -> std::io::Result<bool> {
        if method == "tasks/result"
            && self.tricks.late_result
            && params.get("taskId").and_then(Value::as_str) == Some("1")
        {
            if self.late.is_empty() {
                self.late.push(id.clone());
                return Ok(true);
            }
            let result = self.work_result();
            for waiting in std::mem::take(&mut self.late) {
                out.result(&waiting, &result)?;
            }
            return Ok(false);
        }
        let about_q = params.get("taskId").and_then(Value::as_str) == Some("q");
        if method != "tasks/result" || !about_q || self.told.is_some() {
            return Ok(false);
        }
        // The legacy way: the question comes while `tasks/result` is open.
        let tag = if self.tricks.foreign_tag { "zz" } else { "q" };
        let meta = json!({"io.modelcontextprotocol/related-task": {"taskId": tag}});
        if !self.asked {
            self.asked = true;
            if self.tricks.sample {
                out.request(
                    "s1",
                    "sampling/createMessage",
                    &json!({"messages": [{"role": "user", "content": {"type": "text", "text": "write my answer"}}], "maxTokens": 10, "_meta": meta}),
                )?;
            }
            let message = format!("Which colour, says {}?", self.name);
            out.request(
                "e1",
                "elicitation/create",
                &json!({"message": message, "requestedSchema": {"type": "object", "properties": {"colour": {"type": "string"}}}, "_meta": meta}),
            )?;
        }
        self.waiting.push(id.clone());
        Ok(true)
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
            "tools/call"
                if params.get("task").is_some()
                    && params.get("name").and_then(Value::as_str) == Some("ask") =>
            {
                let text = params.pointer("/arguments/text").and_then(Value::as_str)?;
                self.ask = Some(text.to_owned());
                Some(Ok(json!({"task": ask_task("input_required")})))
            }
            "tasks/get" | "tasks/cancel" if asked == Some("q") => {
                let status = if method == "tasks/cancel" {
                    "cancelled"
                } else if self.told.is_some() {
                    "completed"
                } else {
                    "input_required"
                };
                Some(Ok(ask_task(status)))
            }
            "tasks/result" if asked == Some("q") => Some(Ok(self.ask_result())),
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
                if asked.is_some_and(|id| id != "1" && id != "q") =>
            {
                Some(Err(format!("unknown task {asked:?}")))
            }
            "tasks/get" | "tasks/cancel" => Some(Ok(task())),
            "tasks/list" => Some(Ok(json!({"tasks": [task()]}))),
            "tasks/result" => Some(Ok(self.work_result())),
            _ => None,
        }
    }
}

fn main() -> ExitCode {
    let mut args = Args::new("task_server");
    let mut server = TaskServer {
        name: "task_server".to_owned(),
        ..TaskServer::default()
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--name" => server.name = args.value("--name"),
            "--sample" => server.tricks.sample = true,
            "--foreign-tag" => server.tricks.foreign_tag = true,
            "--late-result" => server.tricks.late_result = true,
            other => args.usage(&format!("unknown argument {other}")),
        }
    }
    mini_mcp::run("task_server", &mut server)
}
