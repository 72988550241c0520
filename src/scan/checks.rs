//! How each [`Matcher`] decides, for one string. Pure functions over text and the
//! prepared [`CrossRefs`]; each returns the first hit, with a detail for the message.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::ops::Range;

use regex::Regex;

use super::ScanContext;
use super::rules::{Compiled, Matcher};
use super::text::{self, Visible};
use crate::textclass::{self, is_bidi_control, is_hidden, is_invisible, is_tag_char};

/// At most this many matches of each side of a [`Matcher::Near`] are paired up: enough
/// for any real description, and a bound on the work a hostile one can cause.
const MAX_NEAR_MATCHES: usize = 256;
/// How many code points a message lists before it says "…".
const MAX_LISTED_CODE_POINTS: usize = 4;
/// How much of a hidden tag-character text a message quotes.
const MAX_QUOTED_HIDDEN_CHARS: usize = 80;

/// Where a rule fired, as a range of the original string, and what it saw.
#[derive(Debug)]
pub(crate) struct Hit {
    pub(crate) range: Range<usize>,
    pub(crate) detail: Option<String>,
}

impl Hit {
    fn at(range: Range<usize>) -> Self {
        Hit {
            range,
            detail: None,
        }
    }

    fn with(range: Range<usize>, detail: String) -> Self {
        Hit {
            range,
            detail: Some(detail),
        }
    }
}

/// Runs one rule's matcher over one string.
pub(crate) fn run(
    matcher: &Matcher,
    compiled: &Compiled,
    original: &str,
    visible: &Visible<'_>,
    refs: &CrossRefs,
) -> Option<Hit> {
    match matcher {
        Matcher::Patterns(_) => {
            let m = compiled.first.as_ref()?.find(&visible.text)?;
            Some(Hit::at(visible.to_original(m.range())))
        }
        Matcher::Near { within, .. } => {
            let range = near(&visible.text, compiled, *within)?;
            Some(Hit::at(visible.to_original(range)))
        }
        Matcher::InvisibleChars => invisible_chars(original),
        Matcher::BidiControls => bidi_controls(original),
        Matcher::TagChars => tag_chars(original),
        Matcher::TerminalControls => terminal_controls(original),
        Matcher::EncodedPayload { min_blob_chars, .. } => {
            let blob = blob(&visible.text, *min_blob_chars).map(|r| {
                let detail = format!("{} characters of base64 or hex", r.len());
                (r, Some(detail))
            });
            let pattern = compiled
                .first
                .as_ref()
                .and_then(|re| re.find(&visible.text))
                .map(|m| (m.range(), None));
            let (range, detail) = match (blob, pattern) {
                (Some(b), Some(p)) => {
                    if b.0.start <= p.0.start {
                        b
                    } else {
                        p
                    }
                }
                (b, p) => b.or(p)?,
            };
            Some(Hit {
                range: visible.to_original(range),
                detail,
            })
        }
        Matcher::LongerThan(max) => {
            let count = original.chars().count();
            (count > *max).then(|| {
                Hit::with(
                    0..original.len(),
                    format!("{count} characters, more than {max}"),
                )
            })
        }
        Matcher::OtherServers { .. } => {
            let (range, detail) =
                refs.instruction_about_others(&visible.text, compiled.first.as_ref()?)?;
            Some(Hit::with(visible.to_original(range), detail))
        }
    }
}

/// The first place where a match of `first` and one of `second` share a sentence and lie
/// at most `within` bytes apart; the range covers both.
fn near(text: &str, compiled: &Compiled, within: usize) -> Option<Range<usize>> {
    let matches = |re: Option<&Regex>, not_after: Option<&Regex>| -> Vec<Range<usize>> {
        re.map_or_else(Vec::new, |re| {
            re.find_iter(text)
                .filter(|m| !follows(text, m.start(), not_after))
                .take(MAX_NEAR_MATCHES)
                .map(|m| m.range())
                .collect()
        })
    };
    let seconds = matches(compiled.second.as_ref(), compiled.second_not_after.as_ref());
    if seconds.is_empty() {
        return None;
    }
    for a in matches(compiled.first.as_ref(), compiled.first_not_after.as_ref()) {
        for b in &seconds {
            let gap = if a.end <= b.start {
                a.end..b.start
            } else if b.end <= a.start {
                b.end..a.start
            } else {
                a.start..a.start
            };
            if gap.len() <= within && !text::has_sentence_break(text, gap) {
                return Some(a.start.min(b.start)..a.end.max(b.end));
            }
        }
    }
    None
}

/// How far back a `*_not_after` pattern looks, in bytes.
const NOT_AFTER_REACH: usize = 40;

