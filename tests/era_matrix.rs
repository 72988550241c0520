//! The era matrix (issue 15, "Proof"): every combination of a client era (legacy, dual,
//! modern-only) and a server era (legacy, dual, modern-only), through the real binary,
//! with real SDKs on both sides.
//!
//! Each cell is one connection and one script: a client of one SDK (`tests/clients/
//! mcp_client.py` on the Python `mcp` 2.3.0, or `mcp_client.mjs` on the TypeScript SDK
//! 2.4.0) talks to `mcp-warden serve`, whose workspace runs two instances of one fixture
//! server (`tests/servers/`), `a` with `sampling = "allow"` and `b` with the default
//! (denied). The pairings make each SDK play each of the six roles at least once:
//!
//! | client \ server | legacy        | dual          | modern-only   |
//! | ---             | ---           | ---           | ---           |
//! | legacy          | py → ts       | ts → py       | py → ts       |
//! | dual            | ts → py (1.x) | py → ts       | ts → py       |
//! | modern-only     | py → ts       | ts → py       | ts → ts       |
//!
//! The legacy Python server is `mcp` 1.30.0 (`legacy_mcp1.py`, `DIR/venv-mcp1`): every
//! `mcp` 2.x stdio server is dual. Per cell the script checks the era the client got,
//! list, call, a denied call, a redacted secret, elicitation, sampling allowed for one
//! server and denied for the other, roots (the workspace, never the client's), progress,
//! cancellation, resources and a template, prompts, completion, a rug pull held, a task
//! run to completion, and the audit records of the denial, the redaction, the hold and
//! the task's call.
//!
//! The task: the client makes a task-augmented call of `a__slow_task` and polls it to its
//! end, in the task protocol of its era as mcp-warden resolves the cell (a dual client
//! speaks the modern era with mcp-warden, a dual server is modern upstream): 2025-11-25
//! `tasks/*` on a legacy connection, the 2026 `io.modelcontextprotocol/tasks` extension
//! on a modern one. Both sides of mcp-warden in one era: tasks are mediated as they are;
//! across eras (a legacy client before a modern server, a modern client before a legacy
//! one) mcp-warden bridges the two protocols (docs/dual-era.md §2.5.1, §2.5.2). The
//! answer must be the tool's, under an `mwt-` task id of ours (never the server's), and
//! audited.
//!
//! The rug pull: each cell runs with pinning on (`strict`); `mcp-warden pin --yes`
//! pins every tool of the fixture servers first, then the session starts them with
//! `FIXTURE_RUG_PULL=1` in their environment (not part of a server's pinned identity),
//! which changes `forecast`'s description: the changed tool is held (absent from the
//! list, its call blocked with decision `hold`), everything else runs as pinned.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::prefix::{PREFIX_ENV, test_prefix, venv_bin};
use support::{Env, path_str, processes_with_env, q};

/// The text the client's "model" answers sampling with, to tell it apart in results.
const SAMPLED: &str = "SAMPLED-BY-THE-CLIENT";

/// How long mcp-warden and its servers may take to go once the client has exited (as
/// `tests/real_servers.rs` waits).
const LEFTOVER_WAIT: Duration = Duration::from_secs(5);

/// What the task step asks `slow_task` to answer (`done: TEXT`).
const TASK_TEXT: &str = "a task through the warden";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sdk {
    Python,
    TypeScript,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Era {
    Legacy,
    Dual,
    ModernOnly,
}

/// Where the checkout's test scripts are (fixture servers and clients).
fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// `node` from PATH as an absolute path: servers get a scrubbed environment.
fn node() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("node"))
        .find(|candidate| candidate.is_file())
}

/// Whether `path` exists; if not, says why the cell is skipped (a failure under `CI=true`,
/// where a missing dependency must never pass silently).
#[allow(clippy::print_stderr)]
fn present(path: &Path, what: &str) -> bool {
    if path.exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} is missing: {} (CI=true, so this is an error, not a skip); run ./install.sh --test-deps",
        path.display()
    );
    eprintln!(
        "skipped: {what} is missing ({}); run ./install.sh --test-deps",
        path.display()
    );
    false
}

