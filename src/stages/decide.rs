//! The decide stage (SPEC "Policy"): every request that carries model data is
//! decided by [`PolicySet::evaluate`] against the session's own flow history: a
//! `tools/call` (and against `[limits]`), a `prompts/get`, a `resources/read`,
//! `subscribe` or `unsubscribe` (as a read of its URI), and a `completion/complete`
//! (as a request for its ref: the prompt, or the resource template's URI, with the
//! value being completed standing for its argument). On the way back, an answer over
//! `max_result_bytes` is stopped and one let through in monitor mode is marked.
//! Server requests have their own table (`sampling`/`elicitation` per server).

use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;

use super::limits::{self, CallRate};
use super::{MessageKind, Stop, Verdict, View};
use crate::filter::Block;
use crate::jsonrpc::Message;
use crate::policy::{Blocked, Call, Decision, FlowState, Kind, Limits, PolicySet};

/// What the decide stage reads besides the message.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub policy: &'a PolicySet,
    pub flows: &'a FlowState,
    /// The tool's pinned definition: rules match on its `annotations`, and
    /// `equals`/`one_of` coerce arguments to its `inputSchema`'s types.
    pub pinned: Option<&'a Value>,
    /// The directory the server runs in (rules on paths resolve against it).
    pub cwd: Option<&'a Path>,
}

/// The policy's kind of item a view of `msg` is about (for a completion: its ref's);
/// `None` for the kinds the policy does not decide.
#[must_use]
pub fn policy_kind(view: &View<'_>, msg: &Message) -> Option<Kind> {
    if view.direction != super::Direction::ToUpstream {
        return None;
    }
    match view.kind {
        MessageKind::Call => Some(Kind::Tool),
        MessageKind::Get => Some(Kind::Prompt),
        MessageKind::Read | MessageKind::Subscribe => Some(Kind::Resource),
        MessageKind::Complete => {
            let (raw, _) = msg.param(&["ref", "type"])?;
            match serde_json::from_str::<String>(raw).ok()?.as_str() {
                "ref/prompt" => Some(Kind::Prompt),
                "ref/resource" => Some(Kind::Resource),
                _ => None,
            }
        }
        _ => None,
    }
}

