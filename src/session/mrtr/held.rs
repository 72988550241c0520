//! A legacy server's question during a modern client's call (docs/dual-era.md §2.2a,
//! §2.6): the server's `elicitation/create` or `sampling/createMessage` becomes an
//! `input_required` answer to the client's call, while the server's call is *held*
//! open ([`Pending::Held`]); the retry delivers the answers and takes the call over.

use std::borrow::Cow;

use bytes::Bytes;

use super::{now_ms, random};
use crate::audit::Direction as AuditDirection;
use crate::era::mrtr::{self, Entry};
use crate::era::state::{self, Draft, Payload, StateKind};
use crate::filter::Block;
use crate::jsonrpc::{ErrorCode, Id, Message};
use crate::session::audit::Subject;
use crate::session::{ClientCall, Pending, Session, Timer, reparse, wire};
use crate::upstream::InstanceId;

/// Held calls at once per session (§2.2a-8): each keeps a legacy server's call and
/// its questions open; past it a new question is refused to the server.
const MAX_HELD: usize = 64;

/// A legacy server's call held open while a modern client answers its questions.
#[derive(Debug)]
pub(super) struct Held {
    slot: usize,
    instance: InstanceId,
    /// Our id of the call at the server (its `pending` key, [`Pending::Held`]).
    our_id: u64,
    /// The client's call: answered `input_required`; the retry's id takes it over.
    call: Box<ClientCall>,
    /// The questions the client has, in the envelope: key, the server's id, method.
    asked: Vec<(String, Id, String)>,
    /// Questions the server asked after that: the next round's, with their entries.
    queued: Vec<(String, Id, String, String)>,
    /// The server's answer to the call, when it came before the retry.
    answer: Option<Message>,
    /// When the envelope lapses (Unix ms): the call is then cancelled.
    expires_ms: u64,
    next_key: u64,
}

// ----- a legacy server's question during a modern client's call (§2.2a) --------------

impl Session {
    /// A legacy server's `sampling/createMessage` or `elicitation/create` (allowed by
    /// its table and the gate) during a modern client's call: the call is held and
    /// the client gets `input_required` (`true`: taken here). `false` when the oldest
    /// call of the client's to that server is a legacy one (forwarded as today).
    pub(in crate::session) fn hold_for_modern_client(
        &mut self,
        index: usize,
        msg: &Message,
        id: &Id,
        method: &str,
    ) -> bool {
        self.expire_held();
        let Some((our_id, offered)) = self.question_carrier(index, method) else {
            return false;
        };
        if !offered {
            let text = format!("the client's request does not offer what `{method}` needs");
            self.answer_upstream(index, id, Err((ErrorCode::MethodNotFound, text, None)));
            return true;
        }
        let Some(entry) = self.judge_question(index, msg, id, method) else {
            return true;
        };
        if let Some(Pending::Held(h)) = self.slots[index].pending.get(&our_id)
            && let Some(held) = self.mrtr.held.get_mut(h)
        {
            // The client has this call's questions already: the next round's.
            let key = format!("mw-{}", held.next_key);
            held.next_key += 1;
            held.queued
                .push((key, id.clone(), method.to_owned(), entry));
            return true;
        }
        if self.mrtr.held.len() >= MAX_HELD {
            let text = format!("too many questions pending ({MAX_HELD} calls held)");
            self.answer_upstream(index, id, Err((ErrorCode::Internal, text, None)));
            return true;
        }
        let Some(Pending::Client(mut call)) = self.slots[index].pending.remove(&our_id) else {
            return false;
        };
        let Some(instance) = self.slots[index].upstream.as_ref().map(|u| u.instance) else {
            self.slots[index]
                .pending
                .insert(our_id, Pending::Client(call));
            return false;
        };
        // The client is answered now; the server's call stays open, without its timer
        // (the envelope's expiry bounds it instead).
        self.timers.remove(&call.timer);
        self.inflight.remove(&call.origin.id);
        self.mrtr.next_round += 1;
        let handle = self.mrtr.next_round;
        let key = "mw-1".to_owned();
        let asked = vec![(key.clone(), id.clone(), method.to_owned())];
        let Some(result) = self.held_round(handle, &call, &[(key, entry)]) else {
            return false;
        };
        let origin = call.origin.clone();
        call.progress = None;
        let ttl = u64::try_from(state::STATE_TTL.as_millis()).unwrap_or(u64::MAX);
        self.mrtr.held.insert(
            handle,
            Held {
                slot: index,
                instance,
                our_id,
                call,
                asked,
                queued: Vec::new(),
                answer: None,
                expires_ms: now_ms().saturating_add(ttl),
                next_key: 2,
            },
        );
        self.slots[index]
            .pending
            .insert(our_id, Pending::Held(handle));
        self.reply_result(&origin, &result);
        true
    }