/// The command (program and arguments) of a fixture server in this era and SDK, or
/// `None` after saying what is missing.
fn server_command(prefix: &Path, era: Era, sdk: Sdk, name: &str) -> Option<Vec<String>> {
    let servers = tests_dir().join("servers");
    let command = match (sdk, era) {
        (Sdk::Python, Era::Legacy) => {
            let python = prefix.join("venv-mcp1").join("bin").join("python");
            if !present(&python, "the mcp 1.x venv (DIR/venv-mcp1)") {
                return None;
            }
            vec![path_str(&python), path_str(&servers.join("legacy_mcp1.py"))]
        }
        (Sdk::Python, era) => {
            let mut command = vec![
                path_str(&venv_bin(prefix, "python")),
                path_str(&servers.join("everything.py")),
            ];
            if era == Era::ModernOnly {
                command.push("--modern-only".into());
            }
            command
        }
        (Sdk::TypeScript, era) => {
            let sdk = prefix.join("node/node_modules/@modelcontextprotocol/server");
            let node = node().unwrap_or_else(|| PathBuf::from("node"));
            if !present(&node, "node (on PATH)")
                || !present(&sdk, "the TypeScript SDK server package")
            {
                return None;
            }
            let mode = match era {
                Era::Legacy => "--legacy",
                Era::Dual => "--dual",
                Era::ModernOnly => "--modern-only",
            };
            vec![
                path_str(&node),
                path_str(&servers.join("everything.mjs")),
                mode.into(),
            ]
        }
    };
    Some(
        command
            .into_iter()
            .chain(["--name".to_owned(), name.to_owned()])
            .collect(),
    )
}

/// A `[servers.NAME]` table for a fixture server; `extra` lines go at its end. The
/// sandbox lets the TypeScript fixture read the SDK it loads from the prefix (the node
/// preset grants a script's own `node_modules` tree only, and the fixture has none).
/// `pulled`: the server runs with `FIXTURE_RUG_PULL=1` (its `forecast` changed).
fn server_table(
    prefix: &Path,
    name: &str,
    command: &[String],
    sdk: Sdk,
    extra: &str,
    pulled: bool,
) -> String {
    let args: Vec<String> = command[1..].iter().map(q).collect();
    let sandbox = match sdk {
        Sdk::TypeScript => format!(
            "[servers.{name}.sandbox]\nfs_read = [{}]\n",
            q(path_str(&prefix.join("node")))
        ),
        Sdk::Python => String::new(),
    };
    format!(
        "[servers.{name}]\ncommand = {}\nargs = [{}]\nenv = {{ {PREFIX_ENV} = {}, FIXTURE_RUG_PULL = \"{}\" }}\n{extra}\n{sandbox}\n",
        q(&command[0]),
        args.join(", "),
        q(path_str(prefix)),
        u8::from(pulled),
    )
}

/// The script every cell runs. Server `a` may sample, `b` may not.
fn script(client_root: &Path, modern_client: bool) -> Value {
    let mut steps = vec![
        json!({"op": "list_tools", "all": true, "label": "list"}),
        json!({"op": "call_tool", "name": "a__echo", "arguments": {"text": "through the warden"}, "label": "call"}),
        json!({"op": "call_tool", "name": "a__delete_everything", "arguments": {}, "label": "denied"}),
        json!({"op": "call_tool", "name": "a__forecast", "arguments": {"city": "Oslo"}, "label": "rug-pull"}),
        json!({"op": "call_tool", "name": "a__leak_key", "arguments": {}, "label": "secret"}),
        json!({"op": "call_tool", "name": "a__ask_name", "arguments": {}, "label": "elicit"}),
        json!({"op": "call_tool", "name": "a__summarize", "arguments": {"text": "a long text"}, "label": "sample-allowed"}),
        json!({"op": "call_tool", "name": "b__summarize", "arguments": {"text": "a long text"}, "label": "sample-denied"}),
        json!({"op": "call_tool", "name": "a__show_roots", "arguments": {}, "label": "roots"}),
        json!({"op": "call_tool", "name": "a__slow", "arguments": {"steps": 3, "delay": 0.2}, "progress": true, "label": "progress"}),
        json!({"op": "call_tool", "name": "a__slow", "arguments": {"steps": 50, "delay": 0.2}, "cancel_after": 1.5, "label": "cancel"}),
        json!({"op": "call_tool", "name": "a__echo", "arguments": {"text": "after the cancel"}, "label": "after-cancel"}),
        json!({"op": "list_resources", "all": true, "label": "resources"}),
        json!({"op": "read_resource", "uri": "fixture://a/readme", "label": "read"}),
        json!({"op": "list_resource_templates", "all": true, "label": "templates"}),
        json!({"op": "read_resource", "uri": "fixture://b/notes/minutes", "label": "read-template"}),
        json!({"op": "list_prompts", "all": true, "label": "prompts"}),
        json!({"op": "get_prompt", "name": "a__greet", "arguments": {"name": "Bob"}, "label": "prompt"}),
        json!({"op": "complete", "ref": {"type": "ref/prompt", "name": "a__greet"}, "argument": {"name": "name", "value": "A"}, "label": "complete"}),
        json!({"op": "task", "name": "a__slow_task", "arguments": {"text": TASK_TEXT}, "label": "task"}),
    ];
    if modern_client {
        // The list as it came over the wire: the caching members of a modern result.
        steps.push(
            json!({"op": "request", "method": "tools/list", "params": {}, "label": "raw-list"}),
        );
    }
    json!({
        "answers": {
            "roots": [path_str(client_root)],
            "sampling_text": SAMPLED,
            "elicit_content": {"name": "Zed"},
        },
        "steps": steps,
    })
}

