//! An MCP server whose tools try the things mcp-warden's sandbox forbids: read and
//! write files, list directories, read another process's environment, open TCP and
//! UDP connections, create sockets of any family, leave the session with a
//! long-lived grandchild, and run programs. A fixture for the sandbox proof tests,
//! which run it through `mcp-warden serve` and check that each attempt fails when a
//! sandbox layer is on and succeeds when the configuration allows it; `whoami`
//! reports the confinement the process ended up in.
//!
//! Every tool answers with one text content item holding a JSON object: on success
//! `{"ok":true, ...}` (tool-specific fields), on failure `{"ok":false,"errno":N,
//! "error":"..."}` with `isError: true`, where `errno` is the raw OS error number
//! (`null` for bad arguments and other errors without one) and `error` the
//! `io::Error` display, such as "Permission denied (os error 13)".
//!
//! The tools and the fields they add on success:
//! - `whoami` → `uid gid euid egid groups pid ppid sid pgid no_new_privs dumpable
//!   seccomp cap_eff home tmpdir cwd rlimit_nofile rlimit_core fds` (`null` when
//!   unknown; limits are `[soft, hard]`, unlimited being 2^64-1);
//! - `read_file {path}` → `content` (first 64 KiB, lossy UTF-8), `truncated`;
//! - `write_file {path, content}` → nothing; `list_dir {path}` → `names` (sorted);
//! - `env` → `env` (an object); `read_environ {pid}` → `environ` (a list);
//! - `tcp_connect {port, host?, timeout_ms?}` (writes `probe\n`) and
//!   `udp_send {port, host?}` (sends `probe`) → `peer`; `host` defaults to 127.0.0.1;
//! - `socket {family, type}` → nothing (the socket is created and closed);
//! - `spawn_grandchild {marker}` → `pid` of a `--sleeper` copy, not waited for;
//! - `exec {path, args?}` → `status` (`null` when killed), `timed_out` (killed after
//!   2 s), `stdout`, `stderr` (64 KiB each; `null` if still held open by a grandchild).
//!
//! Option `--sleeper MARKER`: do not speak MCP; leave the session (`setsid`) and
//! sleep for an hour. `spawn_grandchild` starts this mode; tests find survivors by the
//! marker in `/proc/PID/cmdline`.
// A test fixture: it reports on stderr.
#![allow(clippy::print_stderr)]

#[path = "support/mini_mcp.rs"]
mod mini_mcp;

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use std::{env, fs, thread};

use mini_mcp::{Outcome, Server, tool};
use nix::sys::resource::{Resource, getrlimit};
use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};
use nix::unistd;
use serde_json::{Map, Value, json};

/// Bytes returned by `read_file` and per stream by `exec`: enough to prove a read,
/// small enough to keep a frame well under the gateway's line limit.
const MAX_OUTPUT: usize = 64 * 1024;
/// How long `exec` lets a program run before killing it.
const EXEC_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a `--sleeper` grandchild lives when nobody kills it.
const SLEEP: Duration = Duration::from_secs(3600);
const HOST: &str = "127.0.0.1";

/// A tool's result: an object of the fields to add after `"ok":true`, or why it failed.
type Reply = io::Result<Value>;

/// An argument error: an `io::Error` without an OS error number.
fn bad_args(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn str_arg<'a>(args: &'a Value, name: &str) -> io::Result<&'a str> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| bad_args(format!("`{name}` must be a string")))
}

fn opt_str_arg<'a>(args: &'a Value, name: &str, default: &'a str) -> io::Result<&'a str> {
    args.get(name).map_or(Ok(default), |_| str_arg(args, name))
}

fn u64_arg(args: &Value, name: &str, default: Option<u64>) -> io::Result<u64> {
    match (args.get(name), default) {
        (None, Some(default)) => Ok(default),
        (value, _) => value
            .and_then(Value::as_u64)
            .ok_or_else(|| bad_args(format!("`{name}` must be a non-negative integer"))),
    }
}

