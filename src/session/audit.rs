//! What the session tells the audit trail (SPEC "Audit"): one event per decision on a
//! call, a resource read, a prompt get, a server-to-client request, a hold, and one
//! summary per list answer. Events go to the writer task through
//! [`crate::audit::AuditHandle`], which never blocks; the arguments travel as their
//! text and are hashed (HMAC) by the writer, off the message path.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::Session;
use super::server_requests::prune;
use crate::audit::{AuditHandle, Decision, Direction, Event, PackedEvent};
use crate::filter::Block;

/// Decisions on one server's notifications recorded in the audit a minute: a flood
/// of flagged notifications must not grow the audit trail without bound.
pub(super) const NOTIFICATION_RECORDS_PER_MINUTE: usize = 10;

/// Each server's recent records of one sort, and how many were left out since the
/// last one that was written.
#[derive(Debug, Default)]
pub(super) struct Budget {
    windows: HashMap<usize, (VecDeque<Instant>, u64)>,
}

impl Budget {
    /// Whether one more record for the server in `slot` fits in `per_minute`: with
    /// how many were left out before it, or `None` (and counted) when it does not.
    pub(super) fn take(&mut self, slot: usize, per_minute: usize, now: Instant) -> Option<u64> {
        let (times, left_out) = self.windows.entry(slot).or_default();
        prune(times, now);
        if times.len() >= per_minute {
            *left_out += 1;
            return None;
        }
        times.push_back(now);
        Some(std::mem::take(left_out))
    }

    /// The server in `slot` stopped: its window goes with it.
    pub(super) fn forget(&mut self, slot: usize) {
        self.windows.remove(&slot);
    }
}

/// What a decision is about.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Subject<'a> {
    pub server: Option<&'a str>,
    /// The exposed tool or prompt name, or the resource URI.
    pub tool: Option<&'a str>,
    pub method: &'a str,
    /// The arguments' JSON text, exactly as received.
    pub arguments: Option<&'a [u8]>,
}

impl Subject<'_> {
    /// An event about this subject, with room for `extra` more bytes of text (a rule,
    /// a detail) besides its own: one buffer holds them all.
    fn event(
        &self,
        audit: &AuditHandle,
        direction: Direction,
        decision: Decision,
        extra: usize,
    ) -> PackedEvent {
        let uri = self
            .tool
            .filter(|_| crate::stages::audit::names_a_uri(self.method));
        // No raw URI in a record (SPEC "Audit"): its scheme and host, and the whole
        // URI keyed, so two reads of one resource still match.
        let uri = uri.map(|uri| {
            (
                crate::stages::audit::redacted_uri(uri),
                serde_json::Value::String(uri.to_owned()).to_string(),
            )
        });
        let len = |text: Option<&str>| text.map_or(0, str::len);
        let capacity = self.method.len()
            + len(self.server)
            + uri.as_ref().map_or_else(
                || len(self.tool) + self.arguments.map_or(0, <[u8]>::len),
                |(tool, arguments)| tool.len() + arguments.len(),
            )
            + extra;
        let mut event = audit
            .packed(direction, decision, capacity)
            .method(self.method);
        if let Some(server) = self.server {
            event = event.server(server);
        }
        if let Some((tool, arguments)) = &uri {
            event = event.tool(tool).arguments(arguments.as_bytes());
        } else {
            if let Some(tool) = self.tool {
                event = event.tool(tool);
            }
            // The arguments are a slice of a parsed line: the writer decodes them.
            if let Some(args) = self.arguments {
                event = event.arguments(args);
            }
        }
        event
    }
}

impl Session {
    /// Queues one event; a writer that stopped is said once, and the session goes on.
    pub(super) fn audit(&mut self, event: Event) {
        let Some(audit) = &self.audit else { return };
        let recorded = audit.record(event);
        self.audit_recorded(recorded);
    }

