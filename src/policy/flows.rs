//! Labels and sequence rules: the lethal trifecta across servers.
//!
//! `[labels]` give exposed tool and prompt names and resource URIs capabilities
//! (`private`, `untrusted`, `egress`, or any name of your own) by glob: every request
//! that carries model data (a call, a get, a read, a subscription, a completion) is
//! checked, and every completed call, get and read counts towards the history. A session's [`FlowState`] remembers, for each
//! label, the first completed call that carried it. Before a call, its own labels are
//! checked against that history (a call's own labels never count towards `after`):
//!
//! - `[flows] trifecta = "deny"`: once the session has used `private` AND `untrusted`,
//!   every `egress` call is denied (rule `flow:trifecta`).
//! - `[[flows.rules]]`: once every `after` label was seen, calls with any `deny` label
//!   are denied (rule `flow:<id>`).
//!
//! The denial names the earlier calls that made the sequence dangerous, in the order
//! they happened.
//!
//! Labels come from the configuration only, never from what a server says about
//! itself. They are the union of every layer's `[labels]`, an untrusted workspace's
//! included: a label only ever makes a flow rule fire, so adding one can only deny
//! more, never less.

use globset::{Candidate, Glob, GlobSet, GlobSetBuilder};

use super::Kind;
use super::Layer;
use super::settings::PolicyMode;

/// How many distinct labels there may be over all layers: a label set is one `u64`.
pub const MAX_LABELS: usize = 64;

/// The labels of the trifecta.
pub const PRIVATE: &str = "private";
pub const UNTRUSTED: &str = "untrusted";
pub const EGRESS: &str = "egress";

/// A set of labels, by their index in [`Labels::names`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LabelSet(pub u64);

impl LabelSet {
    #[must_use]
    pub fn contains(self, id: usize) -> bool {
        id < MAX_LABELS && self.0 & (1 << id) != 0
    }

    #[must_use]
    pub fn is_superset(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    #[must_use]
    pub fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    fn insert(&mut self, id: usize) {
        if id < MAX_LABELS {
            self.0 |= 1 << id;
        }
    }

    /// The label indexes in the set, in order.
    pub fn ids(self) -> impl Iterator<Item = usize> {
        // Set bits only: testing all 64 was ~550 instructions per call for none.
        let mut bits = self.0;
        std::iter::from_fn(move || {
            let id = bits.trailing_zeros() as usize;
            bits &= bits.wrapping_sub(1);
            (id < MAX_LABELS).then_some(id)
        })
    }
}

/// Too many labels for one label set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("more than {MAX_LABELS} labels: `{name}` is one too many")]
pub struct TooManyLabels {
    pub name: String,
}

/// Every label with its globs, compiled into one glob set.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// Label names, sorted; a label's index is its place here.
    names: Vec<String>,
    /// The globs of each label, as written, each with the layer it comes from.
    globs: Vec<Vec<(Layer, String)>>,
    /// One set per kind of item (indexed by `Kind as usize`): a tool glob never
    /// labels a prompt or a URI that happens to match it.
    sets: [GlobSet; 3],
    /// Label index of each glob in the set of the same kind.
    owners: [Vec<usize>; 3],
}

impl Labels {
    /// Labels from `(layer, label, kind, glob)` entries; the same label in several
    /// layers gets the globs of all of them.
    pub fn new(entries: Vec<(Layer, String, Kind, Glob)>) -> Result<Self, TooManyLabels> {
        let mut names: Vec<String> = entries.iter().map(|(_, n, _, _)| n.clone()).collect();
        names.sort();
        names.dedup();
        if let Some(name) = names.get(MAX_LABELS) {
            return Err(TooManyLabels { name: name.clone() });
        }
        let mut globs = vec![Vec::new(); names.len()];
        let mut builders = [(); 3].map(|()| GlobSetBuilder::new());
        let mut owners: [Vec<usize>; 3] = Default::default();
        for (layer, name, kind, glob) in entries {
            let Ok(id) = names.binary_search(&name) else {
                continue;
            };
            globs[id].push((layer, glob.glob().to_owned()));
            builders[kind as usize].add(glob);
            owners[kind as usize].push(id);
        }
        // Each glob was compiled on its own already; a set of them only fails on
        // resource limits, and then no item gets a label from the set: say so loudly
        // rather than fail open silently.
        let sets = builders.map(|b| {
            b.build().unwrap_or_else(|e| {
                tracing::error!(error = %e, "labels could not be compiled together; no item has a label");
                GlobSet::empty()
            })
        });
        Ok(Self {
            names,
            globs,
            sets,
            owners,
        })
    }

