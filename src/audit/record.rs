//! The audit record: its fields, its JSON line and the hash that chains it to the
//! session's previous record. Pure: building and checking lines does no I/O.
//!
//! # The line
//! One record is one line of JSON (UTF-8, no raw newline inside, `\n` at the end). The
//! members are written in the order of [`Record`]'s fields with `hash` last. The fields
//! SPEC "Audit" names are always present (`null` where they do not apply); `method`,
//! `listed`, `held`, `tools`, `detail` and `args` only when they have a value.
//!
//! # The chain
//! Every session is its own chain: `seq` counts from 1, `prev` is the previous record's
//! `hash` ([`GENESIS`] for record 1), and
//!
//! ```text
//! hash = "hmac-sha256:" + hex(HMAC-SHA-256(key, prev + "\n" + JCS(record without its "hash" member)))
//! ```
//!
//! with the per-install audit key (`audit.key`), so a chain cannot be rewritten (an
//! edited line re-chained, a session dropped and the rest re-hashed) without the key.
//! Records of format 1 (`"v": 1`, written before the key was used) were chained with
//! `"sha256:" + hex(SHA-256(...))` of the same text: they are read and verified as
//! what they were, unkeyed, and `audit verify` says how many there are.
//!
//! `prev` is the ASCII text of the record's own `prev` member, `"\n"` one byte
//! 0x0A, and `JCS(...)` the UTF-8 bytes of the RFC 8785 canonical form
//! ([`crate::canonical::canonicalize`]) of the line's top-level object with the
//! `hash` member removed and every other member as written (numbers included: RFC 8785
//! turns their text into the double it denotes, never through a lossy parser). The
//! canonical form makes the hash independent of member order and whitespace: a tool
//! that reformats a line does not break the chain, a change of any value does.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

use super::key::PreparedKey;
use crate::canonical::{self, CanonicalError};
use crate::time::Timestamp;

/// The record format's version, the `v` of every line written: 2, the keyed chain
/// (1 was the unkeyed one, still verified as written).
pub const VERSION: u32 = 2;

/// The first format whose chain is keyed.
pub const KEYED_VERSION: u32 = 2;

/// What a keyed chain hash starts with.
pub const KEYED_PREFIX: &str = "hmac-sha256:";

/// The `prev` of a session's first record.
pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// What was decided. Serialized in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Passed unchanged.
    Allow,
    /// Blocked by a rule (also an `ask` the user declined, a blocked output).
    Deny,
    /// Blocked because the tool's definition is new, changed or flagged (pinning).
    Hold,
    /// Passed with secrets replaced by `[REDACTED:<rule>]`.
    Redact,
    /// Passed with a warning block prepended (e.g. injection in a result).
    Flag,
    /// Would have been denied; passed because the policy is in `monitor` mode.
    Monitor,
    /// One summary per list answer (`tools/list`, `prompts/list`, ...): `listed` and
    /// `held` count the items, `tools` names the ones listed.
    List,
    /// The session's last record, written on a clean exit.
    Seal,
}

impl Decision {
    /// Every decision, in the order above.
    pub const ALL: [Self; 8] = [
        Self::Allow,
        Self::Deny,
        Self::Hold,
        Self::Redact,
        Self::Flag,
        Self::Monitor,
        Self::List,
        Self::Seal,
    ];

    /// The name on the wire and on the command line.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Hold => "hold",
            Self::Redact => "redact",
            Self::Flag => "flag",
            Self::Monitor => "monitor",
            Self::List => "list",
            Self::Seal => "seal",
        }
    }

    /// Whether `review` shows it: something was, or would have been, stopped or changed.
    #[must_use]
    pub const fn is_near_miss(self) -> bool {
        matches!(
            self,
            Self::Deny | Self::Hold | Self::Redact | Self::Flag | Self::Monitor
        )
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Decision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|d| d.as_str()).collect();
                format!("`{s}` is not a decision; one of {}", names.join(", "))
            })
    }
}

/// Which way the message the decision is about was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the client towards an upstream: a call, a read, a get, an answer to a
    /// server's request.
    ToServer,
    /// From an upstream towards the client: a result, a list answer, a server-to-client
    /// request (sampling, elicitation).
    ToClient,
    /// About the session itself (the seal).
    Session,
}

