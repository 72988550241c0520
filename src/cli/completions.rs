//! `mcp-warden completions SHELL`: a completion script for a shell, generated from the
//! same clap definitions that parse the command line, so it never lags behind them.

use clap::{Args, CommandFactory as _};
use clap_complete::Shell;

use crate::ExitStatus;
use crate::output;

/// Print a completion script for SHELL. Install it where your shell looks, e.g.
/// `mcp-warden completions bash > ~/.local/share/bash-completion/completions/mcp-warden`,
/// `mcp-warden completions zsh > "${fpath[1]}/_mcp-warden"`,
/// `mcp-warden completions fish > ~/.config/fish/completions/mcp-warden.fish`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Runs `completions`.
pub fn run(args: &CompletionsArgs) -> ExitStatus {
    let mut command = super::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "mcp-warden", &mut script);
    output::raw(&script);
    ExitStatus::Success
}
