//! An MCP server that tries every request kind besides `tools/call` as a way around
//! the policy (issue 13, "Input side"): it lists a private resource, offers an
//! `https://{+url}` template (a read of it sends data out), a prompt and completions,
//! and accepts subscriptions. Every answer echoes what reached it, so a test sees
//! whether a request was forwarded.
//!
//! - `resources/list`: `file:///secret/notes.txt` (and each `--uri URI`);
//! - `resources/templates/list`: `https://{+url}` (and each `--template T`);
//! - `resources/read`: one text content, `read URI`;
//! - `resources/subscribe` / `unsubscribe`: `{}`;
//! - `prompts/list`: `summarize` (argument `text`); `prompts/get`: one user message,
//!   `prompt NAME ARGUMENTS`;
//! - `completion/complete`: one value, `completed VALUE`;
//! - tool `issue`: returns text from outside (an untrusted source); tool `slow`
//!   answers after a second (a request kept in flight); tool `elicit` sends `count`
//!   `elicitation/create` requests while its call is in flight, or just `after` it
//!   was answered (requests no client request accounts for).
//!
//! Options: `--uri URI` and `--template T` add to the lists; `--only` leaves the
//! default resource and template out (so two instances can collide on exactly one);
//! `--tag NAME` ends every read's text with ` by NAME`.
// A test fixture: it reports on stderr.
#![allow(clippy::print_stderr)]

#[path = "support/mini_mcp.rs"]
mod mini_mcp;

use std::process::ExitCode;

use mini_mcp::{Args, Out, Outcome, Server, tool};
use serde_json::{Value, json};

struct Bypass {
    /// Elicitations to send once the current call is answered (tool `elicit` with
    /// `after`).
    elicit_after: u64,
    uris: Vec<String>,
    templates: Vec<String>,
    /// Said after every read's text (`--tag`), so a test sees which server read.
    tag: String,
}

impl Server for Bypass {
    fn tools(&self) -> Vec<Value> {
        vec![
            tool(
                "issue",
                "Returns the text of an issue.",
                json!({"type": "object", "properties": {"number": {"type": "integer"}}}),
            ),
            tool(
                "slow",
                "Answers after a second.",
                json!({"type": "object", "properties": {}}),
            ),
            tool(
                "elicit",
                "Asks the user `count` questions, while the call is in flight or `after` it.",
                json!({"type": "object", "properties": {"count": {"type": "integer"}, "after": {"type": "boolean"}}}),
            ),
        ]
    }

    fn call(&mut self, name: &str, _arguments: &Value) -> Option<Outcome> {
        Some(if name == "issue" {
            Outcome::Text("issue text from a stranger".to_owned())
        } else if name == "elicit" {
            Outcome::Text("asked".to_owned())
        } else if name == "slow" {
            std::thread::sleep(std::time::Duration::from_secs(1));
            Outcome::Text("slow".to_owned())
        } else {
            Outcome::Failed(format!("no tool `{name}`"))
        })
    }

    fn resource_templates(&self) -> Vec<Value> {
        self.templates
            .iter()
            .map(|t| json!({"uriTemplate": t, "name": "web"}))
            .collect()
    }

    fn capabilities(&self) -> Option<Value> {
        Some(json!({"resources": {"subscribe": true}, "prompts": {}, "completions": {}}))
    }

    fn after_call(&mut self, out: &mut Out) -> std::io::Result<()> {
        let count = std::mem::take(&mut self.elicit_after);
        elicit(out, count, "after")
    }

    fn answer(
        &mut self,
        method: &str,
        params: &Value,
        out: &mut Out,
    ) -> Option<Result<Value, String>> {
        if method == "tools/call" && params["name"] == "elicit" {
            let count = params["arguments"]["count"].as_u64().unwrap_or(1);
            if params["arguments"]["after"] == true {
                self.elicit_after = count;
            } else if let Err(e) = elicit(out, count, "during") {
                return Some(Err(e.to_string()));
            }
            // The call itself is answered as usual.
            return None;
        }
        let text = |key: &str| params.get(key).and_then(Value::as_str).unwrap_or("");
        Some(Ok(match method {
            "resources/list" => {
                let listed: Vec<Value> = self
                    .uris
                    .iter()
                    .map(|u| json!({"uri": u, "name": u}))
                    .collect();
                json!({"resources": listed})
            }
            "resources/read" => {
                let uri = text("uri");
                json!({"contents": [{"uri": uri, "mimeType": "text/plain", "text": format!("read {uri}{}", self.tag)}]})
            }
            "resources/subscribe" | "resources/unsubscribe" => json!({}),
            "prompts/list" => json!({"prompts": [{
                "name": "summarize",
                "description": "Summarizes a text.",
                "arguments": [{"name": "text", "required": true}]
            }]}),
            "prompts/get" => {
                let arguments = params.get("arguments").cloned().unwrap_or(Value::Null);
                let said = format!("prompt {} {arguments}", text("name"));
                json!({"messages": [{"role": "user", "content": {"type": "text", "text": said}}]})
            }
            "completion/complete" => {
                let value = params["argument"]["value"].as_str().unwrap_or("");
                json!({"completion": {"values": [format!("completed {value}")]}})
            }
            _ => return None,
        }))
    }
}

/// Sends `count` elicitation requests, ids `WHEN-1` to `WHEN-count`.
fn elicit(out: &mut Out, count: u64, when: &str) -> std::io::Result<()> {
    for n in 1..=count {
        out.send(&json!({
            "jsonrpc": "2.0",
            "id": format!("{when}-{n}"),
            "method": "elicitation/create",
            "params": {"message": "Your name?", "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}}}
        }))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = Args::new("bypass_server");
    let mut server = Bypass {
        elicit_after: 0,
        uris: vec!["file:///secret/notes.txt".to_owned()],
        templates: vec!["https://{+url}".to_owned()],
        tag: String::new(),
    };
    let mut added = Bypass {
        elicit_after: 0,
        uris: Vec::new(),
        templates: Vec::new(),
        tag: String::new(),
    };
    let mut only = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--uri" => added.uris.push(args.value("--uri")),
            "--template" => added.templates.push(args.value("--template")),
            "--only" => only = true,
            "--tag" => server.tag = format!(" by {}", args.value("--tag")),
            other => args.usage(&format!("unknown option `{other}`")),
        }
    }
    if only {
        server.uris.clear();
        server.templates.clear();
    }
    server.uris.append(&mut added.uris);
    server.templates.append(&mut added.templates);
    mini_mcp::run("bypass", &mut server)
}
