//! The faults of an upstream (and a few of the client) that mcp-warden must survive:
//! `../shared/FAULTS.md` rows 11-37, each through the real binary. Rows 1-10 (the
//! codec) are in `serve.rs`.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used, clippy::format_push_string)]

mod support;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Env, q, test_server_table};

fn text_of(answer: &Value) -> String {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {answer}"))
        .to_owned()
}

fn error_code(answer: &Value) -> i64 {
    answer["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no error in {answer}"))
}

fn two_servers_with(extra_a: &str) -> Env {
    let env = Env::new();
    env.user_config(&format!(
        "{}{extra_a}\n{}",
        test_server_table("a", &[]),
        test_server_table("b", &[])
    ));
    env
}

#[test]
fn fault_14_a_server_that_exits_before_initialize_is_reported_and_restarted_with_backoff() {
    let env = Env::new();
    env.user_config(&format!(
        "{}\n{}",
        test_server_table("a", &["--exit-at-start", "3"]),
        test_server_table("b", &[])
    ));
    let mut serve = env.serve();
    let init = serve.initialize();
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-warden");
    assert!(serve.tool_names(1).contains(&"b__echo".to_owned()));
    let answer = serve.call_tool(2, "a__echo", json!({}));
    assert_eq!(
        answer["error"]["code"], -32602,
        "a's tools are not served: {answer}"
    );
    std::thread::sleep(Duration::from_millis(1200));
    serve.request(json!(3), "ping", json!({}));
    let said: String = serve.seen.iter().map(Value::to_string).collect();
    assert!(
        said.contains("exit status: 3") && said.contains("exiting at start as asked"),
        "{said}"
    );
    serve.close();
    let log = env.log();
    let restarts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("restarting the server") && l.contains("server=a"))
        .collect();
    assert!(restarts.len() >= 2, "expected repeated restarts:\n{log}");
    assert!(
        restarts[0].contains("250ms") && restarts[1].contains("500ms"),
        "backoff must double: {restarts:?}"
    );
}

