//! Tasks (2025-11-25 `tasks/*` and the 2026 `io.modelcontextprotocol/tasks`
//! extension, docs/dual-era.md §2.5): the session's table of task ids and the shapes
//! mcp-warden reads in task messages.
//!
//! Every task id an upstream creates is replaced by an opaque one of ours, `mwt-` and
//! 16 random bytes in base64url. Upstreams pick their own ids, so two of them may use
//! the same one, and a server must never learn or address another server's task: the
//! table is the only way from our id back to a server and its id, and nothing is ever
//! parsed out of an id (SPEC "Names").

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::ops::Range;

use bytes::Bytes;
use serde_json::Value;

use serde_json::value::RawValue;

use crate::jsonrpc::message::member_at;
use crate::upstream::InstanceId;

/// Tasks remembered per session; past it the oldest terminal one is forgotten (the
/// oldest of all when none is terminal), so a server creating tasks without end
/// costs bounded memory.
pub const MAX_TASKS: usize = 4096;
/// What every task id of ours starts with.
pub const PREFIX: &str = "mwt-";
/// The capability offered to a legacy client when a ready upstream offers tasks for
/// `tools/call` (L-schema.ts `ServerCapabilities.tasks`).
pub const LEGACY_CAPABILITY: &str = r#"{"list":{},"cancel":{},"requests":{"tools":{"call":{}}}}"#;

/// The 2026 tasks extension's identifier (seps/2663-tasks-extension.md).
pub const EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// Whether `capabilities` (a modern request's `clientCapabilities`, or a server's
/// discover capabilities) declare the tasks extension.
#[must_use]
pub fn declares_extension(capabilities: &Value) -> bool {
    capabilities
        .get("extensions")
        .and_then(|e| e.get(EXTENSION))
        .is_some()
}

/// The `extensions` member that declares the tasks extension (no settings are
/// defined: an empty object means support).
#[must_use]
pub fn extension_capability() -> Value {
    serde_json::json!({ EXTENSION: {} })
}

/// Whether `result` (a result's JSON text) is the extension's `CreateTaskResult`.
/// Takes the text's bytes as well (a slice of a parsed line): a result that never
/// mentions a task is then not checked for UTF-8 at all.
#[must_use]
pub fn is_task_result(result: impl AsRef<[u8]>) -> bool {
    // Every `tools/call` answer passes here, and most never mention it: one SIMD
    // search (a prepared finder), no parse. The value can also be spelled with `\u`
    // escapes (`"t\u0061sk"`), which a client decodes to a task: any `\u` parses too.
    let result = result.as_ref();
    (TASK.find(result).is_some() || may_be_escaped(result))
        && serde_json::from_slice::<Value>(result)
            .is_ok_and(|v| v.get("resultType").and_then(Value::as_str) == Some("task"))
}

/// Whether the JSON text `text` has an escape that can spell a letter or a `/`
/// (`\u`, `\/`): where it has none, a byte search for a key or a string value of
/// letters, digits, `.`, `-`, `_` and `/` finds every spelling a JSON parser accepts.
#[must_use]
pub fn may_be_escaped(text: &[u8]) -> bool {
    static ESCAPES: std::sync::LazyLock<[memchr::memmem::Finder<'static>; 2]> =
        std::sync::LazyLock::new(|| {
            [
                memchr::memmem::Finder::new("\\u"),
                memchr::memmem::Finder::new("\\/"),
            ]
        });
    // Most texts have no backslash at all: one byte search says so for both.
    memchr::memchr(b'\\', text).is_some() && ESCAPES.iter().any(|f| f.find(text).is_some())
}

/// Whether the JSON text `text` could have a member whose key is `quoted` (the key's
/// JSON text, quotes included): it has those bytes, or an escape that could spell
/// them otherwise. `false` means no object in `text` has that key.
#[must_use]
pub fn may_have_member(text: impl AsRef<[u8]>, quoted: &str) -> bool {
    let text = text.as_ref();
    memchr::memchr(b'\\', text).is_some() || memchr::memmem::find(text, quoted.as_bytes()).is_some()
}

/// `"task"` (quotes included): a key, or a value of `resultType`.
static TASK: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new("\"task\""));

