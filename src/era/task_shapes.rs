//! The shapes of a task across the eras (docs/dual-era.md §2.5): a 2025-11-25 task
//! (`L-schema.ts` `Task`: `ttl`, `pollInterval`, its result fetched apart with
//! `tasks/result`) and a 2026 one (seps/2663-tasks-extension.md: `ttlMs`,
//! `pollIntervalMs`, the result or error inline once terminal). Pure text in, text
//! out: the session decides when each applies.
//!
//! Functions are named by direction: `modern_*_from_legacy` make what a modern
//! client gets out of what a legacy server said.

use serde_json::{Map, Value};

use super::mrtr::{member, object_of};

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
}