#[test]
fn fault_15_a_server_killed_with_50_requests_in_flight_fails_each_exactly_once() {
    let env = two_servers_with("");
    let mut serve = env.ready_serve();
    for i in 0..50 {
        serve.send(&json!({"jsonrpc":"2.0","id":100 + i,"method":"tools/call","params":{"name":"a__sleep","arguments":{"ms":20000}}}));
    }
    serve.send(&json!({"jsonrpc":"2.0","id":"boom","method":"tools/call","params":{"name":"a__crash","arguments":{}}}));
    let mut answered = std::collections::BTreeSet::new();
    while answered.len() < 51 {
        let msg = serve.recv();
        if msg.get("method").is_some() {
            continue;
        }
        assert_eq!(error_code(&msg), -32004, "{msg}");
        assert!(
            msg["error"]["message"].as_str().unwrap().contains("`a`"),
            "{msg}"
        );
        assert!(
            answered.insert(msg["id"].to_string()),
            "answered twice: {msg}"
        );
    }
    assert!(
        serve
            .recv_line_within(Duration::from_millis(300))
            .is_none_or(|l| l.contains("\"method\""))
    );
    // The other server never noticed; `a` comes back.
    assert_eq!(
        text_of(&serve.call_tool(2, "b__echo", json!({"message": "b"}))),
        "b"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = serve.call_tool(3, "a__echo", json!({"message": "back"}));
        if answer.get("result").is_some() {
            assert_eq!(text_of(&answer), "back");
            break;
        }
        assert!(Instant::now() < deadline, "a did not come back: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn fault_16_a_restarted_server_with_a_changed_description_is_relisted_and_the_client_told() {
    let env = Env::new();
    let description = env.dir.path().join("description.txt");
    std::fs::write(&description, "the first description").unwrap();
    env.user_config(
        &(test_server_table(
            "a",
            &["--description-file", &support::path_str(&description)],
        ) + &support::sandbox_writes("a", env.dir.path())),
    );
    let mut serve = env.serve();
    serve.initialize();
    let listed = serve.request(json!(1), "tools/list", json!({}));
    assert!(listed.to_string().contains("the first description"));
    std::fs::write(&description, "a changed description").unwrap();
    serve.call_tool(2, "a__crash", json!({}));
    // As a client does: on each list_changed, list again, until the new definition
    // shows (first the crashed server's tools go, then the restarted server's come).
    serve.relist_until(
        Duration::from_secs(10),
        "the changed description",
        |listed| listed.to_string().contains("a changed description"),
    );
}

#[test]
fn fault_17_a_call_that_is_never_answered_times_out_is_cancelled_upstream_and_its_late_answer_dropped()
 {
    let env = two_servers_with("request_timeout = \"400ms\"\n");
    let mut serve = env.ready_serve();
    let started = Instant::now();
    let answer = serve.call_tool(2, "a__sleep", json!({"ms": 3000}));
    assert_eq!(error_code(&answer), -32005, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("`a`"));
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the timeout came late"
    );
    // The late answer (after 3 s) never reaches the client.
    assert!(serve.recv_line_within(Duration::from_secs(3)).is_none());
    serve.close();
    let log = env.log();
    assert!(
        log.lines()
            .any(|l| l.contains("server=a") && l.contains("notifications/cancelled")),
        "{log}"
    );
}

#[test]
fn fault_18_a_server_ignoring_sigterm_and_eof_is_killed_and_mcp_warden_exits_in_time() {
    let env = Env::new();
    env.user_config(&format!(
        "[servers.stubborn]\ncommand = \"sh\"\nargs = [\"-c\", {}]\nrequest_timeout = \"1s\"\n",
        q("trap '' TERM; exec sleep 600")
    ));
    let mut serve = env.serve();
    serve.initialize();
    let started = Instant::now();
    let (status, _) = serve.close();
    assert!(status.success());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    let left = support::processes_with_env(&support::path_str(env.dir.path()));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn fault_22_a_client_that_closes_stdout_ends_the_session_cleanly() {
    let env = two_servers_with("");
    let mut child = env
        .command(&["serve"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().unwrap();
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let _ = writeln!(stdin, "{init}");
    for i in 1..20 {
        let _ = writeln!(stdin, r#"{{"jsonrpc":"2.0","id":{i},"method":"ping"}}"#);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "mcp-warden kept running with its stdout closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn fault_24_a_server_that_stops_reading_only_hurts_itself() {
    let env = two_servers_with("request_timeout = \"500ms\"\n");
    let mut serve = env.ready_serve();
    assert_eq!(
        text_of(&serve.call_tool(2, "a__stop_reading", json!({}))),
        "no longer reading"
    );
    let answer = serve.call_tool(3, "a__echo", json!({"message": "x"}));
    assert!([-32005, -32006].contains(&error_code(&answer)), "{answer}");
    assert_eq!(
        text_of(&serve.call_tool(4, "b__echo", json!({"message": "b is fine"}))),
        "b is fine"
    );
}

#[test]
fn fault_25_a_flood_of_requests_gets_busy_errors_and_memory_stays_bounded() {
    let env = two_servers_with("");
    let mut serve = env.ready_serve();
    let mut flood = String::new();
    for i in 0..400 {
        flood.push_str(&format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"tools/call\",\"params\":{{\"name\":\"a__sleep\",\"arguments\":{{\"ms\":2000}}}}}}\n",
            1000 + i
        ));
    }
    serve.send_raw(flood.as_bytes());
    let mut busy = 0;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let Some(line) = serve.recv_line_within(Duration::from_millis(300)) else {
            break;
        };
        let msg: Value = serde_json::from_str(&line).unwrap();
        if msg["error"]["code"] == -32006 {
            busy += 1;
        }
    }
    assert!(busy >= 400 - 256, "only {busy} busy answers");
    assert_eq!(
        text_of(&serve.call_tool(2, "b__echo", json!({"message": "b"}))),
        "b"
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", serve.pid())).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rss_kib < 64 * 1024, "peak RSS {rss_kib} KiB");
}

#[test]
fn fault_37_an_answer_over_the_size_limit_fails_that_call_with_a_clear_error() {
    let env = two_servers_with("");
    let mut serve = env.ready_serve();
    let answer = serve.call_tool(2, "a__big", json!({"mb": 9}));
    assert_eq!(error_code(&answer), -32603, "{answer}");
    let text = answer["error"]["message"].as_str().unwrap();
    assert!(
        text.contains("over the limit") && text.contains("`a`"),
        "{text}"
    );
    assert_eq!(
        text_of(&serve.call_tool(3, "a__echo", json!({"message": "after"}))),
        "after"
    );
}

#[test]
fn fault_23_a_client_that_reads_slowly_bounds_memory_and_its_cancels_still_work() {
    const ANSWERS: usize = 100;
    let env = two_servers_with("");
    let mut child = env
        .command(&["serve"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    writeln!(stdin, "{init}").unwrap();
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
    )
    .unwrap();
    // 100 MiB of answers that nobody reads for a while...
    for i in 1..=ANSWERS {
        writeln!(stdin, r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"a__big","arguments":{{"mb":1}}}}}}"#).unwrap();
    }
    // ...while a call is made and cancelled: the cancel must still get through.
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":"slow","method":"tools/call","params":{{"name":"b__sleep","arguments":{{"ms":1500}}}}}}"#).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":"slow"}}}}"#
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    // The budget: 16 + 16 lines of 1 MiB in the two queues, a 4 MiB backlog, codec
    // buffers, the copies a line takes on its way (filter, id rewrite), the allocator's
    // slack and the binary itself: measured 55-82 MiB in a debug build, depending on
    // how the threads are scheduled, and the same 76 MiB for a flood of 40 answers as
    // of 100 (the bound does not grow with the flood). Without back-pressure all
    // 100 MiB of answers would be held on top, so the flood is large enough for the
    // bound to tell the two apart with room for that spread.
    assert!(
        peak_kib < 100 * 1024,
        "peak RSS {peak_kib} KiB with a client that does not read"
    );
    // Now read everything: every big answer arrives, the cancelled call never does.
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":"last","method":"ping"}}"#).unwrap();
    let mut reader = std::io::BufReader::new(stdout);
    let mut ids = Vec::new();
    let mut last_seen = false;
    while !(last_seen && ids.iter().filter(|id: &&Value| id.is_i64()).count() == ANSWERS + 1) {
        let mut line = String::new();
        assert!(
            std::io::BufRead::read_line(&mut reader, &mut line).unwrap() > 0,
            "stdout ended early: {ids:?}"
        );
        let msg: Value = serde_json::from_str(&line).unwrap();
        if msg["id"] == "last" {
            last_seen = true;
        } else if msg.get("method").is_none() {
            assert!(
                msg["result"].is_object(),
                "{}",
                &line[..line.len().min(300)]
            );
            ids.push(msg["id"].clone());
        }
    }
    assert!(
        !ids.contains(&json!("slow")),
        "a cancelled call was answered"
    );
    drop(stdin);
    let _ = child.wait();
}

#[test]
fn fault_31_progress_tokens_are_restored_per_server_and_late_progress_dropped() {
    let env = two_servers_with("");
    let mut serve = env.ready_serve();
    // The same token to both servers at once: each must get its own back, once.
    for (id, tool) in [("pa", "a__progress"), ("pb", "b__progress")] {
        serve.send(&json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":{},"_meta":{"progressToken":"t"}}}));
    }
    assert_eq!(text_of(&serve.answer_to(&json!("pa"))), "done");
    assert_eq!(text_of(&serve.answer_to(&json!("pb"))), "done");
    while let Some(line) = serve.recv_line_within(Duration::from_millis(300)) {
        serve.seen.push(serde_json::from_str(&line).unwrap());
    }
    let progress: Vec<&Value> = serve
        .seen
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(
        progress.len(),
        4,
        "two per call, none after completion: {progress:?}"
    );
    assert!(
        progress.iter().all(|p| p["params"]["progressToken"] == "t"),
        "{progress:?}"
    );
    assert!(
        progress.iter().all(|p| p["params"]["progress"] != 3),
        "late progress was forwarded"
    );
}

#[test]
fn fault_32_a_storm_of_list_changed_is_debounced() {
    let env = two_servers_with("");
    let mut serve = env.ready_serve();
    let started = Instant::now();
    assert_eq!(
        text_of(&serve.call_tool(2, "a__churn", json!({"n": 1000}))),
        "churned"
    );
    while let Some(line) = serve.recv_line_within(Duration::from_millis(500)) {
        serve.seen.push(serde_json::from_str(&line).unwrap());
    }
    let told = serve
        .seen
        .iter()
        .filter(|m| m["method"] == "notifications/tools/list_changed")
        .count();
    assert!((1..=3).contains(&told), "the client was told {told} times");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(serve.tool_names(3).contains(&"a__echo".to_owned()));
}

#[test]
fn fault_33_a_server_that_pages_forever_is_cut_off_with_a_warning() {
    let env = Env::new();
    env.user_config(&test_server_table("a", &["--endless-cursor", "yes"]));
    let mut serve = env.serve();
    serve.initialize();
    let names = serve.tool_names(1);
    assert!(names.contains(&"a__echo".to_owned()), "{names:?}");
    serve.close();
    assert!(env.log().contains("listing cut short"), "{}", env.log());
}

#[test]
fn fault_35_serve_refuses_a_broken_configuration_with_its_position() {
    let env = Env::new();
    env.user_config("[servers.a]\ncomand = \"x\"\n");
    let out = env.run(&["serve"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config.toml:2:1") && stderr.contains("did you mean `command`"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "stdout belongs to the protocol");
}

#[test]
fn fault_12_a_server_flooding_stderr_never_blocks_and_the_log_stays_bounded() {
    let env = two_servers_with("");
    let mut serve = env.ready_serve();
    assert_eq!(
        text_of(&serve.call_tool(2, "a__flood_stderr", json!({"mb": 30}))),
        "flooded"
    );
    assert_eq!(
        text_of(&serve.call_tool(3, "a__echo", json!({"message": "after"}))),
        "after"
    );
    serve.close();
    let size: u64 = std::fs::read_dir(env.warden_home.join("data/logs"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(
        size < 4 * 1024 * 1024,
        "the log grew to {size} bytes from 30 MiB of stderr"
    );
    assert!(env.log().contains("stderr lines not logged"));
}

#[test]
fn fault_30_cancels_of_unknown_ids_and_of_initialize_are_ignored() {
    let env = two_servers_with("");
    let mut serve = env.serve();
    // A cancel for `initialize` is not forwarded: the handshake completes.
    serve.send(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}));
    serve.send(
        &json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":0}}),
    );
    assert_eq!(
        serve.answer_to(&json!(0))["result"]["serverInfo"]["name"],
        "mcp-warden"
    );
    serve.send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
    serve.tool_names(1);
    // Cancels of ids never sent or already answered: nothing happens, nothing breaks.
    serve.send(
        &json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"never"}}),
    );
    serve.send(
        &json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}),
    );
    serve.send(&json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{}}));
    assert_eq!(
        text_of(&serve.call_tool(2, "a__echo", json!({"message": "fine"}))),
        "fine"
    );
    assert!(serve.recv_line_within(Duration::from_millis(200)).is_none());
    serve.close();
    assert!(
        !env.log()
            .lines()
            .any(|l| l.contains("notifications/cancelled") && l.contains("server=")),
        "a cancel was forwarded"
    );
}

