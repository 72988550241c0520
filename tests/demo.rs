//! `mcp-warden demo`: the narrated tour runs over its built-in servers, in seconds,
//! exits 0, shows each thing it claims to, and leaves nothing of the user's touched.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::Env;

/// Generous for a debug build: `serve` hashes the (large, unoptimized) binary once as
/// the demo servers' executable. A release build takes about a second.
const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn demo_runs_each_step_and_exits_zero() {
    let env = Env::new();
    let started = Instant::now();
    let child = env
        .command(&["demo"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(elapsed < LIMIT, "demo took {elapsed:?}:\n{stdout}");

    // 1. The merged, namespaced list, without the poisoned tool.
    let listed = stdout
        .lines()
        .find(|l| l.contains("tools/list ->"))
        .unwrap_or_else(|| panic!("no tool list:\n{stdout}"));
    for tool in [
        "notes__read_note",
        "web__fetch",
        "web__summarize",
        "mail__send_email",
    ] {
        assert!(listed.contains(tool), "{tool} not listed: {listed}");
    }
    assert!(!listed.contains("mail__add"), "{listed}");
    // 2-5. Each protection, as the client saw it.
    for key in [
        "Blocked by mcp-warden: rule `scan:hidden-instructions`",
        "[REDACTED:github-pat]",
        "rule `flow:trifecta`",
        "(after notes__read_note, then web__fetch)",
        "rule `pin:changed`",
    ] {
        assert!(stdout.contains(key), "missing {key:?}:\n{stdout}");
    }
    assert!(
        !stdout.contains(&format!("{}{}", "ghp_", "A1b2C3d4")),
        "the token leaked:\n{stdout}"
    );
    // 6. The audit lines and a passing verify.
    for key in [
        "hold    mail__add",
        "redact  notes__read_note",
        "deny    mail__send_email           flow:trifecta",
        "hold    web__summarize             pin:changed",
        "audit verify: ok",
    ] {
        assert!(stdout.contains(key), "missing {key:?}:\n{stdout}");
    }
    // 7. The way to use it for real.
    for key in [
        "mcp-warden install --client",
        "mcp-warden pins",
        "mcp-warden review",
    ] {
        assert!(stdout.contains(key), "missing {key:?}:\n{stdout}");
    }

    // Nothing of the user's was touched, and the demo's own home is gone.
    assert!(
        std::fs::read_dir(&env.warden_home)
            .unwrap()
            .next()
            .is_none(),
        "the demo wrote into MCP_WARDEN_HOME"
    );
    let prefix = format!("mcp-warden-demo-{pid}-");
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "the demo left {left:?} behind");
}

#[test]
fn demo_server_is_hidden_from_help() {
    let env = Env::new();
    let out = env.run(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("demo"), "{help}");
    assert!(!help.contains("__demo-server"), "{help}");
}
