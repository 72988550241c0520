//! Upstream servers: the child process and the tasks that move its bytes, the
//! states of a slot ([`slot`]: start, handshake, restart backoff, listings) and the
//! sequence of a start-up as a sans-I/O machine ([`startup`]: events in, actions
//! out). This is the only module that spawns processes: `serve`'s servers (the
//! session drives their start-up machine) and those `pin`, `pins`, `scan` and
//! `doctor` take the inventory of ([`inventory`], the machine's async driver). Both
//! read the `initialize` answer ([`handshake`]) and page
//! through lists ([`listing`]: the same parameters, page reading and bounds) the
//! same way, after the same era probe ([`crate::era::probe`]).
//!
//! Each upstream gets a writer task (our queue → its stdin; the session writes to the
//! pipe itself while that task is idle), a stdout reader ([`stdout`]: framed lines,
//! read by the session itself in `serve`, by a task of its own for the inventory), a
//! stderr task (→ the log file, tagged with the
//! server's name, never our stdout) and a supervisor that owns the child, reports its
//! exit and stops it on request: close stdin, grace period, SIGTERM to its process
//! group, SIGKILL, with a deadline.

pub mod handshake;
pub mod inventory;
pub mod listing;
pub mod slot;
mod spawn;
pub mod startup;
mod stdout;

pub use spawn::{
    Probe, SpawnError, Spawner, StdoutTo, probe_sandbox, program_of, search_path, spawn,
};
pub use stdout::{StdoutLines, StdoutSet};

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::ServerName;
use crate::jsonrpc::Line;
use crate::jsonrpc::writer::LineSink;

/// Identifies one running instance of an upstream. A restarted server gets a new one,
/// so late events of the old process can never be mistaken for the new one's.
pub type InstanceId = u64;

/// How many messages may wait for an upstream's stdin before the session is told
/// the upstream is busy. A slow reader blocks only its own writer.
pub const STDIN_QUEUE: usize = 256;
/// Lines of an upstream's stderr kept to explain a crash.
pub const STDERR_TAIL_LINES: usize = 20;
/// Longest stderr line logged whole; longer ones are cut (the rest is skipped).
pub const STDERR_MAX_LINE: usize = 16 * 1024;
/// After stdin is closed, how long a server may take to exit on its own.
pub const GRACE: Duration = Duration::from_secs(2);
/// After SIGTERM, how long before SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(2);

/// A server's timeout as the configuration writes it (`10s`, `500ms`), for the
/// reasons given when it did not answer in time (`serve` and the inventory alike).
#[must_use]
pub fn timeout_text(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Why a server is gone: how it exited and its last stderr line, worded the same for
/// `serve` and the inventory.
#[must_use]
pub fn exit_reason(status: &str, stderr_tail: &[String]) -> String {
    match stderr_tail.last() {
        Some(last) => format!("exited ({status}); last stderr line: {last}"),
        None => format!("exited ({status})"),
    }
}

/// What an upstream's tasks tell the session.
#[derive(Debug)]
pub enum UpstreamEvent {
    /// A line (or an overlong line skipped) from the server's stdout.
    Line(InstanceId, Line),
    /// What the launcher's sandbox applied, before the server started.
    Sandbox(InstanceId, crate::sandbox::Report),
    /// The process exited; `status` describes how, `stderr_tail` its last words.
    Exited {
        instance: InstanceId,
        status: String,
        stderr_tail: Vec<String>,
    },
    /// Why a server that exited before its handshake cannot start (the session's
    /// diagnosis, made off its thread: [`crate::sandbox::diagnose::after_failure`]).
    Diagnosed {
        server: ServerName,
        found: Vec<String>,
    },
}

/// The session's handle on a running upstream.
#[derive(Debug)]
pub struct Upstream {
    pub name: ServerName,
    pub instance: InstanceId,
    stdin: LineSink,
    /// Lines given with [`Upstream::push`] and not yet written: this turn's requests,
    /// written together by [`Upstream::flush`].
    unsent: VecDeque<Bytes>,
    /// Its stdout, until [`Upstream::take_stdout`] (when started with
    /// [`StdoutTo::Caller`]).
    stdout: Option<StdoutLines>,
    /// Whether a task of its own reads its stdout, which a write must wake.
    wake_reader: bool,
    /// Its stdout reader's: told after each write, as the answer may be there at once.
    eager: crate::stdio::Eager,
    stop: Option<oneshot::Sender<()>>,
    supervisor: JoinHandle<()>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

/// Why a message could not be queued for an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Its stdin queue is full: the server is not reading.
    Full,
    /// Its stdin is closed: the server is gone.
    Closed,
}

impl Upstream {
    /// Sends one complete line (with `\n`) towards the server's stdin now, after any
    /// pushed before it, without waiting.
    ///
    /// # Errors
    /// [`SendError::Full`] when the server is not reading, [`SendError::Closed`]
    /// when its stdin is gone.
    pub fn send(&mut self, line: Bytes) -> Result<(), SendError> {
        self.push(line)?;
        self.flush();
        Ok(())
    }

    /// Takes one complete line for the next [`Upstream::flush`], so the lines of one
    /// turn reach the server in one write. The same checks as [`Upstream::send`].
    ///
    /// # Errors
    /// As [`Upstream::send`].
    pub fn push(&mut self, line: Bytes) -> Result<(), SendError> {
        if self.stdin.is_closed() {
            return Err(SendError::Closed);
        }
        if self.unsent.len() >= self.stdin.room() {
            return Err(SendError::Full);
        }
        self.unsent.push_back(line);
        Ok(())
    }

    /// Writes what was pushed (directly, or through the writer's queue). Room for it
    /// was checked when each line was pushed; a server that went away meanwhile loses
    /// its lines, as its exit is on the way.
    pub fn flush(&mut self) {
        if self.unsent.is_empty() {
            return;
        }
        if self.stdin.send_from(&mut self.unsent).is_err() {
            self.unsent.clear();
        }
        // On one CPU the server often runs the moment it is written to: its reader
        // looks at once instead of after the event loop's next `epoll_wait` (the
        // session reads it in this very turn; a task of its own must be woken).
        if self.wake_reader {
            self.eager.expect();
        } else {
            self.eager.arm();
        }
    }

    /// Its stdout, for the caller to read (once; started with [`StdoutTo::Caller`]).
    pub fn take_stdout(&mut self) -> Option<StdoutLines> {
        self.stdout.take()
    }

    /// The last lines the server wrote to stderr.
    #[must_use]
    pub fn stderr_tail(&self) -> Vec<String> {
        tail_of(&self.stderr_tail)
    }

    /// Stops the server: closes its stdin, waits [`GRACE`], then SIGTERM and SIGKILL
    /// to its whole process group. Returns when the process is gone.
    pub async fn shutdown(mut self) {
        drop(self.stdin);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.supervisor.await;
    }
}

fn tail_of(tail: &Mutex<VecDeque<String>>) -> Vec<String> {
    tail.lock()
        .map(|t| t.iter().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_name_the_status_and_the_last_stderr_line() {
        assert_eq!(
            exit_reason("exit status: 7", &[]),
            "exited (exit status: 7)"
        );
        assert_eq!(
            exit_reason("exit status: 7", &["a".into(), "b".into()]),
            "exited (exit status: 7); last stderr line: b"
        );
    }

    #[test]
    fn timeouts_are_worded_as_the_configuration_writes_them() {
        assert_eq!(timeout_text(Duration::from_secs(10)), "10s");
        assert_eq!(timeout_text(Duration::from_millis(1500)), "1500ms");
    }
}
