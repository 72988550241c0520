//! Both edges of the era adapter (issue 15) through the real binary, with raw JSON
//! lines: a client of either era in front of `examples/era_server.rs` playing each
//! kind of upstream. The server checks what it gets the way the SDKs do (a legacy
//! connection refuses a modern envelope, a modern one requires it), so a call that
//! works proves the translation.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Env, Serve, example_table};

const MODERN: &str = "2026-07-28";

fn envelope() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "modern-client", "version": "1"},
    })
}

/// A modern request: `params` with the envelope in `_meta`.
fn modern(serve: &mut Serve, id: i64, method: &str, mut params: Value) -> Value {
    params["_meta"] = envelope();
    serve.request(json!(id), method, params)
}

fn serve_with(servers: &[(&str, &str)]) -> (Env, Serve) {
    let env = Env::new();
    let tables: String = servers
        .iter()
        .map(|(name, mode)| example_table(name, "era_server", &[mode]))
        .collect::<Vec<_>>()
        .join("\n");
    env.user_config(&tables);
    let serve = env.serve();
    (env, serve)
}

fn names(listing: &Value) -> Vec<String> {
    listing["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {listing}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn text(answer: &Value) -> String {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {answer}"))
        .to_owned()
}

/// Every version mcp-warden speaks, newest first.
fn every_version() -> Value {
    json!([
        "2026-07-28",
        "2025-11-25",
        "2025-06-18",
        "2025-03-26",
        "2024-11-05"
    ])
}

fn assert_discover_result(answer: &Value) {
    let result = &answer["result"];
    assert_eq!(result["supportedVersions"], every_version(), "{answer}");
    assert_eq!(result["resultType"], "complete", "{answer}");
    assert_eq!(result["cacheScope"], "private", "{answer}");
    assert!(result["ttlMs"].is_u64(), "{answer}");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "mcp-warden",
        "{answer}"
    );
    assert!(result["capabilities"]["tools"].is_object(), "{answer}");
    assert!(result["capabilities"].get("ping").is_none(), "{answer}");
}

#[test]
fn server_discover_is_answered_before_and_after_initialize() {
    let (_env, mut serve) = serve_with(&[("old", "--legacy"), ("new", "--dual")]);
    let before = serve.request(json!(1), "server/discover", json!({}));
    assert_discover_result(&before);
    serve.initialize();
    let after = serve.request(json!(2), "server/discover", json!({}));
    assert_discover_result(&after);
    // The dual server's discover `ttlMs` (60 s) is the smallest modern one.
    assert_eq!(after["result"]["ttlMs"], 60000, "{after}");
    assert!(after["result"]["capabilities"]["resources"].is_object());
    let enveloped = modern(&mut serve, 3, "server/discover", json!({}));
    assert_discover_result(&enveloped);
}

#[test]
fn a_modern_client_calls_a_legacy_server_without_initialize() {
    let (_env, mut serve) = serve_with(&[("old", "--legacy")]);
    let listing = modern(&mut serve, 1, "tools/list", json!({}));
    assert_eq!(
        names(&listing),
        [
            "old__alpha",
            "old__echo",
            "old__log",
            "old__raw",
            "old__zeta"
        ],
        "tools sorted by exposed name: {listing}"
    );
    assert_eq!(listing["result"]["resultType"], "complete");
    assert_eq!(listing["result"]["cacheScope"], "private");
    // A legacy server that announces changes: the cap.
    assert_eq!(listing["result"]["ttlMs"], 300_000);

    let mut params = json!({"name": "old__raw", "arguments": {}});
    params["_meta"] = envelope();
    params["_meta"]["traceparent"] =
        json!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    let answer = serve.request(json!(2), "tools/call", params);
    let line = text(&answer);
    assert!(
        !line.contains("io.modelcontextprotocol/"),
        "envelope stripped: {line}"
    );
    assert!(
        line.contains("\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c"),
        "{line}"
    );
    assert_eq!(answer["result"]["resultType"], "complete", "{answer}");
    // Every result to a modern client names mcp-warden, built by us or forwarded.
    for result in [&listing["result"], &answer["result"]] {
        assert_eq!(
            result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "mcp-warden",
            "{result}"
        );
    }
    // A read is cacheable in the modern era: the legacy server gave no `ttlMs`, so 0,
    // and never shared between users (it passed this workspace's filters).
    let read = modern(
        &mut serve,
        6,
        "resources/read",
        json!({"uri": "era://known"}),
    );
    assert_eq!(read["result"]["contents"][0]["text"], "known", "{read}");
    assert_eq!(read["result"]["ttlMs"], 0, "{read}");
    assert_eq!(read["result"]["cacheScope"], "private", "{read}");

    // The legacy server's -32002 is -32602 for a modern client.
    let missing = modern(
        &mut serve,
        3,
        "resources/read",
        json!({"uri": "era://missing"}),
    );
    assert_eq!(missing["error"]["code"], -32602, "{missing}");
    // A legacy client of the same server still gets -32002.
    serve.initialize();
    let legacy = serve.request(json!(4), "resources/read", json!({"uri": "era://missing"}));
    assert_eq!(legacy["error"]["code"], -32002, "{legacy}");
    let ok = serve.request(
        json!(5),
        "tools/call",
        json!({"name": "old__echo", "arguments": {"message": "hi"}}),
    );
    assert_eq!(text(&ok), "hi");
    assert!(
        ok["result"].get("resultType").is_none(),
        "legacy answers unchanged: {ok}"
    );
}

