//! Starting an upstream's process with a clean environment, and the tasks around it.
//!
//! The upstream room is the one place the library starts processes (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;

use super::stdout::StdoutLines;
use super::{
    GRACE, InstanceId, STDERR_MAX_LINE, STDERR_TAIL_LINES, STDIN_QUEUE, TERM_GRACE, Upstream,
    UpstreamEvent, tail_of,
};
use crate::config::ServerConfig;
use crate::jsonrpc::writer;
use crate::jsonrpc::{Line, LineCodec};

/// The PATH a server gets when mcp-warden itself has none.
const FALLBACK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Most stderr lines of one server logged per second; the rest are counted.
const STDERR_LINES_PER_SECOND: u32 = 200;
/// How long to wait for the last stdout lines after the process is gone. A descendant
/// that escaped the process group may hold the pipe open forever.
const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(1);

/// Why an upstream could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("server `{server}`: cannot create its private directory `{path}`: {source}")]
    PrivateDir {
        server: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("server `{server}`: sandbox: {source}")]
    Sandbox {
        server: String,
        source: crate::sandbox::PlanError,
    },
    #[error("server `{server}`: cannot start `{command}`: {source}")]
    Start {
        server: String,
        command: String,
        source: std::io::Error,
    },
}

/// The environment a server gets: a small fixed base, a private HOME and TMPDIR, the
/// names in `env_passthrough` that are set for mcp-warden, then `env`.
fn child_env(
    config: &ServerConfig,
    program: &Path,
    plan: &crate::sandbox::Plan,
) -> BTreeMap<OsString, OsString> {
    let (home, tmp) = (&plan.home, &plan.tmp);
    let mut env = BTreeMap::new();
    let own = |name: &str| std::env::var_os(name);
    env.insert(
        "PATH".into(),
        own("PATH").unwrap_or_else(|| FALLBACK_PATH.into()),
    );
    env.insert(
        "LANG".into(),
        own("LANG").unwrap_or_else(|| "C.UTF-8".into()),
    );
    if let Some(term) = own("TERM") {
        env.insert("TERM".into(), term);
    }
    env.insert("HOME".into(), home.as_os_str().to_owned());
    env.insert("TMPDIR".into(), tmp.as_os_str().to_owned());
    // Python (3.11+) then never puts the working directory (for `-m`) or the script's
    // directory first on `sys.path`: a module of the server's name in a repository
    // cannot shadow the installed one, whatever `cwd` is.
    env.insert("PYTHONSAFEPATH".into(), "1".into());
    for name in &config.env_passthrough {
        if let Some(value) = own(name) {
            env.insert(name.into(), value);
        }
    }
    // What the server needs to work under its sandbox with default settings; its own
    // `env` still wins (a `GIT_CONFIG_COUNT` of its own replaces ours whole).
    let extra = crate::sandbox::presets::extra_env(
        program,
        &config.args,
        home,
        &config.sandbox.fs_write,
        plan.ids.is_some(),
    );
    let own_git = config.env.contains_key("GIT_CONFIG_COUNT");
    for (name, value) in extra {
        if !(own_git && name.starts_with("GIT_CONFIG_")) {
            env.insert(name.into(), value.into());
        }
    }
    for (name, value) in &config.env {
        env.insert(name.into(), value.into());
    }
    env
}

