//! `notifications/tasks` of the 2026 tasks extension (seps/2663 "Task Status
//! Notifications"; docs/dual-era.md §2.4, §2.5, §7.1): a modern client's
//! `subscriptions/listen` naming `taskIds` of ours.
//!
//! - A listen's task ids are honoured when they are this session's extension tasks
//!   of a server process still running ([`Session::listenable_task`]); the
//!   acknowledgement lists those, and our one listen per modern server is widened
//!   with the server's ids of them (`subscriptions.rs`).
//! - A modern server's push is mapped back through the table (server and process
//!   must match: another server's task of the same id, or one we never recorded,
//!   routes nowhere) and goes only to the client listens naming it, tagged with
//!   each one's id. A terminal one is the answer of the call that made the task,
//!   judged as the `tasks/get` that finds it terminal would be
//!   ([`Session::answer_through_stages`]: out-filter, limits, flows, audit), once:
//!   its bytes are kept, and later pushes and polls get them again.
//! - A modern client's task on a legacy server (`tasks_inline.rs`): each change
//!   mcp-warden observes (a `notifications/tasks/status`, the payload fetched) is
//!   pushed as the task a `tasks/get` would give at that moment.

use std::time::Instant;

use serde_json::Value;

use super::tasks::TaskHook;
use super::upstreams::{Answering, Deliver};
use super::{Origin, Session, reparse, wire};
use crate::era::subscriptions::{SUBSCRIPTION_ID, tagged};
use crate::jsonrpc::{ErrorCode, Id, Message, error_response};

/// The notification that carries a task's status.
const METHOD: &str = "notifications/tasks";

impl Session {
    /// Whether task `ours` may be named by a modern client's listen: one of this
    /// session's extension tasks, made by a server process still running (a task
    /// dies with its process).
    pub(super) fn listenable_task(&self, ours: &str) -> bool {
        self.client.tasks.get(ours).is_some_and(|r| {
            r.modern && self.slots[r.slot].upstream.as_ref().map(|u| u.instance) == Some(r.instance)
        })
    }

    /// The slots of tasks `ours`, each once.
    pub(super) fn task_slots(&self, ours: &[String]) -> Vec<usize> {
        let mut slots: Vec<usize> = ours
            .iter()
            .filter_map(|id| self.client.tasks.get(id).map(|r| r.slot))
            .collect();
        slots.sort_unstable();
        slots.dedup();
        slots
    }

    /// The server's ids of the tasks some client listen names on slot `index`'s
    /// running process, sorted: what our listen there asks.
    pub(super) fn server_task_ids(&self, index: usize) -> Vec<String> {
        let mut ids: Vec<String> = self
            .subs
            .task_ids()
            .into_iter()
            .filter(|ours| self.listenable_task(ours))
            .filter_map(|ours| self.client.tasks.get(ours))
            .filter(|r| r.slot == index)
            .map(|r| r.server_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// A request that needs the tasks extension from a client that did not declare it
    /// (a listen naming `taskIds`, a call of a tool only a task can run): -32021 with
    /// what it must declare (seps/2663).
    pub(super) fn refuse_without_tasks_extension(&mut self, origin: &Origin) {
        let data = serde_json::json!({
            "requiredCapabilities": {"extensions": crate::era::tasks::extension_capability()}
        });
        let line = error_response(
            Some(&origin.id),
            ErrorCode::MissingCapability,
            "Missing required client capability",
            Some(data),
        );
        self.reply(origin, line);
    }

    /// A modern server's `notifications/tasks`: to the client listens naming the task,
    /// under our id; a terminal status as the call's answer (once).
    pub(super) fn on_task_pushed(&mut self, index: usize, msg: &Message) {
        let server = self.slots[index].config.name.clone();
        let Some((ours, _)) = self.status_subject(index, msg) else {
            tracing::info!(server = %server, "a task status of a task not this session's (another server's, or unknown); dropped");
            return;
        };
        let listens: Vec<Id> = self.subs.naming_task(&ours).cloned().collect();
        let route = self.client.tasks.get(&ours).filter(|r| r.modern);
        let (Some(route), false) = (route, listens.is_empty() || self.is_legacy(index)) else {
            tracing::debug!(server = %server, "a task status no listen asked for; dropped");
            return;
        };
        if let Some(kept) = route.terminal.clone() {
            // Judged when it first ended: the same bytes, not audited again.
            return self.notify_listens(index, &listens, &kept);
        }
        let Some(mut task) = msg
            .params()
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .filter(Value::is_object)
        else {
            return;
        };
        task["taskId"] = Value::String(ours.clone());
        if let Some(meta) = task.get_mut("_meta").and_then(Value::as_object_mut) {
            // The server's tag names our listen there, nothing of the client's.
            meta.remove(SUBSCRIPTION_ID);
        }
        let text = task.to_string();
        self.client.tasks.note(&ours, &text);
        match task["status"].as_str() {
            Some("completed" | "failed") => self.push_terminal(index, &ours, &listens, task),
            Some("input_required") => {
                // Its questions are judged on the client's next `tasks/get`
                // (`task_poll`), which the client is to send anyway.
                tracing::debug!(server = %server, "an input_required task status is not pushed; the client's poll gets it judged");
            }
            _ => self.notify_listens(index, &listens, &text),
        }
    }

    /// `notifications/tasks` with `task` (a task's JSON text, ids ours) to each of
    /// `listens`, tagged with its id, through the stages as any server notification
    /// (a terminal task's kept bytes again: nothing left to redact, nothing audited).
    pub(super) fn notify_listens(&mut self, index: usize, listens: &[Id], task: &str) {
        for id in listens {
            let line = wire::notification(METHOD, Some(tagged(Some(task), id)));
            self.forward_to_client(index, line);
        }
    }

    /// A task's terminal form (`task`, ids ours), judged as the answer of the call
    /// that made it, then pushed to `listens` and kept (`keep_terminal`).
    pub(super) fn push_terminal(&mut self, index: usize, ours: &str, listens: &[Id], task: Value) {
        let Some(route) = self.client.tasks.get(ours).cloned() else {
            return;
        };
        let mut task = task;
        if task.get("resultType").is_none() {
            // What a `tasks/get` result says, which later polls are answered with.
            task["resultType"] = Value::String("complete".to_owned());
        }
        let line = crate::jsonrpc::error::result_response(&Id::number(0), &task.to_string());
        let Some(msg) = reparse(&line) else { return };
        let hook = TaskHook::Get(ours.to_owned());
        let answering = Answering {
            method: "tools/call",
            tool: route.tool.as_deref(),
            arguments: route.arguments.as_deref(),
            monitor: route.monitor.as_deref(),
            started: Instant::now(),
            task: Some(&hook),
        };
        self.answer_through_stages(index, &msg, &answering, Deliver::Listens(listens));
    }

    /// `notifications/tasks` with `task` (a terminal task judged as the call's answer
    /// just now) to each of `listens`, tagged with its id; not through the stages again.
    pub(super) fn push_task(&mut self, listens: &[Id], task: Option<&str>) {
        for id in listens {
            let line = wire::notification(METHOD, Some(tagged(task, id)));
            self.out.push_back(line);
        }
    }
}