#[test]
fn a_legacy_client_calls_a_modern_only_server() {
    let (_env, mut serve) = serve_with(&[("new", "--modern-only")]);
    serve.initialize();
    let listing = serve.request(json!(1), "tools/list", json!({}));
    assert_eq!(
        names(&listing),
        [
            "new__alpha",
            "new__echo",
            "new__listed_1",
            "new__log",
            "new__raw",
            "new__zeta"
        ],
        "{listing}"
    );
    // The modern server's own `ttlMs` for its list.
    assert_eq!(listing["result"]["ttlMs"], 45000, "{listing}");
    let answer = serve.call_tool(2, "new__raw", json!({}));
    let sent: Value = serde_json::from_str(&text(&answer)).expect("the raw request");
    let meta = &sent["params"]["_meta"];
    assert_eq!(
        meta["io.modelcontextprotocol/protocolVersion"], MODERN,
        "{sent}"
    );
    assert_eq!(
        meta["io.modelcontextprotocol/clientInfo"]["name"], "mcp-warden",
        "{sent}"
    );
    assert_eq!(
        meta["io.modelcontextprotocol/clientCapabilities"],
        json!({"roots": {}}),
        "{sent}"
    );
    let echo = serve.call_tool(3, "new__echo", json!({"message": "across eras"}));
    assert_eq!(text(&echo), "across eras");
    // The modern era has no `logging/setLevel`: the legacy client's level goes per
    // request.
    let level_set = serve.request(json!(4), "logging/setLevel", json!({"level": "warning"}));
    assert!(level_set.get("result").is_some(), "{level_set}");
    let answer = serve.call_tool(5, "new__raw", json!({}));
    let sent: Value = serde_json::from_str(&text(&answer)).expect("the raw request");
    assert_eq!(
        sent["params"]["_meta"]["io.modelcontextprotocol/logLevel"], "warning",
        "{sent}"
    );
}

/// The id member of a request line, cut out (the upstream gets an id of ours).
fn without_id(line: &str) -> String {
    let start = line.find("\"id\":").expect("an id");
    let end = start + line[start..].find(',').expect("a comma after the id");
    format!("{}{}", &line[..start], &line[end..])
}

