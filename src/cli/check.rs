//! `mcp-warden check`: validate every configuration layer.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::ExitStatus;
use crate::config::{self, Diagnostic, Layer, Report, ServerConfig, TrustState, WorkspaceChoice};
use crate::output;
use crate::paths::Paths;
use serde_json::json;

/// Validate every configuration layer: the managed policy, the user config and the
/// workspace's `mcp-warden.toml`.
///
/// Errors are printed as `FILE:LINE:COL: error: MESSAGE` with a hint, and exit 2.
/// Risks in a valid configuration (a literal secret in `mcp-warden.toml`, an
/// unversioned package) are printed as warnings, and exit 1. Exit 0 when clean.
///
/// `--json` prints one document: `ok`, `exit`, `files`, `errors` and `findings` (each
/// with `file`, `line`, `col`, `severity`, `message`, `hint`), `workspace`, and
/// `servers` (`start`, `missing_command`, `skipped`).
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `check`.
pub fn run(
    paths: &Paths,
    workspace: Option<PathBuf>,
    args: &CheckArgs,
) -> anyhow::Result<ExitStatus> {
    let choice = workspace_choice(workspace)?;
    let report = config::check(paths, &choice);
    // Servers of a broken configuration are not looked for: the errors come first.
    let missing = if report.errors.is_empty() {
        missing_commands(&report.effective.servers)
    } else {
        Vec::new()
    };
    let status = if !report.errors.is_empty() {
        ExitStatus::Usage
    } else if report.findings.is_empty() && missing.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Findings
    };
    if args.json {
        output::json(&serde_json::to_string_pretty(&report_json(
            &report, &missing, status,
        ))?);
        return Ok(status);
    }
    for d in report.errors.iter().chain(&report.findings) {
        output::block_severity(&d.to_string());
    }
    if !report.errors.is_empty() {
        output::line(&format!(
            "check failed: {}, {}",
            count(report.errors.len(), "error"),
            count(report.findings.len(), "warning")
        ));
        return Ok(status);
    }
    for line in summary(paths, &report, &missing) {
        output::line(&line);
    }
    Ok(status)
}

fn diagnostic_json(d: &Diagnostic) -> serde_json::Value {
    json!({
        "file": d.path,
        "line": d.position.map(|p| p.line),
        "col": d.position.map(|p| p.col),
        "severity": d.severity.to_string(),
        "message": d.message,
        "hint": d.hint,
    })
}

/// `check --json`: everything the text says, as one document.
fn report_json(
    report: &Report,
    missing: &[MissingCommand],
    status: ExitStatus,
) -> serde_json::Value {
    let effective = &report.effective;
    let start: Vec<&str> = effective
        .servers
        .iter()
        .map(|s| s.name.as_str())
        .filter(|name| !missing.iter().any(|m| m.server == *name))
        .collect();
    let skipped: Vec<_> = effective
        .skipped
        .iter()
        .map(|s| json!({"name": s.server, "layer": layer_name(s.layer), "reason": s.reason}))
        .collect();
    let workspace = report.workspace.as_ref().map(|ws| {
        json!({
            "root": ws.root,
            "file": ws.file,
            "trusted": ws.trust.is_trusted(),
            "trust": ws.file.as_ref().map(|file| trust_line(&ws.root, file, &ws.trust)),
        })
    });
    json!({
        "ok": status == ExitStatus::Success,
        "exit": match status {
            ExitStatus::Success => 0,
            ExitStatus::Findings => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Failure => 3,
            ExitStatus::Child(code) => code,
        },
        "files": report
            .files
            .iter()
            .map(|(layer, path)| json!({"layer": layer_name(*layer), "path": path}))
            .collect::<Vec<_>>(),
        "errors": report.errors.iter().map(diagnostic_json).collect::<Vec<_>>(),
        "findings": report.findings.iter().map(diagnostic_json).collect::<Vec<_>>(),
        "workspace": workspace,
        "servers": {"start": start, "missing_command": missing, "skipped": skipped},
    })
}

/// `--workspace DIR`, else discovery from the current directory.
pub(crate) fn workspace_choice(workspace: Option<PathBuf>) -> anyhow::Result<WorkspaceChoice> {
    Ok(match workspace {
        Some(dir) => WorkspaceChoice::Flag(dir),
        None => WorkspaceChoice::Cwd(std::env::current_dir()?),
    })
}

/// A server `serve` would try to start whose command cannot be run here.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct MissingCommand {
    pub server: String,
    pub command: String,
    /// What is wrong, for a person: which PATH was searched, or why the file cannot run.
    pub why: String,
}

/// The servers in `servers` whose command is missing or cannot be run, found the way
/// the launcher finds it (see [`crate::upstream::program_of`]).
pub(crate) fn missing_commands(servers: &[ServerConfig]) -> Vec<MissingCommand> {
    servers
        .iter()
        .filter_map(|config| {
            missing_command(config).map(|why| MissingCommand {
                server: config.name.to_string(),
                command: config.command.clone(),
                why,
            })
        })
        .collect()
}

