//! `mcp-warden init`: write a commented starter `mcp-warden.toml`.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::PathBuf;

use clap::Args;

use crate::ExitStatus;
use crate::output;
use crate::paths::{self, Paths};

/// Write a commented `mcp-warden.toml` into the workspace (`--workspace DIR`, else the
/// current directory). An existing file is never overwritten without `--force`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing `mcp-warden.toml`.
    #[arg(long)]
    pub force: bool,
}

/// The starter file. Everything not built yet is a comment, so the file passes
/// `mcp-warden check` as written (a test holds it to that).
pub const STARTER: &str = r#"# mcp-warden.toml: the MCP servers of this workspace, for mcp-warden.
#
# This file is meant to be committed and reviewed. Its servers start only after you
# have read it and run `mcp-warden trust` in this directory; any later edit makes the
# workspace untrusted again until you trust it anew. `mcp-warden check` validates it.
#
# Never write secrets here. Pass them from your own environment instead:
#   env_passthrough = ["GITHUB_TOKEN"]              # copied from mcp-warden's environment
#   env = { API_TOKEN = "${env:MY_API_TOKEN}" }     # or renamed on the way
#
# Variables: ${workspace} (this directory), ${home}, ${env:NAME}. `$${` is a literal `${`.
# Pin package versions (`pkg@1.2.3`, `pkg==1.2.3`): an unversioned package can change
# under you, and `mcp-warden check` warns about it.

# [servers.fs]
# command = "npx"
# args = ["-y", "@modelcontextprotocol/server-filesystem@2026.8.31", "${workspace}"]
# env = { LOG_LEVEL = "info" }      # set for the server
# env_passthrough = []              # names copied from mcp-warden's own environment
# cwd = "${workspace}"              # default: the workspace
# namespace = "fs"                  # tools are exposed as fs__<tool>; default: the table name
# enabled = true
# request_timeout = "60s"           # "500ms", "60s", "2m", "1h"
# sampling = "deny"                 # the only value for now

# Planned, not supported yet (`mcp-warden check` rejects these keys until they are):
# [policy] with [[policy.rules]], [labels], [flows], [output], [limits], [pinning],
# [audit], and [servers.NAME.sandbox] settings other than their defaults.
"#;

/// Runs `init`.
pub fn run(
    _paths: &Paths,
    workspace: Option<PathBuf>,
    args: &InitArgs,
) -> anyhow::Result<ExitStatus> {
    let dir = match workspace {
        Some(dir) => dir,
        None => std::env::current_dir()?,
    };
    if !dir.is_dir() {
        output::diag(&format!(
            "error: workspace `{}` is not a directory",
            dir.display()
        ));
        return Ok(ExitStatus::Usage);
    }
    let path = paths::workspace_file(&dir);
    let mut options = OpenOptions::new();
    options.write(true);
    if args.force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let written = options
        .open(&path)
        .and_then(|mut f| f.write_all(STARTER.as_bytes()));
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            output::diag(&format!(
                "error: `{}` already exists; use `--force` to overwrite it",
                path.display()
            ));
            return Ok(ExitStatus::Usage);
        }
        Err(e) => return Err(anyhow::anyhow!("cannot write `{}`: {e}", path.display())),
    }
    output::line(&format!("wrote `{}`", path.display()));
    output::line(
        "next: add servers, run `mcp-warden check`, then `mcp-warden trust` to let them start",
    );
    Ok(ExitStatus::Success)
}
