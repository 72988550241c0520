//! Multi round-trip requests in the session (docs/dual-era.md §2.2 b and c, §2.6, §3):
//! what happens when a server answers a client's `tools/call`, `prompts/get` or
//! `resources/read` with `resultType: "input_required"`.
//!
//! Every `inputRequests` entry is judged as the server request it stands for, by the
//! same rules as a legacy server's own request (`upstreams.rs` `on_upstream_request`):
//! `roots/list` answered by mcp-warden with the workspace, sampling and elicitation by
//! the server's table, the request gate, the out-filter on the entry. One entry
//! stopped stops the call (an answer on the user's behalf would put words in their
//! mouth), with its audit record. Then:
//! - **legacy client** (§2.2b): the entries become real requests to the client;
//!   when all are answered, mcp-warden retries the server under a fresh id with the
//!   original params, `inputResponses` and the server's `requestState` byte for byte,
//!   for at most [`MAX_ROUNDS`] rounds. The client's id stays in flight throughout;
//!   cancelling it cancels the questions still open.
//! - **modern client** (§2.2c): the result passes with the roots entries removed
//!   (answered at the retry) and the server's `requestState` inside mcp-warden's
//!   envelope ([`crate::era::state`]); the retry's envelope is checked before
//!   anything goes on, and the server gets its own state back byte for byte and only
//!   the answers to the keys that were asked.
//!
//! mcp-warden's own questions are in `own.rs`, a legacy server's questions to a
//! modern client (held calls) in `held.rs`.
//!
//! The upstream's `input_required` is recognised from the result itself (only a modern
//! server sends one), and a client request is modern when it carries the 2026-07-28
//! `_meta` ([`client_is_modern`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::Value;

mod held;
mod own;

pub(super) use own::AskAnswer;

use super::answer::Asker;
use super::audit::Subject;
use super::{ClientCall, Pending, Reverse, Session, SlotState, Timer, reparse, wire};
use crate::audit::{Decision, Direction as AuditDirection};
use crate::era::mrtr::{self, Entry, InputRequired, MAX_ROUNDS};
use crate::era::state::{self, Binding, Draft, Payload, StateError, StateKey, StateKind};
use crate::filter::Block;
use crate::jsonrpc::{ErrorCode, Id, Message, error_response};
use crate::policy::Blocked;
use crate::stages::Verdict as FilterVerdict;
use crate::stages::{Direction, Stop, View, audit};
use crate::upstream::InstanceId;

/// The `_meta` key of a modern request's capabilities.
use crate::era::KEY_CAPABILITIES as CAPABILITIES_KEY;

/// Whether a client request (as the client sent it) is of the modern era. The edge
/// has already classified it with [`crate::era::envelope::classify`] and refused a
/// broken envelope, so the rule here is that function's: the version key is there.
pub(super) fn client_is_modern(msg: &Message) -> bool {
    msg.param(&["_meta", crate::era::KEY_VERSION]).is_some()
}

/// What a call that may get `input_required` carries besides [`ClientCall`].
#[derive(Debug)]
pub(super) struct CallMrtr {
    /// The request as first sent upstream (our id, the server's names, our progress
    /// token): each retry is built from it.
    sent: Bytes,
    /// Retries sent so far (legacy client).
    rounds: u32,
    /// The highest progress passed to the client: each round's retry is a new request
    /// to the server, which may count again from zero, but the client's one token
    /// must only go up (S/basic/patterns/progress.mdx).
    progress: Option<f64>,
    /// Modern client: what its envelopes are bound to, and the capabilities the
    /// request declared. `None` for a legacy client.
    modern: Option<(Binding, Value)>,
}

/// A call whose entries wait for the legacy client's answers.
#[derive(Debug)]
struct Round {
    slot: usize,
    instance: InstanceId,
    call: Box<ClientCall>,
    server_state: Option<String>,
    /// Answers so far: key → result JSON text, in the order they came.
    answers: Vec<(String, String)>,
    /// Our request id → the entry's key and method, for the questions still open.
    waiting: BTreeMap<u64, (String, String)>,
}

