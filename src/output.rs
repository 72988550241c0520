//! The one place, besides `downstream`, that prints. Commands other than `serve` write
//! their results to stdout and their diagnostics to stderr through these functions.
//!
//! **Everything printed here is escaped** (SPEC "What reaches a person's terminal"):
//! text that a server, a repository file, a client file or the audit trail supplies is
//! formatted into what these functions print, so the escaping lives here, once, and a
//! print site cannot forget it. A terminal never receives a control character it would
//! act on (ESC sequences, C1 controls, a bare CR that rewrites the line) or a character
//! a reader cannot see (bidi controls, invisible and tag characters): each is shown as
//! a visible escape (`\u{1b}`, `\r`, `\u{202e}`), so a person sees that something was
//! there. Three shapes of output, each with its own rule:
//!
//! - [`line`] and [`diag`]: one line. Newline and tab are escaped too, so a string
//!   from outside cannot start a line of its own that looks like ours.
//! - [`block`] and [`diag_block`]: multi-line text that mcp-warden laid out itself
//!   (a diff, a diagnostic with its source line). Newline and tab are kept; the rest is
//!   escaped as in a line. Build such text from lines whose outside parts went through
//!   [`one_line`].
//! - [`json`]: a JSON document mcp-warden serialized. Its strings are escaped the JSON
//!   way (`\u202e`), so the document stays valid and means the same.
//!
//! Must never: print unescaped text, or decide what is suspicious (that is
//! [`crate::textclass`] and the scan).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::borrow::Cow;
use std::io::{IsTerminal, Write as _};

use crate::textclass;

/// Which characters a print keeps as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// One line: newline and tab are escaped as well.
    Line,
    /// Our own multi-line layout: newline and tab are kept.
    Block,
}

/// `text` as a line prints it: every control character (newline and tab included),
/// ESC sequence, C1 control, bidi control and invisible or tag character written as a
/// visible escape. For putting outside text into a [`block`] or a prompt.
#[must_use]
pub fn one_line(text: &str) -> Cow<'_, str> {
    textclass::escape_hidden(text)
}

