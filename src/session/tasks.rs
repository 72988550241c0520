//! 2025-11-25 tasks through the session (docs/dual-era.md §2.5, cell LC→LS): the
//! task ids upstreams create become ids of ours ([`crate::era::tasks::TaskTable`]),
//! `tasks/get`, `tasks/result` and `tasks/cancel` are routed by the table with the
//! server's id put back, `tasks/list` is answered from the table (this session's
//! tasks only), and `tasks/result`'s payload, the call's real answer, goes through
//! the out-filter, limits and audit as the answer of the call that made the task.
//!
//! The 2026 `io.modelcontextprotocol/tasks` extension (cell MC→MS) goes through the
//! same table: a `resultType: "task"` answer to a modern client's `tools/call` is
//! recorded, `tasks/get`, `tasks/update` and `tasks/cancel` are routed by it. The
//! first `tasks/get` that finds the task `completed` or `failed` is the call's answer
//! (filtered, limited, audited as `tools/call`); the client's bytes are kept and
//! later polls answered with them, so that happens once (a `notifications/tasks` a
//! listen asked for may end it first: `task_listen.rs`, the same path; a poll at the
//! server meanwhile gets the kept bytes). A task waiting for input has
//! its `inputRequests` judged as a call's (`mrtr::judge_task_input`), and a
//! `tasks/update` answers only the keys the client was shown.
//!
//! A modern client's task on a legacy server (cell MC→LS) is in `tasks_inline.rs`:
//! the same table, the extension to the client, 2025-11-25 `tasks/*` to the server.

use std::borrow::Cow;

use bytes::Bytes;

use super::client::Forward;
use super::{Origin, Pending, Session};
use crate::era::mrtr as era_mrtr;
use crate::era::tasks::{RELATED_TASK, TaskRoute, TaskView, is_task_result, status_of, task_id_at};
use crate::jsonrpc::message::reparse;
use crate::jsonrpc::{ErrorCode, Message};
use crate::router::catalog::ListKind;

/// What the answer to a request about a task needs.
#[derive(Debug, Clone)]
pub(super) enum TaskHook {
    /// `tasks/get` or `tasks/cancel` of our task: the answer is a task.
    Follow(String),
    /// `tasks/result`: the answer is the call's result (its `related-task` was made
    /// ours as it arrived), never a new task.
    Result,
    /// The extension's `tasks/get` of our task: a task whose terminal form is the
    /// call's answer, or that waits for input.
    Get(String),
    /// The extension's `tasks/get` or `tasks/cancel` of our task on a legacy server,
    /// or the `tasks/result` a poll asked: made 2026 answers (`tasks_inline.rs`).
    Inline(String),
    /// A legacy client's `tools/call` asking a modern server for a task
    /// (`tasks_poll.rs`): a task answer is recorded and made a 2025 one.
    LegacyCreate,
    /// The end of such a task, polled by mcp-warden: the call's answer, kept.
    Bridged(String),
}