/// Why `config`'s command cannot be run, or `None` when it can. A bare name names the
/// PATH searched and where that PATH came from: `serve` runs with the PATH its client
/// gives it, which is often not a login shell's.
pub(crate) fn missing_command(config: &ServerConfig) -> Option<String> {
    let error = crate::upstream::program_of(config).err()?;
    if config.command.contains('/') {
        return Some(format!(
            "command `{}` cannot be run: {error}",
            config.command
        ));
    }
    let (path, from) = crate::upstream::search_path(config);
    Some(format!(
        "command `{}` is not found in {from} (`{}`); give its full path in `command`, or set `env.PATH` for the server",
        config.command,
        path.to_string_lossy()
    ))
}

/// The configuration as `serve` would load it; when it does not load, its errors are
/// printed and the exit status is `Usage`.
pub(crate) fn load_or_report(
    paths: &Paths,
    choice: &WorkspaceChoice,
) -> Result<config::Effective, ExitStatus> {
    config::load(paths, choice).map_err(|e| {
        output::diag_block(&e.to_string());
        ExitStatus::Usage
    })
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn layer_name(layer: Layer) -> &'static str {
    match layer {
        Layer::Managed => "managed",
        Layer::User => "user",
        Layer::Workspace => "workspace",
    }
}

/// The lines printed after a check without errors.
fn summary(paths: &Paths, report: &Report, missing: &[MissingCommand]) -> Vec<String> {
    let mut lines = Vec::new();
    let files = if report.files.is_empty() {
        format!(
            "no configuration files (looked for `{}`)",
            paths.user_config().display()
        )
    } else {
        let list: Vec<_> = report
            .files
            .iter()
            .map(|(layer, path)| format!("{} `{}`", layer_name(*layer), path.display()))
            .collect();
        format!(
            "{} ({})",
            count(report.files.len(), "file"),
            list.join(", ")
        )
    };
    let effective = &report.effective;
    let warnings = if report.findings.is_empty() {
        String::new()
    } else {
        format!("; {}", count(report.findings.len(), "warning"))
    };
    let cannot = if missing.is_empty() {
        String::new()
    } else {
        format!(", {} cannot (command missing)", missing.len())
    };
    lines.push(format!(
        "checked {files}: {} will start{cannot}, {} skipped{warnings}",
        count(effective.servers.len() - missing.len(), "server"),
        effective.skipped.len(),
    ));
    for m in missing {
        lines.push(format!("  cannot start `{}`: {}", m.server, m.why));
    }
    if let Some(ws) = &report.workspace
        && let Some(file) = &ws.file
    {
        lines.push(trust_line(&ws.root, file, &ws.trust));
    }
    if !report.files.is_empty() {
        lines.push(policy_line(&effective.policy));
    }
    for s in &effective.skipped {
        lines.push(format!(
            "  skipped `{}` ({}): {}",
            s.server,
            layer_name(s.layer),
            s.reason
        ));
    }
    lines
}

/// One line on the policy: how many rules in which layers, labels, flow rules, and
/// the mode when it is not `enforce`.
pub(crate) fn policy_line(policy: &crate::policy::PolicySet) -> String {
    let per_layer: Vec<String> = policy
        .layers
        .iter()
        .filter(|l| !l.rules.is_empty())
        .map(|l| format!("{} {}", layer_name(l.layer), l.rules.len()))
        .collect();
    let rules = if per_layer.is_empty() {
        "no rules".to_owned()
    } else {
        format!(
            "{} ({})",
            count(policy.rule_count(), "rule"),
            per_layer.join(", ")
        )
    };
    let mut parts = vec![
        rules,
        count(policy.labels.names().len(), "label"),
        count(policy.flow_rules.len(), "flow rule"),
    ];
    let monitored: Vec<&str> = policy
        .layers
        .iter()
        .filter(|l| l.mode == crate::policy::PolicyMode::Monitor)
        .map(|l| layer_name(l.layer))
        .collect();
    if !monitored.is_empty() {
        parts.push(format!("monitor mode ({})", monitored.join(", ")));
    }
    format!(
        "policy: {}; `mcp-warden explain --effective` shows it",
        parts.join(", ")
    )
}

pub(crate) fn trust_line(root: &Path, file: &Path, trust: &TrustState) -> String {
    match trust {
        TrustState::Trusted => format!("workspace `{}` is trusted", root.display()),
        TrustState::NotTrusted => format!(
            "workspace `{}` is untrusted: its servers will not start; review `{}` and run `mcp-warden trust`",
            root.display(),
            file.display()
        ),
        TrustState::Changed { changed } => format!(
            "workspace `{}` is untrusted: {} changed since it was trusted; review and run `mcp-warden trust` again",
            root.display(),
            changed
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    }
}
