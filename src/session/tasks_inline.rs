//! A modern client's task on a legacy server (docs/dual-era.md §2.5, cell MC→LS): the
//! 2026 `io.modelcontextprotocol/tasks` extension on the client's side, 2025-11-25
//! `tasks/*` on the server's, with mcp-warden in between doing what each expects.
//!
//! - A `tools/call` from a client that declares the extension, of a tool whose
//!   `execution.taskSupport` is `"optional"` or `"required"`, goes up with
//!   `params.task {ttl}`; the server's `CreateTaskResult {task}` comes back as the
//!   2026 one, `resultType: "task"`, under our id (the [`TaskTable`] route is
//!   `modern`: only the extension's methods reach it).
//! - Once the server says the task waits for input or ended, mcp-warden asks it
//!   `tasks/result` (kept as [`Pending::TaskResult`]): the legacy way to receive the
//!   task's questions (`elicitation/create` tagged `related-task`) and its payload.
//!   Each question is judged as a held call's (`mrtr/held.rs`
//!   [`Session::judge_question`]) and kept for the client.
//! - `tasks/get` is asked of the server as `tasks/get` and answered in the 2026
//!   shape: questions kept → `input_required` with them as `inputRequests` (keys
//!   ours, `mw-N`); the payload in → `completed` with the result inline (or
//!   `failed` with the error), which then is the call's answer: out-filter,
//!   `[limits]`, flows and audit as a `tools/call`, once (later polls replay the
//!   bytes kept, as for a modern server's task). A server saying `completed` before
//!   the payload came has it asked for on that same poll (a second `tasks/result`,
//!   which the legacy spec allows); `input_required` with no question in yet is
//!   `working` to the client (mcp-warden is fetching them), never an
//!   `input_required` without `inputRequests`.
//! - `tasks/update` answers the server's questions themselves (a legacy server has
//!   no `tasks/update`): only the keys the client was shown, in-filtered as any
//!   update's input. `tasks/cancel` goes up as `tasks/cancel`; its open questions
//!   are answered -32603.
//! - `notifications/tasks/status` from the server: never forwarded as it is; read to
//!   start the fetch early. A `subscriptions/listen` naming the task gets each change
//!   mcp-warden sees (a status, a question, the payload) as a 2026
//!   `notifications/tasks` carrying what a `tasks/get` would give then
//!   (`task_listen.rs`); the payload only once judged as the call's answer.
//!
//! [`TaskTable`]: crate::era::tasks::TaskTable

use std::collections::HashMap;

use serde_json::Value;

use super::tasks::TaskHook;
use super::{ClientCall, Origin, Pending, Session, reparse, wire};
use crate::era::task_shapes::{self, LegacyOutcome};
use crate::era::tasks::{RELATED_TASK, TaskRoute, task_id_at};
use crate::jsonrpc::{ErrorCode, Id, Message};
use crate::router::catalog::ListKind;

/// What a `tasks/get` of a modern client's task on a legacy server gives now.
enum InlineNow {
    /// No state kept for it.
    Unknown,
    /// The server's task has no status.
    NoStatus,
    /// A task that is not the call's answer: a plain `tasks/get` answer.
    Task(String),
    /// Ended with its payload inline: the call's answer, to be judged as one.
    Terminal(String),
    /// Ended, its payload not fetched yet.
    Ended,
}

/// Questions a legacy server may have open on one task; past it a new one is refused
/// to the server (the client answers them one update at a time).
const MAX_QUESTIONS: usize = 16;

/// The state of modern clients' tasks on legacy servers, by our task id.
#[derive(Debug, Default)]
pub(super) struct InlineTasks {
    tasks: HashMap<String, InlineTask>,
}

