//! The policy engine: per-layer rules, labels and sequence rules, decided as pure
//! functions over a call (SPEC "Policy", "Merging", "Decisions on the wire").
//!
//! This module owns what a call's arguments, name and session history mean for the
//! decision. It never reads configuration files (the [`crate::config`] layers build a
//! [`PolicySet`] and put it on [`crate::config::Effective::policy`]), never writes to
//! the wire, and keeps no state of its own: the one per-session state, [`FlowState`],
//! belongs to the caller.
//!
//! # How a call is decided
//! 1. **Every layer decides on its own** (managed → user → workspace), first matching
//!    rule wins within a layer, else the layer's `default` ([`rules`]). The call
//!    passes only if every layer allows it: a lower layer can tighten a higher one,
//!    never loosen it. A rule whose conditions cannot be evaluated (missing argument,
//!    wrong type, unresolvable path, annotations of an unpinned tool) matches a `deny`
//!    or `ask` rule and does not match an `allow` rule: fail closed.
//! 2. **Flows** ([`flows`]): for every kind (tools, prompts, resources), labels of
//!    the session's earlier completed requests against this one's labels: the
//!    trifecta, then `[[flows.rules]]`.
//! 3. The outcome, strongest first: an enforced deny (the first layer that denies,
//!    then the first flow rule), an enforced ask, a denial or ask in `monitor` mode
//!    ([`Decision::Monitor`]: the call goes through), else allow.
//!
//! # Modes
//! `policy.mode` is merged like the other settings (enforce is stricter than monitor;
//! a trusted workspace may set the user's value, nothing loosens the managed layer's
//! explicit value) and governs the user's and the workspace's rules, their flow rules,
//! the trifecta they set and everything blocked outside rules. The managed layer's own
//! rules, flow rules and `trifecta = "deny"` follow the managed file's own `mode` only
//! (default `enforce`), so a user's `mode = "monitor"` can never switch off the
//! organisation's rules; an organisation that wants no monitor anywhere sets `mode =
//! "enforce"` in its file.
//!
//! # Rule ids on the wire
//! A rule's own `id`; `default:<layer>` when a layer's default decided
//! (`default:workspace`); `flow:trifecta` and `flow:<id>` for sequence rules. User ids
//! cannot contain `:`, so they never collide with built-in ids.
//!
//! # Calling it from the session
//! ```text
//! start-up / reload:  let policy = Arc::new(effective.policy.clone());
//! tools/list:         leave out every tool with policy.hidden(exposed_name)
//!                     (prompts: policy.hidden_item(Kind::Prompt, name))
//! tools/call:         let call = Call::tool(exposed, params.get("arguments"))
//!                         .with_annotations(pinned_annotations)   // None when not pinned
//!                         .with_cwd(server.cwd.as_deref());       // relative path args
//!                     match policy.evaluate(&call, &session_flows) {
//!                         Decision::Allow => forward,
//!                         Decision::Monitor(b) => forward; _meta decision "monitor", rule b.rule,
//!                         Decision::Deny(b) => blocked result:
//!                             "Blocked by mcp-warden: rule `{b.rule}`: {b.reason}",
//!                         Decision::Ask(b) => elicitation where the client offers it,
//!                             else (or declined) a deny with b.rule,
//!                     }
//! the call's answer:  session_flows.record(&policy.labels, exposed)   // not for denied calls
//! resources/read:     Call::resource(uri, Some(&params)); prompts/get: Call::prompt(name,
//!                     params.get("arguments")); a deny there is -32003 with the rule.
//! ```
//! **Cost** (`cargo run --release --example policy_bench`, this project's 2-vCPU
//! machine): without path conditions, evaluation is glob-set lookups and value
//! comparisons: about 0.2 µs for 50 rules none of which covers the call, 2.6 µs when all
//! 50 cover it and every condition is checked. A `under` / `not_under` condition
//! resolves the argument against the real file system (an `lstat` and a `realpath`,
//! more for a dangling symlink or a missing directory): 3 to 4 µs for a file or a new
//! file, 5 to 9 µs through a symlink or with `..`, on a warm cache, but blocking I/O
//! that can stall on a slow or network file system. When
//! [`PolicySet::touches_file_system`] is true, run [`PolicySet::evaluate`] off the
//! session's thread (`spawn_blocking` with an `Arc<PolicySet>` and a clone of the
//! [`FlowState`], which is small: one entry per label). Everything here is `Send +
//! Sync` and takes `&self`.

