//! `mcp-warden demo` and the hidden `__demo-server` it runs its servers with.

use std::path::PathBuf;

use clap::Args;

use crate::ExitStatus;
use crate::demo::servers::{self, Kind};
use crate::output;

/// A narrated tour: `serve` over built-in demo servers, in a throw-away home.
///
/// Shows the merged tool list, a poisoned tool held by the scan, a secret redacted
/// from a result, a private-then-untrusted-then-send sequence denied, a rug pull
/// caught by the pin, and the audit lines that recorded it all. Needs nothing but
/// this binary and touches nothing of yours.
#[derive(Debug, Args)]
pub struct DemoArgs {}

/// Arguments of the hidden demo server.
#[derive(Debug, Args)]
pub struct DemoServerArgs {
    /// Which server.
    #[arg(value_enum)]
    kind: Kind,
    /// Remembers the web server's rug pull across restarts.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
}

/// Runs `demo`.
pub fn run(_args: &DemoArgs) -> ExitStatus {
    match crate::demo::run() {
        Ok(()) => ExitStatus::Success,
        Err(_) if crate::demo::cleanup::is_interrupted() => {
            output::diag("demo interrupted; its temporary files are removed");
            // As shells report a process ended by Ctrl-C.
            ExitStatus::Child(crate::demo::cleanup::INTERRUPTED_EXIT)
        }
        Err(e) => {
            output::diag(&format!("demo failed: {e:#}"));
            ExitStatus::Failure
        }
    }
}

/// Runs `__demo-server`.
pub fn run_server(args: &DemoServerArgs) -> ExitStatus {
    match servers::run(args.kind, args.state.as_deref()) {
        Ok(()) => ExitStatus::Success,
        Err(e) => {
            output::diag(&format!("{}: {e}", args.kind.name()));
            ExitStatus::Failure
        }
    }
}
