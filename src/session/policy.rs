//! The policy in a running session (SPEC "Policy"): each `tools/call`, `prompts/get`
//! and `resources/read` is decided by [`crate::policy::PolicySet::evaluate`] before it
//! is sent on, against the session's own flow history; tools an unconditional deny
//! covers are not listed. `deny` answers with the blocked result (a -32003 error for
//! reads and gets); `ask` asks the user through elicitation (allow once / deny) where
//! the client supports it, else denies; `monitor` lets the call through and marks its
//! answer.

use std::sync::Arc;

use serde_json::Value;

use super::catalog::ListKind;
use super::{Origin, Session};
use crate::audit::{Decision as AuditDecision, Direction as AuditDirection};
use crate::filter::Block;
use crate::jsonrpc::Message;
use crate::policy::{Blocked, Call, Decision, Kind, PolicySet};

/// What the session does with a request after the policy.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Send it on; `Some(rule)`: in monitor mode, a rule that would have stopped it.
    Go(Option<String>),
    /// Answered already (blocked, or waiting for the user).
    Answered,
}

/// A request waiting for the user's "allow once".
#[derive(Debug)]
pub(super) struct PolicyAsk {
    request: Message,
    origin: Origin,
    kind: Kind,
    name: String,
    blocked: Blocked,
}

impl PolicyAsk {
    pub(super) fn origin(&self) -> &Origin {
        &self.origin
    }
}

impl Session {
    /// The merged policy in force.
    pub(super) fn policy(&self) -> Arc<PolicySet> {
        Arc::clone(&self.policy)
    }

    /// Whether the policy leaves an item of a catalog out of the list.
    pub(super) fn policy_hides(&self, kind: ListKind, exposed: &str) -> bool {
        match kind {
            ListKind::Tools => self.policy.hidden(exposed),
            ListKind::Prompts => self.policy.hidden_item(Kind::Prompt, exposed),
            ListKind::Templates => false,
        }
    }

    /// Decides a request for `name` (an exposed tool or prompt, or a URI) to `slot`.
    pub(super) fn decide(
        &mut self,
        msg: &Message,
        origin: &Origin,
        kind: Kind,
        name: &str,
        slot: usize,
    ) -> Outcome {
        if self.approved_once.remove(&origin.id) {
            return Outcome::Go(None);
        }
        let policy = self.policy();
        let arguments: Option<Value> = if policy.rule_count() == 0 {
            None
        } else {
            let key = if kind == Kind::Resource {
                None
            } else {
                Some("arguments")
            };
            let raw = match key {
                Some(key) => msg.param(&[key]).map(|(raw, _)| raw),
                None => msg.params(),
            };
            raw.and_then(|r| serde_json::from_str(r).ok())
        };
        let annotations = (kind == Kind::Tool && policy.rule_count() > 0)
            .then(|| self.pinned_annotations(slot, name))
            .flatten();
        let cwd = self.slots[slot]
            .config
            .cwd
            .clone()
            .or_else(|| self.workspace_root.clone());
        let call = match kind {
            Kind::Tool => Call::tool(name, arguments.as_ref()),
            Kind::Prompt => Call::prompt(name, arguments.as_ref()),
            Kind::Resource => Call::resource(name, arguments.as_ref()),
        }
        .with_annotations(annotations.as_ref())
        .with_cwd(cwd.as_deref());
        let decision = policy.evaluate(&call, &self.flows);
        if kind == Kind::Tool
            && decision.passes()
            && let Err((rule, reason)) =
                self.rate
                    .admit(&policy.settings.limits, name, std::time::Instant::now())
        {
            let blocked = Blocked {
                rule: rule.to_owned(),
                layer: None,
                action: crate::policy::Action::Deny,
                reason,
                calls: Vec::new(),
            };
            self.policy_block(msg, origin, kind, name, slot, &blocked, None);
            return Outcome::Answered;
        }
        match decision {
            Decision::Allow => Outcome::Go(None),
            Decision::Monitor(b) => {
                tracing::info!(item = name, rule = %b.rule, "monitor: would have been stopped");
                Outcome::Go(Some(b.rule))
            }
            Decision::Ask(b) => {
                if self.ask_policy(msg, origin, kind, name, &b) {
                    return Outcome::Answered;
                }
                self.policy_block(msg, origin, kind, name, slot, &b, None);
                Outcome::Answered
            }
            Decision::Deny(b) => {
                self.policy_block(msg, origin, kind, name, slot, &b, None);
                Outcome::Answered
            }
        }
    }

    /// A call to a tool the policy hides (an unconditional deny covers it): answered
    /// with the deciding rule, not "unknown tool". `false` when it is not hidden.
    pub(super) fn deny_hidden(
        &mut self,
        msg: &Message,
        origin: &Origin,
        kind: ListKind,
        exposed: &str,
    ) -> bool {
        if !self.policy_hides(kind, exposed) {
            return false;
        }
        let policy_kind = if kind == ListKind::Tools {
            Kind::Tool
        } else {
            Kind::Prompt
        };
        let call = match policy_kind {
            Kind::Tool => Call::tool(exposed, None),
            _ => Call::prompt(exposed, None),
        };
        let policy = self.policy();
        match policy.evaluate(&call, &self.flows) {
            Decision::Deny(b) | Decision::Ask(b) | Decision::Monitor(b) => {
                self.policy_block(msg, origin, policy_kind, exposed, usize::MAX, &b, None);
                true
            }
            Decision::Allow => false,
        }
    }

