//! One pass over a line that is a single message: JSON syntax, no key repeated in any
//! object, and where the envelope's members sit, all at once.
//!
//! [`super::message::parse`] used to walk every line twice with `serde_json`: a
//! strict pass refusing duplicate keys, then the envelope with borrowed raw values.
//! That was ~13k instructions of a ~61k `tools/call` (`docs/benchmark.md`). This scan
//! does both in one walk, but only for the lines it is sure about: it accepts a line
//! only when `serde_json` would accept it too and read the same envelope, and answers
//! `None` for anything it is not built to judge (a batch, an escaped key, an exponent,
//! a `\uD8xx` escape, deep nesting, a long number) or any error at all. The caller then
//! takes the `serde_json` path, which stays the reference: it decides every refusal and
//! words every error, so no error message changes.
//!
//! Stricter than `serde_json` is allowed (it only costs the slow path); looser is not.
//! Each rule below is therefore one `serde_json` enforces as well: whitespace is
//! space, tab, CR and LF; strings hold no control character and only the escapes JSON
//! defines; numbers follow the JSON grammar (no leading zero, digits after a `.`);
//! nothing but whitespace follows the top-level object.

use std::ops::Range;

/// Where the envelope's members sit in the line (each value without surrounding
/// whitespace), as `serde_json` would borrow them as raw values.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct EnvelopeSpans {
    pub jsonrpc: Option<Range<usize>>,
    pub id: Option<Range<usize>>,
    pub method: Option<Range<usize>>,
    pub params: Option<Range<usize>>,
    pub result: Option<Range<usize>>,
    pub error: Option<Range<usize>>,
    /// The members of `params` when it is an object: each key (quotes included) and
    /// value, in order. The stages ask for them about ten times a `tools/call`; found
    /// here, in the same walk, `params` is not walked again to index them.
    pub params_members: Option<Vec<(Range<usize>, Range<usize>)>>,
}

/// Nesting the scan follows; deeper lines go to `serde_json` (its limit is 128).
const MAX_DEPTH: usize = 64;

/// Longest number the scan judges. Without an exponent, a number this long cannot
/// overflow an `f64` (`serde_json` refuses one that does), so no figure needs checking.
const MAX_NUMBER: usize = 100;

/// Keys of one object compared pairwise before a hash set takes over.
const LINEAR_KEYS: usize = 16;

/// The envelope of `text` when it is one JSON object that `serde_json`'s strict parse
/// accepts (no repeated key anywhere); `None` when it is not, or when the scan cannot
/// tell (see the module docs): then the `serde_json` path decides.
pub(crate) fn envelope(text: &str) -> Option<EnvelopeSpans> {
    let mut scan = Scan {
        bytes: text.as_bytes(),
        at: 0,
    };
    scan.skip_space();
    if scan.peek()? != b'{' {
        return None;
    }
    let mut spans = EnvelopeSpans::default();
    scan.object(1, Object::Message(&mut spans))?;
    scan.skip_space();
    (scan.at == scan.bytes.len()).then_some(spans)
}

struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// What an object's walk notes besides checking it.
enum Object<'s> {
    /// The message itself: where the envelope's members are.
    Message(&'s mut EnvelopeSpans),
    /// Its `params`: each member's key and value.
    Params(&'s mut Vec<(Range<usize>, Range<usize>)>),
    /// Anything deeper: nothing.
    Inner,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(depth + 1, Object::Inner),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    fn number(&mut self) -> Option<()> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            let fraction = self.at;
            self.digits();
            if self.at == fraction {
                return None;
            }
        }
        // An exponent could overflow: `serde_json` judges it.
        if matches!(self.peek(), Some(b'e' | b'E')) || self.at - start > MAX_NUMBER {
            return None;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
    }

    /// Skips the string at `self.at` (a `"`): its bytes between the quotes, and
    /// whether it has no escape (then those bytes are its decoded text).
    ///
    /// Inlined, with escapes left to [`Scan::escaped_string`]: twenty strings a
    /// `tools/call` (keys, mostly, of a few bytes) each paid a call's set-up (six
    /// registers saved, four constants loaded) around one step of the word search.
    #[inline]
    fn string(&mut self) -> Option<(Range<usize>, bool)> {
        let start = self.at + 1;
        let end = self.next_special(start)?;
        if self.bytes[end] == b'"' {
            self.at = end + 1;
            return Some((start..end, true));
        }
        self.escaped_string(start, end)
    }

    /// [`Scan::string`] from `i`, its first `\` or control character.
    #[cold]
    #[inline(never)]
    fn escaped_string(&mut self, start: usize, mut i: usize) -> Option<(Range<usize>, bool)> {
        let mut plain = true;
        loop {
            let end = self.next_special(i)?;
            match self.bytes[end] {
                b'"' => {
                    self.at = end + 1;
                    return Some((start..end, plain));
                }
                b'\\' => {
                    plain = false;
                    i = end + 1 + self.escape(end + 1)?;
                }
                // A control character must be escaped (`serde_json` refuses it raw).
                _ => return None,
            }
        }
    }

    /// Where the first `"`, `\` or control character at or after `i` is
    /// ([`next_special`]).
    fn next_special(&self, i: usize) -> Option<usize> {
        next_special(self.bytes, i)
    }

    /// The length of the escape whose letter is at `at` (after its `\`).
    fn escape(&self, at: usize) -> Option<usize> {
        match *self.bytes.get(at)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(1),
            b'u' => {
                let hex = self.bytes.get(at + 1..at + 5)?;
                // Surrogates (`\uD800`-`\uDFFF`) must pair up: `serde_json` judges them.
                (hex.iter().all(u8::is_ascii_hexdigit) && !matches!(hex[0], b'd' | b'D'))
                    .then_some(5)
            }
            _ => None,
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.skip_space();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.value(depth)?;
            if !self.next_member(b']')? {
                return Some(());
            }
        }
    }

    /// After a member of an array or object: `Some(true)` past a `,` (another member
    /// follows), `Some(false)` past `close` (the end), `None` for anything else.
    fn next_member(&mut self, close: u8) -> Option<bool> {
        self.skip_space();
        let byte = self.peek()?;
        self.at += 1;
        if byte == b',' {
            self.skip_space();
            Some(true)
        } else {
            (byte == close).then_some(false)
        }
    }

    /// Skips the object at `self.at` (a `{`), refusing a repeated key, and notes what
    /// `notes` asks for.
    fn object(&mut self, depth: usize, mut notes: Object<'_>) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.skip_space();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        let mut first: [&[u8]; LINEAR_KEYS] = [&[]; LINEAR_KEYS];
        let mut count = 0;
        // Made only for an object with more keys than `first` holds: a new set seeds
        // its hasher from a thread-local, which every object would pay.
        let mut more: Option<std::collections::HashSet<&[u8]>> = None;
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let (key, plain) = self.string()?;
            // An escaped key is compared after decoding: `serde_json` does that.
            if !plain {
                return None;
            }
            let quoted = key.start - 1..key.end + 1;
            let key: &'a [u8] = &self.bytes[key];
            if count < LINEAR_KEYS {
                if first[..count].contains(&key) {
                    return None;
                }
                first[count] = key;
            } else if !more
                .get_or_insert_with(|| first.into_iter().collect())
                .insert(key)
            {
                return None;
            }
            count += 1;
            self.skip_space();
            if self.peek()? != b':' {
                return None;
            }
            self.at += 1;
            self.skip_space();
            let start = self.at;
            match &mut notes {
                Object::Message(spans) => {
                    if key == b"params" && self.peek() == Some(b'{') {
                        let mut members = Vec::new();
                        self.object(depth + 1, Object::Params(&mut members))?;
                        spans.params_members = Some(members);
                    } else {
                        self.value(depth)?;
                    }
                    let slot = match key {
                        b"jsonrpc" => Some(&mut spans.jsonrpc),
                        b"id" => Some(&mut spans.id),
                        b"method" => Some(&mut spans.method),
                        b"params" => Some(&mut spans.params),
                        b"result" => Some(&mut spans.result),
                        b"error" => Some(&mut spans.error),
                        _ => None,
                    };
                    if let Some(slot) = slot {
                        *slot = Some(start..self.at);
                    }
                }
                Object::Params(members) => {
                    self.value(depth)?;
                    members.push((quoted, start..self.at));
                }
                Object::Inner => self.value(depth)?,
            }
            if !self.next_member(b'}')? {
                return Some(());
            }
        }
    }
}

/// Where the first `"`, `\` or control character at or after `i` is, looked for
/// eight bytes at a time: a string's bytes are most of a line, and a byte-by-byte
/// loop was the scan's largest cost (and the audit writer's escaping uses it too).
pub(crate) fn next_special(bytes: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().ok()?);
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        // Each term sets the high bit of a byte that is `"`, `\` or below 0x20
        // (the classic zero-byte test): exact for the lowest such byte, which is
        // the only one read (a borrow can only mark bytes above a true one).
        let found = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word))
            & HIGH;
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes
        .get(i..)?
        .iter()
        .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
        .map(|at| i + at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Past the keys compared pairwise, a set takes over: a repeat there is refused
    /// as one among the first, and distinct keys pass.
    #[test]
    fn a_repeated_key_is_refused_past_the_pairwise_keys_too() {
        let object = |keys: &[String]| {
            let members: Vec<String> = keys.iter().map(|k| format!("\"{k}\":1")).collect();
            format!(
                "{{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":{{{}}}}}",
                members.join(",")
            )
        };
        let mut keys: Vec<String> = (0..LINEAR_KEYS + 8).map(|i| format!("k{i}")).collect();
        assert!(envelope(&object(&keys)).is_some());
        for repeat in [0, LINEAR_KEYS - 1, LINEAR_KEYS, LINEAR_KEYS + 7] {
            keys.push(format!("k{repeat}"));
            assert!(envelope(&object(&keys)).is_none(), "k{repeat} twice");
            keys.pop();
        }
    }

    proptest! {
        /// The eight-bytes-at-a-time search finds what a byte-by-byte one finds.
        #[test]
        fn the_word_search_finds_the_first_special_byte(
            bytes in prop::collection::vec(
                prop_oneof![any::<u8>(), Just(b'"'), Just(b'\\'), Just(0x1f), Just(0x20)],
                0..40,
            ),
            from in 0usize..40,
        ) {
            let scan = Scan { bytes: &bytes, at: 0 };
            let from = from.min(bytes.len());
            let naive = bytes[from..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .map(|at| from + at);
            prop_assert_eq!(scan.next_special(from), naive);
        }
    }
}