    /// Every label name, sorted.
    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The globs of the label at `id`, with their layers.
    #[must_use]
    pub fn globs(&self, id: usize) -> &[(Layer, String)] {
        self.globs.get(id).map_or(&[], Vec::as_slice)
    }

    /// The index of a label.
    #[must_use]
    pub fn id(&self, name: &str) -> Option<usize> {
        self.names.binary_search_by(|n| n.as_str().cmp(name)).ok()
    }

    /// The labels of `names` that exist.
    #[must_use]
    pub fn set_of<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> LabelSet {
        let mut set = LabelSet::default();
        for name in names {
            if let Some(id) = self.id(name) {
                set.insert(id);
            }
        }
        set
    }

    /// The labels of an exposed tool name.
    #[must_use]
    pub fn of(&self, tool: &str) -> LabelSet {
        self.of_item(Kind::Tool, tool)
    }

    /// The labels of an item of `kind`: an exposed tool or prompt name, or a URI (by
    /// every spelling of it: `file://localhost/p` is `file:///p`, see
    /// [`super::rules::normalized_uri`]; more labels only ever deny more).
    #[must_use]
    pub fn of_item(&self, kind: Kind, name: &str) -> LabelSet {
        let mut set = LabelSet::default();
        let owner = &self.owners[kind as usize];
        if owner.is_empty() {
            return set;
        }
        let other = (kind == Kind::Resource)
            .then(|| super::rules::normalized_uri(name))
            .flatten();
        for spelling in std::iter::once(name).chain(other.as_deref()) {
            for glob in self.sets[kind as usize].matches_candidate(&Candidate::new(spelling)) {
                set.insert(owner[glob]);
            }
        }
        set
    }

    /// The names of the labels in `set`.
    #[must_use]
    pub fn named(&self, set: LabelSet) -> Vec<&str> {
        set.ids()
            .filter_map(|i| self.names.get(i).map(String::as_str))
            .collect()
    }
}

/// One `[[flows.rules]]` entry.
#[derive(Debug, Clone)]
pub struct FlowRule {
    pub id: String,
    pub layer: Layer,
    /// The line of the rule's `id` in its file (1-based).
    pub line: usize,
    /// Every one of these labels was seen earlier in the session ...
    pub after: Vec<String>,
    /// ... then calls with any of these labels are denied.
    pub deny: Vec<String>,
    /// Whether its denials block (see [`super::LayerPolicy::mode`]).
    pub mode: PolicyMode,
}

/// The first completed call of the session that carried a label.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    label: String,
    tool: String,
    /// The call's number in the session (0 is the first).
    call: u64,
}

/// One session's history: for each label, the first completed call that carried it.
/// Bounded by the number of labels, however long the session. It keeps label names,
/// not indexes, so it stays right when the configuration is reloaded.
///
/// A history belongs to one client session and is never shared; clone it to evaluate
/// a call off the session's thread.
#[derive(Debug, Clone, Default)]
pub struct FlowState {
    seen: Vec<Seen>,
    calls: u64,
}

impl FlowState {
    /// An empty history (a new session).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a completed tool call (see [`Self::record_item`]).
    pub fn record(&mut self, labels: &Labels, tool: &str) {
        self.record_item(labels, Kind::Tool, tool);
    }