impl Direction {
    /// The name on the wire.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ToServer => "to_server",
            Self::ToClient => "to_client",
            Self::Session => "session",
        }
    }
}

/// One line of the audit log (format version [`VERSION`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The format version.
    pub v: u32,
    /// When the decision was made.
    pub ts: Timestamp,
    /// The session (one client connection); see [`super::SessionId`].
    pub session: String,
    /// The record's place in its session's chain, from 1.
    pub seq: u64,
    /// The workspace root, when there is one.
    pub workspace: Option<String>,
    /// The upstream server's table name.
    pub server: Option<String>,
    /// The exposed name of the tool (prompt, resource URI) the decision is about.
    pub tool: Option<String>,
    /// The JSON-RPC method (`tools/call`, `tools/list`, `sampling/createMessage`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Which way the message was going.
    pub direction: Direction,
    /// What was decided.
    pub decision: Decision,
    /// The id of the rule that decided (`flow:trifecta`, `pin:changed`, a policy rule's
    /// `id`); `null` for a plain allow.
    pub rule: Option<String>,
    /// Lowercase hex HMAC-SHA-256 of the canonical arguments ([`super::args_hmac`]).
    pub args_hmac: Option<String>,
    /// How long the upstream took, in milliseconds (results).
    pub ms: Option<u64>,
    /// The size of the message, in bytes.
    pub bytes: Option<u64>,
    /// `list` records: how many items the answer listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed: Option<u64>,
    /// `list` records: how many items were held back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<u64>,
    /// `list` records: the names listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// A short human-readable reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The arguments in clear, already redacted (`[audit] arguments = true` only), in
    /// RFC 8785 canonical form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Box<RawValue>>,
    /// The previous record's `hash` in this session ([`GENESIS`] for the first).
    pub prev: String,
    /// See the module docs. Empty only while a record is being built: a record with an
    /// empty hash serializes without the member, which is exactly the text hashed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

/// The chain hash of a record of format `v`: keyed from [`KEYED_VERSION`] on (and
/// then `None` without the key), `"sha256:"` before. See the module docs.
#[must_use]
pub(crate) fn chain_hash_of(
    v: u32,
    key: Option<&PreparedKey>,
    prev: &str,
    canonical_body: &[u8],
) -> Option<String> {
    let mut out = String::with_capacity(76);
    if v < KEYED_VERSION {
        chain_hash_into(prev, canonical_body, &mut out);
    } else {
        key?.chain_hash_into(prev, canonical_body, &mut out);
    }
    Some(out)
}

/// `"sha256:" + hex(SHA-256(prev + "\n" + canonical_body))`: the unkeyed chain of
/// format 1 (see the module docs).
#[must_use]
pub fn chain_hash(prev: &str, canonical_body: &str) -> String {
    let mut out = String::with_capacity(71);
    chain_hash_into(prev, canonical_body.as_bytes(), &mut out);
    out
}

/// [`chain_hash`] into `out` (cleared first), so the writer reuses one buffer.
fn chain_hash_into(prev: &str, canonical_body: &[u8], out: &mut String) {
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical_body);
    out.clear();
    out.push_str(canonical::DIGEST_PREFIX);
    push_hex(out, &hasher.finalize());
}

/// Appends `bytes` as lowercase hex.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
}

/// The largest integer a JCS number (an IEEE-754 double) holds exactly. The writer
/// keeps every integer field at or below it, so that serde's integer text is the
/// canonical text.
pub const MAX_EXACT_INTEGER: u64 = (1 << 53) - 1;

/// Fills in `record.hash` and returns the line to append (with its `\n`). The writer
/// seals through [`RecordView::seal_into`]; tests build whole records this way.
/// The key tests seal and check records with (the writer's tests use the same bytes).
#[cfg(test)]
pub(crate) fn test_key() -> PreparedKey {
    PreparedKey::new(&super::key::AuditKey::from_bytes([7; 32]))
}

#[cfg(test)]
pub(crate) fn seal_line(record: &mut Record) -> String {
    let mut line = Vec::new();
    let mut scratch = Vec::new();
    let mut hash = String::new();
    RecordView::from(&*record).seal_into(&test_key(), &mut line, &mut scratch, &mut hash);
    record.hash = hash;
    // Only `serde_json` output and ASCII were written: valid UTF-8.
    String::from_utf8(line).unwrap_or_default()
}

