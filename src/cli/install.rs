//! `mcp-warden install` and `mcp-warden uninstall`.

use std::path::PathBuf;

use clap::Args;

use crate::ExitStatus;
use crate::install::{
    self, Client, Environment, InstallError, InstallPlan, Layer, Scope, Target, UninstallPlan,
};
use crate::output;
use crate::paths::Paths;

/// Arguments of `install` (its help text is on `Command::Install`).
#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub place: Place,
    /// Show the change, as a diff of both files, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (needed without a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Arguments of `uninstall` (its help text is on `Command::Uninstall`).
#[derive(Debug, Args)]
pub struct UninstallArgs {
    #[command(flatten)]
    pub place: Place,
    /// Show the change, as a diff of both files, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (needed without a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Restore the backup even though the file changed since install (those changes are
    /// lost).
    #[arg(long)]
    pub force: bool,
}

/// Which client file.
#[derive(Debug, Args)]
pub struct Place {
    /// The client.
    #[arg(long, value_enum, value_name = "NAME")]
    pub client: Client,
    /// Which of the client's files: the user's (default), the project's (in `--workspace
    /// DIR` or the current directory), or Claude Code's per-project `local` entry.
    #[arg(long, value_enum, value_name = "SCOPE")]
    pub scope: Option<Scope>,
    /// Same as `--scope project`.
    #[arg(long, conflicts_with = "scope")]
    pub project: bool,
    /// The client's file, when it is not where the client keeps it by default.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl Place {
    fn scope(&self) -> Scope {
        if self.project {
            Scope::Project
        } else {
            self.scope.unwrap_or(Scope::User)
        }
    }

    /// The flags that name this file again, for the hints printed.
    fn flags(&self, target: &Target) -> String {
        let mut flags = vec![format!("--client {}", self.client)];
        if self.scope() != Scope::User {
            flags.push(format!("--scope {}", self.scope()));
        }
        if self.config.is_some() {
            flags.push(format!("--config {}", target.file.display()));
        }
        flags.join(" ")
    }

    fn target(&self, paths: &Paths, workspace: Option<PathBuf>) -> anyhow::Result<Target> {
        let project = match workspace {
            Some(dir) => dir,
            None => std::env::current_dir()?,
        };
        let env = Environment::from_env(&paths.home);
        Ok(install::locate(
            self.client,
            self.scope(),
            self.config.as_deref(),
            &project,
            &env,
        )?)
    }
}

/// Runs `install`.
pub fn run_install(
    paths: &Paths,
    workspace: Option<PathBuf>,
    args: &InstallArgs,
) -> anyhow::Result<ExitStatus> {
    let target = match args.place.target(paths, workspace) {
        Ok(t) => t,
        Err(e) => return report(e),
    };
    let exe = std::env::current_exe()?;
    let Some(exe) = exe.to_str() else {
        output::diag(&format!(
            "error: the path of this binary is not valid UTF-8: `{}`",
            exe.display()
        ));
        return Ok(ExitStatus::Usage);
    };
    let plan = match install::destination(paths, &target)
        .and_then(|dest| install::plan_install(target, exe, &dest))
    {
        Ok(p) => p,
        Err(e) => return Ok(report_install_error(&e)),
    };
    show_install(&plan);
    if plan.changes_nothing() {
        output::line(&format!(
            "nothing to change: mcp-warden is already installed in `{}`",
            plan.target.file.display()
        ));
        return Ok(ExitStatus::Success);
    }
    let question = format!("install mcp-warden into {}?", plan.target.client);
    if let Some(status) = go_ahead("install", args.dry_run, args.yes, &plan.diffs(), &question)? {
        return Ok(status);
    }
    let installed = match install::apply_install(paths, &plan) {
        Ok(i) => i,
        Err(e) => return Ok(report_install_error(&e)),
    };
    if let Some(backup) = &installed.backup {
        output::line(&format!("backup: `{}`", backup.display()));
    }
    if let Layer::Workspace { root, .. } = &plan.layer
        && plan.config_after.is_some()
    {
        if installed.trusted {
            output::line(&format!(
                "trusted: the workspace `{}` at the file install wrote",
                root.display()
            ));
        } else {
            output::line(&format!(
                "not trusted: the workspace `{}` had a file of its own; review it with \
                 `mcp-warden trust` before its servers start",
                root.display()
            ));
        }
    }
    output::line(&format!(
        "installed: restart {} to use it; `mcp-warden uninstall {}` undoes this",
        plan.target.client,
        args.place.flags(&plan.target)
    ));
    if plan.moved.iter().any(|m| !m.already) {
        output::line(
            "next: `mcp-warden pin` to review and pin the moved servers' tools (held until \
             then); `mcp-warden check` validates the configuration",
        );
    }
    Ok(ExitStatus::Success)
}

