//! RFC 8785 (JCS) canonical JSON and `sha256:` digests (SPEC "Pinning"), for pins and
//! for the audit trail's record digests and argument keys.
//!
//! Owns one thing: turning a definition, exactly as an upstream sent it, into the bytes a
//! pin is taken over. Two texts that mean the same JSON (key order, whitespace, string
//! escapes, `1.50` vs `15e-1`) canonicalize to the same string; any change to a key, a
//! string, a number or the members present changes it. Pure: no I/O, no logging.
//!
//! # How
//! The text is parsed by the strict parser below into a `Node` tree, then written out
//! as JCS:
//! - object members sorted by their keys' UTF-16 code units (RFC 8785 3.2.3), so
//!   `"\u{e9}"` sorts before `"\u{1f600}"` and `"\u{1f600}"` (surrogates `d83d de00`)
//!   before `"\u{fb33}"`, unlike UTF-8 byte order;
//! - no whitespace;
//! - strings with only `"`, `\` and controls below U+0020 escaped (`\b \t \n \f \r`, else
//!   `\u00xx` in lowercase hex); everything else literal UTF-8 (3.2.2.2);
//! - numbers as ECMAScript's `Number.prototype.toString` writes the IEEE-754 double
//!   (3.2.2.3), see `write_number`.
//!
//! # Decisions
//! - **Own parser, not `serde_json`.** `serde_json` without its `float_roundtrip` feature
//!   (which this crate does not enable) parses many decimals to a neighbouring double
//!   (about 30% of randomly chosen shortest round-trip texts), and it keeps the last of
//!   duplicate keys silently. Both would let two readers of the same text disagree about
//!   what was pinned. The parser here is strict RFC 8259, hands the number text to
//!   `str::parse::<f64>` (correctly rounded), and refuses duplicate keys.
//! - **Refused, fail closed:** duplicate keys (compared after unescaping, so `"a"` and
//!   `"\u0061"` collide), numbers whose magnitude overflows a double (`1e400`; underflow
//!   such as `1e-400` rounds to `0`, as in ECMAScript), unpaired UTF-16 surrogate
//!   escapes (I-JSON, RFC 7493, forbids them and `str` cannot hold them), raw control
//!   characters in strings, a byte-order mark, trailing text, and nesting deeper than
//!   [`MAX_DEPTH`].
//! - **`_meta`** is removed only from the top-level object, and only by
//!   [`canonicalize_without_meta`] / [`digest`]; a top level that is not an object is
//!   digested whole.

use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

/// Prefix of every digest this module produces.
pub const DIGEST_PREFIX: &str = "sha256:";

/// The member MCP reserves for metadata; the digest is taken without it (SPEC "Pinning").
pub const META_KEY: &str = "_meta";

/// Deepest nesting of arrays and objects accepted. `serde_json`, which reads the JSON-RPC
/// message a definition arrives in, stops at 128 levels, so a definition nested inside
/// a message never gets near this; it also bounds this module's recursion.
pub const MAX_DEPTH: usize = 128;

/// Why a text could not be canonicalized. Offsets are in bytes from the start of the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// The text is not JSON (RFC 8259).
    #[error("invalid json at byte {offset}: {reason}")]
    Syntax {
        /// Where the problem was found.
        offset: usize,
        /// What was wrong there.
        reason: &'static str,
    },
    /// A number that is not a finite IEEE-754 double, such as `1e400`.
    #[error("number `{text}` at byte {offset} is out of range for a double")]
    NumberOutOfRange {
        /// Where the number starts.
        offset: usize,
        /// The number as written (digits, sign, `.`, `e` only).
        text: String,
    },
    /// An object with two members of the same name (after unescaping).
    #[error("duplicate key `{}` at byte {offset}", key.escape_debug())]
    DuplicateKey {
        /// Where the second occurrence starts.
        offset: usize,
        /// The key, unescaped.
        key: String,
    },
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    #[error("json nested deeper than {limit} levels at byte {offset}")]
    TooDeep {
        /// Where the level over the limit opens.
        offset: usize,
        /// [`MAX_DEPTH`].
        limit: usize,
    },
}

/// The RFC 8785 canonical form of `json_text`.
pub fn canonicalize(json_text: &str) -> Result<String, CanonicalError> {
    let node = parse(json_text)?;
    Ok(to_canonical(&node))
}

/// Whether `json_text` is already its own RFC 8785 canonical form, judged by one scan
/// that accepts only what it can vouch for: no whitespace, strings without escapes or
/// control bytes, ASCII keys in strictly increasing order (so no duplicates), integers
/// of at most 15 digits without a sign on zero, nesting within [`MAX_DEPTH`]. `false`
/// says nothing (`{"b":1,"a":2}`, `1.0` and invalid JSON all answer it): then ask
/// [`canonicalize`]. The audit writer hashes a call's arguments in canonical form, and
/// most clients send them compact and sorted, which this answers without a parse tree.
#[must_use]
pub fn is_canonical(json_text: &str) -> bool {
    let mut scan = CanonicalScan {
        bytes: json_text.as_bytes(),
        pos: 0,
    };
    scan.value(0) && scan.pos == scan.bytes.len()
}

