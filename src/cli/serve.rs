//! `mcp-warden serve`.

use std::path::PathBuf;

use clap::Args;

use crate::ExitStatus;
use crate::paths::Paths;

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {}

/// Runs the stdio server.
pub fn run(
    paths: &Paths,
    workspace: Option<PathBuf>,
    _args: &ServeArgs,
) -> anyhow::Result<ExitStatus> {
    crate::serve::run(paths, workspace)
}