    /// Answers a request the policy stops, and records it.
    #[allow(clippy::too_many_arguments)]
    fn policy_block(
        &mut self,
        msg: &Message,
        origin: &Origin,
        kind: Kind,
        name: &str,
        slot: usize,
        blocked: &Blocked,
        reason: Option<&str>,
    ) {
        let mut text = reason.unwrap_or(&blocked.reason).to_owned();
        if !blocked.calls.is_empty() {
            text = format!("{text} (after {})", blocked.calls.join(", then "));
        }
        let block = Block {
            rule: blocked.rule.clone(),
            reason: text,
        };
        tracing::info!(item = name, rule = %block.rule, "denied by the policy");
        let arguments = super::audit::arguments_of(msg);
        let server = self
            .slots
            .get(slot)
            .map(|s| s.config.name.as_str().to_owned());
        let subject = super::audit::Subject {
            server: server.as_deref(),
            tool: Some(name),
            method: msg.method().unwrap_or_default(),
            arguments: arguments.as_deref(),
        };
        self.audit_decision(
            AuditDirection::ToServer,
            AuditDecision::Deny,
            &subject,
            Some(&block),
        );
        if kind == Kind::Tool {
            self.reply_blocked_tool(origin, "deny", &block);
        } else {
            self.reply_blocked(origin, "deny", &block);
        }
    }

    /// `ask`: "allow once / deny" through the client's elicitation; `false` when the
    /// client cannot be asked.
    fn ask_policy(
        &mut self,
        msg: &Message,
        origin: &Origin,
        kind: Kind,
        name: &str,
        blocked: &Blocked,
    ) -> bool {
        if !self.client.initialized || self.client.capabilities.get("elicitation").is_none() {
            return false;
        }
        let arguments = msg
            .param(&["arguments"])
            .map_or_else(String::new, |(raw, _)| format!("\n\nArguments: {raw}"));
        let message = format!(
            "mcp-warden asks before this {} runs: `{name}`.\nRule `{}`: {}{arguments}\n\nAllow it once?",
            kind.noun(),
            blocked.rule,
            blocked.reason
        );
        let params = serde_json::json!({
            "message": message,
            "requestedSchema": {
                "type": "object",
                "properties": {
                    "allow": {"type": "boolean", "title": "Allow once", "description": "Let this one call through"}
                },
                "required": ["allow"]
            }
        });
        self.next_reverse += 1;
        self.reverse.insert(
            self.next_reverse,
            super::Reverse::PolicyAsk(Box::new(PolicyAsk {
                request: msg.clone(),
                origin: origin.clone(),
                kind,
                name: name.to_owned(),
                blocked: blocked.clone(),
            })),
        );
        self.out.push_back(super::wire::request(
            self.next_reverse,
            "elicitation/create",
            Some(&params),
        ));
        true
    }

    /// The user's answer to an `ask`.
    pub(super) fn on_policy_answer(&mut self, answer: &Message, ask: PolicyAsk) {
        let allowed = answer
            .result()
            .and_then(|r| serde_json::from_str::<Value>(r).ok())
            .is_some_and(|a| a["action"] == "accept" && a["content"]["allow"] == Value::Bool(true));
        if allowed {
            tracing::info!(item = %ask.name, rule = %ask.blocked.rule, "the user allowed a call once");
            self.approved_once.insert(ask.origin.id.clone());
            let method = ask.request.method().unwrap_or_default().to_owned();
            return self.on_client_request(ask.request, ask.origin, &method);
        }
        let slot = usize::MAX;
        self.policy_block(
            &ask.request,
            &ask.origin,
            ask.kind,
            &ask.name,
            slot,
            &ask.blocked,
            Some("declined by the user"),
        );
    }

    /// A tool's `annotations` from its listed (pinned) definition; `None` when pinning
    /// is off (nothing is pinned) or the tool has none.
    fn pinned_annotations(&self, slot: usize, exposed: &str) -> Option<Value> {
        if self.pins.mode() == crate::config::PinningMode::Off {
            return None;
        }
        let super::ListState::Listed(items) = &self.slots.get(slot)?.lists[ListKind::Tools.index()]
        else {
            return None;
        };
        let item = items.iter().find(|i| i.exposed == exposed)?;
        let value: Value = serde_json::from_str(&item.source).ok()?;
        value.get("annotations").cloned()
    }

    /// A completed tool call counts toward the session's flow history.
    pub(super) fn record_flow(&mut self, method: &str, tool: Option<&str>) {
        if method == "tools/call"
            && let Some(tool) = tool
        {
            let policy = self.policy();
            self.flows.record(&policy.labels, tool);
        }
    }
}

/// Marks an answer that passed in monitor mode: `_meta` says what would have happened.
pub(super) fn mark_monitor(line: &bytes::Bytes, rule: &str) -> Option<bytes::Bytes> {
    let msg = super::reparse(line)?;
    let span = msg.result_span()?;
    let mut result: Value = serde_json::from_str(msg.result()?).ok()?;
    let object = result.as_object_mut()?;
    let meta = object
        .entry("_meta")
        .or_insert_with(|| Value::Object(serde_json::Map::new()))
        .as_object_mut()?;
    meta.insert("mcp-warden/decision".into(), Value::from("monitor"));
    meta.insert("mcp-warden/rule".into(), Value::from(rule));
    let text = result.to_string();
    Some(msg.rewrite(None, &[(span, text.as_str())]))
}
