//! The inventory collector (`upstream::inventory`) against real processes: the example
//! test server, and small `sh` scripts where a test needs a server to say something
//! exact (junk on stdout, its own requests, error answers, endless pages).
// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use mcp_warden::config::{Layer, Namespace, ServerConfig, ServerName};
use mcp_warden::pinning::listed::{Definition, Inventory, Listing};
use mcp_warden::pinning::lock::Kind;
use mcp_warden::upstream::Spawner;
use mcp_warden::upstream::inventory::{MAX_ITEMS, MAX_PAGES, collect};

/// Longest any one test's collection may take before the test fails as hung.
const HANG: Duration = Duration::from_secs(60);

fn server(name: &str, command: &Path, args: &[&str], timeout: Duration) -> ServerConfig {
    ServerConfig {
        name: ServerName::new(name).unwrap(),
        layer: Layer::User,
        command: command.to_string_lossy().into_owned(),
        args: args.iter().map(ToString::to_string).collect(),
        raw_command: command.to_string_lossy().into_owned(),
        raw_args: args.iter().map(ToString::to_string).collect(),
        env: std::collections::BTreeMap::new(),
        env_passthrough: Vec::new(),
        cwd: None,
        namespace: Namespace::new(name).unwrap(),
        request_timeout: timeout,
        elicitation: true,
        sampling: false,
        sandbox: mcp_warden::sandbox::SandboxSettings::default(),
    }
}

/// The example server under `name` with `extra` options.
fn test_server(name: &str, extra: &[&str]) -> ServerConfig {
    let mut args = vec!["--name", name];
    args.extend_from_slice(extra);
    server(
        name,
        &support::test_server(),
        &args,
        Duration::from_secs(10),
    )
}

/// A server run by `/bin/sh` from `script`, written into `env`'s directory.
fn script_server(env: &support::Env, name: &str, script: &str, args: &[&str]) -> ServerConfig {
    let path = env.dir.path().join(format!("{name}.sh"));
    std::fs::write(&path, script).unwrap();
    let path = path.to_string_lossy().into_owned();
    let mut all = vec![path.as_str()];
    all.extend_from_slice(args);
    server(name, Path::new("/bin/sh"), &all, Duration::from_secs(10))
}

fn spawner(env: &support::Env) -> Spawner {
    Spawner {
        state_dir: env.dir.path().join("state"),
        launcher: None,
    }
}

/// Runs `collect`, failing the test if it hangs.
async fn run(env: &support::Env, servers: &[ServerConfig]) -> Vec<Inventory> {
    let spawner = spawner(env);
    tokio::time::timeout(
        HANG,
        collect(servers, &spawner, Some(&env.workspace), &mut |_| {}),
    )
    .await
    .expect("collect hung")
}

fn listing(inventory: &Inventory) -> &Listing {
    match &inventory.outcome {
        Ok(listing) => listing,
        Err(why) => panic!("server `{}` failed: {why}", inventory.server),
    }
}

fn names(items: &[Definition], kind: Kind) -> Vec<&str> {
    items
        .iter()
        .filter(|d| d.kind == kind)
        .map(|d| d.name.as_str())
        .collect()
}

/// The tools the example server always lists, in its order.
const TEST_SERVER_TOOLS: [&str; 17] = [
    "echo",
    "stop_reading",
    "big",
    "env",
    "pid",
    "noisy",
    "sleep",
    "crash",
    "grandchild",
    "stderr",
    "elicit",
    "sample",
    "roots",
    "progress",
    "churn",
    "flood_stderr",
    "raw",
];