/// Runs `uninstall`.
pub fn run_uninstall(
    paths: &Paths,
    workspace: Option<PathBuf>,
    args: &UninstallArgs,
) -> anyhow::Result<ExitStatus> {
    let target = match args.place.target(paths, workspace) {
        Ok(t) => t,
        Err(e) => return report(e),
    };
    let plan = match install::plan_uninstall(paths, target, &paths.user_config(), args.force) {
        Ok(p) => p,
        Err(e) => return Ok(report_install_error(&e)),
    };
    show_uninstall(&plan);
    let question = format!("uninstall mcp-warden from {}?", plan.target.client);
    if let Some(status) = go_ahead(
        "uninstall",
        args.dry_run,
        args.yes,
        &plan.diffs(),
        &question,
    )? {
        return Ok(status);
    }
    if let Err(e) = install::apply_uninstall(paths, &plan) {
        return Ok(report_install_error(&e));
    }
    output::line(&format!(
        "uninstalled: restart {} to use its own servers again",
        plan.target.client
    ));
    if plan.earlier > 0 {
        output::line(&format!(
            "an earlier install into this file is recorded too: run `mcp-warden uninstall {}` \
             again to undo it",
            args.place.flags(&plan.target)
        ));
    }
    Ok(ExitStatus::Success)
}

fn show_install(plan: &InstallPlan) {
    let t = &plan.target;
    output::line(&format!(
        "{} ({}): `{}`",
        t.client,
        t.scope,
        t.file.display()
    ));
    for m in &plan.moved {
        let table = if m.name == m.table {
            String::new()
        } else {
            format!(" as `[servers.{}]`", m.table)
        };
        let already = if m.already {
            " (already there, defined the same way)"
        } else {
            ""
        };
        output::line(&format!("  moves `{}`{table}{already}", m.name));
        for note in &m.notes {
            output::line(&format!("    {note}"));
        }
    }
    for name in &plan.remote {
        output::line(&format!(
            "  keeps `{name}`: a remote (url) server, not proxied by mcp-warden"
        ));
    }
    for (name, reason) in &plan.kept {
        output::line(&format!(
            "  keeps `{name}`, not proxied by mcp-warden: {reason}"
        ));
    }
    if plan.max_name_len < crate::names::MAX_EXPOSED_LEN && !plan.moved.is_empty() {
        output::line(&format!(
            "  exposed names of the moved servers: at most {} characters (`max_name_len`), \
             so that every client mcp-warden is installed into sees them whole",
            plan.max_name_len
        ));
    }
    if !plan.over_budget.is_empty() {
        output::line(&format!(
            "  servers already in `{}` may expose names longer than {}: {}; set \
             `max_name_len = {}` on them to fit",
            plan.config_path.display(),
            plan.max_name_len,
            plan.over_budget
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "),
            plan.max_name_len
        ));
    }
    if plan.ours_present {
        match &plan.ours_program {
            Some(program) if *program != plan.exe => output::line(&format!(
                "  has `{}` already, running `{program}` (this binary is `{}`)",
                install::OURS,
                plan.exe
            )),
            _ => output::line(&format!("  has `{}` already", install::OURS)),
        }
    } else {
        output::line(&format!("  adds `{}`: `{} serve`", install::OURS, plan.exe));
    }
    if !plan.moved.is_empty() {
        let path = plan.config_path.display();
        match &plan.layer {
            Layer::User => output::line(&format!(
                "servers move to mcp-warden's user config `{path}` (they start in every \
                 workspace)"
            )),
            Layer::Workspace { root, trust } => {
                output::line(&format!(
                    "servers move to the workspace's `{path}` ({} scope: they start only in \
                     `{}`)",
                    t.scope,
                    root.display()
                ));
                output::line(if *trust {
                    "  the workspace is trusted at that file once written (you asked for the \
                     install)"
                } else {
                    "  the workspace is not trusted afterwards: it has a file of its own that \
                     `mcp-warden trust` shows first"
                });
            }
        }
    }
}

