//! The states of one upstream slot, as data: where its process is in its life
//! (starting → ready in its era, or failed), the rules of its probe's transitions
//! ([`Probed`]), where each of its listings is, and when a failed process is started
//! again ([`Backoff`]). The sequence of a start-up (probe, handshake, listings) is the
//! start-up machine's ([`super::startup`]); the session carries out what it says
//! (messages and timers) and keeps the state here.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::era::Era;
use crate::era::probe::ProbeOutcome;
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
    /// Starting: its start-up machine ([`super::startup`]) probes its era or, for a
    /// legacy server, awaits the client or its `initialize` answer.
    Spawned,
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
        matches!(self, Self::Spawned)
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

/// What a slot does next after its probe's answer (or a -32022 to its
/// `initialize`, read the same way).
#[derive(Debug)]
pub enum AfterProbe {
    /// Modern: ready at once, in this state (no `initialize`).
    Ready(SlotState),
    /// Ask again at the version the server named (once per process).
    ProbeAgain(&'static str),
    /// Legacy: `initialize` it when the client is there.
    Handshake,
    /// It speaks no version we do: failed, with why, and never restarted by time.
    Refused(String),
}

impl Probed {
    /// The transition a probe's `outcome` asks for; records what a modern server
    /// said about itself.
    pub fn after(&mut self, outcome: ProbeOutcome) -> AfterProbe {
        match outcome {
            ProbeOutcome::Modern(found) => {
                self.server_info = found.server_info;
                self.ttl_ms = found.ttl_ms;
                AfterProbe::Ready(SlotState::Ready {
                    era: Era::Modern(found.version),
                    instructions: found.instructions,
                    capabilities: found.capabilities,
                })
            }
            ProbeOutcome::RetryAt(version) if !self.retried => {
                self.retried = true;
                AfterProbe::ProbeAgain(version)
            }
            ProbeOutcome::RetryAt(_) | ProbeOutcome::Legacy => AfterProbe::Handshake,
            ProbeOutcome::Refuses { supported } => {
                AfterProbe::Refused(crate::era::probe::refusal_reason(&supported))
            }
        }
    }

    /// A -32022 naming `supported` in answer to our `initialize` at `asked`: a server
    /// that a timed-out probe locked into the modern era (a slow start) is probed
    /// again, once, at the version it names (`Ok`); anything else refuses us (`Err`,
    /// with why).
    pub fn after_initialize_refused(
        &mut self,
        supported: &[String],
        asked: &str,
    ) -> Result<&'static str, String> {
        match crate::era::probe::refusal(supported, asked) {
            ProbeOutcome::RetryAt(version) if !self.retried => {
                self.retried = true;
                Ok(version)
            }
            _ => Err(crate::era::probe::refusal_reason(supported)),
        }
    }

    /// Whether a process that exited while `probing` (the version of the probe
    /// awaited, if one was) is started again at once without a probe, outside the
    /// backoff: it exited on the probe itself (some SDKs exit on a request before
    /// `initialize`), the first time. Marks the slot probe-fatal for the session. (A
    /// process the launcher refused is not asked: its driver fails it for good.)
    pub fn restart_without_probe(&mut self, probing: Option<&'static str>) -> bool {
        if probing.is_some() && !self.fatal {
            self.fatal = true;
            return true;
        }
        false
    }
}

/// Where one of an upstream's listings (tools, prompts or templates) is.
#[derive(Debug, Default)]
pub enum ListState {
    /// Not listed (yet, or the server does not offer the kind).
    #[default]
    None,
    /// A listing is under way (its pages are the start-up machine's,
    /// [`super::startup`]).
    Listing {
        /// What was listed before (served until the new listing completes).
        previous: Vec<Item>,
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
    fn a_probe_decides_the_era_and_retries_only_once() {
        let mut probed = Probed::default();
        let modern = ProbeOutcome::Modern(crate::era::probe::Discovered {
            version: "2026-07-28",
            capabilities: serde_json::json!({"tools": {}}),
            instructions: None,
            ttl_ms: Some(5),
            server_info: None,
        });
        let AfterProbe::Ready(state) = probed.after(modern) else {
            panic!("modern is ready");
        };
        assert_eq!(state.era(), Some(Era::Modern("2026-07-28")));
        assert_eq!(probed.ttl_ms, Some(5));
        assert!(matches!(
            probed.after(ProbeOutcome::RetryAt("2026-07-28")),
            AfterProbe::ProbeAgain(_)
        ));
        assert!(matches!(
            probed.after(ProbeOutcome::RetryAt("2026-07-28")),
            AfterProbe::Handshake
        ));
        assert!(matches!(
            probed.after(ProbeOutcome::Refuses {
                supported: vec!["2099-01-01".into()]
            }),
            AfterProbe::Refused(why) if why.contains("2099-01-01")
        ));
    }

    #[test]
    fn a_refused_initialize_probes_again_once_at_the_named_version() {
        // (the server's versions, ours asked, already retried, the version asked next)
        type Case<'a> = (&'a [String], &'a str, bool, Result<&'a str, ()>);
        let modern = crate::era::MODERN_VERSIONS[0];
        let legacy = crate::era::negotiate_legacy(None);
        let theirs = vec![modern.to_owned()];
        let cases: &[Case<'_>] = &[
            // A slow modern server a timed-out probe locked out: asked again at its version.
            (&theirs, legacy, false, Ok(modern)),
            // Already asked again: it refuses us.
            (&theirs, legacy, true, Err(())),
            // It names only the version of the refused request, or none we speak.
            (&theirs, modern, false, Err(())),
            (&["1999-01-01".to_owned()], legacy, false, Err(())),
            (&[], legacy, false, Err(())),
        ];
        for (supported, asked, retried, want) in cases {
            let mut probed = Probed {
                retried: *retried,
                ..Probed::default()
            };
            let got = probed.after_initialize_refused(supported, asked);
            match (got, want) {
                (Ok(v), Ok(w)) => {
                    assert_eq!(v, *w);
                    assert!(probed.retried, "only once");
                }
                (Err(why), Err(())) => assert!(why.contains("mcp-warden speaks"), "{why}"),
                (got, _) => panic!("{supported:?} at {asked} (retried {retried}): {got:?}"),
            }
        }
    }

    #[test]
    fn an_exit_on_the_probe_restarts_once_without_it() {
        let mut probed = Probed::default();
        let probing = Some("2026-07-28");
        assert!(!probed.restart_without_probe(None), "not on the probe");
        assert!(probed.restart_without_probe(probing));
        assert!(probed.fatal);
        assert!(!probed.restart_without_probe(probing), "once only");
    }

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
