//! The filter seam: every message, both directions, passes one [`Chain`] of stages
//! that can pass it, rewrite it or stop it.
//!
//! This is the filter column of the pipeline (see [`crate::stages`]): the stages here
//! see the message's typed [`View`] and its bytes and return the pipeline's one
//! [`Verdict`]; they may rewrite it, which the hold and decide stages never do. They are
//! pure decisions; they never do I/O. The session turns a [`Verdict::Stop`] into the
//! answer the SPEC prescribes for that kind of message (a blocked tool result, a -32003
//! error, or a dropped notification) in one place.

pub mod injection;
pub mod input;
pub mod output;
pub mod secrets;

use bytes::Bytes;

use crate::jsonrpc::Message;
use crate::stages::{Stop, Verdict, View};

/// Why a message was blocked: the rule and a reason a person can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// A rule id (`pin:changed`, `flow:trifecta`, a policy rule's own id, ...).
    pub rule: String,
    pub reason: String,
}

/// One filter stage.
pub trait Stage: Send {
    /// A short name for logs.
    fn name(&self) -> &'static str;

    /// Decides on one message.
    fn inspect(&mut self, view: &View<'_>, msg: &Message) -> Verdict;

    /// Takes new settings after the configuration changed (most stages have none).
    fn reconfigure(&mut self, _settings: &crate::policy::Settings) {}
}

/// The stages in order. The first block wins; a rewrite is what later stages see.
#[derive(Default)]
pub struct Chain {
    stages: Vec<Box<dyn Stage>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.stages.iter().map(|s| s.name()))
            .finish()
    }
}

impl Chain {
    /// An empty chain: everything passes (the pass-through gateway).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a stage at the end.
    #[must_use]
    pub fn with(mut self, stage: Box<dyn Stage>) -> Self {
        self.stages.push(stage);
        self
    }

    /// Hands every stage the settings of a changed configuration.
    pub fn reconfigure(&mut self, settings: &crate::policy::Settings) {
        for stage in &mut self.stages {
            stage.reconfigure(settings);
        }
    }

    /// Runs every stage over `msg`. The result is `Pass`, `Rewrite` or `Stop`, never
    /// `Mark` or `Ask`: those are the decide stage's, and a filter that returned one
    /// would be misusing them (an ask stops the message: a filter cannot put a question
    /// to the user, and a gateway fails closed; a mark passes).
    pub fn inspect(&mut self, view: &View<'_>, msg: &Message) -> Verdict {
        let mut current: Option<Message> = None;
        let mut rewritten: Option<Bytes> = None;
        for stage in &mut self.stages {
            let seen = current.as_ref().unwrap_or(msg);
            match stage.inspect(view, seen) {
                Verdict::Pass | Verdict::Mark(_) => {}
                Verdict::Stop(stop) => return Verdict::Stop(stop),
                Verdict::Ask(blocked) => {
                    return Verdict::Stop(Stop::deny(Block {
                        rule: blocked.rule,
                        reason: blocked.reason,
                    }));
                }
                Verdict::Rewrite(line) => {
                    match crate::jsonrpc::message::reparse(&line) {
                        Some(m) => current = Some(m),
                        None => {
                            return Verdict::Stop(Stop::deny(Block {
                                rule: format!("internal:{}", stage.name()),
                                reason: "a filter produced an invalid message".into(),
                            }));
                        }
                    }
                    rewritten = Some(line);
                }
            }
        }
        rewritten.map_or(Verdict::Pass, Verdict::Rewrite)
    }
}

/// `map` with every key passed through `rename` (a redaction, a strip), in the same
/// order. A renamed key that collides with one already kept gets ` #2`, ` #3`, ... so
/// no value is lost and no key keeps what `rename` took out.
pub(crate) fn rename_keys(
    map: serde_json::Map<String, serde_json::Value>,
    rename: impl Fn(&str) -> std::borrow::Cow<'_, str>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::with_capacity(map.len());
    for (key, value) in map {
        let base = rename(&key).into_owned();
        let mut key = base.clone();
        let mut n = 2_usize;
        while out.contains_key(&key) {
            key = format!("{base} #{n}");
            n += 1;
        }
        out.insert(key, value);
    }
    out
}

/// The one check of a rule table against its own examples, for the secrets and the
/// injection tables' tests.
#[cfg(test)]
pub(crate) mod rule_table {
    use std::ops::Range;