impl Session {
    /// `tasks/get`, `tasks/result`, `tasks/cancel` from a legacy client: routed to the
    /// server that made the task, under its own id.
    pub(super) fn on_task_request(&mut self, msg: &Message, origin: Origin, method: &str) {
        let line = std::str::from_utf8(msg.raw()).unwrap_or_default();
        let Some((ours, span)) = msg
            .params()
            .and_then(|params| task_id_at(line, params, &["taskId"]))
        else {
            let text = format!("`{method}` needs a string `taskId`");
            return self.reply_error(&origin, ErrorCode::InvalidParams, &text);
        };
        // A task is only reachable by the methods of the era that made it.
        let Some(route) = self
            .client
            .tasks
            .get(&ours)
            .filter(|r| r.modern == origin.is_modern())
            .cloned()
        else {
            let text = format!("unknown task `{ours}`");
            return self.reply_error(&origin, ErrorCode::InvalidParams, &text);
        };
        if self.client.bridges.contains(&ours) {
            // A legacy client's task on a modern server: mcp-warden speaks for it.
            return self.on_bridged_request(origin, method, &ours);
        }
        if method == "tasks/get"
            && let Some(terminal) = &route.terminal
        {
            // Filtered and audited when it first came: the same bytes again.
            return self.reply_result(&origin, terminal);
        }
        let running = self.slots[route.slot].upstream.as_ref().map(|u| u.instance);
        if running != Some(route.instance) {
            let name = &self.slots[route.slot].config.name;
            let text = format!("task `{ours}` is gone: server `{name}` restarted since");
            return self.reply_error(&origin, ErrorCode::InvalidParams, &text);
        }
        // A modern client's task on a legacy server: `tasks_inline.rs`.
        let inline = route.modern && self.is_legacy(route.slot);
        if inline && method == "tasks/update" {
            return self.legacy_task_update(msg, &origin, &ours, &route);
        }
        let server_id = serde_json::to_string(&route.server_id).unwrap_or_default();
        let mut edits = vec![(span, server_id)];
        if method == "tasks/update" {
            match self.task_update_input(route.slot, msg, &route) {
                Ok(edit) => edits.push(edit),
                Err(text) => return self.reply_error(&origin, ErrorCode::InvalidParams, &text),
            }
            edits.sort_by_key(|(r, _)| r.start);
        }
        let result = method == "tasks/result";
        let forward = Forward {
            // The payload of `tasks/result` is the call's answer: the filters, limits
            // and audit see it as one.
            method: if result { "tools/call" } else { method },
            // The extension's methods are seen as about the call's tool.
            tool: if result || route.modern {
                route.tool.clone()
            } else {
                None
            },
            edits,
            paged: false,
            monitor: route.monitor.clone().filter(|_| route.modern),
        };
        let id = origin.id.clone();
        self.forward_request(route.slot, msg, origin, forward);
        let Some(&(slot, ours_upstream)) = self.inflight.get(&id) else {
            return;
        };
        if let Some(Pending::Client(call)) = self.slots[slot].pending.get_mut(&ours_upstream) {
            if result || route.modern {
                // Audited under the call that made the task.
                call.arguments.clone_from(&route.arguments);
                call.monitor.clone_from(&route.monitor);
            }
            call.task = Some(match method {
                "tasks/result" => TaskHook::Result,
                _ if inline => TaskHook::Inline(ours),
                "tasks/get" if route.modern => TaskHook::Get(ours),
                _ => TaskHook::Follow(ours),
            });
        }
    }

    /// A `tasks/update`'s `inputResponses` as the server gets them: only the keys the
    /// client was shown (the server's other questions, and roots, are not the
    /// client's to answer), each answer passed through the in-filter's cell for
    /// answers (a secret in it is flagged: the user's choice). The edit, or why the
    /// update is refused.
    pub(super) fn task_update_input(
        &mut self,
        slot: usize,
        msg: &Message,
        route: &TaskRoute,
    ) -> Result<(std::ops::Range<usize>, String), String> {
        let Some((raw, span)) = msg.param(&["inputResponses"]) else {
            return Err("`tasks/update` needs `inputResponses`".to_owned());
        };
        let given = era_mrtr::members(raw)
            .ok_or_else(|| "`inputResponses` must be an object".to_owned())?;
        let kept: Vec<_> = given
            .iter()
            .filter(|m| route.issued.iter().any(|k| *k == m.key))
            .collect();
        if kept.is_empty() {
            return Err("no input was asked of the client under these keys".to_owned());
        }
        for m in &kept {
            let line =
                Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":0,"result":{}}}"#, m.value) + "\n");
            if let Some(answer) = reparse(&line) {
                self.flag_secret_in_answer(slot, &answer, "elicitation/create");
            }
        }
        let object = era_mrtr::object_of(
            kept.iter()
                .map(|m| Cow::Owned(era_mrtr::member(&m.key, m.value))),
        );
        Ok((span, object))
    }

