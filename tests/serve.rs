//! `mcp-warden serve` through the real binary: pass-through, namespacing, id remapping,
//! the codec's error answers (FAULTS rows 1-10) and the child's environment.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used, clippy::format_push_string)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Env, is_alive, q, test_server_table, wait_gone};

/// Two test servers, `a` and `b`, from the user config.
fn two_servers() -> Env {
    let env = Env::new();
    env.user_config(&format!(
        "{}\n{}",
        test_server_table("a", &[]),
        test_server_table("b", &[])
    ));
    env
}

fn text_of(answer: &Value) -> String {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {answer}"))
        .to_owned()
}

#[test]
fn tools_of_every_server_are_listed_under_their_namespace_and_callable() {
    let env = two_servers();
    let mut serve = env.serve();
    let init = serve.initialize();
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-warden");
    assert_eq!(init["result"]["capabilities"]["tools"]["listChanged"], true);
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    let names = serve.tool_names(1);
    for n in ["a__echo", "a__pid", "b__echo", "b__pid"] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    let a = serve.call_tool(2, "a__echo", json!({"message": "to a"}));
    assert_eq!(text_of(&a), "to a");
    assert_eq!(a["result"]["_meta"]["test/server"], "a");
    let b = serve.call_tool(3, "b__echo", json!({"message": "to b"}));
    assert_eq!(b["result"]["_meta"]["test/server"], "b");
    let (status, _) = serve.close();
    assert!(status.success());
}

#[test]
fn answers_keep_the_clients_exact_id_and_every_other_byte() {
    let env = two_servers();
    let mut serve = env.ready_serve();
    // `"1"` and `1` in flight at once, to two servers that both see their own id 1.
    serve.send_raw(
        br#"{"jsonrpc":"2.0","id":"1","method":"tools/call","params":{"name":"a__sleep","arguments":{"ms":200}}}
{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"b__echo","arguments":{"message":"x"}}}
"#,
    );
    let first = serve.recv_line();
    let second = serve.recv_line();
    // b answers first (a sleeps); the raw `_meta` number keeps its text `1.50`.
    assert!(first.starts_with(r#"{"jsonrpc":"2.0","id":1,"#), "{first}");
    assert!(first.contains(r#""test/number":1.50"#), "{first}");
    assert!(second.contains(r#""id":"1""#), "{second}");
    for id in ["1e3", "18446744073709551616", r#""\u00e9t\u00e9""#] {
        serve.send_raw(format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"a__echo","arguments":{{"message":"m"}}}}}}"#).as_bytes());
        serve.send_raw(b"\n");
        let line = serve.recv_line();
        assert!(
            line.starts_with(&format!(r#"{{"jsonrpc":"2.0","id":{id},"#)),
            "{id}: {line}"
        );
    }
}

#[test]
fn ping_is_answered_locally_even_without_servers() {
    let env = Env::new();
    let mut serve = env.serve();
    let pong = serve.request(json!("p"), "ping", json!({}));
    assert_eq!(pong["result"], json!({}));
    serve.initialize();
    assert_eq!(serve.tool_names(1), Vec::<String>::new());
    let unknown = serve.request(json!(2), "no/such/method", json!({}));
    assert_eq!(unknown["error"]["code"], -32601);
    // mcp-warden speaks 2026-07-28 too (issue 15): `server/discover` is answered.
    let discover = serve.request(json!(3), "server/discover", json!({}));
    assert_eq!(discover["result"]["supportedVersions"][0], "2026-07-28");
}

#[test]
fn requests_before_initialize_are_refused() {
    let env = two_servers();
    let mut serve = env.serve();
    let early = serve.request(json!(1), "tools/list", json!({}));
    assert_eq!(early["error"]["code"], -32600);
    serve.initialize();
    assert!(!serve.tool_names(2).is_empty());
}

#[test]
fn a_reused_id_still_in_flight_is_refused() {
    let env = two_servers();
    let mut serve = env.ready_serve();
    serve.send(&json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a__sleep","arguments":{"ms":300}}}));
    serve.send(&json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"b__echo","arguments":{}}}));
    let refused = serve.answer_to(&json!(7));
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    let slept = serve.answer_to(&json!(7));
    assert_eq!(text_of(&slept), "slept");
}

#[test]
fn unknown_tools_get_invalid_params() {
    let env = two_servers();
    let mut serve = env.serve();
    serve.initialize();
    let answer = serve.call_tool(1, "nope__echo", json!({}));
    assert_eq!(answer["error"]["code"], -32602);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nope__echo")
    );
}

// ----- the codec's error answers (FAULTS rows 1-10) -------------------------------

#[test]
fn fault_01_a_message_split_into_single_bytes_is_reassembled() {
    let env = two_servers();
    let mut serve = env.serve();
    serve.initialize();
    let line = br#"{"jsonrpc":"2.0","id":5,"method":"ping"}
"#;
    for b in line {
        serve.send_raw(&[*b]);
    }
    assert_eq!(serve.answer_to(&json!(5))["result"], json!({}));
}

#[test]
fn fault_01_an_upstream_answer_written_a_byte_at_a_time_arrives_whole_after_its_noise() {
    // Also rows 3, 4, 5 and 28 from the upstream side: an overlong line, invalid UTF-8,
    // truncated JSON and an answer to an id never issued are all dropped.
    let env = two_servers();
    let mut serve = env.ready_serve();
    let answer = serve.call_tool(2, "a__noisy", json!({}));
    assert_eq!(text_of(&answer), "after the noise");
    assert!(
        serve.recv_line_within(Duration::from_millis(300)).is_none(),
        "nothing else may reach the client"
    );
    let (_, _) = serve.close();
    let log = env.log();
    assert!(log.contains("non-JSON-RPC line"), "{log}");
    assert!(log.contains("overlong line"), "{log}");
    assert!(log.contains("never issued"), "{log}");
}

#[test]
fn fault_02_a_thousand_messages_in_one_write_are_all_answered_in_order() {
    let env = Env::new();
    let mut serve = env.serve();
    serve.initialize();
    let mut burst = String::new();
    for i in 0..1000 {
        burst.push_str(&format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"ping\"}}\n"
        ));
    }
    serve.send_raw(burst.as_bytes());
    for i in 0..1000 {
        let msg = serve.recv();
        assert_eq!(msg["id"], json!(i));
    }
}

