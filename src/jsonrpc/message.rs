//! The message model: a line classified as request, notification or response, kept as
//! the bytes that arrived plus the spans a stage may rewrite.
//!
//! Parsing refuses duplicate keys anywhere in the message (compared after unescaping,
//! so `"met\u0068od"` and `"method"` are the same key): a proxy and the server behind
//! it must never read two different messages out of one line. The envelope is kept as
//! spans of the line, so nothing below it is copied. Nearly every line is judged in
//! one pass by [`super::strict`]; whatever it cannot vouch for takes the reference
//! path, two passes of `serde_json` (a strict walk, then the envelope with borrowed raw
//! values), which decides and words every refusal. `serde_json`'s recursion limit
//! turns absurd nesting into a parse error, never a stack overflow.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::error::ErrorCode;
use super::strict::EnvelopeSpans;

/// Longest id accepted, in bytes of its JSON text. Ids are echoed in every answer and
/// kept in the in-flight table, so a 10 KB id is refused rather than carried.
pub const MAX_ID_LEN: usize = 256;

/// A request id exactly as it arrived (its JSON text): `"1"` and `1` differ, and `1e3`
/// or `18446744073709551616` come back as they were sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id(Arc<str>);

impl Id {
    /// Checks a raw JSON value for use as an id: a string, or a number without a
    /// fractional part, at most [`MAX_ID_LEN`] bytes of text.
    pub fn from_raw(raw: &RawValue) -> Result<Self, &'static str> {
        Self::from_text(raw.get())
    }

    /// [`Id::from_raw`] over the value's JSON text (from a parsed line).
    fn from_text(text: &str) -> Result<Self, &'static str> {
        if text.len() > MAX_ID_LEN {
            return Err("id is too long");
        }
        match text.as_bytes().first() {
            Some(b'"') => Ok(Self(text.into())),
            // A number is a few bytes: a window over them, not two substring
            // searchers' set-up (~2k instructions a call for the two ids).
            Some(b'-' | b'0'..=b'9')
                if !text.contains('.')
                    && !text
                        .as_bytes()
                        .windows(2)
                        .any(|w| matches!(w, [b'e' | b'E', b'-'])) =>
            {
                Ok(Self(text.into()))
            }
            Some(b'-' | b'0'..=b'9') => Err("id must not have a fractional part"),
            _ => Err("id must be a string or a number"),
        }
    }

    /// Checks the JSON text of a value (as [`Message::param`] returns it) for use as
    /// an id.
    pub fn from_json(text: &str) -> Result<Self, &'static str> {
        let raw: &RawValue = serde_json::from_str(text).map_err(|_| "not JSON")?;
        Self::from_raw(raw)
    }

    /// An id that mcp-warden mints itself (for its own requests).
    #[must_use]
    pub fn number(n: u64) -> Self {
        Self(n.to_string().into())
    }

    /// The JSON text of the id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an integer, when it is a plain non-negative integer that fits.
    #[must_use]
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Has a method and an id: expects an answer.
    Request { id: Id, method: Cow<'static, str> },
    /// Has a method and no id.
    Notification { method: Cow<'static, str> },
    /// Has an id and `result` or `error`.
    Response { id: Id, is_error: bool },
}

/// Why a line is not a message we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// -32700 or -32600.
    pub code: ErrorCode,
    /// What was wrong, for the error answer and the log.
    pub reason: String,
    /// The id, when it could be read despite the error (to answer it).
    pub id: Option<Id>,
}

impl ParseError {
    fn parse(reason: impl fmt::Display) -> Self {
        Self {
            code: ErrorCode::Parse,
            reason: format!("parse error: {reason}"),
            id: None,
        }
    }

