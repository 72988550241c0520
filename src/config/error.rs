//! Configuration errors and their positions.
//!
//! Every problem found in a configuration file becomes a [`Diagnostic`] that carries the
//! file, a 1-based line and column computed from a byte span, a lowercase message with
//! values in backticks, and an optional hint. It prints as
//!
//! ```text
//! /path/mcp-warden.toml:3:1: error: unknown key `comand` in `servers.fs`
//!   hint: did you mean `command`?
//! ```
//!
//! This module never reads files; it only turns spans into positions and words.

use crate::file_error::FileError;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How bad a diagnostic is: errors make `check` exit 2 and `load` fail, warnings are
/// findings (exit 1) and never stop anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
        })
    }
}

/// A 1-based line and column (the column counts characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub col: usize,
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// Where in the file; `None` for problems with the file as a whole (it cannot be
    /// read, the workspace directory does not exist).
    pub position: Option<Position>,
    pub severity: Severity,
    /// Lowercase, values quoted in backticks.
    pub message: String,
    /// What to do about it, when there is something to say.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic about a whole file, without a position.
    #[must_use]
    pub fn file(path: &Path, severity: Severity, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            position: None,
            severity,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint line.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Whether this is an error (as opposed to a finding).
    #[must_use]
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Each part is one line, escaped (it quotes the file's text): the two-line
        // layout is ours, so a value with a newline cannot add a line of its own.
        let one_line = crate::output::one_line;
        write!(f, "{}", one_line(&self.path.to_string_lossy()))?;
        if let Some(Position { line, col }) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": {}: {}", self.severity, one_line(&self.message))?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {}", one_line(hint))?;
        }
        Ok(())
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// One or more problems inside configuration files; never empty. Displayed one
    /// diagnostic after the other, each as `PATH:LINE:COL: error: MESSAGE`. Every
    /// variant shows the paths and values it quotes escaped as one line, so the whole
    /// error can be printed as a block (`output::diag_block`).
    #[error("{}", DisplayAll(diagnostics))]
    Invalid { diagnostics: Vec<Diagnostic> },
    /// A configuration file exists but cannot be read ([`FileError::Read`]), or
    /// `--workspace DIR` names something that is not a usable directory
    /// ([`FileError::Workspace`]).
    #[error(transparent)]
    File(#[from] FileError),
    /// The trust store is unreadable or corrupt; never guessed around.
    #[error(transparent)]
    Trust(#[from] crate::config::trust::TrustError),
}

impl ConfigError {
    /// The problems as diagnostics (file-level ones without a position), for commands
    /// that print every problem the same way.
    #[must_use]
    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        match self {
            Self::Invalid { diagnostics } => diagnostics,
            Self::File(ref e) => {
                let message = self.to_string();
                vec![Diagnostic::file(e.path(), Severity::Error, message)]
            }
            Self::Trust(e) => e.into_diagnostics(),
        }
    }
}

/// Displays diagnostics one per line.
struct DisplayAll<'a>(&'a [Diagnostic]);

impl fmt::Display for DisplayAll<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// A file being checked: its path and text, to turn byte spans into positions.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

/// The text of a file read as bytes, or a diagnostic at the first byte that is not
/// UTF-8 (line and column of the valid prefix's end).
pub fn utf8_text(path: &Path, bytes: Vec<u8>) -> Result<String, Diagnostic> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e
            .as_bytes()
            .get(..e.utf8_error().valid_up_to())
            .unwrap_or_default();
        let prefix = String::from_utf8_lossy(valid);
        let at = prefix.len();
        Source::new(path, &prefix).error(&(at..at), "invalid UTF-8")
    })
}

impl<'a> Source<'a> {
    #[must_use]
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        Self { path, text }
    }

    /// The 1-based line and character column of a byte offset (clamped to the text).
    #[must_use]
    pub fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        Position { line, col }
    }

    /// A diagnostic at the start of `span`.
    #[must_use]
    pub fn diagnostic(
        &self,
        severity: Severity,
        span: &Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            path: self.path.to_path_buf(),
            position: Some(self.position(span.start)),
            severity,
            message: message.into(),
            hint: None,
        }
    }

    /// An error at the start of `span`.
    #[must_use]
    pub fn error(&self, span: &Range<usize>, message: impl Into<String>) -> Diagnostic {
        self.diagnostic(Severity::Error, span, message)
    }

    /// The byte offset in the file of byte `offset` inside the string value written at
    /// `span`. Exact for strings without escapes (the usual case); otherwise the start
    /// of the value, which is still the right line.
    #[must_use]
    pub fn offset_in_string(&self, span: &Range<usize>, value: &str, offset: usize) -> usize {
        let Some(written) = self.text.get(span.clone()) else {
            return span.start;
        };
        for quote in ["\"\"\"", "'''", "\"", "'"] {
            let inner = written
                .strip_prefix(quote)
                .and_then(|w| w.strip_suffix(quote));
            if inner == Some(value) {
                return span.start + quote.len() + offset;
            }
        }
        span.start
    }

    /// Turns a TOML or serde error into a diagnostic. `context` names the table being
    /// read (`servers.fs`) for messages that would otherwise not say where they apply.
    #[must_use]
    pub fn toml_error(&self, e: &toml::de::Error, context: Option<&str>) -> Diagnostic {
        let (message, hint) = reword(e.message(), context);
        let position = e
            .span()
            .map_or(Position { line: 1, col: 1 }, |s| self.position(s.start));
        Diagnostic {
            path: self.path.to_path_buf(),
            position: Some(position),
            severity: Severity::Error,
            message,
            hint,
        }
    }
}