#[test]
fn fault_03_an_overlong_line_is_refused_and_the_next_line_works() {
    let env = Env::new();
    let mut serve = env.serve();
    serve.initialize();
    let mut big = vec![b' '; 9 * 1024 * 1024];
    big.push(b'\n');
    serve.send_raw(&big);
    let refused = serve.recv();
    assert_eq!(refused["error"]["code"], -32600);
    assert_eq!(refused["id"], Value::Null);
    assert_eq!(
        serve.request(json!(1), "ping", json!({}))["result"],
        json!({})
    );
}

#[test]
fn fault_04_05_invalid_utf8_truncated_and_trailing_garbage_are_parse_errors() {
    let env = Env::new();
    let mut serve = env.serve();
    serve.initialize();
    let bad: [&[u8]; 4] = [
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}\n",
        b"{\"jsonrpc\":\"2.0\",\"id\":1\n",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} garbage\n",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n",
    ];
    for line in bad {
        serve.send_raw(line);
        let answer = serve.recv();
        assert_eq!(
            answer["error"]["code"],
            -32700,
            "{}",
            String::from_utf8_lossy(line)
        );
        assert_eq!(answer["id"], Value::Null);
    }
    assert_eq!(
        serve.request(json!(9), "ping", json!({}))["result"],
        json!({})
    );
}

#[test]
fn fault_06_json_that_is_not_json_rpc_is_an_invalid_request() {
    let env = Env::new();
    let mut serve = env.serve();
    serve.initialize();
    let cases = [
        r#"{"id":1,"method":"ping"}"#,
        r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":42}"#,
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
    ];
    for case in cases {
        serve.send_raw(format!("{case}\n").as_bytes());
        let answer = serve.recv();
        assert_eq!(answer["error"]["code"], -32600, "{case} -> {answer}");
        assert!(answer.is_object(), "{case}: one error, not an array");
    }
}