/// What a rule's `arg` looks in for a request of `view.kind` about an item of `kind`:
/// a call's or get's `arguments`; a read's `params` (so `arg = "uri"` works); for a
/// completion, its `context.arguments` with the value being completed as its
/// argument (and the ref's `uri`), so a rule on an argument holds for completions of
/// it too.
fn arguments(view: &View<'_>, kind: Kind, msg: &Message) -> Option<Value> {
    let parse = |raw: Option<&str>| raw.and_then(|r| serde_json::from_str::<Value>(r).ok());
    if view.kind != MessageKind::Complete {
        return match kind {
            Kind::Resource => parse(msg.params()),
            Kind::Tool | Kind::Prompt => parse(msg.param(&["arguments"]).map(|(raw, _)| raw)),
        };
    }
    let mut arguments = match parse(msg.param(&["context", "arguments"]).map(|(raw, _)| raw)) {
        Some(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let argument = parse(msg.param(&["argument"]).map(|(raw, _)| raw));
    if let Some(Value::String(name)) = argument.as_ref().and_then(|a| a.get("name")) {
        let value = argument.as_ref().and_then(|a| a.get("value")).cloned();
        arguments.insert(name.clone(), value.unwrap_or(Value::Null));
    }
    if kind == Kind::Resource
        && let Some(name) = view.name
    {
        arguments.insert("uri".into(), Value::from(name));
    }
    Some(Value::Object(arguments))
}

/// Whether the rules need a tool's pinned definition to decide `view` (so the
/// session looks them up only then).
#[must_use]
pub fn needs_annotations(view: &View<'_>, policy: &PolicySet) -> bool {
    view.kind == MessageKind::Call && policy.rule_count() > 0
}

/// The verdict on a request from the client. `rate` counts the tool calls it admits.
pub fn decide(
    view: &View<'_>,
    msg: &Message,
    inputs: &Inputs<'_>,
    rate: &mut CallRate,
    now: Instant,
) -> Verdict {
    let (Some(kind), Some(name)) = (policy_kind(view, msg), view.name) else {
        return Verdict::Pass;
    };
    let policy = inputs.policy;
    // Without rules nothing reads the arguments: skip parsing them.
    let arguments: Option<Value> = if policy.rule_count() == 0 {
        None
    } else {
        arguments(view, kind, msg)
    };
    let call = match kind {
        Kind::Tool => Call::tool(name, arguments.as_ref()),
        Kind::Prompt => Call::prompt(name, arguments.as_ref()),
        Kind::Resource => Call::resource(name, arguments.as_ref()),
    }
    .with_annotations(inputs.pinned.and_then(|d| d.get("annotations")))
    .with_schema(inputs.pinned.and_then(|d| d.get("inputSchema")))
    .with_cwd(inputs.cwd);
    let decision = policy.evaluate(&call, inputs.flows);
    if view.kind == MessageKind::Call
        && decision.passes()
        && !continues_a_call(msg)
        && let Err((rule, reason)) = rate.admit(&policy.settings.limits, name, now)
    {
        return Verdict::Stop(Stop::deny(Block {
            rule: rule.to_owned(),
            reason,
        }));
    }
    verdict_of(decision)
}

/// Whether `msg` is the retry of a call mcp-warden answered `input_required` (it
/// carries our `requestState` envelope): the same call, already counted by `[limits]`
/// when it was first made. A forged envelope gains nothing by it: the retry is refused
/// before anything goes upstream (`era::state`).
fn continues_a_call(msg: &Message) -> bool {
    msg.param(&["requestState"]).is_some_and(|(raw, _)| {
        raw.strip_prefix('"')
            .is_some_and(|s| s.starts_with(crate::era::state::PREFIX))
    })
}

/// A request for an item the policy hides (an unconditional deny covers it, so it is
/// not listed): stopped with the deciding rule rather than "unknown". `Pass` when it
/// is not hidden.
#[must_use]
pub fn hidden(view: &View<'_>, msg: &Message, policy: &PolicySet, flows: &FlowState) -> Verdict {
    let (Some(kind @ (Kind::Tool | Kind::Prompt)), Some(name)) =
        (policy_kind(view, msg), view.name)
    else {
        return Verdict::Pass;
    };
    if !is_hidden(policy, kind, name) {
        return Verdict::Pass;
    }
    let call = match kind {
        Kind::Tool => Call::tool(name, None),
        _ => Call::prompt(name, None),
    };
    match policy.evaluate(&call, flows) {
        Decision::Deny(b) | Decision::Ask(b) | Decision::Monitor(b) => {
            Verdict::Stop(stop(&b, None))
        }
        Decision::Allow => Verdict::Pass,
    }
}

/// Whether the policy leaves an item out of its list.
#[must_use]
pub fn is_hidden(policy: &PolicySet, kind: Kind, name: &str) -> bool {
    match kind {
        Kind::Tool => policy.hidden(name),
        Kind::Prompt => policy.hidden_item(Kind::Prompt, name),
        Kind::Resource => false,
    }
}

fn verdict_of(decision: Decision) -> Verdict {
    match decision {
        Decision::Allow => Verdict::Pass,
        Decision::Monitor(b) => Verdict::Mark(b.rule),
        Decision::Ask(b) => Verdict::Ask(b),
        Decision::Deny(b) => Verdict::Stop(stop(&b, None)),
    }
}

/// The stop for a request the policy blocks; `reason` replaces the rule's own (the
/// user declined an `ask`). A flow rule names the calls that led to it.
#[must_use]
pub fn stop(blocked: &Blocked, reason: Option<&str>) -> Stop {
    let mut text = reason.unwrap_or(&blocked.reason).to_owned();
    if !blocked.calls.is_empty() {
        text = format!("{text} (after {})", blocked.calls.join(", then "));
    }
    Stop::deny(Block {
        rule: blocked.rule.clone(),
        reason: text,
    })
}

/// The verdict on an answer of `bytes` (after the filters): `[limits]
/// max_result_bytes` stops one too big. Applies to results and errors alike.
#[must_use]
pub fn answer_size(view: &View<'_>, limits: &Limits, bytes: usize) -> Verdict {
    if !matches!(view.kind, MessageKind::Result | MessageKind::Error) {
        return Verdict::Pass;
    }
    match limits::result_too_big(limits, bytes) {
        Some((rule, reason)) => Verdict::Stop(Stop::deny(Block {
            rule: rule.to_owned(),
            reason,
        })),
        None => Verdict::Pass,
    }
}

/// Marks an answer that passed in monitor mode: `_meta` says what would have happened.
#[must_use]
pub fn mark_monitor(line: &Bytes, rule: &str) -> Option<Bytes> {
    let msg = crate::jsonrpc::message::reparse(line)?;
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
