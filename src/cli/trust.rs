//! `mcp-warden trust` and `mcp-warden untrust`.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::ExitStatus;
use crate::config::{self, Layer, WorkspaceChoice};
use crate::output;
use crate::paths::{self, Paths};
use crate::trust::{self, TrustError};

/// Trust this workspace at the current digests of its `mcp-warden.toml` and
/// `mcp-warden.lock`: its servers may start and its pins count. Any later edit of
/// either file makes it untrusted again. Trusting is itself the explicit act, so it
/// asks for no confirmation.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Accepted for scripts; `trust` never asks.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Withdraw trust from this workspace: its servers stop being started and its lock
/// file stops counting.
#[derive(Debug, Args)]
pub struct UntrustArgs {}

/// Runs `trust`.
pub fn run_trust(
    paths: &Paths,
    workspace: Option<PathBuf>,
    _args: &TrustArgs,
) -> anyhow::Result<ExitStatus> {
    let Some(root) = find_root(paths, workspace)? else {
        return Ok(ExitStatus::Usage);
    };
    let (root, record) = match trust::trust(paths, &root) {
        Ok(done) => done,
        Err(e) => return Ok(report_error(e)),
    };
    output::line(&format!("trusted workspace `{}`", root.display()));
    output::line(&format!("  {}  {}", paths::WORKSPACE_FILE, record.config));
    output::line(&format!(
        "  {}  {}",
        paths::LOCK_FILE,
        record.lock.as_deref().unwrap_or("(none)")
    ));
    match config::load(paths, &WorkspaceChoice::Flag(root)) {
        Ok(effective) => {
            let names: Vec<_> = effective
                .servers
                .iter()
                .filter(|s| s.layer == Layer::Workspace)
                .map(|s| format!("`{}`", s.name))
                .collect();
            if !names.is_empty() {
                output::line(&format!("its servers may now start: {}", names.join(", ")));
            }
        }
        Err(_) => output::diag(
            "warning: the configuration has errors, so `serve` will refuse it; run `mcp-warden check`",
        ),
    }
    Ok(ExitStatus::Success)
}

/// Runs `untrust`.
pub fn run_untrust(
    paths: &Paths,
    workspace: Option<PathBuf>,
    _args: &UntrustArgs,
) -> anyhow::Result<ExitStatus> {
    let Some(root) = find_root(paths, workspace)? else {
        return Ok(ExitStatus::Usage);
    };
    let shown = root.canonicalize().unwrap_or_else(|_| root.clone());
    match trust::untrust(paths, &root) {
        Ok(true) => output::line(&format!(
            "withdrew trust from workspace `{}`",
            shown.display()
        )),
        Ok(false) => output::line(&format!("workspace `{}` was not trusted", shown.display())),
        Err(e) => return Ok(report_error(e)),
    }
    Ok(ExitStatus::Success)
}

/// The workspace to act on; `None` after saying why there is none.
fn find_root(paths: &Paths, workspace: Option<PathBuf>) -> anyhow::Result<Option<PathBuf>> {
    let choice = super::check::workspace_choice(workspace)?;
    let found = config::discover_workspace(&choice, &paths.home);
    if found.is_none()
        && let WorkspaceChoice::Cwd(cwd) = &choice
    {
        output::diag(&no_workspace_message(cwd, &paths.home));
    }
    Ok(found)
}

fn no_workspace_message(cwd: &Path, home: &Path) -> String {
    format!(
        "error: no `{}` in `{}` or its parents (up to `{}`)\n  hint: run `mcp-warden init` to \
         create one, or pass `--workspace DIR`",
        paths::WORKSPACE_FILE,
        cwd.display(),
        home.display()
    )
}

/// Prints a trust store error; problems with the workspace or the store are exit 2,
/// I/O failures exit 3.
fn report_error(e: TrustError) -> ExitStatus {
    let status = match e {
        TrustError::Read { .. } | TrustError::Write { .. } => ExitStatus::Failure,
        _ => ExitStatus::Usage,
    };
    match e {
        TrustError::Invalid(d) => output::diag_block(&d.to_string()),
        TrustError::NoWorkspaceFile { .. } => {
            output::diag(&format!("error: {e}"));
            output::diag("  hint: run `mcp-warden init` to create one");
        }
        e => output::diag(&format!("error: {e}")),
    }
    status
}
