//! Shared plumbing for the small attack-staging MCP servers (`rug_pull_server`,
//! `poisoned_server`, `shadow_server`): newline-delimited JSON-RPC over stdio, no SDK.
//!
//! [`run`] reads stdin a line at a time until EOF and answers `initialize` (echoing
//! the client's `protocolVersion` when it is one we know, else `2025-06-18`;
//! capabilities `{"tools":{"listChanged":true}}`, plus `resources` and `instructions`
//! when the [`Server`] has them), `ping` (`{}`), `tools/list` (all tools, no
//! pagination, or the server's error), `resources/templates/list` and `tools/call`
//! (through the [`Server`] trait, whose `answer` may take any method first); other methods get -32601. Notifications, answers to requests we never sent and lines
//! that are not a JSON object are skipped. Every line written is flushed at once.
//!
//! Included by each server with `#[path = "support/mini_mcp.rs"] mod mini_mcp;`.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use serde_json::{Value, json};

/// The protocol versions echoed back to a client that asks for one of them.
pub const KNOWN_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The version answered when the client asks for one we do not know.
pub const FALLBACK_VERSION: &str = "2025-06-18";

/// What a tool call came to.
pub enum Outcome {
    /// A successful result with one text content item.
    Text(String),
    /// A tool execution error (`isError: true`) with one text content item.
    #[allow(dead_code, reason = "not every server fails a call")]
    Failed(String),
    /// This whole `result` object, as given.
    #[allow(dead_code, reason = "not every server answers with its own result")]
    Result(Value),
    /// A JSON-RPC error answer with this message and `data`.
    #[allow(dead_code, reason = "not every server answers with an error")]
    Error { message: String, data: Value },
}

/// One staged server: its tools, what calling them does, and what happens next.
pub trait Server {
    /// The `tools/list` entries, in order (see [`tool`]).
    fn tools(&self) -> Vec<Value>;

    /// Calls tool `name` with `arguments` (an empty object when the client sent none).
    /// `None` means there is no such tool (answered with -32602).
    fn call(&mut self, name: &str, arguments: &Value) -> Option<Outcome>;

    /// The `instructions` answered to `initialize`, if any.
    fn instructions(&self) -> Option<String> {
        None
    }

    /// The `resources/templates/list` entries; when there are some, the server also
    /// offers the `resources` capability (and an empty `resources/list`).
    fn resource_templates(&self) -> Vec<Value> {
        Vec::new()
    }

    /// The `resources/list` entries; when there are some, the server also offers the
    /// `resources` capability, and `resources/read` of any URI answers one text item.
    fn resources(&self) -> Vec<Value> {
        Vec::new()
    }

    /// A message to answer `tools/list` with, as a JSON-RPC error, instead of the tools.
    fn tools_error(&self) -> Option<String> {
        None
    }

    /// Runs before a `tools/call` of tool `name` is answered, with the call's `params`:
    /// what a server sends while the client's request is in flight (notifications,
    /// its own requests to the client).
    fn before_answer(&mut self, _name: &str, _params: &Value, _out: &mut Out) -> io::Result<()> {
        Ok(())
    }

    /// Answers a request the server handles itself (before the methods above):
    /// `Some(Ok(result))`, `Some(Err(message))` for a -32602 error, `None` to leave it
    /// to the built-in answers. It may send messages of its own first, on `out`.
    fn answer(
        &mut self,
        _method: &str,
        _params: &Value,
        _out: &mut Out,
    ) -> Option<Result<Value, String>> {
        None
    }

    /// Capabilities to add to the `initialize` answer (an object), if any.
    fn capabilities(&self) -> Option<Value> {
        None
    }

    /// Runs after the answer to a `tools/call` has been written (whatever it was).
    fn after_call(&mut self, _out: &mut Out) -> io::Result<()> {
        Ok(())
    }

    /// Sees the client's answer (`result` or `error`) to a request of our own.
    fn on_response(&mut self, _message: &serde_json::Map<String, Value>) {}

    /// Runs after [`Server::on_response`], with stdout: to answer a request it
    /// deferred.
    fn after_response(&mut self, _out: &mut Out) -> io::Result<()> {
        Ok(())
    }

    /// Sees every request first: `true` leaves it unanswered for now (the server
    /// answers it later itself, e.g. in [`Server::after_response`]).
    fn defer(
        &mut self,
        _id: &Value,
        _method: &str,
        _params: &Value,
        _out: &mut Out,
    ) -> io::Result<bool> {
        Ok(false)
    }
}

/// Stdout, written one flushed line at a time.
pub struct Out {
    stdout: io::Stdout,
}

impl Out {
    /// Writes `message` as one line and flushes it.
    pub fn send(&mut self, message: &Value) -> io::Result<()> {
        let mut out = self.stdout.lock();
        serde_json::to_writer(&mut out, message)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    /// Answers request `id` with `result`.
    pub fn result(&mut self, id: &Value, result: &Value) -> io::Result<()> {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "result": result}))
    }

    /// Answers request `id` with a JSON-RPC error.
    pub fn error(&mut self, id: &Value, code: i64, message: &str) -> io::Result<()> {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
    }

    /// Sends a request of the server's own to the client (its answer is skipped).
    #[allow(dead_code, reason = "not every server asks the client anything")]
    pub fn request(&mut self, id: &str, method: &str, params: &Value) -> io::Result<()> {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
    }

    /// Sends a notification (`params` left out when `None`).
    #[allow(dead_code, reason = "not every server sends notifications")]
    pub fn notify(&mut self, method: &str, params: Option<Value>) -> io::Result<()> {
        let mut message = json!({"jsonrpc": "2.0", "method": method});
        if let Some(params) = params {
            message["params"] = params;
        }
        self.send(&message)
    }
}

