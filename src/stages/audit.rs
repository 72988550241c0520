//! The audit stage's pure part (SPEC "Audit"): which messages' decisions are
//! recorded, and what a verdict records. The session queues the events (through
//! [`crate::audit::AuditHandle`], which never blocks).

use bytes::Bytes;

use super::{Direction, MessageKind, Verdict, View};
use crate::audit::Decision;
use crate::filter::Block;
use crate::jsonrpc::Message;

/// Whether `method`'s subject is a resource URI (in the record's `tool` field).
#[must_use]
pub fn names_a_uri(method: &str) -> bool {
    matches!(
        method,
        "resources/read" | "resources/subscribe" | "resources/unsubscribe"
    )
}

/// A resource URI as an audit record may show it (SPEC "Audit": no raw URI or path
/// reaches any field): its scheme and host, with `/…` for whatever followed
/// (path, query, fragment: where tokens and private paths live). The whole URI goes
/// to the record keyed (`args_hmac`), so two reads of one resource still match.
#[must_use]
pub fn redacted_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return "…".to_owned();
    };
    let Some(after) = rest.strip_prefix("//") else {
        return if rest.is_empty() {
            format!("{scheme}:")
        } else {
            format!("{scheme}:…")
        };
    };
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..end];
    // Credentials in the authority (`user:password@host`) are never shown.
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let more = if end < after.len() { "/…" } else { "" };
    format!("{scheme}://{host}{more}")
}

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
    let span = msg.param_span(&["arguments"])?;
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

/// The in-filter's cell for the answer to a server request (`shared/PIPELINE.md`):
/// what the user typed into an elicitation or approved for sampling is theirs to
/// send, so it goes on unchanged; a secret in it is flagged, that is recorded, never
/// silently dropped. `None` for every other kind, and for an answer without one.
#[must_use]
pub fn secret_in_answer(view: &View<'_>, msg: &Message) -> Option<Block> {
    if view.kind != MessageKind::Answer || view.direction != Direction::ToUpstream {
        return None;
    }
    let fired = crate::filter::input::secrets_in(msg.result()?);
    if fired.is_empty() {
        return None;
    }
    Some(Block {
        rule: "output:secrets".into(),
        reason: format!(
            "the user's answer carries a secret ({}); passed on as typed: the user's choice",
            fired.join(", ")
        ),
    })
}

/// What the audit records of the filter's `verdict` on a notification to the client:
/// its flag or redaction, or its block (the notification is dropped); `None` when it
/// passed untouched or is not a notification to the client.
#[must_use]
pub fn of_notification(view: &View<'_>, verdict: &Verdict) -> Option<(Decision, Option<String>)> {
    if view.kind != MessageKind::Notification || view.direction != Direction::ToClient {
        return None;
    }
    match verdict {
        Verdict::Stop(stop) => Some((stop.decision, Some(stop.block.rule.clone()))),
        Verdict::Rewrite(line) => {
            Some(decision_of_rewrite(line)).filter(|(d, _)| *d != Decision::Allow)
        }
        Verdict::Pass | Verdict::Mark(_) | Verdict::Ask(_) => None,
    }
}
