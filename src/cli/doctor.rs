//! `mcp-warden doctor`: what this machine's kernel offers the sandbox, what each
//! configured server will really get (its launcher applies the real plan and reports,
//! without starting the server), the traps on the way (a uid that cannot reach a
//! server's install, a write path it cannot write), and which MCP clients are
//! installed and whether each runs its servers through mcp-warden.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;
use serde_json::json;

use super::client_limits;
use crate::ExitStatus;
use crate::config::{self, Effective, ServerConfig};
use crate::install::client::Environment;
use crate::install::survey::{self, ClientStatus};
use crate::output::{self, Painted, Tone, paint};
use crate::paths::Paths;
use crate::sandbox::diagnose;
use crate::sandbox::presets::SYSTEM_READ;
use crate::sandbox::report::{Report, State};
use crate::sandbox::support;
use crate::sandbox::uid::{AUTO_UID_BASE, AUTO_UID_SPAN};
use crate::upstream::{Spawner, probe_sandbox};

/// Show which sandbox layers this machine supports, what each configured server
/// will actually get, the clients found and whether each points at mcp-warden, and
/// what is wrong. Exit 1 when something is.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What the kernel offers.
#[derive(Debug, Serialize)]
struct Machine {
    kernel: String,
    arch: &'static str,
    root: bool,
    /// The Landlock ABI, `None` without Landlock.
    landlock_abi: Option<u8>,
    user_namespaces: bool,
}

/// One server's sandbox as it will be.
#[derive(Debug, Serialize)]
struct ServerCheck {
    name: String,
    command: String,
    runtime: Option<String>,
    user: String,
    report: Option<Report>,
    /// Every path it may read beyond the system directories everyone gets
    /// ([`SYSTEM_READ`]), and every path it may write: named, not counted, so that a
    /// server that fails to write knows what it may.
    read: Vec<PathBuf>,
    write: Vec<PathBuf>,
    /// Which protocol era it speaks, at which version, and who it says it is
    /// (`modern 2026-07-28 (name 1.0)`); why it could not be asked, when it could not.
    protocol: Option<String>,
    /// What is wrong with it, for a person.
    wrong: Vec<String>,
}

