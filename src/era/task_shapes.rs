//! The shapes of a task in the two eras, translated (docs/dual-era.md §2.5, the
//! cross-era cells). Pure: text and values in, text and values out; the session
//! decides when each applies.
//!
//! A 2025-11-25 task (L-schema.ts `Task`) has `taskId`, `status`, `statusMessage`,
//! `createdAt`, `lastUpdatedAt`, `ttl` (milliseconds, or null) and `pollInterval`
//! (milliseconds); its result is fetched apart, with `tasks/result`. A task of the 2026
//! `io.modelcontextprotocol/tasks` extension (seps/2663-tasks-extension.md `Task`, Final)
//! has `ttlMs` (or null) and `pollIntervalMs`, and inlines `result`, `error` or
//! `inputRequests` by status (an April 2026 draft named them `ttlSeconds` and
//! `pollIntervalMilliseconds`, with a `requestState`: still read, never written).
//! Functions are named by direction: `legacy_from_modern_*` makes the 2025 shape out of
//! the 2026 one (a legacy client before a modern server), `modern_*_from_legacy` what a
//! modern client gets out of what a legacy server said.

use serde_json::{Map, Value};

use super::meta;
use super::mrtr::{member, object_of};
use super::tasks::EXTENSION;

/// The `ttl` (ms) mcp-warden asks of a legacy server for a task it makes on a modern
/// client's behalf: the 2026 client asks none (the server decides), the 2025 server
/// wants one. An hour, the legacy spec's example order of magnitude; the server may
/// grant less, and the client sees what it granted as `ttlMs`.
pub const LEGACY_TTL_MS: u64 = 3_600_000;

/// The `params.task` member of a 2025-11-25 task-augmented request.
#[must_use]
pub fn legacy_task_param() -> String {
    format!("{{\"ttl\":{LEGACY_TTL_MS}}}")
}

