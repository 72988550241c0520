//! `mcp-warden status`: what `serve` would run here, read from the configuration and
//! the lock files without starting anything: the workspace chosen and why, its trust,
//! each server (its layer, command, pinned items, whether it can start), the servers
//! left out, pinning and the policy.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{Value, json};

use crate::ExitStatus;
use crate::config::{self, Effective, ServerConfig, TrustState, WorkspaceChoice};
use crate::output::{self, Painted, Tone, paint};
use crate::paths::Paths;
use crate::pinning::lock::{Kind, LockFile, identity_digest};

/// Show what `serve` would run here: the workspace chosen and why, its trust, each
/// server with its pinned tools and whether its command is found, the servers left
/// out, pinning and the policy. Starts nothing (`mcp-warden pins` lists what the
/// servers offer now).
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One server as `serve` would start it.
struct ServerStatus<'a> {
    config: &'a ServerConfig,
    tools: usize,
    prompts: usize,
    templates: usize,
    /// Pinned, but under another command or arguments: all its items are held.
    identity_changed: bool,
    missing: Option<String>,
}

/// Runs `status`.
pub fn run(
    paths: &Paths,
    workspace: Option<PathBuf>,
    args: &StatusArgs,
) -> anyhow::Result<ExitStatus> {
    let choice = super::check::workspace_choice(workspace)?;
    let effective = match super::check::load_or_report(paths, &choice) {
        Ok(effective) => effective,
        Err(status) => return Ok(status),
    };
    let lock = super::inventory::pinned(paths, &effective);
    let servers: Vec<ServerStatus<'_>> = effective
        .servers
        .iter()
        .map(|config| server_status(config, &lock))
        .collect();
    let why = why_this_workspace(&choice, &effective, &paths.home);
    // The merged tool count against each client that runs mcp-warden (issue 16 item 8).
    let exe = std::env::current_exe()?;
    let clients = crate::install::survey::survey(
        &crate::install::client::Environment::from_env(&paths.home),
        effective.workspace.as_ref().map(|w| w.root.as_path()),
        &exe.to_string_lossy(),
    );
    let tools: usize = servers.iter().map(|s| s.tools).sum();
    let fits = super::client_limits::tool_fits(&clients, tools);
    if args.json {
        let mut doc = status_json(paths, &effective, &servers, &why);
        doc["tools"] = json!(tools);
        doc["tool_limits"] = json!(fits);
        output::json(&serde_json::to_string_pretty(&doc)?);
    } else {
        print_text(paths, &effective, &servers, &why);
        output::painted(&paint(Tone::Heading, "Tools").plain(&format!(
            "      {tools} pinned in all{}",
            if fits.is_empty() {
                ""
            } else {
                "; for the clients that run mcp-warden:"
            }
        )));
        for fit in &fits {
            let line = Painted::new().plain("  ");
            output::painted(&if fit.fits {
                line.plain(&fit.describe())
            } else {
                line.paint(Tone::Bad, &fit.describe())
            });
        }
    }
    Ok(ExitStatus::Success)
}

fn server_status<'a>(config: &'a ServerConfig, lock: &LockFile) -> ServerStatus<'a> {
    let name = config.name.as_str();
    let count = |kind: Kind| {
        lock.items
            .keys()
            .filter(|k| k.server == name && k.kind == kind)
            .count()
    };
    ServerStatus {
        config,
        tools: count(Kind::Tool),
        prompts: count(Kind::Prompt),
        templates: count(Kind::ResourceTemplate),
        identity_changed: lock.servers.get(name).is_some_and(|pin| {
            pin.identity != identity_digest(&config.raw_command, &config.raw_args)
        }),
        missing: super::check::missing_command(config),
    }
}

/// Why this workspace (or none) was chosen, as SPEC "Workspace discovery" decides.
fn why_this_workspace(choice: &WorkspaceChoice, effective: &Effective, home: &Path) -> String {
    let found = effective.workspace.as_ref();
    match (choice, found) {
        (WorkspaceChoice::Flag(dir), _) => format!("given with `--workspace {}`", dir.display()),
        (WorkspaceChoice::Cwd(cwd) | WorkspaceChoice::Roots { cwd, .. }, Some(ws)) => {
            if ws.root == *cwd {
                "`mcp-warden.toml` in the current directory".to_owned()
            } else {
                format!(
                    "the nearest `mcp-warden.toml` walking up from the current directory `{}`",
                    cwd.display()
                )
            }
        }
        (WorkspaceChoice::Cwd(cwd) | WorkspaceChoice::Roots { cwd, .. }, None) => format!(
            "no `mcp-warden.toml` in `{}` or above it (up to `{}`, which is never a workspace): user-level servers and policy only",
            cwd.display(),
            home.display()
        ),
    }
}

fn pinned_summary(s: &ServerStatus<'_>) -> String {
    let mut parts = vec![count(s.tools, "tool")];
    if s.prompts > 0 {
        parts.push(count(s.prompts, "prompt"));
    }
    if s.templates > 0 {
        parts.push(count(s.templates, "resource template"));
    }
    format!("{} pinned", parts.join(", "))
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn layer(l: config::Layer) -> &'static str {
    match l {
        config::Layer::Managed => "managed",
        config::Layer::User => "user",
        config::Layer::Workspace => "workspace",
    }
}