/// [`is_canonical`]'s cursor.
struct CanonicalScan<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> CanonicalScan<'a> {
    fn value(&mut self, depth: usize) -> bool {
        match self.bytes.get(self.pos) {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().is_some(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            _ => false,
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// `0`, or an optional `-` and 1-15 digits without a leading zero: exactly the
    /// text ECMAScript gives the double (all such integers are below 2^53).
    fn integer(&mut self) -> bool {
        let negative = self.bytes[self.pos] == b'-';
        let start = self.pos + usize::from(negative);
        let digits = self.bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let first = self.bytes.get(start).copied();
        let ok = match (first, digits) {
            (Some(b'0'), 1) => !negative,
            (Some(b'1'..=b'9'), 1..=15) => true,
            _ => false,
        };
        self.pos = start + digits;
        // A fraction or an exponent would need the number's own canonical text.
        ok && !matches!(self.bytes.get(self.pos), Some(b'.' | b'e' | b'E'))
    }

    /// A string with nothing to escape: returns its content's bytes.
    fn string(&mut self) -> Option<&'a [u8]> {
        let start = self.pos + 1;
        let len = self.bytes[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if self.bytes[start + len] != b'"' {
            return None;
        }
        self.pos = start + len + 1;
        Some(&self.bytes[start..start + len])
    }

    fn array(&mut self, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        self.pos += 1;
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return true;
        }
        loop {
            if !self.value(depth) {
                return false;
            }
            match self.next_member(b']') {
                Some(true) => {}
                Some(false) => return true,
                None => return false,
            }
        }
    }

    /// After a member of an array or object: `Some(true)` past a `,` (another member
    /// follows), `Some(false)` past `close` (the end), `None` for anything else.
    fn next_member(&mut self, close: u8) -> Option<bool> {
        let byte = *self.bytes.get(self.pos)?;
        self.pos += 1;
        if byte == b',' {
            Some(true)
        } else {
            (byte == close).then_some(false)
        }
    }

    fn object(&mut self, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        self.pos += 1;
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return true;
        }
        let mut previous: Option<&'a [u8]> = None;
        loop {
            if self.bytes.get(self.pos) != Some(&b'"') {
                return false;
            }
            let Some(key) = self.string() else {
                return false;
            };
            // ASCII keys sort by bytes as by UTF-16 code units; others are left to
            // the full canonicalization.
            if !key.is_ascii() || previous.is_some_and(|p| p >= key) {
                return false;
            }
            previous = Some(key);
            if self.bytes.get(self.pos) != Some(&b':') {
                return false;
            }
            self.pos += 1;
            if !self.value(depth) {
                return false;
            }
            match self.next_member(b'}') {
                Some(true) => {}
                Some(false) => return true,
                None => return false,
            }
        }
    }
}

/// The RFC 8785 canonical form of `json_text` without the top-level object's `_meta`
/// member. `_meta` members nested deeper are kept; a top level that is not an object is
/// canonicalized whole.
pub fn canonicalize_without_meta(json_text: &str) -> Result<String, CanonicalError> {
    canonicalize_without(json_text, &[META_KEY])
}

/// The RFC 8785 canonical form of `json_text` without the top-level object's members
/// named in `keys` (deeper members of those names are kept); a top level that is not
/// an object is canonicalized whole.
fn canonicalize_without(json_text: &str, keys: &[&str]) -> Result<String, CanonicalError> {
    let mut node = parse(json_text)?;
    if let Node::Object(members) = &mut node {
        // Keys are unique (duplicates were refused), so each is removed at most once.
        members.retain(|(key, _)| !keys.contains(&key.as_str()));
    }
    Ok(to_canonical(&node))
}

/// `sha256:<lowercase hex>` of [`canonicalize`] without the top-level members named in
/// `keys` (the digest a `requestState` is bound to: the params without `_meta`,
/// `inputResponses` and `requestState`, which change between a request and its retry).
pub fn digest_without(json_text: &str, keys: &[&str]) -> Result<String, CanonicalError> {
    Ok(sha256_hex(&canonicalize_without(json_text, keys)?))
}

/// `sha256:<lowercase hex>` of the UTF-8 bytes of [`canonicalize_without_meta`].
pub fn digest(json_text: &str) -> Result<String, CanonicalError> {
    Ok(sha256_hex(&canonicalize_without_meta(json_text)?))
}

/// `sha256:<lowercase hex>` of the UTF-8 bytes of [`canonicalize`]: the whole value,
/// the top-level `_meta` included (an item's digest, SPEC "Pinning": a tool's `_meta`,
/// such as a UI resource URI, is part of what was approved).
pub fn digest_whole(json_text: &str) -> Result<String, CanonicalError> {
    Ok(sha256_hex(&canonicalize(json_text)?))
}

