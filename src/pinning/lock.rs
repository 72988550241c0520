//! `mcp-warden.lock`: the pinned definitions, committed and reviewed like code (SPEC
//! "Pinning", "Files and layers").
//!
//! Owns the file's model ([`LockFile`]), its text ([`parse`], [`render`]) and its safe
//! update ([`read`], [`update`]). It never decides what is held or pinned (that is the
//! caller's business), and it never replaces a file it cannot read: a corrupt lock file
//! (bad TOML, a merge conflict, an unknown key, a hand-edited definition) is an error with
//! `file:line:col`, so a pin is never lost or laundered silently.
//!
//! # Format
//! ```toml
//! # mcp-warden.lock: pinned MCP definitions. Written by `mcp-warden pin`; review changes like code.
//! version = 2
//!
//! [servers.fs]                      # one table per server, sorted by name
//! identity = "sha256:<hex>"         # identity_digest(command, args) as written
//! instructions = "sha256:<hex>"     # of `instructions` from `initialize`; absent if none
//!
//! [[pins]]                          # one per item, sorted by (server, kind, name)
//! server = "fs"
//! kind = "tool"                     # "tool" | "prompt" | "resource_template"
//! name = "read_file"                # the upstream's name
//! exposed = "fs__read_file"         # the name the client sees
//! digest = "sha256:<hex>"           # canonical::digest of the definition
//! accepted = []                     # accepted scan finding ids, sorted
//! definition = '''
//! {
//!   "description": "Read a file",
//!   "name": "read_file"
//! }
//! '''
//! ```
//!
//! # Decisions
//! - **Written by hand, read by `toml`.** [`render`] writes the text itself rather than
//!   through a serializer, so that the layout (header, `version` first, blank lines, the
//!   order of keys, the string style) is fixed by this file and not by a dependency's
//!   version; rendering a parsed file gives back the same text byte for byte. Reading goes
//!   through `toml` with `deny_unknown_fields` and `Spanned` for positions.
//! - **The definition is canonical JSON, pretty-printed.** The model keeps the RFC 8785
//!   text of the whole item, its own `_meta` included ([`canonical::canonicalize`]);
//!   the file shows it
//!   with one member or element per line and 2-space indentation, so a pull request's
//!   diff points at the changed line. Indentation is added by walking the canonical text
//!   (not by `serde_json`, which could round numbers differently), so parsing it back and
//!   canonicalizing gives the same text and digest.
//! - **String style.** A definition is a multi-line literal string (`'''`), which needs no
//!   escapes; when the JSON contains `'''` or a control character that literal strings
//!   cannot hold (DEL and C1 controls can appear raw in canonical JSON), it is a
//!   multi-line basic string (`"""`) with `\` and `"` escaped instead. Other strings are
//!   basic strings with TOML escapes.
//! - **Version 1 left the item's `_meta` out** of the definition and the digest. A
//!   version 1 file is still read (its definitions as written, which hold no `_meta`),
//!   and the next write makes it version 2 with those pins unchanged. So an item without
//!   `_meta` stays pinned, and one with `_meta` no longer matches its old pin: it is held
//!   as changed, with a reason saying why ([`LockFile::legacy_meta`]), and never
//!   re-approved silently.
//! - **The digest is checked on read.** A definition whose digest differs from its
//!   `digest` field was edited by hand (or half-merged); it is refused rather than trusted
//!   either way.
//! - **Updates are serialized** by an advisory lock (`flock`) on a sibling file
//!   `.<name>.lck` (the lock file itself is replaced by rename, so it cannot carry the
//!   lock). [`update`] re-reads the file under the lock, so concurrent writers never lose
//!   each other's pins, then writes a temporary file in the same directory and renames
//!   it into place. The lock file is shared and committed, not secret: mode 0644.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::io;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::canonical::{self, CanonicalError, DIGEST_PREFIX};
use crate::config::{Diagnostic, Severity, Source};
use crate::file_error::FileError;

/// The format version this module writes (and reads).
pub const VERSION: i64 = 2;

/// The version before items' `_meta` was pinned: still read, never written.
pub const VERSION_WITHOUT_META: i64 = 1;

/// The first line of every lock file.
pub const HEADER: &str = "# mcp-warden.lock: pinned MCP definitions. Written by `mcp-warden \
                          pin`; review changes like code.";

/// Mode of the lock file: committed and shared, not secret.
#[cfg(unix)]
const FILE_MODE: u32 = 0o644;

/// Why a lock file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The file is not a valid lock file; never replaced automatically.
    #[error("{0}")]
    Invalid(Diagnostic),
    /// A file that could not be read or written.
    #[error(transparent)]
    File(#[from] FileError),
}

impl LockError {
    /// The error as diagnostics, for commands that print every problem the same way.
    #[must_use]
    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        let path = match self {
            Self::Invalid(d) => return vec![d],
            Self::File(ref e) => e.path().to_owned(),
        };
        vec![Diagnostic::file(&path, Severity::Error, self.to_string())]
    }
}

/// What kind of definition a pin is for. The order of the variants is the order of
/// pins in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Tool,
    Prompt,
    ResourceTemplate,
}

