//! `mcp-warden explain TOOL [ARGS_JSON]`: which rule of which layer decides a call, and
//! `--effective`: the merged policy.
//!
//! It reads the configuration exactly as `serve` would and evaluates the call with the
//! same engine ([`crate::policy`]), path conditions against this machine's file
//! system. It starts no server, so tool annotations are unknown here: an `annotation`
//! condition cannot be evaluated, which counts against the call for `deny` and `ask`
//! rules and does not match `allow` rules, as for a tool that is not pinned.

use std::path::PathBuf;

use clap::Args;
use serde_json::{Map, Value, json};

use crate::ExitStatus;
use crate::config::Effective;
use crate::output;
use crate::paths::Paths;
use crate::policy::{
    Call, Condition, ConditionResult, DecidedBy, Decision, Explanation, FlowState, Kind,
    LayerDecision, LayerPolicy, PassedOver, PolicySet, Rule, RuleTrace, Tri, layer_name,
};

/// Explain which rule of which layer decides a call: for every layer the rule that
/// decides (or its default) and each rule passed over and why, then the flow rules and
/// the overall decision. Servers are not started, so tool annotations are unknown.
///
/// Exit 0 when the call would pass (allowed, or only monitored), 1 when it would be
/// denied or need the user's answer (`ask`), 2 on a usage or configuration error.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // independent command-line flags
pub struct ExplainArgs {
    /// The exposed tool name (`fs__write_file`); with `--resource` a resource URI, with
    /// `--prompt` an exposed prompt name.
    #[arg(value_name = "TOOL", required_unless_present = "effective")]
    pub tool: Option<String>,
    /// The call's arguments as a JSON object (default `{}`).
    #[arg(value_name = "ARGS_JSON")]
    pub args: Option<String>,
    /// Print the merged policy: every layer's rules in order, the merged settings and
    /// the labels.
    #[arg(long)]
    pub effective: bool,
    /// TOOL is a resource URI (`resources/read`).
    #[arg(long, conflicts_with = "prompt")]
    pub resource: bool,
    /// TOOL is a prompt name (`prompts/get`).
    #[arg(long)]
    pub prompt: bool,
    /// Tool calls completed earlier in the session, in order, for the flow rules
    /// (repeat it, or separate names with commas).
    #[arg(long, value_name = "TOOL", value_delimiter = ',')]
    pub after: Vec<String>,
    /// The directory relative path arguments are relative to (default: the working
    /// directory of the server the tool's namespace names, else the workspace root).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `explain`.
pub fn run(
    paths: &Paths,
    workspace: Option<PathBuf>,
    args: &ExplainArgs,
) -> anyhow::Result<ExitStatus> {
    let choice = super::check::workspace_choice(workspace)?;
    let arguments = match args.args.as_deref().map(serde_json::from_str::<Value>) {
        None => Value::Object(Map::new()),
        Some(Ok(v @ Value::Object(_))) => v,
        Some(Ok(other)) => {
            output::diag(&format!(
                "error: ARGS_JSON must be a JSON object of arguments, not {other}"
            ));
            return Ok(ExitStatus::Usage);
        }
        Some(Err(e)) => {
            output::diag(&format!("error: ARGS_JSON is not valid JSON: {e}"));
            return Ok(ExitStatus::Usage);
        }
    };
    let effective = match super::check::load_or_report(paths, &choice) {
        Ok(effective) => effective,
        Err(status) => return Ok(status),
    };
    let policy = &effective.policy;
    let mut doc = Map::new();
    if args.effective {
        if args.json {
            doc.insert("effective".into(), effective_json(policy));
        } else {
            print_effective(policy);
        }
    }
    let Some(name) = &args.tool else {
        if args.json {
            output::json(&serde_json::to_string_pretty(&doc.remove("effective"))?);
        }
        return Ok(ExitStatus::Success);
    };
    let kind = if args.resource {
        Kind::Resource
    } else if args.prompt {
        Kind::Prompt
    } else {
        Kind::Tool
    };
    match unknown_name(paths, &effective, kind, name) {
        Some(Unknown::NoServer(why)) => {
            output::diag(&format!("error: {why}"));
            return Ok(ExitStatus::Usage);
        }
        Some(Unknown::Note(why)) => output::diag(&format!("note: {why}")),
        None => {}
    }
    let mut flows = FlowState::new();
    for earlier in &args.after {
        flows.record(&policy.labels, earlier);
    }
    let cwd = args.cwd.clone().or_else(|| default_cwd(&effective, name));
    let call = Call {
        kind,
        name,
        arguments: Some(&arguments),
        annotations: None,
        schema: None,
        cwd: cwd.as_deref(),
    };
    let explanation = policy.explain(&call, &flows);
    if args.json {
        let report = explain_json(policy, &call, &flows, &explanation);
        let out = if args.effective {
            doc.insert("explain".into(), report);
            Value::Object(doc)
        } else {
            report
        };
        output::json(&serde_json::to_string_pretty(&out)?);
    } else {
        if args.effective {
            output::line("");
        }
        print_explanation(policy, &call, &args.after, &explanation);
    }
    Ok(if explanation.decision.passes() {
        ExitStatus::Success
    } else {
        ExitStatus::Findings
    })
}

/// A tool or prompt name `explain` can tell is not what a client would see.
enum Unknown {
    /// No server that would start has its namespace: a call would fail, whatever the
    /// policy says.
    NoServer(String),
    /// Worth a note, not a refusal: its server pins other names, not this one (a typo,
    /// or an item not pinned yet), or no server is configured at all.
    Note(String),
}

/// Checks `name` against what is known without starting servers: the namespaces of the
/// servers `serve` would start, and the names pinned in the lock files that count.
fn unknown_name(paths: &Paths, effective: &Effective, kind: Kind, name: &str) -> Option<Unknown> {
    let lock_kind = match kind {
        Kind::Tool => crate::pinning::lock::Kind::Tool,
        Kind::Prompt => crate::pinning::lock::Kind::Prompt,
        Kind::Resource => return None,
    };
    let what = if kind == Kind::Prompt {
        "prompt"
    } else {
        "tool"
    };
    let pinned: Vec<(String, String)> = super::inventory::pinned(paths, effective)
        .items
        .into_iter()
        .filter(|(key, _)| key.kind == lock_kind)
        .map(|(key, pin)| (key.server, pin.exposed))
        .collect();
    let names: Vec<&str> = pinned.iter().map(|(_, exposed)| exposed.as_str()).collect();
    let hint = |extra: &[&str]| {
        let mut known = names.clone();
        known.extend_from_slice(extra);
        crate::config::error::suggestion(name, &known)
            .map_or_else(String::new, |s| format!("; {s}"))
    };
    if names.contains(&name) {
        return None;
    }
    let server = effective.servers.iter().find(|s| {
        let ns = s.namespace.as_str();
        ns.is_empty()
            || name
                .strip_prefix(ns)
                .is_some_and(|rest| rest.starts_with("__"))
    });
    let Some(server) = server else {
        if effective.servers.is_empty() {
            // Writing a policy before any server is configured: the rules alone decide.
            return Some(Unknown::Note(format!(
                "no server would start, so no server offers `{name}`: what follows is what the policy alone decides"
            )));
        }
        let prefixes: Vec<String> = effective
            .servers
            .iter()
            .map(|s| format!("{}__", s.namespace.as_str()))
            .collect();
        let listed = if prefixes.is_empty() {
            "no server would start".to_owned()
        } else {
            let quoted: Vec<String> = prefixes.iter().map(|p| format!("`{p}*`")).collect();
            format!("the servers' names begin {}", quoted.join(", "))
        };
        let guesses: Vec<String> = prefixes
            .iter()
            .filter_map(|p| name.split_once("__").map(|(_, rest)| format!("{p}{rest}")))
            .collect();
        let guesses: Vec<&str> = guesses.iter().map(String::as_str).collect();
        return Some(Unknown::NoServer(format!(
            "unknown {what} `{name}`: no server that would start offers it ({listed}){}",
            hint(&guesses)
        )));
    };
    let count = pinned
        .iter()
        .filter(|(s, _)| s == server.name.as_str())
        .count();
    if count == 0 {
        return None;
    }
    Some(Unknown::Note(format!(
        "`{name}` is not among the {count} {what}s pinned for server `{}`{}; if the server offers it now it is new (`mcp-warden pins` shows what it offers)",
        server.name,
        hint(&[])
    )))
}

/// The working directory of the server whose namespace prefixes `name`, else the
/// workspace root.
fn default_cwd(effective: &Effective, name: &str) -> Option<PathBuf> {
    let by_namespace = name.split_once("__").and_then(|(ns, _)| {
        effective
            .servers
            .iter()
            .find(|s| s.namespace.as_str() == ns)
            .and_then(|s| s.cwd.clone())
    });
    by_namespace.or_else(|| effective.workspace.as_ref().map(|w| w.root.clone()))
}

fn tri(t: Tri) -> &'static str {
    match t {
        Tri::Yes => "holds",
        Tri::No => "does not hold",
        Tri::Unknown => "cannot be evaluated",
    }
}

