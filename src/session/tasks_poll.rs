//! A legacy client's 2025-11-25 task on a modern server (docs/dual-era.md §2.5, cell
//! LC→MS): mcp-warden plays the 2026 extension's client for it and polls.
//!
//! A legacy client's `tools/call` with `params.task`, routed to a ready modern server
//! that offers `io.modelcontextprotocol/tasks`, goes up without `task` (the extension
//! has no such parameter: the server decides) and with the extension declared in our
//! envelope. A `resultType: "task"` answer is recorded in the session's
//! [`crate::era::tasks::TaskTable`] under an id of ours and answered as a 2025
//! `CreateTaskResult` ([`crate::era::task_shapes`]); a result the server gives at once
//! (it decides) becomes a task of ours already `completed`, whose `tasks/result` is
//! that answer, judged then. Then:
//! - `tasks/get` → the server's `tasks/get`, answered in the 2025 shape (no inline
//!   result: 2025 fetches it with `tasks/result`);
//! - `tasks/result` → mcp-warden polls the server's `tasks/get` on a session timer,
//!   every `pollIntervalMs` (at least [`MIN_POLL_MS`]), while a
//!   `tasks/result` waits, until the task ends; the inline result is then the call's
//!   answer: out-filter, `[limits]`, flows and audit as a plain call's, once (later
//!   `tasks/result`s get the bytes kept). `failed` answers the task's error;
//! - `input_required` seen while polling: each new `inputRequests` entry is judged as
//!   the server request it stands for (`mrtr::judge_task_input`: sampling denied by
//!   default, roots answered by mcp-warden with the workspace, elicitation by the
//!   server's table); those left are asked of the client as real requests (tagged
//!   with our task id), and each answer goes up as a `tasks/update` after the
//!   in-filter's cell for answers. One entry stopped stops the task (cancelled
//!   upstream) and answers the waiting `tasks/result` with the block;
//! - `tasks/cancel` → the server's `tasks/cancel`; `tasks/list` from the table;
//! - a status change seen while polling → `notifications/tasks/status` (2025 shape).
//!   The server's own status notifications for such a task are dropped: their
//!   modern shape would carry the result past the filters.
//!
//! Every poll loop ends: with the task, when nobody waits for its result any more,
//! when its ttl passes, when the server restarts, and with the session (its timers are
//! the session's). The server's `requestState` is passed back on every request about
//! the task, as the extension requires.
//!
//! [`MIN_POLL_MS`]: crate::era::task_shapes::MIN_POLL_MS

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use super::tasks::TaskHook;
use super::{ClientCall, Origin, Pending, Reverse, Session, SlotState, Timer, reparse, wire};
use crate::era::mrtr::{self as era_mrtr, Entry};
use crate::era::task_shapes::{self as shapes, Terminal};
use crate::era::tasks::{TaskRoute, is_task_result, task_id_at};
use crate::jsonrpc::{ErrorCode, Id, Message};
use crate::upstream::InstanceId;

/// `tasks/result` requests that may wait on one task at once; more are refused, so
/// a client cannot grow a task's waiting list without end.
const MAX_WAITERS: usize = 16;

/// What a timer of this module stands for.
#[derive(Debug)]
pub(super) enum TaskTimer {
    /// Time to poll our task again.
    Poll(String),
    /// Our request `id` to `slot` (a `tasks/*` of ours) ran out of time.
    Deadline {
        slot: usize,
        instance: InstanceId,
        id: u64,
    },
    /// The deadline a [`ClientCall`] made for a task's answer must carry; the call is
    /// answered at once, so its firing means nothing.
    Call,
}

/// What a request of ours about a bridged task is for.
#[derive(Debug)]
pub(super) enum BridgeAsk {
    /// A poll of ours.
    Poll(String),
    /// The client's `tasks/get`.
    Get(String, Origin),
    /// The client's `tasks/cancel`.
    Cancel(String, Origin),
    /// Ours, whose answer nobody needs (a `tasks/cancel` when we stop a task).
    Forget,
}