fn sha256_hex(canonical: &str) -> String {
    let mut out = String::with_capacity(DIGEST_PREFIX.len() + 64);
    out.push_str(DIGEST_PREFIX);
    for byte in Sha256::digest(canonical.as_bytes()) {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// A parsed JSON value: only what JCS needs. Numbers are kept as the double they denote
/// (JCS canonicalizes the value, not the text); object members in document order.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

// ---------------------------------------------------------------------------------------
// Parsing (RFC 8259, strict)
// ---------------------------------------------------------------------------------------

fn parse(text: &str) -> Result<Node, CanonicalError> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    parser.skip_whitespace();
    let node = parser.value()?;
    parser.skip_whitespace();
    if parser.pos != parser.bytes.len() {
        return Err(parser.syntax("unexpected text after the json value"));
    }
    Ok(node)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Arrays and objects currently open.
    depth: usize,
}

impl Parser<'_> {
    fn syntax(&self, reason: &'static str) -> CanonicalError {
        CanonicalError::Syntax {
            offset: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Consumes `byte` or fails with `reason`.
    fn expect(&mut self, byte: u8, reason: &'static str) -> Result<(), CanonicalError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(reason))
        }
    }

    fn value(&mut self) -> Result<Node, CanonicalError> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Node::String),
            Some(b't') => self.literal("true", Node::Bool(true)),
            Some(b'f') => self.literal("false", Node::Bool(false)),
            Some(b'n') => self.literal("null", Node::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.syntax("expected a json value")),
            None => Err(self.syntax("unexpected end of input, expected a json value")),
        }
    }

    fn literal(&mut self, word: &'static str, node: Node) -> Result<Node, CanonicalError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(node)
        } else {
            Err(self.syntax("expected `true`, `false` or `null`"))
        }
    }

    /// Enters an array or object at `self.pos`.
    fn open(&mut self) -> Result<(), CanonicalError> {
        if self.depth == MAX_DEPTH {
            return Err(CanonicalError::TooDeep {
                offset: self.pos,
                limit: MAX_DEPTH,
            });
        }
        self.depth += 1;
        self.pos += 1;
        self.skip_whitespace();
        Ok(())
    }

    fn array(&mut self) -> Result<Node, CanonicalError> {
        self.open()?;
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                items.push(self.value()?);
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.skip_whitespace();
                    }
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.syntax("expected `,` or `]`")),
                }
            }
        }
        self.depth -= 1;
        Ok(Node::Array(items))
    }

    fn object(&mut self) -> Result<Node, CanonicalError> {
        self.open()?;
        let mut members = Vec::new();
        let mut offsets = Vec::new();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                if self.peek() != Some(b'"') {
                    return Err(self.syntax("expected a string key"));
                }
                offsets.push(self.pos);
                let key = self.string()?;
                self.skip_whitespace();
                self.expect(b':', "expected `:` after a key")?;
                self.skip_whitespace();
                members.push((key, self.value()?));
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.skip_whitespace();
                    }
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.syntax("expected `,` or `}`")),
                }
            }
        }
        refuse_duplicates(&members, &offsets)?;
        self.depth -= 1;
        Ok(Node::Object(members))
    }

    /// A string starting at the opening quote, unescaped.
    fn string(&mut self) -> Result<String, CanonicalError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(byte) = self.peek() {
                if byte == b'"' || byte == b'\\' || byte < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The bytes stopped at are ASCII, so both ends are character boundaries.
            out.push_str(&self.text[start..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                Some(_) => return Err(self.syntax("unescaped control character in a string")),
                None => return Err(self.syntax("unexpected end of input inside a string")),
            }
        }
    }

    /// The character an escape denotes; `self.pos` is just after the backslash.
    fn escape(&mut self) -> Result<char, CanonicalError> {
        let Some(byte) = self.peek() else {
            return Err(self.syntax("unexpected end of input inside a string"));
        };
        let simple = match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                self.pos += 1;
                return self.unicode_escape();
            }
            _ => return Err(self.syntax("invalid escape in a string")),
        };
        self.pos += 1;
        Ok(simple)
    }

    /// A `\uXXXX` escape, or a surrogate pair of two; `self.pos` is just after the `u`.
    fn unicode_escape(&mut self) -> Result<char, CanonicalError> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if !self.bytes[self.pos..].starts_with(b"\\u") {
                    return Err(self.syntax("unpaired surrogate escape in a string"));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.syntax("unpaired surrogate escape in a string"));
                }
                0x1_0000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00)
            }
            0xDC00..=0xDFFF => {
                return Err(self.syntax("unpaired surrogate escape in a string"));
            }
            _ => u32::from(first),
        };
        char::from_u32(code).ok_or_else(|| self.syntax("invalid unicode escape in a string"))
    }

    fn hex4(&mut self) -> Result<u16, CanonicalError> {
        let mut value: u16 = 0;
        for _ in 0..4 {
            let digit = match self.peek() {
                Some(byte @ b'0'..=b'9') => byte - b'0',
                Some(byte @ b'a'..=b'f') => byte - b'a' + 10,
                Some(byte @ b'A'..=b'F') => byte - b'A' + 10,
                _ => return Err(self.syntax("expected four hex digits after `\\u`")),
            };
            value = (value << 4) | u16::from(digit);
            self.pos += 1;
        }
        Ok(value)
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, as the double it denotes.
    fn number(&mut self) -> Result<Node, CanonicalError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.syntax("expected a digit in a number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.at_least_one_digit()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.at_least_one_digit()?;
        }
        let text = &self.text[start..self.pos];
        // Rust's float parsing accepts this grammar and rounds correctly; it saturates to
        // infinity on overflow rather than failing.
        let value: f64 = text.parse().map_err(|_| CanonicalError::Syntax {
            offset: start,
            reason: "invalid number",
        })?;
        if !value.is_finite() {
            return Err(CanonicalError::NumberOutOfRange {
                offset: start,
                text: text.to_owned(),
            });
        }
        Ok(Node::Number(value))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn at_least_one_digit(&mut self) -> Result<(), CanonicalError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.syntax("expected a digit in a number"));
        }
        self.digits();
        Ok(())
    }
}

/// Fails on the second occurrence (in document order) of any key.
fn refuse_duplicates(members: &[(String, Node)], offsets: &[usize]) -> Result<(), CanonicalError> {
    let mut order: Vec<usize> = (0..members.len()).collect();
    // Stable, so within a run of equal keys the later member comes later.
    order.sort_by(|&a, &b| members[a].0.cmp(&members[b].0));
    for pair in order.windows(2) {
        if let [first, second] = *pair
            && members[first].0 == members[second].0
        {
            return Err(CanonicalError::DuplicateKey {
                offset: offsets[second],
                key: members[second].0.clone(),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Writing (RFC 8785 section 3.2)
// ---------------------------------------------------------------------------------------

fn to_canonical(node: &Node) -> String {
    let mut out = String::new();
    write_node(node, &mut out);
    out
}

fn write_node(node: &Node, out: &mut String) {
    match node {
        Node::Null => out.push_str("null"),
        Node::Bool(true) => out.push_str("true"),
        Node::Bool(false) => out.push_str("false"),
        Node::Number(value) => write_number(*value, out),
        Node::String(text) => write_string(text, out),
        Node::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_node(item, out);
            }
            out.push(']');
        }
        Node::Object(members) => {
            let mut sorted: Vec<&(String, Node)> = members.iter().collect();
            sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, (key, value)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_node(value, out);
            }
            out.push('}');
        }
    }
}

/// A string as ECMAScript's `JSON.stringify` writes it (RFC 8785 3.2.2.2).
fn write_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if c < '\u{20}' => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A finite double as ECMAScript's `Number.prototype.toString` writes it (ECMA-262
/// `Number::toString`, RFC 8785 3.2.2.3).
///
/// [`shortest_digits`] gives the digits `s` ECMAScript picks (k of them) and the
/// exponent of the first; with `n` = that exponent + 1, the value is `s × 10^(n−k)`
/// and ECMAScript lays it out as:
/// - `k ≤ n ≤ 21`: the digits, then `n − k` zeros (`1e3` → `1000`);
/// - `0 < n ≤ 21`: a point after the first `n` digits (`1.5`);
/// - `−6 < n ≤ 0`: `0.`, `−n` zeros, the digits (`0.000001`);
/// - otherwise exponential: the first digit, `.` and the rest if any, `e`, the sign of
///   `n − 1` always written, `|n − 1|` (`1e+21`, `1e-7`, `1.5e-7`).
///
/// Both zeros are `0`. Non-finite values are refused by the parser before they get here.
fn write_number(value: f64, out: &mut String) {
    if value == 0.0 {
        out.push('0');
        return;
    }
    if value < 0.0 {
        out.push('-');
    }
    let (digits, exponent) = shortest_digits(value.abs());
    let k = i32::try_from(digits.len()).expect("a double has at most 17 significant digits");
    let n = exponent + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        push_zeros(out, n - k);
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(index(n));
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        push_zeros(out, -n);
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if n > 0 { '+' } else { '-' });
        // Writing to a String cannot fail.
        let _ = write!(out, "{}", (n - 1).unsigned_abs());
    }
}