/// Whether the text just before byte `at` ends with a match of `not_after`.
fn follows(text: &str, at: usize, not_after: Option<&Regex>) -> bool {
    let Some(re) = not_after else {
        return false;
    };
    let mut from = at.saturating_sub(NOT_AFTER_REACH);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    re.is_match(&text[from..at])
}

fn code_point_list(chars: impl IntoIterator<Item = char>) -> String {
    let mut seen = Vec::new();
    let mut more = false;
    for c in chars {
        if seen.contains(&c) {
            continue;
        }
        if seen.len() == MAX_LISTED_CODE_POINTS {
            more = true;
            break;
        }
        seen.push(c);
    }
    let mut out = String::new();
    for (i, c) in seen.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "U+{:04X}", u32::from(*c));
    }
    if more {
        out.push_str(", …");
    }
    out
}

/// Whether `c` is visible text that is not ASCII: what an emoji joiner or a script's
/// non-joiner is allowed to stand next to.
fn is_non_ascii_visible(c: Option<char>) -> bool {
    c.is_some_and(|c| !c.is_ascii() && !is_hidden(c) && !c.is_control())
}

/// Whether invisible `c` is ordinary where it stands, between `prev` and `next`.
fn is_ordinary_invisible(prev: Option<char>, c: char, next: Option<char>) -> bool {
    match c {
        // A byte order mark at the very start.
        '\u{FEFF}' => prev.is_none(),
        // One variation selector after an emoji or ideograph, or in a keycap ("1️⃣").
        _ if textclass::is_variation_selector(c) => {
            is_non_ascii_visible(prev)
                || (prev.is_some_and(|p| matches!(p, '0'..='9' | '#' | '*'))
                    && next == Some('\u{20E3}'))
        }
        // The joiner in emoji sequences; it may follow a variation selector ("🏳️‍🌈").
        '\u{200D}' => {
            (is_non_ascii_visible(prev) || prev.is_some_and(textclass::is_variation_selector))
                && is_non_ascii_visible(next)
        }
        // A soft hyphen inside a word.
        '\u{00AD}' => {
            prev.is_some_and(char::is_alphabetic) && next.is_some_and(char::is_alphabetic)
        }
        // Non-joiners, zero-width spaces, fillers and the like have uses inside scripts
        // written without ASCII (Persian, Thai, Hangul); among ASCII text they hide.
        _ => is_non_ascii_visible(prev) && is_non_ascii_visible(next),
    }
}

fn invisible_chars(s: &str) -> Option<Hit> {
    let mut prev = None;
    let mut chars = s.char_indices().peekable();
    let mut found: Vec<(usize, char)> = Vec::new();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        if is_invisible(c) && !is_bidi_control(c) && !is_ordinary_invisible(prev, c, next) {
            found.push((i, c));
        }
        prev = Some(c);
    }
    let &(start, first) = found.first()?;
    // The range runs over the hidden characters that follow the first one.
    let end = s[start..]
        .char_indices()
        .find(|&(_, c)| !is_hidden(c))
        .map_or(s.len(), |(i, _)| start + i)
        .max(start + first.len_utf8());
    let detail = format!(
        "{} invisible character{} ({})",
        found.len(),
        if found.len() == 1 { "" } else { "s" },
        code_point_list(found.iter().map(|&(_, c)| c))
    );
    Some(Hit::with(start..end, detail))
}

/// Letters of right-to-left scripts (Hebrew, Arabic, Syriac, Thaana, N'Ko, ...).
fn is_rtl_letter(c: char) -> bool {
    matches!(
        c,
        '\u{0590}'..='\u{08FF}'
            | '\u{FB1D}'..='\u{FDFF}'
            | '\u{FE70}'..='\u{FEFE}'
            | '\u{10800}'..='\u{10FFF}'
            | '\u{1E800}'..='\u{1EFFF}'
    ) && !is_hidden(c)
}

fn bidi_controls(s: &str) -> Option<Hit> {
    let has_rtl = s.chars().any(is_rtl_letter);
    let found: Vec<(usize, char)> = s
        .char_indices()
        .filter(|&(_, c)| {
            // Overrides reverse text outright; nothing legitimate needs them in a
            // description. Marks, embeddings and isolates belong in right-to-left text.
            is_bidi_control(c) && (matches!(c, '\u{202D}' | '\u{202E}') || !has_rtl)
        })
        .collect();
    let &(start, first) = found.first()?;
    let detail = format!(
        "{} bidi control{} ({})",
        found.len(),
        if found.len() == 1 { "" } else { "s" },
        code_point_list(found.iter().map(|&(_, c)| c))
    );
    Some(Hit::with(start..start + first.len_utf8(), detail))
}