#[derive(Debug, Default)]
struct InlineTask {
    /// The capabilities the call that made the task declared: what the client can
    /// be asked.
    capabilities: Value,
    /// The task as the server last described it (2025 shape).
    last: Value,
    /// A `tasks/result` of ours is at the server.
    fetching: bool,
    /// Its answer: the task's payload (a result or an error).
    payload: Option<Message>,
    /// The server's questions still open: key (ours), the server's request id, method,
    /// the `inputRequests` entry.
    questions: Vec<(String, Id, String, String)>,
    next_key: u64,
}

impl Session {
    /// Whether slot `index` runs a legacy server.
    pub(super) fn is_legacy(&self, index: usize) -> bool {
        self.slots[index]
            .state
            .era()
            .is_some_and(|era| !era.is_modern())
    }

    /// Whether a `tools/call` of `exposed` (served by `slot`) from `origin` is run as
    /// a 2025-11-25 task for a modern client: the client declares the extension, the
    /// server is legacy, and the tool can run as a task.
    fn runs_as_legacy_task(&self, slot: usize, exposed: &str, origin: &Origin) -> bool {
        origin.declares_tasks()
            && self.is_legacy(slot)
            && task_shapes::runs_as_task(self.legacy_task_support(slot, exposed).as_deref())
    }

    /// Whether a modern client's `tools/call` of `exposed` needs the tasks extension it
    /// did not declare: a legacy server's tool only a task can run. Sent on, the server
    /// would answer -32601 (2025-11-25 tasks), which says nothing of the cause.
    pub(super) fn needs_tasks_extension(
        &self,
        slot: usize,
        exposed: &str,
        origin: &Origin,
    ) -> bool {
        origin.is_modern()
            && !origin.declares_tasks()
            && self.is_legacy(slot)
            && self.legacy_task_support(slot, exposed).as_deref() == Some("required")
    }

    /// The `execution.taskSupport` of the tool `exposed` as slot `slot` listed it.
    fn legacy_task_support(&self, slot: usize, exposed: &str) -> Option<String> {
        let super::ListState::Listed(items) = &self.slots[slot].lists[ListKind::Tools.index()]
        else {
            return None;
        };
        let item = items.iter().find(|i| i.exposed == exposed)?;
        task_shapes::task_support(&item.source)
    }

    /// The edit that makes a modern client's `tools/call` a 2025-11-25 task-augmented
    /// one (`params.task {ttl}`), when it is to be one.
    pub(super) fn legacy_task_edit(
        &self,
        slot: usize,
        exposed: &str,
        msg: &Message,
        origin: &Origin,
    ) -> Option<(std::ops::Range<usize>, String)> {
        if !self.runs_as_legacy_task(slot, exposed, origin) {
            return None;
        }
        let line = std::str::from_utf8(msg.raw()).ok()?;
        let params = msg.params_span()?;
        let task = task_shapes::legacy_task_param();
        crate::era::meta::add_missing(line, params, &[("task", task)])
            .into_iter()
            .next()
    }