    /// Records a completed call, get or read of `item`: call it when the answer
    /// arrives (an error answer too: the server may have read something before it
    /// failed), never for a request that was denied or held.
    pub fn record_item(&mut self, labels: &Labels, kind: Kind, item: &str) {
        let call = self.calls;
        self.calls += 1;
        for name in labels.named(labels.of_item(kind, item)) {
            if !self.seen.iter().any(|s| s.label == name) {
                self.seen.push(Seen {
                    label: name.to_owned(),
                    tool: item.to_owned(),
                    call,
                });
            }
        }
    }

    /// How many calls were recorded.
    #[must_use]
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// The labels seen so far, under the current labels.
    #[must_use]
    pub fn seen(&self, labels: &Labels) -> LabelSet {
        labels.set_of(self.seen.iter().map(|s| s.label.as_str()))
    }

    /// Every label seen so far with the first call that carried it, in call order.
    #[must_use]
    pub fn history(&self) -> Vec<(&str, &str)> {
        let mut seen: Vec<&Seen> = self.seen.iter().collect();
        seen.sort_by_key(|s| s.call);
        seen.iter()
            .map(|s| (s.label.as_str(), s.tool.as_str()))
            .collect()
    }

    /// The earlier calls that brought `wanted` labels, in call order, without repeats.
    #[must_use]
    pub fn calls_for(&self, wanted: &[&str]) -> Vec<String> {
        let mut seen: Vec<&Seen> = self
            .seen
            .iter()
            .filter(|s| wanted.contains(&s.label.as_str()))
            .collect();
        seen.sort_by_key(|s| s.call);
        let mut out: Vec<String> = Vec::new();
        for s in seen {
            if !out.contains(&s.tool) {
                out.push(s.tool.clone());
            }
        }
        out
    }
}

/// A sequence rule that fires on a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowHit {
    /// `flow:trifecta` or `flow:<id>`.
    pub rule: String,
    /// The layer of a `[[flows.rules]]` rule; `None` for the trifecta (a merged
    /// setting).
    pub layer: Option<Layer>,
    pub mode: PolicyMode,
    /// The earlier calls that made the sequence dangerous, in order.
    pub calls: Vec<String>,
    pub reason: String,
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every flow rule that fires on a call to `tool`, the trifecta first.
#[must_use]
pub fn check(
    labels: &Labels,
    trifecta: bool,
    trifecta_mode: PolicyMode,
    rules: &[FlowRule],
    state: &FlowState,
    tool: &str,
) -> Vec<FlowHit> {
    let settings = Settings {
        trifecta,
        trifecta_mode,
        rules,
    };
    check_item(labels, &settings, state, Kind::Tool, tool)
}

/// The flow settings in force: `[flows] trifecta` and its mode, and the rules.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub trifecta: bool,
    pub trifecta_mode: PolicyMode,
    pub rules: &'a [FlowRule],
}