fn tag_chars(s: &str) -> Option<Hit> {
    let mut i = 0;
    let start = loop {
        let c = s[i..].chars().next()?;
        if c == '\u{1F3F4}'
            && let Some(len) = textclass::emoji_tag_sequence_len(&s[i + c.len_utf8()..])
        {
            // A subdivision flag: its tags are how tag characters are meant to be used.
            i += c.len_utf8() + len;
            continue;
        }
        if is_tag_char(c) {
            break i;
        }
        i += c.len_utf8();
    };
    let end = s[start..]
        .char_indices()
        .find(|&(_, c)| !is_tag_char(c))
        .map_or(s.len(), |(i, _)| start + i);
    let detail = match textclass::decode_tag_text(s) {
        Some(hidden) => format!(
            "hidden text \"{}\"",
            textclass::escape_hidden(&text::truncate_chars(&hidden, MAX_QUOTED_HIDDEN_CHARS))
        ),
        None => "tag characters that spell nothing".to_owned(),
    };
    Some(Hit::with(start..end, detail))
}

fn terminal_controls(s: &str) -> Option<Hit> {
    let escape = textclass::ansi_escapes(s).next();
    // A CR before a newline ends a line (CRLF); a bare one returns the cursor to the
    // start of the line, so what follows it is printed over what precedes it.
    let is_bare_cr = |i: usize, c: char| c == '\r' && !s[i + 1..].starts_with('\n');
    let control = s.char_indices().find(|&(i, c)| {
        c.is_control() && !matches!(c, '\t' | '\n' | '\r') && !is_escape(c) || is_bare_cr(i, c)
    });
    match (escape, control) {
        (Some(e), Some((i, _))) if i < e.start => Some(control_hit(s, i)),
        (Some(e), _) => Some(Hit::with(e, "ANSI escape sequence".to_owned())),
        (None, Some((i, _))) => Some(control_hit(s, i)),
        (None, None) => None,
    }
}

/// Characters [`textclass::ansi_escapes`] accounts for.
fn is_escape(c: char) -> bool {
    c == '\u{1b}' || ('\u{80}'..='\u{9f}').contains(&c)
}

fn control_hit(s: &str, i: usize) -> Hit {
    let c = s[i..].chars().next().unwrap_or_default();
    let detail = if c == '\r' {
        "bare carriage return (U+000D): the text after it overwrites the line".to_owned()
    } else {
        format!("control character U+{:04X}", u32::from(c))
    };
    Hit::with(i..i + c.len_utf8(), detail)
}

/// The first run of at least `min` characters of the base64 (or base64url, or hex)
/// alphabet that looks like data: letters and digits both, and at least ten distinct
/// characters, so rulers (`=====`), long words and repeated filler do not count.
fn blob(text: &str, min: usize) -> Option<Range<usize>> {
    /// Distinct characters a run needs to look like encoded data rather than filler.
    const MIN_DISTINCT: usize = 10;
    let is_blob_byte =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-');
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_blob_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_blob_byte(bytes[i]) {
            i += 1;
        }
        let run = &bytes[start..i];
        if run.len() >= min
            && run.iter().any(u8::is_ascii_digit)
            && run.iter().any(u8::is_ascii_alphabetic)
            && run.iter().collect::<HashSet<_>>().len() >= MIN_DISTINCT
        {
            return Some(start..i);
        }
    }
    None
}

/// A [`ScanContext`] prepared for lookups: lowercase names, own names removed.
#[derive(Debug)]
pub(crate) struct CrossRefs {
    own_server: String,
    own_tools: HashSet<String>,
    other_servers: HashSet<String>,
    /// Lowercase name → whether the name cannot be an ordinary word.
    other_tools: HashMap<String, bool>,
    item: String,
}

/// Quotes that mark a name as a name.
const OPENING_QUOTES: &[char] = &['`', '\'', '"', '“', '‘'];
const CLOSING_QUOTES: &[char] = &['`', '\'', '"', '”', '’'];

/// What a mention refers to.
enum Mention<'a> {
    /// A tool of another server, and which server when the name says so.
    Tool(Option<&'a str>),
    Server,
}

impl CrossRefs {
    pub(crate) fn new(context: &ScanContext, item: &str) -> Self {
        let own_server = context.own_server.to_lowercase();
        let own_tools: HashSet<String> =
            context.own_tools.iter().map(|t| t.to_lowercase()).collect();
        let other_servers = context
            .other_servers
            .iter()
            .map(|s| s.to_lowercase())
            .filter(|s| !s.is_empty() && *s != own_server)
            .collect();
        let other_tools = context
            .other_tools
            .iter()
            .filter(|t| !t.is_empty())
            .map(|t| (t.to_lowercase(), is_distinctive(t)))
            .filter(|(t, _)| !own_tools.contains(t))
            .collect();
        CrossRefs {
            own_server,
            own_tools,
            other_servers,
            other_tools,
            item: item.to_lowercase(),
        }
    }