    /// The answer to an extension `tasks/get` (ids already ours), before the stages:
    /// a terminal task becomes the answer of the call that made it (`call` now
    /// describes that call); a task waiting for input has its entries judged and is
    /// answered here (`None`).
    pub(super) fn task_poll(
        &mut self,
        index: usize,
        msg: &Message,
        mut call: super::ClientCall,
    ) -> Option<super::ClientCall> {
        let Some(TaskHook::Get(ours)) = &call.task else {
            return Some(call);
        };
        let ours = ours.clone();
        let result = msg.result()?;
        let route = self.client.tasks.get(&ours)?.clone();
        if let Some(kept) = &route.terminal {
            // Another poll's answer, or a push, ended the task while this poll was at
            // the server: the same bytes, audited once.
            self.timers.remove(&call.timer);
            self.inflight.remove(&call.origin.id);
            self.reply_result(&call.origin, kept);
            return None;
        }
        match status_of(result).as_deref() {
            Some("completed" | "failed") => {
                call.method = "tools/call".into();
                call.tool.clone_from(&route.tool);
                Some(call)
            }
            Some("input_required") => {
                let Ok(ir) = era_mrtr::parse(result) else {
                    return Some(call);
                };
                let capabilities = call.origin.capabilities();
                self.timers.remove(&call.timer);
                self.inflight.remove(&call.origin.id);
                let input = match self.judge_task_input(index, &ir.entries, &capabilities) {
                    Ok(input) => input,
                    Err(block) => {
                        // Stopped as the call would be: under its tool, audited.
                        call.method = "tools/call".into();
                        call.tool.clone_from(&route.tool);
                        self.block_call(index, msg, &call, block);
                        return None;
                    }
                };
                if !input.ours.is_empty() {
                    self.answer_task_input(index, &route, &input.ours, ir.request_state);
                }
                let mut members: Vec<Cow<'_, str>> =
                    ir.rest.iter().map(|m| Cow::Borrowed(m.text)).collect();
                if !input.asked.is_empty() {
                    members.push(Cow::Owned(era_mrtr::member(
                        "inputRequests",
                        &input.requests,
                    )));
                }
                if let Some(state) = ir.request_state {
                    members.push(Cow::Owned(era_mrtr::member("requestState", state)));
                }
                let text = era_mrtr::object_of(members);
                if let Some(route) = self.client.tasks.get_mut(&ours) {
                    route.issued = input.asked;
                }
                self.reply_result(&call.origin, &text);
                None
            }
            _ => Some(call),
        }
    }