fn port_arg(args: &Value) -> io::Result<u16> {
    u16::try_from(u64_arg(args, "port", None)?)
        .map_err(|_| bad_args("`port` must be at most 65535".into()))
}

/// The value of `field` in `/proc/self/status` (`None` when it is missing).
fn status_field(status: &str, field: &str) -> Option<String> {
    status.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name == field).then(|| value.trim().to_owned())
    })
}

fn limit(resource: Resource) -> Value {
    getrlimit(resource).map_or(Value::Null, |(soft, hard)| json!([soft, hard]))
}

/// Open file descriptors, leaving out the one used to list them.
fn open_fds() -> Option<Vec<u32>> {
    let listed: Vec<u32> = fs::read_dir("/proc/self/fd")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The listing's own descriptor is closed now: its link is gone.
    let still_open = |fd: &u32| fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok();
    Some(listed.into_iter().filter(still_open).collect())
}

fn whoami() -> Value {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let number = |field| status_field(&status, field).and_then(|v| v.parse::<u64>().ok());
    let pid = |p: nix::Result<unistd::Pid>| p.ok().map(unistd::Pid::as_raw);
    let groups = unistd::getgroups().ok().map(|groups| {
        groups
            .into_iter()
            .map(unistd::Gid::as_raw)
            .collect::<Vec<_>>()
    });
    json!({
        "uid": unistd::getuid().as_raw(),
        "gid": unistd::getgid().as_raw(),
        "euid": unistd::geteuid().as_raw(),
        "egid": unistd::getegid().as_raw(),
        "groups": groups,
        "pid": unistd::getpid().as_raw(),
        "ppid": unistd::getppid().as_raw(),
        "sid": pid(unistd::getsid(None)),
        "pgid": pid(unistd::getpgid(None)),
        "no_new_privs": number("NoNewPrivs"),
        "dumpable": nix::sys::prctl::get_dumpable().ok().map(u8::from),
        "seccomp": number("Seccomp"),
        "cap_eff": status_field(&status, "CapEff"),
        "home": env::var_os("HOME").map(|v| v.to_string_lossy().into_owned()),
        "tmpdir": env::var_os("TMPDIR").map(|v| v.to_string_lossy().into_owned()),
        "cwd": env::current_dir().ok().map(|d| d.to_string_lossy().into_owned()),
        "rlimit_nofile": limit(Resource::RLIMIT_NOFILE),
        "rlimit_core": limit(Resource::RLIMIT_CORE),
        "fds": open_fds(),
    })
}

/// Up to [`MAX_OUTPUT`] bytes of `reader`, lossily decoded, and whether there was more.
fn read_capped(reader: impl Read) -> io::Result<(String, bool)> {
    let mut bytes = Vec::new();
    reader.take(MAX_OUTPUT as u64 + 1).read_to_end(&mut bytes)?;
    let truncated = bytes.len() > MAX_OUTPUT;
    bytes.truncate(MAX_OUTPUT);
    Ok((String::from_utf8_lossy(&bytes).into_owned(), truncated))
}

fn read_file(args: &Value) -> Reply {
    let (content, truncated) = read_capped(fs::File::open(str_arg(args, "path")?)?)?;
    Ok(json!({"content": content, "truncated": truncated}))
}

fn write_file(args: &Value) -> Reply {
    fs::write(str_arg(args, "path")?, str_arg(args, "content")?)?;
    Ok(json!({}))
}

fn list_dir(args: &Value) -> Reply {
    let mut names = fs::read_dir(str_arg(args, "path")?)?
        .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    Ok(json!({"names": names}))
}

fn environment() -> Value {
    let env: Map<String, Value> = env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into()))
        .collect();
    json!({"env": env})
}

fn read_environ(args: &Value) -> Reply {
    let bytes = fs::read(format!("/proc/{}/environ", u64_arg(args, "pid", None)?))?;
    let entries: Vec<_> = bytes
        .split(|&b| b == 0)
        .filter(|entry| !entry.is_empty())
        .map(String::from_utf8_lossy)
        .collect();
    Ok(json!({"environ": entries}))
}

