//! The audit trail: records written through the library's handle (as `serve` writes
//! them), read and checked through the real binary (`audit`, `audit verify`, `usage`,
//! `review`). `support::Env` points `MCP_WARDEN_HOME` at a temporary directory, so the
//! data dir, and with it `audit/` and `audit.key`, is private to each test.

mod support;

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use mcp_warden::audit::{
    self, Audit, AuditHandle, AuditKey, ChainState, Decision, Direction, Event, SessionId,
    SessionMeta, Written,
};
use mcp_warden::paths::Paths;
use mcp_warden::time::Timestamp;
use serde_json::Value;
use support::Env;

fn paths(env: &Env) -> Paths {
    Paths {
        managed_dir: env.managed.clone(),
        config_dir: env.warden_home.clone(),
        data_dir: env.warden_home.join("data"),
        home: env.home.clone(),
    }
}

fn audit_dir(env: &Env) -> PathBuf {
    env.warden_home.join("data").join("audit")
}

/// The per-install audit key the chains are keyed with.
fn audit_key(env: &Env) -> audit::AuditKey {
    audit::AuditKey::load(&env.warden_home.join("data").join("audit.key")).expect("audit key")
}

/// The day files, oldest first.
fn day_files(env: &Env) -> Vec<PathBuf> {
    audit::day_files(&audit_dir(env))
        .expect("list")
        .into_iter()
        .map(|(_, path)| path)
        .collect()
}

/// The one day file (records written "now").
fn the_file(env: &Env) -> PathBuf {
    let files = day_files(env);
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().expect("one file")
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(path, text).expect("write");
}

/// A session whose process is gone: its pid belonged to a process that has exited, and
/// no process can have started at tick 1 after boot with that pid now.
fn dead_session() -> SessionMeta {
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let pid = child.id();
    child.wait().expect("wait");
    SessionMeta {
        id: SessionId::for_process(pid, 1).expect("id"),
        workspace: Some("/home/u/proj".into()),
    }
}