/// A `tools/list` entry.
pub fn tool(name: &str, description: &str, input_schema: Value) -> Value {
    let mut tool = json!({"name": name, "description": description});
    tool["inputSchema"] = input_schema;
    tool
}

/// The protocol version to answer a client that asked for `requested`.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    KNOWN_VERSIONS
        .into_iter()
        .find(|known| Some(*known) == requested)
        .unwrap_or(FALLBACK_VERSION)
}

/// Serves `server` on stdin/stdout as `name` (its `serverInfo.name`) until stdin
/// closes. Exits with failure only when stdin or stdout fails.
pub fn run(name: &str, server: &mut impl Server) -> ExitCode {
    match serve(name, server) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(name: &str, server: &mut impl Server) -> io::Result<()> {
    let mut out = Out {
        stdout: io::stdout(),
    };
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        if stdin.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        // Not JSON, not UTF-8, not an object, a batch: none of it is for us.
        let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(&line) else {
            if !line.trim_ascii().is_empty() {
                eprintln!("{name}: skipping a line that is not a JSON-RPC message");
            }
            continue;
        };
        if message.contains_key("id") && !message.contains_key("method") {
            server.on_response(&message);
            server.after_response(&mut out)?;
        }
        // A notification (no id), or an answer to a request we never sent (no method).
        let (Some(id), Some(method)) = (
            message.get("id"),
            message.get("method").and_then(Value::as_str),
        ) else {
            continue;
        };
        let params = message.get("params").unwrap_or(&Value::Null);
        if server.defer(id, method, params, &mut out)? {
            continue;
        }
        match server.answer(method, params, &mut out) {
            Some(Ok(result)) => {
                out.result(id, &result)?;
                continue;
            }
            Some(Err(message)) => {
                out.error(id, -32602, &message)?;
                continue;
            }
            None => {}
        }
        match method {
            "initialize" => out.result(id, &initialize_result(name, server, params))?,
            "ping" => out.result(id, &json!({}))?,
            "tools/list" => match server.tools_error() {
                Some(message) => out.error(id, -32603, &message)?,
                None => out.result(id, &json!({"tools": server.tools()}))?,
            },
            "resources/list"
                if !server.resource_templates().is_empty() || !server.resources().is_empty() =>
            {
                out.result(id, &json!({"resources": server.resources()}))?;
            }
            "resources/read" if !server.resources().is_empty() => {
                let uri = params
                    .get("uri")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let text = format!("contents of {uri}");
                out.result(id, &json!({"contents": [{"uri": uri, "text": text}]}))?;
            }
            "resources/templates/list" if !server.resource_templates().is_empty() => {
                out.result(
                    id,
                    &json!({"resourceTemplates": server.resource_templates()}),
                )?;
            }
            "tools/call" => call(server, id, params, &mut out)?,
            _ => out.error(id, -32601, &format!("method not found: {method}"))?,
        }
    }
}

/// The `initialize` answer: the client's version where we speak it, tools always,
/// resources when the server has any, and the server's own extras.
fn initialize_result(name: &str, server: &impl Server, params: &Value) -> Value {
    let version = negotiate(params.get("protocolVersion").and_then(Value::as_str));
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": true}},
        "serverInfo": {"name": name, "version": "1.0.0"},
    });
    if let Some(instructions) = server.instructions() {
        result["instructions"] = json!(instructions);
    }
    if !server.resource_templates().is_empty() || !server.resources().is_empty() {
        result["capabilities"]["resources"] = json!({});
    }
    if let Some(Value::Object(extra)) = server.capabilities() {
        for (key, value) in extra {
            result["capabilities"][key] = value;
        }
    }
    result
}

/// Answers one `tools/call`, with what the server sends before and after it.
fn call(server: &mut impl Server, id: &Value, params: &Value, out: &mut Out) -> io::Result<()> {
    let Some(tool) = params.get("name").and_then(Value::as_str) else {
        return out.error(id, -32602, "tools/call needs a tool `name`");
    };
    let empty = json!({});
    let arguments = params.get("arguments").unwrap_or(&empty);
    server.before_answer(tool, params, out)?;
    match server.call(tool, arguments) {
        Some(Outcome::Text(text)) => out.result(
            id,
            &json!({"content": [{"type": "text", "text": text}], "isError": false}),
        )?,
        Some(Outcome::Failed(text)) => out.result(
            id,
            &json!({"content": [{"type": "text", "text": text}], "isError": true}),
        )?,
        Some(Outcome::Result(result)) => out.result(id, &result)?,
        Some(Outcome::Error { message, data }) => out.send(&json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": -32000, "message": message, "data": data},
        }))?,
        None => out.error(id, -32602, &format!("unknown tool: {tool}"))?,
    }
    server.after_call(out)
}

/// Command-line options, read in order. Exits with status 2 on a bad command line.
pub struct Args {
    program: &'static str,
    args: std::vec::IntoIter<String>,
}

impl Args {
    /// The process's arguments (after the program name); `program` names it in errors.
    pub fn new(program: &'static str) -> Self {
        Self {
            program,
            args: std::env::args().skip(1).collect::<Vec<_>>().into_iter(),
        }
    }

    /// The value following option `option`.
    #[allow(dead_code, reason = "not every server has options with values")]
    pub fn value(&mut self, option: &str) -> String {
        match self.args.next() {
            Some(value) => value,
            None => self.usage(&format!("{option} needs a value")),
        }
    }

    /// Reports a bad command line and exits with status 2.
    pub fn usage(&self, problem: &str) -> ! {
        eprintln!("{}: {problem}", self.program);
        std::process::exit(2)
    }
}

impl Iterator for Args {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        self.args.next()
    }
}
