//! Wiring for `serve`: configuration → logging → session over stdio → shutdown.

use std::path::PathBuf;
use std::time::Duration;

use crate::ExitStatus;
use crate::audit;
use crate::config::{self, Effective, TrustState, WorkspaceChoice};
use crate::filter::Chain;
use crate::filter::output::{OutputFilter, OutputSettings};
use crate::jsonrpc::codec::DEFAULT_MAX_LINE;
use crate::output;
use crate::paths::Paths;
use crate::session::{self, Reload, SessionConfig};
use crate::upstream::Spawner;

/// How long the runtime waits for its blocking threads (a stdin read) at exit.
const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(200);
/// When `serve` gives back its binary's resident pages again, counted from the start of
/// the session. Starting the upstreams, their handshakes, pinning their executables and
/// compiling the scan's patterns run code once, in the first second or so with quick
/// servers, later with slow ones; what a call runs faults back in within a few calls
/// (~4 MiB of the 6.7 MiB of code stay resident instead of ~6: docs/benchmark.md).
const RELEASE_AFTER: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(10),
    Duration::from_secs(60),
];

/// Runs the stdio MCP server until the client leaves.
pub fn run(paths: &Paths, workspace: Option<PathBuf>) -> anyhow::Result<ExitStatus> {
    // Before the log writer's thread starts (the next line).
    crate::resident::one_malloc_arena();
    let _log_guard = match crate::logging::init(&paths.log_dir()) {
        Ok(guard) => Some(guard),
        Err(e) => {
            output::diag(&format!(
                "mcp-warden: warning: cannot write the log in `{}`: {e}",
                paths.log_dir().display()
            ));
            None
        }
    };
    let cwd = std::env::current_dir()?;
    let fixed = workspace.is_some();
    let choice = workspace.map_or_else(|| WorkspaceChoice::Cwd(cwd.clone()), WorkspaceChoice::Flag);
    let effective = match config::load_serving(paths, &choice) {
        Ok(effective) => effective,
        Err(e) => {
            output::diag_block(&e.to_string());
            return Ok(ExitStatus::Usage);
        }
    };
    let notices = notices_of(&effective);
    for notice in &notices {
        output::diag(&format!("mcp-warden: {notice}"));
        tracing::warn!("{notice}");
    }
    let reload = if fixed {
        None
    } else {
        let paths = paths.clone();
        Some(Reload(Box::new(move |roots: Vec<PathBuf>| {
            let choice = WorkspaceChoice::Roots {
                roots,
                cwd: cwd.clone(),
            };
            match config::load_serving(&paths, &choice) {
                Ok(effective) => {
                    for notice in notices_of(&effective) {
                        output::diag(&format!("mcp-warden: {notice}"));
                    }
                    Some(effective)
                }
                Err(e) => {
                    output::diag(
                        "mcp-warden: the client's roots lead to a broken configuration; keeping the current one",
                    );
                    output::diag_block(&e.to_string());
                    tracing::error!(error = %e, "configuration for the client's roots is invalid");
                    None
                }
            }
        })))
    };
    let effective_pinning = effective.pinning;
    let output = OutputSettings::of(&effective.policy.settings);
    let effective_limits = effective.policy.settings.limits;
    let settled = std::sync::Arc::new(tokio::sync::Notify::new());
    let config = SessionConfig {
        effective,
        spawner: Spawner {
            state_dir: paths.data_dir.clone(),
            launcher: std::env::current_exe().ok(),
        },
        reload,
        notices,
        max_line: max_line(&effective_limits),
        pinning: session::PinningSetup {
            settings: effective_pinning,
            paths: paths.clone(),
        },
        audit: None,
        state_key: state_key(paths),
        settled: Some(settled.clone()),
    };
    let workspace_root = config.effective.workspace.as_ref().map(|w| w.root.clone());
    let audit_syslog = config.effective.audit_syslog.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Reading and checking the configuration ran code the session never runs again
    // (the command line, TOML, trust, policy compilation): it need not stay resident.
    crate::resident::release_own_pages();
    let paths = paths.clone();
    let audited = Audited {
        workspace_root,
        syslog: audit_syslog,
    };
    let outcome = runtime.block_on(session_and_helpers(paths, config, audited, output, settled))?;
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    tracing::info!(?outcome, "session ended");
    Ok(ExitStatus::Success)
}