    /// A legacy server's question (allowed by its table and the gate) as the
    /// `inputRequests` entry a modern client is shown: through the out-filter, its
    /// decision audited. `None`: the filter stopped it, and the server was answered.
    pub(in crate::session) fn judge_question(
        &mut self,
        index: usize,
        msg: &Message,
        id: &Id,
        method: &str,
    ) -> Option<String> {
        let (params, (decision, rule)) = match self.filter_question(index, msg) {
            Ok(filtered) => filtered,
            Err(block) => {
                self.refuse_upstream_request(index, id, method, &block.rule, block.reason);
                return None;
            }
        };
        let server = self.slots[index].config.name.clone();
        let subject = Subject {
            server: Some(server.as_str()),
            method,
            ..Subject::default()
        };
        let block = rule.map(|rule| Block {
            rule,
            reason: String::new(),
        });
        self.audit_decision(AuditDirection::ToClient, decision, &subject, block.as_ref());
        Some(Entry::value_of(method, params.as_deref()))
    }

    /// The call of a modern client's that a legacy server's question in `index`
    /// belongs to: the oldest call to that server that could carry it (stdio has no
    /// related id), when that one is modern or held; with whether its capabilities
    /// cover `method`.
    pub(super) fn question_carrier(&self, index: usize, method: &str) -> Option<(u64, bool)> {
        let slot = &self.slots[index];
        let (our_id, modern) = slot
            .pending
            .iter()
            .filter_map(|(ours, p)| match p {
                Pending::Client(c) => c.mrtr.as_ref().map(|m| (*ours, m.modern.is_some())),
                Pending::Held(_) => Some((*ours, true)),
                _ => None,
            })
            .min_by_key(|(ours, _)| *ours)?;
        if !modern {
            return None;
        }
        let capability = if method == "sampling/createMessage" {
            "sampling"
        } else {
            "elicitation"
        };
        let covers = |call: &ClientCall| {
            call.mrtr
                .as_ref()
                .and_then(|m| m.modern.as_ref())
                .is_some_and(|(_, caps)| caps.get(capability).is_some())
        };
        let offered = match slot.pending.get(&our_id) {
            Some(Pending::Client(call)) => covers(call),
            Some(Pending::Held(h)) => self.mrtr.held.get(h).is_some_and(|held| covers(&held.call)),
            _ => false,
        };
        Some((our_id, offered))
    }

    /// The `input_required` result of one round of a held call: `entries` (key,
    /// entry value) and an envelope of kind `held`.
    pub(super) fn held_round(
        &mut self,
        handle: u64,
        call: &ClientCall,
        entries: &[(String, String)],
    ) -> Option<String> {
        let (binding, _) = call.mrtr.as_ref()?.modern.clone()?;
        let draft = Draft {
            kind: StateKind::Held,
            binding,
            issued: entries.iter().map(|(k, _)| k.clone()).collect(),
            ours: Vec::new(),
            server_state: None,
            handle: Some(handle),
        };
        let envelope = self.mrtr.store.issue(draft, random(), now_ms());
        let requests = mrtr::object_of(entries.iter().map(|(k, v)| Cow::Owned(mrtr::member(k, v))));
        Some(mrtr::object_of([
            Cow::Owned(mrtr::member("resultType", "\"input_required\"")),
            Cow::Owned(mrtr::member("inputRequests", &requests)),
            Cow::Owned(mrtr::member(
                "requestState",
                &serde_json::to_string(&envelope).unwrap_or_default(),
            )),
        ]))
    }

    /// The server answered a held call before the retry: kept for the retry.
    pub(in crate::session) fn on_held_answer(&mut self, msg: &Message, handle: u64) {
        if let Some(held) = self.mrtr.held.get_mut(&handle) {
            held.answer = Some(msg.clone());
        }
    }

