//! The one place, besides `downstream`, that prints. Commands other than `serve` write
//! their results to stdout and their diagnostics to stderr through these functions.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::IsTerminal;

/// Prints a line of a command's result to stdout. A reader that went away (`| head`)
/// is not an error worth a panic: the rest is dropped.
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

/// What a painted word means; [`paint`] picks the colour, so commands say what a word
/// is, never which escape sequence it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Something is wrong: an error, a missing layer.
    Bad,
    /// Worth a look: a warning, a finding.
    Warn,
    /// As it should be.
    Good,
    /// A section heading.
    Heading,
}

/// Whether stdout gets colour: `CLICOLOR_FORCE` set (not `0`) forces it; otherwise a
/// terminal, `NO_COLOR` unset or empty (<https://no-color.org>), and a `TERM` other
/// than `dumb`. Decided once per process.
#[must_use]
pub fn colour() -> bool {
    static COLOUR: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *COLOUR.get_or_init(|| {
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        if set("CLICOLOR_FORCE") && std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
            return true;
        }
        stdout_is_terminal()
            && !set("NO_COLOR")
            && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
    })
}

/// `text` in the colour of `tone` when stdout gets colour (see [`colour`]), else as it is.
#[must_use]
pub fn paint(tone: Tone, text: &str) -> String {
    if !colour() {
        return text.to_owned();
    }
    let code = match tone {
        Tone::Bad => "1;31",
        Tone::Warn => "33",
        Tone::Good => "32",
        Tone::Heading => "1",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// A diagnostic line (`FILE:LINE:COL: error: …`, `…: warning: …`) with its severity
/// painted; the rest of the text is left as it is.
#[must_use]
pub fn paint_severity(text: &str) -> String {
    if !colour() {
        return text.to_owned();
    }
    for (word, tone) in [(": error: ", Tone::Bad), (": warning: ", Tone::Warn)] {
        if let Some(at) = text.find(word) {
            let name = &word[2..word.len() - 2];
            return format!(
                "{}: {}: {}",
                &text[..at],
                paint(tone, name),
                &text[at + word.len()..]
            );
        }
    }
    text.to_owned()
}

/// Writes bytes a command produced whole (a completion script) to stdout, as [`line`]
/// does: a reader that went away is not an error.
pub fn raw(bytes: &[u8]) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}
