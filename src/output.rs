//! The one place, besides `downstream`, that prints. Commands other than `serve` write
//! their results to stdout and their diagnostics to stderr through these functions.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::IsTerminal;

/// Prints a line of a command's result to stdout.
pub fn line(text: &str) {
    println!("{text}");
}

/// Prints a diagnostic to stderr. In `serve` this is the only output a person sees.
pub fn diag(text: &str) {
    eprintln!("{text}");
}

/// Whether stdout is a terminal (colour and confirmations depend on it).
#[must_use]
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Whether stdin is a terminal, so a confirmation can be asked.
#[must_use]
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}
