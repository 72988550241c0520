//! The policy in a running session (SPEC "Policy"): each `tools/call`, `prompts/get`
//! and `resources/read` is decided by [`crate::policy::PolicySet::evaluate`] before it
//! is sent on, against the session's own flow history; tools an unconditional deny
//! covers are not listed. `deny` answers with the blocked result (a -32003 error for
//! reads and gets); `ask` asks the user through elicitation (allow once / deny) where
//! the client supports it, else denies (an "allow once" is bound to the one request:
//! see `approvals.rs`); `monitor` lets the call through and marks its answer.

use std::sync::Arc;

use serde_json::Value;

use super::catalog::ListKind;
use super::{Origin, Session};
use crate::jsonrpc::Message;
use crate::policy::{Blocked, Kind, PolicySet};
use crate::stages::{Direction, Verdict, View, decide};

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
    name: String,
    blocked: Blocked,
    /// The id of the elicitation that asks: the approval's nonce.
    nonce: u64,
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
            ListKind::Tools => decide::is_hidden(&self.policy, Kind::Tool, exposed),
            ListKind::Prompts => decide::is_hidden(&self.policy, Kind::Prompt, exposed),
            ListKind::Templates => false,
        }
    }

    /// Runs the decide stage over a client request `msg` (seen as `view`) for `slot`,
    /// and acts on its verdict: on, asked, or stopped.
    pub(super) fn decide(
        &mut self,
        msg: &Message,
        origin: &Origin,
        view: &View<'_>,
        slot: usize,
    ) -> Outcome {
        let now = std::time::Instant::now();
        // Bound to this request (id, method, params); it lets through only the rule
        // the user was asked about, once.
        let approved = self.approvals.take(&origin.id, msg, now);
        // A modern client's answer to an `ask` of ours comes as a retry of the call.
        let approved = match self.ask_answer(msg, origin, view) {
            super::mrtr::AskAnswer::NotAnAsk => approved,
            super::mrtr::AskAnswer::Allowed(rule) => Some((rule, 0)),
            super::mrtr::AskAnswer::Answered => return Outcome::Answered,
        };
        let (Some(kind), Some(name)) = (decide::policy_kind(view, msg), view.name) else {
            return Outcome::Go(None);
        };
        let policy = self.policy();
        let pinned = decide::needs_annotations(view, &policy)
            .then(|| self.pinned_definition(slot, name))
            .flatten();
        // Borrowed, not cloned: this runs on every call.
        let cwd = self.slots[slot]
            .config
            .cwd
            .as_deref()
            .or(self.workspace_root.as_deref());
        let inputs = decide::Inputs {
            policy: &policy,
            flows: &self.flows,
            pinned: pinned.as_ref(),
            cwd,
        };
        let verdict = decide::decide(view, msg, &inputs, &mut self.rate.calls, now);
        match verdict {
            // Decide never rewrites: a rewrite is a filter's.
            Verdict::Pass | Verdict::Rewrite(_) => Outcome::Go(None),
            Verdict::Ask(b) if approved.as_ref().is_some_and(|(rule, _)| *rule == b.rule) => {
                let nonce = approved.map(|(_, n)| n);
                tracing::info!(item = name, rule = %b.rule, ?nonce, "allowed once by the user");
                Outcome::Go(None)
            }
            Verdict::Mark(rule) => {
                tracing::info!(item = name, rule = %rule, "monitor: would have been stopped");
                Outcome::Go(Some(rule))
            }
            Verdict::Ask(b) => {
                if !self.ask_policy(msg, origin, kind, name, &b) {
                    self.stop_request(view, msg, origin, &decide::stop(&b, None));
                }
                Outcome::Answered
            }
            Verdict::Stop(stop) => {
                self.stop_request(view, msg, origin, &stop);
                Outcome::Answered
            }
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
        let modern = super::mrtr::client_is_modern(msg);
        let can_ask =
            self.client.initialized && self.client.capabilities.get("elicitation").is_some();
        if !modern && !can_ask {
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
        if modern {
            return self.ask_modern(msg, origin, &params, blocked);
        }
        let ours = self.reverse.reserve();
        self.reverse.insert(
            ours,
            super::Reverse::PolicyAsk(Box::new(PolicyAsk {
                request: msg.clone(),
                origin: origin.clone(),
                name: name.to_owned(),
                blocked: blocked.clone(),
                nonce: ours,
            })),
        );
        self.out.push_back(super::wire::request(
            ours,
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
            let now = std::time::Instant::now();
            self.approvals.grant(
                &ask.origin.id,
                &ask.request,
                &ask.blocked.rule,
                ask.nonce,
                now,
            );
            let method = ask.request.method().unwrap_or_default().to_owned();
            return self.on_client_request(ask.request, ask.origin, &method);
        }
        // The server is not named: the user's answer may come after a restart.
        let view = View::of(Direction::ToUpstream, &ask.request).name(Some(&ask.name));
        let stop = decide::stop(&ask.blocked, Some("declined by the user"));
        self.stop_request(&view, &ask.request, &ask.origin, &stop);
    }

    /// A tool's listed (pinned) definition; `None` when pinning is off (nothing is
    /// pinned) or the tool is not listed.
    fn pinned_definition(&self, slot: usize, exposed: &str) -> Option<Value> {
        if self.pins.mode() == crate::config::PinningMode::Off {
            return None;
        }
        let super::ListState::Listed(items) = &self.slots.get(slot)?.lists[ListKind::Tools.index()]
        else {
            return None;
        };
        let item = items.iter().find(|i| i.exposed == exposed)?;
        serde_json::from_str(&item.source).ok()
    }

    /// A completed tool call, prompt get or resource read counts toward the session's
    /// flow history (`item`: its exposed name or URI).
    pub(super) fn record_flow(&mut self, method: &str, item: Option<&str>) {
        let kind = match method {
            "tools/call" => Kind::Tool,
            "prompts/get" => Kind::Prompt,
            "resources/read" => Kind::Resource,
            _ => return,
        };
        if let Some(item) = item {
            let policy = self.policy();
            self.flows.record_item(&policy.labels, kind, item);
        }
    }
}