/// `text` with everything a terminal would act on or a reader could not see escaped;
/// newline and tab kept when `shape` is [`Shape::Block`]. Borrows when nothing is.
fn escape(text: &str, shape: Shape) -> Cow<'_, str> {
    if shape == Shape::Line {
        return one_line(text);
    }
    let needs = |c: char| textclass::needs_escape(c) && !matches!(c, '\n' | '\t');
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs(c) {
            textclass::push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A serialized JSON document with every character [`textclass::needs_escape`] names,
/// except the newlines of its layout, written as a JSON `\uXXXX` escape (a UTF-16
/// surrogate pair above U+FFFF). `serde_json` already escapes C0 controls inside
/// strings, so a raw newline is always layout; C1 controls, DEL, bidi and invisible
/// characters are what it leaves raw, and they can only stand inside strings, where a
/// `\u` escape means the same character.
#[must_use]
pub fn json_text(text: &str) -> Cow<'_, str> {
    use std::fmt::Write as _;
    let needs = |c: char| c != '\n' && textclass::needs_escape(c);
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs(c) {
            let mut units = [0_u16; 2];
            for unit in c.encode_utf16(&mut units) {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Writes `text` and a newline to stdout. A reader that went away (`| head`) is not an
/// error worth a panic: the rest is dropped.
#[allow(clippy::disallowed_methods)] // the output module writes stdout (clippy.toml)
fn write_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// Prints one line of a command's result to stdout, escaped as [`one_line`] says.
pub fn line(text: &str) {
    write_out(&escape(text, Shape::Line));
}

/// Prints multi-line text that mcp-warden laid out itself to stdout: newlines and tabs
/// kept, everything else escaped as in a [`line`]. Outside text inside it must have
/// gone through [`one_line`] (or be printed line by line with [`line`]), or it could
/// start a line of its own.
pub fn block(text: &str) {
    write_out(&escape(text, Shape::Block));
}

/// Prints a JSON document mcp-warden serialized (`--json`), escaped as [`json_text`]
/// says: still valid JSON, with the same meaning.
pub fn json(text: &str) {
    write_out(&json_text(text));
}

/// Writes `text` and a newline to stdout and flushes: whether the reader is still
/// there. For output that runs until its reader leaves (`audit --follow`).
#[allow(clippy::disallowed_methods)] // the output module writes stdout (clippy.toml)
fn write_flushed(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").and_then(|()| out.flush()).is_ok()
}

/// [`line`] for output that runs until its reader leaves (`| head`): flushed at once,
/// and `false` once the reader is gone.
#[must_use]
pub fn follow_line(text: &str) -> bool {
    write_flushed(&escape(text, Shape::Line))
}

/// [`json`] for output that runs until its reader leaves, as [`follow_line`].
#[must_use]
pub fn follow_json(text: &str) -> bool {
    write_flushed(&json_text(text))
}

/// Prints a one-line diagnostic to stderr, escaped as a [`line`]. In `serve` this is
/// the only output a person sees.
pub fn diag(text: &str) {
    eprintln!("{}", escape(text, Shape::Line));
}

/// Prints a multi-line diagnostic mcp-warden laid out itself (a configuration error
/// with its source line and hint) to stderr, escaped as a [`block`].
pub fn diag_block(text: &str) {
    eprintln!("{}", escape(text, Shape::Block));
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

/// Whether stderr is a terminal, so a progress line can be redrawn there.
#[must_use]
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A progress line on stderr, redrawn in place (issue 16 item 5). Only on a terminal
/// (elsewhere it would be noise in a log), and only once `delay` has passed since it
/// was made, so a quick command stays quiet. Each frame is a carriage return, the
/// text escaped as a [`line`], and a clear to the end of the line; [`Progress::clear`]
/// (or dropping it) erases a line that was drawn, before results are printed.
#[derive(Debug)]
pub struct Progress {
    since: std::time::Instant,
    delay: std::time::Duration,
    drawn: bool,
}

impl Progress {
    #[must_use]
    pub fn new(delay: std::time::Duration) -> Self {
        Self {
            since: std::time::Instant::now(),
            delay,
            drawn: false,
        }
    }

    /// Draws `text` over the previous frame, once the delay has passed.
    pub fn show(&mut self, text: &str) {
        if self.since.elapsed() < self.delay || !stderr_is_terminal() {
            return;
        }
        Self::frame(&escape(text, Shape::Line));
        self.drawn = true;
    }

    /// Erases the line, if one was drawn.
    pub fn clear(&mut self) {
        if std::mem::take(&mut self.drawn) {
            Self::frame("");
        }
    }

    fn frame(shown: &str) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{shown}\x1b[K");
        let _ = err.flush();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Shows `text` (our own layout, escaped as a [`block`]) through a pager when stdout
/// is a terminal and the text is taller than it: `$PAGER`, else `less -R` when it is
/// installed; printed as a [`block`] otherwise, or when the pager cannot start. The
/// pager receives the escaped text, never the raw one.
#[allow(clippy::disallowed_methods)] // the pager a person chose ($PAGER) shows a review: not a server
pub fn page(text: &str) {
    let shown = escape(text, Shape::Block);
    if stdout_is_terminal()
        && shown.lines().count() + 2 > terminal_rows()
        && let Some(mut pager) = pager()
        && let Ok(mut child) = pager.stdin(std::process::Stdio::piped()).spawn()
    {
        if let Some(mut stdin) = child.stdin.take() {
            // A pager quit early (`q`) closes its stdin: not an error.
            let _ = writeln!(stdin, "{shown}");
        }
        if child.wait().is_ok() {
            return;
        }
    }
    write_out(&shown);
}

/// The terminal's height, from `LINES`, else 24 (what a pager would assume).
fn terminal_rows() -> usize {
    std::env::var("LINES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(24)
}

/// The pager to run: `$PAGER` split on whitespace (as git does for simple values),
/// else `less -R` when `less` is on the PATH.
fn pager() -> Option<std::process::Command> {
    let chosen = std::env::var("PAGER").ok().filter(|p| !p.trim().is_empty());
    let words: Vec<String> = if let Some(p) = chosen {
        p.split_whitespace().map(str::to_owned).collect()
    } else {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).find(|d| d.join("less").is_file())?;
        vec!["less".into(), "-R".into()]
    };
    let (program, args) = words.split_first()?;
    if program == "cat" {
        return None;
    }
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    Some(cmd)
}

/// Asks a question on stderr, without a newline, so the answer is typed after it.
/// Escaped as a [`line`].
pub fn prompt(text: &str) {
    eprint!("{}", escape(text, Shape::Line));
    let _ = std::io::stderr().flush();
}

/// Asks `question` (escaped as a [`line`]) on stderr and reads one line of answer;
/// `None` at the end of input.
pub fn ask(question: &str) -> std::io::Result<Option<String>> {
    prompt(question);
    let mut answer = String::new();
    let read = std::io::stdin().read_line(&mut answer)?;
    Ok((read > 0).then_some(answer))
}

/// Asks `question` on the terminal and reads the answer: `y` or `yes` is a yes.
pub fn confirm(question: &str) -> std::io::Result<bool> {
    prompt(&format!("{question} [y/N] "));
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// What a painted word means; the output module picks the colour, so commands say what a
/// word is, never which escape sequence it gets.
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

impl Tone {
    fn sgr(self) -> &'static str {
        match self {
            Tone::Bad => "\x1b[1;31m",
            Tone::Warn => "\x1b[33m",
            Tone::Good => "\x1b[32m",
            Tone::Heading => "\x1b[1m",
        }
    }
}

const SGR_RESET: &str = "\x1b[0m";

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

/// One line with colour: every part is escaped as it is added, and the only escape
/// sequences in it are the colours mcp-warden chose, so a painted line can be printed
/// as it is. Colour is applied after escaping, never before: a line that was painted
/// and then escaped would show its colours as `\u{1b}[…`.
#[derive(Debug, Clone, Default)]
pub struct Painted {
    text: String,
}

impl Painted {
    /// An empty line.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `text`, escaped as a [`line`] escapes it, without colour.
    #[must_use]
    pub fn plain(mut self, text: &str) -> Self {
        self.text.push_str(&one_line(text));
        self
    }

    /// Adds `text`, escaped, in the colour of `tone` when stdout gets colour.
    #[must_use]
    pub fn paint(mut self, tone: Tone, text: &str) -> Self {
        if colour() {
            self.text.push_str(tone.sgr());
            self.text.push_str(&one_line(text));
            self.text.push_str(SGR_RESET);
        } else {
            self.text.push_str(&one_line(text));
        }
        self
    }

    /// Adds another painted line's parts.
    #[must_use]
    pub fn then(mut self, more: &Painted) -> Self {
        self.text.push_str(&more.text);
        self
    }
}

/// `text` in the colour of `tone`: a [`Painted`] line of one part.
#[must_use]
pub fn paint(tone: Tone, text: &str) -> Painted {
    Painted::new().paint(tone, text)
}

/// Prints a [`Painted`] line to stdout.
pub fn painted(line: &Painted) {
    write_out(&line.text);
}

/// Prints a diagnostic mcp-warden laid out itself (`FILE:LINE:COL: error: …`, with its
/// source line and hint) to stdout as a [`block`], its severity painted.
pub fn block_severity(text: &str) {
    let shown = escape(text, Shape::Block);
    if colour() {
        for (word, tone) in [(": error: ", Tone::Bad), (": warning: ", Tone::Warn)] {
            if let Some(at) = shown.find(word) {
                let name = &word[2..word.len() - 2];
                write_out(&format!(
                    "{}: {}{name}{SGR_RESET}: {}",
                    &shown[..at],
                    tone.sgr(),
                    &shown[at + word.len()..]
                ));
                return;
            }
        }
    }
    write_out(&shown);
}

/// Writes bytes a command produced whole from our own definitions (a completion
/// script) to stdout, unescaped: nothing in it comes from outside. A reader that went
/// away is not an error.
#[allow(clippy::disallowed_methods)] // the output module writes stdout (clippy.toml)
pub fn raw(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Whether a terminal would act on `c`, or a reader miss it.
    fn is_raw(c: char) -> bool {
        textclass::needs_escape(c)
    }

    #[test]
    fn a_line_escapes_what_drives_a_terminal() {
        assert_eq!(
            one_line("ok\u{1b}[2J\u{1b}[Hclean\rforged\u{202e}txt\u{200b}\u{9b}\n\tx"),
            "ok\\u{1b}[2J\\u{1b}[Hclean\\rforged\\u{202e}txt\\u{200b}\\u{9b}\\n\\tx"
        );
        assert!(matches!(one_line("plain é ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_painted_line_escapes_every_part() {
        let line = Painted::new()
            .plain("a\u{1b}[2J")
            .paint(Tone::Bad, "b\r\u{202e}")
            .then(&paint(Tone::Good, "c\n"));
        // Without a terminal there is no colour: only escaped text remains.
        assert_eq!(line.text, "a\\u{1b}[2Jb\\r\\u{202e}c\\n");
    }

    #[test]
    fn a_block_keeps_its_layout_only() {
        assert_eq!(
            escape("a\n\tb\r\n\u{1b}]0;t\u{7}", Shape::Block),
            "a\n\tb\\r\n\\u{1b}]0;t\\u{7}"
        );
    }

    #[test]
    fn json_stays_json() {
        let value = serde_json::json!({"k\u{202e}": "a\u{9b}b\u{e0041}\u{7f}"});
        let text = serde_json::to_string_pretty(&value).expect("serializes");
        let shown = json_text(&text);
        assert!(shown.contains("\\u202e") && shown.contains("\\udb40\\udc41"));
        let back: serde_json::Value = serde_json::from_str(&shown).expect("still JSON");
        assert_eq!(back, value);
    }

    /// Text a hostile server would send: escape introducers and terminators, every
    /// hidden class, line controls and plain text.
    fn hostile_char() -> impl Strategy<Value = char> {
        prop_oneof![
            Just('\u{1b}'),
            Just('\r'),
            Just('\n'),
            Just('\t'),
            Just('\u{7}'),
            Just('\u{8}'),
            Just('\u{7f}'),
            Just('['),
            Just('\\'),
            proptest::char::range('\u{0}', '\u{1f}'),
            proptest::char::range('\u{80}', '\u{9f}'),
            proptest::char::range('\u{200b}', '\u{200f}'),
            proptest::char::range('\u{202a}', '\u{202e}'),
            proptest::char::range('\u{2066}', '\u{2069}'),
            proptest::char::range('\u{e0000}', '\u{e007f}'),
            proptest::char::range('a', 'z'),
            any::<char>(),
        ]
    }

    proptest! {
        /// Every output path: nothing raw reaches the terminal, in any shape.
        #[test]
        fn no_raw_character_survives(chars in proptest::collection::vec(hostile_char(), 0..64)) {
            let s: String = chars.into_iter().collect();
            prop_assert!(!one_line(&s).chars().any(is_raw));
            prop_assert!(!escape(&s, Shape::Block).chars().any(|c| is_raw(c) && c != '\n' && c != '\t'));
            // Escaping is a fixed point: what is shown is shown as it is.
            let once = one_line(&s).into_owned();
            prop_assert_eq!(&*one_line(&once), &*once);
            let compact = serde_json::to_string(&serde_json::json!({ &*s: s.clone() })).expect("serializes");
            let pretty = serde_json::to_string_pretty(&serde_json::json!([s.clone()])).expect("serializes");
            for doc in [compact, pretty] {
                let shown = json_text(&doc);
                prop_assert!(!shown.chars().any(|c| is_raw(c) && c != '\n'));
                let back: serde_json::Value = serde_json::from_str(&shown).expect("still JSON");
                let orig: serde_json::Value = serde_json::from_str(&doc).expect("JSON");
                prop_assert_eq!(back, orig);
            }
        }
    }
}