fn call(i: usize) -> Event {
    Event::new(Direction::ToServer, Decision::Allow)
        .server("fs")
        .tool(format!("fs__tool_{i}"))
        .method("tools/call")
        .arguments(format!(r#"{{"i": {i}}}"#))
        .bytes(40)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Writes `events` as one session, sealed or not, and returns its id.
fn write_session(env: &Env, meta: SessionMeta, events: Vec<Event>, seal: bool) -> SessionId {
    let paths = paths(env);
    runtime().block_on(async move {
        let (handle, task) = Audit::start(&paths, meta).await.expect("start");
        let id = handle.session().clone();
        for event in events {
            handle.record(event).expect("record");
        }
        if seal {
            let written = handle.seal().await.expect("seal");
            assert!(written.sealed);
        } else {
            drop(handle);
        }
        task.await.expect("join").expect("writer");
        id
    })
}

/// A sealed session of a process that is gone, with `n` calls.
fn sealed_dead_session(env: &Env, n: usize) -> SessionId {
    write_session(env, dead_session(), (1..=n).map(call).collect(), true)
}

fn run(env: &Env, args: &[&str]) -> (Option<i32>, String, String) {
    let out: Output = env.run(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `audit verify` must fail naming `file:line` first, with `what` in the message.
fn assert_verify_fails_at(env: &Env, file: &Path, line: usize, what: &str) {
    let (code, stdout, stderr) = run(env, &["audit", "verify"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let first = stdout.lines().next().unwrap_or_default();
    let at = format!("audit verify: FAILED at {}:{line}: ", file.display());
    assert!(first.starts_with(&at), "expected `{at}`, got:\n{stdout}");
    assert!(first.contains(what), "expected `{what}` in:\n{first}");
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

#[test]
fn two_sessions_append_to_one_days_file_at_once_and_both_chains_verify() {
    let env = Env::new();
    let paths = paths(&env);
    let (a, b) = runtime().block_on(async move {
        let (a, task_a) = Audit::start(&paths, SessionMeta::new(None).expect("meta"))
            .await
            .expect("start a");
        let (b, task_b) = Audit::start(&paths, SessionMeta::new(None).expect("meta"))
            .await
            .expect("start b");
        let (ida, idb) = (a.session().clone(), b.session().clone());
        // Rounds forced to disk one after the other, so the sessions' lines interleave...
        for i in 0..100 {
            a.record(call(i)).expect("a");
            b.record(call(i)).expect("b");
            let (fa, fb) = tokio::join!(a.flush(), b.flush());
            fa.expect("flush a");
            fb.expect("flush b");
        }
        // What was flushed is no longer counted as waiting.
        assert_eq!((a.backlog(), b.backlog()), (0, 0));
        // ... then two bursts from two tasks at once.
        let burst = |h: AuditHandle| {
            tokio::spawn(async move {
                for i in 0..3000 {
                    h.record(call(i)).expect("record");
                    if i % 100 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                h.seal().await
            })
        };
        let (wa, wb) = tokio::join!(burst(a), burst(b));
        for (w, task) in [(wa, task_a), (wb, task_b)] {
            let w: Written = w.expect("join").expect("seal");
            assert_eq!((w.records, w.sealed, w.late), (3101, true, 0));
            task.await.expect("join").expect("writer");
        }
        (ida, idb)
    });
    let file = the_file(&env);
    let lines = lines(&file);
    assert_eq!(lines.len(), 2 * 3101);
    let session_of = |l: &str| serde_json::from_str::<Value>(l).expect("json")["session"].clone();
    let switches = lines
        .windows(2)
        .filter(|w| session_of(&w[0]) != session_of(&w[1]))
        .count();
    assert!(
        switches >= 100,
        "the sessions' lines did not interleave ({switches})"
    );
    let report = audit::verify(&audit_dir(&env), Some(&audit_key(&env))).expect("verify");
    assert!(report.is_ok(), "{:?}", report.problems);
    let mut sessions: Vec<_> = report
        .sessions
        .iter()
        .map(|s| (s.session.clone(), s.records, s.state == ChainState::Sealed))
        .collect();
    sessions.sort();
    let mut expected = vec![(a.to_string(), 3101, true), (b.to_string(), 3101, true)];
    expected.sort();
    assert_eq!(sessions, expected);
    let (code, stdout, stderr) = run(&env, &["audit", "verify"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("audit verify: ok: 6202 lines in 1 file, 2 sessions: 2 sealed"),
        "{stdout}"
    );
}

/// A burst of the session's packed events (their buffers go back to the session's
/// pool, and the writer gives a burst's memory back after it): every record is
/// written, in order, and the chain verifies.
#[test]
fn a_burst_of_packed_events_is_written_whole_and_verifies() {
    let env = Env::new();
    let paths = paths(&env);
    let written = runtime().block_on(async move {
        let (handle, task) = Audit::start(&paths, SessionMeta::new(None).expect("meta"))
            .await
            .expect("start");
        for i in 0..5000_u64 {
            let event = handle
                .packed(Direction::ToClient, Decision::Allow, 64)
                .method("tools/call")
                .server("fs")
                .tool(&format!("fs__tool_{i}"))
                .arguments(format!(r#"{{"i": {i}}}"#).as_bytes())
                .bytes(i);
            handle.record_packed(event).expect("record");
        }
        let written: Written = handle.seal().await.expect("seal");
        task.await.expect("join").expect("writer");
        written
    });
    assert_eq!((written.records, written.sealed), (5001, true));
    let lines = lines(&the_file(&env));
    assert_eq!(lines.len(), 5001);
    for (i, line) in lines.iter().take(5000).enumerate() {
        let record: Value = serde_json::from_str(line).expect("json");
        assert_eq!(record["tool"], format!("fs__tool_{i}"), "{line}");
        assert_eq!(record["bytes"], i, "{line}");
    }
    let (code, stdout, stderr) = run(&env, &["audit", "verify"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
}

#[test]
fn a_clean_shutdown_loses_no_record_of_ten_thousand() {
    let env = Env::new();
    let paths = paths(&env);
    let written = runtime().block_on(async move {
        let (handle, task) = Audit::start(&paths, SessionMeta::new(None).expect("meta"))
            .await
            .expect("start");
        for i in 0..10_000 {
            handle.record(call(i)).expect("record");
        }
        // Sealing right away: nothing may be left in the channel or a buffer.
        let written = handle.seal().await.expect("seal");
        assert_eq!(task.await.expect("join").expect("writer"), written);
        written
    });
    assert_eq!(written.records, 10_001);
    assert!(written.sealed);
    let file = the_file(&env);
    assert_eq!(written.file.as_deref(), Some(file.as_path()));
    let records: Vec<Value> = lines(&file)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(records.len(), 10_001);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["seq"], i as u64 + 1);
    }
    for (i, r) in records[..10_000].iter().enumerate() {
        assert_eq!(r["tool"], format!("fs__tool_{i}"));
    }
    assert_eq!(records[10_000]["decision"], "seal");
    assert_eq!(records[10_000]["direction"], "session");
    assert!(
        audit::verify(&audit_dir(&env), Some(&audit_key(&env)))
            .expect("verify")
            .is_ok()
    );
}

#[test]
fn records_carry_the_spec_fields_and_an_hmac_of_the_canonical_arguments() {
    let env = Env::new();
    let event = Event::new(Direction::ToServer, Decision::Deny)
        .server("fs")
        .tool("fs__write_file")
        .method("tools/call")
        .rule("writes-stay-in-workspace")
        .arguments(r#"{ "path": "/etc/passwd", "content": "x" }"#)
        .redacted_args(r#"{ "path": "/etc/passwd", "content": "[REDACTED:aws-key]" }"#)
        .bytes(118)
        .detail("writes outside the workspace are not allowed");
    let listed = Event::list(
        "tools/list",
        vec!["fs__read_file".into(), "fs__write_file".into()],
        1,
    );
    write_session(&env, dead_session(), vec![event, listed], true);
    let lines = lines(&the_file(&env));
    let first: Value = serde_json::from_str(&lines[0]).expect("json");
    let keys: Vec<&str> = first
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "v",
            "ts",
            "session",
            "seq",
            "workspace",
            "server",
            "tool",
            "method",
            "direction",
            "decision",
            "rule",
            "args_hmac",
            "ms",
            "bytes",
            "detail",
            "args",
            "prev",
            "hash"
        ]
    );
    assert_eq!(first["v"], 2);
    assert_eq!(first["seq"], 1);
    assert_eq!(first["prev"], audit::GENESIS);
    assert_eq!(first["ms"], Value::Null);
    assert_eq!(first["workspace"], "/home/u/proj");
    let ts = first["ts"].as_str().expect("ts");
    assert_eq!(ts.len(), 24, "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
    // The HMAC is over the canonical arguments, under the key in the data dir.
    let key_bytes: [u8; 32] = fs::read(env.warden_home.join("data/audit.key"))
        .expect("key")
        .try_into()
        .expect("32 bytes");
    let key = AuditKey::from_bytes(key_bytes);
    let expected = audit::args_hmac(&key, r#"{"content":"x","path":"/etc/passwd"}"#).expect("hmac");
    assert_eq!(first["args_hmac"], expected);
    // Raw arguments never appear; the redacted ones are stored canonically.
    assert!(!lines[0].contains(r#""content":"x""#));
    assert!(lines[0].contains(r#""args":{"content":"[REDACTED:aws-key]","path":"/etc/passwd"}"#));
    let list: Value = serde_json::from_str(&lines[1]).expect("json");
    assert_eq!(list["decision"], "list");
    assert_eq!(
        (list["listed"].clone(), list["held"].clone()),
        (2.into(), 1.into())
    );
    assert_eq!(list["tools"][1], "fs__write_file");
    assert_eq!(list["prev"], first["hash"]);
}

#[test]
fn files_are_private_to_the_user() {
    let env = Env::new();
    write_session(&env, dead_session(), vec![call(1)], true);
    let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&audit_dir(&env)), 0o700);
    assert_eq!(mode(&the_file(&env)), 0o600);
    let key = env.warden_home.join("data/audit.key");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(fs::read(&key).expect("key").len(), 32);
    // A second session reuses the key.
    let before = fs::read(&key).expect("key");
    write_session(&env, dead_session(), vec![call(2)], true);
    assert_eq!(fs::read(&key).expect("key"), before);
}

#[test]
fn the_chain_continues_into_the_next_days_file_at_utc_midnight() {
    let env = Env::new();
    let before = Timestamp::parse_rfc3339("2020-03-01T23:59:59.900Z").expect("ts");
    let after = Timestamp::parse_rfc3339("2020-03-02T00:00:00.100Z").expect("ts");
    write_session(
        &env,
        dead_session(),
        vec![call(1).at(before), call(2).at(after)],
        true,
    );
    let files = day_files(&env);
    let names: Vec<_> = files
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[..2], ["2020-03-01.jsonl", "2020-03-02.jsonl"]);
    let first: Value = serde_json::from_str(&lines(&files[0])[0]).expect("json");
    let second: Value = serde_json::from_str(&lines(&files[1])[0]).expect("json");
    assert_eq!(second["seq"], 2);
    assert_eq!(second["prev"], first["hash"]);
    let (code, stdout, _) = run(&env, &["audit", "verify"]);
    assert_eq!(code, Some(0), "{stdout}");
    // Reading spans the files in order.
    let (code, stdout, _) = run(&env, &["audit", "--json"]);
    assert_eq!(code, Some(0));
    let doc: Value = serde_json::from_str(&stdout).expect("one json document");
    let seqs: Vec<_> = doc["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["seq"].clone())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
}

#[test]
fn a_session_without_seal_that_still_runs_is_open_not_broken() {
    let env = Env::new();
    // This test process is the session's process, and it is running.
    write_session(
        &env,
        SessionMeta::new(None).expect("meta"),
        vec![call(1), call(2)],
        false,
    );
    let report = audit::verify(&audit_dir(&env), Some(&audit_key(&env))).expect("verify");
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.sessions[0].state, ChainState::Open);
    let (code, stdout, _) = run(&env, &["audit", "verify"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("1 running"), "{stdout}");
}

// ---------------------------------------------------------------------------------------
// Verify: each kind of tampering, through the binary
// ---------------------------------------------------------------------------------------

#[test]
fn verify_finds_an_edited_line() {
    let env = Env::new();
    sealed_dead_session(&env, 10);
    let file = the_file(&env);
    let mut lines = lines(&file);
    let edited = lines[4].replace(r#""decision":"allow""#, r#""decision":"deny""#);
    assert_ne!(edited, lines[4]);
    lines[4] = edited;
    write_lines(&file, &lines);
    assert_verify_fails_at(
        &env,
        &file,
        5,
        "edited: the record's hash does not match its contents",
    );
}

#[test]
fn verify_finds_an_edited_line_whose_hash_was_recomputed() {
    let env = Env::new();
    sealed_dead_session(&env, 10);
    let file = the_file(&env);
    let mut all = lines(&file);
    // Rewrite record 5 with a hash recomputed over its new contents, as anyone can
    // without the per-install key: the keyed chain names the line itself.
    let mut value: Value = serde_json::from_str(&all[4]).expect("json");
    value["tool"] = "fs__other".into();
    value.as_object_mut().expect("object").remove("hash");
    let canonical = mcp_warden::canonical::canonicalize(&value.to_string()).expect("jcs");
    let prev = value["prev"].as_str().expect("prev").to_owned();
    value["hash"] = audit::record::chain_hash(&prev, &canonical).into();
    all[4] = value.to_string();
    write_lines(&file, &all);
    assert_verify_fails_at(
        &env,
        &file,
        5,
        "edited: the record's hash does not match its contents",
    );
}

/// Rewrites every line of `file` with `edit` and chains them again the unkeyed way, as
/// anyone without the per-install key could.
fn rechain_unkeyed(file: &Path, edit: impl Fn(&mut Value)) {
    let mut prev = audit::GENESIS.to_owned();
    let mut all = Vec::new();
    for line in lines(file) {
        let mut value: Value = serde_json::from_str(&line).expect("json");
        edit(&mut value);
        value["prev"] = prev.clone().into();
        value.as_object_mut().expect("object").remove("hash");
        let canonical = mcp_warden::canonical::canonicalize(&value.to_string()).expect("jcs");
        prev = audit::record::chain_hash(&prev, &canonical);
        value["hash"] = prev.clone().into();
        all.push(value.to_string());
    }
    write_lines(file, &all);
}

/// Issue 14 item 5: a whole session rewritten and re-chained without the key (every
/// hash recomputed the unkeyed way) is found at its first line.
#[test]
fn verify_finds_a_session_rechained_without_the_key() {
    let env = Env::new();
    sealed_dead_session(&env, 5);
    let file = the_file(&env);
    rechain_unkeyed(&file, |value| value["tool"] = "fs__innocent".into());
    assert_verify_fails_at(
        &env,
        &file,
        1,
        "edited: the record's hash does not match its contents",
    );
}

#[test]
fn verify_finds_a_dropped_line() {
    let env = Env::new();
    sealed_dead_session(&env, 10);
    let file = the_file(&env);
    let mut lines = lines(&file);
    lines.remove(4);
    write_lines(&file, &lines);
    assert_verify_fails_at(
        &env,
        &file,
        5,
        "dropped: record 5 of this session is missing before this line (found record 6)",
    );
}

#[test]
fn verify_finds_a_reordered_pair() {
    let env = Env::new();
    sealed_dead_session(&env, 10);
    let file = the_file(&env);
    let mut lines = lines(&file);
    lines.swap(4, 5);
    write_lines(&file, &lines);
    let later = format!("{}:6", file.display());
    assert_verify_fails_at(
        &env,
        &file,
        5,
        &format!("reordered: record 6 comes before record 5, which is at {later}"),
    );
}

#[test]
fn verify_finds_a_cut_off_chain_of_a_session_that_is_gone() {
    let env = Env::new();
    sealed_dead_session(&env, 10);
    let file = the_file(&env);
    let lines = lines(&file);
    write_lines(&file, &lines[..7]);
    assert_verify_fails_at(&env, &file, 7, "unsealed (interrupted or cut off)");
}

#[test]
fn verify_finds_a_line_cut_off_in_the_middle() {
    let env = Env::new();
    sealed_dead_session(&env, 10);
    let file = the_file(&env);
    let text = fs::read_to_string(&file).expect("read");
    let eighth = text.match_indices('\n').nth(6).expect("7 lines").0 + 1;
    fs::write(&file, &text[..eighth + 30]).expect("truncate");
    assert_verify_fails_at(&env, &file, 8, "cut off: the last line has no newline");
    // The chain that lost its tail is reported too.
    let (_, stdout, _) = run(&env, &["audit", "verify"]);
    assert!(
        stdout.contains("unsealed (interrupted or cut off)"),
        "{stdout}"
    );
}

#[test]
fn verify_names_the_first_bad_line_among_several_sessions_and_explains_in_json() {
    let env = Env::new();
    sealed_dead_session(&env, 5);
    sealed_dead_session(&env, 5);
    let file = the_file(&env);
    let mut all = lines(&file);
    all[8] = all[8].replace("fs__tool_", "fs__tool_X");
    all[2] = all[2].replace("fs__tool_", "fs__tool_Y");
    write_lines(&file, &all);
    assert_verify_fails_at(&env, &file, 3, "edited");
    let (code, stdout, _) = run(&env, &["audit", "verify", "--json"]);
    assert_eq!(code, Some(1));
    let doc: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(doc["ok"], false);
    let lines: Vec<_> = doc["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p["line"].clone())
        .collect();
    assert_eq!(lines, [3, 9]);
}

#[test]
fn verify_of_an_empty_log_passes() {
    let env = Env::new();
    let (code, stdout, _) = run(&env, &["audit", "verify"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("no audit records"), "{stdout}");
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

#[test]
fn audit_skips_a_torn_last_line_with_a_note() {
    let env = Env::new();
    sealed_dead_session(&env, 3);
    let file = the_file(&env);
    let mut text = fs::read_to_string(&file).expect("read");
    text.push_str(r#"{"v":1,"ts":"2026-05-01T12:00:0"#);
    fs::write(&file, text).expect("write");
    let (code, stdout, stderr) = run(&env, &["audit"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("note: {}:5: skipped: torn line", file.display())),
        "{stderr}"
    );
    assert_eq!(stdout.lines().count(), 1 + 4, "{stdout}");
    let (code, stdout, _) = run(&env, &["audit", "--json"]);
    assert_eq!(code, Some(0));
    let doc: Value = serde_json::from_str(&stdout).expect("one json document");
    assert_eq!(doc["records"].as_array().expect("records").len(), 4);
    assert_eq!(doc["skipped"][0]["at"], format!("{}:5", file.display()));
}

/// Two sessions: one of three calls over three days (read, write denied, status), and
/// one other session with a single call now.
fn filter_fixture(env: &Env) -> (SessionId, SessionId) {
    let now = Timestamp::now();
    let hours = |h: u64| now.minus(Duration::from_secs(h * 3600));
    let first = write_session(
        env,
        dead_session(),
        vec![
            Event::new(Direction::ToServer, Decision::Allow)
                .server("fs")
                .tool("fs__read_file")
                .method("tools/call")
                .at(hours(72)),
            Event::new(Direction::ToServer, Decision::Deny)
                .server("fs")
                .tool("fs__write_file")
                .method("tools/call")
                .rule("no-etc")
                .at(hours(1)),
            Event::new(Direction::ToServer, Decision::Allow)
                .server("git")
                .tool("git__status")
                .method("tools/call")
                .at(hours(0)),
        ],
        true,
    );
    let second = write_session(
        env,
        dead_session(),
        vec![
            Event::new(Direction::ToServer, Decision::Flag)
                .server("fetch")
                .tool("fetch__fetch")
                .rule("output:injection"),
        ],
        true,
    );
    (first, second)
}

/// The tools of `audit ARGS --json`, in order, seals left out.
fn audit_tools(env: &Env, args: &[&str]) -> Vec<String> {
    let mut all = vec!["audit", "--json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run(env, &all);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let doc: Value = serde_json::from_str(&stdout).expect("one json document");
    doc["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["decision"] != "seal")
        .map(|r| r["tool"].as_str().unwrap_or("-").to_owned())
        .collect()
}

#[test]
fn audit_filters_by_time_tool_server_decision_and_session() {
    let env = Env::new();
    let (first, second) = filter_fixture(&env);
    assert!(
        day_files(&env).len() >= 2,
        "three days apart: rotated files"
    );
    let all = [
        "fs__read_file",
        "fs__write_file",
        "git__status",
        "fetch__fetch",
    ];
    assert_eq!(audit_tools(&env, &[]), all);
    assert_eq!(audit_tools(&env, &["--since", "2d"]), all[1..]);
    assert_eq!(audit_tools(&env, &["--since", "30m"]), all[2..]);
    assert_eq!(audit_tools(&env, &["--tool", "fs__*"]), all[..2]);
    assert_eq!(audit_tools(&env, &["--tool", "*__st?tus"]), ["git__status"]);
    assert_eq!(audit_tools(&env, &["--server", "git"]), ["git__status"]);
    assert_eq!(
        audit_tools(&env, &["--decision", "deny"]),
        ["fs__write_file"]
    );
    assert_eq!(
        audit_tools(&env, &["--decision", "deny,flag"]),
        ["fs__write_file", "fetch__fetch"]
    );
    let prefix = &second.as_str()[..second.as_str().len() - 4];
    assert_eq!(audit_tools(&env, &["--session", prefix]), ["fetch__fetch"]);
    assert_eq!(
        audit_tools(&env, &["--session", first.as_str(), "--since", "2d"]),
        all[1..3]
    );
    // The table: a header and one row per record.
    let (code, stdout, _) = run(&env, &["audit", "--decision", "deny"]);
    assert_eq!(code, Some(0));
    let rows: Vec<_> = stdout.lines().collect();
    assert!(
        rows[0].starts_with("TIME") && rows[0].contains("DECISION"),
        "{stdout}"
    );
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(
        rows[1].contains("deny")
            && rows[1].contains("fs__write_file")
            && rows[1].contains("no-etc"),
        "{stdout}"
    );
}

#[test]
fn bad_filters_are_usage_errors() {
    let env = Env::new();
    for args in [
        &["audit", "--since", "yesterday"][..],
        &["audit", "--decision", "denied"],
        &["usage", "--since", "1y"],
        &["audit", "--tool", "x", "verify"],
    ] {
        let (code, stdout, stderr) = run(&env, args);
        assert_eq!(code, Some(2), "{args:?}: {stdout}{stderr}");
    }
    let (_, _, stderr) = run(&env, &["audit", "--since", "yesterday"]);
    assert!(stderr.contains("neither a duration"), "{stderr}");
}

#[test]
fn audit_follow_prints_records_as_they_are_written() {
    let env = Env::new();
    sealed_dead_session(&env, 2);
    let mut child = env
        .command(&["audit", "--follow", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = || {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("a line from --follow");
        serde_json::from_str::<Value>(&line).expect("one json record per line")
    };
    assert_eq!(next()["tool"], "fs__tool_1");
    assert_eq!(next()["tool"], "fs__tool_2");
    assert_eq!(next()["decision"], "seal");
    let start = Instant::now();
    sealed_dead_session(&env, 1);
    assert_eq!(next()["tool"], "fs__tool_1");
    assert_eq!(next()["decision"], "seal");
    assert!(start.elapsed() < Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------------
// usage and review
// ---------------------------------------------------------------------------------------

#[test]
fn usage_lists_a_granted_tool_never_called_with_a_rule_to_paste() {
    let env = Env::new();
    let listed = vec![
        "fs__read_file".to_owned(),
        "fs__write_file".to_owned(),
        "git__status".to_owned(),
    ];
    write_session(
        &env,
        dead_session(),
        vec![
            Event::list("tools/list", listed.clone(), 0),
            // One record per call, as `serve` writes them: the answer for a call that
            // went through, the refusal for one that did not.
            Event::new(Direction::ToClient, Decision::Redact)
                .server("fs")
                .tool("fs__read_file")
                .method("tools/call")
                .rule("output:secrets"),
            Event::new(Direction::ToServer, Decision::Deny)
                .server("git")
                .tool("git__status")
                .method("tools/call")
                .rule("no-git"),
            Event::list("tools/list", listed, 0),
        ],
        true,
    );
    let (code, stdout, stderr) = run(&env, &["usage"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("tool use in the last 30d: 2 tool lists, 2 calls"),
        "{stdout}"
    );
    let row = |tool: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(tool))
            .unwrap_or_else(|| panic!("no row for {tool}:\n{stdout}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("fs__read_file")[1..5], ["fs", "2", "1", "0"]);
    assert_eq!(row("git__status")[1..5], ["git", "2", "1", "1"]);
    assert_eq!(row("fs__write_file")[1..6], ["-", "2", "0", "0", "never"]);
    let rule = "[[policy.rules]]\n# listed but not called in the last 30d (mcp-warden usage)\nid = \"unused-tools\"\ntools = [\n  \"fs__write_file\",\n]\naction = \"deny\"\n";
    assert!(stdout.contains(rule), "{stdout}");
    assert!(
        stdout.contains("1 tool was listed but never called"),
        "{stdout}"
    );
    // What is pasted is the rule SPEC "Policy" describes.
    let pasted: toml::Table = toml::from_str(rule).expect("valid toml");
    let rules = pasted["policy"]["rules"].as_array().expect("rules");
    assert_eq!(rules[0]["tools"].as_array().expect("tools").len(), 1);
    assert_eq!(rules[0]["action"].as_str(), Some("deny"));
    let (code, stdout, _) = run(&env, &["usage", "--since", "1h", "--json"]);
    assert_eq!(code, Some(0));
    let doc: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(doc["unused"], serde_json::json!(["fs__write_file"]));
}

/// Regression (issue 16, item 1): `serve` audits a call that went through as its
/// answer (`to_client`), and `usage` counted only `to_server` records, so tools in daily
/// use were offered as candidates to deny. The records here are the ones a real `serve`
/// wrote.
#[test]
fn usage_counts_the_calls_a_real_serve_audited() {
    let env = Env::new();
    env.user_config(&format!(
        "{}\n[[policy.rules]]\nid = \"no-pid-outside-etc\"\ntools = [\"t__pid\"]\nwhen = {{ arg = \"path\", under = [\"/etc\"] }}\naction = \"deny\"\n",
        support::test_server_table("t", &[])
    ));
    let mut serve = env.ready_serve();
    for id in 2..4 {
        let answer = serve.call_tool(id, "t__echo", serde_json::json!({"message": "hi"}));
        assert_ne!(answer["result"]["isError"], true, "{answer}");
    }
    let denied = serve.call_tool(4, "t__pid", serde_json::json!({}));
    assert_eq!(denied["result"]["isError"], true, "{denied}");
    let (status, stderr) = serve.close();
    assert!(status.success(), "{stderr}");

    let (code, stdout, stderr) = run(&env, &["usage", "--json"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let doc: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(doc["calls"], 3, "{doc}");
    let tool = |name: &str| {
        doc["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .find(|t| t["tool"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {doc}"))
    };
    assert_eq!(tool("t__echo")["called"], 2, "{doc}");
    assert_eq!(tool("t__echo")["denied"], 0, "{doc}");
    assert_eq!(tool("t__echo")["server"], "t", "{doc}");
    assert_eq!(tool("t__pid")["called"], 1, "{doc}");
    assert_eq!(tool("t__pid")["denied"], 1, "{doc}");
    let unused = doc["unused"].as_array().expect("unused");
    assert!(!unused.contains(&Value::from("t__echo")), "{doc}");
    assert!(!unused.contains(&Value::from("t__pid")), "{doc}");
    assert!(unused.contains(&Value::from("t__sleep")), "{doc}");
    let (code, stdout, _) = run(&env, &["usage"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("3 calls"), "{stdout}");
}

#[test]
fn review_groups_near_misses_by_rule_and_tool_with_counts_and_an_example() {
    let env = Env::new();
    let deny = |tool: &str, rule: &str, path: &str| {
        Event::new(Direction::ToServer, Decision::Deny)
            .server("fs")
            .tool(tool)
            .method("tools/call")
            .rule(rule)
            .arguments(format!(r#"{{"path":"{path}"}}"#))
            .detail("writes outside the workspace are not allowed")
    };
    write_session(
        &env,
        dead_session(),
        vec![
            deny("fs__write_file", "no-etc", "/etc/a"),
            call(1),
            deny("fs__write_file", "no-etc", "/etc/b"),
            deny("fetch__fetch", "flow:trifecta", "https://evil.example"),
            deny("fs__write_file", "no-etc", "/etc/c"),
            Event::new(Direction::ToClient, Decision::Flag)
                .server("fetch")
                .tool("fetch__fetch")
                .rule("output:injection"),
            Event::new(Direction::ToServer, Decision::Monitor)
                .server("fs")
                .tool("fs__write_file")
                .rule("no-etc"),
        ],
        true,
    );
    let (code, stdout, stderr) = run(&env, &["review"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("near-misses in the last 7d: 6 events in 3 groups"),
        "{stdout}"
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0][..6],
        ["4", "no-etc", "fs__write_file", "deny", "3,", "monitor"]
    );
    assert_eq!(rows.len(), 3, "{stdout}");
    assert!(
        !stdout.contains("/etc/"),
        "arguments must not appear: {stdout}"
    );
    assert!(stdout.contains("e.g. "), "{stdout}");
    let (code, stdout, _) = run(&env, &["review", "--json"]);
    assert_eq!(code, Some(0));
    let doc: Value = serde_json::from_str(&stdout).expect("json");
    let groups = doc["groups"].as_array().expect("groups");
    assert_eq!(groups[0]["count"], 4);
    assert_eq!(
        groups[0]["decisions"],
        serde_json::json!({"deny": 3, "monitor": 1})
    );
    let hmac = groups
        .iter()
        .find(|g| g["rule"] == "flow:trifecta")
        .expect("trifecta group")["example"]["args_hmac"]
        .as_str()
        .expect("an hmac")
        .to_owned();
    assert!(
        hmac.len() == 64 && hmac.bytes().all(|b| b.is_ascii_hexdigit()),
        "{hmac}"
    );
}

/// `serve` records every decision of a real session: the list answer (with what is
/// held), an allowed call with the HMAC of its arguments and its time, a held call, a
/// redacted answer, and a seal when the client leaves; the chain verifies.
#[test]
fn serve_records_its_decisions_and_seals_the_chain() {
    let env = Env::new();
    let token = format!("{}{}", "ghp_", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8");
    env.user_config_exact(&format!(
        "[pinning]\nmode = \"tofu\"\n\n{}env = {{ DEMO_TOKEN = {} }}\n\n{}",
        support::test_server_table("a", &[]),
        support::q(&token),
        support::example_table("p", "poisoned_server", &[]),
    ));
    let mut serve = env.serve();
    serve.initialize();
    let names = serve.tool_names(1);
    assert!(names.contains(&"a__echo".to_owned()), "{names:?}");
    serve.call_tool(2, "a__echo", serde_json::json!({"message": "hello"}));
    serve.call_tool(
        3,
        "p__add",
        serde_json::json!({"a": 1, "b": 2, "sidenote": ""}),
    );
    // A secret in a result is redacted; one in arguments never leaves.
    let listed_env = serve.call_tool(4, "a__env", serde_json::json!({}));
    assert!(
        listed_env.to_string().contains("[REDACTED:"),
        "{listed_env}"
    );
    let sent = serve.call_tool(5, "a__echo", serde_json::json!({"message": token}));
    assert_eq!(
        sent["result"]["_meta"]["mcp-warden/rule"], "output:secrets",
        "{sent}"
    );
    let (status, _) = serve.close();
    assert!(status.success());

    let records: Vec<Value> = lines(&the_file(&env))
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let find = |decision: &str, tool: &str| {
        records
            .iter()
            .find(|r| r["decision"] == decision && r["tool"] == tool)
            .unwrap_or_else(|| panic!("no `{decision}` record for `{tool}`: {records:#?}"))
    };
    let listed = records
        .iter()
        .find(|r| r["decision"] == "list")
        .expect("a list record");
    assert_eq!(listed["method"], "tools/list");
    assert!(listed["held"].as_u64().expect("held") >= 1, "{listed}");
    let allowed = find("allow", "a__echo");
    assert_eq!(allowed["server"], "a");
    assert_eq!(allowed["method"], "tools/call");
    assert!(
        allowed["args_hmac"].as_str().is_some_and(|h| h.len() == 64),
        "{allowed}"
    );
    assert!(allowed["ms"].is_u64(), "{allowed}");
    let held = find("hold", "p__add");
    assert_eq!(held["rule"], "scan:hidden-instructions");
    let denied = find("deny", "a__echo");
    assert_eq!(denied["rule"], "output:secrets");
    let redacted = find("redact", "a__env");
    assert!(
        redacted["rule"]
            .as_str()
            .expect("rule")
            .starts_with("output:secrets"),
        "{redacted}"
    );
    assert!(
        !lines(&the_file(&env)).join("\n").contains(&token),
        "the secret reached the audit"
    );
    assert_eq!(records.last().expect("records")["decision"], "seal");
    let (code, out, err) = run(&env, &["audit", "verify"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, _) = run(&env, &["audit", "--decision", "hold"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("p__add"), "{out}");
}

/// Issue 14 item 5: every seal is anchored, so a whole session removed from a day file
/// (its lines all gone, the other session's chain whole) is found.
#[test]
fn verify_finds_a_whole_session_removed_through_the_anchor() {
    let env = Env::new();
    let gone = sealed_dead_session(&env, 3);
    sealed_dead_session(&env, 2);
    let file = the_file(&env);
    let kept: Vec<String> = lines(&file)
        .into_iter()
        .filter(|l| !l.contains(gone.as_str()))
        .collect();
    write_lines(&file, &kept);
    let (code, stdout, _) = run(&env, &["audit", "verify"]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("anchor.jsonl:1: "), "{stdout}");
    assert!(
        stdout.contains("removed: the anchor records this session sealed after 4 records"),
        "{stdout}"
    );
}

/// Issue 14 item 5: a whole day file removed is found through the anchor.
#[test]
fn verify_finds_a_removed_day_file_through_the_anchor() {
    let env = Env::new();
    sealed_dead_session(&env, 2);
    fs::remove_file(the_file(&env)).expect("rm");
    let (code, stdout, _) = run(&env, &["audit", "verify"]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("removed: "), "{stdout}");
}

/// Issue 14 item 5: a session rewritten as format 1 (the unkeyed chain, still accepted
/// for old files) to hide an edit is found: the anchor holds its keyed seal.
#[test]
fn verify_finds_a_session_downgraded_to_the_unkeyed_format() {
    let env = Env::new();
    sealed_dead_session(&env, 3);
    let file = the_file(&env);
    rechain_unkeyed(&file, |value| {
        value["v"] = 1.into();
        value["tool"] = "fs__innocent".into();
    });
    let (code, stdout, _) = run(&env, &["audit", "verify"]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("removed: "), "{stdout}");
}

/// Issue 14 item 5: the anchor is itself a keyed chain: a line taken out of it is found.
#[test]
fn verify_finds_an_anchor_line_removed() {
    let env = Env::new();
    let first = sealed_dead_session(&env, 2);
    sealed_dead_session(&env, 2);
    let file = the_file(&env);
    let kept: Vec<String> = lines(&file)
        .into_iter()
        .filter(|l| !l.contains(first.as_str()))
        .collect();
    write_lines(&file, &kept);
    let anchor = audit_dir(&env).join("anchor.jsonl");
    let rest: Vec<String> = lines(&anchor).into_iter().skip(1).collect();
    write_lines(&anchor, &rest);
    let (code, stdout, _) = run(&env, &["audit", "verify"]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("broken anchor"), "{stdout}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata(&anchor).expect("meta").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}