/// [`may_have_member`] for the key `task`, with a prepared finder: every
/// `tools/call` answer is asked (a one-shot `memmem::find` sets a searcher up each
/// time, ~0.5k instructions).
#[must_use]
pub fn may_have_task_member(text: &[u8]) -> bool {
    memchr::memchr(b'\\', text).is_some() || TASK.find(text).is_some()
}

/// The `status` of a task object (a `tasks/get` result), when it has one.
#[must_use]
pub fn status_of(task: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head {
        status: Option<String>,
    }
    serde_json::from_str::<Head>(task).ok()?.status
}

/// Why a task could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("no random bytes for a task id: {0}")]
    Random(#[from] std::io::Error),
}

/// Where one task of ours lives, and the call that made it (its terminal result is
/// filtered and audited as that call's answer).
#[derive(Debug, Clone)]
pub struct TaskRoute {
    pub slot: usize,
    /// The server process that made it: a restarted server no longer knows it.
    pub instance: InstanceId,
    /// The server's own id (decoded).
    pub server_id: String,
    /// The exposed tool name of the call that made it.
    pub tool: Option<String>,
    /// That call's `arguments` as they arrived (the audit's HMAC).
    pub arguments: Option<Bytes>,
    /// Monitor mode: the rule that would have stopped that call.
    pub monitor: Option<String>,
    /// The task as last seen (`taskId` ours), for `tasks/list`.
    pub task: Value,
    /// Made under the 2026 extension (`resultType: "task"`), not 2025-11-25 `tasks/*`:
    /// only a modern client's extension methods reach it, only a legacy client's
    /// 2025-11-25 methods the others.
    pub modern: bool,
    /// The `inputRequests` keys the client was last shown: `tasks/update` answers
    /// only these.
    pub issued: Vec<String>,
    /// The terminal `tasks/get` result as the client got it (filtered, ids ours):
    /// later polls are answered with it, so the call's answer is filtered and
    /// audited once.
    pub terminal: Option<String>,
}

impl TaskRoute {
    fn is_terminal(&self) -> bool {
        self.task
            .get("status")
            .and_then(Value::as_str)
            .is_some_and(is_terminal)
    }
}

/// Whether a 2025-11-25 task status is final.
#[must_use]
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

/// This session's tasks: our id → route, oldest first.
#[derive(Debug, Default)]
pub struct TaskTable {
    routes: HashMap<String, TaskRoute>,
    order: VecDeque<String>,
}

impl TaskTable {
    /// Records a task a server created under a fresh id of ours, which it returns.
    ///
    /// # Errors
    /// When no random bytes could be read for the id.
    pub fn insert(&mut self, mut route: TaskRoute) -> Result<String, TaskError> {
        let mut bytes = [0u8; 16];
        crate::audit::key::random_bytes(&mut bytes)?;
        let id = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        if self.routes.len() >= MAX_TASKS {
            self.evict();
        }
        if let Some(task) = route.task.as_object_mut() {
            task.insert("taskId".to_owned(), Value::String(id.clone()));
        }
        self.routes.insert(id.clone(), route);
        self.order.push_back(id.clone());
        Ok(id)
    }

    fn evict(&mut self) {
        let victim = self
            .order
            .iter()
            .position(|id| self.routes.get(id).is_some_and(TaskRoute::is_terminal))
            .unwrap_or(0);
        if let Some(id) = self.order.remove(victim) {
            self.routes.remove(&id);
        }
    }

