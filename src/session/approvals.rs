//! The user's "allow once" answers to a policy `ask` (SPEC "Policy": an approval is
//! bound to the one request it was asked for). An approval is keyed by a digest of
//! the request's id, method and params, so a later, different request that reuses
//! the id is decided afresh; it lets through only the rule it was asked about (a
//! deny that appeared meanwhile, such as a flow, still stops the request); it is used
//! once, and it expires.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::jsonrpc::{Id, Message};

/// How long an approval waits for its request to be decided again: the request is
/// sent on at once, unless it waits for a starting server (`STARTUP_WAIT`, 10 s).
const APPROVAL_TTL: Duration = Duration::from_secs(60);
/// Most approvals kept at once; each is one answered elicitation, so more than this
/// means requests that never came back to be decided.
const MAX_APPROVALS: usize = 64;

/// One approval: the rule it answers, the elicitation that asked (a nonce, for the
/// log), and when it lapses.
#[derive(Debug, Clone)]
struct Approval {
    rule: String,
    nonce: u64,
    expires: Instant,
}

/// The approvals not used yet.
#[derive(Debug, Default)]
pub(super) struct Approvals {
    by_request: HashMap<[u8; 32], Approval>,
}

/// The digest an approval is bound to: the client's id, the method and the params,
/// byte for byte as the client sent them.
fn digest(id: &Id, msg: &Message) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [
        id.to_string().as_str(),
        msg.method().unwrap_or_default(),
        msg.params().unwrap_or_default(),
    ] {
        hash.update(part.len().to_le_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().into()
}

impl Approvals {
    /// The user allowed request `msg` (id `id`) once past `rule`, answering the
    /// elicitation `nonce`.
    pub(super) fn grant(&mut self, id: &Id, msg: &Message, rule: &str, nonce: u64, now: Instant) {
        self.by_request.retain(|_, a| a.expires > now);
        if self.by_request.len() >= MAX_APPROVALS
            && let Some(oldest) = self
                .by_request
                .iter()
                .min_by_key(|(_, a)| a.expires)
                .map(|(k, _)| *k)
        {
            self.by_request.remove(&oldest);
        }
        self.by_request.insert(
            digest(id, msg),
            Approval {
                rule: rule.to_owned(),
                nonce,
                expires: now + APPROVAL_TTL,
            },
        );
    }

    /// Takes the approval of exactly this request, if one is live: the rule it lets
    /// through, and the nonce of the elicitation that granted it.
    pub(super) fn take(&mut self, id: &Id, msg: &Message, now: Instant) -> Option<(String, u64)> {
        if self.by_request.is_empty() {
            return None;
        }
        let approval = self.by_request.remove(&digest(id, msg))?;
        (approval.expires > now).then_some((approval.rule, approval.nonce))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::testing::message;

    fn call(id: u64, number: u64) -> Message {
        message(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"b__issue","arguments":{{"number":{number}}}}}}}"#
        ))
    }

    #[test]
    fn an_approval_is_for_one_request_once_and_expires() {
        let now = Instant::now();
        let mut a = Approvals::default();
        let id = Id::number(7);
        a.grant(&id, &call(7, 1), "ask-issue", 3, now);
        // Same id, other params: nothing.
        assert_eq!(a.take(&id, &call(7, 13), now), None);
        // Same params, other id: nothing.
        assert_eq!(a.take(&Id::number(8), &call(8, 1), now), None);
        assert_eq!(a.take(&id, &call(7, 1), now), Some(("ask-issue".into(), 3)));
        // Once only.
        assert_eq!(a.take(&id, &call(7, 1), now), None);
        a.grant(&id, &call(7, 1), "ask-issue", 4, now);
        assert_eq!(a.take(&id, &call(7, 1), now + APPROVAL_TTL), None);
    }

    #[test]
    fn approvals_are_bounded() {
        let now = Instant::now();
        let mut a = Approvals::default();
        for i in 0..(MAX_APPROVALS as u64 * 2) {
            a.grant(&Id::number(i), &call(i, 1), "r", i, now);
        }
        assert!(a.by_request.len() <= MAX_APPROVALS);
    }
}
