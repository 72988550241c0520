//! mcp-warden: a security gateway for the Model Context Protocol.
//!
//! One stdio MCP server that a client is configured with. It spawns the user's real
//! ("upstream") MCP servers as child processes, merges their tools under namespaced
//! names and passes every JSON-RPC message, both ways, through one filter stage.
//!
//! # Layout
//! The spine is the message path: client stdin → [`jsonrpc`] codec → [`session`]
//! (state, the wiring) → [`router`] (exposed name or URI → server; ids and progress
//! tokens remapped) → the
//! [`stages`] in order: classify, hold, decide, [`filter`], audit → [`upstream`] →
//! child process, and the same way back through [`downstream`], the only module that
//! writes to stdout in `serve`. `clippy.toml` checks the two invariants: stdout is
//! written only by the downstream writer and [`output`], processes are spawned only
//! in [`upstream`].
//!
//! - [`cli`]: argument parsing, one file per subcommand.
//! - [`config`]: the raw TOML mirror, validation, layers, variables, workspace discovery,
//!   and which workspaces the user trusts (`config::trust`).
//! - [`policy`]: the policy engine: per-layer rules, labels and flows, pure decisions.
//! - [`era`]: the two protocol eras (`initialize` vs per-request `_meta`) and the pure
//!   adapter between them, used at both edges of the session; the `requestState`
//!   envelope and `input_required` as data.
//! - [`router`]: merged catalogs, cursors, routing by exposed name and URI, the id and
//!   progress-token maps.
//! - [`stages`]: the typed view of a message and the stages over it (hold, decide,
//!   audit); the filter stage is [`filter`].
//! - [`upstream`]: server processes, a slot's states, and the handshake and paged
//!   listing that `serve` and the inventory of `pin`, `pins`, `scan`, `doctor` share.
//! - [`pinning`]: the lock file and what is pinned or held; it starts no process.
//! - [`paths`]: where the user and data directories are.
//! - [`names`]: how upstream tool names become exposed names.
//! - [`output`]: everything the non-`serve` commands print.
//! - [`logging`]: the operator's log file (never stdout).
//! - [`install`]: putting mcp-warden into an MCP client's file in place of its servers, and back.
//! - [`audit`]: the audit trail: typed, hash-chained records, one writer task per session.
//! - [`canonical`]: RFC 8785 canonical JSON and `sha256:` digests, for pins and audit records.
//! - [`time`]: UTC timestamps and dates, the crate's one calendar.
//! - [`file_error`]: the one "cannot read / write a path" error every subsystem carries.
//! - [`sandbox`]: the launcher every server runs under and the layers it applies.

// clippy.toml's `disallowed-methods`: the library's invariants (see the layout above).
#![warn(clippy::disallowed_methods)]

pub mod audit;
pub mod canonical;
pub mod cli;
pub mod config;
pub mod demo;
pub mod downstream;
pub mod durable;
pub mod era;
pub mod file_error;
pub mod filter;
pub mod install;
pub mod jsonrpc;
pub mod logging;
pub mod names;
pub mod output;
pub mod paths;
pub mod pinning;
pub mod policy;
pub mod resident;
pub mod router;
pub mod sandbox;
pub mod scan;
pub mod serve;
pub mod session;
pub mod stages;
pub mod stdio;
pub mod textclass;
pub mod time;
pub mod upstream;

use std::ffi::OsString;
use std::process::ExitCode;

/// How a command ended; mapped to the process exit code once, in [`run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: success.
    Success,
    /// 1: findings, a denial or a broken chain.
    Findings,
    /// 2: usage or configuration error.
    Usage,
    /// 3: a runtime failure (an upstream could not start, an I/O error).
    Failure,
    /// The launcher passes on its server's exit code as its own.
    Child(u8),
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Findings => ExitCode::from(1),
            ExitStatus::Usage => ExitCode::from(2),
            ExitStatus::Failure => ExitCode::from(3),
            ExitStatus::Child(code) => ExitCode::from(code),
        }
    }
}

/// Parses the arguments and runs the chosen command.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    cli::run(args).into()
}