    #[must_use]
    pub fn get(&self, id: &str) -> Option<&TaskRoute> {
        self.routes.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut TaskRoute> {
        self.routes.get_mut(id)
    }

    /// Our id for the task `server_id` of the server process `instance` in `slot`.
    #[must_use]
    pub fn ours(&self, slot: usize, instance: InstanceId, server_id: &str) -> Option<&str> {
        self.routes
            .iter()
            .find(|(_, r)| r.slot == slot && r.instance == instance && r.server_id == server_id)
            .map(|(id, _)| id.as_str())
    }

    /// Keeps the task object a server just sent about our task `id` (its `taskId`
    /// made ours), for `tasks/list`.
    pub fn note(&mut self, id: &str, task: &str) {
        let Some(route) = self.routes.get_mut(id) else {
            return;
        };
        if let Ok(Value::Object(mut task)) = serde_json::from_str::<Value>(task) {
            task.insert("taskId".to_owned(), Value::String(id.to_owned()));
            task.remove("_meta");
            route.task = Value::Object(task);
        }
    }

    /// The `tasks/list` result: this session's tasks, oldest first.
    #[must_use]
    pub fn list_result(&self) -> String {
        let tasks: Vec<&Value> = self
            .order
            .iter()
            .filter_map(|id| self.routes.get(id).map(|r| &r.task))
            .collect();
        serde_json::json!({ "tasks": tasks }).to_string()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// A task id at `path` inside `text` (a slice of `line`): its decoded value and span.
#[must_use]
pub fn task_id_at(line: &str, text: &str, path: &[&str]) -> Option<(String, Range<usize>)> {
    let (raw, span) = member_at(line, text, path)?;
    let id = serde_json::from_str::<String>(raw).ok()?;
    Some((id, span))
}

/// Where `_meta["io.modelcontextprotocol/related-task"].taskId` sits in `text`.
pub const RELATED_TASK: [&str; 3] = ["_meta", "io.modelcontextprotocol/related-task", "taskId"];

/// The capability a legacy client is offered when any of `offered` (the ready
/// upstreams' `tasks` capabilities) runs `tools/call` as tasks.
pub fn legacy_capability<'a>(mut offered: impl Iterator<Item = &'a Value>) -> Option<Value> {
    offered
        .any(|t| t.pointer("/requests/tools/call").is_some())
        .then(|| serde_json::from_str(LEGACY_CAPABILITY).ok())
        .flatten()
}

/// What a client is shown of one tool, as far as tasks go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskView {
    /// As the server wrote it.
    Keep,
    /// Left out: only a task can run it, and this client cannot make one of it through
    /// mcp-warden (design §6 Q3): it could only fail calling it.
    Hide,
    /// Shown with `execution.taskSupport: "optional"`: a modern server's tool (the
    /// 2026 `Tool` has no `execution`) shown to a legacy client, when that server
    /// offers the tasks extension. The 2026 server decides per call whether to make a
    /// task, which is what "optional" tells a 2025 client; without it a strict 2025
    /// client never asks for a task (absent means "forbidden").
    Optional,
}

/// A merged `tools/list` result (`{"tools":[…]}`, see [`crate::router::catalog`]) as a
/// client is to see it: `view(name, taskSupport)` says per tool. Every tool kept as it
/// is stays byte for byte. `None`: nothing changes; else the new listing and the names
/// of the tools left out.
#[must_use]
pub fn tools_for_client(
    listing: &str,
    view: impl Fn(&str, Option<&str>) -> TaskView,
) -> Option<(String, Vec<String>)> {
    #[derive(serde::Deserialize)]
    struct Listing<'a> {
        #[serde(borrow)]
        tools: Vec<&'a RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Tool {
        name: String,
    }
    let listing: Listing<'_> = serde_json::from_str(listing).ok()?;
    let mut hidden = Vec::new();
    let mut changed = false;
    let mut kept: Vec<Cow<'_, str>> = Vec::with_capacity(listing.tools.len());
    for raw in listing.tools {
        let Ok(Tool { name }) = serde_json::from_str::<Tool>(raw.get()) else {
            kept.push(Cow::Borrowed(raw.get()));
            continue;
        };
        let support = super::task_shapes::task_support(raw.get());
        match view(&name, support.as_deref()) {
            TaskView::Keep => kept.push(Cow::Borrowed(raw.get())),
            TaskView::Hide => hidden.push(name),
            TaskView::Optional => match with_optional_task_support(raw.get()) {
                Some(tool) => {
                    changed = true;
                    kept.push(Cow::Owned(tool));
                }
                None => kept.push(Cow::Borrowed(raw.get())),
            },
        }
    }
    (changed || !hidden.is_empty()).then(|| (format!("{{\"tools\":[{}]}}", kept.join(",")), hidden))
}

