//! `mcp-warden check`: validate every configuration layer.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::ExitStatus;
use crate::config::{self, Layer, Report, TrustState, WorkspaceChoice};
use crate::output;
use crate::paths::Paths;

/// Validate every configuration layer: the managed policy, the user config and the
/// workspace's `mcp-warden.toml`.
///
/// Errors are printed as `FILE:LINE:COL: error: MESSAGE` with a hint, and exit 2.
/// Risks in a valid configuration (a literal secret in `mcp-warden.toml`, an
/// unversioned package) are printed as warnings, and exit 1. Exit 0 when clean.
#[derive(Debug, Args)]
pub struct CheckArgs {}

/// Runs `check`.
pub fn run(
    paths: &Paths,
    workspace: Option<PathBuf>,
    _args: &CheckArgs,
) -> anyhow::Result<ExitStatus> {
    let choice = workspace_choice(workspace)?;
    let report = config::check(paths, &choice);
    for d in report.errors.iter().chain(&report.findings) {
        output::block(&d.to_string());
    }
    if !report.errors.is_empty() {
        output::line(&format!(
            "check failed: {}, {}",
            count(report.errors.len(), "error"),
            count(report.findings.len(), "warning")
        ));
        return Ok(ExitStatus::Usage);
    }
    for line in summary(paths, &report) {
        output::line(&line);
    }
    Ok(if report.findings.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Findings
    })
}

/// `--workspace DIR`, else discovery from the current directory.
pub(crate) fn workspace_choice(workspace: Option<PathBuf>) -> anyhow::Result<WorkspaceChoice> {
    Ok(match workspace {
        Some(dir) => WorkspaceChoice::Flag(dir),
        None => WorkspaceChoice::Cwd(std::env::current_dir()?),
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
fn summary(paths: &Paths, report: &Report) -> Vec<String> {
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
    lines.push(format!(
        "checked {files}: {} will start, {} skipped{warnings}",
        count(effective.servers.len(), "server"),
        effective.skipped.len(),
    ));
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
fn policy_line(policy: &crate::policy::PolicySet) -> String {
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

fn trust_line(root: &Path, file: &Path, trust: &TrustState) -> String {
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