/// `serve`'s tasks: the session, and beside it the signals that stop it and the
/// release of start-up pages; returns when the session ends.
async fn session_and_helpers(
    paths: Paths,
    config: SessionConfig,
    audited: Audited,
    output: OutputSettings,
    settled: std::sync::Arc<tokio::sync::Notify>,
) -> std::io::Result<session::Outcome> {
    let (stop, signals) = stop_signal()?;
    let settle = tokio::spawn(release_when_settled(settled));
    // The session runs as a task of the runtime, not as `block_on`'s own future: a task
    // woken by another task (the stdin reader, an upstream's reader) runs in the same
    // turn of the scheduler, whereas waking `block_on`'s future makes the runtime poll
    // epoll once more first, one extra syscall per hop, two per call
    // (docs/benchmark.md, "fewer hops per call").
    let session = tokio::spawn(session_task(paths, config, audited, output, stop));
    let ended = session.await;
    signals.abort();
    settle.abort();
    match ended {
        Ok(outcome) => Ok(outcome),
        // A panic in the session stays a panic of `serve`, as before it was a task.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(std::io::Error::other(e)),
    }
}

/// Where the session's audit trail goes.
struct Audited {
    workspace_root: Option<PathBuf>,
    syslog: Option<audit::syslog::SyslogTarget>,
}

/// The session over stdio with its audit trail, sealed at the end: `serve`'s one task.
async fn session_task(
    paths: Paths,
    mut config: SessionConfig,
    audited: Audited,
    output: OutputSettings,
    stop: impl Future<Output = ()>,
) -> session::Outcome {
    let writer = start_audit(&paths, audited.workspace_root, audited.syslog, &mut config).await;
    let chain = Chain::new().with(Box::new(OutputFilter::new(output)));
    let outcome = session::run(
        config,
        chain,
        crate::stdio::stdin(),
        crate::stdio::stdout(),
        stop,
    )
    .await;
    if let Some((audit, writer)) = writer {
        finish_audit(audit, writer).await;
    }
    outcome
}

/// Starts this session's audit writer and hands the session its handle. A trail that
/// cannot be written is said (stderr, log, and to the client) and the session goes on
/// without it: refusing to serve would not make the decisions safer.
async fn start_audit(
    paths: &Paths,
    workspace: Option<PathBuf>,
    syslog: Option<audit::syslog::SyslogTarget>,
    config: &mut SessionConfig,
) -> Option<(
    audit::AuditHandle,
    tokio::task::JoinHandle<Result<audit::Written, audit::AuditError>>,
)> {
    let started = match audit::SessionMeta::new(workspace) {
        Ok(meta) => audit::Audit::start_forwarding(paths, meta, syslog).await,
        Err(e) => Err(e),
    };
    match started {
        Ok((handle, writer)) => {
            config.audit = Some(handle.clone());
            Some((handle, writer))
        }
        Err(e) => {
            let text =
                format!("the audit trail cannot be written, decisions are not recorded: {e}");
            output::diag(&format!("mcp-warden: {text}"));
            tracing::error!("{text}");
            config.notices.push(text);
            None
        }
    }
}

/// Seals the session's chain once everything it decided is written.
async fn finish_audit(
    audit: audit::AuditHandle,
    writer: tokio::task::JoinHandle<Result<audit::Written, audit::AuditError>>,
) {
    match audit.seal().await {
        Ok(written) => tracing::info!(
            records = written.records,
            syslog_delivered = written.syslog.map(|d| d.delivered),
            syslog_undelivered = written.syslog.map(|d| d.undelivered),
            "audit trail sealed"
        ),
        Err(e) => tracing::error!(error = %e, "the audit trail could not be sealed"),
    }
    if let Ok(Err(e)) = writer.await {
        tracing::error!(error = %e, "the audit writer failed");
    }
}