impl Kind {
    /// The name written in the file.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Prompt => "prompt",
            Self::ResourceTemplate => "resource_template",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which item a pin is for; the derived order (server, kind, name) is the file's order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PinKey {
    /// The server's table name in the configuration.
    pub server: String,
    pub kind: Kind,
    /// The name the upstream uses.
    pub name: String,
}

impl PinKey {
    #[must_use]
    pub fn new(server: impl Into<String>, kind: Kind, name: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            kind,
            name: name.into(),
        }
    }
}

/// What is pinned about a server itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPin {
    /// [`identity_digest`] of the command and arguments as written in the configuration.
    pub identity: String,
    /// Digest of the `instructions` from `initialize`; `None` when the server sent none.
    pub instructions: Option<String>,
}

/// One pinned tool, prompt or resource template.
///
/// The definition and its digest are set together by [`ItemPin::new`] and only read
/// afterwards, so a pin in memory always matches its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemPin {
    /// The name the client sees (namespaced).
    pub exposed: String,
    /// Scan finding ids the user accepted for this definition.
    pub accepted: BTreeSet<String>,
    /// RFC 8785 canonical JSON of the whole item (`_meta` included).
    definition: String,
    /// `sha256:<hex>` of `definition`.
    digest: String,
}

impl ItemPin {
    /// A pin of `definition_json` (the object as the upstream sent it, its `_meta`
    /// included), with no accepted findings.
    pub fn new(exposed: impl Into<String>, definition_json: &str) -> Result<Self, CanonicalError> {
        let definition = canonical::canonicalize(definition_json)?;
        let digest = canonical::digest_whole(&definition)?;
        Ok(Self {
            exposed: exposed.into(),
            accepted: BTreeSet::new(),
            definition,
            digest,
        })
    }

    /// The pinned definition as canonical JSON (no whitespace, sorted keys).
    #[must_use]
    pub fn definition(&self) -> &str {
        &self.definition
    }

    /// The definition with one member or element per line, as written in the file; for
    /// showing a change as a diff.
    #[must_use]
    pub fn definition_pretty(&self) -> String {
        pretty(&self.definition)
    }

    /// `sha256:<hex>` of the definition.
    #[must_use]
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

/// The whole lock file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockFile {
    pub servers: BTreeMap<String, ServerPin>,
    pub items: BTreeMap<PinKey, ItemPin>,
    /// Read from a version 1 file, whose pins left the items' `_meta` out: an item
    /// that has `_meta` does not match its pin, and is held saying so.
    pub legacy_meta: bool,
}

impl LockFile {
    /// Whether nothing is pinned.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.items.is_empty()
    }
}

