//! `mcp-warden trust` and `mcp-warden untrust`.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::ExitStatus;
use crate::config::trust::{self, TrustError};
use crate::config::{self, Layer, WorkspaceChoice};
use crate::file_error::FileError;
use crate::output;
use crate::paths::{self, Paths};

/// Trust this workspace at the current digests of its `mcp-warden.toml` and
/// `mcp-warden.lock`: its servers may start and its pins count. Shows what trusting
/// approves first (each server's full command, the lock entries whose scan findings
/// are accepted, what changed since the last trust), then asks. Any later edit of
/// either file makes it untrusted again.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Do not ask for confirmation (for scripts): trusts what is shown.
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
    args: &TrustArgs,
) -> anyhow::Result<ExitStatus> {
    let Some(root) = find_root(paths, workspace)? else {
        return Ok(ExitStatus::Usage);
    };
    let review = match trust::review(paths, &root) {
        Ok(review) => review,
        Err(e) => return Ok(report_error(e)),
    };
    show_review(paths, &review);
    if !args.yes {
        if !output::stdin_is_terminal() {
            output::diag(
                "error: refusing to trust without confirmation: no terminal; pass `--yes`",
            );
            return Ok(ExitStatus::Usage);
        }
        if !output::confirm("trust this workspace?")? {
            output::diag("nothing trusted");
            return Ok(ExitStatus::Usage);
        }
    }
    let record = match trust::approve(paths, &review) {
        Ok(record) => record,
        Err(e) => return Ok(report_error(e)),
    };
    let root = review.root;
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

/// Text from the workspace, shown on one line with anything a reader could not see
/// written out.
fn shown(text: &str) -> String {
    crate::textclass::escape_hidden(text).into_owned()
}

/// What trusting approves, from the very bytes that will be recorded.
fn show_review(paths: &Paths, review: &trust::Review) {
    output::line(&format!(
        "trusting workspace `{}` lets these servers start, with your permissions:",
        shown(&review.root.to_string_lossy())
    ));
    let file = paths::workspace_file(&review.root);
    let config_text = String::from_utf8_lossy(&review.config.bytes);
    let source = config::Source::new(&file, &config_text);
    let (parsed, errors) =
        config::validate::validate(Layer::Workspace, &source, config::raw::parse(&source));
    if parsed.servers.is_empty() {
        output::line("  (no servers)");
    }
    for server in &parsed.servers {
        let words: Vec<String> = std::iter::once(&server.command)
            .chain(&server.args)
            .map(|v| serde_json::to_string(&shown(&v.raw)).unwrap_or_default())
            .collect();
        output::line(&format!("  {}: {}", server.name, words.join(" ")));
        if let Some(cwd) = &server.cwd {
            output::line(&format!("    cwd = {}", shown(&cwd.raw)));
        }
    }
    if !errors.is_empty() {
        output::diag(&format!(
            "warning: `{}` has {} error(s); run `mcp-warden check`",
            file.display(),
            errors.len()
        ));
    }
    if let Some(lock) = &review.lock {
        let path = review.root.join(paths::LOCK_FILE);
        match crate::pinning::lock::parse(&path, &String::from_utf8_lossy(&lock.bytes)) {
            Ok(parsed) => {
                let accepted: Vec<String> = parsed
                    .items
                    .values()
                    .filter(|pin| !pin.accepted.is_empty())
                    .map(|pin| {
                        let ids: Vec<&str> = pin.accepted.iter().map(String::as_str).collect();
                        format!(
                            "  {} accepts scan findings: {}",
                            shown(&pin.exposed),
                            ids.join(", ")
                        )
                    })
                    .collect();
                output::line(&format!(
                    "its lock pins {} item(s); {} with accepted scan findings{}",
                    parsed.items.len(),
                    accepted.len(),
                    if accepted.is_empty() { "" } else { ":" }
                ));
                for line in accepted {
                    output::line(&line);
                }
            }
            Err(e) => output::diag(&format!("warning: the lock does not read: {e}")),
        }
    }
    show_changes(paths, review);
}

/// What changed since the last trust, as diffs where the trusted copy was kept.
fn show_changes(paths: &Paths, review: &trust::Review) {
    let Some(previous) = &review.previous else {
        output::line("never trusted before: all of the above is new");
        return;
    };
    let files = [
        (
            paths::WORKSPACE_FILE,
            Some(&previous.config),
            Some(&review.config),
        ),
        (
            paths::LOCK_FILE,
            previous.lock.as_ref(),
            review.lock.as_ref(),
        ),
    ];
    for (name, before, now) in files {
        let now_digest = now.map(|s| &s.digest);
        if before == now_digest {
            output::line(&format!("{name}: unchanged since the last trust"));
            continue;
        }
        let before_text = before.map(|digest| trust::trusted_text(paths, digest));
        if let Some(None) = before_text {
            output::line(&format!(
                "{name}: changed since the last trust (the trusted version was not kept to compare)"
            ));
            continue;
        }
        let before_text = before_text.flatten();
        let now_text = now.map(|s| String::from_utf8_lossy(&s.bytes).into_owned());
        output::line(&format!("{name}: changed since the last trust:"));
        let diff = crate::install::diff(
            &review.root.join(name),
            before_text.as_deref(),
            now_text.as_deref(),
        );
        for line in diff.lines() {
            output::line(&format!("  {}", shown(line)));
        }
    }
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
        // A root that cannot be used is the user's input: exit 2.
        TrustError::File(FileError::Read { .. } | FileError::Write { .. }) => ExitStatus::Failure,
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