fn private_dir(server: &str, path: PathBuf) -> Result<PathBuf, super::SpawnError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&path)
        .map_err(|source| SpawnError::PrivateDir {
            server: server.to_owned(),
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

/// How servers are started, the same for every server of a session.
#[derive(Debug, Clone)]
pub struct Spawner {
    /// Holds each server's private HOME and TMPDIR (the data dir).
    pub state_dir: PathBuf,
    /// mcp-warden's own binary, to run each server under its launcher (see
    /// `sandbox/launcher.rs`); `None` runs servers directly (library tests).
    pub launcher: Option<PathBuf>,
}

/// The file `config`'s server runs, symlinks resolved: found in the PATH the child
/// gets, as [`spawn`] finds it. For pinning the executable's digest on this machine.
pub fn program_of(config: &ServerConfig) -> std::io::Result<PathBuf> {
    resolve_program(&config.command, Some(&search_path(config).0))?.canonicalize()
}

/// Where a command without a `/` is looked for: the server's own `env.PATH`, else
/// mcp-warden's PATH (in `serve`, the one the client started it with), else
/// [`FALLBACK_PATH`]; with what it came from, for messages that say which PATH.
#[must_use]
pub fn search_path(config: &ServerConfig) -> (std::ffi::OsString, &'static str) {
    if let Some(path) = config.env.get("PATH") {
        return (path.into(), "the server's `env.PATH`");
    }
    match std::env::var_os("PATH") {
        Some(path) => (path, "mcp-warden's PATH"),
        None => (FALLBACK_PATH.into(), "the fallback PATH"),
    }
}

/// Finds `command` the way `execvp` would, in `path` when it has no `/`, and checks
/// it is an executable file.
fn resolve_program(command: &str, path: Option<&std::ffi::OsString>) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if command.contains('/') {
        let p = PathBuf::from(command);
        return match std::fs::metadata(&p) {
            Err(e) => Err(e),
            Ok(_) if is_executable(&p) => Ok(p),
            Ok(_) => Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "not an executable file",
            )),
        };
    }
    let path = path.cloned().unwrap_or_else(|| FALLBACK_PATH.into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(command))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not found in the server's PATH",
            )
        })
}

/// The process that runs `config`'s server: its launcher with the server's sandbox
/// plan (or, without a launcher, the server itself), environment, working directory.
fn command_for(
    config: &ServerConfig,
    spawner: &Spawner,
    default_cwd: Option<&Path>,
    report_only: bool,
) -> Result<(std::process::Command, crate::sandbox::Plan), SpawnError> {
    use std::os::unix::process::CommandExt;
    let name = config.name.as_str();
    let start_error = |source| SpawnError::Start {
        server: name.to_owned(),
        command: config.command.clone(),
        source,
    };
    // Resolved here, with the child's own PATH, so a missing command is reported at
    // once and by name, and the launcher execs an absolute path.
    let path = config
        .env
        .get("PATH")
        .map(OsString::from)
        .or_else(|| std::env::var_os("PATH"));
    let program = resolve_program(&config.command, path.as_ref()).map_err(start_error)?;
    let server = config.sandboxed(&program);
    let plan = crate::sandbox::plan::prepare(&server, default_cwd, &spawner.state_dir).map_err(
        |source| SpawnError::Sandbox {
            server: name.to_owned(),
            source,
        },
    )?;
    // A server kept at our uid gets its directories now; one dropped to a uid of its
    // own makes them itself, after the drop, so root never creates inside them.
    if plan.ids.is_none() {
        private_dir(name, plan.home.clone())?;
        private_dir(name, plan.tmp.clone())?;
    }
    let env = child_env(config, &program, &plan);
    let mut cmd = if let Some(launcher) = &spawner.launcher {
        let plan = serde_json::to_string(&plan).map_err(|e| start_error(e.into()))?;
        let mut cmd = std::process::Command::new(launcher);
        // The launcher starts a session of its own (no terminal), which is also the
        // process group the supervisor signals.
        cmd.arg(crate::sandbox::launcher::SUBCOMMAND)
            .arg("--parent")
            .arg(std::process::id().to_string())
            .arg("--sandbox")
            .arg(plan);
        if report_only {
            cmd.arg("--report-only");
        }
        cmd.arg("--").arg(&program);
        cmd
    } else {
        let mut cmd = std::process::Command::new(&program);
        cmd.process_group(0);
        cmd
    };
    cmd.args(&config.args).env_clear().envs(env);
    // The configured `cwd`, else the private HOME (SPEC "Servers"); with a launcher,
    // which makes HOME after the uid drop, the launcher enters it itself.
    match (&config.cwd, &spawner.launcher) {
        (Some(cwd), _) => {
            cmd.current_dir(cwd);
        }
        // Made above when the server keeps our uid; otherwise only a launcher makes it
        // (after the drop), so without one the server starts in `/`, never in a
        // directory that could hold a repository's code.
        (None, None) if plan.ids.is_none() => {
            cmd.current_dir(&plan.home);
        }
        (None, None) => {
            cmd.current_dir("/");
        }
        (None, Some(_)) => {}
    }
    Ok((cmd, plan))
}