    fn invalid(reason: impl Into<String>, id: Option<Id>) -> Self {
        Self {
            code: ErrorCode::InvalidRequest,
            reason: reason.into(),
            id,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// One JSON-RPC message: the line as it arrived and what it is.
#[derive(Debug, Clone)]
pub struct Message {
    raw: Bytes,
    kind: Kind,
    id_span: Option<Range<usize>>,
    params_span: Option<Range<usize>>,
    result_span: Option<Range<usize>>,
    error_span: Option<Range<usize>>,
    /// The top-level members of `params` (key and value spans in the line), found the
    /// first time a stage asks for one: a `tools/call` is asked about ten times (name,
    /// arguments, `_meta` entries, task and retry fields), and each question used to
    /// walk `params` again from its start.
    param_index: OnceLock<ParamIndex>,
}

/// The members of `params`, and whether a key among them has an escape.
#[derive(Debug, Clone)]
struct ParamIndex {
    /// A `Vec` as collected: shrinking it to a boxed slice was a second allocation.
    members: Vec<ParamSpans>,
    /// Without an escape in any key (always so for the one-pass scan, which leaves
    /// escaped keys to `serde_json`), a key's bytes between its quotes are its text:
    /// a question is answered by lengths and bytes, without [`super::scan::key_is`]
    /// looking for a `\` in every longer key (~1.1k instructions of a `tools/call`).
    escaped: bool,
}

/// Where one member of `params` sits in the line: its key (quotes included) and value.
type ParamSpans = (Range<usize>, Range<usize>);

/// A parsed line: one message or a batch.
#[derive(Debug)]
pub enum Parsed {
    Single(Message),
    /// A JSON array: each element judged on its own.
    Batch(Vec<Result<Message, ParseError>>),
}

impl Message {
    /// What the message is.
    #[must_use]
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// The message's bytes as they arrived (no newline).
    #[must_use]
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The method of a request or notification.
    #[must_use]
    pub fn method(&self) -> Option<&str> {
        match &self.kind {
            Kind::Request { method, .. } | Kind::Notification { method } => Some(method),
            Kind::Response { .. } => None,
        }
    }

    /// The id of a request or response.
    #[must_use]
    pub fn id(&self) -> Option<&Id> {
        match &self.kind {
            Kind::Request { id, .. } | Kind::Response { id, .. } => Some(id),
            Kind::Notification { .. } => None,
        }
    }

    /// The JSON text of `params`, when present.
    #[must_use]
    pub fn params(&self) -> Option<&str> {
        self.params_span.clone().map(|r| self.text(r))
    }

    /// The JSON text of `result`, when present.
    #[must_use]
    pub fn result(&self) -> Option<&str> {
        self.result_span.clone().map(|r| self.text(r))
    }

    /// The bytes of `result`, when present: for a search that needs no `&str` (the
    /// check [`Message::result`] makes costs a pass over the text each time).
    #[must_use]
    pub fn result_bytes(&self) -> Option<&[u8]> {
        self.result_span.clone().and_then(|r| self.raw.get(r))
    }

    /// The `message` of `error`, when present (empty when it has none).
    #[must_use]
    pub fn error_message(&self) -> Option<String> {
        let error = serde_json::from_str::<serde_json::Value>(self.error()?).ok()?;
        Some(error["message"].as_str().unwrap_or_default().to_owned())
    }

    /// The JSON text of `error`, when present.
    #[must_use]
    pub fn error(&self) -> Option<&str> {
        self.error_span.clone().map(|r| self.text(r))
    }

    /// Where `error` sits in the line.
    #[must_use]
    pub fn error_span(&self) -> Option<Range<usize>> {
        self.error_span.clone()
    }

    /// Where `params` sits in the line.
    #[must_use]
    pub fn params_span(&self) -> Option<Range<usize>> {
        self.params_span.clone()
    }

    /// Where `result` sits in the line.
    #[must_use]
    pub fn result_span(&self) -> Option<Range<usize>> {
        self.result_span.clone()
    }

    /// The raw JSON text of the value at `path` inside `params` (object keys, outermost
    /// first), and where it sits in the line, so a stage can read it and splice in a
    /// replacement without re-serializing anything else.
    #[must_use]
    pub fn param(&self, path: &[&str]) -> Option<(&str, Range<usize>)> {
        let Some((first, rest)) = path.split_first() else {
            let span = self.params_span.clone()?;
            return Some((self.text(span.clone()), span));
        };
        let value = self.top_param(first)?;
        // Deeper keys are walked inside that one value only.
        let text = self.text(value.clone());
        let found = super::scan::at_path(text, rest)?;
        let inner = span_in(text, found);
        Some((found, value.start + inner.start..value.start + inner.end))
    }

    /// Where the value at `path` inside `params` sits in the line: [`Message::param`]
    /// without the text, so for a one-key path without a UTF-8 check of the value
    /// (the audit's `arguments`, kept as a slice of the line).
    #[must_use]
    pub fn param_span(&self, path: &[&str]) -> Option<Range<usize>> {
        match path {
            [key] => self.top_param(key),
            _ => self.param(path).map(|(_, span)| span),
        }
    }

    /// Where the value of the top-level member `key` of `params` sits in the line.
    fn top_param(&self, key: &str) -> Option<Range<usize>> {
        let span = self.params_span.clone()?;
        let index = self.param_index.get_or_init(|| {
            let params = self.text(span.clone());
            let at = |part: &str| {
                let inner = span_in(params, part);
                span.start + inner.start..span.start + inner.end
            };
            let members: Vec<ParamSpans> = super::scan::members(params)
                .map(|members| members.map(|(key, value)| (at(key), at(value))).collect())
                .unwrap_or_default();
            let escaped = members.iter().any(|(k, _)| {
                self.raw
                    .get(k.clone())
                    .is_none_or(|raw| raw.contains(&b'\\'))
            });
            ParamIndex { members, escaped }
        });
        let (_, value) = if index.escaped {
            index.members.iter().find(|(k, _)| {
                self.raw
                    .get(k.clone())
                    .is_some_and(|raw| super::scan::key_is(raw, key))
            })?
        } else {
            index.members.iter().find(|(k, _)| {
                k.len() == key.len() + 2
                    && self.raw.get(k.start + 1..k.end - 1) == Some(key.as_bytes())
            })?
        };
        Some(value.clone())
    }

    fn text(&self, range: Range<usize>) -> &str {
        // The whole line was checked to be UTF-8 and spans come from the JSON parser,
        // so they fall on character boundaries.
        std::str::from_utf8(&self.raw[range]).unwrap_or_default()
    }

    /// The line with its id replaced by `id` and the given extra replacements (sorted,
    /// non-overlapping, none touching the id), ending in `\n`. Everything else is kept
    /// byte for byte.
    #[must_use]
    pub fn rewrite(&self, id: Option<&str>, edits: &[(Range<usize>, &str)]) -> Bytes {
        self.rewrite_with(id, edits)
    }

    /// [`Message::rewrite`] with the replacements' texts of any string type (a
    /// caller's own `String`s, without a list of borrowed copies).
    #[must_use]
    pub fn rewrite_with<S: AsRef<str>>(
        &self,
        id: Option<&str>,
        edits: &[(Range<usize>, S)],
    ) -> Bytes {
        fn text<S: AsRef<str>>((range, text): &(Range<usize>, S)) -> (Range<usize>, &str) {
            (range.clone(), text.as_ref())
        }
        let id = id.zip(self.id_span.clone()).map(|(id, span)| (span, id));
        if edits.is_sorted_by_key(|(r, _)| r.start) {
            // The usual case (every forwarded message, edits sorted by their maker):
            // the id goes in its place among them, without a list to sort.
            let at = id.as_ref().map_or(edits.len(), |(span, _)| {
                edits.partition_point(|(r, _)| r.start < span.start)
            });
            let (before, after) = edits.split_at(at);
            return splice(
                &self.raw,
                before
                    .iter()
                    .map(text::<S>)
                    .chain(id)
                    .chain(after.iter().map(text::<S>)),
            );
        }
        let mut all: Vec<(Range<usize>, &str)> = Vec::with_capacity(edits.len() + 1);
        all.extend(id);
        all.extend(edits.iter().map(text::<S>));
        all.sort_by_key(|(r, _)| r.start);
        splice(&self.raw, all)
    }

    /// The line as it arrived, with `\n`.
    #[must_use]
    pub fn to_line(&self) -> Bytes {
        self.rewrite(None, &[])
    }
}

/// `raw` with the sorted, non-overlapping `edits` applied, ending in `\n`, built in one
/// buffer of exactly the final size.
fn splice<'a, I>(raw: &[u8], edits: I) -> Bytes
where
    I: IntoIterator<Item = (Range<usize>, &'a str)>,
    I::IntoIter: Clone,
{
    let edits = edits.into_iter();
    // The exact final length: `Bytes::from` a full `Vec` takes the buffer as it is,
    // where spare capacity costs a second allocation (its shared header).
    let (added, removed) = edits
        .clone()
        .fold((0, 0), |(added, removed), (range, text)| {
            (added + text.len(), removed + range.len())
        });
    let mut out = Vec::with_capacity((raw.len() + added + 1).saturating_sub(removed));
    let mut at = 0;
    for (range, text) in edits {
        out.extend_from_slice(&raw[at..range.start]);
        out.extend_from_slice(text.as_bytes());
        at = range.end;
    }
    out.extend_from_slice(&raw[at..]);
    out.push(b'\n');
    Bytes::from(out)
}

/// The raw JSON text of the value at `path` (object keys, outermost first) inside the
/// JSON value `text`, a slice of `line`, and where it sits in `line`. `text` is part of
/// a parsed message (well-formed, no repeated keys): it is walked, not parsed again
/// ([`super::scan`]).
#[must_use]
pub fn member_at<'a>(line: &str, text: &'a str, path: &[&str]) -> Option<(&'a str, Range<usize>)> {
    let value = super::scan::at_path(text, path)?;
    Some((value, span_in(line, value)))
}

/// Where `inner` (a sub-slice of `outer`) starts and ends within `outer`.
#[must_use]
pub fn span_in(outer: &str, inner: &str) -> Range<usize> {
    let start = (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize);
    start..start + inner.len()
}

/// The id of a message whose text was cut off (an overlong line's head): the value of
/// a top-level `"id"` key, when it is complete within `head` and a valid id. Used only
/// to address the error answer for a message that is refused anyway.
#[must_use]
pub fn recover_id(head: &[u8]) -> Option<Id> {
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
    };
    let bytes = text.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let end = string_end(bytes, i)?;
                let rest = text[end..].trim_start();
                if depth == 1 && &text[i..end] == "\"id\"" && rest.starts_with(':') {
                    let value = rest[1..].trim_start();
                    let len = if value.starts_with('"') {
                        string_end(value.as_bytes(), 0)?
                    } else {
                        value
                            .find([',', '}', ' ', '\t', '\r', '\n'])
                            .unwrap_or(value.len())
                    };
                    // A value that runs to the end of the head may be cut off.
                    if len == value.len() {
                        return None;
                    }
                    let raw: &RawValue = serde_json::from_str(&value[..len]).ok()?;
                    return Id::from_raw(raw).ok();
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Bytes of a string looked at one by one before [`string_end`] searches with SIMD.
const SHORT_STRING: usize = 16;

/// The index just past the JSON string starting at `start` (a `"`), if it ends.
pub(crate) fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    // Short strings (keys, ids, most names) end before a SIMD search pays for its
    // set-up; longer ones jump from quote or backslash to the next.
    while let Some(&byte) = bytes.get(i).filter(|_| i - start <= SHORT_STRING) {
        match byte {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    while let Some(found) = bytes
        .get(i..)
        .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
    {
        i += found;
        if bytes[i] == b'"' {
            return Some(i + 1);
        }
        i += 2;
    }
    None
}

/// Parses a complete line (with its `\n`) that mcp-warden or a filter produced;
/// `None` when it is not one valid message.
#[must_use]
pub fn reparse(line: &Bytes) -> Option<Message> {
    match parse(line.slice(..line.len().saturating_sub(1))) {
        Ok(Parsed::Single(m)) => Some(m),
        _ => None,
    }
}

/// Parses one line (without its newline) into a message or a batch.
pub fn parse(line: Bytes) -> Result<Parsed, ParseError> {
    let text = std::str::from_utf8(&line)
        .map_err(|e| ParseError::parse(format!("invalid UTF-8 ({e})")))?;
    // Nearly every line is one object the one-pass scan can judge; the rest (and every
    // line it refuses) take the two passes below, which word every error.
    if let Some(spans) = super::strict::envelope(text) {
        let kind = kind_of(text, &spans)?;
        return Ok(Parsed::Single(Message::new(line, kind, spans)));
    }
    parse_in_two_passes(line)
}

/// [`parse`] by `serde_json` alone: the reference the one-pass scan agrees with.
/// Public only for the differential fuzz target (`tests/fuzz.rs`): two parsers that
/// disagree would let a line mean one thing to the stages and another upstream.
#[doc(hidden)]
pub fn parse_in_two_passes(line: Bytes) -> Result<Parsed, ParseError> {
    let text = std::str::from_utf8(&line)
        .map_err(|e| ParseError::parse(format!("invalid UTF-8 ({e})")))?;
    // Pass one: syntax, nesting depth and duplicate keys, over the whole line.
    let mut de = serde_json::Deserializer::from_str(text);
    Strict.deserialize(&mut de).map_err(|e| {
        // The visitor's own error (a repeated key) is a well-formed but invalid message.
        if e.classify() == serde_json::error::Category::Data {
            ParseError::invalid(e.to_string(), unambiguous_id(text))
        } else {
            ParseError::parse(e)
        }
    })?;
    de.end().map_err(ParseError::parse)?;

    if text.trim_start().starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(text).map_err(ParseError::parse)?;
        if items.is_empty() {
            return Err(ParseError::invalid("empty batch", None));
        }
        let batch = items
            .into_iter()
            .map(|item| {
                let span = span_in(text, item.get());
                if item.get().trim_start().starts_with('[') {
                    return Err(ParseError::invalid("nested batch", None));
                }
                parse_envelope(line.slice(span))
            })
            .collect();
        return Ok(Parsed::Batch(batch));
    }
    parse_envelope(line).map(Parsed::Single)
}

/// Parses a line known to be one well-formed JSON value with no duplicate keys.
fn parse_envelope(line: Bytes) -> Result<Message, ParseError> {
    let text = std::str::from_utf8(&line).map_err(ParseError::parse)?;
    let env: Envelope<'_> = serde_json::from_str(text)
        .map_err(|_| ParseError::invalid("a JSON-RPC message must be an object", None))?;
    let at = |raw: Option<&RawValue>| raw.map(|raw| span_in(text, raw.get()));
    let spans = EnvelopeSpans {
        jsonrpc: at(env.jsonrpc),
        id: at(env.id),
        method: at(env.method),
        params: at(env.params),
        result: at(env.result),
        error: at(env.error),
        // Indexed at the first question.
        params_members: None,
    };
    let kind = kind_of(text, &spans)?;
    Ok(Message::new(line, kind, spans))
}

/// What the message whose envelope members sit at `spans` in `text` is, or why it is
/// not a JSON-RPC message.
fn kind_of(text: &str, spans: &EnvelopeSpans) -> Result<Kind, ParseError> {
    let part = |span: &Option<Range<usize>>| span.clone().and_then(|r| text.get(r));
    let id = match part(&spans.id) {
        Some(raw) => Some(
            Id::from_text(raw)
                .map_err(|why| ParseError::invalid(format!("invalid id: {why}"), None))?,
        ),
        None => None,
    };
    let invalid = |reason: &str| ParseError::invalid(reason, id.clone());
    if part(&spans.jsonrpc) != Some("\"2.0\"") {
        return Err(invalid("`jsonrpc` must be \"2.0\""));
    }
    if let Some(params) = part(&spans.params)
        && !matches!(params.as_bytes().first(), Some(b'{' | b'['))
    {
        return Err(invalid("`params` must be an object or an array"));
    }
    if let Some(method) = part(&spans.method) {
        let method = method_name(method).ok_or_else(|| invalid("`method` must be a string"))?;
        return Ok(match id {
            Some(id) => Kind::Request { id, method },
            None => Kind::Notification { method },
        });
    }
    let Some(id) = id else {
        return Err(invalid("a message needs a `method` or an `id`"));
    };
    match (spans.result.is_some(), spans.error.is_some()) {
        (true, false) => Ok(Kind::Response {
            id,
            is_error: false,
        }),
        (false, true) => Ok(Kind::Response { id, is_error: true }),
        _ => Err(ParseError::invalid(
            "a response needs exactly one of `result` and `error`",
            Some(id),
        )),
    }
}

/// The decoded text of a `method` value (JSON text), when it is a string.
fn method_name(raw: &str) -> Option<Cow<'static, str>> {
    // Method names have no escapes: taken as they are, without a decoder.
    if let Some(inner) = raw
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .filter(|inner| !inner.contains(['\\', '"']))
    {
        return Some(method_text(inner));
    }
    serde_json::from_str::<Cow<'_, str>>(raw)
        .ok()
        .map(|name| Cow::Owned(name.into_owned()))
}

/// A method name to keep: borrowed for the protocol's own methods (nearly every
/// message's), so keeping it or cloning what holds it copies nothing.
#[must_use]
pub fn method_text(name: &str) -> Cow<'static, str> {
    known_method(name).map_or_else(|| Cow::Owned(name.to_owned()), Cow::Borrowed)
}

/// The protocol's own method names, as `'static` text.
fn known_method(name: &str) -> Option<&'static str> {
    Some(match name {
        "tools/call" => "tools/call",
        "notifications/progress" => "notifications/progress",
        "notifications/message" => "notifications/message",
        "notifications/cancelled" => "notifications/cancelled",
        "resources/read" => "resources/read",
        "prompts/get" => "prompts/get",
        "completion/complete" => "completion/complete",
        "ping" => "ping",
        "tools/list" => "tools/list",
        "prompts/list" => "prompts/list",
        "resources/list" => "resources/list",
        "resources/templates/list" => "resources/templates/list",
        "resources/subscribe" => "resources/subscribe",
        "resources/unsubscribe" => "resources/unsubscribe",
        "initialize" => "initialize",
        "notifications/initialized" => "notifications/initialized",
        "logging/setLevel" => "logging/setLevel",
        "sampling/createMessage" => "sampling/createMessage",
        "elicitation/create" => "elicitation/create",
        "roots/list" => "roots/list",
        "server/discover" => "server/discover",
        "subscriptions/listen" => "subscriptions/listen",
        "tasks/get" => "tasks/get",
        "tasks/result" => "tasks/result",
        "tasks/cancel" => "tasks/cancel",
        "tasks/list" => "tasks/list",
        "tasks/update" => "tasks/update",
        _ => return None,
    })
}

impl Message {
    fn new(raw: Bytes, kind: Kind, spans: EnvelopeSpans) -> Self {
        Self {
            raw,
            kind,
            id_span: spans.id,
            params_span: spans.params,
            result_span: spans.result,
            error_span: spans.error,
            // The one-pass scan found them already; the two-pass path leaves the
            // index to the first question.
            param_index: spans.params_members.map_or_else(OnceLock::new, |members| {
                OnceLock::from(ParamIndex {
                    members,
                    escaped: false,
                })
            }),
        }
    }
}

/// The JSON-RPC envelope, borrowed. `deserialize_with` keeps `"id": null` distinct from
/// an absent id (a plain `Option` would read both as `None`).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// The id of a message refused for a repeated key, so the error can be addressed
/// (issue 15 item 9): the top level must have exactly one `id` member (keys compared
/// after unescaping, so `"\u0069d"` counts) and it must be a valid id; else `None`.
fn unambiguous_id(text: &str) -> Option<Id> {
    struct TopIds<'a>(std::marker::PhantomData<&'a ()>);
    impl<'de> Visitor<'de> for TopIds<'de> {
        type Value = Vec<&'de RawValue>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut ids = Vec::new();
            while let Some(Key(key)) = map.next_key()? {
                let value: &'de RawValue = map.next_value()?;
                if key == "id" {
                    ids.push(value);
                }
            }
            Ok(ids)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let ids = de.deserialize_map(TopIds(std::marker::PhantomData)).ok()?;
    match ids.as_slice() {
        [one] => Id::from_raw(one).ok(),
        _ => None,
    }
}

