//! The one place a stopped message becomes an answer and an audit record. Every
//! stage (hold, decide, filter, limits) says *what* stopped a message with a
//! [`Stop`]; this file says *how* that reaches the client (or the server that asked):
//! a blocked tool result for a tool call, a -32003 error with the decision in `data`
//! for everything else (SPEC "Decisions on the wire").

use super::audit::Subject;
use super::{Origin, Session, wire};
use crate::audit::Direction as AuditDirection;
use crate::jsonrpc::{ErrorCode, Id, Message, error_response};
use crate::stages::{Direction, Stop, View};

/// Who gets the answer to a stopped message.
#[derive(Debug, Clone, Copy)]
pub(super) enum Asker<'a> {
    /// The client, for its request (or for the answer to its request).
    Client(&'a Origin),
    /// The server `slot`, for its own request `id` to the client.
    Upstream { slot: usize, id: &'a Id },
    /// Nobody: a message a server pushed unasked (a task's status); recorded, dropped.
    Nobody,
}

impl Session {
    /// Records `stop` on `subject` and answers `to`.
    pub(super) fn answer_stopped(
        &mut self,
        view: &View<'_>,
        to: Asker<'_>,
        subject: &Subject<'_>,
        stop: &Stop,
    ) {
        let decision = stop.decision.as_str();
        tracing::info!(
            kind = ?view.kind,
            server = subject.server,
            item = subject.tool,
            rule = %stop.block.rule,
            decision,
            "stopped"
        );
        let direction = match view.direction {
            Direction::ToUpstream => AuditDirection::ToServer,
            Direction::ToClient => AuditDirection::ToClient,
        };
        self.audit_decision(direction, stop.decision, subject, Some(&stop.block));
        let block = &stop.block;
        match to {
            Asker::Client(origin) if Stop::answers_with_result(view.kind, view.request_method) => {
                self.reply_result(origin, &wire::blocked_tool_result(decision, block));
            }
            Asker::Client(origin) => {
                let data = Some(wire::blocked_data(decision, block));
                let text = format!(
                    "Blocked by mcp-warden: rule `{}`: {}",
                    block.rule, block.reason
                );
                self.reply(
                    origin,
                    error_response(Some(&origin.id), ErrorCode::Blocked, &text, data),
                );
            }
            Asker::Upstream { slot, id } => {
                let data = Some(wire::blocked_data(decision, block));
                let answer = Err((ErrorCode::Blocked, block.reason.clone(), data));
                self.answer_upstream(slot, id, answer);
            }
            Asker::Nobody => {}
        }
    }

    /// A client request `msg` stopped before it was sent on: recorded with its
    /// arguments, answered to `origin`.
    pub(super) fn stop_request(
        &mut self,
        view: &View<'_>,
        msg: &Message,
        origin: &Origin,
        stop: &Stop,
    ) {
        let arguments = crate::stages::audit::arguments_of(msg);
        let subject = Subject {
            server: view.server.map(crate::config::ServerName::as_str),
            tool: view.name,
            method: msg.method().unwrap_or_default(),
            arguments: arguments.as_deref(),
        };
        self.answer_stopped(view, Asker::Client(origin), &subject, stop);
    }
}