/// The session's multi round-trip state.
#[derive(Debug)]
pub(super) struct Mrtr {
    store: state::StateStore,
    rounds: HashMap<u64, Round>,
    next_round: u64,
    /// mcp-warden's own `ask`s put to modern clients, by handle: what was asked about.
    asks: BTreeMap<u64, Blocked>,
    /// mcp-warden's reviews of held items put to modern clients, by handle.
    reviews: BTreeMap<u64, Box<super::pins::PinReview>>,
    /// Legacy servers' calls held open while a modern client answers, by handle.
    held: HashMap<u64, held::Held>,
}

impl Mrtr {
    /// The envelope store under `key` (the per-install one from `serve`), or under a
    /// key drawn for this process when there is none (library tests, an unreadable
    /// key file): envelopes never outlive the process anyway (boot id).
    pub(super) fn new(key: Option<StateKey>) -> Self {
        let key = key.unwrap_or_else(|| StateKey::from_bytes(&random()));
        let boot: [u8; 8] = random();
        Self {
            store: state::StateStore::new(key, boot),
            rounds: HashMap::new(),
            next_round: 0,
            asks: BTreeMap::new(),
            reviews: BTreeMap::new(),
            held: HashMap::new(),
        }
    }
}

/// Random bytes from the kernel. Without `/dev/urandom` the clock and the pid stand in:
/// weaker, but still unique to this process, and the key is then per process too.
fn random<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if crate::audit::key::random_bytes(&mut buf).is_err() {
        use sha2::Digest as _;
        let seed = format!("{:?} {}", SystemTime::now(), std::process::id());
        let hash = sha2::Sha256::digest(seed.as_bytes());
        for (b, h) in buf.iter_mut().zip(hash.iter().cycle()) {
            *b = *h;
        }
    }
    buf
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A question after the out-filter: its params as they go on, and the decision (with
/// the filter's rule) to record.
type Filtered = (Option<String>, (Decision, Option<String>));

/// One entry after judging: answered by mcp-warden (`ours`), or to be asked of the
/// client with these params (the out-filter's, when it rewrote them).
struct Judged {
    key: String,
    method: String,
    params: Option<String>,
    ours: Option<String>,
}

/// A task's `inputRequests` after judging ([`Session::judge_task_input`]).
pub(super) struct TaskInput {
    /// The `inputRequests` object the client is shown (JSON text).
    pub requests: String,
    /// Its keys: the only ones a `tasks/update` may answer.
    pub asked: Vec<String>,
    /// mcp-warden's own answers (`roots/list`), by key (result JSON text).
    pub ours: Vec<(String, String)>,
}

impl Session {
    /// A client request about to go to `index` as `line`: a modern retry rebuilt for
    /// the server (`retry`, its opened envelope), and what its own retries will need.
    /// `None` when the retry could not be rebuilt.
    pub(super) fn mrtr_outgoing(
        &self,
        index: usize,
        msg: &Message,
        method: &str,
        line: Bytes,
        retry: Option<&Payload>,
    ) -> Option<(Bytes, Option<Box<CallMrtr>>)> {
        let line = match retry {
            Some(payload) => self.retry_for_server(&line, payload)?,
            None => line,
        };
        let extra = self.call_mrtr(index, msg, method, &line);
        Some((line, extra))
    }

    /// The multi round-trip part of a call about to be sent upstream as `line`;
    /// `None` for methods that cannot be answered `input_required`.
    fn call_mrtr(
        &self,
        index: usize,
        msg: &Message,
        method: &str,
        line: &Bytes,
    ) -> Option<Box<CallMrtr>> {
        if !mrtr::supports_input_required(method) {
            return None;
        }
        let modern = client_is_modern(msg).then(|| {
            let capabilities = msg
                .param(&["_meta", CAPABILITIES_KEY])
                .and_then(|(raw, _)| serde_json::from_str(raw).ok())
                .unwrap_or(Value::Null);
            (self.binding(index, msg, method), capabilities)
        });
        Some(Box::new(CallMrtr {
            sent: line.clone(),
            rounds: 0,
            progress: None,
            modern,
        }))
    }

    /// Whether a server's progress for our id `token` (a call that may go through
    /// rounds) goes forward; one that does not is dropped (docs/dual-era.md §2.6).
    pub(super) fn progress_goes_forward(
        &mut self,
        index: usize,
        token: &str,
        msg: &Message,
    ) -> bool {
        let ours = token.parse::<u64>().ok();
        let Some(Pending::Client(call)) = ours.and_then(|o| self.slots[index].pending.get_mut(&o))
        else {
            return true;
        };
        let Some(extra) = call.mrtr.as_deref_mut() else {
            return true;
        };
        let Some(value) = msg
            .param(&["progress"])
            .and_then(|(raw, _)| raw.parse::<f64>().ok())
        else {
            return true;
        };
        if extra.progress.is_some_and(|last| value <= last) {
            tracing::debug!(
                value,
                "progress that does not go forward across rounds; dropped"
            );
            return false;
        }
        extra.progress = Some(value);
        true
    }

    /// What an envelope for `msg` (as the client sent it) routed to `index` binds.
    fn binding(&self, index: usize, msg: &Message, method: &str) -> Binding {
        let slot = &self.slots[index];
        Binding {
            method: method.to_owned(),
            // Params that cannot be digested cannot be matched: a digest of nothing.
            digest: state::params_digest(msg.params()).unwrap_or_default(),
            server: Some(slot.config.name.as_str().to_owned()),
            instance: slot.upstream.as_ref().map(|u| u.instance),
        }
    }

    /// An upstream's answer to a client call: an `input_required` one is taken here
    /// (and `None` returned); any other is given back for the usual path.
    pub(super) fn take_input_required(
        &mut self,
        index: usize,
        msg: &Message,
        call: Box<ClientCall>,
    ) -> Option<Box<ClientCall>> {
        // The bytes are searched first: the text (a UTF-8 check) only for the rare
        // answer that is one.
        if call.mrtr.is_none() || !msg.result_bytes().is_some_and(mrtr::is_input_required) {
            return Some(call);
        }
        let Some(result) = msg.result() else {
            return Some(call);
        };
        self.timers.remove(&call.timer);
        let name = self.slots[index].config.name.clone();
        let ir = match mrtr::parse(result) {
            Ok(ir) => ir,
            Err(e) => {
                tracing::warn!(server = %name, error = %e, "an invalid input_required answer");
                let text =
                    format!("server `{name}` answered with an invalid `input_required`: {e}");
                self.end_call(&call, ErrorCode::Internal, &text);
                return None;
            }
        };
        let Some(extra) = call.mrtr.as_deref() else {
            return Some(call);
        };
        let modern = extra.modern.is_some();
        if !modern && extra.rounds >= MAX_ROUNDS {
            let text = format!(
                "server `{name}` asked for input more than {MAX_ROUNDS} times: too many input rounds"
            );
            self.end_call(&call, ErrorCode::Internal, &text);
            return None;
        }
        let capabilities = match &extra.modern {
            Some((_, caps)) => caps.clone(),
            None => self.client.capabilities.clone(),
        };
        let judged = match self.judge_entries(index, &ir.entries, &capabilities) {
            Ok(judged) => judged,
            Err(block) => {
                self.inflight.remove(&call.origin.id);
                self.block_call(index, msg, &call, block);
                return None;
            }
        };
        let server_state = ir.request_state.map(str::to_owned);
        if modern {
            self.pass_to_modern_client(index, call, &ir, &judged);
        } else {
            self.ask_legacy_client(index, call, server_state, judged);
        }
        None
    }

    /// Judges every entry as the server request it stands for; the first one stopped
    /// stops them all. Each entry that goes on to the client is recorded.
    fn judge_entries(
        &mut self,
        index: usize,
        entries: &[Entry<'_>],
        capabilities: &Value,
    ) -> Result<Vec<Judged>, Block> {
        let name = self.slots[index].config.name.clone();
        let (sampling, elicitation) = {
            let config = &self.slots[index].config;
            (config.sampling, config.elicitation)
        };
        let mut judged = Vec::with_capacity(entries.len());
        let mut records = Vec::new();
        for entry in entries {
            let method = entry.method.as_str();
            let (capability, allowed, table) = match method {
                "roots/list" => {
                    let roots = wire::roots_result(self.workspace_root.as_deref());
                    judged.push(Judged {
                        key: entry.key.clone(),
                        method: method.to_owned(),
                        params: None,
                        ours: Some(roots),
                    });
                    continue;
                }
                "sampling/createMessage" => ("sampling", sampling, "sampling = \"deny\""),
                "elicitation/create" => ("elicitation", elicitation, "elicitation = \"deny\""),
                other => {
                    return Err(Block {
                        rule: "input_required".into(),
                        reason: format!(
                            "server `{name}` asked for `{other}`, which mcp-warden does not pass on"
                        ),
                    });
                }
            };
            if !allowed {
                let what = if capability == "sampling" {
                    "may not use sampling"
                } else {
                    "may not ask the user questions"
                };
                return Err(Block {
                    rule: capability.into(),
                    reason: format!("server `{name}` {what} (`{table}`)"),
                });
            }
            if capabilities.get(capability).is_none() {
                return Err(Block {
                    rule: capability.into(),
                    reason: format!("the client does not offer `{capability}`"),
                });
            }
            let pending = self.questions_of(index);
            let gate =
                self.rate
                    .server_requests
                    .admit(index, 1, pending, std::time::Instant::now());
            if let Err(refusal) = gate {
                return Err(Block {
                    rule: refusal.rule.into(),
                    reason: refusal.reason,
                });
            }
            // The out-filter sees the entry as the request it stands for.
            let request = Bytes::from(entry.as_request("0") + "\n");
            let Some(as_msg) = reparse(&request) else {
                return Err(Block {
                    rule: "input_required".into(),
                    reason: format!("entry `{}` is not valid JSON", entry.key),
                });
            };
            let (params, decision) = self.filter_question(index, &as_msg)?;
            records.push((method.to_owned(), decision));
            judged.push(Judged {
                key: entry.key.clone(),
                method: method.to_owned(),
                params,
                ours: None,
            });
        }
        for (method, (decision, rule)) in records {
            let subject = Subject {
                server: Some(name.as_str()),
                method: &method,
                ..Subject::default()
            };
            let block = rule.map(|rule| Block {
                rule,
                reason: String::new(),
            });
            self.audit_decision(AuditDirection::ToClient, decision, &subject, block.as_ref());
        }
        Ok(judged)
    }

    /// The `inputRequests` of a task waiting for input (the tasks extension,
    /// docs/dual-era.md §2.5), judged entry by entry as a call's are: what the client
    /// is shown, or the entry that stops the task.
    pub(super) fn judge_task_input(
        &mut self,
        index: usize,
        entries: &[Entry<'_>],
        capabilities: &Value,
    ) -> Result<TaskInput, Block> {
        let judged = self.judge_entries(index, entries, capabilities)?;
        let asked: Vec<&Judged> = judged.iter().filter(|j| j.ours.is_none()).collect();
        let requests = mrtr::object_of(asked.iter().map(|j| {
            Cow::Owned(mrtr::member(
                &j.key,
                &Entry::value_of(&j.method, j.params.as_deref()),
            ))
        }));
        Ok(TaskInput {
            requests,
            asked: asked.iter().map(|j| j.key.clone()).collect(),
            ours: judged
                .iter()
                .filter_map(|j| Some((j.key.clone(), j.ours.clone()?)))
                .collect(),
        })
    }

    /// The out-filter over a server's question (`request`, a server-to-client
    /// request): its params as they go on (rewritten when the filter flagged or
    /// redacted them) and the decision to record, or why it is stopped.
    fn filter_question(&mut self, index: usize, request: &Message) -> Result<Filtered, Block> {
        let name = self.slots[index].config.name.clone();
        let view = View::of(Direction::ToClient, request).server(&name);
        match self.chain.inspect(&view, request) {
            FilterVerdict::Stop(stop) => Err(stop.block),
            FilterVerdict::Rewrite(line) => {
                let decision = audit::decision_of_rewrite(&line);
                let params = reparse(&line).and_then(|m| m.params().map(str::to_owned));
                Ok((params, decision))
            }
            // The chain never asks (a filter's ask is a stop) and marks pass.
            FilterVerdict::Pass | FilterVerdict::Mark(_) | FilterVerdict::Ask(_) => {
                Ok((request.params().map(str::to_owned), (Decision::Allow, None)))
            }
        }
    }

    /// Questions of the server in `index` still open with the client.
    fn questions_of(&self, index: usize) -> usize {
        let rounds: usize = self
            .mrtr
            .rounds
            .values()
            .filter(|r| r.slot == index)
            .map(|r| r.waiting.len())
            .sum();
        let forwarded = self
            .reverse
            .values()
            .filter(|r| matches!(r, Reverse::Forwarded { slot, .. } if *slot == index))
            .count();
        rounds + forwarded
    }

    /// The call is answered as blocked by `block` (a tool result for `tools/call`,
    /// -32003 otherwise), with its audit record.
    pub(super) fn block_call(
        &mut self,
        index: usize,
        msg: &Message,
        call: &ClientCall,
        block: Block,
    ) {
        let server = self.slots[index].config.name.clone();
        let view = View::of(Direction::ToClient, msg)
            .server(&server)
            .name(call.tool.as_deref())
            .answering(&call.method);
        let subject = Subject {
            server: Some(server.as_str()),
            tool: call.tool.as_deref(),
            method: &call.method,
            arguments: call.arguments.as_deref(),
        };
        self.answer_stopped(
            &view,
            Asker::Client(&call.origin),
            &subject,
            &Stop::deny(block),
        );
    }

    /// Ends a call with an error to the client.
    fn end_call(&mut self, call: &ClientCall, code: ErrorCode, text: &str) {
        self.inflight.remove(&call.origin.id);
        self.reply_error(&call.origin, code, text);
    }

    // ----- legacy client (§2.2b) ----------------------------------------------------

    fn ask_legacy_client(
        &mut self,
        index: usize,
        call: Box<ClientCall>,
        server_state: Option<String>,
        judged: Vec<Judged>,
    ) {
        let Some(instance) = self.slots[index].upstream.as_ref().map(|u| u.instance) else {
            let text = format!("server `{}` is unavailable", self.slots[index].config.name);
            return self.end_call(&call, ErrorCode::Unavailable, &text);
        };
        self.mrtr.next_round += 1;
        let handle = self.mrtr.next_round;
        let mut round = Round {
            slot: index,
            instance,
            call,
            server_state,
            answers: Vec::new(),
            waiting: BTreeMap::new(),
        };
        for j in judged {
            if let Some(ours) = j.ours {
                round.answers.push((j.key, ours));
                continue;
            }
            let id = self.reverse.reserve();
            let line = Entry {
                key: j.key.clone(),
                method: j.method.clone(),
                params: j.params.as_deref(),
            }
            .as_request(&id.to_string());
            self.reverse.insert(id, Reverse::Round { call: handle });
            round.waiting.insert(id, (j.key, j.method));
            self.out.push_back(Bytes::from(line + "\n"));
        }
        // The client's id stays taken while its questions are open (our id 0: none).
        self.inflight
            .insert(round.call.origin.id.clone(), (index, 0));
        if round.waiting.is_empty() {
            return self.retry_round(round);
        }
        self.mrtr.rounds.insert(handle, round);
    }

    /// The client's answer to one question of a round.
    pub(super) fn on_round_answer(&mut self, handle: u64, ours: u64, msg: &Message) {
        let Some(round) = self.mrtr.rounds.get_mut(&handle) else {
            return;
        };
        let Some((key, method)) = round.waiting.remove(&ours) else {
            return;
        };
        let slot = round.slot;
        let Some(result) = msg.result().map(str::to_owned) else {
            // The client could not answer: the call ends with its reason, and nothing
            // goes upstream.
            let round = self.mrtr.rounds.remove(&handle).expect("found above");
            self.cancel_questions(&round);
            let why = msg.error_message().unwrap_or_default();
            let text = format!("the client could not answer `{method}`: {why}");
            return self.end_call(&round.call, ErrorCode::Internal, &text);
        };
        round.answers.push((key, result));
        let done = round.waiting.is_empty();
        self.flag_secret_in_answer(slot, msg, &method);
        if done && let Some(round) = self.mrtr.rounds.remove(&handle) {
            self.retry_round(round);
        }
    }

    /// Sends the retry of a round upstream: a fresh id, the original params with
    /// `inputResponses` and the server's `requestState` byte for byte.
    fn retry_round(&mut self, round: Round) {
        let Round {
            slot: index,
            instance,
            mut call,
            server_state,
            answers,
            ..
        } = round;
        let name = self.slots[index].config.name.clone();
        let slot = &self.slots[index];
        let current = slot.upstream.as_ref().map(|u| u.instance) == Some(instance);
        if !current || !matches!(slot.state, SlotState::Ready { .. }) {
            let text = format!("server `{name}` is unavailable: it restarted during the call");
            return self.end_call(&call, ErrorCode::Unavailable, &text);
        }
        if slot.pending.len() >= super::MAX_IN_FLIGHT {
            let text = format!(
                "server `{name}` is busy: {} requests in flight",
                super::MAX_IN_FLIGHT
            );
            return self.end_call(&call, ErrorCode::Busy, &text);
        }
        let Some(extra) = call.mrtr.as_deref_mut() else {
            return self.end_call(&call, ErrorCode::Internal, "a retry without its request");
        };
        extra.rounds += 1;
        let id = self.slots[index].pending.reserve();
        let Some(line) = retry_line(&extra.sent, id, &answers, server_state.as_deref()) else {
            return self.end_call(&call, ErrorCode::Internal, "could not build the retry");
        };
        self.send_retry(index, instance, id, call, line);
    }

    /// Sends `line` (a retry under our id `id`) and keeps `call` pending for it.
    pub(in crate::session) fn send_retry(
        &mut self,
        index: usize,
        instance: InstanceId,
        id: u64,
        mut call: Box<ClientCall>,
        line: Bytes,
    ) {
        let slot = &mut self.slots[index];
        let timeout = slot.config.request_timeout;
        let sent = slot
            .upstream
            .as_mut()
            .map(|u| u.send(line))
            .is_some_and(|r| r.is_ok());
        if !sent {
            let text = format!("server `{}` is unavailable", slot.config.name);
            return self.end_call(&call, ErrorCode::Unavailable, &text);
        }
        call.timer = self.timers.insert(
            Timer::Request {
                slot: index,
                instance,
                id,
            },
            timeout,
        );
        self.inflight.insert(call.origin.id.clone(), (index, id));
        self.slots[index].pending.insert(id, Pending::Client(call));
    }

    /// Cancels the questions a round still has open with the client (we are their
    /// "server": the client is told with `notifications/cancelled`).
    fn cancel_questions(&mut self, round: &Round) {
        for ours in round.waiting.keys() {
            self.reverse.remove(ours);
            let params =
                serde_json::json!({"requestId": ours, "reason": "the call was cancelled or ended"});
            self.out
                .push_back(wire::notification("notifications/cancelled", Some(params)));
        }
    }

    /// The client cancelled `client_id`: when it is a call waiting on its questions,
    /// they are cancelled and the call ends unanswered (`true`).
    pub(super) fn cancel_round(&mut self, client_id: &Id) -> bool {
        if self.cancel_held(client_id) {
            return true;
        }
        let Some(handle) = self
            .mrtr
            .rounds
            .iter()
            .find_map(|(h, r)| (r.call.origin.id == *client_id).then_some(*h))
        else {
            return false;
        };
        let Some(round) = self.mrtr.rounds.remove(&handle) else {
            return false;
        };
        self.cancel_questions(&round);
        self.inflight.remove(client_id);
        self.reply_none(&round.call.origin);
        true
    }

    // ----- modern client (§2.2c) ----------------------------------------------------

    fn pass_to_modern_client(
        &mut self,
        index: usize,
        call: Box<ClientCall>,
        ir: &InputRequired<'_>,
        judged: &[Judged],
    ) {
        let Some((binding, _)) = call.mrtr.as_ref().and_then(|m| m.modern.clone()) else {
            return;
        };
        let server_state = ir.request_state.map(str::to_owned);
        let ours: Vec<(String, String)> = judged
            .iter()
            .filter_map(|j| Some((j.key.clone(), j.ours.clone()?)))
            .collect();
        let asked: Vec<&Judged> = judged.iter().filter(|j| j.ours.is_none()).collect();
        if asked.is_empty() && !ours.is_empty() {
            // Only roots were asked: mcp-warden answers them and retries itself.
            let Some(instance) = binding.instance else {
                return self.end_call(&call, ErrorCode::Unavailable, "the server is gone");
            };
            return self.retry_round(Round {
                slot: index,
                instance,
                call,
                server_state,
                answers: ours,
                waiting: BTreeMap::new(),
            });
        }
        let draft = Draft {
            kind: StateKind::Pass,
            binding,
            issued: asked.iter().map(|j| j.key.clone()).collect(),
            ours: ours.into_iter().map(|(k, _)| k).collect(),
            server_state,
            handle: None,
        };
        let envelope = self.mrtr.store.issue(draft, random(), now_ms());
        let mut members: Vec<Cow<'_, str>> =
            ir.rest.iter().map(|m| Cow::Borrowed(m.text)).collect();
        if !asked.is_empty() {
            let entries = mrtr::object_of(asked.iter().map(|j| {
                Cow::Owned(mrtr::member(
                    &j.key,
                    &Entry::value_of(&j.method, j.params.as_deref()),
                ))
            }));
            members.push(Cow::Owned(mrtr::member("inputRequests", &entries)));
        }
        let envelope = serde_json::to_string(&envelope).unwrap_or_default();
        members.push(Cow::Owned(mrtr::member("requestState", &envelope)));
        let result = mrtr::object_of(members);
        self.inflight.remove(&call.origin.id);
        let server = self.slots[index].config.name.clone();
        let subject = Subject {
            server: Some(server.as_str()),
            tool: call.tool.as_deref(),
            method: &call.method,
            arguments: call.arguments.as_deref(),
        };
        self.audit_answer(
            &subject,
            (Decision::Allow, None),
            call.started,
            result.len(),
        );
        self.reply_result(&call.origin, &result);
    }

    /// A modern client's retry about to go to `index`: its envelope checked (§3). `Ok`
    /// with the opened envelope (or `None`: not a retry); `Err` when the request was
    /// answered here (refused).
    pub(super) fn open_retry(
        &mut self,
        index: usize,
        msg: &Message,
        origin: &super::Origin,
        method: &str,
        tool: Option<&str>,
    ) -> Result<Option<Payload>, ()> {
        if !mrtr::supports_input_required(method) || !client_is_modern(msg) {
            return Ok(None);
        }
        let state = msg.param(&["requestState"]).map(|(raw, _)| raw);
        let Some(raw) = state else {
            if msg.param(&["inputResponses"]).is_some() {
                self.reply_error(
                    origin,
                    ErrorCode::InvalidParams,
                    "inputResponses without requestState",
                );
                return Err(());
            }
            return Ok(None);
        };
        let text = serde_json::from_str::<String>(raw).unwrap_or_default();
        let kind = self.mrtr.store.kind_of(&text);
        let binding = if kind == Some(StateKind::Ask) {
            ask_binding(msg, method)
        } else {
            self.binding(index, msg, method)
        };
        let refusal = match self.mrtr.store.redeem(&text, now_ms(), &binding) {
            Ok(payload) if payload.k == StateKind::Pass => {
                self.flag_secrets_in_responses(index, msg, method, &payload);
                return Ok(Some(payload));
            }
            Ok(payload) if payload.k == StateKind::Held => {
                self.resume_held(index, msg, origin, &payload);
                return Err(());
            }
            Ok(payload) if payload.k == StateKind::Ask => {
                // Its answer was read by the decide stage (`ask_answer`).
                if let Some(handle) = payload.h {
                    self.mrtr.asks.remove(&handle);
                }
                return Ok(Some(payload));
            }
            // Kinds this session does not issue yet (reviews, URL elicitations).
            Ok(_) => StateError::Invalid,
            Err(e) => e,
        };
        let server = self.slots[index].config.name.clone();
        self.refuse_state(Some(server.as_str()), msg, origin, tool, refusal);
        Err(())
    }

    /// Refuses a request whose `requestState` failed a check (§3): -32602 with the
    /// kind in `data`, and a deny record with rule `state:<kind>`.
    fn refuse_state(
        &mut self,
        server: Option<&str>,
        msg: &Message,
        origin: &super::Origin,
        tool: Option<&str>,
        refusal: StateError,
    ) {
        let arguments = audit::arguments_of(msg);
        let subject = Subject {
            server,
            tool,
            method: msg.method().unwrap_or_default(),
            arguments: arguments.as_deref(),
        };
        let block = Block {
            rule: refusal.rule(),
            reason: refusal.to_string(),
        };
        tracing::info!(server, rule = %block.rule, "a request's requestState was refused");
        self.audit_decision(
            AuditDirection::ToServer,
            Decision::Deny,
            &subject,
            Some(&block),
        );
        self.reply(
            origin,
            error_response(
                Some(&origin.id),
                ErrorCode::InvalidParams,
                &refusal.to_string(),
                Some(refusal.data()),
            ),
        );
    }

    /// The in-filter's cell for a modern retry's answers (PIPELINE "answers to server
    /// requests"): each answer to a key that was asked goes on unchanged (the user's
    /// choice), and a secret in it is recorded as `flag`, as for a legacy answer.
    fn flag_secrets_in_responses(
        &mut self,
        index: usize,
        msg: &Message,
        method: &str,
        payload: &Payload,
    ) {
        let Some((responses, _)) = msg.param(&["inputResponses"]) else {
            return;
        };
        let answers: Vec<Bytes> = mrtr::members(responses)
            .unwrap_or_default()
            .iter()
            .filter(|m| payload.q.iter().any(|k| *k == m.key))
            .map(|m| {
                Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":0,"result":{}}}"#, m.value) + "\n")
            })
            .collect();
        for line in answers {
            if let Some(answer) = reparse(&line) {
                self.flag_secret_in_answer(index, &answer, method);
            }
        }
    }

    /// The line for the server of a modern retry whose envelope was `payload`: the
    /// server's own `requestState` back byte for byte (or none, as it gave none),
    /// answers only to the keys asked, and our roots answers.
    fn retry_for_server(&self, line: &Bytes, payload: &Payload) -> Option<Bytes> {
        let msg = reparse(line)?;
        let params = msg.params()?;
        if payload.k == StateKind::Ask {
            // The answer was mcp-warden's to read: the server sees the first try.
            let params = mrtr::first_try_params(Some(params)).ok()?;
            let span = msg.params_span()?;
            return Some(msg.rewrite(None, &[(span, &params)]));
        }
        let given = msg
            .param(&["inputResponses"])
            .and_then(|(raw, _)| mrtr::members(raw))
            .unwrap_or_default();
        let mut answers: Vec<(String, String)> = given
            .iter()
            .filter(|m| payload.q.iter().any(|k| *k == m.key))
            .map(|m| (m.key.clone().into_owned(), m.value.to_owned()))
            .collect();
        let roots = wire::roots_result(self.workspace_root.as_deref());
        answers.extend(payload.w.iter().map(|k| (k.clone(), roots.clone())));
        let server_state = payload.server_state();
        let params = mrtr::retry_params(Some(params), &answers, server_state.as_deref()).ok()?;
        let span = msg.params_span()?;
        Some(msg.rewrite(None, &[(span, &params)]))
    }
}

/// What an `ask` envelope binds: the request as the client sent it, no server (the
/// question was mcp-warden's, before any server saw the call).
fn ask_binding(msg: &Message, method: &str) -> Binding {
    Binding {
        method: method.to_owned(),
        digest: state::params_digest(msg.params()).unwrap_or_default(),
        server: None,
        instance: None,
    }
}

/// A retry of `sent` under our id `id`: its progress token follows the id; the params
/// get `answers` and the server's state.
fn retry_line(
    sent: &Bytes,
    id: u64,
    answers: &[(String, String)],
    server_state: Option<&str>,
) -> Option<Bytes> {
    let msg = reparse(sent)?;
    let ours = id.to_string();
    let mut edits: Vec<(std::ops::Range<usize>, &str)> = Vec::new();
    if let Some((span, _)) = crate::router::progress_token(&msg) {
        edits.push((span, &ours));
    }
    let msg = reparse(&msg.rewrite(Some(&ours), &edits))?;
    let params = mrtr::retry_params(msg.params(), answers, server_state).ok()?;
    let span = msg.params_span()?;
    Some(msg.rewrite(None, &[(span, &params)]))
}