/// Runs `doctor`.
pub fn run(
    paths: &Paths,
    workspace: Option<PathBuf>,
    args: &DoctorArgs,
) -> anyhow::Result<ExitStatus> {
    let machine = machine();
    let choice = super::check::workspace_choice(workspace)?;
    let (effective, config_error) = match config::load(paths, &choice) {
        Ok(effective) => (Some(effective), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let servers = effective
        .as_ref()
        .map(|e| check_servers(paths, e))
        .unwrap_or_default();
    let root = effective
        .as_ref()
        .and_then(|e| e.workspace.as_ref())
        .map(|w| w.root.clone());
    let exe = std::env::current_exe()?;
    let clients = survey::survey(
        &Environment::from_env(&paths.home),
        root.as_deref(),
        &exe.to_string_lossy(),
    );
    let mut wrong: Vec<String> = config_error.into_iter().collect();
    // An untrusted workspace starts none of its servers: that is something wrong for
    // whoever expects them, though nothing is broken.
    if let Some(ws) = effective.as_ref().and_then(|e| e.workspace.as_ref())
        && let Some(file) = &ws.file
        && !ws.trust.is_trusted()
    {
        wrong.push(super::check::trust_line(&ws.root, file, &ws.trust));
    }
    // The trust boundary (issue 14): an ignored `~/mcp-warden.toml`, and servers whose
    // `cwd` in the workspace would let a repository's code run inside them.
    wrong.extend(config::layers::stray_home_file(paths).map(|d| d.to_string()));
    if let Some(effective) = &effective {
        wrong.extend(code_from_the_workspace(effective));
    }
    for server in &servers {
        wrong.extend(
            server
                .wrong
                .iter()
                .map(|w| format!("server `{}`: {w}", server.name)),
        );
    }
    wrong.extend(
        clients
            .iter()
            .filter(|c| c.is_problem())
            .map(|c| c.describe(Some(&paths.home))),
    );
    // The clients' real limits (issue 16 items 7 and 8): the merged tool count against
    // each one's cap, and the exposed names against each one's name budget.
    let exposed = effective
        .as_ref()
        .map(|e| client_limits::exposed_tools(paths, e))
        .unwrap_or_default();
    let tool_fits = client_limits::tool_fits(&clients, exposed.len());
    let misfits = client_limits::name_misfits(&clients, &exposed);
    wrong.extend(
        tool_fits
            .iter()
            .filter(|f| !f.fits)
            .map(client_limits::ToolFit::describe),
    );
    wrong.extend(misfits.iter().map(client_limits::NameMisfit::describe));
    if args.json {
        let doc = json!({
            "machine": machine,
            "servers": servers,
            "clients": clients,
            "tools": exposed.len(),
            "tool_limits": tool_fits,
            "name_budgets": misfits,
            "wrong": wrong,
        });
        output::json(&serde_json::to_string_pretty(&doc)?);
    } else {
        print_text(
            &machine,
            &servers,
            (&clients, &tool_fits),
            &wrong,
            &paths.home,
        );
    }
    Ok(if wrong.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Findings
    })
}

/// Servers that start in the workspace with a command that resolves code from there.
fn code_from_the_workspace(effective: &Effective) -> Vec<String> {
    let Some(root) = effective.workspace.as_ref().map(|w| &w.root) else {
        return Vec::new();
    };
    effective
        .servers
        .iter()
        .filter(|s| s.cwd.as_ref().is_some_and(|c| c.starts_with(root)))
        .filter_map(|s| {
            let program = config::findings::resolves_code_from_cwd(&s.command)?;
            Some(format!(
                "server `{}`: runs `{program}` with its `cwd` in the workspace, where `{program}` \
                 resolves code: a repository's `node_modules/`, Python package or `.env` would \
                 run inside it; leave `cwd` out unless it needs it",
                s.name
            ))
        })
        .collect()
}

fn machine() -> Machine {
    let kernel = nix::sys::utsname::uname().map_or_else(
        |_| "unknown".to_owned(),
        |u| u.release().to_string_lossy().into_owned(),
    );
    Machine {
        kernel,
        arch: std::env::consts::ARCH,
        root: nix::unistd::geteuid().is_root(),
        landlock_abi: support::landlock_abi().map(support::abi_number),
        user_namespaces: support::user_namespaces_allowed(),
    }
}

fn check_servers(paths: &Paths, effective: &Effective) -> Vec<ServerCheck> {
    let spawner = Spawner {
        state_dir: paths.data_dir.clone(),
        launcher: std::env::current_exe().ok(),
    };
    let root = effective.workspace.as_ref().map(|w| w.root.clone());
    let total = effective.servers.len();
    let mut progress = output::Progress::new(super::inventory::PROGRESS_DELAY);
    let checks = (1..)
        .zip(&effective.servers)
        .map(|(n, config)| {
            // The launcher's probe is quick, but a terminal still says which server
            // it is at, so a stuck probe names its server (issue 16 item 5).
            progress.show(&format!(
                "mcp-warden: checking server `{}` ({n} of {total})",
                config.name
            ));
            let mut check = check_server(config, &spawner, root.as_deref());
            if check.wrong.is_empty() {
                ask_protocol(&mut check, config, &spawner, root.as_deref());
            }
            check
        })
        .collect();
    progress.clear();
    checks
}

/// Starts the server once more, as `pin` does (the era probe, the handshake of a
/// legacy server, its listings), to say which era and version it speaks; a server
/// that refuses every version mcp-warden speaks is something wrong (issue 15 item 8).
fn ask_protocol(
    check: &mut ServerCheck,
    config: &ServerConfig,
    spawner: &Spawner,
    root: Option<&Path>,
) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let inventories = runtime.block_on(crate::upstream::inventory::collect(
        std::slice::from_ref(config),
        spawner,
        root,
        &mut |_| {},
    ));
    let Some(inventory) = inventories.into_iter().next() else {
        return;
    };
    check.protocol = Some(match inventory.outcome {
        Ok(listing) => {
            let who = listing
                .server_info
                .map_or_else(String::new, |info| format!(" ({info})"));
            format!("{} {}{who}", listing.era.name(), listing.era.version())
        }
        Err(why) if why.starts_with("refuses mcp-warden") => {
            check.wrong.push(why.clone());
            why
        }
        Err(why) => format!("not known: {why}"),
    });
}

/// What `doctor` finds wrong with one server, for a person (empty when nothing). The
/// other commands that start servers call it for a server that failed to start or
/// list, so they explain the failure as `doctor` does, fix included.
pub(crate) fn diagnose(
    config: &ServerConfig,
    spawner: &Spawner,
    root: Option<&Path>,
) -> Vec<String> {
    check_server(config, spawner, root).wrong
}

fn check_server(config: &ServerConfig, spawner: &Spawner, root: Option<&Path>) -> ServerCheck {
    let mut check = ServerCheck {
        name: config.name.to_string(),
        command: config.command.clone(),
        runtime: None,
        user: String::new(),
        report: None,
        read: Vec::new(),
        write: Vec::new(),
        protocol: None,
        wrong: Vec::new(),
    };
    if let Some(why) = super::check::missing_command(config) {
        check.wrong.push(format!("cannot start: {why}"));
        return check;
    }
    let probe = match probe_sandbox(config, spawner, root) {
        Ok(probe) => probe,
        Err(e) => {
            check.wrong.push(format!("cannot start: {e}"));
            return check;
        }
    };
    check.runtime.clone_from(&probe.plan.runtime);
    check.read = probe
        .plan
        .read
        .iter()
        .filter(|p| !SYSTEM_READ.iter().any(|s| p.starts_with(s)))
        .cloned()
        .collect();
    check.write.clone_from(&probe.plan.write);
    check.user.clone_from(&probe.plan.user_note);
    // Unresolved (it was found a moment ago): judged as a script, as before.
    let program = crate::upstream::program_of(config).unwrap_or_default();
    check
        .wrong
        .extend(diagnose::traps(&config.sandboxed(&program), &probe.plan));
    match probe.report {
        Ok(report) => {
            if let Some(why) = &report.refused {
                check.wrong.push(format!("will not start: {why}"));
            } else {
                check.wrong.extend(
                    report
                        .missing()
                        .map(|l| format!("layer `{}` missing: {}", l.layer.name(), l.detail)),
                );
            }
            check.report = Some(report);
        }
        Err(why) => check
            .wrong
            .push(format!("the sandbox could not be tried: {why}")),
    }
    check
}

