//! What the session tells the audit trail (SPEC "Audit"): one event per decision on a
//! call, a resource read, a prompt get, a server-to-client request, a hold, and one
//! summary per list answer. Events go to the writer task through
//! [`crate::audit::AuditHandle`], which never blocks; the arguments travel as their
//! text and are hashed (HMAC) by the writer, off the message path.

use std::time::Instant;

use super::Session;
use crate::audit::{Decision, Direction, Event};
use crate::filter::Block;

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
    /// An event about this subject.
    fn event(&self, direction: Direction, decision: Decision) -> Event {
        let mut event = Event::new(direction, decision).method(self.method);
        if let Some(server) = self.server {
            event = event.server(server);
        }
        if let Some(tool) = self.tool {
            event = event.tool(tool);
        }
        if let Some(args) = self.arguments {
            event = event.arguments(String::from_utf8_lossy(args));
        }
        event
    }
}

impl Session {
    /// Queues one event; a writer that stopped is said once, and the session goes on.
    pub(super) fn audit(&mut self, event: Event) {
        let Some(audit) = &self.audit else { return };
        if audit.record(event).is_err() && !self.audit_failed {
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
        if self.audit.is_none() || !crate::stages::audit::is_audited(subject.method) {
            return;
        }
        let mut event = subject.event(direction, decision);
        if let Some(block) = block {
            event = event
                .rule(block.rule.as_str())
                .detail(block.reason.as_str());
        }
        self.audit(event);
    }

    /// The answer to a forwarded request, as it goes to the client.
    pub(super) fn audit_answer(
        &mut self,
        subject: &Subject<'_>,
        decision: (Decision, Option<String>),
        started: Instant,
        bytes: usize,
    ) {
        if self.audit.is_none() || !crate::stages::audit::is_audited(subject.method) {
            return;
        }
        let (decision, rule) = decision;
        let mut event = subject
            .event(Direction::ToClient, decision)
            .ms(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))
            .bytes(bytes as u64);
        if let Some(rule) = rule {
            event = event.rule(rule);
        }
        self.audit(event);
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