pub mod coerce;
pub mod flows;
pub mod path;
pub mod rules;
pub mod settings;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use flows::{FlowHit, FlowRule, FlowState, LabelSet, Labels};
pub use rules::{
    ArgRef, Condition, ConditionResult, DecidedBy, LayerDecision, LayerPolicy, PassedOver,
    PathPattern, Pattern, Rule, RuleTrace, Selector, Tri, When, layer_name,
};
pub use settings::{
    Action, InjectionAction, Limit, Limits, OutputSettings, PolicyMode, SecretsAction, Settings,
    Strictness, Trifecta,
};

use rules::Env;

/// Which file a rule, a setting or a server came from, in the order the layers are
/// stacked: managed, user, workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layer {
    /// `/etc/mcp-warden/policy.toml`.
    Managed,
    /// The user's `config.toml`.
    User,
    /// The workspace's `mcp-warden.toml`.
    Workspace,
}

/// What kind of request a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `tools/call`, by exposed tool name.
    Tool = 0,
    /// `resources/read` (and subscribe), by URI.
    Resource = 1,
    /// `prompts/get`, by exposed prompt name.
    Prompt = 2,
}

impl Kind {
    /// The word for it in messages.
    #[must_use]
    pub fn noun(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Resource => "resource",
            Self::Prompt => "prompt",
        }
    }
}

/// One request to decide on. Borrowed: building one costs nothing.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub kind: Kind,
    /// The exposed tool or prompt name, or the resource URI.
    pub name: &'a str,
    /// What `arg` looks in: a tool's or prompt's `arguments`; a resource read's
    /// `params` (so `arg = "uri"` works). `None`: no arguments (every argument is
    /// missing).
    pub arguments: Option<&'a Value>,
    /// The tool's `annotations` from its pinned definition; `None` when the tool is
    /// not pinned (then `annotation` conditions cannot be evaluated).
    pub annotations: Option<&'a Value>,
    /// The tool's pinned `inputSchema`: the types `equals` and `one_of` coerce an
    /// argument to (see [`coerce`]); `None` when not pinned.
    pub schema: Option<&'a Value>,
    /// What relative path arguments are relative to: the server's working directory.
    /// `None`: a relative path cannot be evaluated.
    pub cwd: Option<&'a Path>,
}

impl<'a> Call<'a> {
    /// A `tools/call` of the exposed `name` with its `arguments`.
    #[must_use]
    pub fn tool(name: &'a str, arguments: Option<&'a Value>) -> Self {
        Self {
            kind: Kind::Tool,
            name,
            arguments,
            annotations: None,
            schema: None,
            cwd: None,
        }
    }

    /// A `resources/read` of `uri`, with the request's `params`.
    #[must_use]
    pub fn resource(uri: &'a str, params: Option<&'a Value>) -> Self {
        Self {
            kind: Kind::Resource,
            ..Self::tool(uri, params)
        }
    }

    /// A `prompts/get` of the exposed `name` with its `arguments`.
    #[must_use]
    pub fn prompt(name: &'a str, arguments: Option<&'a Value>) -> Self {
        Self {
            kind: Kind::Prompt,
            ..Self::tool(name, arguments)
        }
    }

    /// With the tool's pinned annotations.
    #[must_use]
    pub fn with_annotations(mut self, annotations: Option<&'a Value>) -> Self {
        self.annotations = annotations;
        self
    }

    /// With the tool's pinned `inputSchema`.
    #[must_use]
    pub fn with_schema(mut self, schema: Option<&'a Value>) -> Self {
        self.schema = schema;
        self
    }