/// A tool definition's `execution.taskSupport` (2025-11-25: `"forbidden"`, the
/// default, `"optional"` or `"required"`).
#[must_use]
pub fn task_support(definition: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Execution {
        #[serde(rename = "taskSupport")]
        task_support: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Tool {
        execution: Option<Execution>,
    }
    serde_json::from_str::<Tool>(definition)
        .ok()?
        .execution?
        .task_support
}

/// Whether a tool of that `taskSupport` can be run as a task.
#[must_use]
pub fn runs_as_task(support: Option<&str>) -> bool {
    matches!(support, Some("optional" | "required"))
}

/// A 2025-11-25 `Task` as the 2026 `Task` members, under our id: `ttl` becomes
/// `ttlMs` (null: unlimited, as in both eras), `pollInterval` `pollIntervalMs`;
/// `status`, `statusMessage`, `createdAt` and `lastUpdatedAt` keep their names. Any
/// other member (the server's `_meta`, fields of neither schema) is left out: the
/// client reads only these, and nothing else of the server's rides along unseen.
/// `None` when `legacy` is not an object with a string `status`.
#[must_use]
pub fn modern_task_from_legacy(legacy: &Value, ours: &str) -> Option<Map<String, Value>> {
    let task = legacy.as_object()?;
    let status = task.get("status")?.as_str()?;
    let mut out = Map::new();
    out.insert("taskId".into(), Value::String(ours.to_owned()));
    out.insert("status".into(), Value::String(status.to_owned()));
    for key in ["statusMessage", "createdAt", "lastUpdatedAt"] {
        if let Some(v @ Value::String(_)) = task.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let ttl = match task.get("ttl") {
        Some(v @ Value::Number(_)) => v.clone(),
        _ => Value::Null,
    };
    out.insert("ttlMs".into(), ttl);
    if let Some(v @ Value::Number(_)) = task.get("pollInterval") {
        out.insert("pollIntervalMs".into(), v.clone());
    }
    Some(out)
}

/// A legacy `CreateTaskResult` (`{"task": {…}}`) as the 2026 one: the task's
/// members at the top with `resultType: "task"`. `None`: not a task result.
#[must_use]
pub fn modern_created_from_legacy(result: &str, ours: &str) -> Option<String> {
    let result: Value = serde_json::from_str(result).ok()?;
    let mut task = modern_task_from_legacy(result.get("task")?, ours)?;
    task.insert("resultType".into(), Value::String("task".into()));
    Some(Value::Object(task).to_string())
}

/// How a legacy task ended, as its `tasks/result` answered: the call's result, or
/// the JSON-RPC error of the call (2025-11-25 "Result Retrieval").
#[derive(Debug, Clone, Copy)]
pub enum LegacyOutcome<'a> {
    /// The `result` object's raw JSON text.
    Result(&'a str),
    /// The `error` object's raw JSON text.
    Error(&'a str),
}

/// The 2026 `tasks/get` answer of a task that ended: its members (`task`, from
/// [`modern_task_from_legacy`]) with `status` `completed` and the result inline, or
/// `failed` and the error inline (seps/2663 "Task Status": `failed` is for a
/// JSON-RPC error only; a tool error, `isError: true`, is `completed`). The payload
/// is spliced in byte for byte: the filters see what the server sent.
#[must_use]
pub fn modern_terminal_from_legacy(
    mut task: Map<String, Value>,
    outcome: LegacyOutcome<'_>,
) -> String {
    let (status, key, raw) = match outcome {
        LegacyOutcome::Result(raw) => ("completed", "result", raw),
        LegacyOutcome::Error(raw) => ("failed", "error", raw),
    };
    task.insert("status".into(), Value::String(status.into()));
    task.remove("result");
    task.remove("error");
    with_members(task, &[(key, raw)])
}

/// The 2026 `tasks/get` answer of a task waiting for the client: `status`
/// `input_required` and `inputRequests` (an object's raw JSON text).
#[must_use]
pub fn modern_input_required_from_legacy(mut task: Map<String, Value>, requests: &str) -> String {
    task.insert("status".into(), Value::String("input_required".into()));
    with_members(task, &[("inputRequests", requests)])
}

/// `task`'s members, then `raw` ones (key, raw JSON text), as one object's text,
/// with `resultType: "complete"` (the standard result of `tasks/get`, seps/2663).
#[must_use]
pub fn with_members(mut task: Map<String, Value>, raw: &[(&str, &str)]) -> String {
    task.entry("resultType")
        .or_insert_with(|| Value::String("complete".into()));
    let head: Vec<String> = task
        .iter()
        .map(|(k, v)| member(k, &v.to_string()))
        .collect();
    object_of(
        head.into_iter()
            .chain(raw.iter().map(|(k, v)| member(k, v)))
            .map(std::borrow::Cow::Owned),
    )
}

/// The shortest wait between two polls of a modern task mcp-warden makes itself,
/// whatever `pollIntervalMs` the server suggests: a server saying 0 must not
/// turn the session into a busy loop.
pub const MIN_POLL_MS: u64 = 250;
/// The poll interval when the server suggests none.
pub const DEFAULT_POLL_MS: u64 = 1000;
/// The `_meta` key naming the task a 2025-11-25 message is about.
pub const RELATED_TASK_KEY: &str = "io.modelcontextprotocol/related-task";

/// What a modern task says of its end, read from a `tasks/get` result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Terminal {
    /// `completed`: the call's result (JSON text, as the server wrote it).
    Completed(String),
    /// `failed`: the JSON-RPC error of the call (JSON text).
    Failed(String),
    /// `cancelled`.
    Cancelled,
}

/// The 2025-11-25 task for the modern task `modern` (a `CreateTaskResult` or a
/// `tasks/get` result), under our id `ours`: the modern members renamed (`ttlMs` →
/// `ttl`, `pollIntervalMs` → `pollInterval`), the server's own id,
/// `requestState`, `resultType`, `_meta` and the inlined `result`/`error`/
/// `inputRequests` left out (2025 fetches the result with `tasks/result`).
#[must_use]
pub fn legacy_from_modern_task(modern: &Value, ours: &str) -> Value {
    let mut task = Map::new();
    task.insert("taskId".to_owned(), Value::String(ours.to_owned()));
    let status = modern
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("working");
    task.insert("status".to_owned(), Value::String(status.to_owned()));
    for key in ["statusMessage", "createdAt", "lastUpdatedAt"] {
        if let Some(v) = modern.get(key).filter(|v| v.is_string()) {
            task.insert(key.to_owned(), v.clone());
        }
    }
    // Both are required in 2025; a server that gave none still yields a valid task.
    for key in ["createdAt", "lastUpdatedAt"] {
        task.entry(key.to_owned())
            .or_insert_with(|| Value::String(String::new()));
    }
    task.insert(
        "ttl".to_owned(),
        ttl_ms(modern).map_or(Value::Null, Value::from),
    );
    if let Some(poll) = suggested_poll_ms(modern) {
        task.insert("pollInterval".to_owned(), Value::from(poll));
    }
    Value::Object(task)
}

/// The 2025-11-25 `CreateTaskResult` (`{"task": …}`) for a modern one, under our id.
#[must_use]
pub fn legacy_from_modern_create(modern: &Value, ours: &str) -> String {
    serde_json::json!({ "task": legacy_from_modern_task(modern, ours) }).to_string()
}

/// A modern task's time to live in milliseconds (`ttlMs`; the draft's `ttlSeconds`
/// when a server still writes it); `None`: unlimited or not said.
#[must_use]
pub fn ttl_ms(modern: &Value) -> Option<u64> {
    if let Some(ms) = modern.get("ttlMs").and_then(Value::as_u64) {
        return Some(ms);
    }
    modern
        .get("ttlSeconds")
        .and_then(Value::as_u64)
        .map(|s| s.saturating_mul(1000))
}

/// The poll interval a modern task suggests, in milliseconds (`pollIntervalMs`; the
/// draft's `pollIntervalMilliseconds`).
fn suggested_poll_ms(modern: &Value) -> Option<u64> {
    modern
        .get("pollIntervalMs")
        .or_else(|| modern.get("pollIntervalMilliseconds"))
        .and_then(Value::as_u64)
}

/// How long to wait before mcp-warden polls `modern` again: its suggestion, at least
/// [`MIN_POLL_MS`].
#[must_use]
pub fn poll_interval_ms(modern: &Value) -> u64 {
    suggested_poll_ms(modern)
        .unwrap_or(DEFAULT_POLL_MS)
        .max(MIN_POLL_MS)
}

/// The server's `requestState` in a task-bearing result, as JSON text (quotes and
/// escapes as sent): passed back byte for byte on the next request about the task.
#[must_use]
pub fn request_state_of(result: &str) -> Option<String> {
    let members = super::mrtr::members(result)?;
    members
        .iter()
        .find(|m| m.key == "requestState" && m.value.starts_with('"'))
        .map(|m| m.value.to_owned())
}

/// What a terminal modern task carries, from a `tasks/get` result's text; `None`
/// while it is not terminal (or a `completed`/`failed` without its payload, which is
/// not a valid terminal task).
#[must_use]
pub fn terminal_of(result: &str) -> Option<Terminal> {
    let members = super::mrtr::members(result)?;
    let member = |key: &str| {
        members
            .iter()
            .find(|m| m.key == key)
            .map(|m| m.value.to_owned())
    };
    match member("status")?.as_str() {
        "\"completed\"" => member("result")
            .filter(|r| r.starts_with('{'))
            .map(Terminal::Completed),
        "\"failed\"" => member("error")
            .filter(|e| e.starts_with('{'))
            .map(Terminal::Failed),
        "\"cancelled\"" => Some(Terminal::Cancelled),
        _ => None,
    }
}

/// A JSON object (`object`, its text) with `_meta["io.modelcontextprotocol/related-task"]`
/// naming our task: the payload of a 2025-11-25 `tasks/result` made from a modern
/// task's inline `result` (L/basic/utilities/tasks.mdx: a `tasks/result` response
/// MUST carry it), and the params of a question asked for the task. Every other byte
/// stays; a `related-task` the server wrote is replaced.
#[must_use]
pub fn with_related_task(result: &str, ours: &str) -> String {
    let related = serde_json::json!({ "taskId": ours }).to_string();
    let whole = 0..result.len();
    let Some(members) = meta::members(result, whole.clone()) else {
        return result.to_owned();
    };
    let edits = match members.iter().find(|m| m.key == "_meta") {
        Some(m) if result[m.value.clone()].starts_with('{') => {
            // The server's own `related-task` names its id, never ours: replaced.
            let inner = meta::members(result, m.value.clone()).unwrap_or_default();
            match inner.iter().find(|i| i.key == RELATED_TASK_KEY) {
                Some(i) => vec![(i.value.clone(), related)],
                None => meta::add_missing(result, m.value.clone(), &[(RELATED_TASK_KEY, related)]),
            }
        }
        // A `_meta` that is not an object is left as the server wrote it.
        Some(_) => Vec::new(),
        None => {
            let value = format!("{{{}}}", super::mrtr::member(RELATED_TASK_KEY, &related));
            meta::add_missing(result, whole, &[("_meta", value)])
        }
    };
    apply(result, &edits)
}

/// `text` with `edits` (sorted, not overlapping) made.
fn apply(text: &str, edits: &[meta::Edit]) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for (range, new) in edits {
        out.push_str(&text[at..range.start]);
        out.push_str(new);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// The client capabilities declared to a modern server for a legacy client's
/// task-augmented call: the connection's own, plus the tasks extension (the only way
/// the 2026 era lets a server answer with a task).
#[must_use]
pub fn modern_capabilities_for_legacy_task(client: &Value) -> Value {
    let mut caps = match client {
        Value::Object(map) => Value::Object(map.clone()),
        _ => Value::Object(Map::new()),
    };
    caps["extensions"] = serde_json::json!({ EXTENSION: {} });
    caps
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn legacy() -> Value {
        json!({"taskId": "srv-1", "status": "working", "statusMessage": "busy",
            "createdAt": "2026-12-07T00:00:00Z", "lastUpdatedAt": "2026-12-07T00:00:01Z",
            "ttl": 60000, "pollInterval": 250, "_meta": {"x": 1}, "extra": true})
    }

    #[test]
    fn a_legacy_task_becomes_a_modern_one_under_our_id() {
        let task = modern_task_from_legacy(&legacy(), "mwt-a").expect("a task");
        assert_eq!(
            Value::Object(task),
            json!({"taskId": "mwt-a", "status": "working", "statusMessage": "busy",
                "createdAt": "2026-12-07T00:00:00Z", "lastUpdatedAt": "2026-12-07T00:00:01Z",
                "ttlMs": 60000, "pollIntervalMs": 250})
        );
        // `ttl: null` (unlimited) and a missing one are both unlimited.
        let unlimited = modern_task_from_legacy(&json!({"status": "working", "ttl": null}), "x");
        assert_eq!(unlimited.expect("a task")["ttlMs"], Value::Null);
        assert!(modern_task_from_legacy(&json!({"taskId": "1"}), "x").is_none());
        assert!(modern_task_from_legacy(&json!("working"), "x").is_none());
    }

    #[test]
    fn a_create_task_result_is_flattened_with_its_result_type() {
        let result = json!({"task": legacy()}).to_string();
        let created: Value =
            serde_json::from_str(&modern_created_from_legacy(&result, "mwt-a").expect("task"))
                .expect("json");
        assert_eq!(created["resultType"], "task");
        assert_eq!(created["taskId"], "mwt-a");
        assert_eq!(created["ttlMs"], 60000);
        assert!(created.get("task").is_none());
        assert!(modern_created_from_legacy(r#"{"content":[]}"#, "x").is_none());
        assert!(modern_created_from_legacy(r#"{"task":{"taskId":"1"}}"#, "x").is_none());
    }

    #[test]
    fn a_terminal_task_carries_its_payload_byte_for_byte() {
        let task = modern_task_from_legacy(&legacy(), "mwt-a").expect("task");
        let payload = r#"{"content":[{"type":"text","text":"x"}],"n":1e3}"#;
        let done = modern_terminal_from_legacy(task.clone(), LegacyOutcome::Result(payload));
        assert!(done.contains(r#""result":{"content":[{"type":"text","text":"x"}],"n":1e3}"#));
        let done: Value = serde_json::from_str(&done).expect("json");
        assert_eq!(done["status"], "completed");
        assert_eq!(done["resultType"], "complete");
        assert_eq!(done["taskId"], "mwt-a");

        let failed = modern_terminal_from_legacy(
            task.clone(),
            LegacyOutcome::Error(r#"{"code":-32000,"message":"boom"}"#),
        );
        let failed: Value = serde_json::from_str(&failed).expect("json");
        assert_eq!(failed["status"], "failed");
        assert_eq!(failed["error"]["message"], "boom");
        assert!(failed.get("result").is_none());

        let waiting =
            modern_input_required_from_legacy(task, r#"{"mw-1":{"method":"elicitation/create"}}"#);
        let waiting: Value = serde_json::from_str(&waiting).expect("json");
        assert_eq!(waiting["status"], "input_required");
        assert_eq!(
            waiting["inputRequests"]["mw-1"]["method"],
            "elicitation/create"
        );
    }

    #[test]
    fn task_support_is_read_from_a_definition() {
        let required = r#"{"name":"t","execution":{"taskSupport":"required"}}"#;
        assert_eq!(task_support(required).as_deref(), Some("required"));
        assert!(runs_as_task(task_support(required).as_deref()));
        assert!(runs_as_task(Some("optional")));
        assert!(!runs_as_task(Some("forbidden")));
        assert!(!runs_as_task(task_support(r#"{"name":"t"}"#).as_deref()));
        assert_eq!(legacy_task_param(), r#"{"ttl":3600000}"#);
    }

    #[test]
    fn a_modern_task_becomes_a_legacy_one_under_our_id() {
        let modern = json!({
            "resultType": "task", "taskId": "srv-1", "status": "working",
            "statusMessage": "on it", "createdAt": "2026-12-07T00:00:00Z",
            "lastUpdatedAt": "2026-12-07T00:00:01Z", "ttlMs": 60000,
            "pollIntervalMs": 5000, "requestState": "rs",
            "_meta": {"x": 1},
        });
        assert_eq!(
            legacy_from_modern_task(&modern, "mwt-a"),
            json!({
                "taskId": "mwt-a", "status": "working", "statusMessage": "on it",
                "createdAt": "2026-12-07T00:00:00Z", "lastUpdatedAt": "2026-12-07T00:00:01Z",
                "ttl": 60000, "pollInterval": 5000,
            })
        );
        let created: Value =
            serde_json::from_str(&legacy_from_modern_create(&modern, "mwt-a")).expect("json");
        assert_eq!(created["task"]["taskId"], "mwt-a");
    }

    #[test]
    fn the_inline_payloads_and_the_servers_id_never_reach_the_legacy_task() {
        let modern = json!({
            "taskId": "other-servers-id", "status": "completed", "ttlMs": null,
            "result": {"content": []}, "error": {}, "inputRequests": {},
        });
        let legacy = legacy_from_modern_task(&modern, "mwt-b");
        assert_eq!(
            legacy,
            json!({"taskId": "mwt-b", "status": "completed", "createdAt": "", "lastUpdatedAt": "", "ttl": null})
        );
    }

    #[test]
    fn the_final_names_and_the_drafts_are_read_and_the_poll_interval_has_a_floor() {
        assert_eq!(ttl_ms(&json!({"ttlMs": 1500})), Some(1500));
        assert_eq!(ttl_ms(&json!({"ttlMs": null})), None);
        assert_eq!(ttl_ms(&json!({"ttlSeconds": 2})), Some(2000));
        assert_eq!(ttl_ms(&json!({"ttlMs": 10, "ttlSeconds": 2})), Some(10));
        assert_eq!(poll_interval_ms(&json!({"pollIntervalMs": 2000})), 2000);
        assert_eq!(
            poll_interval_ms(&json!({"pollIntervalMilliseconds": 0})),
            MIN_POLL_MS
        );
        assert_eq!(poll_interval_ms(&json!({})), DEFAULT_POLL_MS);
    }

    #[test]
    fn terminal_tasks_give_their_payload_byte_for_byte() {
        let done = r#"{"taskId":"1","status":"completed","result":{"content":[{"type":"text","text":"1e3"}]}}"#;
        assert_eq!(
            terminal_of(done),
            Some(Terminal::Completed(
                r#"{"content":[{"type":"text","text":"1e3"}]}"#.to_owned()
            ))
        );
        let failed = r#"{"status":"failed","error":{"code":-32603,"message":"boom"}}"#;
        assert_eq!(
            terminal_of(failed),
            Some(Terminal::Failed(
                r#"{"code":-32603,"message":"boom"}"#.to_owned()
            ))
        );
        assert_eq!(
            terminal_of(r#"{"status":"cancelled"}"#),
            Some(Terminal::Cancelled)
        );
        assert_eq!(terminal_of(r#"{"status":"working"}"#), None);
        // A completed task without its result is not an answer.
        assert_eq!(terminal_of(r#"{"status":"completed"}"#), None);
        assert_eq!(
            terminal_of(r#"{"status":"completed","result":"text"}"#),
            None
        );
    }

    #[test]
    fn the_request_state_is_kept_as_written() {
        assert_eq!(
            request_state_of(r#"{"status":"working","requestState":"a\u0022b"}"#).as_deref(),
            Some(r#""a\u0022b""#)
        );
        assert_eq!(request_state_of(r#"{"requestState":1}"#), None);
        assert_eq!(request_state_of(r#"{"status":"working"}"#), None);
    }

    #[test]
    fn the_legacy_result_names_our_task_and_keeps_every_other_byte() {
        let ours = "mwt-c";
        assert_eq!(
            with_related_task(r#"{"content":[],"x":1e3}"#, ours),
            r#"{"_meta":{"io.modelcontextprotocol/related-task":{"taskId":"mwt-c"}},"content":[],"x":1e3}"#
        );
        assert_eq!(
            with_related_task(r#"{"content":[],"_meta":{"k":true}}"#, ours),
            r#"{"content":[],"_meta":{"io.modelcontextprotocol/related-task":{"taskId":"mwt-c"},"k":true}}"#
        );
        // The server's own related-task (its id, or another's) is replaced.
        assert_eq!(
            with_related_task(
                r#"{"_meta":{"io.modelcontextprotocol/related-task":{"taskId":"9"}}}"#,
                ours
            ),
            r#"{"_meta":{"io.modelcontextprotocol/related-task":{"taskId":"mwt-c"}}}"#
        );
        assert_eq!(
            with_related_task(r#"{"_meta":"odd"}"#, ours),
            r#"{"_meta":"odd"}"#
        );
        assert_eq!(
            with_related_task("{}", ours),
            r#"{"_meta":{"io.modelcontextprotocol/related-task":{"taskId":"mwt-c"}}}"#
        );
    }

    #[test]
    fn the_extension_is_declared_besides_the_clients_capabilities() {
        let caps = modern_capabilities_for_legacy_task(&json!({"elicitation": {}}));
        assert_eq!(
            caps,
            json!({"elicitation": {}, "extensions": {EXTENSION: {}}})
        );
        assert!(super::super::tasks::declares_extension(
            &modern_capabilities_for_legacy_task(&Value::Null)
        ));
    }
}