    /// A legacy server's answer to a modern client's `tools/call`: a
    /// `CreateTaskResult {task}` becomes the 2026 one under our id (the route
    /// recorded), when mcp-warden asked for a task; one it did not ask for is an
    /// invalid answer (its id would reach the client unrouted). `None`: not a task.
    pub(super) fn legacy_task_created(
        &mut self,
        index: usize,
        msg: &Message,
        call: &ClientCall,
    ) -> Option<Message> {
        let line = std::str::from_utf8(msg.raw()).ok()?;
        let result = msg.result()?;
        let (server_id, _) = task_id_at(line, result, &["task", "taskId"])?;
        let asked = call
            .tool
            .as_deref()
            .is_some_and(|tool| self.runs_as_legacy_task(index, tool, &call.origin));
        if !asked {
            let name = &self.slots[index].config.name;
            tracing::warn!(server = %name, "a legacy task answered to a call that did not ask for one");
            let text =
                format!("server `{name}` answered with a task, which this call did not ask for");
            let line = crate::jsonrpc::error_response(msg.id(), ErrorCode::Internal, &text, None);
            return reparse(&line);
        }
        let task: Value = crate::jsonrpc::message::member_at(line, result, &["task"])
            .and_then(|(raw, _)| serde_json::from_str(raw).ok())
            .unwrap_or_default();
        let route = self.task_route(index, call, server_id, task.clone(), true)?;
        let ours = match self.client.tasks.insert(route) {
            Ok(ours) => ours,
            Err(e) => {
                tracing::error!(error = %e, "a task could not be recorded");
                return None;
            }
        };
        let created = task_shapes::modern_created_from_legacy(result, &ours)?;
        let capabilities = call.origin.capabilities();
        let inline = &mut self.client.inline_tasks.tasks;
        // Bounded as the table is: state of tasks it forgot goes.
        if inline.len() >= crate::era::tasks::MAX_TASKS {
            let table = &self.client.tasks;
            inline.retain(|id, _| table.get(id).is_some());
        }
        inline.insert(
            ours.clone(),
            InlineTask {
                capabilities,
                last: task,
                ..InlineTask::default()
            },
        );
        self.fetch_when_due(&ours);
        let line = crate::jsonrpc::error::result_response(msg.id()?, &created);
        reparse(&line)
    }

    /// Asks the server `tasks/result` for task `ours` when its last status says the
    /// questions or the payload are there to fetch, unless already asked.
    fn fetch_when_due(&mut self, ours: &str) {
        let Some(route) = self.client.tasks.get(ours) else {
            return;
        };
        let (slot, server_id) = (route.slot, route.server_id.clone());
        let Some(state) = self.client.inline_tasks.tasks.get_mut(ours) else {
            return;
        };
        let due = matches!(
            state.last.get("status").and_then(Value::as_str),
            Some("input_required" | "completed" | "failed")
        );
        if !due || state.fetching || state.payload.is_some() {
            return;
        }
        state.fetching = true;
        let id = self.slots[slot].mint(Pending::TaskResult(ours.to_owned()));
        let params = serde_json::json!({ "taskId": server_id });
        self.send_upstream_raw(slot, wire::request(id, "tasks/result", Some(&params)));
    }

    /// The server answered our `tasks/result`: the task's payload, kept for the poll
    /// that reports it.
    pub(super) fn on_task_fetched(&mut self, ours: &str, msg: &Message) {
        if let Some(state) = self.client.inline_tasks.tasks.get_mut(ours) {
            state.fetching = false;
            state.payload = Some(msg.clone());
        }
        // The task ended: a question still open is moot.
        if let Some(slot) = self.client.tasks.get(ours).map(|r| r.slot) {
            self.end_questions(slot, ours, "the task ended");
            self.push_inline(slot, ours);
        }
    }

    /// A `notifications/tasks/status` from a legacy server about a modern client's
    /// task: read (it may be time to fetch), never forwarded (`true`: it was one).
    pub(super) fn legacy_task_status(&mut self, index: usize, msg: &Message) -> bool {
        let (Some(params), Some((ours, _))) = (msg.params(), self.status_subject(index, msg))
        else {
            return false;
        };
        let Some(state) = self.client.inline_tasks.tasks.get_mut(&ours) else {
            return false;
        };
        if let Ok(task) = serde_json::from_str::<Value>(params) {
            state.last = task;
        }
        self.fetch_when_due(&ours);
        // Never as it came (a 2025 shape, the server's id): as a `tasks/get` would
        // give it now, to the listens naming it.
        self.push_inline(index, &ours);
        true
    }