/// Runs the client of `sdk` in `era` against `mcp-warden serve` in `env`; its document.
fn run_client(env: &Env, prefix: &Path, sdk: Sdk, era: Era, script: &Value) -> Value {
    let script_path = env.dir.path().join("script.json");
    std::fs::write(&script_path, script.to_string()).unwrap();
    let clients = tests_dir().join("clients");
    let mut client = match sdk {
        Sdk::Python => {
            let mut c = Command::new(venv_bin(prefix, "python"));
            c.arg(clients.join("mcp_client.py"));
            c
        }
        Sdk::TypeScript => {
            let mut c = Command::new(node().unwrap());
            c.arg(clients.join("mcp_client.mjs"));
            c
        }
    };
    let mode = match era {
        Era::Legacy => "legacy",
        Era::Dual => "auto",
        Era::ModernOnly => "2026-07-28",
    };
    client
        .arg("--script")
        .arg(&script_path)
        .args(["--timeout", "120", "--mode", mode, "--"])
        .arg(support::bin())
        .arg("serve");
    env.apply(&mut client);
    client.env(PREFIX_ENV, prefix);
    let output = client.stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the {sdk:?} client ({era:?}) failed ({}):\nstdout: {stdout}\nstderr: {}\nmcp-warden log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        env.log()
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("client output is not JSON ({e}): {stdout}"))
}

/// The step labelled `label`, as the client reported it.
fn step<'a>(out: &'a Value, label: &str) -> &'a Value {
    out["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"] == label)
        .unwrap_or_else(|| panic!("no step {label}: {out}"))
}

/// The step labelled `label`, which must have a result; its result.
fn result<'a>(out: &'a Value, label: &str) -> &'a Value {
    let step = step(out, label);
    assert!(
        step.get("error").is_none(),
        "step {label} failed: {step}\nwhole run: {out}"
    );
    &step["result"]
}

/// The text of a tool result's first content block.
fn text<'a>(out: &'a Value, label: &str) -> &'a str {
    let result = result(out, label);
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("step {label}: no text in {result}"))
}

fn names<'a>(list: &'a Value, key: &str, field: &str) -> Vec<&'a str> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {list}"))
        .iter()
        .map(|item| item[field].as_str().unwrap())
        .collect()
}

