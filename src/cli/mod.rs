//! Command-line parsing. Each subcommand lives in its own file; the doc comments on the
//! clap structs are the `--help` text.

mod audit;
mod check;
mod client_limits;
mod completions;
mod demo;
mod doctor;
mod explain;
mod init;
mod install;
mod inventory;
mod pin;
mod scan;
mod schema;
mod serve;
mod status;
mod trust;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::ExitStatus;
use crate::output;

/// A security gateway for the Model Context Protocol.
#[derive(Debug, Parser)]
#[command(name = "mcp-warden", version, about, propagate_version = true)]
pub struct Cli {
    /// The workspace root (default: the client's roots, else the current directory
    /// walking up to one that holds `mcp-warden.toml`).
    #[arg(long, global = true, value_name = "DIR")]
    pub workspace: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the stdio MCP server: what a client's config runs.
    Serve(serve::ServeArgs),
    /// Write a commented `mcp-warden.toml` for this workspace.
    Init(init::InitArgs),
    /// Validate every configuration layer.
    Check(check::CheckArgs),
    /// Explain which rule of which layer decides a call; `--effective`: the merged policy.
    Explain(explain::ExplainArgs),
    /// Trust this workspace at its current file digests.
    Trust(trust::TrustArgs),
    /// Withdraw trust from this workspace.
    Untrust(trust::UntrustArgs),
    /// Show every pinned item and what the servers offer now.
    Pins(pin::PinsArgs),
    /// Pin what the servers offer now, after showing it.
    Pin(pin::PinArgs),
    /// Remove pins.
    Unpin(pin::UnpinArgs),
    /// Start the servers and scan their definitions for signs of tool poisoning.
    Scan(scan::ScanArgs),
    /// Move a client's MCP servers into mcp-warden and put mcp-warden in their place.
    ///
    /// The client's stdio servers move into mcp-warden's user config (`env` values
    /// included) and one `mcp-warden` entry takes their place. The client's file is
    /// edited in place: remote (`url`) servers, entries mcp-warden cannot carry over,
    /// other settings, comments and formatting stay as they are, and the file is first
    /// copied to `<file>.mcp-warden-backup-<UTC timestamp>` (mode 0600; in the data
    /// dir's `backups/` when the file is inside a git work tree). Running it again changes
    /// nothing. Shows the change and asks; without a terminal, refuses unless `--yes`.
    Install(install::InstallArgs),
    /// Undo `install`: restore the client's file from its backup.
    ///
    /// Restores the newest backup byte for byte (refused when the file changed since
    /// install, unless `--force`; always refused when the backup is a link or not the
    /// bytes install saved) and takes the servers install added out of the user
    /// config, except those changed since or used by another install. Shows the change
    /// and asks; without a terminal, refuses unless `--yes`.
    Uninstall(install::UninstallArgs),
    /// Read the audit log (`audit verify`: check its hash chains).
    Audit(audit::AuditArgs),
    /// Tools granted but never called, with the rule lines to deny them.
    Usage(audit::UsageArgs),
    /// Near-misses: denied, held, flagged and redacted events by rule and tool.
    Review(audit::ReviewArgs),
    /// Sandbox layers this machine supports, what each server will get, clients found,
    /// and what is wrong (exit 1 when something is).
    Doctor(doctor::DoctorArgs),
    /// What `serve` would run here: the workspace chosen and why, its trust, each
    /// server with its pinned tools, and the policy; starts nothing.
    Status(status::StatusArgs),
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the JSON Schema of the configuration files, for editors to validate them.
    Schema(schema::SchemaArgs),
    /// Internal: the launcher each upstream server runs under (see `sandbox/launcher.rs`).
    #[command(name = "__launch", hide = true)]
    Launch(LaunchArgs),
    /// A narrated tour of what mcp-warden does, over built-in demo servers.
    Demo(demo::DemoArgs),
    /// Internal: one of the demo's built-in MCP servers.
    #[command(name = "__demo-server", hide = true)]
    DemoServer(demo::DemoServerArgs),
}

/// Arguments of the hidden launcher.
#[derive(Debug, clap::Args)]
pub struct LaunchArgs {
    /// mcp-warden's pid; nothing starts if it is already gone.
    #[arg(long)]
    parent: u32,
    /// The sandbox plan, JSON.
    #[arg(long)]
    sandbox: Option<String>,
    /// Apply the plan and report, without starting the server.
    #[arg(long)]
    report_only: bool,
    /// The server's absolute path, then its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<std::ffi::OsString>,
}

/// Parses `args` and runs the command; every error is reported here, once.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitStatus {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let status = if e.use_stderr() {
                ExitStatus::Usage
            } else {
                ExitStatus::Success
            };
            // clap formats help and usage itself, to the right stream.
            let _ = e.print();
            return status;
        }
    };
    // The launcher must stay single-threaded and touch nothing else: dispatch it first.
    if let Command::Launch(args) = &cli.command {
        return crate::sandbox::launcher::run(&crate::sandbox::launcher::Launch {
            parent: args.parent,
            sandbox: args.sandbox.as_deref(),
            report_only: args.report_only,
            command: &args.command,
        });
    }
    // Neither needs the user's paths: the demo runs in a home of its own.
    match &cli.command {
        Command::Demo(args) => return demo::run(args),
        Command::Completions(args) => return completions::run(args),
        Command::Schema(args) => return schema::run(args),
        Command::DemoServer(args) => return demo::run_server(args),
        _ => {}
    }
    let paths = crate::paths::Paths::from_env();
    let workspace = cli.workspace.clone();
    let result = match cli.command {
        Command::Launch(_)
        | Command::Demo(_)
        | Command::DemoServer(_)
        | Command::Completions(_)
        | Command::Schema(_) => {
            return ExitStatus::Usage;
        }
        Command::Serve(args) => serve::run(&paths, workspace, &args),
        Command::Init(args) => init::run(&paths, workspace, &args),
        Command::Check(args) => check::run(&paths, workspace, &args),
        Command::Explain(args) => explain::run(&paths, workspace, &args),
        Command::Trust(args) => trust::run_trust(&paths, workspace, &args),
        Command::Untrust(args) => trust::run_untrust(&paths, workspace, &args),
        Command::Pins(args) => pin::run_pins(&paths, workspace, &args),
        Command::Pin(args) => pin::run_pin(&paths, workspace, &args),
        Command::Unpin(args) => pin::run_unpin(&paths, workspace, &args),
        Command::Scan(args) => scan::run(&paths, workspace, &args),
        Command::Install(args) => install::run_install(&paths, workspace, &args),
        Command::Uninstall(args) => install::run_uninstall(&paths, workspace, &args),
        Command::Audit(args) => audit::run_audit(&paths, &args),
        Command::Usage(args) => audit::run_usage(&paths, &args),
        Command::Review(args) => audit::run_review(&paths, &args),
        Command::Doctor(args) => doctor::run(&paths, workspace, &args),
        Command::Status(args) => status::run(&paths, workspace, &args),
    };
    match result {
        Ok(status) => status,
        Err(e) => {
            output::diag(&format!("error: {e:#}"));
            ExitStatus::Failure
        }
    }
}