/// What a server's sandbox came to without starting it (`doctor`).
#[derive(Debug)]
pub struct Probe {
    pub plan: crate::sandbox::Plan,
    /// The launcher's report, or what it said instead.
    pub report: Result<crate::sandbox::Report, String>,
}

/// What `config`'s server would get from its sandbox on this machine: the launcher
/// applies the real plan, reports, and exits without starting the server (`doctor`).
pub fn probe_sandbox(
    config: &ServerConfig,
    spawner: &Spawner,
    default_cwd: Option<&Path>,
) -> Result<Probe, SpawnError> {
    let (mut cmd, plan) = command_for(config, spawner, default_cwd, true)?;
    let output = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| SpawnError::Start {
            server: config.name.to_string(),
            command: config.command.clone(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    let report = crate::sandbox::Report::from_line(first)
        .ok_or_else(|| format!("the launcher said: {}", stderr.trim()));
    Ok(Probe { plan, report })
}

/// Who reads a server's stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdoutTo {
    /// A task of its own, which sends each line as an [`UpstreamEvent::Line`].
    Events,
    /// Whoever started it: [`Upstream::take_stdout`] (the session's
    /// [`super::StdoutSet`]).
    Caller,
}

/// Starts `config`'s server and its tasks. `state_dir` holds the server's private HOME
/// and TMPDIR; `default_cwd` is used when the config names none.
pub fn spawn(
    config: &ServerConfig,
    spawner: &Spawner,
    default_cwd: Option<&Path>,
    instance: InstanceId,
    events: mpsc::Sender<UpstreamEvent>,
    stdout_to: StdoutTo,
) -> Result<Upstream, SpawnError> {
    let name = config.name.as_str();
    let start_error = |source| SpawnError::Start {
        server: name.to_owned(),
        command: config.command.clone(),
        source,
    };
    let mut cmd = Command::from(command_for(config, spawner, default_cwd, false)?.0);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(start_error)?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(start_error(std::io::Error::other("child pipes missing")));
    };

    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));
    // Ends (closing the server's stdin) when the sink is dropped or the pipe breaks.
    let (stdin, writer) = writer::start(
        crate::stdio::child_stdin(stdin).map_err(start_error)?,
        STDIN_QUEUE,
    );
    let (stdout, eager) = crate::stdio::child_stdout(stdout).map_err(start_error)?;
    let (lines, drained) = StdoutLines::new(instance, stdout);
    let lines = match stdout_to {
        StdoutTo::Events => {
            drop(tokio::spawn(lines.forward(events.clone())));
            None
        }
        StdoutTo::Caller => Some(lines),
    };
    let stderr_task = tokio::spawn(read_stderr(
        stderr,
        name.to_owned(),
        Arc::clone(&tail),
        (instance, events.clone()),
    ));
    let (stop_tx, stop_rx) = oneshot::channel();
    let supervisor = tokio::spawn(supervise(
        child,
        stop_rx,
        Tasks {
            writer,
            drained,
            stderr: stderr_task,
        },
        instance,
        events,
        Arc::clone(&tail),
    ));
    tracing::info!(server = name, instance, command = %config.command, "upstream started");
    Ok(Upstream {
        name: config.name.clone(),
        instance,
        stdin,
        unsent: VecDeque::new(),
        wake_reader: lines.is_none(),
        stdout: lines,
        eager,
        stop: Some(stop_tx),
        supervisor,
        stderr_tail: tail,
    })
}

