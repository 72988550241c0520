//! mcp-warden's own questions put to a modern client (docs/dual-era.md §2.2 "Our own
//! round trips", issue 15 item 4): a policy `ask` and the in-client review of a held
//! item become `input_required` with one `elicitation/create` of ours (`mw-ask`,
//! `mw-review`) and an envelope of kind `ask` or `review`; the retry carries the
//! user's answer.

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::Value;

use super::{CAPABILITIES_KEY, ask_binding, client_is_modern, now_ms, random};
use crate::era::mrtr::{self, Entry};
use crate::era::state::{self, Draft, StateError, StateKind};
use crate::jsonrpc::{ErrorCode, Message};
use crate::policy::Blocked;
use crate::session::{Session, reparse};
use crate::stages::{View, decide};

/// The key of mcp-warden's own question in an `input_required` it answers with.
const ASK_KEY: &str = "mw-ask";
/// The key of mcp-warden's review of a held item, likewise.
const REVIEW_KEY: &str = "mw-review";
/// Most `ask`s outstanding with modern clients; past it the oldest is forgotten (its
/// retry is then refused as replayed).
const MAX_ASKS: usize = state::MAX_STATES;

/// What the decide stage makes of a request that may answer an `ask` of ours.
#[derive(Debug)]
pub(in crate::session) enum AskAnswer {
    /// No answer to an `ask` of ours here.
    NotAnAsk,
    /// The user allowed it once past this rule.
    Allowed(String),
    /// Answered already: declined, or its envelope refused.
    Answered,
}

// ----- our own `ask` with modern clients (issue 15 item 4) ---------------------------

impl Session {
    /// A policy `ask` for a modern client: the call is answered `input_required` with
    /// one elicitation keyed `mw-ask` and an envelope of kind `ask`; `false` when the
    /// request does not declare `elicitation` (then it is denied, as for a legacy
    /// client without it).
    pub(in crate::session) fn ask_modern(
        &mut self,
        msg: &Message,
        origin: &crate::session::Origin,
        params: &Value,
        blocked: &Blocked,
    ) -> bool {
        let offers = msg
            .param(&["_meta", CAPABILITIES_KEY, "elicitation"])
            .is_some();
        let method = msg.method().unwrap_or_default();
        if !offers || !mrtr::supports_input_required(method) {
            return false;
        }
        self.mrtr.next_round += 1;
        let handle = self.mrtr.next_round;
        while self.mrtr.asks.len() >= MAX_ASKS {
            self.mrtr.asks.pop_first();
        }
        self.mrtr.asks.insert(handle, blocked.clone());
        self.put_own_question(msg, origin, ASK_KEY, StateKind::Ask, handle, params);
        true
    }

    /// Answers `msg` with `input_required`: one `elicitation/create` of mcp-warden's
    /// own (`params`) under `key`, and an envelope of `kind` bound to the request as
    /// the client sent it, pointing at the session's record `handle`.
    fn put_own_question(
        &mut self,
        msg: &Message,
        origin: &crate::session::Origin,
        key: &str,
        kind: StateKind,
        handle: u64,
        params: &Value,
    ) {
        let method = msg.method().unwrap_or_default();
        let draft = Draft {
            kind,
            binding: ask_binding(msg, method),
            issued: vec![key.to_owned()],
            ours: Vec::new(),
            server_state: None,
            handle: Some(handle),
        };
        let envelope = self.mrtr.store.issue(draft, random(), now_ms());
        let entry = Entry::value_of("elicitation/create", Some(&params.to_string()));
        let result = mrtr::object_of([
            Cow::Owned(mrtr::member("resultType", "\"input_required\"")),
            Cow::Owned(mrtr::member(
                "inputRequests",
                &mrtr::object_of([Cow::Owned(mrtr::member(key, &entry))]),
            )),
            Cow::Owned(mrtr::member(
                "requestState",
                &serde_json::to_string(&envelope).unwrap_or_default(),
            )),
        ]);
        self.reply_result(origin, &result);
    }

    /// `[pinning] ask` for a modern client: the review is put as `input_required`
    /// keyed `mw-review` (envelope kind `review`); `false` when the request does not
    /// declare `elicitation` (the call is then held, as for a client without it).
    pub(in crate::session) fn review_modern(
        &mut self,
        msg: &Message,
        origin: &crate::session::Origin,
        params: &Value,
        review: Box<crate::session::pins::PinReview>,
    ) -> bool {
        let offers = msg
            .param(&["_meta", CAPABILITIES_KEY, "elicitation"])
            .is_some();
        if !offers {
            return false;
        }
        self.mrtr.next_round += 1;
        let handle = self.mrtr.next_round;
        while self.mrtr.reviews.len() >= MAX_ASKS {
            self.mrtr.reviews.pop_first();
        }
        self.mrtr.reviews.insert(handle, review);
        self.put_own_question(msg, origin, REVIEW_KEY, StateKind::Review, handle, params);
        true
    }