fn tcp_connect(args: &Value) -> Reply {
    let port = port_arg(args)?;
    let timeout = Duration::from_millis(u64_arg(args, "timeout_ms", Some(2000))?);
    let mut last = bad_args("`host` resolves to no address".into());
    for addr in (opt_str_arg(args, "host", HOST)?, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(mut stream) => {
                stream.write_all(b"probe\n")?;
                return Ok(json!({"peer": addr.to_string()}));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn udp_send(args: &Value) -> Reply {
    let port = port_arg(args)?;
    let addr = (opt_str_arg(args, "host", HOST)?, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| bad_args("`host` resolves to no address".into()))?;
    let local = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    UdpSocket::bind(local)?.send_to(b"probe", addr)?;
    Ok(json!({"peer": addr.to_string()}))
}

fn create_socket(args: &Value) -> Reply {
    let family = match str_arg(args, "family")? {
        "unix" => AddressFamily::Unix,
        "inet" => AddressFamily::Inet,
        "inet6" => AddressFamily::Inet6,
        "netlink" => AddressFamily::Netlink,
        "packet" => AddressFamily::Packet,
        other => return Err(bad_args(format!("unknown `family`: {other}"))),
    };
    let kind = match str_arg(args, "type")? {
        "stream" => SockType::Stream,
        "dgram" => SockType::Datagram,
        "raw" => SockType::Raw,
        other => return Err(bad_args(format!("unknown `type`: {other}"))),
    };
    // Raw IP sockets need a protocol (0 is refused with EPROTONOSUPPORT): ICMP, as
    // `ping` uses. Elsewhere 0 is the family's default (NETLINK_ROUTE for netlink).
    let protocol = match (family, kind) {
        (AddressFamily::Inet, SockType::Raw) => Some(SockProtocol::Icmp),
        (AddressFamily::Inet6, SockType::Raw) => Some(SockProtocol::IcmpV6),
        _ => None,
    };
    drop(socket(family, kind, SockFlag::SOCK_CLOEXEC, protocol)?);
    Ok(json!({}))
}

fn spawn_grandchild(args: &Value) -> Reply {
    let marker = str_arg(args, "marker")?;
    let program = env::current_exe().or_else(|_| {
        env::args_os()
            .next()
            .map(Into::into)
            .ok_or(io::ErrorKind::NotFound)
    })?;
    #[allow(
        clippy::zombie_processes,
        reason = "the sleeper is meant to outlive the call"
    )]
    let child = Command::new(program)
        .args(["--sleeper", marker])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(json!({"pid": child.id()}))
}

/// Reads `stream` on its own thread so a program filling one pipe cannot block us.
fn drain(stream: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(stream) = stream {
        thread::spawn(move || {
            let text = read_capped(stream).map_or_else(|e| e.to_string(), |(text, _)| text);
            let _ = tx.send(text);
        });
    }
    rx
}

fn exec(args: &Value) -> Reply {
    let path = str_arg(args, "path")?;
    let program_args = match args.get("args") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| bad_args("`args` must be strings".into()))
            })
            .collect::<io::Result<Vec<_>>>()?,
        Some(_) => return Err(bad_args("`args` must be an array of strings".into())),
    };
    let mut child = Command::new(path)
        .args(program_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let deadline = Instant::now() + EXEC_TIMEOUT;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            child.kill()?;
            break child.wait()?;
        }
        thread::sleep(Duration::from_millis(10));
    };
    // A grandchild holding the pipes open must not hang the call: its stream is null.
    let collect = |rx: mpsc::Receiver<String>| rx.recv_timeout(Duration::from_millis(200)).ok();
    Ok(json!({
        "status": status.code(),
        "timed_out": timed_out,
        "stdout": collect(stdout),
        "stderr": collect(stderr),
    }))
}

/// The `--sleeper` mode: leave the session and the process group, then wait.
fn sleeper() -> ExitCode {
    if let Err(e) = unistd::setsid() {
        eprintln!("probe-server: setsid: {e}");
    }
    thread::sleep(SLEEP);
    ExitCode::SUCCESS
}

struct Probe;

