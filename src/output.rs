//! The one place, besides `downstream`, that prints. Commands other than `serve` write
//! their results to stdout and their diagnostics to stderr through these functions.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::IsTerminal;

/// Prints a line of a command's result to stdout. A reader that went away (`| head`)
/// is not an error worth a panic: the rest is dropped.
// The output module: what the non-`serve` commands print (clippy.toml).
#[allow(clippy::disallowed_methods)]
pub fn line(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// Prints a diagnostic to stderr. In `serve` this is the only output a person sees.
pub fn diag(text: &str) {
    eprintln!("{text}");
}

/// Whether stdout is a terminal (colour and confirmations depend on it).
#[must_use]
// Only asks what stdout is; writes nothing.
#[allow(clippy::disallowed_methods)]
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Whether stdin is a terminal, so a confirmation can be asked.
#[must_use]
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks a question on stderr, without a newline, so the answer is typed after it.
pub fn prompt(text: &str) {
    use std::io::Write as _;
    eprint!("{text}");
    let _ = std::io::stderr().flush();
}

/// Asks `question` on the terminal and reads the answer: `y` or `yes` is a yes.
pub fn confirm(question: &str) -> std::io::Result<bool> {
    prompt(&format!("{question} [y/N] "));
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
