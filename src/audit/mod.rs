//! The audit trail (SPEC "Audit"): every decision the gateway makes, one JSON line per
//! decision, in daily files under the data dir, hash-chained per session so that
//! `mcp-warden audit verify` finds an edited, dropped, reordered or cut-off line.
//!
//! This module owns the record format, the one writer task per session, the
//! per-install HMAC key, and reading and checking the files. It never decides anything
//! and never touches the message path: the session hands it [`Event`]s through an
//! [`AuditHandle`] and carries on. It is evidence, not logging: `-v` and `RUST_LOG`
//! do not filter it, and `tracing` is used only to tell the operator about the writer.
//!
//! # Files
//! - `audit/YYYY-MM-DD.jsonl` (UTC day of the record's `ts`): directory 0700, files
//!   0600, appended with `O_APPEND` by every session of every mcp-warden process;
//!   whole lines per `write(2)`, so sessions never tear each other's lines.
//! - `audit.key`: 32 random bytes, 0600, created once; the key of `args_hmac` and of
//!   the chain (format 2).
//! - `audit/anchor.jsonl`: one keyed line per sealed session ([`anchor`]), so a whole
//!   session or day file removed is found.
//!
//! # A record
//! ```json
//! {"v":2,"ts":"2026-05-01T12:00:00.123Z","session":"48213-9120334-9f3a1c2e","seq":4,"workspace":"/home/u/proj","server":"fs","tool":"fs__write_file","method":"tools/call","direction":"to_server","decision":"deny","rule":"writes-stay-in-workspace","args_hmac":"5fc3e786…","ms":null,"bytes":118,"detail":"writes outside the workspace are not allowed","prev":"hmac-sha256:1c0e…","hash":"hmac-sha256:77a4…"}
//! ```
//! Field by field: [`Record`]. How `hash` is computed, byte for byte: [`record`]. Decisions:
//! `allow`, `deny`, `hold`, `redact`, `flag`, `monitor` as SPEC "Decisions on the wire"
//! names them, `list` for the one summary per list answer (`listed` and `held` counts,
//! `tools` = the names listed, which `usage` needs to find grants never used), and
//! `seal` for the last record of a session that ended cleanly.
//!
//! # Sessions
//! Each session is its own chain (`seq` from 1, `prev` from [`GENESIS`]). Its id holds
//! the writing process's pid and start time, which is how `verify` tells a session
//! still running (not sealed yet: fine) from one that ended without a seal
//! ("unsealed (interrupted or cut off)": a failure); see [`session`].
//!
//! # Use
//! ```no_run
//! # async fn demo(paths: &mcp_warden::paths::Paths) -> Result<(), mcp_warden::audit::AuditError> {
//! use mcp_warden::audit::{Audit, Decision, Direction, Event, SessionMeta};
//! let meta = SessionMeta::new(Some("/home/u/proj".into()))?;
//! let (audit, writer) = Audit::start(paths, meta).await?; // keep `writer`: it ends with the task's result
//! audit.record(Event::list("tools/list", vec!["fs__read_file".into(), "fs__write_file".into()], 0))?;
//! let call = Event::new(Direction::ToServer, Decision::Deny)
//!     .server("fs").tool("fs__write_file").method("tools/call")
//!     .rule("writes-stay-in-workspace").arguments(r#"{"path":"/etc/passwd"}"#);
//! audit.record(call)?; // never blocks; Err(AuditClosed) only once the writer has stopped: fail closed
//! let written = audit.seal().await?; // the seal and everything before it are on disk (fsync)
//! assert!(written.sealed && writer.await.is_ok());
//! # Ok(()) }
//! ```

pub mod anchor;
pub mod key;
pub mod query;
pub mod read;
pub mod record;
pub mod session;
pub mod syslog;
pub mod verify;
mod writer;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use key::{AuditKey, args_hmac};
pub use query::{Filter, Glob, Review, Usage};
pub use read::{Entry, Location, Reader, Skip, day_files, read};
pub use record::{Decision, Direction, GENESIS, Record, VERSION};
pub use session::{Liveness, SessionId, liveness};
pub use verify::{ChainState, Problem, ProblemKind, Report, verify};
pub use writer::{
    Audit, AuditClosed, AuditHandle, Event, MAX_BACKLOG, MAX_BATCH_RECORDS, MAX_WRITE_BYTES,
    PackedEvent, SessionMeta, Written,
};

use crate::paths::Paths;

/// The directory of the day files.
#[must_use]
pub fn audit_dir(paths: &Paths) -> PathBuf {
    paths.data_dir.join("audit")
}

/// The per-install HMAC key.
#[must_use]
pub fn key_file(paths: &Paths) -> PathBuf {
    paths.data_dir.join("audit.key")
}

/// What can go wrong writing or reading the audit trail. I/O errors are shared
/// (`Arc`) so that one failure can be reported to every waiter.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// Reading or writing a file or directory.
    #[error("audit: `{}`: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        #[source]
        source: Arc<io::Error>,
    },
    /// The HMAC key could not be read or created.
    #[error("audit key `{}`: {source}", path.display())]
    Key {
        /// `audit.key`.
        path: PathBuf,
        /// The failure.
        #[source]
        source: Arc<io::Error>,
    },
    /// The writer task stopped (sealed, failed, or its runtime shut down).
    #[error("the audit writer has stopped")]
    Closed,
    /// A blocking task panicked or was cancelled.
    #[error("audit writer task failed: {0}")]
    Task(String),
}

impl From<AuditClosed> for AuditError {
    fn from(_: AuditClosed) -> Self {
        Self::Closed
    }
}

impl AuditError {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: io::Error) -> Self {
        Self::Io {
            path: path.as_ref().to_path_buf(),
            source: Arc::new(source),
        }
    }
}