#[test]
fn a_slow_server_does_not_hold_the_client_past_the_start_up_wait_and_joins_later() {
    let env = Env::new();
    env.user_config(&format!(
        "{}\n{}",
        test_server_table("fast", &[]),
        test_server_table("slow", &["--delay-start", "12000"])
    ));
    let mut serve = env.serve();
    let started = Instant::now();
    let init = serve.initialize();
    let waited = started.elapsed();
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-warden");
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(12),
        "initialize took {waited:?}"
    );
    let names = serve.tool_names(1);
    assert!(
        names.contains(&"fast__echo".to_owned()) && !names.contains(&"slow__echo".to_owned()),
        "{names:?}"
    );
    // The slow server comes up: the client is told, and its tools appear.
    serve.relist_until(
        Duration::from_secs(15),
        "the slow server joining",
        |listed| listed.to_string().contains("\"slow__echo\""),
    );
    assert_eq!(
        text_of(&serve.call_tool(99, "slow__echo", json!({"message": "late"}))),
        "late"
    );
}

#[test]
fn fault_30b_a_request_cancelled_while_it_waits_for_the_catalog_is_never_answered() {
    let env = Env::new();
    env.user_config(&test_server_table("a", &["--list-delay", "1500"]));
    let mut serve = env.serve();
    serve.initialize();
    // The listing is still under way: this call waits for it, and is cancelled there.
    serve.send(&json!({"jsonrpc": "2.0", "id": "c", "method": "tools/call",
                       "params": {"name": "a__echo", "arguments": {"message": "late"}}}));
    serve.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                       "params": {"requestId": "c"}}),
    );
    // Waits for the listing; the cancelled call would have been answered before it.
    let names = serve.tool_names(5);
    assert!(names.contains(&"a__echo".to_owned()), "{names:?}");
    serve.request(json!("after"), "ping", json!({}));
    assert!(
        !serve.seen.iter().any(|m| m["id"] == "c"),
        "a cancelled call was answered: {:?}",
        serve.seen
    );
}