fn tri_json(t: Tri) -> &'static str {
    match t {
        Tri::Yes => "yes",
        Tri::No => "no",
        Tri::Unknown => "unknown",
    }
}

fn layer_title(layer: &LayerPolicy) -> String {
    format!(
        "{} policy `{}` ({}, default {})",
        layer_name(layer.layer),
        layer.file.display(),
        layer.mode.as_str(),
        layer.default
    )
}

fn has_annotation_conditions(policy: &PolicySet) -> bool {
    policy.layers.iter().flat_map(|l| &l.rules).any(|r| {
        r.when.as_ref().is_some_and(|w| {
            w.conditions
                .iter()
                .any(|c| matches!(c, Condition::Annotation(_)))
        })
    })
}

const ANNOTATIONS_UNKNOWN: &str = "annotations are unknown here: `explain` does not start servers, \
     and `annotation` conditions count only for pinned tools, so they cannot be evaluated (a \
     `deny` or `ask` rule matches, an `allow` rule does not)";

/// Why a rule was passed over, in one line.
fn passed_line(trace: &RuleTrace, call: &Call<'_>) -> String {
    let why = match &trace.passed {
        PassedOver::NotCovered => format!("does not cover {} `{}`", call.kind.noun(), call.name),
        PassedOver::Condition { result, conditions } => {
            let what = conditions
                .iter()
                .find(|c| c.result == *result)
                .map_or_else(String::new, |c| {
                    format!("`{}` {}: {}", c.condition, tri(c.result), c.why)
                });
            if *result == Tri::Unknown {
                format!("{what} (an `allow` rule does not match what cannot be evaluated)")
            } else {
                what
            }
        }
    };
    format!(
        "rule `{}` (line {}) passed over: {why}",
        trace.id, trace.line
    )
}