/// `tool` (a definition's JSON text) with `execution.taskSupport: "optional"`, other
/// members of `execution` kept. `None`: not an object, or it says already.
fn with_optional_task_support(tool: &str) -> Option<String> {
    let mut value: Value = serde_json::from_str(tool).ok()?;
    let object = value.as_object_mut()?;
    let execution = object
        .entry("execution")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    let execution = execution.as_object_mut()?;
    if execution.contains_key("taskSupport") {
        return None;
    }
    execution.insert("taskSupport".to_owned(), Value::from("optional"));
    Some(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The session asks `may_have_task_member` first and `is_task_result` only where it
    /// says yes: every task result must pass the first, however it is spelled.
    #[test]
    fn every_task_result_may_have_a_task_member() {
        for result in [
            r#"{"resultType":"task","taskId":"t1"}"#,
            r#"{"resultType":"t\u0061sk","taskId":"t1"}"#,
            r#"{"resultType":"\u0074ask","taskId":"t1"}"#,
            r#"{"result\u0054ype":"task"}"#,
        ] {
            assert!(is_task_result(result), "{result}");
            assert!(may_have_task_member(result.as_bytes()), "{result}");
        }
        let plain = r#"{"content":[{"type":"text","text":"tasks"}]}"#;
        assert!(!may_have_task_member(plain.as_bytes()) && !is_task_result(plain));
    }

    fn route(slot: usize, server_id: &str, status: &str) -> TaskRoute {
        TaskRoute {
            slot,
            instance: 1,
            server_id: server_id.to_owned(),
            tool: Some("s__t".to_owned()),
            arguments: None,
            monitor: None,
            task: serde_json::json!({"taskId": server_id, "status": status}),
            modern: false,
            issued: Vec::new(),
            terminal: None,
        }
    }

    #[test]
    fn ids_are_opaque_and_unique_and_route_back_to_their_server() {
        let mut table = TaskTable::default();
        // Two servers using the same id of their own get two ids of ours.
        let a = table.insert(route(0, "1", "working")).expect("id");
        let b = table.insert(route(1, "1", "working")).expect("id");
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert!(id.starts_with(PREFIX));
            assert_eq!(id.len(), PREFIX.len() + 22);
        }
        assert_eq!(table.get(&a).map(|r| r.slot), Some(0));
        assert_eq!(table.ours(1, 1, "1"), Some(b.as_str()));
        assert_eq!(table.ours(1, 2, "1"), None, "another process of the server");
        assert!(table.get("1").is_none());
    }

    #[test]
    fn the_oldest_terminal_task_goes_first_when_full() {
        let mut table = TaskTable::default();
        let first = table.insert(route(0, "first", "working")).expect("id");
        let done = table.insert(route(0, "done", "completed")).expect("id");
        for i in 2..MAX_TASKS {
            table
                .insert(route(0, &i.to_string(), "working"))
                .expect("id");
        }
        assert_eq!(table.len(), MAX_TASKS);
        table.insert(route(0, "new", "working")).expect("id");
        assert_eq!(table.len(), MAX_TASKS);
        assert!(table.get(&done).is_none(), "the terminal one was evicted");
        assert!(table.get(&first).is_some(), "a working one stays");
    }

    #[test]
    fn note_keeps_our_id_and_list_shows_it() {
        let mut table = TaskTable::default();
        let id = table.insert(route(0, "abc", "working")).expect("id");
        table.note(
            &id,
            r#"{"taskId":"abc","status":"completed","_meta":{"x":1}}"#,
        );
        let list: Value = serde_json::from_str(&table.list_result()).expect("json");
        assert_eq!(
            list,
            serde_json::json!({"tasks": [{"taskId": id, "status": "completed"}]})
        );
    }

    #[test]
    fn find_gives_spans_in_the_line() {
        let line = r#"{"result":{"task":{"taskId":"a\"b","status":"working"}}}"#;
        let result = &line[10..line.len() - 1];
        let (id, span) = task_id_at(line, result, &["task", "taskId"]).expect("found");
        assert_eq!(id, "a\"b");
        assert_eq!(&line[span], r#""a\"b""#);
        assert!(task_id_at(line, result, &["taskId"]).is_none());
    }

    #[test]
    fn task_only_tools_are_hidden_and_the_rest_kept_byte_for_byte() {
        let listing = r#"{"tools":[{"name":"a","execution":{"taskSupport":"optional"},"x":1e3},{"name":"b","execution":{"taskSupport":"required"}},{"name":"c"}]}"#;
        let hide_required = |_: &str, support: Option<&str>| {
            if support == Some("required") {
                TaskView::Hide
            } else {
                TaskView::Keep
            }
        };
        assert!(tools_for_client(listing, |_, _| TaskView::Keep).is_none());
        let (kept, hidden) = tools_for_client(listing, hide_required).expect("one hidden");
        assert_eq!(
            kept,
            r#"{"tools":[{"name":"a","execution":{"taskSupport":"optional"},"x":1e3},{"name":"c"}]}"#
        );
        assert_eq!(hidden, ["b"]);
        assert!(tools_for_client(r#"{"tools":[{"name":"c"}]}"#, hide_required).is_none());
    }

    #[test]
    fn a_modern_servers_tools_are_optional_tasks_to_a_legacy_client() {
        let listing = r#"{"tools":[{"name":"a","inputSchema":{"type":"object"}},{"name":"b","execution":{"other":1}},{"name":"c","execution":{"taskSupport":"forbidden"}},{"name":"d","x":1e3}]}"#;
        let (shown, hidden) = tools_for_client(listing, |name, _| {
            if name == "d" {
                TaskView::Keep
            } else {
                TaskView::Optional
            }
        })
        .expect("changed");
        assert!(hidden.is_empty());
        let tools: Value = serde_json::from_str(&shown).expect("json");
        assert_eq!(tools["tools"][0]["execution"]["taskSupport"], "optional");
        assert_eq!(tools["tools"][0]["inputSchema"]["type"], "object");
        assert_eq!(
            tools["tools"][1]["execution"],
            serde_json::json!({"other": 1, "taskSupport": "optional"})
        );
        // What a definition says already is not overridden.
        assert_eq!(tools["tools"][2]["execution"]["taskSupport"], "forbidden");
        // A tool kept stays byte for byte.
        assert!(shown.ends_with(r#"{"name":"d","x":1e3}]}"#), "{shown}");
    }

    #[test]
    fn the_extension_is_read_from_capabilities_and_results() {
        let declared = serde_json::json!({"extensions": {EXTENSION: {}}, "roots": {}});
        assert!(declares_extension(&declared));
        assert!(!declares_extension(
            &serde_json::json!({"extensions": {"x": {}}})
        ));
        assert_eq!(extension_capability(), declared["extensions"]);
        for (text, has) in [
            (r#"{"content":[]}"#, false),
            (r#"{"task":{"taskId":"a"}}"#, true),
            (r#"{"t\u0061sk":{"taskId":"a"}}"#, true),
            (r#"{"x":{"task":1}}"#, true),
        ] {
            assert_eq!(may_have_member(text, "\"task\""), has, "{text}");
            assert_eq!(may_have_task_member(text.as_bytes()), has, "{text}");
        }
        assert!(is_task_result(
            r#"{"resultType":"task","taskId":"1","status":"working"}"#
        ));
        // The bytes of a line's result, as the session passes them.
        assert!(is_task_result(
            br#"{"resultType":"task","taskId":"1","status":"working"}"#
        ));
        assert!(!is_task_result(br#"{"content":[]}"#));
        assert!(!is_task_result(
            r#"{"content":[{"type":"text","text":"\"task\""}]}"#
        ));
        // A server that spells the value with escapes still makes a task.
        assert!(is_task_result(
            r#"{"resultType":"t\u0061sk","taskId":"1","status":"working"}"#
        ));
        assert!(is_task_result(
            r#"{"result\u0054ype":"\u0074ask","taskId":"1"}"#
        ));
        assert!(!is_task_result(
            r#"{"content":[{"type":"text","text":"\u00e9"}]}"#
        ));
        for (text, escaped) in [
            (r#"{"a":"b\nc\"d\\"}"#, false),
            (r#"{"a":"\u0062"}"#, true),
            (r#"{"io.modelcontextprotocol\/related-task":{}}"#, true),
        ] {
            assert_eq!(may_be_escaped(text.as_bytes()), escaped, "{text}");
        }
        assert_eq!(
            status_of(r#"{"taskId":"1","status":"completed","result":{}}"#).as_deref(),
            Some("completed")
        );
    }

    #[test]
    fn only_a_tools_call_task_capability_is_offered() {
        let yes = serde_json::json!({"list": {}, "requests": {"tools": {"call": {}}}});
        let no = serde_json::json!({"list": {}});
        assert!(legacy_capability([&no].into_iter()).is_none());
        let offered = legacy_capability([&no, &yes].into_iter()).expect("offered");
        assert_eq!(offered["requests"]["tools"]["call"], serde_json::json!({}));
    }
}