#[tokio::test]
async fn tools_and_instructions_are_collected_as_sent() {
    let env = support::Env::new();
    let inventories = run(
        &env,
        &[test_server(
            "one",
            &["--instructions", "Use with care.", "--tool", "extra"],
        )],
    )
    .await;
    assert_eq!(inventories.len(), 1);
    assert_eq!(inventories[0].server.as_str(), "one");
    let listing = listing(&inventories[0]);
    assert_eq!(listing.instructions.as_deref(), Some("Use with care."));
    let mut expected = TEST_SERVER_TOOLS.to_vec();
    expected.push("extra");
    assert_eq!(names(&listing.items, Kind::Tool), expected);
    assert_eq!(
        listing.items.len(),
        expected.len(),
        "only tools are offered"
    );
    let echo = &listing.items[0];
    assert_eq!(echo.name, "echo");
    // The element's text exactly as the server wrote it (its keys in its own order).
    assert_eq!(
        echo.json,
        r#"{"name":"echo","description":"Echoes `message` back; `_meta` carries a number written 1.50.","inputSchema":{"type":"object","properties":{}}}"#
    );
    assert!(echo.json.contains("1.50"));
}

#[tokio::test]
async fn a_server_that_exits_at_start_names_its_exit() {
    let env = support::Env::new();
    let inventories = run(&env, &[test_server("quits", &["--exit-at-start", "7"])]).await;
    let why = inventories[0].outcome.as_ref().unwrap_err();
    assert!(why.contains("exited (exit status: 7)"), "{why}");
    assert!(
        why.contains("last stderr line: test-server: exiting at start as asked"),
        "{why}"
    );
}

#[tokio::test]
async fn a_missing_command_is_an_error_naming_it() {
    let env = support::Env::new();
    let missing = server(
        "missing",
        Path::new("/nonexistent/mcp-server"),
        &[],
        Duration::from_secs(5),
    );
    let inventories = run(&env, &[missing]).await;
    let why = inventories[0].outcome.as_ref().unwrap_err();
    assert!(
        why.contains("cannot start `/nonexistent/mcp-server`"),
        "{why}"
    );
}

#[tokio::test]
async fn a_silent_server_times_out_and_is_stopped() {
    let env = support::Env::new();
    let mut slow = test_server("slow", &["--delay-start", "30000"]);
    slow.request_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let inventories = run(&env, &[slow]).await;
    let why = inventories[0].outcome.as_ref().unwrap_err();
    assert_eq!(why, "did not answer `initialize` within 300ms");
    // The timeout, then the stop sequence (grace, SIGTERM): never the 30 s sleep.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_endless_cursor_stops_at_the_page_limit() {
    let env = support::Env::new();
    let started = Instant::now();
    let inventories = run(&env, &[test_server("pager", &["--endless-cursor", "x"])]).await;
    // Every page repeats the same tools: each name is kept once.
    assert_eq!(
        names(&listing(&inventories[0]).items, Kind::Tool),
        TEST_SERVER_TOOLS
    );
    assert!(started.elapsed() < HANG);
}

/// Answers `tools/list` with page N+1's cursor and `per_page` (`$1`) tools named
/// `tN_i`, forever. Every line it reads is appended to the file named by `$2`.
const ENDLESS: &str = r#"
per_page=$1
while IFS= read -r line; do
  printf '%s\n' "$line" >> "$2"
  case "$line" in
    *'"method":"initialize"'*) n=0 ;;
    *'"method":"tools/list"'*) n=0
      case "$line" in *'"cursor":"p'*) n=${line#*\"cursor\":\"p}; n=${n%%\"*} ;; esac ;;
    *) continue ;;
  esac
  rest=${line#*\"id\":}; id=${rest%%,*}
  case "$line" in
    *'"method":"initialize"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"endless","version":"1"}}}\n' "$id" ;;
    *)
      items="" i=0
      while [ "$i" -lt "$per_page" ]; do
        [ -n "$items" ] && items="$items,"
        items="$items{\"name\":\"t${n}_$i\"}"
        i=$((i + 1))
      done
      printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[%s],"nextCursor":"p%s"}}\n' "$id" "$items" "$((n + 1))" ;;
  esac
done
"#;