/// A record's members borrowed from wherever they live, serialized exactly as
/// [`Record`] (same members, same order, same skipping; `hash` is added by
/// [`RecordView::seal_into`]). The writer builds one per event without copying the
/// session id, workspace or previous hash into a [`Record`] of its own; a unit test
/// checks that both serialize to the same text.
#[derive(Serialize)]
pub(crate) struct RecordView<'a> {
    pub v: u32,
    pub ts: Timestamp,
    pub session: &'a str,
    pub seq: u64,
    pub workspace: Option<&'a str>,
    pub server: Option<&'a str>,
    pub tool: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'a str>,
    pub direction: Direction,
    pub decision: Decision,
    pub rule: Option<&'a str>,
    pub args_hmac: Option<&'a str>,
    pub ms: Option<u64>,
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<&'a RawValue>,
    pub prev: &'a str,
}

impl<'a> From<&'a Record> for RecordView<'a> {
    fn from(r: &'a Record) -> Self {
        Self {
            v: r.v,
            ts: r.ts,
            session: &r.session,
            seq: r.seq,
            workspace: r.workspace.as_deref(),
            server: r.server.as_deref(),
            tool: r.tool.as_deref(),
            method: r.method.as_deref(),
            direction: r.direction,
            decision: r.decision,
            rule: r.rule.as_deref(),
            args_hmac: r.args_hmac.as_deref(),
            ms: r.ms,
            bytes: r.bytes,
            listed: r.listed,
            held: r.held,
            tools: r.tools.as_deref(),
            detail: r.detail.as_deref(),
            args: r.args.as_deref(),
            prev: &r.prev,
        }
    }
}

impl RecordView<'_> {
    /// Appends the record's line (with its `\n`) to `line` and puts its chain hash in
    /// `hash`; `scratch` holds the canonical body meanwhile. All three are the
    /// caller's, so a writer reuses them from record to record.
    ///
    /// Fast path: the line is written by hand ([`LineWriter`], the text `serde_json`
    /// gives for [`Record`]), and the canonical body is the same member texts in
    /// RFC 8785 order, copied out of the line, instead of a second serialization or
    /// [`canonical::canonicalize`], which cost several times more. It equals the
    /// canonical form as long as the writer's invariants hold: `args` is already
    /// canonical and nested below [`canonical::MAX_DEPTH`] once inside the record, and
    /// integers are at most [`MAX_EXACT_INTEGER`] (strings are escaped as both
    /// `serde_json` and RFC 8785 do). Debug builds check both texts on every record.
    pub(crate) fn seal_into(
        &self,
        key: &PreparedKey,
        line: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        hash: &mut String,
    ) {
        let start = line.len();
        let spans = self.write_line(line);
        scratch.clear();
        scratch.push(b'{');
        for (name, member) in CANONICAL_ORDER {
            let span = &spans[member as usize];
            if span.is_empty() {
                continue;
            }
            if scratch.len() > 1 {
                scratch.push(b',');
            }
            scratch.push(b'"');
            scratch.extend_from_slice(name.as_bytes());
            scratch.extend_from_slice(b"\":");
            scratch.extend_from_slice(&line[span.clone()]);
        }
        scratch.push(b'}');
        debug_assert_eq!(
            serde_json::to_string(self)
                .ok()
                .as_deref()
                .map(str::as_bytes),
            Some(&line[start..]),
            "the hand-written line drifted from the record's serialization"
        );
        debug_assert_eq!(
            std::str::from_utf8(&line[start..])
                .ok()
                .map(canonical::canonicalize),
            Some(Ok(String::from_utf8_lossy(scratch).into_owned())),
            "the canonical body drifted from the record"
        );
        if self.v < KEYED_VERSION {
            chain_hash_into(self.prev, scratch, hash);
        } else {
            key.chain_hash_into(self.prev, scratch, hash);
        }
        // `hash` is the last member: the line is the body with it added before the `}`.
        line.pop();
        line.extend_from_slice(b",\"hash\":\"");
        line.extend_from_slice(hash.as_bytes());
        line.extend_from_slice(b"\"}\n");
    }

    /// Appends the record's JSON object (members in [`Record`]'s order, skipped ones
    /// left out, no `hash`) to `line`; returns where each member's value text lies in
    /// `line` (empty for a member left out).
    fn write_line(&self, line: &mut Vec<u8>) -> [Range<usize>; MEMBERS] {
        let mut w = LineWriter {
            line,
            spans: std::array::from_fn(|_| 0..0),
        };
        w.line.push(b'{');
        w.member(Member::V, |l| push_u64(l, u64::from(self.v)));
        w.member(Member::Ts, |l| {
            l.push(b'"');
            self.ts.push_rfc3339(l);
            l.push(b'"');
        });
        w.member(Member::Session, |l| push_str(l, self.session));
        w.member(Member::Seq, |l| push_u64(l, self.seq));
        w.member(Member::Workspace, |l| push_opt_str(l, self.workspace));
        w.member(Member::Server, |l| push_opt_str(l, self.server));
        w.member(Member::Tool, |l| push_opt_str(l, self.tool));
        if let Some(method) = self.method {
            w.member(Member::Method, |l| push_str(l, method));
        }
        w.member(Member::Direction, |l| push_str(l, self.direction.as_str()));
        w.member(Member::Decision, |l| push_str(l, self.decision.as_str()));
        w.member(Member::Rule, |l| push_opt_str(l, self.rule));
        w.member(Member::ArgsHmac, |l| push_opt_str(l, self.args_hmac));
        w.member(Member::Ms, |l| push_opt_u64(l, self.ms));
        w.member(Member::Bytes, |l| push_opt_u64(l, self.bytes));
        if let Some(listed) = self.listed {
            w.member(Member::Listed, |l| push_u64(l, listed));
        }
        if let Some(held) = self.held {
            w.member(Member::Held, |l| push_u64(l, held));
        }
        if let Some(tools) = self.tools {
            w.member(Member::Tools, |l| {
                l.push(b'[');
                for (i, name) in tools.iter().enumerate() {
                    if i > 0 {
                        l.push(b',');
                    }
                    push_str(l, name);
                }
                l.push(b']');
            });
        }
        if let Some(detail) = self.detail {
            w.member(Member::Detail, |l| push_str(l, detail));
        }
        if let Some(args) = self.args {
            w.member(Member::Args, |l| l.extend_from_slice(args.get().as_bytes()));
        }
        w.member(Member::Prev, |l| push_str(l, self.prev));
        w.line.push(b'}');
        w.spans
    }
}