    /// A modern request that answers a review of ours (`true`: handled here): its
    /// envelope used up, then pinned and sent on, or declined, as the legacy review
    /// does (`on_pin_review`), for this request.
    pub(in crate::session) fn review_answer(
        &mut self,
        msg: &Message,
        origin: &crate::session::Origin,
    ) -> bool {
        if !client_is_modern(msg) {
            return false;
        }
        let Some(text) = msg
            .param(&["requestState"])
            .and_then(|(raw, _)| serde_json::from_str::<String>(raw).ok())
        else {
            return false;
        };
        if self.mrtr.store.kind_of(&text) != Some(StateKind::Review) {
            return false;
        }
        let method = msg.method().unwrap_or_default();
        let redeemed = self
            .mrtr
            .store
            .redeem(&text, now_ms(), &ask_binding(msg, method))
            .and_then(|p| {
                p.h.and_then(|h| self.mrtr.reviews.remove(&h))
                    .ok_or(StateError::Replayed)
            });
        let mut review = match redeemed {
            Ok(review) => review,
            Err(refusal) => {
                self.refuse_state(None, msg, origin, None, refusal);
                return true;
            }
        };
        let answer = msg
            .param(&["inputResponses", REVIEW_KEY])
            .map_or("{}", |(raw, _)| raw);
        let answer = Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":0,"result":{answer}}}"#) + "\n");
        // The call goes on as its first try: our question and its answer stay here.
        let first_try = msg.params().and_then(|p| {
            let params = mrtr::first_try_params(Some(p)).ok()?;
            reparse(&msg.rewrite(None, &[(msg.params_span()?, &params)]))
        });
        let (Some(answer), Some(first_try)) = (reparse(&answer), first_try) else {
            self.reply_error(
                origin,
                ErrorCode::InvalidParams,
                "an unreadable review answer",
            );
            return true;
        };
        review.retarget(first_try, origin.clone());
        self.on_pin_review(&answer, *review);
        true
    }

    /// A modern request that answers an `ask` of ours: allowed once, declined, or its
    /// envelope refused. The envelope is used up where the request goes on
    /// (`open_retry`), or here when the answer ends the request.
    pub(in crate::session) fn ask_answer(
        &mut self,
        msg: &Message,
        origin: &crate::session::Origin,
        view: &View<'_>,
    ) -> AskAnswer {
        if !client_is_modern(msg) {
            return AskAnswer::NotAnAsk;
        }
        let Some(text) = msg
            .param(&["requestState"])
            .and_then(|(raw, _)| serde_json::from_str::<String>(raw).ok())
        else {
            return AskAnswer::NotAnAsk;
        };
        if self.mrtr.store.kind_of(&text) != Some(StateKind::Ask) {
            return AskAnswer::NotAnAsk;
        }
        let method = msg.method().unwrap_or_default();
        let binding = ask_binding(msg, method);
        let server = view.server.map(|s| s.as_str().to_owned());
        let checked = self.mrtr.store.check(&text, now_ms(), &binding);
        let asked = match checked {
            Ok(payload) => payload
                .h
                .and_then(|h| Some((h, self.mrtr.asks.get(&h)?.clone())))
                .ok_or(StateError::Replayed),
            Err(e) => Err(e),
        };
        let (handle, blocked) = match asked {
            Ok(asked) => asked,
            Err(refusal) => {
                self.refuse_state(server.as_deref(), msg, origin, view.name, refusal);
                return AskAnswer::Answered;
            }
        };
        let allowed = msg
            .param(&["inputResponses", ASK_KEY])
            .and_then(|(raw, _)| serde_json::from_str::<Value>(raw).ok())
            .is_some_and(|a| a["action"] == "accept" && a["content"]["allow"] == Value::Bool(true));
        if allowed {
            tracing::info!(item = view.name, rule = %blocked.rule, "the user allowed a call once");
            return AskAnswer::Allowed(blocked.rule);
        }
        let _ = self.mrtr.store.redeem(&text, now_ms(), &binding);
        self.mrtr.asks.remove(&handle);
        let stop = decide::stop(&blocked, Some("declined by the user"));
        self.stop_request(view, msg, origin, &stop);
        AskAnswer::Answered
    }
}