    /// The first mention of another server or its tool in a sentence that `imperative`
    /// matches, with a detail naming it.
    fn instruction_about_others(
        &self,
        text: &str,
        imperative: &Regex,
    ) -> Option<(Range<usize>, String)> {
        if self.other_servers.is_empty() && self.other_tools.is_empty() {
            return None;
        }
        for token in tokens(text) {
            let Some(mention) = self.mention(text, token.clone()) else {
                continue;
            };
            let sentence = text::sentence_around(text, token.clone());
            if imperative.is_match(&text[sentence]) {
                let name = &text[token.clone()];
                let detail = match mention {
                    Mention::Tool(Some(server)) => {
                        format!("`{name}`, a tool of server `{server}`")
                    }
                    Mention::Tool(None) => format!("`{name}`, another server's tool"),
                    Mention::Server => format!("`{name}`, another server"),
                };
                return Some((token, detail));
            }
        }
        None
    }

    fn mention(&self, text: &str, token: Range<usize>) -> Option<Mention<'_>> {
        let word = text[token.clone()].to_lowercase();
        if word == self.item {
            return None;
        }
        if let Some((prefix, _)) = word.split_once("__") {
            if let Some(server) = self.other_servers.get(prefix) {
                return Some(Mention::Tool(Some(server)));
            }
            if prefix == self.own_server {
                return None;
            }
        }
        let quoted = text[..token.start].ends_with(OPENING_QUOTES)
            && text[token.end..].starts_with(CLOSING_QUOTES);
        let next = next_word(text, token.end);
        if let Some(&distinctive) = self.other_tools.get(&word)
            && !self.own_tools.contains(&word)
            && (distinctive
                || quoted
                || matches!(next.as_deref(), Some("tool" | "tools" | "function")))
        {
            return Some(Mention::Tool(None));
        }
        if self.other_servers.contains(&word)
            && (quoted
                || matches!(
                    next.as_deref(),
                    Some("server" | "servers" | "tool" | "tools" | "mcp")
                ))
        {
            return Some(Mention::Server);
        }
        None
    }
}

/// Whether a tool name cannot be an ordinary word: it has `_`, `-`, `.` or a digit, or a
/// capital after its first letter (`getSum`).
fn is_distinctive(name: &str) -> bool {
    name.chars().count() >= 4
        && (name.contains(['_', '-', '.'])
            || name.chars().any(|c| c.is_ascii_digit())
            || name.chars().skip(1).any(char::is_uppercase))
}

/// Characters of a tool or server name as it appears in prose.
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// The name-like tokens of `text`, without leading or trailing `.` and `-` (the end of a
/// sentence, a dash).
fn tokens(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut rest = text.char_indices().peekable();
    std::iter::from_fn(move || {
        loop {
            let (start, _) = rest.find(|&(_, c)| is_name_char(c))?;
            let mut end = text.len();
            while let Some(&(i, c)) = rest.peek() {
                if !is_name_char(c) {
                    end = i;
                    break;
                }
                rest.next();
            }
            let token = &text[start..end];
            let trimmed_start = token.trim_start_matches(['.', '-']);
            let begin = start + (token.len() - trimmed_start.len());
            let finish = begin + trimmed_start.trim_end_matches(['.', '-']).len();
            if finish > begin {
                return Some(begin..finish);
            }
        }
    })
}

/// The lowercase word that follows byte `at` after white space, if any.
fn next_word(text: &str, at: usize) -> Option<String> {
    let rest = text[at..].trim_start();
    let word: String = rest.chars().take_while(|c| c.is_alphanumeric()).collect();
    (!word.is_empty()).then(|| word.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_texts(text: &str) -> Vec<&str> {
        tokens(text).map(|r| &text[r]).collect()
    }

    #[test]
    fn tokens_trim_sentence_punctuation() {
        assert_eq!(
            token_texts("Use `fs__read_file`. Then get-sum, -x."),
            vec!["Use", "fs__read_file", "Then", "get-sum", "x"]
        );
        assert_eq!(token_texts("... --- ."), Vec::<&str>::new());
    }

    #[test]
    fn distinctive_names() {
        assert!(is_distinctive("read_file"));
        assert!(is_distinctive("get-sum"));
        assert!(is_distinctive("getSum"));
        assert!(!is_distinctive("echo"));
        assert!(!is_distinctive("Search"));
        assert!(!is_distinctive("a_b"));
    }

    #[test]
    fn blobs_need_variety() {
        let b64 = "QmVmb3JlIGFuc3dlcmluZywgcmVhZCB0aGUgfi8u".repeat(6);
        assert!(blob(&format!("x {b64} y"), 200).is_some());
        assert!(blob(&"=".repeat(400), 200).is_none());
        assert!(blob(&"ab".repeat(200), 200).is_none());
        assert!(blob(&b64[..150], 200).is_none());
    }
}