/// `sha256:<hex>` of a server's command and arguments as written (not expanded): the
/// digest of the canonical JSON of `{"command": command, "args": args}`.
///
/// # Panics
/// Never: JSON serialized from strings is always valid, two levels deep and free of
/// duplicate keys, so canonicalizing it cannot fail.
#[must_use]
pub fn identity_digest(command: &str, args: &[String]) -> String {
    let json = serde_json::json!({ "command": command, "args": args }).to_string();
    canonical::digest(&json)
        .expect("json serialized from strings is valid, shallow and has no duplicate keys")
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLock {
    version: Spanned<i64>,
    #[serde(default)]
    servers: BTreeMap<String, RawServer>,
    #[serde(default)]
    pins: Vec<RawPin>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    identity: Spanned<String>,
    instructions: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPin {
    server: Spanned<String>,
    kind: Kind,
    name: String,
    exposed: String,
    digest: Spanned<String>,
    #[serde(default)]
    accepted: Vec<String>,
    definition: Spanned<String>,
}

/// Parses the text of a lock file read from `path` (used for positions only).
pub fn parse(path: &Path, text: &str) -> Result<LockFile, LockError> {
    let source = Source::new(path, text);
    let invalid = |d: Diagnostic| LockError::Invalid(corrupt(d));
    // Merge-conflict markers are refused wherever they are, inside a definition's
    // multi-line string too, where TOML alone would take them as text.
    if let Some(offset) = conflict_marker(text) {
        return Err(LockError::Invalid(
            source
                .error(&(offset..offset + 7), "merge conflict marker")
                .with_hint("resolve the conflict, then run `mcp-warden pins` to review the result"),
        ));
    }
    let raw: RawLock = toml::from_str(text).map_err(|e| invalid(source.toml_error(&e, None)))?;
    let version = *raw.version.get_ref();
    if version != VERSION && version != VERSION_WITHOUT_META {
        let message = format!("unsupported lock file version `{}`", raw.version.get_ref());
        return Err(LockError::Invalid(
            source
                .error(&raw.version.span(), message)
                .with_hint(format!(
                    "this mcp-warden reads version {VERSION}; a newer mcp-warden may have \
                     written this file"
                )),
        ));
    }
    let check_digest = |value: &Spanned<String>| {
        if is_digest(value.get_ref()) {
            Ok(())
        } else {
            let message = format!("invalid digest `{}`", value.get_ref());
            Err(invalid(source.error(&value.span(), message)))
        }
    };

    let mut lock = LockFile {
        legacy_meta: version == VERSION_WITHOUT_META,
        ..LockFile::default()
    };
    for (name, server) in raw.servers {
        check_digest(&server.identity)?;
        if let Some(instructions) = &server.instructions {
            check_digest(instructions)?;
        }
        let pin = ServerPin {
            identity: server.identity.into_inner(),
            instructions: server.instructions.map(Spanned::into_inner),
        };
        lock.servers.insert(name, pin);
    }

    for pin in raw.pins {
        check_digest(&pin.digest)?;
        let key = PinKey::new(pin.server.get_ref().as_str(), pin.kind, pin.name);
        let what = format!("{} `{}` of server `{}`", key.kind, key.name, key.server);
        let span = pin.definition.span();
        let written = pin.definition.get_ref();
        // Version 1 wrote definitions without `_meta` and digested them so; what it
        // wrote is read as it is (a hand-added `_meta` would not match the digest).
        let canonicalize = if version == VERSION_WITHOUT_META {
            canonical::canonicalize_without_meta
        } else {
            canonical::canonicalize
        };
        let definition = canonicalize(written).map_err(|e| {
            let at = definition_offset(&source, &span, written, error_offset(&e));
            invalid(source.error(&(at..at), format!("invalid definition of {what}: {e}")))
        })?;
        let digest = canonical::digest_whole(&definition).map_err(|e| {
            invalid(source.error(&span, format!("invalid definition of {what}: {e}")))
        })?;
        if digest != *pin.digest.get_ref() {
            return Err(LockError::Invalid(
                source
                    .error(
                        &span,
                        format!(
                            "definition of {what} does not match its digest `{}`",
                            pin.digest.get_ref()
                        ),
                    )
                    .with_hint(
                        "the definition was edited by hand or half-merged; restore it from \
                         version control, or run `mcp-warden pin` to pin what the server sends",
                    ),
            ));
        }
        let item = ItemPin {
            exposed: pin.exposed,
            accepted: pin.accepted.into_iter().collect(),
            definition,
            digest,
        };
        if lock.items.contains_key(&key) {
            let message = format!("duplicate pin for {what}");
            return Err(invalid(source.error(&pin.server.span(), message)));
        }
        lock.items.insert(key, item);
    }
    Ok(lock)
}

/// Adds the "never replaced" hint, unless the diagnostic already has a more specific one
/// (such as a "did you mean").
/// The offset of the first line that starts with a merge-conflict marker.
fn conflict_marker(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        let marker = ["<<<<<<<", ">>>>>>>", "|||||||"]
            .iter()
            .any(|m| bare.starts_with(m))
            || bare == "=======";
        if marker {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

fn corrupt(d: Diagnostic) -> Diagnostic {
    if d.hint.is_some() {
        return d;
    }
    d.with_hint(
        "mcp-warden never replaces a lock file it cannot read: fix it (a merge conflict?) or \
         restore it from version control",
    )
}

fn is_digest(s: &str) -> bool {
    s.strip_prefix(DIGEST_PREFIX).is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn error_offset(e: &CanonicalError) -> usize {
    match e {
        CanonicalError::Syntax { offset, .. }
        | CanonicalError::NumberOutOfRange { offset, .. }
        | CanonicalError::DuplicateKey { offset, .. }
        | CanonicalError::TooDeep { offset, .. } => *offset,
    }
}

/// The byte offset in the file of byte `offset` inside the definition written at `span`.
/// Multi-line strings drop the newline right after their opening quotes, which
/// [`Source::offset_in_string`] does not know about.
fn definition_offset(
    source: &Source<'_>,
    span: &Range<usize>,
    value: &str,
    offset: usize,
) -> usize {
    if let Some(written) = source.text.get(span.clone()) {
        for quote in ["'''", "\"\"\""] {
            for newline in ["\n", "\r\n"] {
                let open = format!("{quote}{newline}");
                let inner = written
                    .strip_prefix(open.as_str())
                    .and_then(|w| w.strip_suffix(quote));
                if inner == Some(value) {
                    return span.start + open.len() + offset;
                }
            }
        }
    }
    source.offset_in_string(span, value, offset)
}

/// Reads the lock file at `path`; `None` when it does not exist.
pub fn read(path: &Path) -> Result<Option<LockFile>, LockError> {
    read_text(path)?
        .map(|(text, _)| parse(path, &text))
        .transpose()
}

/// The text of the lock file at `path` and the digest of exactly those bytes, read
/// once from a regular file (`durable::read_regular`); `None` when it does not exist.
fn read_text(path: &Path) -> Result<Option<(String, String)>, LockError> {
    let snapshot = match crate::config::trust::snapshot(path) {
        Ok(Some(snapshot)) => snapshot,
        Ok(None) => return Ok(None),
        Err(cause) => {
            return Err(LockError::File(FileError::Read {
                path: path.to_path_buf(),
                cause,
            }));
        }
    };
    crate::config::error::utf8_text(path, snapshot.bytes)
        .map(|text| Some((text, snapshot.digest)))
        .map_err(|d| LockError::Invalid(corrupt(d)))
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// The text of `lock`: deterministic, see the module docs for the layout.
#[must_use]
pub fn render(lock: &LockFile) -> String {
    // Writing to a String cannot fail, hence the ignored results below.
    let mut out = String::new();
    let _ = writeln!(out, "{HEADER}\nversion = {VERSION}");
    for (name, server) in &lock.servers {
        let _ = writeln!(out, "\n[servers.{}]", key(name));
        let _ = writeln!(out, "identity = {}", basic(&server.identity));
        if let Some(instructions) = &server.instructions {
            let _ = writeln!(out, "instructions = {}", basic(instructions));
        }
    }
    for (key, pin) in &lock.items {
        let accepted: Vec<String> = pin.accepted.iter().map(|a| basic(a)).collect();
        let _ = writeln!(out, "\n[[pins]]");
        let _ = writeln!(out, "server = {}", basic(&key.server));
        let _ = writeln!(out, "kind = {}", basic(key.kind.as_str()));
        let _ = writeln!(out, "name = {}", basic(&key.name));
        let _ = writeln!(out, "exposed = {}", basic(&pin.exposed));
        let _ = writeln!(out, "digest = {}", basic(&pin.digest));
        let _ = writeln!(out, "accepted = [{}]", accepted.join(", "));
        let _ = writeln!(out, "definition = {}", multiline(&pretty(&pin.definition)));
    }
    out
}

/// A table key: bare when TOML allows it, else a basic string.
fn key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare { name.to_owned() } else { basic(name) }
}

/// A TOML basic string (`"..."`).
fn basic(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A multi-line string holding `text` plus a final newline, so that the closing quotes
/// sit on a line of their own: literal (`'''`) when TOML allows, basic (`"""`) otherwise.
fn multiline(text: &str) -> String {
    let literal_ok = !text.contains("'''")
        && text
            .chars()
            .all(|c| c == '\n' || c == '\t' || !c.is_control());
    if literal_ok {
        return format!("'''\n{text}\n'''");
    }
    let mut out = String::from("\"\"\"\n");
    for c in text.chars() {
        match c {
            // Every quote is escaped, so no run of three can end the string early.
            '"' => out.push_str("\\\""),
            // Every backslash is escaped, so none becomes a line-ending backslash.
            '\\' => out.push_str("\\\\"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push_str("\n\"\"\"");
    out
}

/// Canonical JSON (which has no whitespace outside strings) with one member or element
/// per line and 2-space indentation; empty objects and arrays stay `{}` and `[]`.
/// Only whitespace is added, so canonicalizing the result gives back the input.
fn pretty(canonical: &str) -> String {
    let mut out = String::with_capacity(canonical.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = canonical.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                out.push(c);
                if chars.peek() == Some(&close) {
                    chars.next();
                    out.push(close);
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            '"' => {
                in_string = true;
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Reads the lock file at `path` under an exclusive lock (an absent file is an empty
/// lock), applies `f`, and writes the result atomically; returns what was written.
///
/// Nothing is written when the text would not change, nor when there is no file and the
/// result is empty. A corrupt file is an error and is left as it is. The directory must
/// exist. Blocks while another writer holds the lock.
pub fn update(path: &Path, f: impl FnOnce(&mut LockFile)) -> Result<LockFile, LockError> {
    update_then(path, f, |_| ()).map(|(lock, ())| lock)
}

/// What an update did, for whoever records it.
#[derive(Debug, Clone, Copy)]
pub struct Written<'a> {
    /// Whether the file was replaced.
    pub changed: bool,
    /// The digest of the bytes the update started from (`None`: no file).
    pub before: Option<&'a str>,
    /// The digest of the file's bytes now (`None`: no file).
    pub after: Option<&'a str>,
}

/// [`update`], then `after(written)` while the file's lock is still held: a write
/// mcp-warden makes to a workspace's lock is recorded in the trust store before any
/// reader can see the file without it.
pub fn update_then<T>(
    path: &Path,
    f: impl FnOnce(&mut LockFile),
    after: impl FnOnce(Written<'_>) -> T,
) -> Result<(LockFile, T), LockError> {
    let _guard = guard(path)?;
    let current = read_text(path)?;
    let mut lock = match &current {
        Some((text, _)) => parse(path, text)?,
        None => LockFile::default(),
    };
    f(&mut lock);
    let text = render(&lock);
    let unchanged = match &current {
        Some((old, _)) => *old == text,
        None => lock.is_empty(),
    };
    if !unchanged {
        crate::durable::replace(path, text.as_bytes(), FILE_MODE).map_err(|cause| {
            LockError::File(FileError::Write {
                path: path.to_path_buf(),
                cause,
            })
        })?;
    }
    let before = current.as_ref().map(|(_, digest)| digest.as_str());
    let written_digest = (!unchanged).then(|| crate::config::trust::digest(text.as_bytes()));
    let after = after(Written {
        changed: !unchanged,
        before,
        after: written_digest.as_deref().or(before),
    });
    Ok((lock, after))
}

/// Reads the lock file at `path` once (`None` when absent) under its lock, and runs
/// `with(digest)` on the digest of the bytes parsed before releasing it, so a reader
/// that also checks the trust store judges exactly what it parsed and never sees a
/// write whose trust record is still to come. Where the lock cannot be taken (a
/// read-only directory, a holder that does not let go), the file is read without it.
pub fn read_then<T>(
    path: &Path,
    with: impl FnOnce(Option<&str>) -> T,
) -> Result<(Option<LockFile>, T), LockError> {
    let _guard = guard_within(path, READ_LOCK_WAIT).ok();
    let read = read_text(path)?;
    let digest = read.as_ref().map(|(_, digest)| digest.as_str());
    let judged = with(digest);
    let lock = read
        .as_ref()
        .map(|(text, _)| parse(path, text))
        .transpose()?;
    Ok((lock, judged))
}

/// How long a reader waits for a writer's lock before reading without it. A reader
/// that reads mid-write at worst sees a lock whose trust record is still to come: not
/// trusted (fail closed) until the watcher sees the record land and reads again. So a
/// reader need not wait long, and a lock another process keeps never stalls `serve`.
const READ_LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// The exclusive lock on the sibling `.<name>.lck` of `path`, waited for at most
/// `durable::LOCK_WAIT`.
fn guard(path: &Path) -> Result<crate::durable::ExclusiveLock, LockError> {
    guard_within(path, crate::durable::LOCK_WAIT)
}

fn guard_within(
    path: &Path,
    wait: std::time::Duration,
) -> Result<crate::durable::ExclusiveLock, LockError> {
    let (dir, name) = split(path)?;
    let lock_path = dir.join(format!(".{name}.lck"));
    crate::durable::lock_exclusive_within(&lock_path, FILE_MODE, wait).map_err(|cause| {
        LockError::File(FileError::Write {
            path: lock_path.clone(),
            cause,
        })
    })
}

/// The directory and file name of `path` (a bare name lives in `.`).
fn split(path: &Path) -> Result<(&Path, &str), LockError> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        LockError::File(FileError::Write {
            path: path.to_path_buf(),
            cause: io::Error::new(io::ErrorKind::InvalidInput, "not a UTF-8 file name"),
        })
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    fn item(exposed: &str, json: &str) -> ItemPin {
        ok(ItemPin::new(exposed, json))
    }

    fn sample() -> LockFile {
        let mut lock = LockFile::default();
        lock.servers.insert(
            "fs".into(),
            ServerPin {
                identity: identity_digest("npx", &["-y".into(), "@mcp/fs@1.2.3".into()]),
                instructions: Some(ok(canonical::digest("\"Use read_file.\""))),
            },
        );
        lock.servers.insert(
            "my server".into(),
            ServerPin {
                identity: identity_digest("./srv", &[]),
                instructions: None,
            },
        );
        let mut read_file = item(
            "fs__read_file",
            r#"{"name":"read_file","description":"Read a file","inputSchema":{"type":"object",
               "properties":{"path":{"type":"string"}},"required":["path"]},"_meta":{"x":1},
               "annotations":{}}"#,
        );
        read_file.accepted.insert("hidden-instructions".into());
        read_file.accepted.insert("ansi-escape".into());
        lock.items
            .insert(PinKey::new("fs", Kind::Tool, "read_file"), read_file);
        lock.items.insert(
            PinKey::new("fs", Kind::Prompt, "review"),
            item("fs__review", r#"{"name":"review","arguments":[]}"#),
        );
        lock.items.insert(
            PinKey::new("fs", Kind::ResourceTemplate, "file"),
            item(
                "fs__file",
                r#"{"uriTemplate":"file:///{path}","name":"file"}"#,
            ),
        );
        lock
    }

    /// The message of a parse error, as printed.
    fn parse_error(text: &str) -> String {
        match parse(Path::new("/w/mcp-warden.lock"), text) {
            Ok(_) => panic!("parsed:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn rendered_text_has_the_documented_layout() {
        let mut lock = LockFile::default();
        lock.servers.insert(
            "fs".into(),
            ServerPin {
                identity: format!("sha256:{}", "a".repeat(64)),
                instructions: None,
            },
        );
        let pin = item(
            "fs__read_file",
            r#"{"name":"read_file","inputSchema":{"type":"object","required":["path"]}}"#,
        );
        let digest = pin.digest().to_owned();
        lock.items
            .insert(PinKey::new("fs", Kind::Tool, "read_file"), pin);
        let expected = format!(
            "{HEADER}\nversion = 2\n\n[servers.fs]\nidentity = \"sha256:{}\"\n\n[[pins]]\n\
             server = \"fs\"\nkind = \"tool\"\nname = \"read_file\"\nexposed = \"fs__read_file\"\n\
             digest = \"{digest}\"\naccepted = []\ndefinition = '''\n{{\n  \"inputSchema\": {{\n    \
             \"required\": [\n      \"path\"\n    ],\n    \"type\": \"object\"\n  }},\n  \
             \"name\": \"read_file\"\n}}\n'''\n",
            "a".repeat(64)
        );
        assert_eq!(render(&lock), expected);
    }

    #[test]
    fn render_then_parse_round_trips_model_and_text() {
        let lock = sample();
        let text = render(&lock);
        let parsed = ok(parse(Path::new("l"), &text));
        assert_eq!(parsed, lock);
        assert_eq!(render(&parsed), text);
        assert!(text.contains("[servers.\"my server\"]"), "{text}");
        assert!(
            text.contains("accepted = [\"ansi-escape\", \"hidden-instructions\"]"),
            "{text}"
        );
        assert!(
            text.contains("\"_meta\": {"),
            "an item's `_meta` is pinned: {text}"
        );
    }

    #[test]
    fn order_is_stable_whatever_the_insertion_order() {
        let lock = sample();
        let mut reversed = LockFile::default();
        for (k, v) in lock.servers.iter().rev() {
            reversed.servers.insert(k.clone(), v.clone());
        }
        for (k, v) in lock.items.iter().rev() {
            reversed.items.insert(k.clone(), v.clone());
        }
        let text = render(&reversed);
        assert_eq!(text, render(&lock));
        let at = |needle: &str| text.find(needle).unwrap_or(usize::MAX);
        assert!(at("[servers.fs]") < at("[servers.\"my server\"]"));
        assert!(at("name = \"read_file\"") < at("name = \"review\""));
        assert!(at("name = \"review\"") < at("name = \"file\""));
        // A file whose pins are out of order reads the same and renders sorted.
        let parsed = ok(parse(Path::new("l"), &text));
        assert_eq!(parsed, lock);
    }

    #[test]
    fn definition_in_the_file_parses_back_to_the_same_digest() {
        for pin in sample().items.values() {
            let pretty = pin.definition_pretty();
            assert!(pretty.contains("\n  \""), "{pretty}");
            assert_eq!(ok(canonical::canonicalize(&pretty)), pin.definition());
            assert_eq!(ok(canonical::digest_whole(&pretty)), pin.digest());
        }
    }

    #[test]
    fn hand_edited_definition_is_refused_at_the_definition() {
        let text = render(&sample()).replace("Read a file", "Read a file. <IMPORTANT>");
        let err = parse_error(&text);
        let line = text
            .lines()
            // read_file is the first pin in the file.
            .position(|l| l.starts_with("definition = "))
            .map_or(0, |i| i + 1);
        assert!(
            err.starts_with(&format!("/w/mcp-warden.lock:{line}:14: error: definition of tool `read_file` of server `fs` does not match its digest")),
            "{err}"
        );
        assert!(err.contains("edited by hand"), "{err}");
    }

    #[test]
    fn reformatting_a_definition_is_not_an_edit() {
        let text = render(&sample()).replace("\"Read a file\"", "   \"Read a file\"");
        assert_eq!(ok(parse(Path::new("l"), &text)), sample());
    }

    #[test]
    fn bad_toml_is_an_error_with_position() {
        let err = parse_error("version = 1\n[servers\n");
        assert!(err.starts_with("/w/mcp-warden.lock:2:"), "{err}");
        assert!(err.contains("hint: mcp-warden never replaces"), "{err}");
        // A merge conflict.
        let text = render(&sample()).replacen("[[pins]]", "<<<<<<< HEAD\n[[pins]]", 1);
        assert!(parse_error(&text).contains("/w/mcp-warden.lock:"));
    }

    #[test]
    fn merge_conflict_markers_are_refused_even_inside_a_definition() {
        let text = render(&sample());
        let at = text.find("'''\n").map(|i| i + 4).unwrap_or_default();
        let conflicted = format!(
            "{}<<<<<<< ours\n=======\n>>>>>>> theirs\n{}",
            &text[..at],
            &text[at..]
        );
        let err = parse_error(&conflicted);
        assert!(err.contains("merge conflict marker"), "{err}");
    }

    #[test]
    fn unknown_key_is_an_error_with_position() {
        let text = render(&sample()).replacen("exposed =", "exposd =", 1);
        let line = text
            .lines()
            .position(|l| l.starts_with("exposd"))
            .map_or(0, |i| i + 1);
        let err = parse_error(&text);
        assert!(
            err.starts_with(&format!(
                "/w/mcp-warden.lock:{line}:1: error: unknown key `exposd`"
            )),
            "{err}"
        );
        let err = parse_error("version = 1\nextra = true\n");
        assert!(
            err.starts_with("/w/mcp-warden.lock:2:1: error: unknown key `extra`"),
            "{err}"
        );
    }

    /// Issue 13, item 17: a version 1 file (pins without `_meta`) is read, marked
    /// legacy, and written back as version 2 with its pins unchanged.
    #[test]
    fn a_version_1_file_is_read_and_written_back_as_version_2_unchanged() {
        let mut lock = LockFile::default();
        let pin = item(
            "fs__read_file",
            r#"{"name":"read_file","inputSchema":{"type":"object"}}"#,
        );
        let digest = pin.digest().to_owned();
        lock.items
            .insert(PinKey::new("fs", Kind::Tool, "read_file"), pin);
        let v1 = render(&lock).replace("version = 2", "version = 1");
        let parsed = ok(parse(Path::new("l"), &v1));
        assert!(parsed.legacy_meta);
        let read = parsed.items.values().next().expect("one pin");
        assert_eq!(read.digest(), digest, "the same pin");
        let v2 = render(&parsed);
        assert!(v2.contains("version = 2"), "{v2}");
        assert!(!ok(parse(Path::new("l"), &v2)).legacy_meta);
    }

    #[test]
    fn wrong_or_missing_version_is_an_error() {
        let err = parse_error("# x\nversion = 3\n");
        assert!(
            err.starts_with("/w/mcp-warden.lock:2:11: error: unsupported lock file version `3`"),
            "{err}"
        );
        let err = parse_error("version = \"1\"\n");
        assert!(
            err.starts_with("/w/mcp-warden.lock:1:11: error: invalid type"),
            "{err}"
        );
        let err = parse_error("[servers]\n");
        assert!(err.contains("missing key `version`"), "{err}");
    }

    #[test]
    fn malformed_digests_are_errors_with_position() {
        let good = format!("sha256:{}", "0".repeat(64));
        for bad in [
            "md5:abc".to_owned(),
            format!("sha256:{}", "0".repeat(63)),
            format!("sha256:{}", "A".repeat(64)),
            format!("SHA256:{}", "0".repeat(64)),
        ] {
            let text = format!(
                "version = 1\n[servers.fs]\nidentity = \"{good}\"\ninstructions = \"{bad}\"\n"
            );
            let err = parse_error(&text);
            assert!(
                err.starts_with(&format!(
                    "/w/mcp-warden.lock:4:16: error: invalid digest `{bad}`"
                )),
                "{err}"
            );
        }
        let text = render(&sample()).replacen("digest = \"sha256:", "digest = \"sha256:x", 1);
        assert!(parse_error(&text).contains("error: invalid digest `sha256:x"));
    }

    #[test]
    fn unknown_kind_is_an_error_with_a_suggestion() {
        let text = render(&sample()).replacen("kind = \"tool\"", "kind = \"tol\"", 1);
        let err = parse_error(&text);
        let line = text
            .lines()
            .position(|l| l.starts_with("kind = \"tol\""))
            .map_or(0, |i| i + 1);
        assert!(
            err.starts_with(&format!(
                "/w/mcp-warden.lock:{line}:8: error: unknown value `tol`"
            )),
            "{err}"
        );
        assert!(err.contains("did you mean `tool`?"), "{err}");
    }

    #[test]
    fn duplicate_pin_is_an_error_at_the_second() {
        let text = render(&sample());
        let start = text.find("[[pins]]").unwrap_or(0);
        let end = text[start + 1..]
            .find("[[pins]]")
            .map_or(text.len(), |i| i + start + 1);
        let doubled = format!("{}\n{}", text.trim_end(), &text[start..end]);
        let err = parse_error(&doubled);
        assert!(
            err.contains("error: duplicate pin for tool `read_file` of server `fs`"),
            "{err}"
        );
        let second = doubled.rfind("server = \"fs\"").unwrap_or(0);
        let expected = doubled[..second].matches('\n').count() + 1;
        assert!(
            err.starts_with(&format!("/w/mcp-warden.lock:{expected}:10:")),
            "{err}"
        );
    }

    #[test]
    fn invalid_definition_json_points_into_the_definition() {
        let text =
            render(&sample()).replacen("\"name\": \"read_file\"", "\"name\" \"read_file\"", 1);
        let err = parse_error(&text);
        let line = text
            .lines()
            .position(|l| l.contains("\"name\" \"read_file\""))
            .map_or(0, |i| i + 1);
        assert!(
            err.starts_with(&format!(
                "/w/mcp-warden.lock:{line}:10: error: invalid definition of tool `read_file`"
            )),
            "{err}"
        );
    }

    fn hostile_round_trip(description: &str) -> String {
        let json = serde_json::json!({ "name": "t", "description": description }).to_string();
        let mut lock = LockFile::default();
        let pin = item("s__t", &json);
        lock.items
            .insert(PinKey::new("s", Kind::Tool, "t"), pin.clone());
        let text = render(&lock);
        let parsed = ok(parse(Path::new("l"), &text));
        assert_eq!(parsed, lock, "{text}");
        assert_eq!(render(&parsed), text);
        assert_eq!(
            parsed.items.values().next().map(ItemPin::digest),
            Some(pin.digest())
        );
        text
    }

    #[test]
    fn triple_single_quotes_fall_back_to_an_escaped_basic_string() {
        let text = hostile_round_trip("say '''hi''' \\ \"q\" \"\"\" end\\");
        assert!(text.contains("definition = \"\"\"\n"), "{text}");
        let text = hostile_round_trip("DEL \u{7f} and C1 \u{85}");
        assert!(
            text.contains("definition = \"\"\"\n") && text.contains("\\u007F"),
            "{text}"
        );
    }

    #[test]
    fn backslashes_quotes_newlines_and_unicode_round_trip_in_a_literal_string() {
        let text =
            hostile_round_trip("C:\\path \"quoted\" '' line\nbreak\ttab \u{1} é 😀 \u{202e}rtl ''");
        assert!(text.contains("definition = '''\n"), "{text}");
    }

    #[test]
    fn awkward_names_round_trip() {
        let mut lock = sample();
        let name = "we\"ird\\ name\n'''";
        lock.servers.insert(
            name.into(),
            ServerPin {
                identity: identity_digest("x", &[]),
                instructions: None,
            },
        );
        lock.items
            .insert(PinKey::new(name, Kind::Prompt, name), item(name, "{}"));
        let text = render(&lock);
        let parsed = ok(parse(Path::new("l"), &text));
        assert_eq!(parsed, lock);
        assert_eq!(render(&parsed), text);
    }

    proptest::proptest! {
        #[test]
        fn any_definition_round_trips(description in "\\PC*|[\\\\'\"\\n\\x00-\\x1f\\x7f]*", key in ".*") {
            let json = serde_json::json!({ "description": description, key: [1.5, null, {}] }).to_string();
            let mut lock = LockFile::default();
            lock.items.insert(PinKey::new("s", Kind::Tool, "t"), item("s__t", &json));
            let text = render(&lock);
            let parsed = parse(Path::new("l"), &text);
            proptest::prop_assert!(parsed.is_ok(), "{text}");
            let parsed = ok(parsed);
            proptest::prop_assert_eq!(&parsed, &lock);
            proptest::prop_assert_eq!(render(&parsed), text);
        }
    }

    #[test]
    fn identity_digest_covers_command_and_args_as_written() {
        let a = identity_digest("npx", &["-y".into(), "pkg@1".into()]);
        assert!(is_digest(&a));
        assert_eq!(a, identity_digest("npx", &["-y".into(), "pkg@1".into()]));
        assert_ne!(a, identity_digest("npx", &["pkg@1".into(), "-y".into()]));
        assert_ne!(a, identity_digest("npx", &["-y pkg@1".into()]));
        assert_ne!(a, identity_digest("npx -y", &["pkg@1".into()]));
        assert_ne!(
            identity_digest("srv", &["${HOME}".into()]),
            identity_digest("srv", &["/home/u".into()])
        );
        let expected = ok(canonical::digest(
            r#"{"args":["-y","pkg@1"],"command":"npx"}"#,
        ));
        assert_eq!(a, expected);
    }

    #[test]
    fn read_of_an_absent_file_is_none() {
        let dir = ok(tempfile::tempdir());
        assert_eq!(ok(read(&dir.path().join("mcp-warden.lock"))), None);
    }

    #[test]
    fn update_creates_then_re_reads_and_keeps_other_pins() {
        let dir = ok(tempfile::tempdir());
        let path = dir.path().join("mcp-warden.lock");
        // Nothing to write: no file appears.
        ok(update(&path, |_| {}));
        assert!(!path.exists());
        let lock = sample();
        ok(update(&path, |l| *l = lock.clone()));
        assert_eq!(ok(read(&path)), Some(lock.clone()));
        let after = ok(update(&path, |l| {
            l.items
                .insert(PinKey::new("b", Kind::Tool, "x"), item("b__x", "{}"));
        }));
        assert_eq!(after.items.len(), lock.items.len() + 1);
        assert_eq!(ok(read(&path)), Some(after));
    }

    #[test]
    fn corrupt_file_is_not_replaced_by_update() {
        let dir = ok(tempfile::tempdir());
        let path = dir.path().join("mcp-warden.lock");
        let bad = render(&sample()).replace("Read a file", "Read all files");
        ok(fs::write(&path, &bad));
        let err = update(&path, |l| l.items.clear())
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("does not match its digest")));
        assert_eq!(ok(fs::read_to_string(&path)), bad);
        ok(fs::write(&path, b"version = 1\n\xff\n"));
        let err = read(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            err.contains("mcp-warden.lock:2:1: error: invalid UTF-8"),
            "{err}"
        );
    }

    #[test]
    fn concurrent_updates_from_many_threads_all_survive() {
        const THREADS: usize = 8;
        const PINS: usize = 10;
        let dir = ok(tempfile::tempdir());
        let path = dir.path().join("mcp-warden.lock");
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let path = &path;
                scope.spawn(move || {
                    for p in 0..PINS {
                        let name = format!("tool_{p}");
                        let json = format!(r#"{{"name":"{name}","n":{t}}}"#);
                        let pin = item(&format!("s{t}__{name}"), &json);
                        ok(update(path, |l| {
                            l.items
                                .insert(PinKey::new(format!("s{t}"), Kind::Tool, name), pin);
                        }));
                    }
                });
            }
        });
        let lock = ok(read(&path)).unwrap_or_default();
        assert_eq!(lock.items.len(), THREADS * PINS);
    }

    #[cfg(unix)]
    #[test]
    fn written_file_is_0644_and_no_temporary_file_is_left() {
        use std::os::unix::fs::PermissionsExt;
        let dir = ok(tempfile::tempdir());
        let path = dir.path().join("mcp-warden.lock");
        ok(update(&path, |l| *l = sample()));
        ok(update(&path, |l| {
            l.servers.remove("fs");
        }));
        let mode = ok(fs::metadata(&path)).permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let mut names: Vec<String> = ok(fs::read_dir(dir.path()))
            .filter_map(Result::ok)
            .map(|f| f.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".mcp-warden.lock.lck", "mcp-warden.lock"]);
    }

    #[test]
    fn relative_bare_path_locks_in_the_current_directory() {
        let (dir, name) = ok(split(Path::new("mcp-warden.lock")));
        assert_eq!((dir, name), (Path::new("."), "mcp-warden.lock"));
    }
}
