//! 2025-11-25 tasks through the session (docs/dual-era.md §2.5, cell LC→LS): the
//! task ids upstreams create become ids of ours ([`crate::era::tasks::TaskTable`]),
//! `tasks/get`, `tasks/result` and `tasks/cancel` are routed by the table with the
//! server's id put back, `tasks/list` is answered from the table (this session's
//! tasks only), and `tasks/result`'s payload, the call's real answer, goes through
//! the out-filter, limits and audit as the answer of the call that made the task.

use std::borrow::Cow;

use bytes::Bytes;

use super::client::Forward;
use super::{Origin, Pending, Session};
use crate::era::tasks::{RELATED_TASK, TaskRoute, task_id_at};
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
        let Some(route) = self.client.tasks.get(&ours).cloned() else {
            let text = format!("unknown task `{ours}`");
            return self.reply_error(&origin, ErrorCode::InvalidParams, &text);
        };
        let running = self.slots[route.slot].upstream.as_ref().map(|u| u.instance);
        if running != Some(route.instance) {
            let name = &self.slots[route.slot].config.name;
            let text = format!("task `{ours}` is gone: server `{name}` restarted since");
            return self.reply_error(&origin, ErrorCode::InvalidParams, &text);
        }
        let server_id = serde_json::to_string(&route.server_id).unwrap_or_default();
        let result = method == "tasks/result";
        let forward = Forward {
            // The payload of `tasks/result` is the call's answer: the filters, limits
            // and audit see it as one.
            method: if result { "tools/call" } else { method },
            tool: if result { route.tool.clone() } else { None },
            edits: vec![(span, server_id)],
            paged: false,
            monitor: None,
        };
        let id = origin.id.clone();
        self.forward_request(route.slot, msg, origin, forward);
        let Some(&(slot, ours_upstream)) = self.inflight.get(&id) else {
            return;
        };
        if let Some(Pending::Client(call)) = self.slots[slot].pending.get_mut(&ours_upstream) {
            if result {
                call.arguments.clone_from(&route.arguments);
                call.monitor.clone_from(&route.monitor);
                call.task = Some(TaskHook::Result);
            } else {
                call.task = Some(TaskHook::Follow(ours));
            }
        }
    }

    /// `tasks/list`: this session's tasks, as last seen; never asked upstream (a
    /// server's list would show other sessions' tasks and the servers' own ids).
    pub(super) fn on_tasks_list(&mut self, origin: &Origin) {
        let result = self.client.tasks.list_result();
        let line = crate::jsonrpc::error::result_response(&origin.id, &result);
        self.reply_checked(origin, line, None, "tasks/list");
    }

    /// The merged list of `kind` for `origin`, without the tools only a task can run
    /// that it cannot make a task of: mcp-warden mediates 2025-11-25 tasks between a
    /// legacy client and a legacy server only (not the 2026 extension, nor across
    /// eras), so a modern client is shown none of them, a legacy one none of a modern
    /// server's.
    pub(super) fn listing_for(&self, origin: &Origin, kind: ListKind) -> Cow<'_, str> {
        let catalog = &self.catalogs[kind.index()];
        let listing = catalog.listing();
        if kind != ListKind::Tools {
            return Cow::Borrowed(listing);
        }
        let cannot = |name: &str| {
            origin.is_modern()
                || catalog.route(name).is_none_or(|route| {
                    self.slots[route.slot]
                        .state
                        .era()
                        .is_none_or(crate::era::Era::is_modern)
                })
        };
        match crate::era::tasks::without_task_only_tools(listing, cannot) {
            Some((kept, hidden)) => {
                tracing::info!(
                    ?hidden,
                    "tools only a task can run are not listed to a client that cannot make a task of them through mcp-warden (the io.modelcontextprotocol/tasks extension is not mediated)"
                );
                Cow::Owned(kept)
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
        let result = msg.result()?;
        let line = std::str::from_utf8(msg.raw()).ok()?;
        let (ours, span) = match &call.task {
            None if &*call.method == "tools/call" => {
                let (server_id, span) = task_id_at(line, result, &["task", "taskId"])?;
                let (task, _) = crate::jsonrpc::message::member_at(line, result, &["task"])?;
                let route = TaskRoute {
                    slot: index,
                    instance: self.slots[index].upstream.as_ref()?.instance,
                    server_id,
                    tool: call.tool.clone(),
                    arguments: call.arguments.clone(),
                    monitor: call.monitor.clone(),
                    task: serde_json::from_str(task).unwrap_or_default(),
                };
                match self.client.tasks.insert(route) {
                    Ok(ours) => (ours, span),
                    Err(e) => {
                        tracing::error!(error = %e, "a task could not be recorded");
                        return None;
                    }
                }
            }
            None | Some(TaskHook::Result) => return None,
            Some(TaskHook::Follow(ours)) => {
                let (_, span) = task_id_at(line, result, &["taskId"])?;
                self.client.tasks.note(ours, result);
                (ours.clone(), span)
            }
        };
        let ours = serde_json::to_string(&ours).unwrap_or_default();
        reparse(&msg.rewrite(None, &[(span, &ours)]))
    }

    /// A message from slot `index` whose `params` or `result` carries
    /// `_meta["io.modelcontextprotocol/related-task"]` of a task we know: the same
    /// message naming our id. `None`: nothing to change (no such key, or a task id
    /// that is not one of this session's, left as it is: it routes nowhere).
    pub(super) fn retag_related_task(&self, index: usize, msg: &Message) -> Option<Message> {
        let line = std::str::from_utf8(msg.raw()).ok()?;
        // Cheap test first: most messages never mention a related task.
        if !line.contains("io.modelcontextprotocol/related-task") {
            return None;
        }
        let body = msg.params().or_else(|| msg.result())?;
        let (server_id, span) = task_id_at(line, body, &RELATED_TASK)?;
        let instance = self.slots[index].upstream.as_ref()?.instance;
        let ours = self.client.tasks.ours(index, instance, &server_id)?;
        let ours = serde_json::to_string(ours).unwrap_or_default();
        reparse(&msg.rewrite(None, &[(span, &ours)]))
    }

    /// `notifications/tasks/status` from slot `index`: re-tagged with our id; a status
    /// of a task we do not know (not ours, or before its `CreateTaskResult`) is
    /// dropped, since its id would mean nothing to the client.
    pub(super) fn task_status(&mut self, index: usize, msg: &Message) -> Option<Bytes> {
        let line = std::str::from_utf8(msg.raw()).ok()?;
        let params = msg.params()?;
        let (server_id, span) = task_id_at(line, params, &["taskId"])?;
        let instance = self.slots[index].upstream.as_ref()?.instance;
        let Some(ours) = self
            .client
            .tasks
            .ours(index, instance, &server_id)
            .map(str::to_owned)
        else {
            tracing::debug!(server = %self.slots[index].config.name, "status of a task not ours (yet); dropped");
            return None;
        };
        self.client.tasks.note(&ours, params);
        let ours = serde_json::to_string(&ours).unwrap_or_default();
        Some(msg.rewrite(None, &[(span, &ours)]))
    }
}