    /// A legacy server's `elicitation/create` or `sampling/createMessage` (allowed by
    /// its table and the gate) tagged with a modern client's task: kept for the
    /// client's next `tasks/get` (`true`: taken here).
    pub(super) fn ask_for_legacy_task(
        &mut self,
        index: usize,
        msg: &Message,
        id: &Id,
        method: &str,
    ) -> bool {
        let (Ok(line), Some(params)) = (std::str::from_utf8(msg.raw()), msg.params()) else {
            return false;
        };
        // The tag was made ours as the message arrived (`retag_related_task`): a tag
        // naming another server's task, or none of ours, stays unknown here.
        let Some((ours, _)) = task_id_at(line, params, &RELATED_TASK) else {
            return false;
        };
        let known = self
            .client
            .tasks
            .get(&ours)
            .is_some_and(|r| r.modern && r.slot == index);
        let Some(state) = self.client.inline_tasks.tasks.get(&ours).filter(|_| known) else {
            return false;
        };
        let capability = if method == "sampling/createMessage" {
            "sampling"
        } else {
            "elicitation"
        };
        if state.capabilities.get(capability).is_none() {
            let text = format!("the client's request does not offer what `{method}` needs");
            self.answer_upstream(index, id, Err((ErrorCode::MethodNotFound, text, None)));
            return true;
        }
        if state.questions.len() >= MAX_QUESTIONS {
            let text = format!("too many questions pending on this task ({MAX_QUESTIONS})");
            self.answer_upstream(index, id, Err((ErrorCode::Internal, text, None)));
            return true;
        }
        let Some(entry) = self.judge_question(index, msg, id, method) else {
            return true;
        };
        if let Some(state) = self.client.inline_tasks.tasks.get_mut(&ours) {
            state.next_key += 1;
            let key = format!("mw-{}", state.next_key);
            state
                .questions
                .push((key, id.clone(), method.to_owned(), entry));
        }
        self.push_inline(index, &ours);
        true
    }

    /// `tasks/update` of a modern client's task on a legacy server: each answer the
    /// client gives to a question it was shown goes to the server as the answer to
    /// its request; the client gets `{}`.
    pub(super) fn legacy_task_update(
        &mut self,
        msg: &Message,
        origin: &Origin,
        ours: &str,
        route: &TaskRoute,
    ) {
        if !self.passes_in_filter(route.slot, msg, origin, route.tool.as_deref()) {
            return;
        }
        let object = match self.task_update_input(route.slot, msg, route) {
            Ok((_, object)) => object,
            Err(text) => return self.reply_error(origin, ErrorCode::InvalidParams, &text),
        };
        let answers = crate::era::mrtr::members(&object).unwrap_or_default();
        let mut given = Vec::new();
        if let Some(state) = self.client.inline_tasks.tasks.get_mut(ours) {
            for answer in &answers {
                if let Some(at) = state.questions.iter().position(|q| q.0 == answer.key) {
                    let (_, id, _, _) = state.questions.remove(at);
                    given.push((id, answer.value.to_owned()));
                }
            }
        }
        for (id, answer) in given {
            self.answer_upstream(route.slot, &id, Ok(answer));
        }
        if let Some(route) = self.client.tasks.get_mut(ours) {
            route
                .issued
                .retain(|k| !answers.iter().any(|a| a.key == k.as_str()));
        }
        self.reply_result(origin, "{}");
    }

    /// The server's answer to a request about a modern client's task on a legacy
    /// server ([`TaskHook::Inline`]): made the 2026 answer, then on through the
    /// stages as any answer (`None`: taken here). Other answers pass (`Some`).
    pub(super) fn legacy_task_answer(
        &mut self,
        index: usize,
        msg: &Message,
        mut call: ClientCall,
    ) -> Option<ClientCall> {
        let Some(TaskHook::Inline(ours)) = &call.task else {
            return Some(call);
        };
        let ours = ours.clone();
        match &*call.method {
            "tasks/result" => {
                // Asked on the client's poll: the payload is the poll's answer.
                self.on_task_fetched(&ours, msg);
                self.legacy_task_poll(index, msg, call, &ours);
            }
            "tasks/get" => self.legacy_task_poll(index, msg, call, &ours),
            _ => {
                // `tasks/cancel`: the 2026 answer is an empty acknowledgement; the
                // server's questions on that task go unanswered by the client.
                call.task = None;
                if msg.result_span().is_none() {
                    self.on_client_answer(index, msg, call);
                    return None;
                }
                self.end_questions(index, &ours, "the task was cancelled");
                let line = crate::jsonrpc::error::result_response(msg.id()?, "{}");
                let ack = reparse(&line)?;
                self.on_client_answer(index, &ack, call);
            }
        }
        None
    }

