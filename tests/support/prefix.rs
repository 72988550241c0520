//! Where the pinned test dependencies live (`./install.sh --test-deps`).
//!
//! The prefix holds `node/node_modules/` (the npm reference servers), `venv/` (the Python
//! `mcp` SDK, `mcp-server-time`, `mcp-server-git`) and a stamp file written last, so a
//! half-finished install is never taken for a complete one.

use std::path::{Path, PathBuf};

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
