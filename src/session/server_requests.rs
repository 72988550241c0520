//! The gate in front of a server's own requests to the client (`sampling/createMessage`,
//! `elicitation/create`; SPEC "Policy", SEP-2260): a server may ask only while it has a
//! request of the client's in flight, at most [`PER_MINUTE`] times a minute, with at
//! most [`MAX_PENDING`] of its requests waiting for the client's answer. What is
//! refused is answered with -32003; refusals are audited up to
//! [`AUDITED_REFUSALS_PER_MINUTE`] a minute per server, the rest counted in the log,
//! so that a flood grows neither memory nor the audit trail.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::{Pending, Reverse, Session};
use crate::jsonrpc::Id;

/// Server requests one server may send the client a minute: a person answers them.
pub(super) const PER_MINUTE: usize = 30;
/// A server's requests waiting for the client's answer at once.
pub(super) const MAX_PENDING: usize = 8;
/// Refusals of one server recorded in the audit a minute.
pub(super) const AUDITED_REFUSALS_PER_MINUTE: usize = 10;

pub(super) const MINUTE: Duration = Duration::from_secs(60);

/// Why a server request is refused: the rule and the reason the server reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    pub rule: &'static str,
    pub reason: String,
    /// Whether this refusal is recorded (within the audit budget).
    pub audited: bool,
}

/// One server's recent requests.
#[derive(Debug, Default)]
struct Window {
    admitted: VecDeque<Instant>,
}

pub(super) fn prune(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE)
    {
        times.pop_front();
    }
}

/// Every server's window, by slot.
#[derive(Debug, Default)]
pub(super) struct Gate {
    windows: HashMap<usize, Window>,
    /// Each server's refusals recorded in the audit.
    audited: super::audit::Budget,
}

impl Gate {
    /// Decides on one request of the server in `slot`, which has `in_flight` client
    /// requests and `pending` of its own waiting for the client.
    pub(super) fn admit(
        &mut self,
        slot: usize,
        in_flight: usize,
        pending: usize,
        now: Instant,
    ) -> Result<(), Refusal> {
        let window = self.windows.entry(slot).or_default();
        prune(&mut window.admitted, now);
        let refusal = if in_flight == 0 {
            Some((
                "limit:server_request_outside_a_call",
                "a server may ask the client only while a request of the client's to it is in flight".to_owned(),
            ))
        } else if pending >= MAX_PENDING {
            Some((
                "limit:server_requests_pending",
                format!("{MAX_PENDING} requests of this server already wait for the client"),
            ))
        } else if window.admitted.len() >= PER_MINUTE {
            Some((
                "limit:server_requests_per_minute",
                format!("more than {PER_MINUTE} requests to the client in a minute"),
            ))
        } else {
            None
        };
        let Some((rule, reason)) = refusal else {
            window.admitted.push_back(now);
            return Ok(());
        };
        let audited = self
            .audited
            .take(slot, AUDITED_REFUSALS_PER_MINUTE, now)
            .is_some();
        Err(Refusal {
            rule,
            reason,
            audited,
        })
    }

    /// The server in `slot` stopped: its window goes with it.
    pub(super) fn forget(&mut self, slot: usize) {
        self.windows.remove(&slot);
        self.audited.forget(slot);
    }
}

impl Session {
    /// The gate's decision on a request from the server in `index`.
    pub(super) fn admit_server_request(&mut self, index: usize) -> Result<(), Refusal> {
        let in_flight = self.slots[index]
            .pending
            .values()
            .filter(|p| {
                matches!(
                    p,
                    Pending::Client(_) | Pending::Held(_) | Pending::TaskResult(_)
                )
            })
            .count();
        let pending = self
            .reverse
            .values()
            .filter(|r| matches!(r, Reverse::Forwarded { slot, .. } if *slot == index))
            .count();
        let now = Instant::now();
        self.rate
            .server_requests
            .admit(index, in_flight, pending, now)
    }

    /// Answers a refused server request: through the one place that audits, or, past
    /// the audit budget, directly with the same -32003 answer and a log line.
    pub(super) fn refuse_server_request(
        &mut self,
        index: usize,
        id: &Id,
        method: &str,
        refusal: Refusal,
    ) {
        if refusal.audited {
            return self.refuse_upstream_request(index, id, method, refusal.rule, refusal.reason);
        }
        tracing::warn!(server = %self.slots[index].config.name, method, rule = refusal.rule, "server request refused (not audited: over the budget)");
        let block = crate::filter::Block {
            rule: refusal.rule.to_owned(),
            reason: refusal.reason.clone(),
        };
        let data = Some(super::wire::blocked_data("deny", &block));
        let answer = Err((crate::jsonrpc::ErrorCode::Blocked, refusal.reason, data));
        self.answer_upstream(index, id, answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_call_refused_then_bounded_per_minute_and_pending() {
        let now = Instant::now();
        let mut gate = Gate::default();
        let refused = gate.admit(0, 0, 0, now).expect_err("outside a call");
        assert_eq!(refused.rule, "limit:server_request_outside_a_call");
        assert!(gate.admit(0, 1, MAX_PENDING, now).is_err());
        for _ in 0..PER_MINUTE {
            assert_eq!(gate.admit(0, 1, 0, now), Ok(()));
        }
        let over = gate.admit(0, 1, 0, now).expect_err("over the rate");
        assert_eq!(over.rule, "limit:server_requests_per_minute");
        // Another server has its own window; a minute later this one may ask again.
        assert_eq!(gate.admit(1, 1, 0, now), Ok(()));
        assert_eq!(gate.admit(0, 1, 0, now + MINUTE), Ok(()));
    }

    #[test]
    fn refusals_are_audited_within_a_budget() {
        let now = Instant::now();
        let mut gate = Gate::default();
        let audited = (0..100)
            .filter(|_| gate.admit(0, 0, 0, now).is_err_and(|r| r.audited))
            .count();
        assert_eq!(audited, AUDITED_REFUSALS_PER_MINUTE);
    }
}