    /// Answers a client's `tasks/get` from what the server said (`msg`, a legacy
    /// `tasks/get` answer, or the payload just fetched) and what mcp-warden holds.
    fn legacy_task_poll(&mut self, index: usize, msg: &Message, mut call: ClientCall, ours: &str) {
        // Asked on this poll's behalf: `msg` is the payload, kept already.
        let fetched = &*call.method == "tasks/result";
        call.method = "tasks/get".into();
        if !fetched {
            let task = msg
                .result()
                .and_then(|r| serde_json::from_str::<Value>(r).ok())
                .filter(|t| t.get("status").is_some());
            let state = self.client.inline_tasks.tasks.get_mut(ours);
            match (task, state) {
                (Some(task), Some(state)) => state.last = task,
                // The server's error about the task (unknown, expired), or no state:
                // the client's as it is, unless the payload already came.
                (_, state) if state.as_ref().is_none_or(|s| s.payload.is_none()) => {
                    call.task = None;
                    return self.on_client_answer(index, msg, call);
                }
                _ => {}
            }
        }
        if let Some(terminal) = self.client.tasks.get(ours).and_then(|r| r.terminal.clone()) {
            // A poll sent before another one's answer ended the task: the same bytes,
            // audited once.
            self.timers.remove(&call.timer);
            self.inflight.remove(&call.origin.id);
            return self.reply_result(&call.origin, &terminal);
        }
        self.fetch_when_due(ours);
        // On through the stages as a plain `tasks/get` answer, unless it is the end.
        call.task = None;
        let text = match self.inline_now(ours) {
            InlineNow::Unknown => return self.on_client_answer(index, msg, call),
            InlineNow::NoStatus => {
                let text = "the server's task has no status";
                return self.end_poll(&call, ErrorCode::Internal, text);
            }
            InlineNow::Task(text) => text,
            InlineNow::Terminal(text) => {
                // The payload is in: the task ended, and this is the call's answer.
                call.task = Some(TaskHook::Get(ours.to_owned()));
                text
            }
            InlineNow::Ended => {
                // Ended, payload not in yet: asked now, on this poll. Its answer must
                // come back here to be made the 2026 task.
                call.task = Some(TaskHook::Inline(ours.to_owned()));
                return self.fetch_for_poll(index, call, ours);
            }
        };
        let Some(id) = msg.id() else {
            return;
        };
        let line = crate::jsonrpc::error::result_response(id, &text);
        match reparse(&line) {
            Some(answer) => self.on_client_answer(index, &answer, call),
            None => self.end_poll(&call, ErrorCode::Internal, "could not build the task"),
        }
    }