/// A record's members, in the order of the line (and of [`Record`]'s fields).
#[derive(Clone, Copy)]
enum Member {
    V,
    Ts,
    Session,
    Seq,
    Workspace,
    Server,
    Tool,
    Method,
    Direction,
    Decision,
    Rule,
    ArgsHmac,
    Ms,
    Bytes,
    Listed,
    Held,
    Tools,
    Detail,
    Args,
    Prev,
}

const MEMBERS: usize = Member::Prev as usize + 1;

impl Member {
    const fn name(self) -> &'static str {
        match self {
            Self::V => "v",
            Self::Ts => "ts",
            Self::Session => "session",
            Self::Seq => "seq",
            Self::Workspace => "workspace",
            Self::Server => "server",
            Self::Tool => "tool",
            Self::Method => "method",
            Self::Direction => "direction",
            Self::Decision => "decision",
            Self::Rule => "rule",
            Self::ArgsHmac => "args_hmac",
            Self::Ms => "ms",
            Self::Bytes => "bytes",
            Self::Listed => "listed",
            Self::Held => "held",
            Self::Tools => "tools",
            Self::Detail => "detail",
            Self::Args => "args",
            Self::Prev => "prev",
        }
    }
}

/// The members in RFC 8785 order (keys sorted by UTF-16 code units; all ASCII here, so
/// byte order); a unit test checks the sort.
const CANONICAL_ORDER: [(&str, Member); MEMBERS] = {
    let order = [
        Member::Args,
        Member::ArgsHmac,
        Member::Bytes,
        Member::Decision,
        Member::Detail,
        Member::Direction,
        Member::Held,
        Member::Listed,
        Member::Method,
        Member::Ms,
        Member::Prev,
        Member::Rule,
        Member::Seq,
        Member::Server,
        Member::Session,
        Member::Tool,
        Member::Tools,
        Member::Ts,
        Member::V,
        Member::Workspace,
    ];
    let mut out = [("", Member::V); MEMBERS];
    let mut i = 0;
    while i < MEMBERS {
        out[i] = (order[i].name(), order[i]);
        i += 1;
    }
    out
};