    /// With the directory relative paths are relative to.
    #[must_use]
    pub fn with_cwd(mut self, cwd: Option<&'a Path>) -> Self {
        self.cwd = cwd;
        self
    }
}

/// Why a call is not simply allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The rule id for `_meta` and the audit: a rule's own id, `default:<layer>`,
    /// `flow:trifecta` or `flow:<id>`.
    pub rule: String,
    /// The layer whose rule or default decided; `None` for the trifecta.
    pub layer: Option<Layer>,
    /// What the rule does: `deny` or `ask` (also for [`Decision::Monitor`], where it
    /// is what would have happened).
    pub action: Action,
    /// For a person: the rule's `message`, or why its conditions hold.
    pub reason: String,
    /// For flow rules: the earlier calls that made the sequence dangerous, in order.
    pub calls: Vec<String>,
}

/// The decision on one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Blocked.
    Deny(Blocked),
    /// Ask the user (through elicitation where the client supports it, else deny).
    Ask(Blocked),
    /// Would have been denied or asked, but the deciding rule is in `monitor` mode:
    /// the call goes through, marked.
    Monitor(Blocked),
}

impl Decision {
    /// The `mcp-warden/decision` value: `allow`, `deny`, `ask` or `monitor`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny(_) => "deny",
            Self::Ask(_) => "ask",
            Self::Monitor(_) => "monitor",
        }
    }

    /// The rule and reason, unless allowed.
    #[must_use]
    pub fn blocked(&self) -> Option<&Blocked> {
        match self {
            Self::Allow => None,
            Self::Deny(b) | Self::Ask(b) | Self::Monitor(b) => Some(b),
        }
    }

    /// Whether the call goes through without asking anyone (allowed or monitored).
    #[must_use]
    pub fn passes(&self) -> bool {
        matches!(self, Self::Allow | Self::Monitor(_))
    }
}

/// A decision with everything that led to it, for `explain`.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub decision: Decision,
    /// Every layer's own decision, with the rules passed over and why.
    pub layers: Vec<LayerDecision>,
    /// The call's own labels.
    pub labels: Vec<String>,
    /// Every flow rule that fires.
    pub flows: Vec<FlowHit>,
}

/// The merged policy of every layer: what [`crate::config::Effective::policy`] holds.
/// `Default` is what no configuration gives: no rules (everything allowed), no labels,
/// default settings.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    /// One per configuration file read, managed → user → workspace.
    pub layers: Vec<LayerPolicy>,
    pub settings: Settings,
    /// The union of every layer's `[labels]`.
    pub labels: Labels,
    /// Every layer's `[[flows.rules]]`, in layer order.
    pub flow_rules: Vec<FlowRule>,
    /// `~` in path arguments.
    pub home: PathBuf,
}

/// The decision candidates collected while evaluating, strongest kept.
#[derive(Default)]
struct Outcome {
    deny: Option<Blocked>,
    ask: Option<Blocked>,
    monitor: Option<Blocked>,
}

impl Outcome {
    fn add(&mut self, mode: PolicyMode, blocked: Blocked) {
        let slot = match (mode, blocked.action) {
            (PolicyMode::Monitor, _) => &mut self.monitor,
            (PolicyMode::Enforce, Action::Ask) => &mut self.ask,
            (PolicyMode::Enforce, _) => &mut self.deny,
        };
        if slot.is_none() {
            *slot = Some(blocked);
        }
    }

    fn decision(self) -> Decision {
        if let Some(b) = self.deny {
            Decision::Deny(b)
        } else if let Some(b) = self.ask {
            Decision::Ask(b)
        } else if let Some(b) = self.monitor {
            Decision::Monitor(b)
        } else {
            Decision::Allow
        }
    }
}

impl PolicySet {
    /// Decides on a call, given the session's history. Blocking when a path condition
    /// applies (see the module docs).
    #[must_use]
    pub fn evaluate(&self, call: &Call<'_>, flows: &FlowState) -> Decision {
        self.run(call, flows, false).decision
    }