/// The digits `s` ECMAScript picks for a positive finite double, without trailing
/// zeros, and the decimal exponent of the first: the fewest digits that read back as
/// `value`, and of those the closest to it, a tie going to the even one.
///
/// Rust's `{:e}` gives the fewest digits but breaks such a tie upwards
/// (`1424953923781206.25` → `…206.3`, where RFC 8785 appendix B wants `…206.2`).
/// Formatting with exactly that many digits rounds the exact binary value to nearest,
/// ties to even; that is ECMAScript's choice whenever it still reads back as `value`.
fn shortest_digits(value: f64) -> (String, i32) {
    let shortest = split_scientific(&format!("{value:e}"));
    let precision = shortest.0.len() - 1;
    let nearest = format!("{value:.precision$e}");
    if nearest
        .parse::<f64>()
        .is_ok_and(|back| back.to_bits() == value.to_bits())
    {
        let (mut digits, exponent) = split_scientific(&nearest);
        // Cannot happen (fewer digits would then read back too), but stay canonical.
        while digits.len() > 1 && digits.ends_with('0') {
            digits.pop();
        }
        return (digits, exponent);
    }
    shortest
}

/// The significant digits and the exponent of Rust's `{:e}` output for a positive double.
fn split_scientific(text: &str) -> (String, i32) {
    let (mantissa, exponent) = text
        .split_once('e')
        .expect("`{:e}` of a finite double always writes an exponent");
    let exponent = exponent
        .parse()
        .expect("`{:e}` writes the exponent as a decimal integer");
    (
        mantissa.chars().filter(char::is_ascii_digit).collect(),
        exponent,
    )
}

fn push_zeros(out: &mut String, count: i32) {
    for _ in 0..count {
        out.push('0');
    }
}

/// An integer's decimal text, as JSON (and RFC 8785, for integers a double holds exactly)
/// writes it, kept on the stack: our ids in forwarded lines and the audit record's
/// integers, where `fmt` cost a formatter run (and `to_string` an allocation) each.
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    #[must_use]
    pub fn new(mut n: u64) -> Self {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Self { digits, start }
    }

    /// The text: what `n.to_string()` gives.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // ASCII digits only, so the check never fails.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

/// A small non-negative count as an index.
fn index(n: i32) -> usize {
    usize::try_from(n).expect("only called with 0 < n ≤ 21")
}

/// The tests' generator, shared with `tests/fuzz.rs` (one copy: see its docs).
#[cfg(test)]
#[path = "../tests/support/xorshift.rs"]
mod xorshift;

#[cfg(test)]
mod tests {
    use super::xorshift::Xorshift;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimal_is_the_integer_s_text() {
        for n in [0, 1, 9, 10, 99, 100, 4_294_967_296, (1 << 53) - 1, u64::MAX] {
            assert_eq!(Decimal::new(n).as_str(), n.to_string());
        }
    }

    fn number(value: f64) -> String {
        let mut out = String::new();
        write_number(value, &mut out);
        out
    }

