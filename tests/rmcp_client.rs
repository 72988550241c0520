//! A second real client: the Rust MCP SDK (`rmcp`) drives `mcp-warden serve` in front of
//! our test server, so the gateway is proven with more than one SDK's idea of the
//! protocol (rmcp normalises messages through its typed model, and negotiates on its
//! own terms).

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use support::{Env, test_server_table};

#[tokio::test]
async fn the_rust_sdk_client_lists_and_calls_through_mcp_warden() {
    let env = Env::new();
    env.user_config(&format!(
        "{}\n{}",
        test_server_table("a", &[]),
        test_server_table("b", &[])
    ));
    let command = tokio::process::Command::from(env.command(&["serve"]));
    let client = ().serve(TokioChildProcess::new(command).unwrap()).await.unwrap();

    let info = client.peer_info().unwrap();
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("mcp-warden")
    );
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(
        names.contains(&"a__echo") && names.contains(&"b__echo"),
        "{names:?}"
    );

    let arguments = serde_json::json!({"message": "from rmcp"})
        .as_object()
        .cloned()
        .unwrap();
    let result = client
        .call_tool(CallToolRequestParams::new("b__echo").with_arguments(arguments))
        .await
        .unwrap();
    let text = serde_json::to_value(&result.content).unwrap();
    assert_eq!(text[0]["text"], "from rmcp", "{text}");

    client.cancel().await.unwrap();
}