fn print_conditions(conditions: &[ConditionResult]) {
    for c in conditions {
        output::line(&format!(
            "      `{}` {}: {}",
            c.condition,
            tri(c.result),
            c.why
        ));
    }
}

fn print_layer(layer: &LayerPolicy, d: &LayerDecision, call: &Call<'_>) {
    output::line(&format!("{}:", layer_title(layer)));
    for trace in &d.passed_over {
        output::line(&format!("  {}", passed_line(trace, call)));
    }
    match &d.decided_by {
        DecidedBy::Rule {
            index,
            result,
            conditions,
        } => {
            let rule = &layer.rules[*index];
            let doubt = if *result == Tri::Unknown {
                " (a condition cannot be evaluated, which counts against the call)"
            } else {
                ""
            };
            output::line(&format!(
                "  rule `{}` (line {}) decides: {}{doubt}",
                rule.id, rule.line, d.action
            ));
            print_conditions(conditions);
            if d.not_reached > 0 {
                output::line(&format!(
                    "  {} after it not reached",
                    plural(d.not_reached, "rule")
                ));
            }
        }
        DecidedBy::Default if layer.rules.is_empty() => {
            output::line(&format!("  no rules; the default decides: {}", d.action));
        }
        DecidedBy::Default => {
            output::line(&format!(
                "  no rule matches; the default decides: {}",
                d.action
            ));
        }
    }
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn print_explanation(policy: &PolicySet, call: &Call<'_>, after: &[String], e: &Explanation) {
    let args = call
        .arguments
        .map_or_else(|| "{}".to_owned(), Value::to_string);
    output::line(&format!(
        "explain {} `{}` with {args}",
        call.kind.noun(),
        call.name
    ));
    if policy.layers.is_empty() {
        output::line("no configuration files: no rules in any layer");
    }
    for (layer, d) in policy.layers.iter().zip(&e.layers) {
        print_layer(layer, d, call);
    }
    if call.kind == Kind::Tool {
        let labels = if e.labels.is_empty() {
            "none".to_owned()
        } else {
            e.labels.join(", ")
        };
        output::line(&format!("labels of `{}`: {labels}", call.name));
        if after.is_empty() {
            output::line(
                "flows: no earlier calls (the call is taken as the session's first; give earlier ones with `--after TOOL`)",
            );
        } else {
            let after: Vec<String> = after.iter().map(|t| format!("`{t}`")).collect();
            output::line(&format!("flows: earlier calls {}", after.join(", ")));
        }
        for hit in &e.flows {
            output::line(&format!("  rule `{}` fires: {}", hit.rule, hit.reason));
        }
    }
    if has_annotation_conditions(policy) {
        output::line(&format!("note: {ANNOTATIONS_UNKNOWN}"));
    }
    output::line(&decision_line(&e.decision));
}

fn decision_line(decision: &Decision) -> String {
    let by = |b: &crate::policy::Blocked| {
        let layer = b
            .layer
            .map_or_else(String::new, |l| format!(" of the {} layer", layer_name(l)));
        format!("rule `{}`{layer}: {}", b.rule, b.reason)
    };
    match decision {
        Decision::Allow => "decision: allow".to_owned(),
        Decision::Deny(b) => format!("decision: deny by {}", by(b)),
        Decision::Ask(b) => format!(
            "decision: ask (the user is asked where the client supports it, else deny) by {}",
            by(b)
        ),
        Decision::Monitor(b) => format!(
            "decision: monitor (it would be {} but the rule is in monitor mode: the call goes through) by {}",
            if b.action == crate::policy::Action::Ask {
                "asked"
            } else {
                "denied"
            },
            by(b)
        ),
    }
}

fn conditions_json(conditions: &[ConditionResult]) -> Value {
    Value::Array(
        conditions
            .iter()
            .map(|c| json!({"condition": c.condition, "result": tri_json(c.result), "why": c.why}))
            .collect(),
    )
}

fn explain_json(policy: &PolicySet, call: &Call<'_>, flows: &FlowState, e: &Explanation) -> Value {
    let layers: Vec<Value> = policy
        .layers
        .iter()
        .zip(&e.layers)
        .map(|(layer, d)| {
            let passed: Vec<Value> = d
                .passed_over
                .iter()
                .map(|t| match &t.passed {
                    PassedOver::NotCovered => {
                        json!({"rule": t.id, "line": t.line, "why": "not covered"})
                    }
                    PassedOver::Condition { result, conditions } => json!({
                        "rule": t.id, "line": t.line,
                        "why": if *result == Tri::Unknown { "cannot be evaluated" } else { "condition" },
                        "conditions": conditions_json(conditions),
                    }),
                })
                .collect();
            let decided = match &d.decided_by {
                DecidedBy::Rule {
                    index,
                    result,
                    conditions,
                } => json!({
                    "rule": layer.rules[*index].id,
                    "line": layer.rules[*index].line,
                    "result": tri_json(*result),
                    "conditions": conditions_json(conditions),
                }),
                DecidedBy::Default => json!({"default": layer.default.as_str()}),
            };
            json!({
                "layer": layer_name(layer.layer),
                "file": layer.file,
                "mode": layer.mode.as_str(),
                "action": d.action.as_str(),
                "decided_by": decided,
                "passed_over": passed,
                "not_reached": d.not_reached,
            })
        })
        .collect();
    let blocked = e.decision.blocked();
    json!({
        "kind": call.kind.noun(),
        "name": call.name,
        "arguments": call.arguments,
        "decision": e.decision.as_str(),
        "rule": blocked.map(|b| b.rule.clone()),
        "layer": blocked.and_then(|b| b.layer).map(layer_name),
        "reason": blocked.map(|b| b.reason.clone()),
        "calls": blocked.map(|b| b.calls.clone()).unwrap_or_default(),
        "layers": layers,
        "labels": e.labels,
        "history": flows.history().iter().map(|(label, tool)| json!({"label": label, "tool": tool})).collect::<Vec<_>>(),
        "flows": e.flows.iter().map(|h| json!({
            "rule": h.rule,
            "layer": h.layer.map(layer_name),
            "mode": h.mode.as_str(),
            "calls": h.calls,
            "reason": h.reason,
        })).collect::<Vec<_>>(),
        "annotations": if has_annotation_conditions(policy) { Value::from("unknown") } else { Value::Null },
    })
}

fn globs(rule: &Rule) -> Vec<(&'static str, Vec<&str>)> {
    [
        ("tools", &rule.selector.tools),
        ("resources", &rule.selector.resources),
        ("prompts", &rule.selector.prompts),
    ]
    .into_iter()
    .filter(|(_, p)| !p.is_empty())
    .map(|(k, p)| (k, p.iter().map(|p| p.written.as_str()).collect()))
    .collect()
}

fn when_text(rule: &Rule) -> Option<String> {
    let when = rule.when.as_ref()?;
    let mut parts = Vec::new();
    if let Some(arg) = &when.arg {
        parts.push(format!("arg = {}", Value::from(arg.written.as_str())));
    }
    for c in &when.conditions {
        parts.push(c.show(when.annotation.as_ref()));
    }
    Some(format!("{{ {} }}", parts.join(", ")))
}

fn rule_json(rule: &Rule) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), rule.id.clone().into());
    m.insert("line".into(), rule.line.into());
    for (key, list) in globs(rule) {
        m.insert(key.into(), json!(list));
    }
    if let Some(when) = when_text(rule) {
        m.insert("when".into(), when.into());
    }
    m.insert("action".into(), rule.action.as_str().into());
    if let Some(message) = &rule.message {
        m.insert("message".into(), message.clone().into());
    }
    Value::Object(m)
}