#[test]
fn fault_06_a_batch_under_2025_03_26_is_split_and_answered_as_an_array() {
    let env = two_servers();
    let mut serve = env.serve();
    let init = serve.request(json!(0), "initialize", json!({"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}));
    assert_eq!(init["result"]["protocolVersion"], "2025-03-26");
    serve.send(&json!([{"jsonrpc": "2.0", "method": "notifications/initialized"}]));
    serve.send_raw(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a__echo","arguments":{"message":"in a batch"}}},{"jsonrpc":"2.0","id":3},{"jsonrpc":"2.0","method":"notifications/nothing"}]
"#);
    let answer = serve.recv();
    let items = answer
        .as_array()
        .unwrap_or_else(|| panic!("expected an array: {answer}"));
    assert_eq!(items.len(), 3, "{answer}");
    let by_id = |id: i64| {
        items
            .iter()
            .find(|m| m["id"] == json!(id))
            .unwrap_or_else(|| panic!("no {id} in {answer}"))
    };
    assert_eq!(by_id(1)["result"], json!({}));
    assert_eq!(by_id(2)["result"]["content"][0]["text"], "in a batch");
    assert_eq!(by_id(3)["error"]["code"], -32600);
}

#[test]
fn fault_07_duplicate_keys_are_refused_and_never_forwarded() {
    let env = two_servers();
    let mut serve = env.ready_serve();
    serve.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"a__echo\",\"name\":\"a__crash\",\"arguments\":{}}}\n");
    let answer = serve.recv();
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    serve.send_raw(
        b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\",\"method\":\"tools/list\"}\n",
    );
    assert_eq!(serve.recv()["error"]["code"], -32600);
    // a__crash was never called: the server is still there.
    assert_eq!(
        text_of(&serve.call_tool(4, "a__echo", json!({"message": "alive"}))),
        "alive"
    );
}

#[test]
fn fault_08_absurd_nesting_is_a_parse_error() {
    let env = Env::new();
    let mut serve = env.serve();
    serve.initialize();
    let deep = format!("{}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    serve.send_raw(deep.as_bytes());
    assert_eq!(serve.recv()["error"]["code"], -32700);
    assert_eq!(
        serve.request(json!(1), "ping", json!({}))["result"],
        json!({})
    );
}

#[test]
fn fault_09_oversized_ids_are_refused() {
    let env = Env::new();
    let mut serve = env.serve();
    serve.initialize();
    let id = "x".repeat(10_000);
    serve.send(&json!({"jsonrpc": "2.0", "id": id, "method": "ping"}));
    let answer = serve.recv();
    assert_eq!(answer["error"]["code"], -32600);
    assert_eq!(answer["id"], Value::Null);
}

#[test]
fn fault_10_crlf_bom_and_blank_lines_are_tolerated_and_output_is_plain() {
    let env = Env::new();
    let mut serve = env.serve();
    serve.send_raw(b"\xEF\xBB\xBF{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\n\r\n\n");
    let line = serve.recv_line();
    assert_eq!(line, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n");
}

// ----- children ------------------------------------------------------------------

#[test]
fn a_child_gets_only_the_base_environment_env_and_passthrough() {
    let env = Env::new();
    env.user_config(&format!(
        "{}env = {{ EXTRA = \"set\" }}\nenv_passthrough = [\"PASSED\", \"NOT_SET_ANYWHERE\"]\n",
        test_server_table("a", &[])
    ));
    let mut serve = support::Serve::spawn({
        let mut cmd = env.command(&["serve"]);
        cmd.env("PASSED", "yes")
            .env("SECRET_TOKEN", "must-not-leak");
        cmd
    });
    serve.initialize();
    serve.tool_names(1);
    let answer = serve.call_tool(2, "a__env", json!({}));
    let child_env: serde_json::Map<String, Value> =
        serde_json::from_str(&text_of(&answer)).unwrap();
    let mut keys: Vec<&str> = child_env.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let allowed = [
        "EXTRA",
        "HOME",
        "LANG",
        "PASSED",
        "PATH",
        "PYTHONSAFEPATH",
        "TERM",
        "TMPDIR",
    ];
    assert!(
        keys.iter().all(|k| allowed.contains(k)),
        "unexpected variables: {keys:?}"
    );
    assert_eq!(child_env["EXTRA"], "set");
    assert_eq!(child_env["PASSED"], "yes");
    let home = child_env["HOME"].as_str().unwrap();
    // As root the server runs as a uid of its own, whose HOME must lie where that uid
    // can reach it (README "Sandbox").
    let private_base = if nix::unistd::geteuid().is_root() {
        "/tmp/mcp-warden-sandbox/a.".to_owned()
    } else {
        support::path_str(&env.warden_home)
    };
    assert!(
        home.starts_with(&private_base),
        "private HOME expected, got {home}"
    );
    assert_ne!(child_env["TMPDIR"], child_env["HOME"]);
}

#[test]
fn upstream_stderr_goes_to_the_log_with_the_servers_name_never_to_stdout() {
    let env = two_servers();
    let mut serve = env.ready_serve();
    let answer = serve.call_tool(2, "b__stderr", json!({"lines": 3}));
    assert_eq!(text_of(&answer), "written");
    assert!(serve.recv_line_within(Duration::from_millis(200)).is_none());
    serve.close();
    let log = env.log();
    let line = log
        .lines()
        .find(|l| l.contains("stderr line 2 from the test server"))
        .unwrap_or_else(|| panic!("not logged:\n{log}"));
    assert!(line.contains("server=b"), "{line}");
}

/// Every process of this test's servers (launchers, namespace inits, servers and their
/// descendants): they all carry the test's directory in their private HOME.
fn server_processes(env: &Env, serve: &support::Serve) -> Vec<u32> {
    let mut found = support::processes_with_env(&support::path_str(env.dir.path()));
    found.retain(|p| *p != serve.pid());
    found
}

/// Whether the test server's `setsid -f sleep 300` grandchild is running (it may take
/// a moment to exec after `setsid -f` returns).
fn sleeper_runs(env: &Env, serve: &support::Serve) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        let found = server_processes(env, serve).iter().any(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"sleep\x00300"))
        });
        if found {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Those of `pids` still alive after `wait` (or as soon as none is).
fn still_alive_after(mut pids: Vec<u32>, wait: Duration) -> Vec<u32> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        pids.retain(|p| is_alive(*p));
        if pids.is_empty() || std::time::Instant::now() > deadline {
            return pids;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn all_gone_within(env: &Env, wait: Duration) -> Vec<u32> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let mut left = support::processes_with_env(&support::path_str(env.dir.path()));
        left.retain(|p| is_alive(*p));
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_child_is_stopped_when_the_client_leaves() {
    let env = two_servers();
    let serve = env.ready_serve();
    let running = server_processes(&env, &serve);
    assert!(running.len() >= 2, "{running:?}");
    let (status, _) = serve.close();
    assert!(status.success(), "{status}");
    let left = all_gone_within(&env, Duration::from_secs(1));
    assert!(left.is_empty(), "processes survived the client: {left:?}");
}

#[test]
fn fault_19_a_grandchild_in_a_new_session_does_not_survive_shutdown() {
    let env = two_servers();
    let mut serve = env.ready_serve();
    let answer = serve.call_tool(2, "a__grandchild", json!({}));
    assert!(text_of(&answer).starts_with("started"), "{answer}");
    assert!(sleeper_runs(&env, &serve), "the grandchild is not running");
    // Seen now: once their supervisor is gone, survivors would no longer be found
    // by their ancestry.
    let seen = server_processes(&env, &serve);
    let (status, _) = serve.close();
    assert!(status.success());
    let left = all_gone_within(&env, Duration::from_secs(2));
    assert!(left.is_empty(), "a descendant survived: {left:?}");
    let alive = still_alive_after(seen, Duration::from_secs(2));
    assert!(alive.is_empty(), "a descendant survived: {alive:?}");
}

#[test]
fn fault_20_every_server_dies_with_a_sigkilled_mcp_warden() {
    let env = two_servers();
    let mut serve = env.ready_serve();
    assert!(text_of(&serve.call_tool(2, "a__grandchild", json!({}))).starts_with("started"));
    assert!(sleeper_runs(&env, &serve), "the grandchild is not running");
    // Seen now: once their supervisor is gone, survivors would no longer be found
    // by their ancestry.
    let seen = server_processes(&env, &serve);
    let warden = nix::unistd::Pid::from_raw(i32::try_from(serve.pid()).unwrap());
    nix::sys::signal::kill(warden, nix::sys::signal::Signal::SIGKILL).unwrap();
    let left = all_gone_within(&env, Duration::from_secs(1));
    assert!(
        left.is_empty(),
        "processes survived mcp-warden's SIGKILL by a second: {left:?}"
    );
    let alive = still_alive_after(seen, Duration::from_secs(1));
    assert!(
        alive.is_empty(),
        "processes survived mcp-warden's SIGKILL by a second: {alive:?}"
    );
}

#[test]
fn a_server_that_cannot_start_is_named_and_the_others_serve() {
    let env = Env::new();
    env.user_config(&format!(
        "{}\n[servers.broken]\ncommand = {}\n",
        test_server_table("a", &[]),
        q("/nonexistent/server")
    ));
    let mut serve = env.serve();
    serve.initialize();
    let names = serve.tool_names(1);
    assert!(names.contains(&"a__echo".to_owned()), "{names:?}");
    assert!(
        serve
            .stderr()
            .contains("server `broken`: cannot start `/nonexistent/server`"),
        "{}",
        serve.stderr()
    );
    let said: Vec<String> = serve.seen.iter().map(ToString::to_string).collect();
    assert!(
        said.iter()
            .any(|m| m.contains("notifications/message") && m.contains("broken")),
        "{said:?}"
    );
}

#[test]
fn a_crash_mid_call_fails_that_call_with_unavailable_naming_the_server() {
    let env = two_servers();
    let mut serve = env.ready_serve();
    let answer = serve.call_tool(2, "a__crash", json!({}));
    assert_eq!(answer["error"]["code"], -32004, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("`a`"),
        "{answer}"
    );
    assert_eq!(
        text_of(&serve.call_tool(3, "b__echo", json!({"message": "b is fine"}))),
        "b is fine"
    );
}

#[test]
fn tool_names_clients_reject_are_mapped_and_still_callable() {
    let env = Env::new();
    env.user_config(&test_server_table(
        "odd",
        &["--tool", "read file/v2.beta", "--tool", &"long".repeat(20)],
    ));
    let mut serve = env.serve();
    serve.initialize();
    let names = serve.tool_names(1);
    let valid = |n: &str| {
        n.len() <= 64
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    assert!(names.iter().all(|n| valid(n)), "{names:?}");
    let mapped = names
        .iter()
        .find(|n| n.starts_with("odd__read_file_v2_beta_"))
        .unwrap_or_else(|| panic!("{names:?}"));
    // The test server answers an extra tool with its own (upstream) name.
    assert_eq!(
        text_of(&serve.call_tool(2, mapped, json!({}))),
        "read file/v2.beta"
    );
}

#[test]
fn colliding_exposed_names_are_an_error_naming_both_servers() {
    let env = Env::new();
    env.user_config(&format!(
        "{}namespace = \"\"\n\n{}namespace = \"\"\n",
        test_server_table("left", &[]),
        test_server_table("right", &["--tool", "only_right"])
    ));
    let mut serve = env.serve();
    serve.initialize();
    let names = serve.tool_names(1);
    assert!(
        !names.contains(&"echo".to_owned()),
        "a colliding name must not be served: {names:?}"
    );
    assert!(names.contains(&"only_right".to_owned()), "{names:?}");
    let said: Vec<String> = serve.seen.iter().map(ToString::to_string).collect();
    let said = said.join("\n");
    assert!(
        said.contains("`left`") && said.contains("`right`"),
        "client not told about the collision: {said}"
    );
}

#[test]
fn sigterm_stops_every_child_before_mcp_warden_exits() {
    let env = two_servers();
    let serve = env.ready_serve();
    assert!(!server_processes(&env, &serve).is_empty());
    let warden = i32::try_from(serve.pid()).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(warden),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(
        wait_gone(serve.pid(), Duration::from_secs(10)),
        "mcp-warden did not exit on SIGTERM"
    );
    let left = all_gone_within(&env, Duration::from_secs(1));
    assert!(
        left.is_empty(),
        "processes survived SIGTERM of mcp-warden: {left:?}"
    );
}

// ----- server-to-client requests ----------------------------------------------------

#[test]
fn elicitation_reaches_the_client_with_ids_remapped_both_ways() {
    let env = two_servers();
    let mut serve = env.serve();
    serve.initialize_with(json!({"elicitation": {}}));
    serve.tool_names(1);
    serve.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "a__elicit", "arguments": {}}}));
    let ask = serve.recv();
    assert_eq!(ask["method"], "elicitation/create", "{ask}");
    assert_ne!(
        ask["id"],
        json!("srv-1"),
        "the server's own id must not reach the client"
    );
    assert_eq!(ask["params"]["message"], "Your name?");
    serve.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept", "content": {"name": "Ada"}}}));
    let answer = serve.answer_to(&json!(2));
    assert!(text_of(&answer).contains("Ada"), "{answer}");
}

#[test]
fn elicitation_is_refused_when_the_server_table_denies_it() {
    let env = Env::new();
    env.user_config(&format!(
        "{}elicitation = \"deny\"\n",
        test_server_table("a", &[])
    ));
    let mut serve = env.serve();
    serve.initialize_with(json!({"elicitation": {}}));
    serve.tool_names(1);
    let answer = serve.call_tool(2, "a__elicit", json!({}));
    let text = text_of(&answer);
    assert!(
        text.contains("-32003") && text.contains("elicitation"),
        "{text}"
    );
    assert!(
        serve
            .seen
            .iter()
            .all(|m| m["method"] != "elicitation/create"),
        "{:?}",
        serve.seen
    );
}

#[test]
fn sampling_is_denied_by_default() {
    let env = two_servers();
    let mut serve = env.serve();
    serve.initialize_with(json!({"sampling": {}}));
    serve.tool_names(1);
    let answer = serve.call_tool(2, "a__sample", json!({}));
    let text = text_of(&answer);
    assert!(
        text.contains("-32003") && text.contains("mcp-warden/decision"),
        "{text}"
    );
    assert!(
        serve
            .seen
            .iter()
            .all(|m| m["method"] != "sampling/createMessage")
    );
}

#[test]
fn roots_list_from_a_server_is_answered_with_the_workspace_root_only() {
    let env = Env::new();
    env.user_config(&test_server_table("a", &[]));
    env.workspace_config("");
    let mut serve = env.serve();
    serve.initialize_with(json!({"roots": {}}));
    serve.tool_names(1);
    let answer = serve.call_tool(2, "a__roots", json!({}));
    let roots: Value = serde_json::from_str(&text_of(&answer)).unwrap();
    let expected = format!("file://{}", support::path_str(&env.workspace));
    assert_eq!(roots["roots"].as_array().map(Vec::len), Some(1), "{roots}");
    assert_eq!(roots["roots"][0]["uri"], expected);
}

#[test]
fn a_cancelled_call_reaches_its_server_with_the_servers_id_and_its_late_answer_is_dropped() {
    let env = two_servers();
    let mut serve = env.ready_serve();
    // Both servers see their own id 1 for the first call each; cancel the one to `b`.
    serve.send(&json!({"jsonrpc":"2.0","id":"slow-a","method":"tools/call","params":{"name":"a__sleep","arguments":{"ms":300}}}));
    serve.send(&json!({"jsonrpc":"2.0","id":"slow-b","method":"tools/call","params":{"name":"b__sleep","arguments":{"ms":300}}}));
    serve.send(&json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"slow-b","reason":"changed my mind"}}));
    assert_eq!(text_of(&serve.answer_to(&json!("slow-a"))), "slept");
    assert!(
        serve.recv_line_within(Duration::from_millis(600)).is_none(),
        "the cancelled call must not be answered"
    );
    assert_eq!(
        text_of(&serve.call_tool(3, "b__echo", json!({"message": "still here"}))),
        "still here"
    );
    serve.close();
    let log = env.log();
    let line = log
        .lines()
        .find(|l| l.contains("server=b") && l.contains("notifications/cancelled"))
        .unwrap_or_else(|| panic!("b never saw the cancellation:\n{log}"));
    // b got its own id for the call (an integer), never the client's string.
    assert!(
        line.contains("\"requestId\":") && !line.contains("slow-b"),
        "{line}"
    );
    assert!(line.contains("changed my mind"), "{line}");
}

#[test]
fn sampling_reaches_the_client_when_the_server_table_allows_it() {
    let env = Env::new();
    env.user_config(&format!(
        "{}sampling = \"allow\"\n",
        test_server_table("a", &[])
    ));
    let mut serve = env.serve();
    serve.initialize_with(json!({"sampling": {}}));
    serve.tool_names(1);
    serve.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "a__sample", "arguments": {}}}));
    let ask = serve.recv();
    assert_eq!(ask["method"], "sampling/createMessage", "{ask}");
    serve.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"role": "assistant", "content": {"type": "text", "text": "sampled!"}, "model": "m"}}));
    assert!(text_of(&serve.answer_to(&json!(2))).contains("sampled!"));
}
