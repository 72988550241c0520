//! The filter seam: every message, both directions, passes one [`Chain`] of stages
//! that can allow it, rewrite it or block it.
//!
//! Stages are pure decisions over a message and its context; they never do I/O. The
//! session turns a [`Verdict::Block`] into the answer the SPEC prescribes for that kind
//! of message (a blocked tool result, a -32003 error, or a dropped notification), so
//! pinning, policy and audit plug in here as stages rather than as patches in the
//! router.

pub mod injection;
pub mod output;
pub mod secrets;

use bytes::Bytes;

use crate::config::ServerName;
use crate::jsonrpc::Message;

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client towards an upstream.
    ToUpstream,
    /// From an upstream (or mcp-warden itself) towards the client.
    ToClient,
}

/// What a stage knows about a message besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub direction: Direction,
    /// The upstream the message comes from or goes to; `None` for messages mcp-warden
    /// answers itself.
    pub server: Option<&'a ServerName>,
    /// For `tools/call` and its result: the exposed tool name.
    pub tool: Option<&'a str>,
    /// For a response: the method of the request it answers.
    pub request_method: Option<&'a str>,
}

/// Why a message was blocked: the rule and a reason a person can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// A rule id (`pin:changed`, `flow:trifecta`, a policy rule's own id, ...).
    pub rule: String,
    pub reason: String,
}

/// A stage's decision on one message.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Let it through unchanged.
    Allow,
    /// Let it through as this line instead (a complete JSON-RPC line with `\n`).
    Rewrite(Bytes),
    /// Stop it.
    Block(Block),
}

/// One filter stage.
pub trait Stage: Send {
    /// A short name for logs.
    fn name(&self) -> &'static str;

    /// Decides on one message.
    fn inspect(&mut self, ctx: &Context<'_>, msg: &Message) -> Verdict;

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

    /// Runs every stage over `msg`.
    pub fn inspect(&mut self, ctx: &Context<'_>, msg: &Message) -> Verdict {
        let mut current: Option<Message> = None;
        let mut rewritten: Option<Bytes> = None;
        for stage in &mut self.stages {
            let seen = current.as_ref().unwrap_or(msg);
            match stage.inspect(ctx, seen) {
                Verdict::Allow => {}
                Verdict::Block(block) => return Verdict::Block(block),
                Verdict::Rewrite(line) => {
                    let body = line.slice(..line.len().saturating_sub(1));
                    match crate::jsonrpc::message::parse(body) {
                        Ok(crate::jsonrpc::message::Parsed::Single(m)) => current = Some(m),
                        _ => {
                            return Verdict::Block(Block {
                                rule: format!("internal:{}", stage.name()),
                                reason: "a filter produced an invalid message".into(),
                            });
                        }
                    }
                    rewritten = Some(line);
                }
            }
        }
        rewritten.map_or(Verdict::Allow, Verdict::Rewrite)
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
        fn inspect(&mut self, _: &Context<'_>, _: &Message) -> Verdict {
            Verdict::Block(Block {
                rule: "test".into(),
                reason: "no".into(),
            })
        }
    }

    struct Tag;
    impl Stage for Tag {
        fn name(&self) -> &'static str {
            "tag"
        }
        fn inspect(&mut self, _: &Context<'_>, m: &Message) -> Verdict {
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

    const CTX: Context<'static> = Context {
        direction: Direction::ToUpstream,
        server: None,
        tool: None,
        request_method: None,
    };

    #[test]
    fn empty_chain_allows() {
        assert!(matches!(Chain::new().inspect(&CTX, &msg()), Verdict::Allow));
    }

    #[test]
    fn first_block_wins_and_rewrites_carry_forward() {
        let mut chain = Chain::new().with(Box::new(Tag)).with(Box::new(Deny));
        assert!(matches!(chain.inspect(&CTX, &msg()), Verdict::Block(b) if b.rule == "test"));
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