/// One server's part of the text: its command, user, layers, paths and problems.
fn print_server(server: &ServerCheck) {
    output::line(&format!(
        "  {}  ({}{})",
        server.name,
        server.command,
        server
            .runtime
            .as_deref()
            .map_or_else(String::new, |r| format!(", preset {r}"))
    ));
    if !server.user.is_empty() {
        output::line(&format!("    user            {}", server.user));
    }
    if let Some(protocol) = &server.protocol {
        output::line(&format!("    protocol        {protocol}"));
    }
    if let Some(report) = &server.report {
        for layer in &report.layers {
            let (state, tone) = match layer.state {
                State::Applied => ("yes", Tone::Good),
                State::Missing => ("MISSING", Tone::Bad),
                State::Off => ("off", Tone::Warn),
            };
            output::painted(
                &Painted::new()
                    .plain(&format!("    {:<15} ", layer.layer.name()))
                    .paint(tone, &format!("{state:<8}"))
                    .plain(&layer.detail),
            );
        }
    }
    let quoted = |paths: &[PathBuf]| {
        paths
            .iter()
            .map(|p| format!("`{}`", p.display()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !server.write.is_empty() {
        output::line(&format!("    writes          {}", quoted(&server.write)));
    }
    if !server.read.is_empty() {
        output::line(&format!(
            "    reads           {} (and the system directories)",
            quoted(&server.read)
        ));
    }
    for w in &server.wrong {
        output::painted(
            &Painted::new()
                .plain("    ")
                .paint(Tone::Warn, &format!("! {w}")),
        );
    }
}

fn print_text(
    machine: &Machine,
    servers: &[ServerCheck],
    (clients, tool_fits): (&[ClientStatus], &[client_limits::ToolFit]),
    wrong: &[String],
    home: &Path,
) {
    output::painted(&paint(Tone::Heading, "Machine"));
    output::line(&format!(
        "  kernel            {} ({})",
        machine.kernel, machine.arch
    ));
    output::line(&format!(
        "  running as        {}",
        if machine.root {
            format!(
                "root: each server runs as a uid of its own (`user = \"auto\"`: {AUTO_UID_BASE}..{})",
                AUTO_UID_BASE + AUTO_UID_SPAN - 1
            )
        } else {
            "a user: servers run as this user".to_owned()
        }
    ));
    output::line(&format!(
        "  landlock          {}",
        match machine.landlock_abi {
            Some(n) if n >= 6 => format!("ABI {n}: file system, TCP rules, scoping"),
            Some(n) if n >= 4 => format!("ABI {n}: file system, TCP rules (no scoping)"),
            Some(n) => format!("ABI {n}: file system only (no TCP rules)"),
            None => "not available: no file-system layer".to_owned(),
        }
    ));
    output::line(&format!(
        "  namespaces        {}",
        if machine.root {
            "PID and network namespaces (as root)"
        } else if machine.user_namespaces {
            "PID and network namespaces inside a user namespace"
        } else {
            "none: unprivileged user namespaces are off (subreaper; Landlock and seccomp for the network)"
        }
    ));
    output::line("");
    output::painted(&paint(Tone::Heading, "Servers"));
    if servers.is_empty() {
        output::line("  none configured (or none this workspace may start)");
    }
    for server in servers {
        print_server(server);
    }
    output::line("");
    output::painted(&paint(Tone::Heading, "Clients"));
    let mut shown = 0;
    for client in clients.iter().filter(|c| c.is_installed()) {
        output::line(&format!("  {}", client.describe(Some(home))));
        shown += 1;
    }
    if shown == 0 {
        output::line("  none of the clients mcp-warden knows is installed");
    }
    if !tool_fits.is_empty() {
        output::line("");
        output::painted(&paint(Tone::Heading, "Tool limits"));
        for fit in tool_fits {
            let line = Painted::new().plain("  ");
            output::painted(&if fit.fits {
                line.plain(&fit.describe())
            } else {
                line.paint(Tone::Bad, &fit.describe())
            });
        }
    }
    output::line("");
    if wrong.is_empty() {
        output::painted(&paint(Tone::Good, "Nothing wrong found."));
    } else {
        output::painted(&paint(
            Tone::Bad,
            &format!("{} thing(s) wrong:", wrong.len()),
        ));
        for w in wrong {
            output::line(&format!("  - {w}"));
        }
    }
}