#[tokio::test]
async fn pages_and_items_are_bounded() {
    let env = support::Env::new();
    let log = |name: &str| env.dir.path().join(format!("{name}.log"));
    let requests = |name: &str| {
        let text = std::fs::read_to_string(log(name)).unwrap();
        text.matches(r#""method":"tools/list""#).count()
    };
    // One tool a page: exactly MAX_PAGES pages are fetched.
    let pages = script_server(
        &env,
        "pages",
        ENDLESS,
        &["1", &log("pages").to_string_lossy()],
    );
    // 250 a page: the item limit is reached at the end of page 40, with a cursor.
    let items = script_server(
        &env,
        "items",
        ENDLESS,
        &["250", &log("items").to_string_lossy()],
    );
    let inventories = run(&env, &[pages, items]).await;
    assert_eq!(requests("pages"), 100);
    assert_eq!(
        requests("items"),
        40,
        "no page is asked for past the item limit"
    );
    let by_page = &listing(&inventories[0]).items;
    assert_eq!(by_page.len(), usize::try_from(MAX_PAGES).unwrap());
    assert_eq!(by_page[0].name, "t0_0");
    assert_eq!(by_page[99].name, "t99_0");
    assert_eq!(by_page[99].json, r#"{"name":"t99_0"}"#);
    let by_items = &listing(&inventories[1]).items;
    assert_eq!(by_items.len(), MAX_ITEMS);
    assert_eq!(by_items[MAX_ITEMS - 1].name, "t39_249");
}

/// A server that says exactly what the test needs: junk and its own requests before
/// its `initialize` answer, two tool pages with a duplicate, an unnamed tool and a
/// number written `1.50`, prompts refused with -32601, one resource template. Every
/// line it reads is appended to the file named by its first argument.
const SCRIPTED: &str = r#"
log=$1
while IFS= read -r line; do
  printf '%s\n' "$line" >> "$log"
  case "$line" in *'"method"'*) ;; *) continue ;; esac
  case "$line" in *'"id":'*) ;; *) continue ;; esac
  rest=${line#*\"id\":}; id=${rest%%,*}
  case "$line" in
    *'"method":"initialize"'*)
      printf 'starting up, this is not JSON\n'
      printf '{"jsonrpc":"2.0","id":"s1","method":"roots/list"}\n'
      printf '{"jsonrpc":"2.0","id":"s2","method":"elicitation/create","params":{"message":"Name?","requestedSchema":{"type":"object","properties":{}}}}\n'
      printf '{"jsonrpc":"2.0","id":"s3","method":"sampling/createMessage","params":{"messages":[],"maxTokens":5}}\n'
      printf '{"jsonrpc":"2.0","id":"s4","method":"ping"}\n'
      printf '{"jsonrpc":"2.0","id":"s5","method":"whatever/else"}\n'
      printf '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}}\n'
      printf '{"jsonrpc":"2.0","id":12345,"result":{}}\n'
      printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{},"prompts":{},"resources":{}},"serverInfo":{"name":"scripted","version":"1"},"instructions":"Scripted."}}\n' "$id" ;;
    *'"method":"tools/list"'*'"cursor":"p2"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"b","inputSchema":{"type":"object"}},{"name":"a","description":"second a"}]}}\n' "$id" ;;
    *'"method":"tools/list"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"a", "inputSchema":{"type":"object"},"x":1.50},{"description":"no name"}],"nextCursor":"p2"}}\n' "$id" ;;
    *'"method":"resources/templates/list"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"resourceTemplates":[{"uriTemplate":"file:///{path}","name":"files"}]}}\n' "$id" ;;
    *)
      printf '{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"Method not found"}}\n' "$id" ;;
  esac
done
"#;