/// One cell: `client_era` on `client_sdk` in front of `server_era` on `server_sdk`.
fn cell(client_era: Era, client_sdk: Sdk, server_era: Era, server_sdk: Sdk) {
    let Some(prefix) = test_prefix() else { return };
    let Some(a) = server_command(&prefix, server_era, server_sdk, "a") else {
        return;
    };
    let Some(b) = server_command(&prefix, server_era, server_sdk, "b") else {
        return;
    };
    if client_sdk == Sdk::TypeScript
        && !present(
            &prefix.join("node/node_modules/@modelcontextprotocol/client"),
            "the TypeScript SDK client package",
        )
    {
        return;
    }
    let env = Env::new();
    let config = |pulled: bool| {
        format!(
            "{}{}[pinning]\nmode = \"strict\"\n",
            server_table(&prefix, "a", &a, server_sdk, "sampling = \"allow\"", pulled),
            server_table(&prefix, "b", &b, server_sdk, "", pulled),
        )
    };
    env.user_config(&config(false));
    env.workspace_config(
        "[[policy.rules]]\nid = \"no-deletes\"\ntools = [\"*__delete_everything\"]\naction = \"deny\"\n",
    );
    // Everything pinned as first seen; then the rug pull.
    let pinned = env.run(&["pin", "--yes"]);
    assert!(
        pinned.status.success(),
        "pin: {}\n{}",
        String::from_utf8_lossy(&pinned.stdout),
        String::from_utf8_lossy(&pinned.stderr)
    );
    env.user_config(&config(true));
    // The client's own root: a directory without mcp-warden.toml, so it never becomes the
    // workspace, and a server asking for roots must never see it.
    let client_root = env.dir.path().join("client-root");
    std::fs::create_dir_all(&client_root).unwrap();
    let modern_client = client_era != Era::Legacy;
    let out = run_client(
        &env,
        &prefix,
        client_sdk,
        client_era,
        &script(&client_root, modern_client),
    );
    let context =
        format!("cell: {client_era:?} {client_sdk:?} client, {server_era:?} {server_sdk:?} server");

    assert_era(&out, client_sdk, client_era, &context);
    // First after the era: a task that breaks the connection fails every later step.
    assert_task(&out, &env, modern_client, &context);
    assert_tools(&out, modern_client, &context);
    assert_decisions(&out, &env, &context);
    assert_round_trips(&out, &env, &client_root, &context);
    assert_progress_and_cancellation(&out, &context);
    assert_resources_prompts_completion(&out, &context);
    assert_nothing_left(&env, &context);
}

