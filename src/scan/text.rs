//! Text plumbing for the scan: the visible text of a string with a way back to the
//! original, sentence bounds, and the excerpt a finding shows.
//!
//! Pattern rules run on the *visible* text (the string after [`textclass::strip`]), so a
//! zero-width space or a colour code inside "ig\u{200B}nore previous instructions" does
//! not hide the phrase; positions are mapped back to the original string so that the
//! excerpt shows what was really sent, hidden characters escaped.

use std::borrow::Cow;
use std::ops::Range;

use crate::textclass;

/// The longest excerpt a finding carries, in characters, ellipses included.
pub(crate) const EXCERPT_CHARS: usize = 120;
/// How much context an excerpt keeps before the match, in characters.
const EXCERPT_BEFORE: usize = 40;
/// How far a sentence is looked for on each side of a match, in bytes: a "sentence"
/// without punctuation must not grow to a whole document.
const SENTENCE_REACH: usize = 300;

/// A string's visible text and the map back to the string.
#[derive(Debug)]
pub(crate) struct Visible<'a> {
    pub(crate) text: Cow<'a, str>,
    /// For each run of kept text: where it starts in `text` and in the original.
    runs: Vec<(usize, usize)>,
}

impl<'a> Visible<'a> {
    pub(crate) fn new(original: &'a str) -> Self {
        let kept = textclass::visible_ranges(original);
        if let [only] = kept.as_slice()
            && *only == (0..original.len())
        {
            return Visible {
                text: Cow::Borrowed(original),
                runs: vec![(0, 0)],
            };
        }
        let mut text = String::with_capacity(original.len());
        let mut runs = Vec::with_capacity(kept.len());
        for range in kept {
            runs.push((text.len(), range.start));
            text.push_str(&original[range]);
        }
        Visible {
            text: Cow::Owned(text),
            runs,
        }
    }

    /// The range of the original that `range` of the visible text came from. Hidden
    /// characters inside the match are inside the result.
    pub(crate) fn to_original(&self, range: Range<usize>) -> Range<usize> {
        let start = self.map(range.start, |run_start| run_start <= range.start);
        // An end on a run boundary belongs to the earlier run.
        let end = self.map(range.end, |run_start| run_start < range.end);
        start..end.max(start)
    }

    fn map(&self, at: usize, before: impl Fn(usize) -> bool) -> usize {
        let index = self
            .runs
            .partition_point(|&(run_start, _)| before(run_start));
        match index.checked_sub(1).and_then(|i| self.runs.get(i)) {
            Some(&(visible, original)) => original + (at - visible),
            None => 0,
        }
    }
}

/// Whether the sentence ends at the character `c` found at byte `i` of `text`: a newline,
/// or `.`, `!`, `?` followed by white space or the end. A dot inside a path (`~/.ssh`,
/// `mcp.json`) does not end a sentence.
fn ends_sentence(text: &str, i: usize, c: char) -> bool {
    match c {
        '\n' => true,
        '.' | '!' | '?' => text[i + 1..].chars().next().is_none_or(char::is_whitespace),
        _ => false,
    }
}

/// Whether `text[range]` crosses from one sentence into another.
pub(crate) fn has_sentence_break(text: &str, range: Range<usize>) -> bool {
    text.get(range.clone()).is_some_and(|gap| {
        gap.char_indices()
            .any(|(i, c)| ends_sentence(text, range.start + i, c))
    })
}

/// The sentence of `text` around `range` (without its final punctuation), at most
/// [`SENTENCE_REACH`] bytes each side.
pub(crate) fn sentence_around(text: &str, range: Range<usize>) -> Range<usize> {
    let mut start = range.start;
    for (i, c) in text[..range.start].char_indices().rev() {
        if range.start - i > SENTENCE_REACH || ends_sentence(text, i, c) {
            break;
        }
        start = i;
    }
    let start =
        start + (text[start..range.start].len() - text[start..range.start].trim_start().len());
    let mut end = range.end;
    for (i, c) in text[range.end..].char_indices() {
        let at = range.end + i;
        if i > SENTENCE_REACH || ends_sentence(text, at, c) {
            break;
        }
        end = at + c.len_utf8();
    }
    start..end
}