/// One legacy client's task on a modern server.
#[derive(Debug)]
struct Bridge {
    slot: usize,
    instance: InstanceId,
    /// The server's last `requestState` (JSON text as sent).
    request_state: Option<String>,
    /// The status last seen.
    status: String,
    poll_ms: u64,
    /// When the server may forget the task (its ttl from creation).
    expires: Option<Instant>,
    /// `tasks/result` requests waiting for the end.
    waiters: Vec<Origin>,
    /// A poll of ours is in flight, or its timer set.
    polling: bool,
    /// `inputRequests` keys already handled (a key is never reused for another
    /// question, seps/2663 "Task Input Requests").
    asked: HashSet<String>,
    /// Questions asked of the client and not answered yet.
    open: usize,
    /// Why a `tasks/result` now fails: the task ended without a result to give.
    ended: Option<String>,
    /// The server answered the call at once: no task of its own stands behind ours.
    at_once: bool,
    /// That answer (a line under id 0), until the first `tasks/result` takes it.
    ready: Option<String>,
}

/// The session's bridged tasks, by our id.
#[derive(Debug, Default)]
pub(super) struct Bridges {
    tasks: HashMap<String, Bridge>,
}

impl Bridges {
    pub(super) fn contains(&self, ours: &str) -> bool {
        self.tasks.contains_key(ours)
    }
}

impl Session {
    /// The capabilities to declare to slot `index` for a legacy client's `tools/call`
    /// asking for a task (`params.task`) when that server is modern and offers the
    /// tasks extension; `None` otherwise (the call goes as today).
    pub(super) fn legacy_task_capabilities(
        &self,
        index: usize,
        msg: &Message,
        origin: &Origin,
        method: &str,
    ) -> Option<Value> {
        if method != "tools/call" || origin.is_modern() {
            return None;
        }
        msg.param(&["task"])?;
        match &self.slots[index].state {
            SlotState::Ready {
                era: crate::era::Era::Modern(_),
                capabilities,
                ..
            } if crate::era::tasks::declares_extension(capabilities) => Some(
                shapes::modern_capabilities_for_legacy_task(&self.client.capabilities),
            ),
            _ => None,
        }
    }

