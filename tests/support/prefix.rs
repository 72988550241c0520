//! Where the pinned test dependencies live (`./install.sh --test-deps`).
//!
//! The prefix holds `node/node_modules/` (the npm reference servers), `venv/` (the Python
//! `mcp` SDK, `mcp-server-time`, `mcp-server-git`) and a stamp file written last, so a
//! half-finished install is never taken for a complete one.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

use super::{Env, path_str};

/// Environment variable naming the prefix; `install.sh` honours the same one.
#[allow(dead_code)]
pub const PREFIX_ENV: &str = "MCP_WARDEN_TEST_PREFIX";

/// Where `./install.sh --test-deps` installs when nothing else is said.
#[allow(dead_code)]
pub const DEFAULT_PREFIX: &str = "/opt/mcp-warden-test";

/// Written by `install.sh` once everything in the prefix is installed.
#[allow(dead_code)]
pub const STAMP_FILE: &str = "mcp-warden-test-deps.stamp";

/// The installed test-dependency prefix, or `None` (after saying so) when it is missing.
///
/// # Panics
/// When the dependencies are missing and `CI=true`: CI must never skip these tests silently.
#[allow(dead_code, clippy::print_stderr)]
pub fn test_prefix() -> Option<PathBuf> {
    let prefix = std::env::var_os(PREFIX_ENV)
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_PREFIX), PathBuf::from);
    if prefix.join(STAMP_FILE).is_file() {
        return Some(prefix);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "test dependencies are missing: no {STAMP_FILE} in {} (CI=true, so this is an error, not a skip); \
         run ./install.sh --test-deps and export {PREFIX_ENV}",
        prefix.display()
    );
    eprintln!(
        "skipped: test dependencies not installed; run ./install.sh --test-deps (looked in {})",
        prefix.display()
    );
    None
}

/// An npm package's executable, e.g. `node_bin(p, "mcp-server-everything")`
/// (also `mcp-server-filesystem`, `mcp-server-memory`).
#[allow(dead_code)]
#[must_use]
pub fn node_bin(prefix: &Path, pkg_bin_name: &str) -> PathBuf {
    prefix
        .join("node")
        .join("node_modules")
        .join(".bin")
        .join(pkg_bin_name)
}

/// An executable of the test venv, e.g. `venv_bin(p, "python")`, `venv_bin(p, "mcp-server-time")`,
/// `venv_bin(p, "mcp-server-git")`.
#[allow(dead_code)]
#[must_use]
pub fn venv_bin(prefix: &Path, name: &str) -> PathBuf {
    prefix.join("venv").join("bin").join(name)
}

/// The scripted Python SDK client, `tests/clients/mcp_client.py`; run it with `venv_bin(p, "python")`.
#[allow(dead_code)]
#[must_use]
pub fn mcp_client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("clients")
        .join("mcp_client.py")
}

/// Runs the Python SDK client (`tests/clients/mcp_client.py`) with `script` against
/// `mcp-warden serve` in `env`, the client declaring `roots`.
#[allow(dead_code)]
pub fn run_client(env: &Env, prefix: &Path, script: &Value, roots: &[&Path]) -> Value {
    let mut extra = Vec::new();
    for root in roots {
        extra.push("--root".to_owned());
        extra.push(path_str(root));
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    run_client_with(env, prefix, script, &extra)
}

/// [`run_client`] with other client options (`--elicit decline`, ...).
#[allow(dead_code, clippy::unwrap_used)]
pub fn run_client_with(env: &Env, prefix: &Path, script: &Value, options: &[&str]) -> Value {
    let script_path = env.dir.path().join("script.json");
    std::fs::write(&script_path, script.to_string()).unwrap();
    let mut args = vec![
        path_str(&mcp_client_script()),
        "--script".into(),
        path_str(&script_path),
        "--timeout".into(),
        "120".into(),
    ];
    args.extend(options.iter().map(|o| (*o).to_owned()));
    args.extend(["--".into(), path_str(&super::bin()), "serve".into()]);
    let mut client = std::process::Command::new(venv_bin(prefix, "python"));
    client.args(&args);
    env.apply(&mut client);
    let output = client.stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client failed ({}):\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("client output is not JSON ({e}): {stdout}"))
}

/// The step of a [`run_client`] output with this `label`.
#[allow(dead_code, clippy::unwrap_used)]
pub fn step<'a>(out: &'a Value, label: &str) -> &'a Value {
    out["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"] == label)
        .unwrap_or_else(|| panic!("no step {label}: {out}"))
}