/// Writes a line's members and notes where each value lies.
struct LineWriter<'l> {
    line: &'l mut Vec<u8>,
    spans: [Range<usize>; MEMBERS],
}

impl LineWriter<'_> {
    fn member(&mut self, member: Member, value: impl FnOnce(&mut Vec<u8>)) {
        if self.line.last() != Some(&b'{') {
            self.line.push(b',');
        }
        self.line.push(b'"');
        self.line.extend_from_slice(member.name().as_bytes());
        self.line.extend_from_slice(b"\":");
        let start = self.line.len();
        value(self.line);
        self.spans[member as usize] = start..self.line.len();
    }
}

fn push_opt_str(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => push_str(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

fn push_opt_u64(out: &mut Vec<u8>, n: Option<u64>) {
    match n {
        Some(n) => push_u64(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

/// An integer's decimal text, as `serde_json` (and RFC 8785, up to
/// [`MAX_EXACT_INTEGER`]) writes it.
fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(crate::canonical::Decimal::new(n).as_bytes());
}

/// A JSON string escaped as `serde_json` and RFC 8785 both do: `"` and `\`, the short
/// forms `\b \f \n \r \t`, other controls as `\u00xx` (lowercase hex), everything else
/// as it is (non-ASCII and DEL included).
fn push_str(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut plain = 0;
    // Most of a record's text needs no escape: it is found eight bytes at a time.
    while let Some(i) = crate::jsonrpc::next_special(bytes, plain) {
        let b = bytes[i];
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            _ => b'u',
        };
        out.extend_from_slice(&bytes[plain..i]);
        plain = i + 1;
        out.push(b'\\');
        out.push(short);
        if short == b'u' {
            out.extend_from_slice(&[
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        }
    }
    out.extend_from_slice(&bytes[plain..]);
    out.push(b'"');
}

/// A line whose chain hash was recomputed.
#[derive(Debug)]
pub(crate) struct CheckedLine {
    pub record: Record,
    /// The hash the record's contents give.
    pub computed: String,
}

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not JSON, or not an object.
    #[error("not a JSON object: {0}")]
    Json(String),
    /// JSON that cannot be canonicalized (a duplicate key, a huge number).
    #[error("not canonicalizable: {0}")]
    Canonical(#[from] CanonicalError),
    /// An object without the fields of a record (or of another version).
    #[error("not an audit record: {0}")]
    Fields(String),
}

/// Parses one line (without its `\n`) and recomputes its hash from its text (a keyed
/// one under `key`; without the key, the computed hash says so).
pub(crate) fn check_line(text: &str, key: Option<&PreparedKey>) -> Result<CheckedLine, LineError> {
    let members: Members =
        serde_json::from_str(text).map_err(|e| LineError::Json(e.to_string()))?;
    let mut body = String::with_capacity(text.len());
    body.push('{');
    let mut seen = std::collections::HashSet::new();
    for (key, value) in &members.0 {
        if !seen.insert(key.as_str()) {
            return Err(LineError::Json(format!("duplicate key `{key}`")));
        }
        if key == "hash" {
            continue;
        }
        if body.len() > 1 {
            body.push(',');
        }
        body.push_str(&serde_json::to_string(key).map_err(|e| LineError::Json(e.to_string()))?);
        body.push(':');
        body.push_str(value.get());
    }
    body.push('}');
    let canonical = canonical::canonicalize(&body)?;
    let record: Record =
        serde_json::from_str(text).map_err(|e| LineError::Fields(e.to_string()))?;
    let computed = chain_hash_of(record.v, key, &record.prev, canonical.as_bytes())
        .unwrap_or_else(|| "(cannot be checked without the audit key)".to_owned());
    Ok(CheckedLine { record, computed })
}

/// Parses one line (without its `\n`) as a record, without checking its hash.
pub fn parse_line(text: &str) -> Result<Record, LineError> {
    serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            LineError::Fields(e.to_string())
        } else {
            LineError::Json(e.to_string())
        }
    })
}

/// A top-level object's members in document order, duplicates kept, values verbatim.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use proptest::strategy::Strategy as _;

    use super::*;

    fn record() -> Record {
        Record {
            v: VERSION,
            ts: Timestamp::from_millis(1_777_636_800_123),
            session: "4242-77-0a1b2c3d".into(),
            seq: 1,
            workspace: Some("/home/u/proj".into()),
            server: Some("fs".into()),
            tool: Some("fs__read_file".into()),
            method: Some("tools/call".into()),
            direction: Direction::ToServer,
            decision: Decision::Deny,
            rule: Some("no-secrets".into()),
            args_hmac: Some("ab".repeat(32)),
            ms: None,
            bytes: Some(91),
            listed: None,
            held: None,
            tools: None,
            detail: None,
            args: Some(RawValue::from_string(r#"{"n":1.5,"path":"/x"}"#.into()).expect("raw")),
            prev: GENESIS.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn a_sealed_line_checks_and_hash_is_last() {
        let mut r = record();
        let line = seal_line(&mut r);
        assert!(line.ends_with(&format!(",\"hash\":\"{}\"}}\n", r.hash)));
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.starts_with(r#"{"v":2,"ts":"2026-05-01T12:00:00.123Z","session":"#));
        let checked = check_line(line.trim_end(), Some(&test_key())).expect("check");
        assert_eq!(checked.computed, r.hash);
        assert_eq!(checked.record.hash, r.hash);
    }

    #[test]
    fn the_borrowed_view_serializes_as_the_record_does() {
        let mut r = record();
        let _ = seal_line(&mut r);
        let hash = std::mem::take(&mut r.hash);
        assert_eq!(
            serde_json::to_string(&RecordView::from(&r)).expect("view"),
            serde_json::to_string(&r).expect("record")
        );
        // And with every optional member present.
        r.listed = Some(2);
        r.held = Some(0);
        r.tools = Some(vec!["a".into(), "b".into()]);
        r.detail = Some("why".into());
        r.method = None;
        assert_eq!(
            serde_json::to_string(&RecordView::from(&r)).expect("view"),
            serde_json::to_string(&r).expect("record")
        );
        r.hash = hash;
        // The hand-written line is that text too (`seal_into` asserts it in debug
        // builds), with every optional member present and with none.
        let line = seal_line(&mut r);
        let mut unhashed: Record = serde_json::from_str(&line).expect("json");
        unhashed.hash.clear();
        let text = serde_json::to_string(&unhashed).expect("record");
        assert_eq!(
            line,
            format!("{},\"hash\":\"{}\"}}\n", &text[..text.len() - 1], r.hash)
        );
        let mut bare = record();
        bare.workspace = None;
        bare.server = None;
        bare.tool = None;
        bare.method = None;
        bare.rule = None;
        bare.args_hmac = None;
        bare.bytes = None;
        bare.args = None;
        let line = seal_line(&mut bare);
        let checked = check_line(line.trim_end(), Some(&test_key())).expect("check");
        assert_eq!(checked.computed, bare.hash);
    }

    #[test]
    fn the_hash_covers_exactly_the_documented_bytes() {
        let mut r = record();
        let line = seal_line(&mut r);
        let mut value: serde_json::Value = serde_json::from_str(&line).expect("json");
        value.as_object_mut().expect("object").remove("hash");
        let canonical = canonical::canonicalize(&value.to_string()).expect("canonical");
        let expected = format!(
            "{KEYED_PREFIX}{}",
            super::super::key::hmac_hex(&[7; 32], format!("{GENESIS}\n{canonical}").as_bytes())
        );
        assert_eq!(r.hash, expected);
        // Format 1 was the unkeyed chain of the same bytes, and is still checked so.
        let mut old = record();
        old.v = 1;
        let old_line = seal_line(&mut old);
        let mut value: serde_json::Value = serde_json::from_str(&old_line).expect("json");
        value.as_object_mut().expect("object").remove("hash");
        let canonical = canonical::canonicalize(&value.to_string()).expect("canonical");
        let mut hasher = Sha256::new();
        hasher.update(format!("{GENESIS}\n{canonical}").as_bytes());
        let mut unkeyed = String::from("sha256:");
        push_hex(&mut unkeyed, &hasher.finalize());
        assert_eq!(old.hash, unkeyed);
        assert_eq!(
            check_line(old_line.trim_end(), None)
                .expect("check")
                .computed,
            unkeyed
        );
        // A keyed line cannot be checked without the key.
        assert_ne!(
            check_line(line.trim_end(), None).expect("check").computed,
            r.hash
        );
        // Reformatted, the canonical form and so the hash is the same.
        let pretty = serde_json::to_string_pretty(
            &serde_json::from_str::<serde_json::Value>(&line).expect("json"),
        )
        .expect("pretty")
        .replace('\n', " ");
        assert_eq!(
            check_line(&pretty, Some(&test_key()))
                .expect("check")
                .computed,
            r.hash
        );
        // The same number written another way is the same JSON, and the same hash.
        let respelled = line.replacen("1.5", "15e-1", 1);
        assert_eq!(
            check_line(respelled.trim_end(), Some(&test_key()))
                .expect("check")
                .computed,
            r.hash
        );
    }

    #[test]
    fn any_edit_changes_the_computed_hash() {
        let mut r = record();
        let line = seal_line(&mut r);
        let line = line.trim_end();
        for (from, to) in [
            (r#""deny""#, r#""allow""#),
            (r#""seq":1"#, r#""seq":2"#),
            ("1.5", "1.51"),
            (r#""bytes":91"#, r#""bytes":90"#),
        ] {
            let edited = line.replacen(from, to, 1);
            assert_ne!(edited, line, "{from} not found");
            assert_ne!(
                check_line(&edited, Some(&test_key()))
                    .expect("check")
                    .computed,
                r.hash,
                "{from}"
            );
        }
        let dup = line.replacen('{', r#"{"seq":1,"#, 1);
        assert!(check_line(&dup, Some(&test_key())).is_err());
        assert!(matches!(
            check_line("[1]", Some(&test_key())),
            Err(LineError::Json(_))
        ));
        assert!(matches!(
            check_line(r#"{"v":1}"#, Some(&test_key())),
            Err(LineError::Fields(_))
        ));
    }

    proptest::proptest! {
        /// The fast canonical view equals RFC 8785 canonicalization for any strings and
        /// exact integers (`seal_line` asserts it in debug builds), and the line checks.
        #[test]
        fn the_canonical_view_is_jcs(
            tool in "\\PC*",
            detail in proptest::option::of(any_string()),
            session in any_string(),
            ms in proptest::option::of(0..=MAX_EXACT_INTEGER),
            tools in proptest::option::of(proptest::collection::vec(any_string(), 0..4)),
        ) {
            let mut r = record();
            r.tool = Some(tool);
            r.detail = detail;
            r.session = session;
            r.ms = ms;
            r.tools = tools;
            let line = seal_line(&mut r);
            proptest::prop_assert_eq!(line.matches('\n').count(), 1);
            let checked = check_line(line.trim_end(), Some(&test_key())).expect("check");
            proptest::prop_assert_eq!(checked.computed, r.hash);
        }
    }

    /// Any string, controls and astral characters included.
    fn any_string() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::collection::vec(proptest::char::any(), 0..12)
            .prop_map(|chars| chars.into_iter().collect())
    }

    #[test]
    fn the_canonical_order_is_sorted_and_names_every_member() {
        let names: Vec<&str> = CANONICAL_ORDER.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        for (name, member) in CANONICAL_ORDER {
            assert_eq!(name, member.name());
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_does() {
        let mut text: String = (0u8..0x80).map(char::from).collect();
        text.push_str("é€😀\u{7f}\"\\/");
        let mut out = Vec::new();
        push_str(&mut out, &text);
        assert_eq!(
            String::from_utf8_lossy(&out),
            serde_json::to_string(&text).expect("json")
        );
        for n in [0, 9, 10, 99, 100, MAX_EXACT_INTEGER, u64::MAX] {
            out.clear();
            push_u64(&mut out, n);
            assert_eq!(String::from_utf8_lossy(&out), n.to_string());
        }
    }

    #[test]
    fn decisions_parse_from_their_names() {
        for d in Decision::ALL {
            assert_eq!(d.as_str().parse::<Decision>(), Ok(d));
            assert_eq!(serde_json::to_string(&d).expect("json"), format!("\"{d}\""));
        }
        assert!("denied".parse::<Decision>().is_err());
    }
}
