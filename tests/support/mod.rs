//! A small harness for driving the real `mcp-warden` binary: a temporary home,
//! workspace and configuration, a spawned `serve` with a scripted client, and helpers
//! to find the test servers.
// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::print_stderr,
    clippy::needless_pass_by_value
)]

pub mod prefix;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a test waits for one expected message before failing.
pub const WAIT: Duration = Duration::from_secs(30);

/// The `_meta` of a 2026-07-28 request from a client declaring `capabilities`.
pub fn modern_meta_with(capabilities: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": {"name": "modern-client", "version": "1"},
    })
}

/// The `mcp-warden` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcp-warden"))
}

/// The example test server (built by `cargo test` with the other examples).
pub fn test_server() -> PathBuf {
    example("test_server")
}

/// An example binary (`examples/NAME.rs`), built by `cargo test`.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().unwrap().parent().unwrap();
    let path = debug.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test`",
        path.display()
    );
    path
}

/// A `[servers.NAME]` table running an example server (`examples/NAME.rs`).
pub fn example_table(name: &str, example_name: &str, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(q).collect();
    format!(
        "[servers.{name}]\ncommand = {}\nargs = [{}]\n",
        q(path_str(&example(example_name))),
        args.join(", ")
    )
}

/// A `[servers.NAME.sandbox]` table that lets the server write `dir` (and read it):
/// for test servers that keep state or read fixtures outside the workspace. `dir` is
/// opened to the world, since run as root the server has a uid of its own.
pub fn sandbox_writes(name: &str, dir: &Path) -> String {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    format!(
        "[servers.{name}.sandbox]\nfs_write = [{}]\n",
        q(path_str(dir))
    )
}

/// The text blocks of a tool result, joined by newlines (empty when there are none).
pub fn text_of(answer: &Value) -> String {
    answer["result"]["content"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// A TOML string literal.
pub fn q(s: impl AsRef<str>) -> String {
    toml_quote(s.as_ref())
}

fn toml_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A `[servers.NAME]` table running the test server with `extra` arguments.
pub fn test_server_table(name: &str, extra: &[&str]) -> String {
    let mut args = vec![q("--name"), q(name)];
    args.extend(extra.iter().map(q));
    format!(
        "[servers.{name}]\ncommand = {}\nargs = [{}]\n",
        q(test_server().to_string_lossy()),
        args.join(", ")
    )
}

/// A temporary world for one test: `MCP_WARDEN_HOME`, a managed dir, a user home and
/// a workspace directory.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub warden_home: PathBuf,
    pub managed: PathBuf,
    pub home: PathBuf,
    pub workspace: PathBuf,
}

impl Env {
    /// Every audit record written so far (after `serve` closed, so flushed).
    pub fn audit_text(&self) -> String {
        let dir = self.warden_home.join("data").join("audit");
        let mut text = String::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
        text
    }

    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let env = Self {
            warden_home: root.join("warden"),
            managed: root.join("managed"),
            home: root.join("home"),
            workspace: root.join("home").join("project"),
            dir,
        };
        for d in [&env.warden_home, &env.managed, &env.home, &env.workspace] {
            std::fs::create_dir_all(d).unwrap();
        }
        // Run as root, mcp-warden starts each server as a uid of its own, which can
        // use only what any user may: the world may enter this tree and write the
        // workspace, as a user's own project would let the user (README "Sandbox").
        for (d, mode) in [(&root, 0o755), (&env.home, 0o755), (&env.workspace, 0o777)] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        env
    }

    /// Writes the user's `config.toml`. Tests that are not about pinning run with it
    /// off (their fixtures would otherwise need a lock file): unless `toml` has a
    /// `[pinning]` table, `mode = "off"` is appended (after the rest, so positions in
    /// error messages do not move). Use [`Env::user_config_exact`] for the file
    /// exactly as given.
    pub fn user_config(&self, toml: &str) {
        if toml.contains("[pinning]") {
            self.user_config_exact(toml);
        } else {
            self.user_config_exact(&format!("{toml}\n[pinning]\nmode = \"off\"\n"));
        }
    }

    pub fn user_config_exact(&self, toml: &str) {
        std::fs::write(self.warden_home.join("config.toml"), toml).unwrap();
    }

    pub fn workspace_config(&self, toml: &str) {
        std::fs::write(self.workspace.join("mcp-warden.toml"), toml).unwrap();
    }

    /// The binary with this world's environment, run in the workspace.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args);
        self.apply(&mut cmd);
        cmd
    }

    /// Gives `cmd` this world's environment and working directory.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.current_dir(&self.workspace)
            .env("MCP_WARDEN_HOME", &self.warden_home)
            .env("MCP_WARDEN_MANAGED_DIR", &self.managed)
            .env("HOME", &self.home)
            .env("MCP_WARDEN_LOG", "debug")
            .env_remove("RUST_LOG");
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Everything in the operator log so far.
    pub fn log(&self) -> String {
        let dir = self.warden_home.join("data").join("logs");
        let mut text = String::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        text
    }

    pub fn serve(&self) -> Serve {
        self.serve_with(&[])
    }

    /// A `serve` whose client has initialized and listed the tools once, as a client
    /// does before it calls anything.
    pub fn ready_serve(&self) -> Serve {
        let mut serve = self.serve();
        serve.initialize();
        serve.tool_names(1);
        serve
    }

    pub fn serve_with(&self, extra: &[&str]) -> Serve {
        let mut args = vec!["serve"];
        args.extend_from_slice(extra);
        Serve::spawn(self.command(&args))
    }
}

/// A running `mcp-warden serve` with a scripted client on its stdio.
pub struct Serve {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    /// Notifications and requests from the server seen while waiting for answers.
    pub seen: Vec<Value>,
}

impl Serve {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                let text = String::from_utf8(std::mem::take(&mut line)).expect("stdout is UTF-8");
                if tx.send(text).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    return;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
            stderr,
            seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    pub fn send(&mut self, msg: &Value) {
        let mut line = msg.to_string();
        line.push('\n');
        self.send_raw(line.as_bytes());
    }

    /// The next line the server writes, raw (with its `\n`).
    pub fn recv_line(&mut self) -> String {
        self.recv_line_within(WAIT)
            .unwrap_or_else(|| panic!("no message within {WAIT:?}; stderr:\n{}", self.stderr()))
    }

    pub fn recv_line_within(&mut self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    pub fn recv(&mut self) -> Value {
        let line = self.recv_line();
        assert!(
            line.ends_with('\n') && !line.ends_with("\r\n"),
            "output must be \\n-terminated: {line:?}"
        );
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Waits for the answer with `id` (compared as JSON, so `"1"` and `1` differ),
    /// keeping other messages in `seen`.
    pub fn answer_to(&mut self, id: &Value) -> Value {
        self.wait_for(&format!("answer to id {id}"), |msg| {
            msg.get("method").is_none() && msg.get("id") == Some(id)
        })
    }

    /// Waits for the first message (one already seen, or to come) that `pick`
    /// accepts, keeping the others in `seen`; panics naming `what`.
    pub fn wait_for(&mut self, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
        // It may have come while another message was awaited.
        if let Some(at) = self.seen.iter().position(&pick) {
            return self.seen.remove(at);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = self.recv_line_within(left) else {
                panic!(
                    "no {what} within {WAIT:?}; seen {:?}; stderr:\n{}",
                    self.seen,
                    self.stderr()
                );
            };
            let msg: Value = serde_json::from_str(&line).unwrap();
            if pick(&msg) {
                return msg;
            }
            self.seen.push(msg);
        }
    }

    pub fn request(&mut self, id: Value, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.answer_to(&id)
    }

    /// As a client does: on each `notifications/tools/list_changed`, lists the tools
    /// again (with ids from 1000 on), until a listing satisfies `done`; panics naming
    /// `what` after `wait`.
    pub fn relist_until(
        &mut self,
        wait: Duration,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + wait;
        let mut id = 1000;
        loop {
            assert!(
                Instant::now() < deadline,
                "{what} never happened: {:?}",
                self.seen
            );
            let Some(line) = self.recv_line_within(Duration::from_millis(200)) else {
                continue;
            };
            let msg: Value = serde_json::from_str(&line).unwrap();
            if msg["method"] != "notifications/tools/list_changed" {
                continue;
            }
            id += 1;
            let listed = self.request(json!(id), "tools/list", json!({}));
            if done(&listed) {
                return listed;
            }
        }
    }

    /// `initialize` + `notifications/initialized` with the given capabilities.
    pub fn initialize_with(&mut self, capabilities: Value) -> Value {
        let result = self.request(
            json!(0),
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": capabilities, "clientInfo": {"name": "harness", "version": "1"}}),
        );
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        result
    }

    pub fn initialize(&mut self) -> Value {
        self.initialize_with(json!({}))
    }

    pub fn call_tool(&mut self, id: i64, name: &str, arguments: Value) -> Value {
        self.request(
            json!(id),
            "tools/call",
            json!({"name": name, "arguments": arguments}),
        )
    }

    /// Tool names of a `tools/list`.
    pub fn tool_names(&mut self, id: i64) -> Vec<String> {
        let answer = self.request(json!(id), "tools/list", json!({}));
        answer["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("no tools in {answer}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Closes stdin (the client leaves) without waiting: what comes after can still
    /// be read.
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Closes stdin and waits for the process to exit.
    pub fn close(mut self) -> (std::process::ExitStatus, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50));
                return (status, self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "mcp-warden did not exit after stdin closed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a process with this pid still exists (and is not a zombie).
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name.
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// Waits up to `wait` for `pid` to be gone.
pub fn wait_gone(pid: u32, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if !is_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !is_alive(pid)
}

pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Pids of live processes whose environment contains `needle` (e.g. a test's unique
/// temporary directory, which every server it starts has in its private HOME when
/// run as this user), or whose working directory lies under `needle` (the launcher,
/// which stays in the workspace), and all their descendants (run as root, servers
/// have a uid of their own and start in a private HOME outside the test's directory).
pub fn processes_with_env(needle: &str) -> Vec<u32> {
    let mut parents = std::collections::HashMap::new();
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Some(ppid) = parent_of(pid) {
            parents.insert(pid, ppid);
        }
        let in_env = std::fs::read(entry.path().join("environ"))
            .is_ok_and(|environ| String::from_utf8_lossy(&environ).contains(needle));
        let in_dir =
            std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(needle));
        if (in_env || in_dir) && is_alive(pid) {
            pids.push(pid);
        }
    }
    let found: std::collections::HashSet<u32> = pids.iter().copied().collect();
    for &pid in parents.keys() {
        if found.contains(&pid) || !is_alive(pid) {
            continue;
        }
        let mut at = pid;
        for _ in 0..64 {
            match parents.get(&at) {
                Some(&ppid) if found.contains(&ppid) => {
                    pids.push(pid);
                    break;
                }
                Some(&ppid) if ppid > 1 => at = ppid,
                _ => break,
            }
        }
    }
    pids
}

/// The parent pid of `pid`, from `/proc/PID/stat` (the field after the command name).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}
