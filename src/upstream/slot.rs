//! The state machine of one upstream slot, as data: where its process is in its
//! life (spawned → probing → initializing → ready in its era, or failed), where each
//! of its listings is,
//! and when a failed one is started again. The session drives the transitions (they
//! send messages and set timers); the states and the backoff rule live here, with the
//! rest of what concerns an upstream.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::era::Era;
use crate::router::catalog::Item;

/// The first restart of a crashed server waits this long; each failure in a row
/// doubles it.
pub const RESTART_BASE: Duration = Duration::from_millis(250);
/// The longest wait between restarts.
pub const RESTART_CAP: Duration = Duration::from_secs(30);
/// A server that ran this long before failing starts its backoff afresh.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// Where an upstream's process is in its life.
#[derive(Debug)]
pub enum SlotState {
    /// Our `server/discover` probe is in flight (at this version): its answer decides
    /// the era for the life of the process.
    Probing {
        version: &'static str,
    },
    /// Legacy (or not probed); waiting for the client to start the handshake.
    Spawned,
    /// Our `initialize` is in flight.
    Initializing,
    Ready {
        /// The era found by the probe, with the version agreed.
        era: Era,
        instructions: Option<String>,
        /// The server's declared capabilities.
        capabilities: Value,
    },
    Failed(String),
}

impl SlotState {
    /// Whether the handshake is still to finish (the client may wait for it).
    #[must_use]
    pub fn is_starting(&self) -> bool {
        matches!(
            self,
            Self::Probing { .. } | Self::Spawned | Self::Initializing
        )
    }

    /// The era of a ready server.
    #[must_use]
    pub fn era(&self) -> Option<Era> {
        match self {
            Self::Ready { era, .. } => Some(*era),
            _ => None,
        }
    }
}

/// What the probe learnt about a server's process, for `doctor`, `status` and the
/// discover result's `ttlMs`.
#[derive(Debug, Default, Clone)]
pub struct Probed {
    /// The server's `serverInfo` from its discover result.
    pub server_info: Option<Value>,
    /// How long its discover result may be cached.
    pub ttl_ms: Option<u64>,
    /// The process exited while probed: restarted without a probe, for this session
    /// (some SDKs exit on a request before `initialize`).
    pub fatal: bool,
    /// The probe was already sent again at a version the server named.
    pub retried: bool,
}

/// Where one of an upstream's listings (tools, prompts or templates) is.
#[derive(Debug, Default)]
pub enum ListState {
    /// Not listed (yet, or the server does not offer the kind).
    #[default]
    None,
    /// A listing is under way; `again` when a `list_changed` arrived meanwhile.
    Listing {
        /// What was listed before (served until the new listing completes).
        previous: Vec<Item>,
        acc: Vec<Item>,
        /// Exposed names in `acc`: a server that lists a name twice keeps the first.
        seen: std::collections::HashSet<String>,
        pages: u32,
        again: bool,
    },
    Listed(Vec<Item>),
}

/// Restarts of a crashing server: twice as long after each failure in a row
/// (capped), afresh after a healthy run, so a crash loop costs little.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Failures in a row.
    restarts: u32,
    /// When the current process was started.
    started: Instant,
}

impl Backoff {
    /// A server started `now`, with no failures yet.
    #[must_use]
    pub fn new(now: Instant) -> Self {
        Self {
            restarts: 0,
            started: now,
        }
    }

    /// The process was (re)started `now`.
    pub fn started(&mut self, now: Instant) {
        self.started = now;
    }

    /// The process failed `now`: how long to wait before starting it again.
    pub fn failed(&mut self, now: Instant) -> Duration {
        if now.duration_since(self.started) >= HEALTHY_AFTER {
            self.restarts = 0;
        }
        let delay = RESTART_BASE
            .saturating_mul(1 << self.restarts.min(16))
            .min(RESTART_CAP);
        self.restarts = self.restarts.saturating_add(1);
        delay
    }

    /// Failures in a row, this one included.
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.restarts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_double_up_to_the_cap_and_start_afresh_after_a_healthy_run() {
        let t0 = Instant::now();
        let mut b = Backoff::new(t0);
        let delays: Vec<Duration> = (0..10).map(|_| b.failed(t0)).collect();
        assert_eq!(delays[0], RESTART_BASE);
        assert_eq!(delays[1], RESTART_BASE * 2);
        assert_eq!(delays[2], RESTART_BASE * 4);
        assert_eq!(delays[9], RESTART_CAP);
        assert_eq!(b.attempt(), 10);
        b.started(t0);
        assert_eq!(b.failed(t0 + HEALTHY_AFTER), RESTART_BASE);
        assert_eq!(b.attempt(), 1);
    }
}