    /// mcp-warden's own answers to a task's questions (the workspace for `roots/list`),
    /// sent to the server as a `tasks/update` of ours.
    pub(super) fn answer_task_input(
        &mut self,
        index: usize,
        route: &TaskRoute,
        answers: &[(String, String)],
        request_state: Option<&str>,
    ) {
        let Some(crate::era::Era::Modern(version)) = self.slots[index].state.era() else {
            return;
        };
        let responses: serde_json::Map<String, serde_json::Value> = answers
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), serde_json::from_str(v).ok()?)))
            .collect();
        let caps = self.declared_capabilities(index, None);
        let mut params = serde_json::json!({
            "taskId": route.server_id,
            "inputResponses": responses,
            "_meta": crate::era::meta::envelope(version, &caps),
        });
        if let Some(state) = request_state.and_then(|s| serde_json::from_str::<String>(s).ok()) {
            params["requestState"] = serde_json::Value::String(state);
        }
        let id = self.slots[index].mint(Pending::Internal);
        self.send_upstream_raw(
            index,
            super::wire::request(id, "tasks/update", Some(&params)),
        );
    }

    /// Keeps the terminal answer of an extension task as the client got it (`msg`,
    /// after the stages), for later polls.
    pub(super) fn keep_terminal(&mut self, task: Option<&TaskHook>, method: &str, msg: &Message) {
        // The result's text is taken only for a task's answer: every other answer
        // passes here too.
        if let (Some(TaskHook::Get(ours) | TaskHook::Bridged(ours)), "tools/call") = (task, method)
            && let Some(result) = msg.result()
            && let Some(route) = self.client.tasks.get_mut(ours)
        {
            route.terminal = Some(result.to_owned());
        }
    }

    /// Whether a ready server offers the 2026 tasks extension (its discover
    /// capabilities), or is a legacy one offering 2025-11-25 tasks for `tools/call`
    /// (mediated as the extension, `tasks_inline.rs`): only then is it advertised to
    /// modern clients.
    pub(super) fn offers_tasks_extension(&self) -> bool {
        self.slots.iter().any(|s| match &s.state {
            super::SlotState::Ready {
                capabilities, era, ..
            } => {
                crate::era::tasks::declares_extension(capabilities)
                    || (!era.is_modern()
                        && capabilities.pointer("/tasks/requests/tools/call").is_some())
            }
            _ => false,
        })
    }

    /// `tasks/list`: this session's tasks, as last seen; never asked upstream (a
    /// server's list would show other sessions' tasks and the servers' own ids).
    pub(super) fn on_tasks_list(&mut self, origin: &Origin) {
        let result = self.client.tasks.list_result();
        let line = crate::jsonrpc::error::result_response(&origin.id, &result);
        self.reply_checked(origin, line, None, "tasks/list");
    }

    /// The merged list of `kind` for `origin`, without the tools only a task can run
    /// that it cannot make a task of through mcp-warden: a modern client that does
    /// not declare the tasks extension (it could only fail calling them), and a legacy
    /// client whose tool is a modern server's that does not offer the extension.
    pub(super) fn listing_for(&self, origin: &Origin, kind: ListKind) -> Cow<'_, str> {
        let catalog = &self.catalogs[kind.index()];
        let listing = catalog.listing();
        if kind != ListKind::Tools {
            return Cow::Borrowed(listing);
        }
        // A modern client can make a task of a tool when it declares the tasks
        // extension (a legacy server's tasks are mediated as the extension); a legacy
        // client of a legacy server's, and of a modern server's that offers the
        // extension (`tasks_poll.rs` polls for it), which it is told is "optional".
        let extension = origin.declares_tasks();
        let view = |name: &str, support: Option<&str>| {
            let Some(route) = catalog.route(name) else {
                return TaskView::Keep;
            };
            let state = &self.slots[route.slot].state;
            let Some(era) = state.era() else {
                return TaskView::Keep;
            };
            let offers = || matches!(state, super::SlotState::Ready { capabilities, .. } if crate::era::tasks::declares_extension(capabilities));
            let can = match (origin.is_modern(), era.is_modern()) {
                (true, _) => extension,
                (false, false) => true,
                (false, true) if offers() => return TaskView::Optional,
                (false, true) => false,
            };
            if support == Some("required") && !can {
                TaskView::Hide
            } else {
                TaskView::Keep
            }
        };
        match crate::era::tasks::tools_for_client(listing, view) {
            Some((shown, hidden)) => {
                if !hidden.is_empty() {
                    tracing::info!(
                        ?hidden,
                        "tools only a task can run are not listed to a client that cannot make a task of them through mcp-warden"
                    );
                }
                Cow::Owned(shown)
            }
            None => Cow::Borrowed(listing),
        }
    }

    /// The answer to a request we forwarded about tasks, with the server's task ids
    /// made ours: a `tools/call` that created a task (`CreateTaskResult`) records it,
    /// a task answered for `tasks/get`/`tasks/cancel` gets our id, the payload of
    /// `tasks/result` gets ours in `related-task`. `None`: nothing to change.
    pub(super) fn task_answer(
        &mut self,
        index: usize,
        msg: &Message,
        call: &super::ClientCall,
    ) -> Option<Message> {
        // Searched as bytes; the texts (a UTF-8 check each) are taken only where a
        // task's id is read: most answers (a call that made no task) need neither.
        let result_bytes = msg.result_bytes()?;
        let texts = || Some((std::str::from_utf8(msg.raw()).ok()?, msg.result()?));
        let (ours, span) = match &call.task {
            // A modern client's task on a legacy server: made a 2026 one.
            None if &*call.method == "tools/call"
                && call.origin.is_modern()
                && self.is_legacy(index) =>
            {
                return self.legacy_task_created(index, msg, call);
            }
            None if &*call.method == "tools/call" => {
                // Most results hold no task of either kind, and say so to one search:
                // both kinds need the bytes `"task"` (or an escape that spells them).
                if !crate::era::tasks::may_have_task_member(result_bytes) {
                    return None;
                }
                // The extension's task is the result itself; a 2025-11-25 one is in it.
                let modern = is_task_result(result_bytes);
                let declared = call.origin.declares_tasks();
                if modern && !declared {
                    // The extension was not declared to the server for this request: a
                    // task is an invalid answer (seps/2663 "MUST NOT"), and its id would
                    // reach the client unrouted.
                    let name = &self.slots[index].config.name;
                    tracing::warn!(server = %name, "a task answered to a request that did not declare the tasks extension");
                    let text = format!(
                        "server `{name}` answered with a task, which this request did not allow"
                    );
                    let line =
                        crate::jsonrpc::error_response(msg.id(), ErrorCode::Internal, &text, None);
                    return reparse(&line);
                }
                let path: &[&str] = if modern {
                    &["taskId"]
                } else {
                    &["task", "taskId"]
                };
                let (line, result) = texts()?;
                let (server_id, span) = task_id_at(line, result, path)?;
                let task = if modern {
                    result
                } else {
                    crate::jsonrpc::message::member_at(line, result, &["task"])?.0
                };
                let task = serde_json::from_str(task).unwrap_or_default();
                let route = self.task_route(index, call, server_id, task, modern)?;
                match self.client.tasks.insert(route) {
                    Ok(ours) => (ours, span),
                    Err(e) => {
                        tracing::error!(error = %e, "a task could not be recorded");
                        return None;
                    }
                }
            }
            Some(TaskHook::LegacyCreate) => {
                return self.legacy_client_task_created(index, msg, call);
            }
            None | Some(TaskHook::Result | TaskHook::Bridged(_)) => return None,
            Some(TaskHook::Follow(ours) | TaskHook::Get(ours) | TaskHook::Inline(ours)) => {
                let (line, result) = texts()?;
                let (_, span) = task_id_at(line, result, &["taskId"])?;
                self.client.tasks.note(ours, result);
                (ours.clone(), span)
            }
        };
        let ours = serde_json::to_string(&ours).unwrap_or_default();
        reparse(&msg.rewrite(None, &[(span, &ours)]))
    }

    /// The route of a task slot `index` just created for `call`.
    pub(super) fn task_route(
        &self,
        index: usize,
        call: &super::ClientCall,
        server_id: String,
        task: serde_json::Value,
        modern: bool,
    ) -> Option<TaskRoute> {
        Some(TaskRoute {
            slot: index,
            instance: self.slots[index].upstream.as_ref()?.instance,
            server_id,
            tool: call.tool.clone(),
            arguments: call.arguments.clone(),
            monitor: call.monitor.clone(),
            task,
            modern,
            issued: Vec::new(),
            terminal: None,
        })
    }

    /// A message from slot `index` whose `params` or `result` carries
    /// `_meta["io.modelcontextprotocol/related-task"]` of a task we know: the same
    /// message naming our id. `None`: nothing to change (no such key, or a task id
    /// that is not one of this session's, left as it is: it routes nowhere).
    pub(super) fn retag_related_task(&self, index: usize, msg: &Message) -> Option<Message> {
        // Cheap test first: most messages never mention a related task. Every
        // upstream message passes here: a prepared SIMD finder over the bytes, before
        // the line's UTF-8 check.
        static RELATED: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| {
                memchr::memmem::Finder::new("io.modelcontextprotocol/related-task")
            });
        // The key may be spelled with escapes (`\/`, `\u`), which a client decodes.
        if RELATED.find(msg.raw()).is_none() && !crate::era::tasks::may_be_escaped(msg.raw()) {
            return None;
        }
        let line = std::str::from_utf8(msg.raw()).ok()?;
        let body = msg.params().or_else(|| msg.result())?;
        let (server_id, span) = task_id_at(line, body, &RELATED_TASK)?;
        let instance = self.slots[index].upstream.as_ref()?.instance;
        let ours = self.client.tasks.ours(index, instance, &server_id)?;
        let ours = serde_json::to_string(ours).unwrap_or_default();
        reparse(&msg.rewrite(None, &[(span, &ours)]))
    }

    /// The task a `notifications/tasks/status` from slot `index` is about, when it is
    /// one of ours: our id, and where the server's is in the message.
    pub(super) fn status_subject(
        &self,
        index: usize,
        msg: &Message,
    ) -> Option<(String, std::ops::Range<usize>)> {
        let line = std::str::from_utf8(msg.raw()).ok()?;
        let (server_id, span) = task_id_at(line, msg.params()?, &["taskId"])?;
        let instance = self.slots[index].upstream.as_ref()?.instance;
        let ours = self.client.tasks.ours(index, instance, &server_id)?;
        Some((ours.to_owned(), span))
    }

    /// `notifications/tasks/status` from slot `index`: re-tagged with our id; a status
    /// of a task we do not know (not ours, or before its `CreateTaskResult`) is
    /// dropped, since its id would mean nothing to the client.
    pub(super) fn task_status(&mut self, index: usize, msg: &Message) -> Option<Bytes> {
        let params = msg.params()?;
        let Some((ours, span)) = self.status_subject(index, msg) else {
            tracing::debug!(server = %self.slots[index].config.name, "status of a task not ours (yet); dropped");
            return None;
        };
        if self.client.bridges.contains(&ours) {
            // mcp-warden polls it and tells the legacy client itself; the server's
            // modern shape would carry the result past the filters.
            return None;
        }
        self.client.tasks.note(&ours, params);
        let ours = serde_json::to_string(&ours).unwrap_or_default();
        Some(msg.rewrite(None, &[(span, &ours)]))
    }
}
