//! The audit stage's pure part (SPEC "Audit"): which messages' decisions are
//! recorded, and what a verdict records. The session queues the events (through
//! [`crate::audit::AuditHandle`], which never blocks).

use bytes::Bytes;

use crate::audit::Decision;
use crate::jsonrpc::Message;

/// Whether decisions on requests of `method` (and on their answers) are recorded:
/// every request that carries model data (the ones the policy decides), and the
/// server requests that reach the user.
#[must_use]
pub fn is_audited(method: &str) -> bool {
    matches!(
        method,
        "tools/call"
            | "prompts/get"
            | "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "completion/complete"
            | "sampling/createMessage"
            | "elicitation/create"
    )
}

/// The `arguments` of a request as the bytes they arrived as (a cheap slice).
#[must_use]
pub fn arguments_of(msg: &Message) -> Option<Bytes> {
    let (_, span) = msg.param(&["arguments"])?;
    Some(msg.raw().slice(span))
}

/// The decision a filter's rewrite of an answer carries in its `_meta`.
#[must_use]
pub fn decision_of_rewrite(line: &[u8]) -> (Decision, Option<String>) {
    let text = String::from_utf8_lossy(line);
    let decision = if text.contains(r#""mcp-warden/decision":"redact""#) {
        Decision::Redact
    } else if text.contains(r#""mcp-warden/decision":"flag""#) {
        Decision::Flag
    } else {
        return (Decision::Allow, None);
    };
    let rule = text
        .split(r#""mcp-warden/rule":""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned);
    (decision, rule)
}