    #[test]
    fn the_canonical_scan_vouches_only_for_canonical_text() {
        for text in [
            "{\"message\":\"0123456789abcdef é 😀 / \u{7f}\"}",
            r#"{"a":[1,-2,0,true,false,null,{},[]],"b":{"c":"d"},"e":999999999999999}"#,
            "[]",
            "0",
            r#""x""#,
        ] {
            assert!(is_canonical(text), "{text}");
            assert_eq!(canonicalize(text).as_deref(), Ok(text));
        }
        for text in [
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":1}"#,
            r#"{ "a":1}"#,
            r#"{"a":1} "#,
            r#"{"a":"\u0078"}"#,
            r#"{"a":"\n"}"#,
            r#"{"é":1}"#,
            "1.0",
            "1e3",
            "-0",
            "01",
            "1000000000000000",
            "[1,]",
            "{",
            r#"{"a"}"#,
            "tru",
            "",
            "\"a\tb\"",
        ] {
            assert!(!is_canonical(text), "{text}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(!is_canonical(&deep));
        let deepest = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(is_canonical(&deepest), canonicalize(&deepest).is_ok());
    }

    // ---- RFC 8785 examples --------------------------------------------------------------

    /// RFC 8785 section 3.2.2 and 3.2.4: the sample input and its canonical form.
    #[test]
    fn rfc8785_sample_object() {
        let input = r#"{
            "numbers": [333333333.33333329, 1E30, 4.50,
                        2e-3, 0.000000000000000000000000001],
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;
        assert_eq!(
            canonicalize(input).expect("valid"),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    /// RFC 8785 section 3.2.3: sorting by UTF-16 code units.
    #[test]
    fn rfc8785_sorting_example() {
        let input = r#"{
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\ud83d\ude00": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let expected = concat!(
            r#"{"\r":"Carriage Return","1":"One","#,
            "\"\u{80}\":\"Control\",",
            "\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",",
            "\"\u{20ac}\":\"Euro Sign\",",
            "\"\u{1f600}\":\"Emoji: Grinning Face\",",
            "\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}",
        );
        assert_eq!(canonicalize(input).expect("valid"), expected);
    }

    /// UTF-8 byte order would put U+FB33 (ef ac b3) before U+1F600 (f0 9f 98 80).
    #[test]
    fn keys_sort_by_utf16_not_utf8() {
        assert_eq!(
            canonicalize("{\"\u{1f600}\":1,\"\u{fb33}\":2,\"\u{e9}\":3}").expect("valid"),
            "{\"\u{e9}\":3,\"\u{1f600}\":1,\"\u{fb33}\":2}"
        );
    }

    /// RFC 8785 appendix B: IEEE-754 bit patterns and their serialization.
    #[test]
    fn rfc8785_appendix_b_numbers() {
        let vectors: &[(u64, &str)] = &[
            (0x0000_0000_0000_0000, "0"),
            (0x8000_0000_0000_0000, "0"),
            (0x0000_0000_0000_0001, "5e-324"),
            (0x8000_0000_0000_0001, "-5e-324"),
            (0x7fef_ffff_ffff_ffff, "1.7976931348623157e+308"),
            (0xffef_ffff_ffff_ffff, "-1.7976931348623157e+308"),
            (0x4340_0000_0000_0000, "9007199254740992"),
            (0xc340_0000_0000_0000, "-9007199254740992"),
            (0x4430_0000_0000_0000, "295147905179352830000"),
            (0x44b5_2d02_c7e1_4af5, "9.999999999999997e+22"),
            (0x44b5_2d02_c7e1_4af6, "1e+23"),
            (0x44b5_2d02_c7e1_4af7, "1.0000000000000001e+23"),
            (0x444b_1ae4_d6e2_ef4e, "999999999999999700000"),
            (0x444b_1ae4_d6e2_ef4f, "999999999999999900000"),
            (0x444b_1ae4_d6e2_ef50, "1e+21"),
            (0x3eb0_c6f7_a0b5_ed8c, "9.999999999999997e-7"),
            (0x3eb0_c6f7_a0b5_ed8d, "0.000001"),
            (0x41b3_de43_5555_5553, "333333333.3333332"),
            (0x41b3_de43_5555_5554, "333333333.33333325"),
            (0x41b3_de43_5555_5555, "333333333.3333333"),
            (0x41b3_de43_5555_5556, "333333333.3333334"),
            (0x41b3_de43_5555_5557, "333333333.33333343"),
            (0xbecb_f647_612f_3696, "-0.0000033333333333333333"),
            (0x4314_3ff3_c1cb_0959, "1424953923781206.2"),
        ];
        for &(bits, expected) in vectors {
            let value = f64::from_bits(bits);
            assert_eq!(number(value), expected, "bits {bits:#018x}");
            // The output is itself JSON that parses back to the same double.
            assert_eq!(canonicalize(expected).expect("valid"), expected);
            let back: f64 = expected.parse().expect("a number");
            if value != 0.0 {
                assert_eq!(back.to_bits(), value.to_bits(), "round trip of {expected}");
            }
        }
    }

    #[test]
    fn rfc8785_literals() {
        assert_eq!(
            canonicalize(" [ null , true , false ] ").expect("valid"),
            "[null,true,false]"
        );
        assert_eq!(canonicalize("null").expect("valid"), "null");
        assert_eq!(canonicalize("\ttrue\r\n").expect("valid"), "true");
    }

    // ---- ECMAScript number formatting ---------------------------------------------------

    #[test]
    fn ecmascript_number_layout() {
        let vectors: &[(&str, &str)] = &[
            ("0", "0"),
            ("-0", "0"),
            ("-0.0e5", "0"),
            ("1", "1"),
            ("-1", "-1"),
            ("1.0", "1"),
            ("0.1", "0.1"),
            ("100", "100"),
            ("1e3", "1000"),
            ("1E+3", "1000"),
            ("1.5", "1.5"),
            ("15e-1", "1.5"),
            ("1.50", "1.5"),
            ("-1.5", "-1.5"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("123456789012345680000", "123456789012345680000"),
            ("1.2345678901234568e20", "123456789012345680000"),
            ("1.2345678901234568e21", "1.2345678901234568e+21"),
            ("1e-7", "1e-7"),
            ("1.5e-7", "1.5e-7"),
            ("0.000001", "0.000001"),
            ("1e-6", "0.000001"),
            ("0.0000015", "0.0000015"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("9007199254740993", "9007199254740992"),
            ("9007199254740992", "9007199254740992"),
            ("18446744073709551616", "18446744073709552000"),
            ("-9223372036854775808", "-9223372036854776000"),
            ("0.30000000000000004", "0.30000000000000004"),
            ("1e-400", "0"),
            ("123.456e-2", "1.23456"),
            // Exactly halfway between two shortest candidates: the even one.
            ("1262743178594836.25", "1262743178594836.2"),
            ("959058246061883.25", "959058246061883.2"),
            ("1424953923781206.25", "1424953923781206.2"),
            ("1424953923781206.75", "1424953923781206.8"),
        ];
        for &(input, expected) in vectors {
            assert_eq!(
                canonicalize(input).expect(input),
                expected,
                "input `{input}`"
            );
        }
    }

    #[test]
    fn string_escapes_follow_json_stringify() {
        assert_eq!(
            canonicalize(
                r#""\u0000\u0001\b\t\n\u000b\f\r\u001f \u007f\u0080\/\"\\\u00e9\ud83d\ude00""#
            )
            .expect("valid"),
            "\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f \u{7f}\u{80}/\\\"\\\\\u{e9}\u{1f600}\""
        );
    }

    // ---- refusals -----------------------------------------------------------------------

    #[test]
    fn duplicate_keys_are_refused() {
        assert_eq!(
            canonicalize(r#"{"a":1,"b":2,"a":3}"#),
            Err(CanonicalError::DuplicateKey {
                offset: 13,
                key: "a".into()
            })
        );
        // Compared after unescaping.
        assert!(matches!(
            canonicalize(r#"{"a":1,"\u0061":1}"#),
            Err(CanonicalError::DuplicateKey { .. })
        ));
        // Nested, and in `_meta`, which is removed only after parsing.
        assert!(matches!(
            digest(r#"{"x":[{"k":1,"k":1}]}"#),
            Err(CanonicalError::DuplicateKey { .. })
        ));
        assert!(matches!(
            digest(r#"{"_meta":{"k":1,"k":2}}"#),
            Err(CanonicalError::DuplicateKey { .. })
        ));
        assert!(matches!(
            digest(r#"{"_meta":1,"_meta":2}"#),
            Err(CanonicalError::DuplicateKey { .. })
        ));
    }

    #[test]
    fn numbers_out_of_range_are_refused() {
        for text in [
            "1e400",
            "-1e400",
            "[1,2e308]",
            r#"{"a":179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792}"#,
        ] {
            assert!(
                matches!(
                    canonicalize(text),
                    Err(CanonicalError::NumberOutOfRange { .. })
                ),
                "{text}"
            );
        }
        assert_eq!(
            canonicalize("1e400").map_err(|e| e.to_string()),
            Err("number `1e400` at byte 0 is out of range for a double".to_owned())
        );
    }

    #[test]
    fn malformed_json_is_refused() {
        for text in [
            "",
            " ",
            "{",
            "[1,]",
            r#"{"a":1,}"#,
            "{a:1}",
            "[1 2]",
            "01",
            "1.",
            ".5",
            "+1",
            "1e",
            "-",
            "NaN",
            "Infinity",
            "tru",
            "nul",
            "'a'",
            "\"a",
            "\"\t\"",
            r#""\x""#,
            r#""\u12""#,
            r#""\ud800""#,
            r#""\ud800\u0041""#,
            r#""\udc00""#,
            "\u{feff}{}",
            "{} {}",
            "[] x",
        ] {
            assert!(
                matches!(canonicalize(text), Err(CanonicalError::Syntax { .. })),
                "`{}` was accepted",
                text.escape_debug()
            );
        }
    }

    #[test]
    fn nesting_to_the_limit_works_and_beyond_is_refused() {
        let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(canonicalize(&nested(100)).expect("100 levels"), nested(100));
        assert_eq!(
            canonicalize(&nested(MAX_DEPTH)).expect("at the limit"),
            nested(MAX_DEPTH)
        );
        assert_eq!(
            canonicalize(&nested(MAX_DEPTH + 1)),
            Err(CanonicalError::TooDeep {
                offset: MAX_DEPTH,
                limit: MAX_DEPTH
            })
        );
        let objects = format!("{}null{}", r#"{"a":"#.repeat(100), "}".repeat(100));
        assert_eq!(canonicalize(&objects).expect("100 levels"), objects);
        assert!(digest(&objects).is_ok());
    }

    // ---- `_meta` ------------------------------------------------------------------------

    #[test]
    fn top_level_meta_does_not_change_the_digest() {
        let plain = digest(r#"{"name":"t","x":{"y":1}}"#).expect("valid");
        assert_eq!(
            digest(r#"{"_meta":{"progressToken":7},"name":"t","x":{"y":1}}"#).expect("valid"),
            plain
        );
        assert_eq!(
            digest(r#"{"name":"t","x":{"y":1},"\u005fmeta":null}"#).expect("valid"),
            plain
        );
        assert_eq!(
            canonicalize_without_meta(r#"{"_meta":1,"b":2,"a":1}"#).expect("valid"),
            r#"{"a":1,"b":2}"#
        );
        // `canonicalize` keeps it.
        assert_eq!(
            canonicalize(r#"{"_meta":1}"#).expect("valid"),
            r#"{"_meta":1}"#
        );
    }

    #[test]
    fn nested_meta_changes_the_digest() {
        let plain = digest(r#"{"name":"t","x":{"y":1}}"#).expect("valid");
        assert_ne!(
            digest(r#"{"name":"t","x":{"y":1,"_meta":{}}}"#).expect("valid"),
            plain
        );
        assert_ne!(
            digest(r#"{"name":"t","x":{"y":1},"a":[{"_meta":1}]}"#).expect("valid"),
            plain
        );
        // A top level that is not an object is digested whole.
        assert_ne!(digest(r#"[{"_meta":1}]"#), digest("[{}]"));
    }

    #[test]
    fn digest_format() {
        let d = digest("{}").expect("valid");
        // SHA-256 of the two bytes `{}`.
        assert_eq!(
            d,
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(digest(" { } ").expect("valid"), d);
    }

    // ---- a realistic tool definition ----------------------------------------------------

    const TOOL: &str = r#"{
      "name": "read_file",
      "title": "Read File",
      "description": "Read the complete contents of a file from the file system.",
      "inputSchema": {
        "type": "object",
        "properties": {
          "path": { "type": "string", "description": "Path of the file" },
          "head": { "type": "number", "minimum": 1, "description": "First N lines" }
        },
        "required": ["path"],
        "additionalProperties": false
      },
      "outputSchema": {
        "type": "object",
        "properties": { "content": { "type": "string" } },
        "required": ["content"]
      },
      "annotations": {
        "title": "Read File",
        "readOnlyHint": true,
        "destructiveHint": false,
        "idempotentHint": true,
        "openWorldHint": false
      },
      "icons": [
        { "src": "https://example.com/icon.png", "mimeType": "image/png", "sizes": ["48x48"] }
      ],
      "_meta": { "io.example/version": "1.2.0" }
    }"#;

    /// Every part of a tool SPEC says is covered changes the digest when changed.
    #[test]
    fn tool_definition_changes_are_seen() {
        let original = digest(TOOL).expect("valid");
        let tool: serde_json::Value = serde_json::from_str(TOOL).expect("valid");
        let edits: &[(&str, serde_json::Value)] = &[
            ("/name", "read_file2".into()),
            ("/title", "Read a File".into()),
            (
                "/description",
                "Read the complete contents of a file. <IMPORTANT>".into(),
            ),
            ("/inputSchema/properties/path/description", "Path".into()),
            ("/inputSchema/properties/head/minimum", 0.into()),
            ("/inputSchema/properties/head/type", "integer".into()),
            ("/inputSchema/required", serde_json::json!(["path", "head"])),
            ("/inputSchema/additionalProperties", true.into()),
            ("/outputSchema/properties/content/type", "array".into()),
            ("/outputSchema/required", serde_json::json!([])),
            ("/annotations/readOnlyHint", false.into()),
            ("/annotations/destructiveHint", true.into()),
            ("/annotations/title", "Write File".into()),
            ("/icons/0/src", "https://evil.example/icon.png".into()),
            ("/icons/0/sizes/0", "any".into()),
        ];
        for (pointer, replacement) in edits {
            let mut changed = tool.clone();
            *changed.pointer_mut(pointer).expect(pointer) = replacement.clone();
            let text = serde_json::to_string(&changed).expect("serializes");
            assert_ne!(digest(&text).expect("valid"), original, "edit at {pointer}");
        }
        for key in ["title", "outputSchema", "annotations", "icons"] {
            let mut removed = tool.clone();
            removed.as_object_mut().expect("object").remove(key);
            let text = serde_json::to_string(&removed).expect("serializes");
            assert_ne!(digest(&text).expect("valid"), original, "removed {key}");
        }
        let mut added = tool.clone();
        added["inputSchema"]["properties"]["mode"] = serde_json::json!({ "type": "string" });
        let text = serde_json::to_string(&added).expect("serializes");
        assert_ne!(digest(&text).expect("valid"), original, "added a property");

        // What does not count: `_meta`, key order and whitespace.
        let mut meta = tool.clone();
        meta["_meta"] = serde_json::json!({ "io.example/version": "9.9.9" });
        let text = serde_json::to_string_pretty(&meta).expect("serializes");
        assert_eq!(digest(&text).expect("valid"), original);
        let mut reordered = serde_json::Map::new();
        for (key, value) in tool.as_object().expect("object").iter().rev() {
            reordered.insert(key.clone(), value.clone());
        }
        let text = serde_json::to_string(&reordered).expect("serializes");
        assert_eq!(digest(&text).expect("valid"), original);
    }

    // ---- laws ---------------------------------------------------------------------------

    /// Whitespace that JSON allows between tokens.
    fn space(choices: &mut Xorshift, out: &mut String) {
        out.push_str(["", " ", "\n  ", "\t", "\r\n"][choices.below(5)]);
    }

    /// The same double written one of several ways.
    fn variant_number(value: f64, choices: &mut Xorshift) -> String {
        let scientific = format!("{value:e}");
        let (mantissa, exponent) = scientific.split_once('e').expect("exponent");
        let exponent: i32 = exponent.parse().expect("integer");
        let sign = if mantissa.starts_with('-') { "-" } else { "" };
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        let k = i32::try_from(digits.len()).expect("short");
        let (first, rest) = digits.split_at(1);
        match choices.below(6) {
            // Plain decimal, possibly hundreds of digits long.
            0 => format!("{value}"),
            // Rust's shortest exponential: `1.5e0`.
            1 => scientific.clone(),
            // Upper-case `E`, explicit `+`, trailing zeros: `1.500E+0`.
            2 => format!("{sign}{first}.{rest}000E+{exponent}").replace("E+-", "E-"),
            // All digits as an integer mantissa: `15e-1`.
            3 => format!("{sign}{digits}e{}", exponent - (k - 1)),
            // Leading `0.`: `0.15e1`.
            4 => format!("{sign}0.{digits}e{}", exponent + 1),
            // Zero with a fraction and an exponent: `0.000e-3` (`0000e-3` is not JSON).
            _ if value == 0.0 => format!("{sign}0.000e-3"),
            // Padding zeros after the digits, compensated in the exponent: `15000e-4`.
            _ => format!("{sign}{digits}000e{}", exponent - (k - 1) - 3),
        }
    }

    /// The same string written with a random mix of escapes.
    fn variant_string(text: &str, choices: &mut Xorshift, out: &mut String) {
        out.push('"');
        for c in text.chars() {
            let must_escape = c == '"' || c == '\\' || c < '\u{20}';
            match choices.below(3) {
                0 if !must_escape => out.push(c),
                1 if c == '/' => out.push_str("\\/"),
                1 if matches!(c, '"' | '\\' | '\n' | '\t') => {
                    out.push('\\');
                    out.push(match c {
                        '\n' => 'n',
                        '\t' => 't',
                        c => c,
                    });
                }
                _ => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        let _ = write!(out, "\\u{unit:04X}");
                    }
                }
            }
        }
        out.push('"');
    }

    /// `node` as JSON text with shuffled keys, arbitrary whitespace, string escapes and
    /// number spellings: equivalent to, but rarely the same text as, the canonical form.
    fn write_variant(node: &Node, choices: &mut Xorshift, out: &mut String) {
        match node {
            Node::Null | Node::Bool(_) => write_node(node, out),
            Node::Number(value) => out.push_str(&variant_number(*value, choices)),
            Node::String(text) => variant_string(text, choices, out),
            Node::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    space(choices, out);
                    if i > 0 {
                        out.push(',');
                        space(choices, out);
                    }
                    write_variant(item, choices, out);
                }
                space(choices, out);
                out.push(']');
            }
            Node::Object(members) => {
                let mut shuffled: Vec<&(String, Node)> = members.iter().collect();
                for i in (1..shuffled.len()).rev() {
                    shuffled.swap(i, choices.below(i + 1));
                }
                out.push('{');
                for (i, (key, value)) in shuffled.into_iter().enumerate() {
                    space(choices, out);
                    if i > 0 {
                        out.push(',');
                        space(choices, out);
                    }
                    variant_string(key, choices, out);
                    space(choices, out);
                    out.push(':');
                    space(choices, out);
                    write_variant(value, choices, out);
                }
                space(choices, out);
                out.push('}');
            }
        }
    }

    fn arb_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("finite", |x| x.is_finite()),
            // Integers beyond 2^53 round to a neighbouring double, as in JSON text.
            any::<i64>().prop_map(|i| {
                #[allow(clippy::cast_precision_loss)]
                let rounded = i as f64;
                rounded
            }),
            (any::<i32>(), 0..8_i32).prop_map(|(m, e)| f64::from(m) / 10f64.powi(e)),
            Just(0.0),
            Just(-0.0),
        ]
    }

    fn arb_text() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::collection::vec(any::<char>(), 0..8).prop_map(String::from_iter),
            "[a-z_/\"\\\\]{0,6}",
        ]
    }

    /// Keys never `_meta`, which the digest ignores at the top level by design.
    fn arb_key() -> impl Strategy<Value = String> {
        arb_text().prop_filter("not _meta", |k| k != META_KEY)
    }

    fn arb_node() -> impl Strategy<Value = Node> {
        let leaf = prop_oneof![
            Just(Node::Null),
            any::<bool>().prop_map(Node::Bool),
            arb_f64().prop_map(Node::Number),
            arb_text().prop_map(Node::String),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Node::Array),
                // Unique keys; their order (UTF-8) is not the canonical one (UTF-16).
                prop::collection::btree_map(arb_key(), inner, 0..6)
                    .prop_map(|members| Node::Object(members.into_iter().collect())),
            ]
        })
    }

    fn node_count(node: &Node) -> usize {
        1 + match node {
            Node::Array(items) => items.iter().map(node_count).sum(),
            Node::Object(members) => members.iter().map(|(_, v)| node_count(v)).sum(),
            _ => 0,
        }
    }

    /// A key not present among `members`.
    fn fresh_key(members: &[(String, Node)], base: &str) -> String {
        let mut key = format!("{base}~");
        while members.iter().any(|(k, _)| *k == key) {
            key.push('~');
        }
        key
    }

    /// Changes the `target`th node (pre-order) in a way JCS must see; `kind` picks how.
    /// Returns true once done.
    fn mutate(node: &mut Node, target: &mut usize, kind: usize) -> bool {
        if *target == 0 {
            match node {
                Node::Null => *node = Node::Bool(false),
                Node::Bool(b) => *b = !*b,
                Node::Number(x) => {
                    // A neighbouring double; never ±0 to ∓0, which JCS rightly equates.
                    let next = x.next_up();
                    *x = if next.is_finite() {
                        next
                    } else {
                        x.next_down()
                    };
                }
                Node::String(s) => {
                    if kind.is_multiple_of(2) {
                        s.push('x');
                    } else {
                        s.insert(0, '\u{200b}');
                    }
                }
                Node::Array(items) => {
                    if items.is_empty() || kind.is_multiple_of(2) {
                        items.push(Node::Null);
                    } else {
                        items.pop();
                    }
                }
                Node::Object(members) => match (members.len(), kind % 3) {
                    (0, _) | (_, 0) => {
                        let key = fresh_key(members, "added");
                        members.push((key, Node::Null));
                    }
                    (_, 1) => {
                        members.pop();
                    }
                    _ => {
                        let key = fresh_key(members, &members[0].0);
                        members[0].0 = key;
                    }
                },
            }
            return true;
        }
        *target -= 1;
        match node {
            Node::Array(items) => items.iter_mut().any(|item| mutate(item, target, kind)),
            Node::Object(members) => members
                .iter_mut()
                .any(|(_, value)| mutate(value, target, kind)),
            _ => false,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Law 1: key order, whitespace, string escapes and number spelling of an
        /// equivalent document change neither the canonical form nor the digest.
        #[test]
        fn equivalent_documents_have_one_digest(node in arb_node(), seed in any::<u64>()) {
            let canonical = to_canonical(&node);
            let mut choices = Xorshift::new(seed);
            let mut variant = String::new();
            write_variant(&node, &mut choices, &mut variant);
            prop_assert_eq!(canonicalize(&variant).expect("variant parses"), canonical.clone());
            prop_assert_eq!(canonicalize(&canonical).expect("canonical parses"), canonical.clone());
            prop_assert_eq!(digest(&variant).expect("valid"), digest(&canonical).expect("valid"));
            // The scan vouches only for texts that are their own canonical form.
            prop_assert!(!is_canonical(&variant) || variant == canonical);
            prop_assert!(!is_canonical(&canonical) || canonicalize(&canonical) == Ok(canonical.clone()));
        }

        /// Law 2: changing one string, key, member, element or number changes the digest.
        #[test]
        fn any_change_changes_the_digest(
            node in arb_node(),
            pick in any::<prop::sample::Index>(),
            kind in 0..6_usize,
            seed in any::<u64>(),
        ) {
            let mut changed = node.clone();
            let mut target = pick.index(node_count(&node));
            prop_assert!(mutate(&mut changed, &mut target, kind));
            let mut choices = Xorshift::new(seed);
            let mut before = String::new();
            write_variant(&node, &mut choices, &mut before);
            let mut after = String::new();
            write_variant(&changed, &mut choices, &mut after);
            prop_assert_ne!(digest(&before).expect("valid"), digest(&after).expect("valid"));
        }

        /// Whatever the bytes, the parser returns a result rather than panicking.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,40}|[\\[\\]{}\":,0-9eE.+\\-\\\\u a-f]{0,40}") {
            let _ = canonicalize(&text);
            if is_canonical(&text) {
                prop_assert_eq!(canonicalize(&text), Ok(text.clone()));
            }
        }
    }
}
