//! A fast MCP server for the benchmark (`examples/bench.rs`): raw newline-delimited
//! JSON over stdio, one thread, no async runtime, so it costs as little as possible per
//! call and the figures show the proxy rather than the upstream.
//!
//! It answers `initialize` (echoing the client's `protocolVersion`, capabilities
//! `{"tools":{}}`), `ping`, `tools/list` (one tool, `echo`) and `tools/call` of `echo`
//! (`{"content":[{"type":"text","text":<message>}]}`); notifications are ignored and
//! other methods get -32601.
//!
//! Output goes through a buffer that is flushed whenever stdin has nothing more
//! buffered: requests that arrive together (pipelined) are answered with one write,
//! while a lone request is answered at once.
//!
//! Option: `--startup-ms N` sleeps N ms before reading stdin (a slow-starting server,
//! for measuring mcp-warden's start-up).
#![allow(clippy::print_stderr)]

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

/// The fields of a request this server looks at; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InitParams<'a> {
    #[serde(borrow, rename = "protocolVersion")]
    protocol_version: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Option<EchoArgs<'a>>,
}

#[derive(Deserialize)]
struct EchoArgs<'a> {
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

const TOOLS: &str = r#"{"tools":[{"name":"echo","description":"Echoes its message back","inputSchema":{"type":"object","properties":{"message":{"type":"string"}},"required":["message"]}}]}"#;

fn parse_args() -> Result<u64, String> {
    let mut startup_ms = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--startup-ms" => {
                let value = args.next().ok_or("--startup-ms needs a value")?;
                startup_ms = value
                    .parse()
                    .map_err(|e| format!("--startup-ms {value}: {e}"))?;
            }
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(startup_ms)
}

fn main() -> ExitCode {
    let startup_ms = match parse_args() {
        Ok(ms) => ms,
        Err(e) => {
            eprintln!("bench_server: {e}");
            return ExitCode::from(2);
        }
    };
    if startup_ms > 0 {
        std::thread::sleep(Duration::from_millis(startup_ms));
    }
    match serve() {
        Ok(()) => ExitCode::SUCCESS,
        // A closed stdout means the client left: not worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve() -> std::io::Result<()> {
    // Own handles on fds 0 and 1: std's Stdout is line-buffered, which would flush
    // after every answer; std's Stdin keeps its buffer to itself.
    let input = File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let output = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut out = BufWriter::with_capacity(64 * 1024, output);
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        handle(&line, &mut out)?;
        if input.buffer().is_empty() {
            out.flush()?;
        }
    }
    out.flush()
}

fn handle(line: &[u8], out: &mut impl Write) -> std::io::Result<()> {
    let Ok(req) = serde_json::from_slice::<Request>(line) else {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        return out.write_all(
            b"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"parse error\"}}\n",
        );
    };
    // Notifications (and answers, which this server never asks for) need nothing.
    let (Some(id), Some(method)) = (req.id, req.method) else {
        return Ok(());
    };
    let params = req.params.map_or("{}", RawValue::get);
    match method.as_ref() {
        "tools/call" => match serde_json::from_str::<CallParams>(params) {
            Ok(call) if call.name == "echo" => {
                let message = call.arguments.and_then(|a| a.message).unwrap_or_default();
                head(out, id)?;
                out.write_all(b"{\"content\":[{\"type\":\"text\",\"text\":")?;
                serde_json::to_writer(&mut *out, message.as_ref())?;
                out.write_all(b"}]}}\n")
            }
            Ok(call) => error(out, id, -32602, &format!("unknown tool {}", call.name)),
            Err(e) => error(out, id, -32602, &e.to_string()),
        },
        "initialize" => {
            let version = serde_json::from_str::<InitParams>(params)
                .ok()
                .and_then(|p| p.protocol_version)
                .unwrap_or(Cow::Borrowed("2025-06-18"));
            head(out, id)?;
            out.write_all(b"{\"protocolVersion\":")?;
            serde_json::to_writer(&mut *out, version.as_ref())?;
            out.write_all(
                b",\"capabilities\":{\"tools\":{}},\"serverInfo\":{\"name\":\"bench-server\",\"version\":\"1\"}}}\n",
            )
        }
        "tools/list" => {
            head(out, id)?;
            out.write_all(TOOLS.as_bytes())?;
            out.write_all(b"}\n")
        }
        "ping" => {
            head(out, id)?;
            out.write_all(b"{}}\n")
        }
        other => error(out, id, -32601, &format!("unknown method {other}")),
    }
}

/// Writes `{"jsonrpc":"2.0","id":<id>,"result":` (the caller writes the rest).
fn head(out: &mut impl Write, id: &RawValue) -> std::io::Result<()> {
    out.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":")?;
    out.write_all(id.get().as_bytes())?;
    out.write_all(b",\"result\":")
}

fn error(out: &mut impl Write, id: &RawValue, code: i32, message: &str) -> std::io::Result<()> {
    out.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":")?;
    out.write_all(id.get().as_bytes())?;
    write!(out, ",\"error\":{{\"code\":{code},\"message\":")?;
    serde_json::to_writer(&mut *out, message)?;
    out.write_all(b"}}\n")
}