/// Drains stderr continuously into the log, so a chatty server never blocks on it.
async fn read_stderr(
    stderr: tokio::process::ChildStderr,
    server: String,
    tail: Arc<Mutex<VecDeque<String>>>,
    (instance, events): (InstanceId, mpsc::Sender<UpstreamEvent>),
) {
    let mut frames = FramedRead::new(stderr, LineCodec::new(STDERR_MAX_LINE));
    // The launcher's sandbox report comes first, before the server exists to write
    // anything; a later line that looks like one is the server's and is just logged.
    if let Some(Ok(Line::Frame(first))) = frames.next().await {
        let text = String::from_utf8_lossy(&first);
        if let Some(report) = crate::sandbox::Report::from_line(&text) {
            let _ = events.send(UpstreamEvent::Sandbox(instance, report)).await;
        } else {
            tracing::info!(target: "upstream::stderr", server = %server, "{text}");
            if let Ok(mut tail) = tail.lock() {
                tail.push_back(text.into_owned());
            }
        }
    }
    // The log is bounded per second; the pipe is always drained, so a chatty server
    // never blocks on it (FAULTS 12).
    let mut window = std::time::Instant::now();
    let (mut logged, mut dropped) = (0u32, 0u64);
    while let Some(Ok(line)) = frames.next().await {
        let text = match &line {
            Line::Frame(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Line::Overlong { skipped, .. } => format!("[{skipped} bytes of one line skipped]"),
        };
        if window.elapsed() >= std::time::Duration::from_secs(1) {
            if dropped > 0 {
                tracing::warn!(target: "upstream::stderr", server = %server, dropped, "stderr lines not logged (over {STDERR_LINES_PER_SECOND} a second)");
            }
            window = std::time::Instant::now();
            (logged, dropped) = (0, 0);
        }
        if logged < STDERR_LINES_PER_SECOND {
            logged += 1;
            tracing::info!(target: "upstream::stderr", server = %server, "{text}");
        } else {
            dropped += 1;
        }
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(text);
        }
    }
    if dropped > 0 {
        tracing::warn!(target: "upstream::stderr", server = %server, dropped, "stderr lines not logged (over {STDERR_LINES_PER_SECOND} a second)");
    }
}

struct Tasks {
    writer: tokio::task::JoinHandle<()>,
    /// Resolves when the stdout reader is gone (its last line taken, or given up).
    drained: oneshot::Receiver<()>,
    stderr: tokio::task::JoinHandle<()>,
}

/// Owns the child: reports its exit, or stops it when asked.
async fn supervise(
    mut child: Child,
    stop: oneshot::Receiver<()>,
    tasks: Tasks,
    instance: InstanceId,
    events: mpsc::Sender<UpstreamEvent>,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let status = tokio::select! {
        status = child.wait() => status,
        _ = stop => {
            tasks.writer.abort();
            stop_child(&mut child, pgid).await
        }
    };
    // Descendants left in the group (a wrapper's children) go with the server.
    if let Some(pgid) = pgid {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    let _ = tokio::time::timeout(DRAIN_DEADLINE, tasks.drained).await;
    let _ = tokio::time::timeout(DRAIN_DEADLINE, tasks.stderr).await;
    tasks.writer.abort();
    let status = match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("unknown ({e})"),
    };
    tracing::info!(instance, %status, "upstream exited");
    let _ = events
        .send(UpstreamEvent::Exited {
            instance,
            status,
            stderr_tail: tail_of(&tail),
        })
        .await;
}

/// Stdin is already closed by the caller dropping its sender; wait, then signal.
async fn stop_child(
    child: &mut Child,
    pgid: Option<Pid>,
) -> std::io::Result<std::process::ExitStatus> {
    if let Ok(status) = tokio::time::timeout(GRACE, child.wait()).await {
        return status;
    }
    if let Some(pgid) = pgid {
        let _ = killpg(pgid, Signal::SIGTERM);
    }
    if let Ok(status) = tokio::time::timeout(TERM_GRACE, child.wait()).await {
        return status;
    }
    if let Some(pgid) = pgid {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    let _ = child.start_kill();
    child.wait().await
}