#[test]
fn modern_to_modern_passes_byte_for_byte_but_the_owned_fields() {
    let (_env, mut serve) = serve_with(&[("dual", "--dual")]);
    let sent = concat!(
        r#"{"jsonrpc":"2.0","id":"x-1","method":"tools/call","params":{"name":"dual__raw","#,
        r#""arguments":{"n":1.50e0,"s":"caf\u00e9 \"q\""},"future":{"a":[]},"#,
        r#""_meta":{"traceparent":"00-ab-cd-01","io.modelcontextprotocol/protocolVersion":"2026-07-28","#,
        r#""io.modelcontextprotocol/clientCapabilities":{"experimental":{}},"#,
        r#""io.modelcontextprotocol/clientInfo":{"name":"modern-client"},"x-vendor":true}}}"#
    );
    serve.send_raw(format!("{sent}\n").as_bytes());
    let answer = serve.answer_to(&json!("x-1"));
    let got = text(&answer);
    let info = json!({"name": "mcp-warden", "version": env!("CARGO_PKG_VERSION")}).to_string();
    let want = sent
        .replace("dual__raw", "raw")
        .replace(r#"{"experimental":{}}"#, r#"{"roots":{}}"#)
        .replace(r#"{"name":"modern-client"}"#, &info);
    assert_eq!(without_id(&got), without_id(&want));
    assert_eq!(answer["result"]["resultType"], "complete");
}

#[test]
fn an_unknown_modern_version_is_minus_32022_listing_every_version() {
    let (_env, mut serve) = serve_with(&[("old", "--legacy")]);
    let mut meta = envelope();
    meta["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let answer = serve.request(json!(1), "tools/list", json!({"_meta": meta}));
    assert_eq!(answer["error"]["code"], -32022, "{answer}");
    assert_eq!(
        answer["error"]["data"]["supported"],
        every_version(),
        "{answer}"
    );
    let mut meta = envelope();
    meta.as_object_mut()
        .expect("object")
        .remove("io.modelcontextprotocol/clientCapabilities");
    let answer = serve.request(json!(2), "tools/list", json!({"_meta": meta}));
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    let answer = modern(&mut serve, 3, "logging/setLevel", json!({"level": "debug"}));
    assert_eq!(answer["error"]["code"], -32601, "{answer}");
    let answer = modern(&mut serve, 4, "ping", json!({}));
    assert_eq!(answer["result"]["resultType"], "complete", "{answer}");
}

#[test]
fn a_duplicate_key_error_carries_the_id_when_it_is_unambiguous() {
    let (_env, mut serve) = serve_with(&[("old", "--legacy")]);
    serve.send_raw(
        b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\",\"method\":\"tools/list\"}\n",
    );
    let answer = serve.recv();
    assert_eq!(answer["id"], 7, "{answer}");
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    serve.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":7,\"\\u0069d\":8,\"method\":\"ping\"}\n");
    let answer = serve.recv();
    assert_eq!(answer["id"], Value::Null, "{answer}");
}

#[test]
fn the_probe_falls_back_to_legacy_on_garbage_silence_and_exit() {
    let env = Env::new();
    let starts = env.dir.path().join("starts");
    let starts_arg = support::path_str(&starts);
    let tables = [
        example_table("garbage", "era_server", &["--garbage-probe"]),
        example_table("silent", "era_server", &["--silent-probe"]),
        example_table(
            "exits",
            "era_server",
            &["--exit-on-probe", "--starts", &starts_arg],
        ),
        support::sandbox_writes("exits", env.dir.path()),
    ];
    env.user_config(&tables.join("\n"));
    let mut serve = env.serve();
    serve.initialize();
    let tools = serve.tool_names(1);
    for server in ["garbage", "silent", "exits"] {
        assert!(
            tools.contains(&format!("{server}__echo")),
            "{server} missing: {tools:?}"
        );
    }
    let echo = serve.call_tool(2, "silent__echo", json!({"message": "late"}));
    assert_eq!(text(&echo), "late");
    let echo = serve.call_tool(3, "exits__echo", json!({"message": "again"}));
    assert_eq!(text(&echo), "again");
    // Started twice: the probe, then once more without it (no restart loop).
    std::thread::sleep(Duration::from_millis(300));
    let count = std::fs::read_to_string(&starts)
        .unwrap_or_default()
        .lines()
        .count();
    assert_eq!(count, 2, "starts");
}

/// Regression: a discover result over the line limit used to leave the slot probing
/// for good (the overlong line dropped its id, so the probe's wait found nothing):
/// the client's `initialize` waited the whole start-up wait and the server was never
/// initialized. It is legacy after the probe's wait, as a silent one is.
#[test]
fn an_overlong_answer_to_the_probe_is_taken_for_a_legacy_server() {
    let (_env, mut serve) = serve_with(&[("big", "--overlong-probe")]);
    let started = std::time::Instant::now();
    serve.initialize();
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(8),
        "initialize held {waited:?}"
    );
    let tools = serve.tool_names(1);
    assert!(tools.contains(&"big__echo".to_owned()), "{tools:?}");
    let echo = serve.call_tool(2, "big__echo", json!({"message": "legacy"}));
    assert_eq!(text(&echo), "legacy");
}

#[test]
fn a_server_that_refuses_us_is_told_to_the_client() {
    let (_env, mut serve) = serve_with(&[("future", "--refuse"), ("old", "--legacy")]);
    serve.initialize();
    let tools = serve.tool_names(1);
    assert!(tools.contains(&"old__echo".to_owned()), "{tools:?}");
    assert!(
        !tools.iter().any(|t| t.starts_with("future__")),
        "{tools:?}"
    );
    let _ = serve.request(json!(2), "ping", json!({}));
    let told = serve
        .seen
        .iter()
        .find(|m| {
            m["method"] == "notifications/message"
                && m["params"]["data"]
                    .as_str()
                    .is_some_and(|d| d.contains("refuses mcp-warden"))
        })
        .unwrap_or_else(|| panic!("no warning in {:?}", serve.seen))
        .clone();
    assert_eq!(told["params"]["level"], "warning", "{told}");
    let data = told["params"]["data"].as_str().unwrap_or_default();
    assert!(
        data.contains("2099-01-01") && data.contains("2026-07-28"),
        "{data}"
    );
    let call = serve.call_tool(3, "future__echo", json!({}));
    assert!(call.get("error").is_some(), "{call}");
}

#[test]
fn pin_and_scan_probe_too_and_list_a_modern_only_server() {
    let env = Env::new();
    let tables = [
        example_table("new", "era_server", &["--modern-only"]),
        example_table("exits", "era_server", &["--exit-on-probe"]),
    ];
    env.user_config(&tables.join("\n"));
    let out = env.run(&["pins", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for tool in ["alpha", "zeta"] {
        assert!(
            text.contains(tool),
            "the modern-only server's `{tool}` is listed: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        text.matches("\"alpha\"").count() >= 2,
        "both servers listed: {text}"
    );
}

/// A dual server `slow` that answers the probe after its wait, locked into the modern
/// era by then (as the Python SDK's runner is by its first request).
fn slow_dual_server() -> String {
    example_table("slow", "era_server", &["--dual", "--probe-delay", "2500"])
}

#[test]
fn pin_lists_a_dual_server_too_slow_for_the_probe_as_modern() {
    // As `serve` does (a_dual_server_too_slow_for_the_probe_ends_modern_after_refusing_
    // initialize): the late probe locked it modern, `initialize` is refused -32022
    // naming 2026-07-28, and it is probed again. (A Python `mcp` 2.x server on a busy
    // machine takes longer than the probe's wait just to import its SDK.)
    let env = Env::new();
    env.user_config(&slow_dual_server());
    let out = env.run(&["pins", "--json"]);
    let (text, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // `listed_1`: a tool only the server's modern `tools/list` has.
    assert!(
        text.contains("\"raw\"") && text.contains("\"listed_1\"") && !err.contains("refuses"),
        "the slow server is listed, as modern: {text}\n{err}"
    );
}

#[test]
fn a_modern_requests_log_level_reaches_a_legacy_server_and_its_messages_come_back() {
    let (_env, mut serve) = serve_with(&[("old", "--legacy")]);
    // No level asked: the server's message is not the client's.
    let quiet = modern(
        &mut serve,
        1,
        "tools/call",
        json!({"name": "old__log", "arguments": {}}),
    );
    assert_eq!(text(&quiet), "log called");
    assert!(
        !serve
            .seen
            .iter()
            .any(|m| m["method"] == "notifications/message"),
        "{:?}",
        serve.seen
    );
    let mut params = json!({"name": "old__log", "arguments": {}});
    params["_meta"] = envelope();
    params["_meta"]["io.modelcontextprotocol/logLevel"] = json!("debug");
    let loud = serve.request(json!(2), "tools/call", params);
    assert_eq!(text(&loud), "log called");
    let message = serve
        .seen
        .iter()
        .find(|m| m["method"] == "notifications/message")
        .unwrap_or_else(|| panic!("no message in {:?}", serve.seen));
    // mcp-warden set the legacy server's level first.
    assert_eq!(message["params"]["data"], "level=debug", "{message}");
}

#[test]
fn doctor_shows_each_servers_era_and_why_one_refuses_us() {
    let env = Env::new();
    let tables = [
        example_table("new", "era_server", &["--modern-only"]),
        example_table("old", "era_server", &["--legacy"]),
        example_table("future", "era_server", &["--refuse"]),
    ];
    env.user_config(&tables.join("\n"));
    let out = env.run(&["doctor", "--json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    });
    let protocol = |name: &str| {
        doc["servers"]
            .as_array()
            .expect("servers")
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["protocol"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(protocol("new"), "modern 2026-07-28 (era-server 1)", "{doc}");
    assert_eq!(protocol("old"), "legacy 2025-11-25 (era-server 1)", "{doc}");
    assert!(
        protocol("future").contains("speaks only 2099-01-01"),
        "{doc}"
    );
    let wrong = doc["wrong"].to_string();
    assert!(
        wrong.contains("server `future`: refuses mcp-warden"),
        "{wrong}"
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&env.run(&["doctor"]).stdout).into_owned();
    assert!(
        text.contains("protocol        modern 2026-07-28 (era-server 1)"),
        "{text}"
    );
}

#[test]
fn a_modern_client_hears_of_a_refusing_server_on_a_request_that_asks_for_warnings() {
    let (_env, mut serve) = serve_with(&[("future", "--refuse"), ("old", "--legacy")]);
    let listing = modern(&mut serve, 1, "tools/list", json!({}));
    assert!(
        names(&listing).contains(&"old__echo".to_owned()),
        "{listing}"
    );
    assert!(
        !serve
            .seen
            .iter()
            .any(|m| m["method"] == "notifications/message"),
        "not asked for: {:?}",
        serve.seen
    );
    let mut params = json!({});
    params["_meta"] = envelope();
    params["_meta"]["io.modelcontextprotocol/logLevel"] = json!("info");
    let _ = serve.request(json!(2), "tools/list", params);
    assert!(
        serve
            .seen
            .iter()
            .any(|m| m["method"] == "notifications/message"
                && m["params"]["data"]
                    .as_str()
                    .is_some_and(|d| d.contains("refuses mcp-warden"))),
        "{:?}",
        serve.seen
    );
}

#[test]
fn a_dual_server_too_slow_for_the_probe_ends_modern_after_refusing_initialize() {
    // It answers the probe after the wait: by then it is locked into the modern era
    // (as the Python SDK's runner is by its first request), refuses `initialize` with
    // -32022 naming 2026-07-28, and is probed again.
    let env = Env::new();
    env.user_config(&slow_dual_server());
    let mut serve = env.serve();
    serve.initialize();
    let tools = serve.tool_names(1);
    assert!(
        tools.contains(&"slow__raw".to_owned()),
        "{tools:?}\n{}",
        env.log()
    );
    let answer = serve.call_tool(2, "slow__raw", json!({}));
    let sent: Value = serde_json::from_str(&text(&answer)).expect("the raw request");
    assert_eq!(
        sent["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"], MODERN,
        "{sent}"
    );
}

#[test]
fn a_modern_servers_list_is_fetched_again_once_its_ttl_runs_out() {
    let env = Env::new();
    env.user_config(&example_table(
        "new",
        "era_server",
        &["--modern-only", "--list-ttl", "0"],
    ));
    let mut serve = env.serve();
    serve.initialize();
    // Listed at start-up; this answer comes from that listing and asks for another.
    std::thread::sleep(Duration::from_millis(1100));
    assert!(serve.tool_names(1).contains(&"new__listed_1".to_owned()));
    std::thread::sleep(Duration::from_millis(300));
    let tools = serve.tool_names(2);
    assert!(tools.contains(&"new__listed_2".to_owned()), "{tools:?}");
    // Within a second of that refresh: answered as listed, not listed again.
    let tools = serve.tool_names(3);
    assert!(tools.contains(&"new__listed_2".to_owned()), "{tools:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(serve.tool_names(4).contains(&"new__listed_2".to_owned()));
}
