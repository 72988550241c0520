//! Clients' real limits (issue 16 items 7 and 8): `doctor` and `status` show the merged
//! tool count against each client's cap and name the exposed names over a client's
//! budget; `usage` says which grants to drop to fit.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use support::{Env, bin, path_str, test_server_table};

/// A tool name that, as `big__<name>`, is 53 characters: over Cursor's budget for the
/// key `mcp-warden` (60 - 10 = 50), within the 64 every name fits.
const LONG: &str = "a_tool_name_long_enough_to_pass_cursors_budget_x";

/// Server `big`: the test server's 17 tools, 24 more and one with a long name (42).
fn world() -> Env {
    let env = Env::new();
    let mut extra: Vec<String> = Vec::new();
    for i in 0..24 {
        extra.push("--tool".into());
        extra.push(format!("extra_{i:02}"));
    }
    extra.push("--tool".into());
    extra.push(LONG.into());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    env.user_config_exact(&test_server_table("big", &extra));
    let pinned = env.run(&["pin", "--yes", "--accept-findings"]);
    assert!(
        pinned.status.success(),
        "{}",
        String::from_utf8_lossy(&pinned.stderr)
    );
    // Cursor runs mcp-warden under the key `mcp-warden`.
    let cursor = env.home.join(".cursor");
    std::fs::create_dir_all(&cursor).unwrap();
    std::fs::write(
        cursor.join("mcp.json"),
        json!({"mcpServers": {"mcp-warden": {"command": path_str(&bin()), "args": ["serve"]}}})
            .to_string(),
    )
    .unwrap();
    env
}

fn json_of(env: &Env, args: &[&str]) -> (Option<i32>, Value) {
    let out = env.run(args);
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), doc)
}

#[test]
fn doctor_and_status_show_the_tool_count_against_cursors_cap_and_names_over_its_budget() {
    let env = world();
    let (code, doc) = json_of(&env, &["doctor", "--json"]);
    assert_eq!(code, Some(1), "{doc}");
    assert_eq!(doc["tools"], 42, "{doc}");
    let limits = doc["tool_limits"].as_array().unwrap();
    assert_eq!(limits.len(), 1, "{doc}");
    assert_eq!(limits[0]["client"], "cursor");
    assert_eq!(limits[0]["cap"], 40);
    assert_eq!(limits[0]["fits"], false);
    let wrong = doc["wrong"].to_string();
    assert!(wrong.contains("42 tools, over its cap of 40"), "{wrong}");
    // Item 7: the long name is named, with the fix.
    let budgets = doc["name_budgets"].as_array().unwrap();
    assert_eq!(budgets.len(), 1, "{doc}");
    assert_eq!(budgets[0]["budget"], 50);
    assert_eq!(budgets[0]["names"], json!([format!("big__{LONG}")]));
    assert!(
        wrong.contains("set `max_name_len = 50` in `[servers.big]`"),
        "{wrong}"
    );

    let text = String::from_utf8_lossy(&env.run(&["doctor"]).stdout).into_owned();
    assert!(text.contains("Tool limits"), "{text}");
    assert!(
        text.contains("client `cursor` (user): 42 tools, over its cap of 40"),
        "{text}"
    );

    let status = env.run(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("42 pinned in all"), "{text}");
    assert!(
        text.contains("client `cursor` (user): 42 tools, over its cap of 40"),
        "{text}"
    );
    let (_, doc) = json_of(&env, &["status", "--json"]);
    assert_eq!(doc["tools"], 42, "{doc}");
    assert_eq!(doc["tool_limits"][0]["fits"], false, "{doc}");

    // With the budget set, every name fits and doctor says nothing of names.
    env.user_config_exact(&format!(
        "{}max_name_len = 50\n",
        std::fs::read_to_string(env.warden_home.join("config.toml")).unwrap()
    ));
    let pinned = env.run(&["pin", "--yes", "--all", "--accept-findings"]);
    assert!(
        pinned.status.success(),
        "{}",
        String::from_utf8_lossy(&pinned.stderr)
    );
    let (_, doc) = json_of(&env, &["doctor", "--json"]);
    assert_eq!(doc["name_budgets"], json!([]), "{doc}");
}

#[test]
fn usage_says_which_grants_to_drop_to_fit_never_called_first() {
    let env = world();
    let mut serve = env.serve();
    serve.initialize();
    let names = serve.tool_names(2);
    assert_eq!(names.len(), 42, "{names:?}");
    serve.call_tool(3, "big__echo", json!({"message": "hi"}));
    serve.call_tool(4, &format!("big__{LONG}"), json!({}));
    drop(serve.close());

    let (code, doc) = json_of(&env, &["usage", "--json"]);
    assert_eq!(code, Some(0), "{doc}");
    let fit = &doc["to_fit"][0];
    assert_eq!(fit["client"], "cursor", "{doc}");
    assert_eq!(fit["listed"], 42, "{doc}");
    let drop: Vec<&str> = fit["drop"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(drop.len(), 2, "{doc}");
    assert!(
        !drop.contains(&"big__echo"),
        "a tool in use is kept: {drop:?}"
    );
    assert!(
        fit["rule"].as_str().unwrap().contains("action = \"deny\""),
        "{doc}"
    );

    let text = String::from_utf8_lossy(&env.run(&["usage"]).stdout).into_owned();
    assert!(
        text.contains(
            "client `cursor` (user) takes 40 tools and 42 were listed: to fit, deny these 2"
        ),
        "{text}"
    );
    assert!(text.contains("id = \"fit-cursor\""), "{text}");
}