    /// The retry of a held call (its envelope redeemed): the answers go to the
    /// server's questions, and the retry's id takes the call over.
    pub(super) fn resume_held(
        &mut self,
        index: usize,
        msg: &Message,
        origin: &crate::session::Origin,
        payload: &Payload,
    ) {
        let Some(mut held) = payload.h.and_then(|h| self.mrtr.held.remove(&h)) else {
            return self.reply_error(origin, ErrorCode::Internal, "the held call is gone");
        };
        let handle = payload.h.unwrap_or_default();
        let current = self.slots[index].upstream.as_ref().map(|u| u.instance);
        if held.slot != index || current != Some(held.instance) {
            let name = self.slots[index].config.name.clone();
            let text = format!("server `{name}` is unavailable: it restarted during the call");
            return self.reply_error(origin, ErrorCode::Unavailable, &text);
        }
        let given = msg
            .param(&["inputResponses"])
            .and_then(|(raw, _)| mrtr::members(raw))
            .unwrap_or_default();
        for (key, upstream_id, method) in std::mem::take(&mut held.asked) {
            let answer = given
                .iter()
                .find(|m| m.key == key.as_str())
                .map(|m| m.value.to_owned());
            let Some(answer) = answer else {
                let text = "the client gave no answer".to_owned();
                self.answer_upstream(index, &upstream_id, Err((ErrorCode::Internal, text, None)));
                continue;
            };
            let line =
                Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":0,"result":{answer}}}"#) + "\n");
            if let Some(as_answer) = reparse(&line) {
                self.flag_secret_in_answer(index, &as_answer, &method);
            }
            self.answer_upstream(index, &upstream_id, Ok(answer));
        }
        held.call.origin = origin.clone();
        held.call.progress = crate::router::progress_token(msg).map(|(_, token)| token);
        if !held.queued.is_empty() {
            // The server asked more meanwhile: the next round, on the retry's id.
            let queued = std::mem::take(&mut held.queued);
            let entries: Vec<(String, String)> = queued
                .iter()
                .map(|(k, _, _, e)| (k.clone(), e.clone()))
                .collect();
            held.asked = queued.into_iter().map(|(k, id, m, _)| (k, id, m)).collect();
            let Some(result) = self.held_round(handle, &held.call, &entries) else {
                return self.reply_error(origin, ErrorCode::Internal, "could not ask again");
            };
            self.mrtr.held.insert(handle, held);
            return self.reply_result(origin, &result);
        }
        let Held {
            instance,
            our_id,
            mut call,
            answer,
            ..
        } = held;
        let timeout = self.slots[index].config.request_timeout;
        call.timer = self.timers.insert(
            Timer::Request {
                slot: index,
                instance,
                id: our_id,
            },
            timeout,
        );
        if let Some(answer) = answer {
            // The server finished before the retry came.
            self.slots[index].pending.remove(&our_id);
            return self.on_client_answer(index, &answer, *call);
        }
        self.inflight.insert(origin.id.clone(), (index, our_id));
        self.slots[index]
            .pending
            .insert(our_id, Pending::Client(call));
    }

    /// The client cancelled the request a held call was last answered on (§2.6): the
    /// call is cancelled at the server and its questions answered -32603; a retry
    /// then finds nothing to take over. An id in flight again is another request.
    pub(super) fn cancel_held(&mut self, client_id: &Id) -> bool {
        if self.inflight.contains_key(client_id) {
            return false;
        }
        let found = self
            .mrtr
            .held
            .iter()
            .find_map(|(h, held)| (held.call.origin.id == *client_id).then_some(*h));
        let Some(held) = found.and_then(|h| self.mrtr.held.remove(&h)) else {
            return false;
        };
        self.end_held(&held, "the client cancelled the call");
        true
    }

    /// Ends a held call at the server: its open questions answered -32603, the call
    /// cancelled (`notifications/cancelled` with our id).
    pub(super) fn end_held(&mut self, held: &Held, why: &str) {
        let index = held.slot;
        let current = self
            .slots
            .get(index)
            .and_then(|s| s.upstream.as_ref())
            .map(|u| u.instance);
        if current != Some(held.instance) {
            return;
        }
        self.slots[index].pending.remove(&held.our_id);
        let questions = held
            .asked
            .iter()
            .map(|(_, id, _)| id)
            .chain(held.queued.iter().map(|(_, id, _, _)| id));
        for id in questions {
            self.answer_upstream(index, id, Err((ErrorCode::Internal, why.to_owned(), None)));
        }
        let cancel = wire::notification(
            "notifications/cancelled",
            Some(serde_json::json!({"requestId": held.our_id, "reason": why})),
        );
        self.send_upstream_raw(index, cancel);
    }

    /// Held calls whose envelope lapsed with no retry: cancelled at the server, their
    /// open questions answered -32603 (§2.2a-8).
    pub(super) fn expire_held(&mut self) {
        let now = now_ms();
        let lapsed: Vec<u64> = self
            .mrtr
            .held
            .iter()
            .filter_map(|(h, held)| (held.expires_ms <= now).then_some(*h))
            .collect();
        for handle in lapsed {
            if let Some(held) = self.mrtr.held.remove(&handle) {
                self.end_held(&held, "the client never came back to answer");
            }
        }
    }
}