/// Every flow rule that fires on a request for `tool` (an exposed tool or prompt
/// name, or a URI) of `kind`, the trifecta first.
#[must_use]
pub fn check_item(
    labels: &Labels,
    settings: &Settings<'_>,
    state: &FlowState,
    kind: Kind,
    tool: &str,
) -> Vec<FlowHit> {
    let Settings {
        trifecta,
        trifecta_mode,
        rules,
    } = *settings;
    let mut hits = Vec::new();
    let own = labels.of_item(kind, tool);
    if own == LabelSet::default() {
        return hits;
    }
    let seen = state.seen(labels);
    if trifecta
        && own.intersects(labels.set_of([EGRESS]))
        && let (Some(p), Some(u)) = (labels.id(PRIVATE), labels.id(UNTRUSTED))
        && seen.contains(p)
        && seen.contains(u)
    {
        let private = state.calls_for(&[PRIVATE]);
        let untrusted = state.calls_for(&[UNTRUSTED]);
        hits.push(FlowHit {
            rule: "flow:trifecta".to_owned(),
            layer: None,
            mode: trifecta_mode,
            calls: state.calls_for(&[PRIVATE, UNTRUSTED]),
            reason: format!(
                "this session has already read private data ({}) and taken in untrusted \
                 content ({}); `{tool}` can send data out (egress), so the sequence could \
                 exfiltrate it",
                quoted(&private),
                quoted(&untrusted)
            ),
        });
    }
    for rule in rules {
        let after: Vec<&str> = rule.after.iter().map(String::as_str).collect();
        // A label no layer defines is never seen: such a rule never fires (`check`
        // reports it).
        if after.iter().any(|a| labels.id(a).is_none()) {
            continue;
        }
        let deny = labels.set_of(rule.deny.iter().map(String::as_str));
        if seen.is_superset(labels.set_of(after.iter().copied())) && own.intersects(deny) {
            let denied: Vec<String> = labels
                .named(LabelSet(own.0 & deny.0))
                .into_iter()
                .map(str::to_owned)
                .collect();
            let calls = state.calls_for(&after);
            hits.push(FlowHit {
                rule: format!("flow:{}", rule.id),
                layer: Some(rule.layer),
                mode: rule.mode,
                reason: format!(
                    "this session already used {} ({}); rule `{}` then denies {} calls such as `{tool}`",
                    quoted(&rule.after),
                    quoted(&calls),
                    rule.id,
                    quoted(&denied)
                ),
                calls,
            });
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every set bit, in order, the lowest and the highest included; none for none.
    #[test]
    fn a_label_set_names_exactly_its_set_bits() {
        assert_eq!(LabelSet(0).ids().count(), 0);
        assert_eq!(LabelSet(1).ids().collect::<Vec<_>>(), [0]);
        assert_eq!(LabelSet(1 << 63).ids().collect::<Vec<_>>(), [63]);
        let bits = (1 << 63) | (1 << 40) | (1 << 5) | 1;
        assert_eq!(LabelSet(bits).ids().collect::<Vec<_>>(), [0, 5, 40, 63]);
        assert_eq!(LabelSet(u64::MAX).ids().count(), MAX_LABELS);
    }

    fn labels(spec: &[(&str, &[&str])]) -> Labels {
        let mut entries = Vec::new();
        for (name, globs) in spec {
            for g in *globs {
                let glob = Glob::new(g).unwrap_or_else(|e| panic!("{e}"));
                entries.push((Layer::User, (*name).to_owned(), Kind::Tool, glob));
            }
        }
        Labels::new(entries).unwrap_or_else(|e| panic!("{e}"))
    }

    fn trifecta_labels() -> Labels {
        labels(&[
            ("private", &["fs__read_*", "github__get_*"]),
            ("untrusted", &["fetch__*", "github__get_issue"]),
            ("egress", &["fetch__*", "slack__post_*"]),
        ])
    }

    fn check_trifecta(labels: &Labels, state: &FlowState, tool: &str) -> Vec<FlowHit> {
        check(labels, true, PolicyMode::Enforce, &[], state, tool)
    }

    #[test]
    fn labels_come_from_globs_over_exposed_names() {
        let l = trifecta_labels();
        assert_eq!(l.named(l.of("fetch__fetch")), ["egress", "untrusted"]);
        assert_eq!(l.named(l.of("github__get_issue")), ["private", "untrusted"]);
        assert!(l.named(l.of("time__now")).is_empty());
    }

    #[test]
    fn the_trifecta_across_two_servers_in_three_calls() {
        let l = trifecta_labels();
        let mut state = FlowState::new();
        assert!(check_trifecta(&l, &state, "fs__read_file").is_empty());
        state.record(&l, "fs__read_file");
        // The fetch itself is untrusted and egress, but its own labels do not count.
        assert!(check_trifecta(&l, &state, "fetch__fetch").is_empty());
        state.record(&l, "fetch__fetch");
        let hits = check_trifecta(&l, &state, "fetch__fetch");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].rule, "flow:trifecta");
        assert_eq!(hits[0].calls, ["fs__read_file", "fetch__fetch"]);
        assert!(
            hits[0].reason.contains("`fs__read_file`"),
            "{}",
            hits[0].reason
        );
        // Not egress: still fine.
        assert!(check_trifecta(&l, &state, "fs__read_file").is_empty());
        // Off: nothing.
        assert!(check(&l, false, PolicyMode::Enforce, &[], &state, "fetch__fetch").is_empty());
    }

    #[test]
    fn one_call_with_both_labels_counts_once() {
        let l = trifecta_labels();
        let mut state = FlowState::new();
        state.record(&l, "github__get_issue");
        let hits = check_trifecta(&l, &state, "slack__post_message");
        assert_eq!(hits[0].calls, ["github__get_issue"]);
    }

    #[test]
    fn custom_rules_need_every_after_label() {
        let l = labels(&[
            ("secrets", &["vault__*"]),
            ("pii", &["crm__*"]),
            ("egress", &["fetch__*"]),
        ]);
        let rule = FlowRule {
            id: "no-upload".into(),
            layer: Layer::Workspace,
            line: 3,
            after: vec!["secrets".into(), "pii".into()],
            deny: vec!["egress".into()],
            mode: PolicyMode::Enforce,
        };
        let rules = [rule];
        let mut state = FlowState::new();
        state.record(&l, "vault__read");
        assert!(check(&l, false, PolicyMode::Enforce, &rules, &state, "fetch__x").is_empty());
        state.record(&l, "crm__lookup");
        let hits = check(&l, false, PolicyMode::Enforce, &rules, &state, "fetch__x");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].rule, "flow:no-upload");
        assert_eq!(hits[0].layer, Some(Layer::Workspace));
        assert_eq!(hits[0].calls, ["vault__read", "crm__lookup"]);
        assert!(
            check(
                &l,
                false,
                PolicyMode::Enforce,
                &rules,
                &state,
                "vault__read"
            )
            .is_empty()
        );
    }

    #[test]
    fn a_rule_with_an_undefined_label_never_fires() {
        let l = labels(&[("egress", &["fetch__*"])]);
        let rules = [FlowRule {
            id: "r".into(),
            layer: Layer::User,
            line: 1,
            after: vec!["nope".into()],
            deny: vec!["egress".into()],
            mode: PolicyMode::Enforce,
        }];
        let mut state = FlowState::new();
        state.record(&l, "fetch__x");
        assert!(check(&l, true, PolicyMode::Enforce, &rules, &state, "fetch__x").is_empty());
    }

    #[test]
    fn history_survives_a_reload_with_other_labels() {
        let before = trifecta_labels();
        let mut state = FlowState::new();
        state.record(&before, "fs__read_file");
        state.record(&before, "fetch__fetch");
        // Same names, another order of definition: still recognised.
        let after = labels(&[
            ("aaa", &["x__*"]),
            ("egress", &["fetch__*"]),
            ("private", &["fs__*"]),
            ("untrusted", &["fetch__*"]),
        ]);
        assert_eq!(check_trifecta(&after, &state, "fetch__fetch").len(), 1);
        assert_eq!(state.calls(), 2);
    }

    #[test]
    fn a_resource_label_holds_for_every_spelling_of_the_uri() {
        let glob = Glob::new("file:///secret/**").unwrap_or_else(|e| panic!("{e}"));
        let l = Labels::new(vec![(Layer::User, "private".into(), Kind::Resource, glob)])
            .unwrap_or_else(|e| panic!("{e}"));
        for uri in [
            "file:///secret/a",
            "file://LOCALHOST/secret/a",
            "FILE:/secret/./a",
        ] {
            assert_eq!(
                l.named(l.of_item(Kind::Resource, uri)),
                ["private"],
                "{uri}"
            );
        }
        // A tool of that spelling has no resource label.
        assert!(l.named(l.of("file:///secret/a")).is_empty());
    }

    #[test]
    fn too_many_labels_is_an_error() {
        let entries: Vec<_> = (0..=MAX_LABELS)
            .map(|i| {
                let glob = Glob::new("x").unwrap_or_else(|e| panic!("{e}"));
                (Layer::User, format!("l{i:03}"), Kind::Tool, glob)
            })
            .collect();
        assert!(Labels::new(entries).is_err());
    }
}