/// The task ran to its end: the tool's own answer, in the client's task protocol, under
/// a task id of ours from the first answer to the last, and the call in the audit trail.
fn assert_task(out: &Value, env: &Env, modern_client: bool, context: &str) {
    let step = step(out, "task");
    // A task crosses more of mcp-warden than any other step: when it fails, its log
    // says where.
    assert!(
        step.get("error").is_none(),
        "{context}: the task failed: {step}\nmcp-warden log:\n{}",
        env.log()
    );
    assert_eq!(text(out, "task"), format!("done: {TASK_TEXT}"), "{context}");
    let task = &result(out, "task")["task"];
    let protocol = if modern_client {
        "2026-extension"
    } else {
        "2025-11-25"
    };
    assert_eq!(task["protocol"], protocol, "{context}: {task}");
    let id = task["task_id"].as_str().unwrap_or_default();
    assert!(
        id.starts_with("mwt-") && id.len() == 26,
        "{context}: the client must see our task id, never the server's: {task}"
    );
    let statuses = task["statuses"].as_array().unwrap();
    assert_eq!(
        statuses.last(),
        Some(&json!("completed")),
        "{context}: {task}"
    );
    if !modern_client {
        // The terminal result names the task it belongs to: ours.
        assert_eq!(task["related_task"]["taskId"], id, "{context}: {task}");
    }
    // The fixture servers call their tasks `task-N`: no such id reaches the client,
    // in an answer or a notification.
    assert!(
        !out.to_string().contains("\"task-1\""),
        "{context}: a server's task id leaked: {out}"
    );
    let audit = env.audit_text();
    // Audited as the call (today twice: the answer that made the task, and the
    // terminal result, each as the call's answer).
    let records = audit
        .lines()
        .filter(|l| l.contains(r#""tool":"a__slow_task""#) && l.contains(r#""decision":"allow""#))
        .count();
    assert!(
        records >= 1,
        "{context}: the task's call is not audited:\n{audit}"
    );
}

/// The client has gone, and so have mcp-warden, its servers and any process the client's
/// SDK started on the side (the TypeScript dual client probes on a sibling mcp-warden).
fn assert_nothing_left(env: &Env, context: &str) {
    let needle = path_str(env.dir.path());
    let deadline = Instant::now() + LEFTOVER_WAIT;
    let mut left = processes_with_env(&needle);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = processes_with_env(&needle);
    }
    assert!(
        left.is_empty(),
        "{context}: processes left running after the client left: {left:?}"
    );
}

/// The era the client ended up in: a dual or modern-only client speaks 2026-07-28 with
/// mcp-warden, whatever the server behind it speaks.
fn assert_era(out: &Value, client_sdk: Sdk, client_era: Era, context: &str) {
    // The Python SDK pinned to 2026-07-28 adopts a discover result it makes up itself
    // (`_synthesize_discover`) and drops the reserved `_meta` keys of results, so it
    // never learns who answers (mcp-warden stamps its `serverInfo` on every result to
    // a modern client: tests/era_edges.rs); the namespaced tools of `assert_tools`
    // show it is mcp-warden.
    if (client_sdk, client_era) == (Sdk::Python, Era::ModernOnly) {
        assert!(out["server_info"].is_null(), "{context}: {out}");
    } else {
        assert_eq!(out["server_info"]["name"], "mcp-warden", "{context}: {out}");
    }
    if client_era == Era::Legacy {
        assert_eq!(out["negotiation"], "initialize", "{context}: {out}");
    } else {
        assert_eq!(
            (&out["negotiation"], &out["protocol_version"]),
            (&json!("discover"), &json!("2026-07-28")),
            "{context}: a {client_era:?} client must get the modern era: {out}"
        );
    }
}

fn assert_tools(out: &Value, modern_client: bool, context: &str) {
    let list = result(out, "list");
    let tools = names(list, "tools", "name");
    for server in ["a", "b"] {
        for tool in [
            "echo",
            "leak_key",
            "ask_name",
            "summarize",
            "show_roots",
            "slow",
            "slow_task",
        ] {
            let name = format!("{server}__{tool}");
            assert!(
                tools.contains(&name.as_str()),
                "{context}: {name} missing from {tools:?}"
            );
        }
    }
    // An unconditional deny hides the tool (README "Rules and conditions"); a
    // changed one is held, and a held tool is not listed (SPEC "Pinning").
    assert!(
        !tools
            .iter()
            .any(|t| t.ends_with("__delete_everything") || t.ends_with("__forecast")),
        "{context}: {tools:?}"
    );
    assert_eq!(text(out, "call"), "through the warden", "{context}");
    if modern_client {
        let raw = result(out, "raw-list");
        assert_eq!(raw["resultType"], "complete", "{context}: {raw}");
        assert_eq!(raw["cacheScope"], "private", "{context}: {raw}");
        assert!(raw["ttlMs"].is_u64(), "{context}: {raw}");
        let raw_names = names(raw, "tools", "name");
        let mut sorted = raw_names.clone();
        sorted.sort_unstable();
        assert_eq!(
            raw_names, sorted,
            "{context}: tools/list is sorted by exposed name"
        );
    }
}

/// The denied call and the redacted secret, on the wire and in the audit trail.
fn assert_decisions(out: &Value, env: &Env, context: &str) {
    let denied = result(out, "denied");
    assert_eq!(denied["isError"], true, "{context}: {denied}");
    assert!(
        text(out, "denied").starts_with("Blocked by mcp-warden:"),
        "{context}: {denied}"
    );
    let secret = text(out, "secret");
    assert!(
        secret.contains("[REDACTED:aws-access-key-id]") && !secret.contains("AKIA"),
        "{context}: {secret}"
    );
    let audit = env.audit_text();
    let record = |tool: &str, decision: &str| {
        audit
            .lines()
            .any(|l| l.contains(tool) && l.contains(&format!("\"decision\":\"{decision}\"")))
    };
    assert!(
        record("a__delete_everything", "deny"),
        "{context}: no deny record:\n{audit}"
    );
    assert!(
        record("a__leak_key", "redact"),
        "{context}: no redact record:\n{audit}"
    );
    // The rug pull: held, with the command that resolves it.
    let held = result(out, "rug-pull");
    let said = text(out, "rug-pull");
    assert!(
        held["isError"] == true
            && said.starts_with("Blocked by mcp-warden:")
            && said.contains("mcp-warden pin a__forecast"),
        "{context}: {held}"
    );
    assert!(
        record("a__forecast", "hold"),
        "{context}: no hold record:\n{audit}"
    );
}

/// Elicitation, sampling (allowed for `a`, denied for `b`) and roots: the server asks
/// during the call, in its era, and the client answers in its own.
fn assert_round_trips(out: &Value, env: &Env, client_root: &Path, context: &str) {
    assert_eq!(text(out, "elicit"), "hello Zed", "{context}");
    assert_eq!(
        text(out, "sample-allowed"),
        format!("summary: {SAMPLED}"),
        "{context}"
    );
    let denied = step(out, "sample-denied");
    assert!(
        !denied.to_string().contains(SAMPLED)
            && (denied["result"]["isError"] == true || denied.get("error").is_some()),
        "{context}: sampling is denied by default: {denied}"
    );
    let asked: Vec<&str> = out["server_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        asked
            .iter()
            .filter(|m| **m == "sampling/createMessage")
            .count(),
        1,
        "{context}: only the allowed server's sampling reaches the client: {asked:?}"
    );
    assert!(
        asked.contains(&"elicitation/create"),
        "{context}: {asked:?}"
    );
    let roots = text(out, "roots");
    let workspace = format!("file://{}", path_str(&env.workspace));
    assert!(
        roots
            .lines()
            .any(|line| line.trim_end_matches('/') == workspace),
        "{context}: roots must be the workspace {workspace}: {roots}"
    );
    assert!(
        !roots.contains(&path_str(client_root)),
        "{context}: the client's own root leaked: {roots}"
    );
}

fn assert_progress_and_cancellation(out: &Value, context: &str) {
    assert_eq!(text(out, "progress"), "counted to 3", "{context}");
    let seen = &result(out, "progress")["progress_seen"];
    assert!(
        seen.as_array().is_some_and(|p| !p.is_empty()),
        "{context}: no progress reached the client: {seen}"
    );
    let cancel = result(out, "cancel");
    assert_eq!(cancel["cancelled"], true, "{context}: {cancel}");
    assert_eq!(text(out, "after-cancel"), "after the cancel", "{context}");
}

fn assert_resources_prompts_completion(out: &Value, context: &str) {
    let resources = names(result(out, "resources"), "resources", "uri");
    for uri in ["fixture://a/readme", "fixture://b/readme"] {
        assert!(resources.contains(&uri), "{context}: {resources:?}");
    }
    assert_eq!(
        result(out, "read")["contents"][0]["text"],
        "fixture readme",
        "{context}"
    );
    let templates = names(result(out, "templates"), "resourceTemplates", "uriTemplate");
    assert!(
        templates.contains(&"fixture://a/notes/{title}"),
        "{context}: {templates:?}"
    );
    assert_eq!(
        result(out, "read-template")["contents"][0]["text"],
        "note minutes",
        "{context}"
    );
    let prompts = names(result(out, "prompts"), "prompts", "name");
    assert!(
        prompts.contains(&"a__greet") && prompts.contains(&"b__greet"),
        "{context}: {prompts:?}"
    );
    let prompt = result(out, "prompt")["messages"][0]["content"]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(prompt.contains("Bob"), "{context}: {prompt}");
    assert_eq!(
        result(out, "complete")["completion"]["values"],
        json!(["Ada", "Alan"]),
        "{context}"
    );
}

#[test]
fn legacy_python_client_before_legacy_typescript_server() {
    cell(Era::Legacy, Sdk::Python, Era::Legacy, Sdk::TypeScript);
}

#[test]
fn legacy_typescript_client_before_dual_python_server() {
    cell(Era::Legacy, Sdk::TypeScript, Era::Dual, Sdk::Python);
}

#[test]
fn legacy_python_client_before_modern_only_typescript_server() {
    cell(Era::Legacy, Sdk::Python, Era::ModernOnly, Sdk::TypeScript);
}

#[test]
fn dual_typescript_client_before_legacy_python_server() {
    cell(Era::Dual, Sdk::TypeScript, Era::Legacy, Sdk::Python);
}

#[test]
fn dual_python_client_before_dual_typescript_server() {
    cell(Era::Dual, Sdk::Python, Era::Dual, Sdk::TypeScript);
}

#[test]
fn dual_typescript_client_before_modern_only_python_server() {
    cell(Era::Dual, Sdk::TypeScript, Era::ModernOnly, Sdk::Python);
}

#[test]
fn modern_only_python_client_before_legacy_typescript_server() {
    cell(Era::ModernOnly, Sdk::Python, Era::Legacy, Sdk::TypeScript);
}

#[test]
fn modern_only_typescript_client_before_dual_python_server() {
    cell(Era::ModernOnly, Sdk::TypeScript, Era::Dual, Sdk::Python);
}

#[test]
fn modern_only_typescript_client_before_modern_only_typescript_server() {
    cell(
        Era::ModernOnly,
        Sdk::TypeScript,
        Era::ModernOnly,
        Sdk::TypeScript,
    );
}