/// Walks a whole JSON value and fails on the first object with a repeated key.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

/// Objects with more keys than this switch from a linear scan to a hash set.
const LINEAR_KEY_SCAN: usize = 16;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Strict)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // The first keys are kept on the stack (no allocation for the small objects
        // every message is made of); a larger object moves them into a hash set.
        let mut first: [Cow<'de, str>; LINEAR_KEY_SCAN] = Default::default();
        let mut count = 0;
        let mut set: std::collections::HashSet<Cow<'de, str>> = std::collections::HashSet::new();
        while let Some(Key(key)) = map.next_key()? {
            let seen = if count < LINEAR_KEY_SCAN {
                first[..count].contains(&key)
            } else {
                if set.is_empty() {
                    set.extend(first.iter_mut().map(std::mem::take));
                }
                !set.insert(key.clone())
            };
            if seen {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key `{key}`"
                )));
            }
            if let Some(slot) = first.get_mut(count) {
                *slot = key;
            }
            count += 1;
            map.next_value_seed(Strict)?;
        }
        Ok(())
    }
}

/// An object key, borrowed from the line unless it has escapes (serde's own
/// `Cow<str>` always copies, one allocation per key of every message).
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(line: &str) -> Result<Message, ParseError> {
        match parse(Bytes::copy_from_slice(line.as_bytes()))? {
            Parsed::Single(m) => Ok(m),
            Parsed::Batch(_) => panic!("expected a single message"),
        }
    }

    #[test]
    fn classifies_requests_notifications_and_responses() {
        let m = one(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).expect("valid");
        assert_eq!(
            m.kind(),
            &Kind::Request {
                id: Id::number(1),
                method: "ping".into()
            }
        );
        let m = one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).expect("valid");
        assert!(matches!(m.kind(), Kind::Notification { .. }));
        let m = one(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).expect("valid");
        assert!(matches!(
            m.kind(),
            Kind::Response {
                is_error: false,
                ..
            }
        ));
        let m =
            one(r#"{"jsonrpc":"2.0","id":"a","error":{"code":1,"message":"x"}}"#).expect("valid");
        assert!(matches!(m.kind(), Kind::Response { is_error: true, .. }));
    }

    #[test]
    fn ids_keep_their_exact_text_and_type() {
        for id in [
            r#""1""#,
            "1",
            "1e3",
            "18446744073709551616",
            "-7",
            r#""\u0041""#,
        ] {
            let m =
                one(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#)).expect("valid");
            assert_eq!(m.id().map(Id::as_str), Some(id));
        }
        let a = one(r#"{"jsonrpc":"2.0","id":"1","method":"ping"}"#).expect("valid");
        let b = one(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).expect("valid");
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn bad_ids_are_invalid_requests() {
        for id in ["null", "{}", "true", "1.5", "[1]", "1e-3"] {
            let e =
                one(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#)).expect_err(id);
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{id}");
        }
        let long = format!(r#""{}""#, "x".repeat(10_000));
        let e = one(&format!(
            r#"{{"jsonrpc":"2.0","id":{long},"method":"ping"}}"#
        ))
        .expect_err("long id");
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn not_json_rpc_is_an_invalid_request_with_the_id_when_readable() {
        let e = one(r#"{"id":3,"method":"ping"}"#).expect_err("no jsonrpc");
        assert_eq!(
            (e.code, e.id),
            (ErrorCode::InvalidRequest, Some(Id::number(3)))
        );
        let e = one(r#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#).expect_err("1.0");
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let e = one(r#"{"jsonrpc":"2.0","id":3,"method":5}"#).expect_err("numeric method");
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let e = one(r#""just a string""#).expect_err("not an object");
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let e = one(r#"{"jsonrpc":"2.0","id":3,"method":"x","params":7}"#).expect_err("params");
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn duplicate_keys_are_refused_even_when_escaped_or_nested() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"a","met\u0068od":"b"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
        ] {
            let e = one(line).expect_err(line);
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{line}");
            assert!(e.reason.contains("duplicate key"), "{}", e.reason);
            assert_eq!(e.id, Some(Id::number(1)), "{line}");
        }
    }

    #[test]
    fn a_duplicate_key_error_carries_the_id_only_when_it_is_unambiguous() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"a"}"#,
            r#"{"jsonrpc":"2.0","id":1,"\u0069d":1,"method":"a"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"a","method":"b"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"a","method":"b"}"#,
            r#"{"jsonrpc":"2.0","method":"a","method":"b"}"#,
        ] {
            assert_eq!(one(line).expect_err(line).id, None, "{line}");
        }
        let e =
            one(r#"{"jsonrpc":"2.0","\u0069d":"x","params":{"id":2},"method":"a","method":"b"}"#)
                .expect_err("dup");
        assert_eq!(e.id.as_ref().map(Id::as_str), Some(r#""x""#));
    }

    #[test]
    fn malformed_json_is_a_parse_error() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"} trailing"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}{"jsonrpc":"2.0","id":2,"method":"ping"}"#,
        ] {
            assert_eq!(one(line).expect_err(line).code, ErrorCode::Parse, "{line}");
        }
        let bad_utf8 = Bytes::from_static(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}");
        assert_eq!(parse(bad_utf8).expect_err("utf8").code, ErrorCode::Parse);
    }

    #[test]
    fn deep_nesting_is_a_parse_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            parse(Bytes::from(deep)).expect_err("deep").code,
            ErrorCode::Parse
        );
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{{"a":{}1{}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            parse(Bytes::from(deep)).expect_err("deep").code,
            ErrorCode::Parse
        );
    }

    #[test]
    fn batches_are_split_into_elements() {
        let line = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":"x"},7]"#;
        let Ok(Parsed::Batch(items)) = parse(Bytes::from_static(line.as_bytes())) else {
            panic!("expected a batch");
        };
        assert_eq!(items.len(), 3);
        assert!(items[0].is_ok());
        assert_eq!(
            items[1].as_ref().expect_err("no result").id,
            Some(Id(r#""x""#.into()))
        );
        assert!(items[2].is_err());
    }

    #[test]
    fn rewrite_replaces_only_the_id_and_keeps_every_other_byte() {
        let line = r#"{"jsonrpc":"2.0", "id" : "abc","method":"tools/call","params":{"x":1.0e0,"_meta":{"progressToken":7}},"extra":[true]}"#;
        let m = one(line).expect("valid");
        let out = m.rewrite(Some("42"), &[]);
        assert_eq!(
            std::str::from_utf8(&out).expect("utf8"),
            format!("{}\n", line.replace(r#""abc""#, "42"))
        );
        assert_eq!(
            m.params(),
            Some(r#"{"x":1.0e0,"_meta":{"progressToken":7}}"#)
        );
    }

    #[test]
    fn rewrite_places_the_id_among_edits_in_any_order_given() {
        let line = r#"{"a":"x","jsonrpc":"2.0","b":1,"id":7,"method":"m","c":[2],"d":"y"}"#;
        let msg = one(line).expect("valid");
        let span = |part: &str| {
            let at = line.find(part).expect("in the line");
            at..at + part.len()
        };
        let (a, b, c, d) = (span(r#""x""#), span("1"), span("[2]"), span(r#""y""#));
        let want = r#"{"a":A,"jsonrpc":"2.0","b":B,"id":99,"method":"m","c":C,"d":D}
"#;
        // Sorted (before and after the id, or all on one side) and unsorted alike.
        let orders: [&[(Range<usize>, &str)]; 5] = [
            &[
                (a.clone(), "A"),
                (b.clone(), "B"),
                (c.clone(), "C"),
                (d.clone(), "D"),
            ],
            &[
                (d.clone(), "D"),
                (a.clone(), "A"),
                (c.clone(), "C"),
                (b.clone(), "B"),
            ],
            &[
                (c.clone(), "C"),
                (d.clone(), "D"),
                (a.clone(), "A"),
                (b.clone(), "B"),
            ],
            &[
                (a.clone(), "A"),
                (b.clone(), "B"),
                (d.clone(), "D"),
                (c.clone(), "C"),
            ],
            &[
                (b.clone(), "B"),
                (a.clone(), "A"),
                (c.clone(), "C"),
                (d.clone(), "D"),
            ],
        ];
        for edits in orders {
            assert_eq!(&msg.rewrite(Some("99"), edits)[..], want.as_bytes());
            let owned: Vec<(Range<usize>, String)> = edits
                .iter()
                .map(|(r, t)| (r.clone(), (*t).to_owned()))
                .collect();
            assert_eq!(&msg.rewrite_with(Some("99"), &owned)[..], want.as_bytes());
        }
        let before: [(Range<usize>, &str); 2] = [(a.clone(), "A"), (b.clone(), "B")];
        let after: [(Range<usize>, &str); 2] = [(c.clone(), "C"), (d.clone(), "D")];
        for edits in [&before[..], &after[..]] {
            let mut want = line.to_owned();
            for (range, text) in edits.iter().rev() {
                want.replace_range(range.clone(), text);
            }
            let want = format!("{}\n", want.replace(r#""id":7"#, r#""id":99"#));
            assert_eq!(&msg.rewrite(Some("99"), edits)[..], want.as_bytes());
            // No id given: the edits alone.
            let kept = want.replace(r#""id":99"#, r#""id":7"#);
            assert_eq!(&msg.rewrite(None, edits)[..], kept.as_bytes());
        }
    }

    #[test]
    fn method_names_of_the_protocol_are_not_copied() {
        for name in [
            "tools/call",
            "notifications/progress",
            "initialize",
            "tasks/update",
        ] {
            assert!(matches!(method_text(name), Cow::Borrowed(n) if n == name));
        }
        for name in ["tools/call2", "x", "", "Tools/call"] {
            assert!(matches!(method_text(name), Cow::Owned(n) if n == name));
        }
        let m = one(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#).expect("valid");
        assert!(matches!(
            m.kind(),
            Kind::Request {
                method: Cow::Borrowed("tools/call"),
                ..
            }
        ));
        let m = one(r#"{"jsonrpc":"2.0","method":"t\u006fols/call"}"#).expect("valid");
        assert_eq!(m.method(), Some("tools/call"));
    }

    #[test]
    fn param_span_is_where_param_finds_the_value() {
        let line = r#"{"jsonrpc":"2.0","id":1,"method":"x","params": { "n\u0061me" : "a\"}" ,
            "arguments":{"name":{"x":[1,"}"]}}, "z":null } }"#;
        let m = one(line).expect("valid");
        let paths: [&[&str]; 7] = [
            &["name"],
            &["arguments"],
            &["arguments", "name"],
            &["arguments", "name", "x"],
            &["z"],
            &["missing"],
            &[],
        ];
        for path in paths {
            assert_eq!(
                m.param_span(path),
                m.param(path).map(|(_, span)| span),
                "{path:?}"
            );
        }
        let m = one(r#"{"jsonrpc":"2.0","id":1,"method":"x"}"#).expect("valid");
        assert_eq!(m.param_span(&["name"]), None);
        let m = one(r#"{"jsonrpc":"2.0","id":1,"result":{"a":1}}"#).expect("valid");
        assert_eq!(m.result_bytes(), m.result().map(str::as_bytes));
    }

    #[test]
    fn params_are_found_with_their_spans() {
        let m = one(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"name":"a","_meta":{"progressToken": 7 }}}"#)
            .expect("valid");
        let (token, span) = m.param(&["_meta", "progressToken"]).expect("token");
        assert_eq!(token, "7");
        assert_eq!(&m.raw()[span], b"7");
        assert_eq!(m.param(&["name"]).map(|(v, _)| v), Some(r#""a""#));
        assert_eq!(m.param(&["missing"]), None);
        assert_eq!(m.param(&["name", "deeper"]), None);
        // Asked again (from the index built by the first question), and with the
        // empty path (all of params).
        assert_eq!(m.param(&["name"]).map(|(v, _)| v), Some(r#""a""#));
        assert_eq!(m.param(&[]).map(|(_, s)| s), m.params_span());
    }

    #[test]
    fn params_index_answers_as_a_fresh_walk_does() {
        let line = r#"{"jsonrpc":"2.0","id":1,"method":"x","params": { "n\u0061me" : "a\"}" ,
            "arguments":{"name":{"x":[1,"}"]}}, "long":"0123456789abcdef0123456789\\", "z":null } }"#;
        let m = one(line).expect("valid");
        // The walk's spans are taken against the message's own bytes.
        let line = std::str::from_utf8(m.raw()).expect("UTF-8");
        let params = m.params().expect("params");
        for path in [
            &["name"][..],
            &["arguments"],
            &["arguments", "name", "x"],
            &["long"],
            &["z"],
            &["missing"],
            &["z", "deeper"],
        ] {
            let walked = member_at(line, params, path);
            assert_eq!(m.param(path), walked, "{path:?}");
            if let Some((text, span)) = walked {
                assert_eq!(&line[span], text);
            }
        }
        let array =
            one(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":["name"]}"#).expect("valid");
        assert_eq!(array.param(&["name"]), None);
    }

    #[test]
    fn ids_are_recovered_from_the_head_of_a_cut_off_message() {
        let id = |head: &str| recover_id(head.as_bytes()).map(|i| i.as_str().to_owned());
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":42,"result":{"content":[{"text":"xxxx"#).as_deref(),
            Some("42")
        );
        assert_eq!(
            id(r#"{"jsonrpc":"2.0", "id" : "a\"b","method":"x","params":{"#).as_deref(),
            Some(r#""a\"b""#)
        );
        // An "id" inside params is not the message's id.
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","result":{"id":9,"text":"xxxxxxxxxxxx"#),
            None
        );
        // A value cut off by the head's end is not trusted.
        assert_eq!(id(r#"{"jsonrpc":"2.0","id":12"#), None);
        assert_eq!(id(r#"{"jsonrpc":"2.0","id":"unterminated"#), None);
        assert_eq!(id(r#"{"jsonrpc":"2.0","id":1.5,"#), None);
    }

    /// What a parse gave, to compare two parsers (kind, spans, error and its words).
    /// What a parser made of `line`, its params index included: the one-pass scan
    /// builds it while it walks, the reference at the first question, and the two
    /// must be the same.
    fn outcome(line: &str, parser: fn(Bytes) -> Result<Parsed, ParseError>) -> String {
        let parsed = parser(Bytes::copy_from_slice(line.as_bytes()));
        match &parsed {
            Ok(Parsed::Single(msg)) => drop(msg.param(&[""])),
            Ok(Parsed::Batch(items)) => items.iter().flatten().for_each(|m| drop(m.param(&[""]))),
            Err(_) => {}
        }
        format!("{parsed:?}")
    }

    #[test]
    fn the_one_pass_scan_agrees_with_serde_and_takes_the_usual_lines() {
        let usual = [
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"b0__echo","arguments":{"message":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"a \"quoted\" \u00e9 line\n"}],"isError":false}}"#,
            r#" { "jsonrpc" : "2.0" , "method" : "notifications/progress" , "params" : { "progress" : -0.5 , "total" : 10 } } "#,
            r#"{"jsonrpc":"2.0","id":"a","error":{"code":-32601,"message":"no","data":[null,true,false,[],{}]}}"#,
        ];
        for line in usual {
            assert!(super::super::strict::envelope(line).is_some(), "{line}");
            assert_eq!(
                outcome(line, parse),
                outcome(line, parse_in_two_passes),
                "{line}"
            );
        }
        let deep = |n: usize| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{{"a":{}1{}}}}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        let many_keys = (0..40).fold(String::new(), |keys, i| keys + &format!(r#""k{i}":{i},"#));
        let odd = [
            String::new(),
            " ".into(),
            "[]".into(),
            r#"[{"jsonrpc":"2.0","method":"a"}]"#.into(),
            "1".into(),
            r#""x""#.into(),
            r#"{"jsonrpc":"2.0","id":1,"method":"x","id":2}"#.into(),
            r#"{"jsonrpc":"2.0","id":1,"method":"x","\u0069d":2}"#.into(),
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":{"b":1,"b":2}}}"#.into(),
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"a\"":1,"a\u0022":2}}"#.into(),
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{{{many_keys}"k3":0}}}}"#),
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{{{many_keys}"z":0}}}}"#),
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\tb\"}".into(),
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":{\"a\":\"0123456789abcdef0123\u{1}\"}}".into(),
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":"\ud800"}}"#.into(),
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":"\ud83d\ude00"}}"#.into(),
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":"\x"}}"#.into(),
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":"\u12"}}"#.into(),
            r#"{"jsonrpc":"2.0","id":01,"method":"x"}"#.into(),
            r#"{"jsonrpc":"2.0","id":1.,"method":"x"}"#.into(),
            r#"{"jsonrpc":"2.0","id":-,"method":"x"}"#.into(),
            r#"{"jsonrpc":"2.0","id":1e400,"method":"x"}"#.into(),
            r#"{"jsonrpc":"2.0","id":1E3,"method":"x"}"#.into(),
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{{"n":{}}}}}"#,
                "9".repeat(400)
            ),
            r#"{"jsonrpc":"2.0","id":18446744073709551616,"method":"x"}"#.into(),
            r#"{"jsonrpc":"2.0","id":1,"method":"x"} x"#.into(),
            r#"{"jsonrpc":"2.0","id":1,"method":"x",}"#.into(),
            r#"{"jsonrpc":"2.0","id":1,"method":"x""#.into(),
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1,]}"#.into(),
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":tru}}"#.into(),
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":nulll}}"#.into(),
            r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#.into(),
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#.into(),
            r#"{"jsonrpc":"2.0","id":1,"method":"a\/b"}"#.into(),
            r#"{"jsonrpc":"2.0","id":1,"params":7,"method":"x"}"#.into(),
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#.into(),
            r#"{"jsonrpc":"2.0","id":1}"#.into(),
            r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#.into(),
            r#"{"jsonrpc":"2.0","method":"x","id":{"a":1}}"#.into(),
            "{\"jsonrpc\":\"2.0\",\u{a0}\"id\":1,\"method\":\"x\"}".into(),
            deep(60),
            deep(70),
            deep(200),
        ];
        for line in &odd {
            assert_eq!(
                outcome(line, parse),
                outcome(line, parse_in_two_passes),
                "{line}"
            );
        }
    }

    fn floor_boundary(text: &str, at: usize) -> usize {
        (0..=at.min(text.len()))
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0)
    }

    proptest! {
        /// Law: the one-pass scan and `serde_json` give the same message or the same
        /// refusal, in the same words, for any edit of a message.
        #[test]
        fn one_pass_and_two_passes_agree(
            at in 0usize..200,
            cut in 0usize..4,
            insert in prop::sample::select(vec![
                "", "\"", "\\", "{", "}", "[", "]", ":", ",", " ", "\t", "\n", "\u{1}",
                "\\u0041", "\\ud800", "\\u00", "0", "-", ".", "e5", "1e400", "true",
                "nul", "\"id\":2,", "\"a\":1,", "\"\\u0061\":1,", "\u{e9}",
            ]),
        ) {
            let base = r#"{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"a","a":[1,-2.5,true,null,{"b":"c\"d"}],"_meta":{"progressToken":"p"}}}"#;
            let at = floor_boundary(base, at);
            let end = floor_boundary(base, at + cut);
            let line = format!("{}{}{}", &base[..at], insert, &base[end..]);
            prop_assert_eq!(outcome(&line, parse), outcome(&line, parse_in_two_passes), "{}", line);
        }

        /// Law: the id's text survives a rewrite and back exactly, whatever it is.
        #[test]
        fn id_round_trip_is_exact(id in prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            "[a-zA-Z0-9 _-]{0,40}".prop_map(|s| format!("\"{s}\"")),
            (1u32..9, 0u32..30).prop_map(|(m, e)| format!("{m}e{e}")),
        ]) {
            let line = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"a":[1,2.50,{{}}]}}}}"#);
            let m = one(&line).expect("valid");
            let mapped = m.rewrite(Some("9"), &[]);
            let back = one(std::str::from_utf8(&mapped[..mapped.len() - 1]).expect("utf8")).expect("valid");
            prop_assert_eq!(back.id().map(Id::as_str), Some("9"));
            let restored = back.rewrite(Some(&id), &[]);
            prop_assert_eq!(std::str::from_utf8(&restored).expect("utf8"), format!("{line}\n"));
        }

        /// Parsing never panics on arbitrary bytes.
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(Bytes::from(bytes));
        }
    }
}