    /// The 2026 task a `tasks/get` of task `ours` would give now, from what
    /// mcp-warden holds (the server's last status, its questions, the payload).
    fn inline_now(&mut self, ours: &str) -> InlineNow {
        let Some(state) = self.client.inline_tasks.tasks.get(ours) else {
            return InlineNow::Unknown;
        };
        let Some(task) = task_shapes::modern_task_from_legacy(&state.last, ours) else {
            return InlineNow::NoStatus;
        };
        let status = state
            .last
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if status == "cancelled" {
            InlineNow::Task(task_shapes::with_members(task, &[]))
        } else if let Some(payload) = &state.payload {
            let outcome = match (payload.result(), payload.error()) {
                (Some(result), _) => LegacyOutcome::Result(result),
                (None, Some(error)) => LegacyOutcome::Error(error),
                (None, None) => LegacyOutcome::Error(r#"{"code":-32603,"message":"no result"}"#),
            };
            InlineNow::Terminal(task_shapes::modern_terminal_from_legacy(task, outcome))
        } else if matches!(status, "completed" | "failed") {
            InlineNow::Ended
        } else if !state.questions.is_empty() {
            let requests =
                crate::era::mrtr::object_of(state.questions.iter().map(|(key, _, _, entry)| {
                    std::borrow::Cow::Owned(crate::era::mrtr::member(key, entry))
                }));
            let keys: Vec<String> = state.questions.iter().map(|q| q.0.clone()).collect();
            if let Some(route) = self.client.tasks.get_mut(ours) {
                route.issued = keys;
            }
            InlineNow::Task(task_shapes::modern_input_required_from_legacy(
                task, &requests,
            ))
        } else {
            let mut task = task;
            if status == "input_required" {
                // Its questions are on their way (our `tasks/result` is out).
                task.insert("status".into(), Value::String("working".into()));
            }
            InlineNow::Task(task_shapes::with_members(task, &[]))
        }
    }

    /// A change mcp-warden saw in task `ours` (a status, a question, the payload):
    /// pushed to the client listens naming it as the task a `tasks/get` would give
    /// now; the payload only judged as the call's answer (`task_listen.rs`).
    fn push_inline(&mut self, index: usize, ours: &str) {
        let listens: Vec<Id> = self.subs.naming_task(ours).cloned().collect();
        if listens.is_empty() {
            return;
        }
        if let Some(kept) = self.client.tasks.get(ours).and_then(|r| r.terminal.clone()) {
            return self.notify_listens(index, &listens, &kept);
        }
        match self.inline_now(ours) {
            InlineNow::Task(text) => self.notify_listens(index, &listens, &text),
            InlineNow::Terminal(text) => {
                if let Ok(task) = serde_json::from_str::<Value>(&text) {
                    self.push_terminal(index, ours, &listens, task);
                }
            }
            // Its payload is being fetched: pushed when it comes.
            InlineNow::Ended | InlineNow::Unknown | InlineNow::NoStatus => {}
        }
    }

    /// A poll that found the task ended before its payload came: `tasks/result` is
    /// asked on the poll's behalf, and its answer answers the poll.
    fn fetch_for_poll(&mut self, index: usize, mut call: ClientCall, ours: &str) {
        let Some(route) = self.client.tasks.get(ours) else {
            return self.end_poll(&call, ErrorCode::InvalidParams, "unknown task");
        };
        let params = serde_json::json!({ "taskId": route.server_id });
        let instance = route.instance;
        self.timers.remove(&call.timer);
        call.method = "tasks/result".into();
        call.task = Some(TaskHook::Inline(ours.to_owned()));
        let id = self.slots[index].pending.reserve();
        let line = wire::request(id, "tasks/result", Some(&params));
        self.send_retry(index, instance, id, Box::new(call), line);
    }

    fn end_poll(&mut self, call: &ClientCall, code: ErrorCode, text: &str) {
        self.timers.remove(&call.timer);
        self.inflight.remove(&call.origin.id);
        self.reply_error(&call.origin, code, text);
    }

    /// The server's questions still open on task `ours`, answered -32603; the client
    /// has none left to answer.
    fn end_questions(&mut self, index: usize, ours: &str, why: &str) {
        if let Some(route) = self.client.tasks.get_mut(ours) {
            route.issued.clear();
        }
        let open = self
            .client
            .inline_tasks
            .tasks
            .get_mut(ours)
            .map(|s| std::mem::take(&mut s.questions))
            .unwrap_or_default();
        for (_, id, _, _) in open {
            self.answer_upstream(index, &id, Err((ErrorCode::Internal, why.to_owned(), None)));
        }
    }
}