fn show_uninstall(plan: &UninstallPlan) {
    let t = &plan.target;
    output::line(&format!(
        "{} ({}): `{}`",
        t.client,
        t.scope,
        t.file.display()
    ));
    match plan.record.backup() {
        Some(b) => output::line(&format!(
            "  restores it from `{}` (install of {})",
            b.display(),
            plan.record.at
        )),
        None => output::line("  removes it (install created it)"),
    }
    let config = plan.config_path.display();
    for name in &plan.removed {
        output::line(&format!("  removes `[servers.{name}]` from `{config}`"));
    }
    for name in &plan.changed {
        output::line(&format!(
            "  keeps `[servers.{name}]` in `{config}`: changed since install"
        ));
    }
    for id in &plan.changed_rules {
        output::line(&format!(
            "  keeps the policy rule `{id}` in `{config}`: changed since install"
        ));
    }
    for name in &plan.shared {
        output::line(&format!(
            "  keeps `[servers.{name}]` in `{config}`: another install uses it"
        ));
    }
}

/// `--dry-run` and the confirmation shared by `install` and `uninstall`: `Some(exit
/// status)` when nothing is to be written (a dry run, no terminal and no `--yes`, or
/// a "no"), `None` to go ahead.
fn go_ahead(
    verb: &str,
    dry_run: bool,
    yes: bool,
    diffs: &str,
    question: &str,
) -> anyhow::Result<Option<ExitStatus>> {
    if dry_run {
        output::line("");
        output::block(diffs);
        output::line("");
        output::line("dry run: nothing was written");
        return Ok(Some(ExitStatus::Success));
    }
    if yes {
        return Ok(None);
    }
    if !output::stdin_is_terminal() {
        output::diag(&format!(
            "error: refusing to {verb} without confirmation: no terminal; pass `--yes` \
             (or `--dry-run` to see the change)"
        ));
        return Ok(Some(ExitStatus::Usage));
    }
    output::line("");
    output::block(diffs);
    if output::confirm(question)? {
        return Ok(None);
    }
    output::diag("nothing was written");
    Ok(Some(ExitStatus::Usage))
}

/// Reports an error from finding the file (an [`InstallError`] or the current directory).
fn report(e: anyhow::Error) -> anyhow::Result<ExitStatus> {
    match e.downcast::<InstallError>() {
        Ok(e) => Ok(report_install_error(&e)),
        Err(e) => Err(e),
    }
}

/// Prints an install error with its hint: problems with the input exit 2, failures of
/// the machine 3.
fn report_install_error(e: &InstallError) -> ExitStatus {
    match e {
        InstallError::Invalid(d) => output::diag_block(&d.to_string()),
        e => match e.hint() {
            Some(hint) => {
                output::diag(&format!("error: {e}"));
                output::diag(&format!("  hint: {hint}"));
            }
            None => output::diag(&format!("error: {e}")),
        },
    }
    if e.is_runtime() {
        ExitStatus::Failure
    } else {
        ExitStatus::Usage
    }
}