    /// Decides on a call and says why: every layer's rules passed over, the deciding
    /// rule's conditions, the flow rules that fire.
    #[must_use]
    pub fn explain(&self, call: &Call<'_>, flows: &FlowState) -> Explanation {
        self.run(call, flows, true)
    }

    fn run(&self, call: &Call<'_>, flows: &FlowState, detail: bool) -> Explanation {
        let env = Env {
            call,
            home: &self.home,
        };
        let mut outcome = Outcome::default();
        let mut layers = Vec::new();
        for layer in &self.layers {
            let decision = layer.decide(env, detail);
            if decision.action != Action::Allow {
                let rule = match &decision.decided_by {
                    DecidedBy::Rule { index, .. } => layer.rules[*index].id.clone(),
                    DecidedBy::Default => format!("default:{}", layer_name(layer.layer)),
                };
                let blocked = Blocked {
                    rule,
                    layer: Some(layer.layer),
                    action: decision.action,
                    reason: layer.reason(&decision, env),
                    calls: Vec::new(),
                };
                let final_deny = !detail
                    && decision.mode == PolicyMode::Enforce
                    && decision.action == Action::Deny;
                outcome.add(decision.mode, blocked);
                if final_deny {
                    // Nothing can overturn an enforced deny: skip the rest.
                    return Explanation {
                        decision: outcome.decision(),
                        layers,
                        labels: Vec::new(),
                        flows: Vec::new(),
                    };
                }
            }
            if detail {
                layers.push(decision);
            }
        }
        let settings = flows::Settings {
            trifecta: self.settings.trifecta == Trifecta::Deny,
            trifecta_mode: self.settings.trifecta_mode,
            rules: &self.flow_rules,
        };
        let hits = flows::check_item(&self.labels, &settings, flows, call.kind, call.name);
        {
            for hit in &hits {
                outcome.add(
                    hit.mode,
                    Blocked {
                        rule: hit.rule.clone(),
                        layer: hit.layer,
                        action: Action::Deny,
                        reason: hit.reason.clone(),
                        calls: hit.calls.clone(),
                    },
                );
            }
        }
        let labels = if detail {
            self.labels
                .named(self.labels.of_item(call.kind, call.name))
                .into_iter()
                .map(str::to_owned)
                .collect()
        } else {
            Vec::new()
        };
        Explanation {
            decision: outcome.decision(),
            layers,
            labels,
            flows: hits,
        }
    }

    /// Whether a tool is left out of `tools/list`: some layer in `enforce` mode denies
    /// every call to it whatever the arguments (an unconditional `deny` rule covers it
    /// before any `allow` or `ask` rule, or its default is `deny` and no `allow` or
    /// `ask` rule covers it).
    #[must_use]
    pub fn hidden(&self, tool: &str) -> bool {
        self.hidden_item(Kind::Tool, tool)
    }

    /// [`Self::hidden`] for any kind of item.
    #[must_use]
    pub fn hidden_item(&self, kind: Kind, name: &str) -> bool {
        self.layers.iter().any(|l| l.denies_every_call(kind, name))
    }

    /// The labels of an exposed tool name, sorted.
    #[must_use]
    pub fn labels_of(&self, tool: &str) -> Vec<&str> {
        self.labels.named(self.labels.of(tool))
    }

    /// Whether any rule has a path condition, so that evaluation may do blocking
    /// file-system calls.
    #[must_use]
    pub fn touches_file_system(&self) -> bool {
        self.layers.iter().flat_map(|l| &l.rules).any(|r| {
            r.when.as_ref().is_some_and(|w| {
                w.conditions
                    .iter()
                    .any(|c| matches!(c, Condition::Under(_) | Condition::NotUnder(_)))
            })
        })
    }

    /// How many rules all layers have.
    #[must_use]
    pub fn rule_count(&self) -> usize {
        self.layers.iter().map(|l| l.rules.len()).sum()
    }
}

#[cfg(test)]
pub(crate) mod tests;