    /// What is wrong with a table: each rule's examples must fire that rule, and no
    /// counter-example (the rule's own, or one of `shared`) may fire anything. `rules`
    /// is `(id, examples, counter-examples)`; `find` gives each hit's rule and range.
    pub(crate) fn failures<'a>(
        rules: impl IntoIterator<Item = (&'static str, &'a [&'a str], &'a [&'a str])>,
        shared: &[&str],
        find: impl Fn(&str) -> Vec<(&'static str, Range<usize>)>,
    ) -> Vec<String> {
        let hits = |text: &str| -> Vec<(&'static str, String)> {
            find(text)
                .into_iter()
                .map(|(rule, range)| (rule, text.get(range).unwrap_or_default().to_owned()))
                .collect()
        };
        let mut failures = Vec::new();
        for (id, examples, counter_examples) in rules {
            for example in examples {
                let found = hits(example);
                if !found.iter().any(|(rule, _)| *rule == id) {
                    failures.push(format!("{id}: missed {example:?} (found {found:?})"));
                }
            }
            for counter in counter_examples {
                let found = hits(counter);
                if !found.is_empty() {
                    failures.push(format!("{id}: counter-example {counter:?} fired {found:?}"));
                }
            }
        }
        for counter in shared {
            let found = hits(counter);
            if !found.is_empty() {
                failures.push(format!(
                    "shared counter-example {counter:?} fired {found:?}"
                ));
            }
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::message::{Parsed, parse};

    struct Deny;
    impl Stage for Deny {
        fn name(&self) -> &'static str {
            "deny"
        }
        fn inspect(&mut self, _: &View<'_>, _: &Message) -> Verdict {
            Verdict::Stop(Stop::deny(Block {
                rule: "test".into(),
                reason: "no".into(),
            }))
        }
    }

    struct Tag;
    impl Stage for Tag {
        fn name(&self) -> &'static str {
            "tag"
        }
        fn inspect(&mut self, _: &View<'_>, m: &Message) -> Verdict {
            Verdict::Rewrite(m.rewrite(Some("\"tagged\""), &[]))
        }
    }

    fn msg() -> Message {
        match parse(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        )) {
            Ok(Parsed::Single(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    const CTX: View<'static> = View {
        direction: crate::stages::Direction::ToUpstream,
        kind: crate::stages::MessageKind::Control,
        server: None,
        name: None,
        request_method: None,
    };

    /// A filter misusing decide's verdicts: it asks, or marks.
    struct Misused(Verdict);
    impl Stage for Misused {
        fn name(&self) -> &'static str {
            "misused"
        }
        fn inspect(&mut self, _: &View<'_>, _: &Message) -> Verdict {
            self.0.clone()
        }
    }

    #[test]
    fn a_filters_ask_stops_and_its_mark_passes() {
        let blocked = crate::policy::Blocked {
            rule: "asked".into(),
            layer: None,
            action: crate::policy::Action::Ask,
            reason: "why".into(),
            calls: Vec::new(),
        };
        let mut chain = Chain::new().with(Box::new(Misused(Verdict::Ask(blocked))));
        assert_eq!(
            chain.inspect(&CTX, &msg()),
            Verdict::Stop(Stop::deny(Block {
                rule: "asked".into(),
                reason: "why".into(),
            }))
        );
        let mut chain = Chain::new().with(Box::new(Misused(Verdict::Mark("m".into()))));
        assert_eq!(chain.inspect(&CTX, &msg()), Verdict::Pass);
    }

    #[test]
    fn empty_chain_allows() {
        assert_eq!(Chain::new().inspect(&CTX, &msg()), Verdict::Pass);
    }

    #[test]
    fn first_block_wins_and_rewrites_carry_forward() {
        let mut chain = Chain::new().with(Box::new(Tag)).with(Box::new(Deny));
        assert!(matches!(chain.inspect(&CTX, &msg()), Verdict::Stop(s) if s.block.rule == "test"));
        let mut chain = Chain::new().with(Box::new(Tag));
        let Verdict::Rewrite(line) = chain.inspect(&CTX, &msg()) else {
            panic!("rewrite expected")
        };
        assert_eq!(
            &line[..],
            &b"{\"jsonrpc\":\"2.0\",\"id\":\"tagged\",\"method\":\"ping\"}\n"[..]
        );
    }
}
