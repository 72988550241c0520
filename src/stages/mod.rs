//! The stages every message passes, in the order it passes them (SPEC "Decisions on
//! the wire", `shared/PIPELINE.md`):
//!
//! 1. **classify** ([`view`]): what the message is, once, into a typed [`View`];
//! 2. **hold** ([`hold`]): a call to an item pinning holds is stopped;
//! 3. **decide** ([`decide`]): the policy's rules of every layer, flows, `[limits]`,
//!    `ask` and `monitor`;
//! 4. **filter** ([`crate::filter`]): arguments on the way in; secrets, injection and
//!    hidden text on the way out;
//! 5. **audit** ([`audit`]): one record per decision.
//!
//! Each stage is a function over the view (and the state it reads: the pins, the
//! policy and flow history) that returns a verdict; none does I/O or reaches into the
//! session. The session is the wiring: it routes, runs the stages, and turns a
//! [`Stop`] into the client's answer and its audit record in one place
//! (`Session::answer_stopped`). The order holds for every request kind: decide runs
//! before the in-filter for calls and gets as for reads.

pub mod audit;
pub mod decide;
pub mod hold;
pub mod limits;
pub mod view;

pub use view::{Direction, MessageKind, View};

use bytes::Bytes;

use crate::audit::Decision;
use crate::filter::Block;

/// A message a stage stopped: the decision the audit records (`deny` or `hold`) and
/// the rule and reason the client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub decision: Decision,
    pub block: Block,
}

impl Stop {
    /// Stopped by a rule.
    #[must_use]
    pub fn deny(block: Block) -> Self {
        Self {
            decision: Decision::Deny,
            block,
        }
    }

    /// Held by pinning.
    #[must_use]
    pub fn hold(block: Block) -> Self {
        Self {
            decision: Decision::Hold,
            block,
        }
    }

    /// Whether the answer to a stopped message of `kind` is a blocked tool result
    /// (`isError`, SPEC "Decisions on the wire") rather than a -32003 error.
    #[must_use]
    pub fn answers_with_result(kind: MessageKind, request_method: Option<&str>) -> bool {
        kind == MessageKind::Call
            || (matches!(kind, MessageKind::Result | MessageKind::Error)
                && request_method == Some("tools/call"))
    }
}

/// What a stage says about one message: the one verdict type of every stage (hold,
/// decide, the filters of [`crate::filter`]). Hold and decide never rewrite; the filters
/// never mark or ask, so where only a filter spoke, `Mark` and `Ask` cannot occur and a
/// caller treats everything but `Rewrite` and `Stop` as `Pass`.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The stage does not apply, or found nothing: on to the next stage untouched.
    Pass,
    /// A filter let it through as this line instead (a complete JSON-RPC line with `\n`).
    Rewrite(Bytes),
    /// Monitor mode: it goes through, and its answer is marked with this rule.
    Mark(String),
    /// The policy says `ask`: the user decides (else it is stopped as this says).
    Ask(crate::policy::Blocked),
    /// Stopped.
    Stop(Stop),
}

#[cfg(test)]
pub(crate) mod testing {
    //! Messages for the stages' tables.

    use crate::jsonrpc::Message;
    use crate::jsonrpc::message::{Parsed, parse};

    /// One message from its JSON text.
    pub fn message(text: &str) -> Message {
        match parse(bytes::Bytes::copy_from_slice(text.as_bytes())) {
            Ok(Parsed::Single(m)) => m,
            other => panic!("not one message: {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests;