/// A server's lines in the text: name, layer, command; its names and pins; what
/// stops it.
fn server_lines(s: &ServerStatus<'_>, strict: bool) -> Vec<Painted> {
    let ns = s.config.namespace.as_str();
    let mut lines = vec![Painted::new().plain(&format!(
        "  {:<12} {:<9}  {}",
        s.config.name.as_str(),
        layer(s.config.layer),
        std::iter::once(s.config.raw_command.as_str())
            .chain(s.config.raw_args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    ))];
    let mut pins = Painted::new().plain(&format!(
        "               names `{}`; {}",
        if ns.is_empty() {
            "*".to_owned()
        } else {
            format!("{ns}__*")
        },
        pinned_summary(s)
    ));
    if strict && s.tools + s.prompts + s.templates == 0 {
        pins = pins.paint(
            Tone::Warn,
            ": everything it offers is held until `mcp-warden pin`",
        );
    }
    if s.identity_changed {
        pins = pins.paint(
            Tone::Warn,
            "; its command changed since it was pinned: all its items are held",
        );
    }
    lines.push(pins);
    if let Some(why) = &s.missing {
        lines.push(
            Painted::new()
                .plain("               ")
                .paint(Tone::Bad, &format!("cannot start: {why}")),
        );
    }
    lines
}

fn print_text(paths: &Paths, effective: &Effective, servers: &[ServerStatus<'_>], why: &str) {
    let heading = |t: &str| paint(Tone::Heading, t);
    match &effective.workspace {
        Some(ws) => {
            output::painted(
                &heading("Workspace").plain(&format!("  `{}` ({why})", ws.root.display())),
            );
            let trust = match (&ws.file, &ws.trust) {
                (None, _) => Painted::new().plain("no `mcp-warden.toml` there: nothing to trust"),
                (Some(_), TrustState::Trusted) => paint(Tone::Good, "trusted"),
                (Some(file), trust) => {
                    paint(Tone::Warn, &super::check::trust_line(&ws.root, file, trust))
                }
            };
            output::painted(&Painted::new().plain("           ").then(&trust));
        }
        None => output::painted(&heading("Workspace").plain(&format!("  none: {why}"))),
    }
    output::painted(&heading("Config").plain(&format!(
        "    user config `{}`",
        paths.user_config().display()
    )));
    output::line("");
    let cannot = servers.iter().filter(|s| s.missing.is_some()).count();
    output::painted(&heading("Servers").plain(&format!(
        "    {} will start{}, {} skipped",
        count(servers.len() - cannot, "server"),
        if cannot == 0 {
            String::new()
        } else {
            format!(", {cannot} cannot (command missing)")
        },
        effective.skipped.len()
    )));
    let strict = effective.pinning.mode != config::PinningMode::Off;
    for s in servers {
        for line in server_lines(s, strict) {
            output::painted(&line);
        }
    }
    for s in &effective.skipped {
        output::line(&format!(
            "  {:<12} {:<9}  skipped: {}",
            s.server,
            layer(s.layer),
            s.reason
        ));
    }
    output::line("");
    output::painted(&heading("Pinning").plain(&format!(
        "    {} ({})",
        effective.pinning.mode,
        match effective.pinning.mode {
            config::PinningMode::Strict => "new and changed items are held until `mcp-warden pin`",
            config::PinningMode::Tofu =>
                "new items are pinned on first sight; changed ones are held",
            config::PinningMode::Off => "nothing is held",
        }
    )));
    output::painted(&heading("Policy").plain(&format!("     {}", policy(effective))));
    output::painted(&heading("Audit").plain(&format!("      {}", audit(paths, effective))));
}

/// Where the audit trail goes: the local files, and the collector when one is set.
fn audit(paths: &Paths, effective: &Effective) -> String {
    let local = format!("`{}`", crate::audit::audit_dir(paths).display());
    match &effective.audit_syslog {
        Some(target) => format!(
            "{local}, and each record to syslog `{}` (at most {} waiting while it is away)",
            target.address, target.buffer
        ),
        None => local,
    }
}

/// `check`'s policy line, without its `policy: ` label.
fn policy(effective: &Effective) -> String {
    let line = super::check::policy_line(&effective.policy);
    line.strip_prefix("policy: ").unwrap_or(&line).to_owned()
}

fn status_json(
    paths: &Paths,
    effective: &Effective,
    servers: &[ServerStatus<'_>],
    why: &str,
) -> Value {
    let workspace = effective.workspace.as_ref().map(|ws| {
        json!({
            "root": ws.root,
            "file": ws.file,
            "trusted": ws.trust.is_trusted(),
            "trust": match (&ws.file, &ws.trust) {
                (None, _) => Value::Null,
                (Some(file), trust) => json!(super::check::trust_line(&ws.root, file, trust)),
            },
        })
    });
    let servers: Vec<Value> = servers
        .iter()
        .map(|s| {
            json!({
                "name": s.config.name.as_str(),
                "layer": layer(s.config.layer),
                "command": s.config.raw_command,
                "args": s.config.raw_args,
                "namespace": s.config.namespace.as_str(),
                "pinned": {"tools": s.tools, "prompts": s.prompts, "resource_templates": s.templates},
                "identity_changed": s.identity_changed,
                "missing_command": s.missing,
            })
        })
        .collect();
    let skipped: Vec<Value> = effective
        .skipped
        .iter()
        .map(|s| json!({"name": s.server, "layer": layer(s.layer), "reason": s.reason}))
        .collect();
    json!({
        "workspace": workspace,
        "why": why,
        "servers": servers,
        "skipped": skipped,
        "pinning": effective.pinning.mode.as_str(),
        "policy": policy(effective),
        "audit": {
            "dir": crate::audit::audit_dir(paths),
            "syslog": effective.audit_syslog.as_ref().map(|t| t.address.to_string()),
        },
    })
}
