//! The filter seam: a stage plugged into the session sees every message both ways and
//! can allow, rewrite or block it, without any change to the router. Driven through the
//! library with the example test server as the upstream.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_warden::config::{
    Effective, Layer, Namespace, PinningMode, PinningSettings, ServerConfig, ServerName,
};
use mcp_warden::filter::{Block, Chain, Stage};
use mcp_warden::jsonrpc::Message;
use mcp_warden::session::{self, SessionConfig};
use mcp_warden::stages::{Direction, Stop, Verdict, View};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Blocks calls to `*__crash`, rewrites every echo result's text, and records what
/// passed which way.
struct Recorder {
    seen: Arc<Mutex<Vec<(Direction, String)>>>,
}

impl Stage for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn inspect(&mut self, ctx: &View<'_>, msg: &Message) -> Verdict {
        let what = msg.method().map_or_else(
            || format!("answer to {:?}", ctx.request_method),
            str::to_owned,
        );
        self.seen.lock().unwrap().push((ctx.direction, what));
        if ctx.direction == Direction::ToUpstream
            && ctx.name.is_some_and(|t| t.ends_with("__crash"))
        {
            return Verdict::Stop(Stop::deny(Block {
                rule: "test:no-crash".into(),
                reason: "crashing is not allowed".into(),
            }));
        }
        if ctx.direction == Direction::ToClient && ctx.name == Some("a__echo") {
            let raw = std::str::from_utf8(msg.raw()).unwrap();
            return Verdict::Rewrite(format!("{}\n", raw.replace("to a", "TO A")).into());
        }
        Verdict::Pass
    }
}

fn server() -> ServerConfig {
    ServerConfig {
        name: ServerName::new("a").unwrap(),
        layer: Layer::User,
        command: support::path_str(&support::test_server()),
        args: vec!["--name".into(), "a".into()],
        raw_command: String::new(),
        raw_args: Vec::new(),
        env: std::collections::BTreeMap::new(),
        env_passthrough: Vec::new(),
        cwd: None,
        namespace: Namespace::new("a").unwrap(),
        request_timeout: Duration::from_secs(30),
        elicitation: true,
        sampling: false,
        sandbox: mcp_warden::sandbox::SandboxSettings::default(),
    }
}

/// This test is about the filter seam, not pinning: nothing is held.
const PINNING_OFF: PinningSettings = PinningSettings {
    mode: PinningMode::Off,
    ask: false,
};

#[tokio::test]
async fn a_stage_sees_both_directions_and_can_block_and_rewrite() {
    let state = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let chain = Chain::new().with(Box::new(Recorder {
        seen: Arc::clone(&seen),
    }));
    let config = SessionConfig {
        effective: Effective {
            workspace: None,
            servers: vec![server()],
            pinning: PINNING_OFF,
            ..Effective::default()
        },
        spawner: mcp_warden::upstream::Spawner {
            state_dir: state.path().to_path_buf(),
            launcher: None,
        },
        reload: None,
        notices: Vec::new(),
        max_line: 1 << 20,
        pinning: session::PinningSetup {
            settings: PINNING_OFF,
            paths: mcp_warden::paths::Paths::from_env(),
        },
        audit: None,
        state_key: None,
        settled: None,
    };
    let (mut client_out, session_in) = tokio::io::duplex(1 << 16);
    let (session_out, client_in) = tokio::io::duplex(1 << 16);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let session = tokio::spawn(session::run(
        config,
        chain,
        session_in,
        session_out,
        async {
            let _ = stop_rx.await;
        },
    ));
    let mut lines = BufReader::new(client_in).lines();
    let mut ask = async |msg: Value| -> Value {
        client_out
            .write_all(format!("{msg}\n").as_bytes())
            .await
            .unwrap();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let answer: Value = serde_json::from_str(&line).unwrap();
            if answer.get("id") == msg.get("id") && answer.get("method").is_none() {
                return answer;
            }
        }
    };
    ask(json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})).await;
    let listed = ask(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"})).await;
    assert!(
        listed["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "a__crash")
    );

    let blocked = ask(json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a__crash","arguments":{}}})).await;
    assert_eq!(blocked["result"]["isError"], true, "{blocked}");
    assert!(
        blocked["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Blocked by mcp-warden:")
    );
    assert_eq!(blocked["result"]["_meta"]["mcp-warden/decision"], "deny");
    assert_eq!(
        blocked["result"]["_meta"]["mcp-warden/rule"],
        "test:no-crash"
    );

    let echoed = ask(json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"a__echo","arguments":{"message":"to a"}}})).await;
    assert_eq!(echoed["result"]["content"][0]["text"], "TO A", "{echoed}");
    // The server is still alive: the blocked call never reached it.
    let again = ask(json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"a__echo","arguments":{"message":"x"}}})).await;
    assert_eq!(again["result"]["content"][0]["text"], "x");

    stop_tx.send(()).unwrap();
    assert_eq!(session.await.unwrap(), session::Outcome::Stopped);
    let seen = seen.lock().unwrap();
    assert!(
        seen.contains(&(Direction::ToUpstream, "tools/call".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(Direction::ToClient, "answer to Some(\"tools/call\")".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(Direction::ToClient, "answer to Some(\"tools/list\")".into())),
        "{seen:?}"
    );
}