    /// The answer to such a call (`TaskHook::LegacyCreate`): a task is recorded under
    /// an id of ours and becomes a 2025 `CreateTaskResult`; a result given at once
    /// becomes a task of ours already completed; an error passes (`None`).
    pub(super) fn legacy_client_task_created(
        &mut self,
        index: usize,
        msg: &Message,
        call: &ClientCall,
    ) -> Option<Message> {
        let result = msg.result()?;
        let line = std::str::from_utf8(msg.raw()).ok()?;
        let name = self.slots[index].config.name.clone();
        let invalid = |why: &str| {
            tracing::warn!(server = %name, why, "an invalid task answered a legacy client's call");
            let text = format!("server `{name}` answered with an invalid task: {why}");
            reparse(&crate::jsonrpc::error_response(
                msg.id(),
                ErrorCode::Internal,
                &text,
                None,
            ))
        };
        let at_once = !is_task_result(result);
        let (server_id, modern) = if at_once {
            // The server answered at once (it decides, seps/2663): the legacy client,
            // which asked for a task, gets one already completed whose result is that
            // answer, judged when its `tasks/result` comes.
            let now = crate::time::Timestamp::now().to_string();
            let task = serde_json::json!({"status": "completed", "createdAt": now, "lastUpdatedAt": now, "ttlMs": null});
            (String::new(), task)
        } else {
            let Some((server_id, _)) = task_id_at(line, result, &["taskId"]) else {
                return invalid("no string `taskId`");
            };
            let Ok(modern) = serde_json::from_str::<Value>(result) else {
                return invalid("not JSON");
            };
            (server_id, modern)
        };
        let instance = self.slots[index].upstream.as_ref()?.instance;
        let route = TaskRoute {
            slot: index,
            instance,
            server_id,
            tool: call.tool.clone(),
            arguments: call.arguments.clone(),
            monitor: call.monitor.clone(),
            task: Value::Object(serde_json::Map::new()),
            // Reached by the 2025 methods of the legacy client that made it.
            modern: false,
            issued: Vec::new(),
            terminal: None,
        };
        let ours = match self.client.tasks.insert(route) {
            Ok(ours) => ours,
            Err(e) => {
                tracing::error!(error = %e, "a task could not be recorded");
                return invalid("it could not be recorded");
            }
        };
        let legacy = shapes::legacy_from_modern_task(&modern, &ours);
        self.client.tasks.note(&ours, &legacy.to_string());
        // Tasks the table forgot are forgotten here too.
        let table = &self.client.tasks;
        self.client
            .bridges
            .tasks
            .retain(|id, _| table.get(id).is_some());
        let bridge = Bridge {
            slot: index,
            instance,
            request_state: shapes::request_state_of(result),
            status: legacy["status"].as_str().unwrap_or("working").to_owned(),
            poll_ms: shapes::poll_interval_ms(&modern),
            expires: shapes::ttl_ms(&modern).map(|ms| Instant::now() + Duration::from_millis(ms)),
            waiters: Vec::new(),
            polling: false,
            asked: HashSet::new(),
            open: 0,
            ended: None,
            at_once,
            ready: at_once.then(|| {
                let payload = shapes::with_related_task(result, &ours);
                format!(r#"{{"jsonrpc":"2.0","id":0,"result":{payload}}}"#)
            }),
        };
        self.client.bridges.tasks.insert(ours.clone(), bridge);
        let created = shapes::legacy_from_modern_create(&modern, &ours);
        let span = msg.result_span()?;
        reparse(&msg.rewrite(None, &[(span, &created)]))
    }

    /// `tasks/get`, `tasks/result`, `tasks/cancel` (and a stray `tasks/update`) of the
    /// legacy client about a bridged task.
    pub(super) fn on_bridged_request(&mut self, origin: Origin, method: &str, ours: &str) {
        let at_once = self
            .client
            .bridges
            .tasks
            .get(ours)
            .is_some_and(|b| b.at_once);
        match method {
            "tasks/get" if at_once => {
                // No task of the server's: the table's copy is the whole truth.
                let task = self.client.tasks.get(ours).map(|r| r.task.to_string());
                self.reply_result(&origin, &task.unwrap_or_default());
            }
            "tasks/get" => {
                let ask = BridgeAsk::Get(ours.to_owned(), origin.clone());
                if let Err(text) = self.ask_about_task(ours, "tasks/get", ask) {
                    self.reply_error(&origin, ErrorCode::Unavailable, &text);
                }
            }
            "tasks/cancel" => {
                let terminal = self.client.tasks.get(ours).is_some_and(|r| {
                    r.task["status"]
                        .as_str()
                        .is_some_and(crate::era::tasks::is_terminal)
                });
                if terminal {
                    // L/basic/utilities/tasks.mdx: a terminal task cannot be cancelled.
                    let text = format!("cannot cancel task `{ours}`: already in a terminal status");
                    return self.reply_error(&origin, ErrorCode::InvalidParams, &text);
                }
                let ask = BridgeAsk::Cancel(ours.to_owned(), origin.clone());
                if let Err(text) = self.ask_about_task(ours, "tasks/cancel", ask) {
                    self.reply_error(&origin, ErrorCode::Unavailable, &text);
                }
            }
            "tasks/result" => self.wait_for_result(origin, ours),
            _ => self.reply_error(
                &origin,
                ErrorCode::MethodNotFound,
                &format!("`{method}` is not a 2025-11-25 tasks method"),
            ),
        }
    }

    /// A `tasks/result`: the answer kept, the reason the task has none, or a wait
    /// while mcp-warden polls.
    fn wait_for_result(&mut self, origin: Origin, ours: &str) {
        if let Some(kept) = self.client.tasks.get(ours).and_then(|r| r.terminal.clone()) {
            // Filtered and audited when it first came: the same bytes again.
            return self.reply_result(&origin, &kept);
        }
        let Some(bridge) = self.client.bridges.tasks.get_mut(ours) else {
            let text = format!("unknown task `{ours}`");
            return self.reply_error(&origin, ErrorCode::InvalidParams, &text);
        };
        if let Some(why) = bridge.ended.clone() {
            return self.reply_error(&origin, ErrorCode::Internal, &why);
        }
        if let Some(line) = bridge.ready.take() {
            bridge.waiters.push(origin);
            let slot = bridge.slot;
            return self.deliver(slot, ours, &line);
        }
        if bridge.waiters.len() >= MAX_WAITERS {
            let text = format!("task `{ours}` has {MAX_WAITERS} `tasks/result` waiting already");
            return self.reply_error(&origin, ErrorCode::Busy, &text);
        }
        bridge.waiters.push(origin);
        if !bridge.polling && bridge.open == 0 {
            self.poll_task(ours);
        }
    }

    /// The client cancelled `client_id`: when it is a `tasks/result` waiting here, it
    /// stops waiting (the task goes on: only `tasks/cancel` cancels a task).
    pub(super) fn cancel_task_wait(&mut self, client_id: &Id) -> bool {
        for bridge in self.client.bridges.tasks.values_mut() {
            if let Some(at) = bridge.waiters.iter().position(|o| o.id == *client_id) {
                let origin = bridge.waiters.remove(at);
                self.reply_none(&origin);
                return true;
            }
        }
        false
    }

    /// Polls the server about our task now, unless its loop must end.
    fn poll_task(&mut self, ours: &str) {
        let Some(bridge) = self.client.bridges.tasks.get_mut(ours) else {
            return;
        };
        bridge.polling = false;
        if bridge.ended.is_some() || bridge.waiters.is_empty() || bridge.open > 0 {
            return;
        }
        if bridge.expires.is_some_and(|at| Instant::now() >= at) {
            let why = format!("task `{ours}` expired (its ttl passed)");
            return self.end_task(ours, &why);
        }
        bridge.polling = true;
        let ask = BridgeAsk::Poll(ours.to_owned());
        if let Err(why) = self.ask_about_task(ours, "tasks/get", ask) {
            self.end_task(ours, &why);
        }
    }

    /// The next poll, after the interval the server suggested.
    fn schedule_poll(&mut self, ours: &str) {
        let Some(bridge) = self.client.bridges.tasks.get_mut(ours) else {
            return;
        };
        if bridge.ended.is_some() || bridge.waiters.is_empty() || bridge.open > 0 {
            bridge.polling = false;
            return;
        }
        bridge.polling = true;
        let wait = Duration::from_millis(bridge.poll_ms);
        self.timers
            .insert(Timer::Task(TaskTimer::Poll(ours.to_owned())), wait);
    }

    /// Sends `method` about our task to its server, under the server's id, with our
    /// envelope (the extension declared) and the server's last `requestState`.
    fn ask_about_task(&mut self, ours: &str, method: &str, ask: BridgeAsk) -> Result<(), String> {
        let (Some(route), Some(bridge)) = (
            self.client.tasks.get(ours),
            self.client.bridges.tasks.get(ours),
        ) else {
            return Err(format!("unknown task `{ours}`"));
        };
        let index = bridge.slot;
        let slot = &self.slots[index];
        let name = &slot.config.name;
        let current = slot.upstream.as_ref().map(|u| u.instance) == Some(bridge.instance);
        let (true, Some(crate::era::Era::Modern(version))) = (current, slot.state.era()) else {
            return Err(format!(
                "task `{ours}` is gone: server `{name}` restarted since"
            ));
        };
        let caps = self.declared_capabilities(
            index,
            Some(&shapes::modern_capabilities_for_legacy_task(
                &self.client.capabilities,
            )),
        );
        let mut params = serde_json::json!({
            "taskId": route.server_id,
            "_meta": crate::era::meta::envelope(version, &caps),
        });
        if let Some(state) = bridge
            .request_state
            .as_deref()
            .and_then(|s| serde_json::from_str::<String>(s).ok())
        {
            params["requestState"] = Value::String(state);
        }
        let instance = bridge.instance;
        let timeout = slot.config.request_timeout;
        let id = self.slots[index].mint(Pending::Bridge(Box::new(ask)));
        self.timers.insert(
            Timer::Task(TaskTimer::Deadline {
                slot: index,
                instance,
                id,
            }),
            timeout,
        );
        self.send_upstream_raw(index, wire::request(id, method, Some(&params)));
        Ok(())
    }

    /// A timer of this module fired.
    pub(super) fn on_task_timer(&mut self, timer: &TaskTimer) {
        match timer {
            TaskTimer::Poll(ours) => self.poll_task(&ours.clone()),
            TaskTimer::Deadline { slot, instance, id } => {
                let Some(s) = self.slots.get_mut(*slot) else {
                    return;
                };
                if s.upstream.as_ref().map(|u| u.instance) != Some(*instance) {
                    return;
                }
                if matches!(s.pending.get(id), Some(Pending::Bridge(_)))
                    && let Some(Pending::Bridge(ask)) = s.pending.remove(id)
                {
                    let text = format!(
                        "server `{}` did not answer within {}",
                        s.config.name,
                        crate::upstream::timeout_text(s.config.request_timeout)
                    );
                    self.bridge_failed(*ask, &text);
                }
            }
            TaskTimer::Call => {}
        }
    }

    /// Our request about a task got no answer (a timeout, the server gone).
    pub(super) fn bridge_failed(&mut self, ask: BridgeAsk, why: &str) {
        match ask {
            BridgeAsk::Poll(ours) => self.end_task(&ours, why),
            BridgeAsk::Get(_, origin) | BridgeAsk::Cancel(_, origin) => {
                self.reply_error(&origin, ErrorCode::Unavailable, why);
            }
            BridgeAsk::Forget => {}
        }
    }

    /// The server's answer to a request of ours about a bridged task.
    pub(super) fn on_bridge_answer(&mut self, index: usize, msg: &Message, ask: BridgeAsk) {
        let Some(result) = msg.result() else {
            let name = self.slots[index].config.name.clone();
            let why = msg.error_message().unwrap_or_default();
            let text = format!("server `{name}`: {why}");
            return self.bridge_failed(ask, &text);
        };
        match ask {
            BridgeAsk::Get(ours, origin) => {
                let Some(legacy) = self.observe(&ours, result) else {
                    return self.reply_error(&origin, ErrorCode::InvalidParams, "unknown task");
                };
                let line = crate::jsonrpc::error::result_response(&origin.id, &legacy.to_string());
                let server = self.slots[index].config.name.clone();
                self.reply_checked(&origin, line, Some(&server), "tasks/get");
            }
            BridgeAsk::Cancel(ours, origin) => {
                let mut task = self
                    .client
                    .tasks
                    .get(&ours)
                    .map(|r| r.task.clone())
                    .unwrap_or_default();
                task["status"] = Value::String("cancelled".to_owned());
                self.client.tasks.note(&ours, &task.to_string());
                if let Some(bridge) = self.client.bridges.tasks.get_mut(&ours) {
                    "cancelled".clone_into(&mut bridge.status);
                }
                let why = format!("task `{ours}` was cancelled");
                self.end_task(&ours, &why);
                self.reply_result(&origin, &task.to_string());
            }
            BridgeAsk::Poll(ours) => self.on_poll(index, &ours, result),
            BridgeAsk::Forget => {}
        }
    }

    /// What a `tasks/get` result tells of our task: its `requestState` and status
    /// kept, the table's copy updated; the task in the 2025 shape (`None`: not ours
    /// any more, or not an object).
    fn observe(&mut self, ours: &str, result: &str) -> Option<Value> {
        let modern = serde_json::from_str::<Value>(result).ok()?;
        let legacy = shapes::legacy_from_modern_task(&modern, ours);
        let bridge = self.client.bridges.tasks.get_mut(ours)?;
        bridge.request_state = shapes::request_state_of(result);
        bridge.poll_ms = shapes::poll_interval_ms(&modern);
        let status = legacy["status"].as_str().unwrap_or_default().to_owned();
        let changed = bridge.status != status;
        bridge.status = status;
        self.client.tasks.note(ours, &legacy.to_string());
        if changed && self.client.initialized {
            let slot = bridge.slot;
            let line = wire::notification("notifications/tasks/status", Some(legacy.clone()));
            self.forward_to_client(slot, line);
        }
        Some(legacy)
    }

    /// A poll's answer: the end delivered, the questions asked, or the next poll.
    fn on_poll(&mut self, index: usize, ours: &str, result: &str) {
        match self.client.bridges.tasks.get_mut(ours) {
            // Ended meanwhile (cancelled, stopped): the answer is moot.
            Some(bridge) if bridge.ended.is_none() => bridge.polling = false,
            _ => return,
        }
        let Some(legacy) = self.observe(ours, result) else {
            return;
        };
        let terminal = legacy["status"]
            .as_str()
            .is_some_and(crate::era::tasks::is_terminal);
        match shapes::terminal_of(result) {
            Some(Terminal::Completed(payload)) => {
                let payload = shapes::with_related_task(&payload, ours);
                let line = format!(r#"{{"jsonrpc":"2.0","id":0,"result":{payload}}}"#);
                self.deliver(index, ours, &line);
            }
            Some(Terminal::Failed(error)) => {
                let line = format!(r#"{{"jsonrpc":"2.0","id":0,"error":{error}}}"#);
                self.deliver(index, ours, &line);
            }
            Some(Terminal::Cancelled) => {
                self.end_task(ours, &format!("task `{ours}` was cancelled"));
            }
            None if terminal => {
                let name = self.slots[index].config.name.clone();
                let why = format!("server `{name}` ended task `{ours}` without its payload");
                self.end_task(ours, &why);
            }
            None if era_mrtr::members(result)
                .is_some_and(|m| m.iter().any(|m| m.key == "inputRequests")) =>
            {
                self.ask_for_task_input(index, ours, result);
            }
            None => self.schedule_poll(ours),
        }
    }

    /// The call's answer for the `tasks/result` requests waiting (`line`, under id 0):
    /// the first gets it through the stages as the answer of the call that made the
    /// task (filtered, limited, audited once; its bytes kept), the others the bytes
    /// kept.
    fn deliver(&mut self, index: usize, ours: &str, line: &str) {
        let Some(bridge) = self.client.bridges.tasks.get_mut(ours) else {
            return;
        };
        if bridge.waiters.is_empty() {
            // Nobody waits any more: the next `tasks/result` polls again.
            return;
        }
        let waiters = std::mem::take(&mut bridge.waiters);
        let name = self.slots[index].config.name.clone();
        let why = format!("task `{ours}` ended; its answer was given to the first `tasks/result`");
        bridge.ended = Some(why.clone());
        let Some((first, others)) = waiters.split_first() else {
            return;
        };
        let Some(msg) = reparse(&Bytes::from(format!("{line}\n"))) else {
            let text = format!("server `{name}` ended the task with an invalid payload");
            for origin in &waiters {
                self.reply_error(origin, ErrorCode::Internal, &text);
            }
            return;
        };
        let Some(call) = self.call_of_task(ours, first.clone()) else {
            return;
        };
        self.on_client_answer(index, &msg, call);
        let kept = self.client.tasks.get(ours).and_then(|r| r.terminal.clone());
        for origin in others {
            match &kept {
                Some(kept) => self.reply_result(origin, kept),
                None => self.reply_error(origin, ErrorCode::Internal, &why),
            }
        }
    }

    /// The call that made our task, as the client request `origin` now waiting on it:
    /// what the stages and the audit see its answer as.
    fn call_of_task(&mut self, ours: &str, origin: Origin) -> Option<ClientCall> {
        let route = self.client.tasks.get(ours)?;
        let (tool, arguments, monitor) = (
            route.tool.clone(),
            route.arguments.clone(),
            route.monitor.clone(),
        );
        // The call is answered at once; its deadline only has to exist.
        let timer = self
            .timers
            .insert(Timer::Task(TaskTimer::Call), Duration::from_secs(1));
        Some(ClientCall {
            origin,
            started: std::time::Instant::now(),
            arguments,
            monitor,
            method: "tools/call".into(),
            tool,
            timer,
            progress: None,
            paged: false,
            mrtr: None,
            task: Some(TaskHook::Bridged(ours.to_owned())),
        })
    }

    /// The task waits for input: its new entries judged, ours answered, the rest asked
    /// of the client; one stopped stops the task.
    fn ask_for_task_input(&mut self, index: usize, ours: &str, result: &str) {
        let Ok(ir) = era_mrtr::parse(result) else {
            let name = self.slots[index].config.name.clone();
            return self.stop_task(
                ours,
                &format!("server `{name}` asked for input in an invalid form"),
                None,
            );
        };
        let Some(bridge) = self.client.bridges.tasks.get_mut(ours) else {
            return;
        };
        let fresh: Vec<Entry<'_>> = ir
            .entries
            .iter()
            .filter(|e| !bridge.asked.contains(&e.key))
            .cloned()
            .collect();
        if fresh.is_empty() {
            // Answered, not yet taken in by the server: look again later.
            return self.schedule_poll(ours);
        }
        bridge.asked.extend(fresh.iter().map(|e| e.key.clone()));
        let capabilities = self.client.capabilities.clone();
        let input = match self.judge_task_input(index, &fresh, &capabilities) {
            Ok(input) => input,
            Err(block) => return self.stop_task(ours, "", Some(block)),
        };
        let Some(route) = self.client.tasks.get(ours).cloned() else {
            return;
        };
        let state = self
            .client
            .bridges
            .tasks
            .get(ours)
            .and_then(|b| b.request_state.clone());
        if !input.ours.is_empty() {
            self.answer_task_input(index, &route, &input.ours, state.as_deref());
        }
        let asked = era_mrtr::members(&input.requests).unwrap_or_default();
        let mut sent = 0;
        for m in asked {
            let Ok(request) = serde_json::from_str::<Value>(m.value) else {
                continue;
            };
            let method = request["method"].as_str().unwrap_or_default().to_owned();
            let params = request
                .get("params")
                .map(|p| shapes::with_related_task(&p.to_string(), ours));
            let id = self.reverse.reserve();
            let line = Entry {
                key: m.key.clone().into_owned(),
                method: method.clone(),
                params: params.as_deref(),
            }
            .as_request(&id.to_string());
            self.reverse.insert(
                id,
                Reverse::TaskInput {
                    task: ours.to_owned(),
                    key: m.key.into_owned(),
                    method,
                },
            );
            self.out.push_back(Bytes::from(line + "\n"));
            sent += 1;
        }
        if let Some(bridge) = self.client.bridges.tasks.get_mut(ours) {
            bridge.open += sent;
        }
        if sent == 0 {
            self.schedule_poll(ours);
        }
    }

    /// The client's answer to a question asked for our task: through the in-filter's
    /// cell for answers, up as a `tasks/update`; polling goes on once every question
    /// is answered. A client that could not answer ends the task.
    pub(super) fn on_task_input_answer(
        &mut self,
        ours: &str,
        key: String,
        method: &str,
        msg: &Message,
    ) {
        let Some(bridge) = self.client.bridges.tasks.get_mut(ours) else {
            return;
        };
        bridge.open = bridge.open.saturating_sub(1);
        let (slot, instance, state) = (bridge.slot, bridge.instance, bridge.request_state.clone());
        let open = bridge.open;
        if self.slots[slot].upstream.as_ref().map(|u| u.instance) != Some(instance) {
            return;
        }
        let Some(result) = msg.result().map(str::to_owned) else {
            let text = format!("the client could not answer `{method}` for task `{ours}`");
            return self.stop_task(ours, &text, None);
        };
        self.flag_secret_in_answer(slot, msg, method);
        let Some(route) = self.client.tasks.get(ours).cloned() else {
            return;
        };
        self.answer_task_input(slot, &route, &[(key, result)], state.as_deref());
        if open == 0 {
            self.schedule_poll(ours);
        }
    }

    /// Stops our task: cancelled at the server, and the `tasks/result` waiting
    /// answered with `block` (the first, with its audit record, as the call would
    /// be) or `why`.
    fn stop_task(&mut self, ours: &str, why: &str, block: Option<crate::filter::Block>) {
        let Some(bridge) = self.client.bridges.tasks.get_mut(ours) else {
            return;
        };
        let slot = bridge.slot;
        let mut waiters = std::mem::take(&mut bridge.waiters);
        let why = block.as_ref().map_or_else(
            || why.to_owned(),
            |b| format!("task `{ours}` was stopped: {}", b.reason),
        );
        // Best effort: a server gone has nothing to cancel.
        let _ = self.ask_about_task(ours, "tasks/cancel", BridgeAsk::Forget);
        if let Some(block) = block
            && !waiters.is_empty()
        {
            let first = waiters.remove(0);
            let line = Bytes::from_static(b"{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{}}\n");
            if let (Some(msg), Some(call)) = (reparse(&line), self.call_of_task(ours, first)) {
                self.block_call(slot, &msg, &call, block);
            }
        }
        if let Some(bridge) = self.client.bridges.tasks.get_mut(ours) {
            bridge.waiters = waiters;
        }
        self.end_task(ours, &why);
    }

    /// Our task ended without a result to give: the `tasks/result` waiting are
    /// answered `why`, and so are later ones.
    fn end_task(&mut self, ours: &str, why: &str) {
        let Some(bridge) = self.client.bridges.tasks.get_mut(ours) else {
            return;
        };
        bridge.polling = false;
        if bridge.ended.is_none() {
            bridge.ended = Some(why.to_owned());
        }
        for origin in std::mem::take(&mut bridge.waiters) {
            self.reply_error(&origin, ErrorCode::Internal, why);
        }
    }
}