fn schema(properties: &Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required})
}

impl Server for Probe {
    fn tools(&self) -> Vec<Value> {
        let path = json!({"path": {"type": "string"}});
        let port = json!({"port": {"type": "integer"}, "host": {"type": "string"}});
        let mut tcp = port.clone();
        tcp["timeout_ms"] = json!({"type": "integer"});
        vec![
            tool(
                "whoami",
                "Reports ids, session, no_new_privs, seccomp, capabilities, HOME, TMPDIR, cwd, rlimits and open fds.",
                schema(&json!({}), &[]),
            ),
            tool(
                "read_file",
                "Reads a file (at most 64 KiB, lossy UTF-8).",
                schema(&path, &["path"]),
            ),
            tool(
                "write_file",
                "Creates or truncates a file and writes `content`.",
                schema(
                    &json!({"path": {"type": "string"}, "content": {"type": "string"}}),
                    &["path", "content"],
                ),
            ),
            tool(
                "list_dir",
                "Lists a directory's entry names, sorted.",
                schema(&path, &["path"]),
            ),
            tool(
                "env",
                "Returns this server's own environment.",
                schema(&json!({}), &[]),
            ),
            tool(
                "read_environ",
                "Reads /proc/PID/environ of another process.",
                schema(&json!({"pid": {"type": "integer"}}), &["pid"]),
            ),
            tool(
                "tcp_connect",
                "Connects over TCP (host defaults to 127.0.0.1, timeout_ms to 2000) and writes \"probe\\n\".",
                schema(&tcp, &["port"]),
            ),
            tool(
                "udp_send",
                "Sends one UDP datagram \"probe\" from an ephemeral port (host defaults to 127.0.0.1).",
                schema(&port, &["port"]),
            ),
            tool(
                "socket",
                "Creates a socket of the given family and type, then closes it.",
                schema(
                    &json!({"family": {"enum": ["unix", "inet", "inet6", "netlink", "packet"]}, "type": {"enum": ["stream", "dgram", "raw"]}}),
                    &["family", "type"],
                ),
            ),
            tool(
                "spawn_grandchild",
                "Starts a copy of this server that leaves the session and sleeps an hour, with `marker` on its command line; does not wait.",
                schema(&json!({"marker": {"type": "string"}}), &["marker"]),
            ),
            tool(
                "exec",
                "Runs a program to completion (killed after 2 s) and returns its exit status, stdout and stderr.",
                schema(
                    &json!({"path": {"type": "string"}, "args": {"type": "array", "items": {"type": "string"}}}),
                    &["path"],
                ),
            ),
        ]
    }

    fn call(&mut self, name: &str, arguments: &Value) -> Option<Outcome> {
        let result = match name {
            "whoami" => Ok(whoami()),
            "read_file" => read_file(arguments),
            "write_file" => write_file(arguments),
            "list_dir" => list_dir(arguments),
            "env" => Ok(environment()),
            "read_environ" => read_environ(arguments),
            "tcp_connect" => tcp_connect(arguments),
            "udp_send" => udp_send(arguments),
            "socket" => create_socket(arguments),
            "spawn_grandchild" => spawn_grandchild(arguments),
            "exec" => exec(arguments),
            _ => return None,
        };
        Some(match result {
            Ok(fields) => {
                let mut object = Map::from_iter([("ok".to_owned(), Value::Bool(true))]);
                if let Value::Object(fields) = fields {
                    object.extend(fields);
                }
                Outcome::Text(Value::Object(object).to_string())
            }
            Err(e) => Outcome::Failed(
                json!({"ok": false, "errno": e.raw_os_error(), "error": e.to_string()}).to_string(),
            ),
        })
    }
}

fn main() -> ExitCode {
    let mut args = mini_mcp::Args::new("probe-server");
    match args.next().as_deref() {
        None => mini_mcp::run("probe-server", &mut Probe),
        Some("--sleeper") => {
            let _marker = args.value("--sleeper");
            sleeper()
        }
        Some(other) => args.usage(&format!("unknown option {other}")),
    }
}