fn effective_json(policy: &PolicySet) -> Value {
    let s = &policy.settings;
    let labels: Map<String, Value> = policy
        .labels
        .names()
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let globs: Vec<Value> = policy
                .labels
                .globs(i)
                .iter()
                .map(|(layer, glob)| json!({"glob": glob, "layer": layer_name(*layer)}))
                .collect();
            (name.clone(), Value::Array(globs))
        })
        .collect();
    json!({
        "settings": {
            "mode": s.mode.as_str(),
            "scan_arguments": s.scan_arguments,
            "trifecta": s.trifecta.as_str(),
            "output": {
                "secrets": s.output.secrets.as_str(),
                "injection": s.output.injection.as_str(),
                "strip_invisible": s.output.strip_invisible,
            },
            "limits": {
                "calls_per_minute": s.limits.calls_per_minute,
                "tool_calls_per_minute": s.limits.tool_calls_per_minute,
                "max_message_bytes": s.limits.max_message_bytes,
                "max_result_bytes": s.limits.max_result_bytes,
            },
        },
        "labels": labels,
        "layers": policy.layers.iter().map(|l| json!({
            "layer": layer_name(l.layer),
            "file": l.file,
            "mode": l.mode.as_str(),
            "default": l.default.as_str(),
            "rules": l.rules.iter().map(rule_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "flow_rules": policy.flow_rules.iter().map(|r| json!({
            "id": r.id,
            "layer": layer_name(r.layer),
            "line": r.line,
            "after": r.after,
            "deny": r.deny,
            "mode": r.mode.as_str(),
        })).collect::<Vec<_>>(),
    })
}

fn limit(v: Option<u64>) -> String {
    v.map_or_else(|| "none".to_owned(), |n| n.to_string())
}

fn print_effective(policy: &PolicySet) {
    let s = &policy.settings;
    output::line("settings (merged over the layers):");
    for (key, value) in [
        ("policy.mode", format!("\"{}\"", s.mode.as_str())),
        ("policy.scan_arguments", s.scan_arguments.to_string()),
        ("flows.trifecta", format!("\"{}\"", s.trifecta.as_str())),
        (
            "output.secrets",
            format!("\"{}\"", s.output.secrets.as_str()),
        ),
        (
            "output.injection",
            format!("\"{}\"", s.output.injection.as_str()),
        ),
        (
            "output.strip_invisible",
            s.output.strip_invisible.to_string(),
        ),
        ("limits.calls_per_minute", limit(s.limits.calls_per_minute)),
        (
            "limits.tool_calls_per_minute",
            limit(s.limits.tool_calls_per_minute),
        ),
        (
            "limits.max_message_bytes",
            limit(s.limits.max_message_bytes),
        ),
        ("limits.max_result_bytes", limit(s.limits.max_result_bytes)),
    ] {
        output::line(&format!("  {key} = {value}"));
    }
    output::line("labels (every layer's):");
    if policy.labels.names().is_empty() {
        output::line("  none");
    }
    for (i, name) in policy.labels.names().iter().enumerate() {
        let globs: Vec<String> = policy
            .labels
            .globs(i)
            .iter()
            .map(|(layer, glob)| format!("{} ({})", Value::from(glob.as_str()), layer_name(*layer)))
            .collect();
        output::line(&format!("  {name} = [{}]", globs.join(", ")));
    }
    output::line("rules (each layer decides on its own; a call must pass every layer):");
    if policy.layers.is_empty() {
        output::line("  no configuration files");
    }
    for layer in &policy.layers {
        output::line(&format!("  {}:", layer_title(layer)));
        if layer.rules.is_empty() {
            output::line("    no rules");
        }
        for (i, rule) in layer.rules.iter().enumerate() {
            let selector: Vec<String> = globs(rule)
                .into_iter()
                .map(|(k, list)| {
                    let list: Vec<String> =
                        list.iter().map(|g| Value::from(*g).to_string()).collect();
                    format!("{k} = [{}]", list.join(", "))
                })
                .collect();
            let when = when_text(rule).map_or_else(String::new, |w| format!(" when {w}"));
            let message = rule
                .message
                .as_ref()
                .map_or_else(String::new, |m| format!(" ({m})"));
            output::line(&format!(
                "    {}. `{}` (line {}): {}{when} → {}{message}",
                i + 1,
                rule.id,
                rule.line,
                selector.join(", "),
                rule.action
            ));
        }
    }
    output::line("flow rules:");
    output::line(&format!(
        "  flow:trifecta: {} (`egress` calls once the session used `private` and `untrusted` ones)",
        s.trifecta.as_str()
    ));
    for r in &policy.flow_rules {
        output::line(&format!(
            "  flow:{} ({}, line {}, {}): after [{}] deny [{}]",
            r.id,
            layer_name(r.layer),
            r.line,
            r.mode.as_str(),
            r.after.join(", "),
            r.deny.join(", ")
        ));
    }
}