    /// [`Session::audit`] of a [`PackedEvent`].
    fn audit_packed(&mut self, event: PackedEvent) {
        let Some(audit) = &self.audit else { return };
        let recorded = audit.record_packed(event);
        self.audit_recorded(recorded);
    }

    fn audit_recorded(&mut self, recorded: Result<(), crate::audit::AuditClosed>) {
        if recorded.is_err() && !self.audit_failed {
            self.audit_failed = true;
            let text = "the audit writer has stopped: decisions are no longer recorded";
            tracing::error!("{text}");
            crate::output::diag(&format!("mcp-warden: {text}"));
        }
    }

    /// A decision on `subject`.
    pub(super) fn audit_decision(
        &mut self,
        direction: Direction,
        decision: Decision,
        subject: &Subject<'_>,
        block: Option<&Block>,
    ) {
        let Some(audit) = self.audit.as_ref() else {
            return;
        };
        if !crate::stages::audit::is_audited(subject.method) {
            return;
        }
        let extra = block.map_or(0, |b| b.rule.len() + b.reason.len());
        let mut event = subject.event(audit, direction, decision, extra);
        if let Some(block) = block {
            event = event.rule(&block.rule).detail(&block.reason);
        }
        self.audit_packed(event);
    }

    /// The answer to a forwarded request, as it goes to the client.
    pub(super) fn audit_answer(
        &mut self,
        subject: &Subject<'_>,
        decision: (Decision, Option<String>),
        started: Instant,
        bytes: usize,
    ) {
        let Some(audit) = self.audit.as_ref() else {
            return;
        };
        if !crate::stages::audit::is_audited(subject.method) {
            return;
        }
        let (decision, rule) = decision;
        let extra = rule.as_ref().map_or(0, String::len);
        let mut event = subject
            .event(audit, Direction::ToClient, decision, extra)
            .ms(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))
            .bytes(bytes as u64);
        if let Some(rule) = rule {
            event = event.rule(&rule);
        }
        self.audit_packed(event);
    }

    /// The filter's decision on a notification of the server in `slot` to the client
    /// (flag, redact, or deny for one dropped), within [`NOTIFICATION_RECORDS_PER_MINUTE`];
    /// the rest are counted, and the count goes into the next record written.
    pub(super) fn audit_notification(
        &mut self,
        slot: usize,
        method: &str,
        (decision, rule): (Decision, Option<String>),
    ) {
        if self.audit.is_none() {
            return;
        }
        let server = self.slots[slot].config.name.clone();
        let per_minute = NOTIFICATION_RECORDS_PER_MINUTE;
        let Some(left_out) = self
            .rate
            .notification_records
            .take(slot, per_minute, Instant::now())
        else {
            tracing::debug!(server = %server, method, "notification decision not recorded (over the audit budget)");
            return;
        };
        let subject = Subject {
            server: Some(server.as_str()),
            method,
            ..Subject::default()
        };
        let detail = (left_out > 0).then(|| {
            format!(
                "{left_out} earlier decisions on this server's notifications not recorded (over {per_minute} a minute)"
            )
        });
        let extra = rule.as_ref().map_or(0, String::len) + detail.as_ref().map_or(0, String::len);
        let Some(audit) = self.audit.as_ref() else {
            return;
        };
        let mut event = subject.event(audit, Direction::ToClient, decision, extra);
        if let Some(rule) = rule {
            event = event.rule(&rule);
        }
        if let Some(detail) = detail {
            event = event.detail(&detail);
        }
        self.audit_packed(event);
    }

    /// One summary per list answer: what was listed, and how much is held.
    pub(super) fn audit_listing(&mut self, kind: super::catalog::ListKind) {
        if self.audit.is_none() {
            return;
        }
        let i = kind.index();
        let names: Vec<String> = self.catalogs[i].routes().map(|(n, _)| n.clone()).collect();
        let held = self.pins.held_count(kind) as u64;
        self.audit(Event::list(kind.method(), names, held));
    }
}