/// At most [`EXCERPT_CHARS`] characters of `s` around byte `at`: some context before,
/// the match and what follows, hidden and control characters written as escapes, `…`
/// where it was cut.
pub(crate) fn excerpt(s: &str, at: usize) -> String {
    let at = floor_char_boundary(s, at);
    let mut before = Vec::new();
    let mut before_chars = 0;
    let mut cut_before = false;
    for c in s[..at].chars().rev() {
        let piece = escaped(c);
        let n = piece.chars().count();
        if before_chars + n > EXCERPT_BEFORE {
            cut_before = true;
            break;
        }
        before_chars += n;
        before.push(piece);
    }
    let mut out = String::new();
    if cut_before {
        out.push('…');
    }
    for piece in before.iter().rev() {
        out.push_str(piece);
    }
    let mut used = before_chars + usize::from(cut_before);
    for c in s[at..].chars() {
        let piece = escaped(c);
        let n = piece.chars().count();
        // Keep one character for the closing ellipsis.
        if used + n > EXCERPT_CHARS - 1 {
            out.push('…');
            break;
        }
        used += n;
        out.push_str(&piece);
    }
    out
}

fn escaped(c: char) -> String {
    let mut piece = String::new();
    textclass::push_escaped(&mut piece, c);
    piece
}

fn floor_char_boundary(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// At most `max` characters of `s`, with `…` if it was cut.
pub(crate) fn truncate_chars(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        Some((cut, _)) => Cow::Owned(format!("{}…", &s[..cut])),
        None => Cow::Borrowed(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_text_maps_back() {
        let s = "ig\u{200B}nore \u{1b}[1mprevious";
        let v = Visible::new(s);
        assert_eq!(v.text, "ignore previous");
        let found = v.text.find("ignore").expect("present");
        let back = v.to_original(found..found + "ignore".len());
        assert_eq!(&s[back], "ig\u{200B}nore");
        let found = v.text.find("previous").expect("present");
        assert_eq!(&s[v.to_original(found..found + 8)], "previous");
    }

    #[test]
    fn plain_text_is_borrowed() {
        let v = Visible::new("plain");
        assert!(matches!(v.text, Cow::Borrowed(_)));
        assert_eq!(v.to_original(1..3), 1..3);
        let empty = Visible::new("");
        assert_eq!(empty.to_original(0..0), 0..0);
    }

    #[test]
    fn sentences_ignore_dots_in_paths() {
        let t = "Read the file. Then open ~/.ssh/id_rsa now! Done";
        let at = t.find("~/.ssh").expect("present");
        let s = sentence_around(t, at..at + 6);
        assert_eq!(&t[s], "Then open ~/.ssh/id_rsa now");
        assert!(!has_sentence_break(t, 15..35));
        assert!(has_sentence_break(t, 0..20));
    }

    #[test]
    fn excerpts_are_bounded_and_escaped() {
        let long = format!("{}\u{200B}MATCH{}", "a".repeat(300), "b".repeat(300));
        let at = long.find('\u{200B}').expect("present");
        let e = excerpt(&long, at);
        assert!(e.chars().count() <= EXCERPT_CHARS, "{e}");
        assert!(e.starts_with('…') && e.ends_with('…'));
        assert!(e.contains("\\u{200b}MATCH"));
        assert_eq!(excerpt("short \u{1b}[8m", 6), "short \\u{1b}[8m");
    }

    #[test]
    fn truncates_on_chars() {
        assert_eq!(truncate_chars("héllo", 2), "hé…");
        assert_eq!(truncate_chars("hé", 2), "hé");
    }
}
