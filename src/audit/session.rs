//! Session ids, and whether a session is still running.
//!
//! A session id is `<pid>-<start>-<tag>`: the pid of the mcp-warden process that writes
//! the chain, that process's start time (field 22 of `/proc/<pid>/stat`, clock ticks
//! since boot; `0` where there is no `/proc`), and 8 random hex digits, so two sessions
//! of one process (tests, a future multi-client server) never share a chain.
//!
//! A session is **running** when `/proc/<pid>/stat` exists, is not a zombie, and shows
//! the same start time: a pid reused by another process has another start time. Where
//! there is no `/proc`, a process with that pid existing counts as running. A chain
//! without a seal is an error for `audit verify` only when its session is not running
//! (a running session simply has not sealed yet). The start time is counted from boot,
//! so after a reboot a new process could in principle match both pid and start time of
//! a dead session; that would only make verify call an interrupted chain "running".

use std::fmt;
use std::io;

/// A session's id: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// A new id for a session of this process.
    pub fn for_this_process() -> io::Result<Self> {
        let pid = std::process::id();
        Self::for_process(pid, process_start(pid).unwrap_or(0))
    }

    /// A new id for a session of process `pid` that started at `start` (ticks since
    /// boot). For tools and tests that write on another process's behalf.
    pub fn for_process(pid: u32, start: u64) -> io::Result<Self> {
        let mut tag = [0u8; 4];
        super::key::random_bytes(&mut tag)?;
        let mut id = format!("{pid}-{start}-");
        super::record::push_hex(&mut id, &tag);
        Ok(Self(id))
    }

    /// The id as written in records.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether the process that wrote a session is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The same process (pid and start time) is alive.
    Running,
    /// The process is gone (or the pid now belongs to another process).
    Ended,
    /// The id is not of the form this module writes; it cannot be checked.
    Unknown,
}

/// Whether the session with this id is running (see the module docs).
#[must_use]
pub fn liveness(session: &str) -> Liveness {
    let mut parts = session.split('-');
    let (Some(pid), Some(start), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Liveness::Unknown;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return Liveness::Unknown;
    };
    if tag.len() != 8 || !tag.bytes().all(|b| b.is_ascii_hexdigit()) || pid == 0 {
        return Liveness::Unknown;
    }
    if std::path::Path::new("/proc/self/stat").exists() {
        return match process_start(pid) {
            Some(now) if now == start => Liveness::Running,
            _ => Liveness::Ended,
        };
    }
    let Ok(raw) = i32::try_from(pid) else {
        return Liveness::Ended;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => Liveness::Running,
        Err(_) => Liveness::Ended,
    }
}

/// The start time of a live (not zombie) process, from `/proc/<pid>/stat`.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself hold `)` or spaces:
    // the fields after the last `)` start with field 3, the state.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?;
    if matches!(state, "Z" | "X" | "x") {
        return None;
    }
    // Field 22, the start time, is the 19th after the state.
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_running_and_a_reused_pid_is_not() {
        let id = SessionId::for_this_process().expect("id");
        assert_eq!(liveness(id.as_str()), Liveness::Running, "{id}");
        let start = process_start(std::process::id()).expect("start");
        let other = SessionId::for_process(std::process::id(), start + 1).expect("id");
        assert_eq!(liveness(other.as_str()), Liveness::Ended);
        assert_ne!(SessionId::for_this_process().expect("id"), id);
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a test needs a process that has ended
    fn a_finished_process_is_not_running() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        let start = process_start(pid).unwrap_or(1);
        child.wait().expect("wait");
        let id = SessionId::for_process(pid, start).expect("id");
        assert_eq!(liveness(id.as_str()), Liveness::Ended);
    }

    #[test]
    fn foreign_ids_cannot_be_checked() {
        for id in [
            "",
            "abc",
            "1-2",
            "1-2-zzzzzzzz",
            "0-5-0a0b0c0d",
            "1-2-0a0b0c0d-9",
        ] {
            assert_eq!(liveness(id), Liveness::Unknown, "{id}");
        }
    }
}