/// The longest message accepted from the client: `[limits] max_message_bytes`, never
/// more than the built-in bound.
fn max_line(limits: &crate::policy::Limits) -> usize {
    limits
        .max_message_bytes
        .and_then(|m| usize::try_from(m).ok())
        .map_or(DEFAULT_MAX_LINE, |m| m.min(DEFAULT_MAX_LINE))
}

/// What a person should know about the configuration before anything starts.
fn notices_of(effective: &Effective) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(ws) = &effective.workspace {
        let has_file = ws.file.is_some();
        match &ws.trust {
            TrustState::NotTrusted if has_file => out.push(format!(
                "workspace `{}` is not trusted: its servers are not started and its settings cannot loosen yours; review `mcp-warden.toml`, then run `mcp-warden trust`",
                ws.root.display()
            )),
            TrustState::Changed { changed } => {
                let files: Vec<String> = changed.iter().map(|f| format!("`{}`", f.display())).collect();
                out.push(format!(
                    "workspace `{}` is no longer trusted: {} changed since you trusted it; review the change, then run `mcp-warden trust`",
                    ws.root.display(),
                    files.join(" and ")
                ));
            }
            TrustState::Trusted | TrustState::NotTrusted => {}
        }
    }
    out.extend(effective.notes.iter().cloned());
    for skipped in &effective.skipped {
        out.push(format!(
            "server `{}` is not started: {}",
            skipped.server, skipped.reason
        ));
    }
    out
}

/// Gives back the binary's pages that starting the session faulted in: once the
/// session has settled (every upstream started and listed: the handshakes, executable
/// pinning, the sandbox's spawning and the scan's pattern compilation are done), and
/// again at [`RELEASE_AFTER`].
///
/// The timed releases alone came too late for a session that is busy from its first
/// second: the benchmark's read serve's PSS ~0.9 s after start, with all of start-up's
/// code still resident (file-backed PSS ~5.9 MiB; docs/benchmark.md).
async fn release_when_settled(settled: std::sync::Arc<tokio::sync::Notify>) {
    let start = tokio::time::Instant::now();
    tokio::select! {
        () = settled.notified() => {
            let _ = tokio::task::spawn_blocking(crate::resident::release_own_pages).await;
        }
        () = tokio::time::sleep_until(start + RELEASE_AFTER[0]) => {}
    }
    for after in RELEASE_AFTER {
        tokio::time::sleep_until(start + after).await;
        // Reading `/proc/self/smaps` is file I/O: off the session's thread.
        let _ = tokio::task::spawn_blocking(crate::resident::release_own_pages).await;
    }
}

/// A future that completes on SIGTERM, SIGINT or SIGHUP, so a terminal closing or a
/// client killing us politely still stops every upstream; and the task that waits for
/// the signals.
///
/// The session polls its stop future first on every turn of its loop, so that future
/// is a oneshot receiver (one atomic load when nothing happened), not the three signal
/// streams themselves: polling those cost ~3 % of `serve`'s CPU per call (a `perf`
/// profile, docs/benchmark.md).
fn stop_signal() -> std::io::Result<(impl Future<Output = ()>, tokio::task::JoinHandle<()>)> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let signals = tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = hup.recv() => {}
        }
        let _ = tx.send(());
    });
    // Only a signal completes it: the sender lives until the session has ended.
    let stop = async move {
        if rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    Ok((stop, signals))
}

/// The `requestState` envelopes' key, derived from the per-install audit key (loaded,
/// or created, whether or not auditing is on). Without it the session draws a key of
/// its own: envelopes then cannot outlive the process, which they never do anyway.
fn state_key(paths: &crate::paths::Paths) -> Option<crate::era::state::StateKey> {
    match audit::AuditKey::load_or_create(&audit::key_file(paths)) {
        Ok(key) => Some(crate::era::state::StateKey::from_audit_key(&key)),
        Err(e) => {
            tracing::warn!(error = %e, "no per-install key for requestState envelopes; one for this process");
            None
        }
    }
}
