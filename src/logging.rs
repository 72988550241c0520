//! The operator's log: `logs/serve.log.YYYY-MM-DD` in the data dir, rolled daily at UTC
//! midnight, written off the message path by a background thread. Upstream stderr is
//! logged here with the server's name. Never stdout: in `serve` that is the protocol's.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Environment variable with a `tracing` filter for the log file (default `info`).
pub const LOG_VAR: &str = "MCP_WARDEN_LOG";

/// Starts logging into `dir`. The directory is created mode 0700, so the files in it
/// (which hold upstream stderr, possibly with secrets) are private to the user. Keep
/// the guard alive: dropping it flushes the log.
pub fn init(dir: &Path) -> std::io::Result<WorkerGuard> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("serve.log")
        .build(dir)
        .map_err(std::io::Error::other)?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_from_env(LOG_VAR).unwrap_or_else(|_| EnvFilter::new("info"));
    let installed = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
    if installed.is_err() {
        tracing::debug!("a tracing subscriber was already installed");
    }
    Ok(guard)
}