/// Rewords serde's messages in the words of a configuration file ("key" rather than
/// "field") and turns its list of expected names into a "did you mean" hint.
fn reword(message: &str, context: Option<&str>) -> (String, Option<String>) {
    let place = context.map(|c| format!(" in `{c}`")).unwrap_or_default();
    let (quoted, rest) = first_backticked(message);
    if let Some(unknown) = quoted {
        if message.starts_with("unknown field") {
            let expected = expected_names(rest);
            let hint = suggestion(unknown, &expected)
                .or_else(|| known_list(&expected).map(|l| format!("the keys here are {l}")));
            return (format!("unknown key `{unknown}`{place}"), hint);
        }
        if message.starts_with("unknown variant") {
            let expected = expected_names(rest);
            let hint = suggestion(unknown, &expected)
                .or_else(|| known_list(&expected).map(|l| format!("expected one of {l}")));
            return (format!("unknown value `{unknown}`{place}"), hint);
        }
        if message.starts_with("missing field") {
            return (format!("missing key `{unknown}`{place}"), None);
        }
        if message.starts_with("duplicate field") {
            return (format!("duplicate key `{unknown}`{place}"), None);
        }
    }
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        return (format!("{message}{place}"), None);
    }
    (message.to_owned(), None)
}

/// The first backticked word of `s`, and what follows it.
fn first_backticked(s: &str) -> (Option<&str>, &str) {
    let Some(start) = s.find('`') else {
        return (None, s);
    };
    let after = &s[start + 1..];
    let Some(end) = after.find('`') else {
        return (None, s);
    };
    (Some(&after[..end]), &after[end + 1..])
}

/// Every backticked word after "expected" in a serde message.
fn expected_names(rest: &str) -> Vec<&str> {
    let Some(i) = rest.find("expected") else {
        return Vec::new();
    };
    rest[i..].split('`').skip(1).step_by(2).collect()
}

fn known_list(names: &[&str]) -> Option<String> {
    (!names.is_empty()).then(|| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// "did you mean `x`?" when one of `known` is close to `word`.
#[must_use]
pub fn suggestion(word: &str, known: &[&str]) -> Option<String> {
    closest(word, known).map(|k| format!("did you mean `{k}`?"))
}

/// The one of `known` closest to `word`, when it is close: the same letters in another
/// case, or an edit distance of at most a third of the word's length (at least 1).
#[must_use]
pub fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Edit distance over characters where an insertion, a deletion, a substitution or a
/// swap of two neighbours each count 1 (optimal string alignment), so that the most
/// common typo, `mdoe` for `mode`, is one edit. Names are short, so the quadratic cost
/// is nothing, and a dependency for it would be more.
#[must_use]
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: the one before the previous (for swaps), the previous, the current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (previous[j - 1] + cost)
                .min(previous[j] + 1)
                .min(current[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            current[j] = d;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let src = Source::new(Path::new("f.toml"), "a = 1\nbé = 2\n");
        assert_eq!(src.position(0), Position { line: 1, col: 1 });
        assert_eq!(src.position(6), Position { line: 2, col: 1 });
        // `=` on line 2 comes after `b`, `é` (two bytes) and a space.
        assert_eq!(src.position(10), Position { line: 2, col: 4 });
        assert_eq!(src.position(1000).line, 3);
    }

    #[test]
    fn display_is_path_line_col_severity_message_then_hint() {
        let src = Source::new(Path::new("/w/mcp-warden.toml"), "x = 1\n");
        let d = src.error(&(4..5), "bad value `1`").with_hint("use 2");
        assert_eq!(
            d.to_string(),
            "/w/mcp-warden.toml:1:5: error: bad value `1`\n  hint: use 2"
        );
    }

    #[test]
    fn unknown_field_becomes_unknown_key_with_suggestion() {
        let (m, h) = reword(
            "unknown field `comand`, expected one of `command`, `args`, `env`",
            Some("servers.fs"),
        );
        assert_eq!(m, "unknown key `comand` in `servers.fs`");
        assert_eq!(h.as_deref(), Some("did you mean `command`?"));
    }

    #[test]
    fn unknown_field_far_from_every_key_lists_the_keys() {
        let (_, h) = reword("unknown field `zzzzzz`, expected `command` or `args`", None);
        assert_eq!(h.as_deref(), Some("the keys here are `command`, `args`"));
    }

    #[test]
    fn unknown_variant_suggests_the_closest_value() {
        let (m, h) = reword("unknown variant `alow`, expected `allow` or `deny`", None);
        assert_eq!(m, "unknown value `alow`");
        assert_eq!(h.as_deref(), Some("did you mean `allow`?"));
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("comand", "command"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn a_swap_of_neighbours_is_one_edit() {
        assert_eq!(edit_distance("mdoe", "mode"), 1);
        assert_eq!(edit_distance("comamnd", "command"), 1);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(
            suggestion("mdoe", &["mode", "ask"]).as_deref(),
            Some("did you mean `mode`?")
        );
    }

    #[test]
    fn offset_in_string_is_exact_without_escapes() {
        let text = "x = \"ab${y}\"\n";
        let src = Source::new(Path::new("f"), text);
        assert_eq!(src.offset_in_string(&(4..12), "ab${y}", 2), 7);
        // With an escape the written text differs from the value: the value's start.
        let text = "x = \"a\\tb\"\n";
        let src = Source::new(Path::new("f"), text);
        assert_eq!(src.offset_in_string(&(4..10), "a\tb", 2), 4);
    }
}