#[tokio::test]
async fn server_requests_are_answered_and_optional_kinds_may_fail() {
    let env = support::Env::new();
    let log = env.dir.path().join("scripted.log");
    let config = script_server(&env, "scripted", SCRIPTED, &[&log.to_string_lossy()]);
    let inventories = run(&env, &[config]).await;
    let listing = listing(&inventories[0]);
    assert_eq!(listing.instructions.as_deref(), Some("Scripted."));
    assert_eq!(names(&listing.items, Kind::Tool), ["a", "b"]);
    assert_eq!(names(&listing.items, Kind::Prompt), Vec::<&str>::new());
    assert_eq!(
        names(&listing.items, Kind::ResourceTemplate),
        ["file:///{path}"]
    );
    // The first definition of `a` is kept, byte for byte (the space, the 1.50).
    assert_eq!(
        listing.items[0].json,
        r#"{"name":"a", "inputSchema":{"type":"object"},"x":1.50}"#
    );
    assert_eq!(
        listing.items[2].json,
        r#"{"uriTemplate":"file:///{path}","name":"files"}"#
    );

    let lines = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The era probe first (issue 15); this server is legacy (-32601), so `initialize`.
    assert_eq!(lines[0]["method"], "server/discover");
    let init = &lines[1];
    assert_eq!(init["method"], "initialize");
    assert_eq!(init["params"]["protocolVersion"], "2025-11-25");
    assert_eq!(
        init["params"]["capabilities"],
        serde_json::json!({"roots": {"listChanged": true}, "sampling": {}, "elicitation": {}})
    );
    assert_eq!(init["params"]["clientInfo"]["name"], "mcp-warden");
    let answer = |id: &str| {
        lines
            .iter()
            .find(|l| l["id"] == id)
            .unwrap_or_else(|| panic!("no answer to {id} in {lines:?}"))
    };
    let root = mcp_warden::session::wire::file_uri(&env.workspace);
    assert_eq!(answer("s1")["result"]["roots"][0]["uri"], root.as_str());
    assert_eq!(
        answer("s2")["result"],
        serde_json::json!({"action": "decline"})
    );
    assert_eq!(answer("s3")["error"]["code"], -32601);
    assert_eq!(answer("s4")["result"], serde_json::json!({}));
    assert_eq!(answer("s5")["error"]["code"], -32601);
    let methods: Vec<&str> = lines.iter().filter_map(|l| l["method"].as_str()).collect();
    assert_eq!(
        methods,
        [
            "server/discover",
            "initialize",
            "notifications/initialized",
            "tools/list",
            "tools/list",
            "prompts/list",
            "resources/templates/list",
        ]
    );
}

/// Answers `initialize`, then `tools/list` with an error.
const TOOLS_FAIL: &str = r#"
while IFS= read -r line; do
  case "$line" in *'"id":'*) ;; *) continue ;; esac
  rest=${line#*\"id\":}; id=${rest%%,*}
  case "$line" in
    *'"method":"initialize"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"x","version":"1"}}}\n' "$id" ;;
    *)
      printf '{"jsonrpc":"2.0","id":%s,"error":{"code":-32603,"message":"tools are broken"}}\n' "$id" ;;
  esac
done
"#;

#[tokio::test]
async fn a_failed_tool_listing_fails_the_server() {
    let env = support::Env::new();
    let inventories = run(&env, &[script_server(&env, "broken", TOOLS_FAIL, &[])]).await;
    let why = inventories[0].outcome.as_ref().unwrap_err();
    assert_eq!(why, "`tools/list` failed: error -32603: tools are broken");
}

#[tokio::test]
async fn several_servers_run_in_parallel_and_keep_their_order() {
    let env = support::Env::new();
    let mut servers = Vec::new();
    for (name, tool) in [("a", "only_a"), ("b", "only_b"), ("c", "only_c")] {
        // Each takes 1.5 s to start: run one after another they would take 4.5 s.
        servers.push(test_server(
            name,
            &["--tool", tool, "--delay-start", "1500"],
        ));
    }
    servers.insert(1, test_server("quits", &["--exit-at-start", "3"]));
    let started = Instant::now();
    let inventories = run(&env, &servers).await;
    let elapsed = started.elapsed();
    let order: Vec<&str> = inventories.iter().map(|i| i.server.as_str()).collect();
    assert_eq!(order, ["a", "quits", "b", "c"]);
    for (inventory, tool) in [
        (&inventories[0], "only_a"),
        (&inventories[2], "only_b"),
        (&inventories[3], "only_c"),
    ] {
        let tools = names(&listing(inventory).items, Kind::Tool);
        assert_eq!(tools.last(), Some(&tool));
    }
    assert!(inventories[1].outcome.is_err());
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
}
