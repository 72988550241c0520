//! The writer: one task per session that turns [`Event`]s into chained records and
//! appends them to the day's file. The session only ever sends into a channel.
//!
//! # Why an unbounded channel
//! [`AuditHandle::record`] must neither block the message path nor drop a record, and a
//! bounded channel can only do one of the two when it is full. It is unbounded because
//! the writer outruns its producer: a record is a few hundred bytes, the writer takes
//! every queued event at once and appends them with one `write(2)` per batch (a few
//! microseconds per record), while every record stands for a message that crossed the
//! gateway (tens of microseconds each, plus the upstream's own work). A backlog can
//! only build during a burst, is bounded by the burst's length times a few hundred
//! bytes, and drains as soon as the burst ends. For a flood that lasts (a client
//! hammering the gateway flat out on a machine short of cores), the bound is the
//! session's to keep, where back-pressure belongs: [`AuditHandle::backlog`] counts the
//! events not yet written, and the session stops reading new client messages while it
//! is over [`MAX_BACKLOG`]; nothing blocks inside `record` and nothing is dropped. If
//! the writer fails (disk full, a
//! permission changed), its task ends with the error and `record` returns
//! [`AuditClosed`] from then on: the session must treat that as fatal and stop serving
//! (a gateway that cannot keep its audit trail fails closed).
//!
//! # Files
//! `audit/YYYY-MM-DD.jsonl` in the data dir (directory 0700, files 0600), named after
//! the UTC day of the record's `ts`; the next day's records go to the next day's file,
//! continuing the same chain. A day never goes back: if the clock steps back over
//! midnight, records stay in the later day's file, so the files in date order always
//! hold a chain in order. Files are opened with `O_APPEND`, and each `write(2)` carries
//! whole lines only (a line is never split across two writes), so several sessions,
//! in one process or many, append to one file without tearing each other's lines.
//! The writer is one long-lived thread of tokio's blocking pool: the hashing and the
//! blocking file I/O never run on the session's thread, and it is woken once per busy
//! spell ([`COALESCE`]), not once per event.
//!
//! # Durability
//! Lines are written (to the page cache) as soon as they are taken from the channel,
//! at most [`COALESCE`] after they were recorded: a crash of mcp-warden loses only the
//! events still queued at that instant, and the
//! chain then lacks its seal, which verify reports. [`AuditHandle::seal`] and
//! [`AuditHandle::flush`] also `fsync`, and a file is synced before the writer moves to
//! the next day's. After a power loss, the unsynced tail of a session may be missing;
//! verify then reports that chain as unsealed.

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::value::RawValue;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::key::{AuditKey, PreparedKey};
use super::record::{self, Decision, Direction, GENESIS, RecordView, VERSION};
use super::session::SessionId;
use super::syslog::{Forwarder, SyslogTarget};
use super::{AuditError, audit_dir, key_file};
use crate::canonical;
use crate::paths::Paths;
use crate::time::{Day, Timestamp};

/// Most records the writer takes from the channel before it writes: bounds the memory
/// of one batch and the time before a flush or seal waiter hears back.
pub const MAX_BATCH_RECORDS: usize = 4096;

/// Most bytes in one `write(2)`. Appends to a regular file are atomic with respect to
/// other `O_APPEND` writers on local file systems whatever the size; the cap only keeps
/// buffers small.
pub const MAX_WRITE_BYTES: usize = 256 * 1024;

/// Events queued but not yet written above which the session should stop reading new
/// client messages until the writer catches up ([`AuditHandle::backlog`]). At a few
/// hundred bytes per event that is tens of MiB at most, and a backlog this long takes
/// the writer well under a second to drain.
pub const MAX_BACKLOG: usize = 65_536;

/// How long the writer, woken from idle by an event, waits for more before it encodes
/// and writes them: one wake-up and one `write(2)` then serve every event of a busy
/// spell instead of one each. Where the writer shares a CPU with the message path, a
/// wake-up per event cost the path more than the event's own hashing, and work done
/// in one burst per interval delays only the few messages that arrive during the
/// burst, where work done per event delays every message a little (measured: 2 ms
/// made bursts of ~70 events, which delayed over 1% of calls by ~0.6 ms; at 10 ms
/// under 0.5% are). This is also the longest an event stays queued when the writer
/// is idle (a writer that is behind does not wait), so it is the longest a crash can
/// lose; a flush or seal that arrives while the writer is idle is served at once.
pub const COALESCE: std::time::Duration = std::time::Duration::from_millis(10);

/// One decision, as the session reports it. The writer adds `v`, `session`, `seq`,
/// `workspace`, `prev` and `hash`, computes `args_hmac` from [`Event::arguments`], and
/// takes `ts` from [`Event::at`] (set by [`AuditHandle::record`] when not given).
#[derive(Debug, Clone)]
pub struct Event {
    /// Which way the message was going.
    pub direction: Direction,
    /// What was decided.
    pub decision: Decision,
    /// The upstream server's table name.
    pub server: Option<String>,
    /// The exposed tool (prompt, resource URI) name.
    pub tool: Option<String>,
    /// The JSON-RPC method. `usage` counts `tools/call` records as calls and
    /// `tools/list` records as listings, so set it for those.
    pub method: Option<String>,
    /// The deciding rule's id.
    pub rule: Option<String>,
    /// The arguments as JSON text, exactly as received: only their HMAC is written.
    pub arguments: Option<String>,
    /// Arguments to store in clear, as JSON text: only with `[audit] arguments = true`,
    /// and already redacted by the caller. Written in canonical form.
    pub redacted_args: Option<String>,
    /// How long the upstream took, in milliseconds.
    pub ms: Option<u64>,
    /// The size of the message in bytes.
    pub bytes: Option<u64>,
    /// `list` records: items listed.
    pub listed: Option<u64>,
    /// `list` records: items held back.
    pub held: Option<u64>,
    /// `list` records: the names listed.
    pub tools: Option<Vec<String>>,
    /// A short reason for a person.
    pub detail: Option<String>,
    /// When it was decided; `None` = when [`AuditHandle::record`] is called.
    pub at: Option<Timestamp>,
}

impl Event {
    /// An event with nothing but its direction and decision.
    #[must_use]
    pub const fn new(direction: Direction, decision: Decision) -> Self {
        Self {
            direction,
            decision,
            server: None,
            tool: None,
            method: None,
            rule: None,
            arguments: None,
            redacted_args: None,
            ms: None,
            bytes: None,
            listed: None,
            held: None,
            tools: None,
            detail: None,
            at: None,
        }
    }

    /// The summary of one list answer (`method` = `tools/list`, `prompts/list`, ...):
    /// the names listed and how many were held back.
    #[must_use]
    pub fn list(method: impl Into<String>, listed: Vec<String>, held: u64) -> Self {
        let mut event = Self::new(Direction::ToClient, Decision::List).method(method);
        event.listed = Some(listed.len() as u64);
        event.held = Some(held);
        event.tools = Some(listed);
        event
    }

    /// Sets [`Event::server`].
    #[must_use]
    pub fn server(mut self, server: impl Into<String>) -> Self {
        self.server = Some(server.into());
        self
    }

    /// Sets [`Event::tool`].
    #[must_use]
    pub fn tool(mut self, tool: impl Into<String>) -> Self {
        self.tool = Some(tool.into());
        self
    }

    /// Sets [`Event::method`].
    #[must_use]
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Sets [`Event::rule`].
    #[must_use]
    pub fn rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// Sets [`Event::arguments`] (hashed, never written).
    #[must_use]
    pub fn arguments(mut self, json_text: impl Into<String>) -> Self {
        self.arguments = Some(json_text.into());
        self
    }

    /// Sets [`Event::redacted_args`] (written in clear).
    #[must_use]
    pub fn redacted_args(mut self, json_text: impl Into<String>) -> Self {
        self.redacted_args = Some(json_text.into());
        self
    }

    /// Sets [`Event::ms`].
    #[must_use]
    pub const fn ms(mut self, ms: u64) -> Self {
        self.ms = Some(ms);
        self
    }

    /// Sets [`Event::bytes`].
    #[must_use]
    pub const fn bytes(mut self, bytes: u64) -> Self {
        self.bytes = Some(bytes);
        self
    }

    /// Sets [`Event::detail`].
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets [`Event::at`].
    #[must_use]
    pub const fn at(mut self, at: Timestamp) -> Self {
        self.at = Some(at);
        self
    }
}

/// The text buffers of [`PackedEvent`]s the writer is done with, for the session's
/// next events. A buffer allocated on the session's thread and freed on the writer's
/// never comes back to the session's per-thread cache (glibc's tcache): each event's
/// allocation took the arena's slow path, ~200 instructions of a call (callgrind).
#[derive(Debug, Default)]
struct TextPool(std::sync::Mutex<Vec<Vec<u8>>>);

/// Buffers a [`TextPool`] keeps: more than a burst's events in flight is no gain.
const POOL_BUFFERS: usize = 64;
/// Larger buffers (an event with long arguments) are freed, not kept resident.
const POOL_BUFFER_BYTES: usize = 4096;

impl TextPool {
    /// An empty buffer with room for `capacity` bytes: a kept one when there is one.
    fn take(&self, capacity: usize) -> Vec<u8> {
        let kept = self.0.lock().ok().and_then(|mut kept| kept.pop());
        let mut text = kept.unwrap_or_default();
        text.reserve(capacity);
        text
    }

    /// Keeps `text` for a later [`TextPool::take`], if it is worth keeping.
    fn give(&self, mut text: Vec<u8>) {
        if text.capacity() > POOL_BUFFER_BYTES {
            return;
        }
        text.clear();
        if let Ok(mut kept) = self.0.lock()
            && kept.len() < POOL_BUFFERS
        {
            kept.push(text);
        }
    }
}

/// Which text field of a [`PackedEvent`] a span is: [`Event`]'s fields of the same name.
#[derive(Debug, Clone, Copy)]
enum Field {
    Server,
    Tool,
    Method,
    Rule,
    Arguments,
    Detail,
}

/// How many [`Field`]s there are.
const FIELDS: usize = 6;

/// An [`Event`] with only the fields the message path records (no `redacted_args`,
/// no list), its text in one buffer: what the session queues per call. An [`Event`]
/// costs an allocation per field and a box, each freed again on the writer's side; this
/// is one buffer, moved through the channel as it is. The writer makes of it exactly
/// the record the equal [`Event`] makes.
#[derive(Debug, Clone)]
pub struct PackedEvent {
    direction: Direction,
    decision: Decision,
    ms: Option<u64>,
    bytes: Option<u64>,
    at: Option<Timestamp>,
    /// The fields' texts, one after another.
    text: Vec<u8>,
    /// Where each [`Field`] lies in `text`, by its index; `None` for absent.
    spans: [Option<(u32, u32)>; FIELDS],
}

impl PackedEvent {
    /// An event with nothing but its direction and decision, with room for `capacity`
    /// bytes of text (the sum of the fields to be set: one allocation then holds them).
    #[must_use]
    pub fn with_capacity(direction: Direction, decision: Decision, capacity: usize) -> Self {
        Self::with_text(direction, decision, Vec::with_capacity(capacity))
    }

    /// An event with nothing but its direction and decision, its text to go into
    /// `text` (empty; a buffer of [`TextPool`]'s).
    fn with_text(direction: Direction, decision: Decision, text: Vec<u8>) -> Self {
        Self {
            direction,
            decision,
            ms: None,
            bytes: None,
            at: None,
            text,
            spans: [None; FIELDS],
        }
    }

    fn set(mut self, field: Field, value: &[u8]) -> Self {
        let start = self.text.len();
        self.text.extend_from_slice(value);
        // Offsets past 4 GiB cannot occur (a message is at most the line limit), but a
        // field that could not be placed is left out rather than misplaced.
        self.spans[field as usize] = u32::try_from(start)
            .ok()
            .zip(u32::try_from(self.text.len()).ok());
        self
    }

    /// Sets [`Event::server`].
    #[must_use]
    pub fn server(self, server: &str) -> Self {
        self.set(Field::Server, server.as_bytes())
    }

    /// Sets [`Event::tool`].
    #[must_use]
    pub fn tool(self, tool: &str) -> Self {
        self.set(Field::Tool, tool.as_bytes())
    }

    /// Sets [`Event::method`].
    #[must_use]
    pub fn method(self, method: &str) -> Self {
        self.set(Field::Method, method.as_bytes())
    }

    /// Sets [`Event::rule`].
    #[must_use]
    pub fn rule(self, rule: &str) -> Self {
        self.set(Field::Rule, rule.as_bytes())
    }

    /// Sets [`Event::detail`].
    #[must_use]
    pub fn detail(self, detail: &str) -> Self {
        self.set(Field::Detail, detail.as_bytes())
    }

    /// Sets [`Event::arguments`] from the bytes they arrived as (a slice of a parsed
    /// line, so UTF-8): the writer decodes them, lossily should they not be, as
    /// [`Event::arguments`] would have been set; the message path never checks them.
    #[must_use]
    pub fn arguments(self, json_text: &[u8]) -> Self {
        self.set(Field::Arguments, json_text)
    }

    /// Sets [`Event::ms`].
    #[must_use]
    pub const fn ms(mut self, ms: u64) -> Self {
        self.ms = Some(ms);
        self
    }

    /// Sets [`Event::bytes`].
    #[must_use]
    pub const fn bytes(mut self, bytes: u64) -> Self {
        self.bytes = Some(bytes);
        self
    }

    /// Sets [`Event::at`].
    #[must_use]
    pub const fn at(mut self, at: Timestamp) -> Self {
        self.at = Some(at);
        self
    }

    /// The text of `field`, decoded (borrowed unless it is not UTF-8).
    fn field(&self, field: Field) -> Option<Cow<'_, str>> {
        let (start, end) = self.spans[field as usize]?;
        let bytes = self.text.get(start as usize..end as usize)?;
        Some(String::from_utf8_lossy(bytes))
    }
}

/// An event's fields, borrowed: what [`Chain::encode`] makes a record of, from an
/// [`Event`] or a [`PackedEvent`] alike.
struct Fields<'a> {
    direction: Direction,
    decision: Decision,
    server: Option<&'a str>,
    tool: Option<&'a str>,
    method: Option<&'a str>,
    rule: Option<&'a str>,
    arguments: Option<&'a str>,
    redacted_args: Option<&'a str>,
    ms: Option<u64>,
    bytes: Option<u64>,
    listed: Option<u64>,
    held: Option<u64>,
    tools: Option<&'a [String]>,
    detail: Option<&'a str>,
    at: Option<Timestamp>,
}

impl<'a> Fields<'a> {
    fn of(event: &'a Event) -> Self {
        Self {
            direction: event.direction,
            decision: event.decision,
            server: event.server.as_deref(),
            tool: event.tool.as_deref(),
            method: event.method.as_deref(),
            rule: event.rule.as_deref(),
            arguments: event.arguments.as_deref(),
            redacted_args: event.redacted_args.as_deref(),
            ms: event.ms,
            bytes: event.bytes,
            listed: event.listed,
            held: event.held,
            tools: event.tools.as_deref(),
            detail: event.detail.as_deref(),
            at: event.at,
        }
    }
}

/// The session a writer records for.
#[derive(Debug, Clone)]
pub struct SessionMeta {
    /// Its id (see [`SessionId`]).
    pub id: SessionId,
    /// The workspace root at the start (see [`AuditHandle::set_workspace`]).
    pub workspace: Option<PathBuf>,
}

impl SessionMeta {
    /// A new session of this process (fails only if `/dev/urandom` cannot be read).
    pub fn new(workspace: Option<PathBuf>) -> Result<Self, AuditError> {
        Ok(Self {
            id: SessionId::for_this_process().map_err(|e| AuditError::io("/dev/urandom", e))?,
            workspace,
        })
    }
}

/// The writer task has stopped (sealed, or failed: its [`JoinHandle`] says which); the
/// event was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the audit writer has stopped")]
pub struct AuditClosed;

/// What a writer wrote, when its task ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Records written, the seal included.
    pub records: u64,
    /// Whether the chain ends with a seal.
    pub sealed: bool,
    /// Events that reached the writer after the seal: not written (a record cannot
    /// follow a seal). Non-zero means a handle was still in use after `seal`.
    pub late: u64,
    /// The file the last record went to.
    pub file: Option<PathBuf>,
    /// With `[audit.syslog]`: what reached the collector, and what did not.
    pub syslog: Option<super::syslog::Delivery>,
}

/// Starts audit writers.
#[derive(Debug)]
pub struct Audit;

impl Audit {
    /// Creates `audit/` (0700) and the per-install key if needed, and spawns the one
    /// writer task of this session on the current tokio runtime. Dropping every handle
    /// without [`AuditHandle::seal`] ends the task after writing everything recorded,
    /// leaving the chain unsealed (verify reports it once the process is gone). Seal
    /// (or await the task) before the runtime shuts down: a runtime dropped with events
    /// still queued cannot write them.
    pub async fn start(
        paths: &Paths,
        meta: SessionMeta,
    ) -> Result<(AuditHandle, JoinHandle<Result<Written, AuditError>>), AuditError> {
        Self::start_forwarding(paths, meta, None).await
    }

    /// [`Audit::start`], and with `syslog` every record written is also forwarded to
    /// that collector (see [`super::syslog`]), never holding the writer up.
    pub async fn start_forwarding(
        paths: &Paths,
        meta: SessionMeta,
        syslog: Option<SyslogTarget>,
    ) -> Result<(AuditHandle, JoinHandle<Result<Written, AuditError>>), AuditError> {
        let dir = audit_dir(paths);
        let key_path = key_file(paths);
        let data_dir = paths.data_dir.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            for d in [&data_dir, &dir] {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(d)
                    .map_err(|e| AuditError::io(d, e))?;
            }
            AuditKey::load_or_create(&key_path).map(|key| (dir, key))
        })
        .await
        .map_err(|e| AuditError::Task(e.to_string()))?;
        let (dir, key) = prepared?;
        let forward = match syslog {
            Some(target) => Some(
                Forwarder::start(target)
                    .map_err(|e| AuditError::Task(format!("the syslog forwarder: {e}")))?,
            ),
            None => None,
        };
        Ok(Self::spawn(dir, &key, meta, forward))
    }

    /// Spawns a writer appending to `dir` (which must exist) with `key`: for tools and
    /// tests; `serve` uses [`Audit::start`].
    #[must_use]
    // The caller hands the key over; only its prepared form ([`PreparedKey`]) is kept.
    #[allow(clippy::needless_pass_by_value)]
    pub fn start_in(
        dir: PathBuf,
        key: AuditKey,
        meta: SessionMeta,
    ) -> (AuditHandle, JoinHandle<Result<Written, AuditError>>) {
        Self::spawn(dir, &key, meta, None)
    }

    fn spawn(
        dir: PathBuf,
        key: &AuditKey,
        meta: SessionMeta,
        forward: Option<Forwarder>,
    ) -> (AuditHandle, JoinHandle<Result<Written, AuditError>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let chain = Chain::new(meta.id.as_str().to_owned(), meta.workspace, key);
        let sink = Sink {
            dir,
            open: None,
            written: Written::default(),
        };
        let backlog = Arc::new(AtomicUsize::new(0));
        let texts = Arc::new(TextPool::default());
        let state = State {
            chain,
            sink,
            forward,
            texts: Arc::clone(&texts),
        };
        let shared = Arc::clone(&backlog);
        // One long-lived thread from the blocking pool: it ends when every handle is
        // gone or after the seal, and its result is the task's.
        let task = tokio::task::spawn_blocking(move || run(rx, state, &shared));
        let handle = AuditHandle {
            tx,
            session: Arc::new(meta.id),
            backlog,
            texts,
        };
        (handle, task)
    }
}

/// Records events of one session; cheap to clone. See the module docs.
#[derive(Debug, Clone)]
pub struct AuditHandle {
    tx: mpsc::UnboundedSender<Message>,
    session: Arc<SessionId>,
    /// Events sent and not yet written.
    backlog: Arc<AtomicUsize>,
    /// Spent [`PackedEvent`] buffers, given back by the writer.
    texts: Arc<TextPool>,
}

impl AuditHandle {
    /// Queues `event`: never blocks, never drops (the channel is unbounded; the module
    /// docs say why that is safe); fails only when the writer has stopped. Stamps
    /// [`Event::at`] with the current time when it is unset.
    pub fn record(&self, mut event: Event) -> Result<(), AuditClosed> {
        if event.at.is_none() {
            event.at = Some(Timestamp::now());
        }
        self.backlog.fetch_add(1, Ordering::Relaxed);
        self.tx.send(Message::Record(Box::new(event))).map_err(|_| {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            AuditClosed
        })
    }

    /// A [`PackedEvent`] with room for `capacity` bytes of text, in a buffer an earlier
    /// event left when there is one (see [`TextPool`]).
    #[must_use]
    pub fn packed(&self, direction: Direction, decision: Decision, capacity: usize) -> PackedEvent {
        PackedEvent::with_text(direction, decision, self.texts.take(capacity))
    }

    /// [`AuditHandle::record`] of a [`PackedEvent`].
    pub fn record_packed(&self, mut event: PackedEvent) -> Result<(), AuditClosed> {
        if event.at.is_none() {
            event.at = Some(Timestamp::now());
        }
        self.backlog.fetch_add(1, Ordering::Relaxed);
        self.tx.send(Message::Packed(event)).map_err(|_| {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            AuditClosed
        })
    }

    /// Events recorded and not yet written. The session compares it with
    /// [`MAX_BACKLOG`] to apply back-pressure to its client (see the module docs).
    #[must_use]
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    /// The workspace later records name (the client's roots can move it).
    pub fn set_workspace(&self, workspace: Option<&Path>) -> Result<(), AuditClosed> {
        let workspace = workspace.map(|w| w.to_string_lossy().into_owned());
        self.tx
            .send(Message::Workspace(workspace))
            .map_err(|_| AuditClosed)
    }

    /// The session's id.
    #[must_use]
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// Resolves when everything recorded before it is written and synced to disk.
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Message::Flush(tx))
            .map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Writes the seal after everything recorded before it, syncs, and ends the writer:
    /// resolves when the whole chain is on disk. Events recorded through other handles
    /// afterwards are refused ([`AuditClosed`]) or, if already queued, counted in
    /// [`Written::late`].
    pub async fn seal(self) -> Result<Written, AuditError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Message::Seal(tx))
            .map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)?
    }
}

enum Message {
    Record(Box<Event>),
    Packed(PackedEvent),
    Workspace(Option<String>),
    Flush(oneshot::Sender<Result<(), AuditError>>),
    Seal(oneshot::Sender<Result<Written, AuditError>>),
}

/// The chain's state: what the next record continues from.
struct Chain {
    session: String,
    workspace: Option<String>,
    seq: u64,
    prev: String,
    /// The hash being computed, swapped with `prev` once done: no allocation per record.
    next: String,
    /// The latest day written to: days never go back (see the module docs).
    day_floor: Option<Day>,
    key: PreparedKey,
    /// The canonical body of the record being sealed, reused from record to record.
    scratch: Vec<u8>,
    /// The last `tool` that redaction found clean (empty: none yet).
    clean_tool: String,
}

impl Chain {
    fn new(session: String, workspace: Option<PathBuf>, key: &AuditKey) -> Self {
        Self {
            session,
            workspace: workspace.map(|w| w.to_string_lossy().into_owned()),
            seq: 0,
            prev: GENESIS.to_owned(),
            next: String::with_capacity(GENESIS.len()),
            day_floor: None,
            key: PreparedKey::new(key),
            scratch: Vec::new(),
            clean_tool: String::new(),
        }
    }

    /// Appends the next record's line to `line`; returns the day whose file it goes to.
    fn encode(&mut self, event: &Fields<'_>, line: &mut Vec<u8>) -> Day {
        let ts = event.at.unwrap_or_else(Timestamp::now);
        let day = self.day_floor.map_or(ts.day(), |floor| floor.max(ts.day()));
        self.day_floor = Some(day);
        // Arguments the session could not canonicalize (it refuses such messages
        // before they get here) are hashed as the bytes they are.
        let args_hmac = event.arguments.map(|text| self.key.args_hmac(text));
        let mut detail = event.detail.map(Cow::Borrowed);
        let args = event
            .redacted_args
            .and_then(|text| stored_args(text, &mut detail));
        // Free text that can quote what a call carried (a resource URI as the `tool`, a
        // rule's reason, a server's tool names) is written with secrets redacted: the
        // trail is evidence, never a second copy of a token (SPEC "Audit").
        // Borrowed unless a secret was found: no copy of clean text per record.
        let redact = crate::filter::secrets::redact;
        let tool = match event.tool {
            // A session calls a handful of tools over and over: the name redaction
            // left as it was last time is clean again (redaction is a function of
            // the text alone).
            Some(name) if name == self.clean_tool => Some(Cow::Borrowed(name)),
            Some(name) => {
                let redacted = redact(name);
                if matches!(redacted, Cow::Borrowed(_)) {
                    name.clone_into(&mut self.clean_tool);
                }
                Some(redacted)
            }
            None => None,
        };
        let rule = event.rule.map(redact);
        let detail = detail.as_deref().map(redact);
        let tools: Option<Vec<String>> = event.tools.map(|names| {
            names
                .iter()
                .map(|n| crate::filter::secrets::redact(n).into_owned())
                .collect()
        });
        self.seq += 1;
        let view = RecordView {
            v: VERSION,
            ts,
            session: &self.session,
            seq: self.seq,
            workspace: self.workspace.as_deref(),
            server: event.server,
            tool: tool.as_deref(),
            method: event.method,
            direction: event.direction,
            decision: event.decision,
            rule: rule.as_deref(),
            args_hmac: args_hmac.as_deref(),
            ms: event.ms.map(exact),
            bytes: event.bytes.map(exact),
            listed: event.listed.map(exact),
            held: event.held.map(exact),
            tools: tools.as_deref(),
            detail: detail.as_deref(),
            args: args.as_deref(),
            prev: &self.prev,
        };
        view.seal_into(&self.key, line, &mut self.scratch, &mut self.next);
        std::mem::swap(&mut self.prev, &mut self.next);
        day
    }

    /// [`Chain::encode`] of a [`PackedEvent`]: its fields decoded, then the same record.
    fn encode_packed(&mut self, event: &PackedEvent, line: &mut Vec<u8>) -> Day {
        let server = event.field(Field::Server);
        let tool = event.field(Field::Tool);
        let method = event.field(Field::Method);
        let rule = event.field(Field::Rule);
        let arguments = event.field(Field::Arguments);
        let detail = event.field(Field::Detail);
        let fields = Fields {
            direction: event.direction,
            decision: event.decision,
            server: server.as_deref(),
            tool: tool.as_deref(),
            method: method.as_deref(),
            rule: rule.as_deref(),
            arguments: arguments.as_deref(),
            redacted_args: None,
            ms: event.ms,
            bytes: event.bytes,
            listed: None,
            held: None,
            tools: None,
            detail: detail.as_deref(),
            at: event.at,
        };
        self.encode(&fields, line)
    }
}

/// `args` as stored: canonical, and canonicalizable again one level deeper, inside the
/// record (which [`record::seal_line`] and verify need). Arguments that are not JSON are
/// stored as a JSON string; arguments nested too deep are left out. Either is noted in
/// `detail`.
fn stored_args(text: &str, detail: &mut Option<Cow<'_, str>>) -> Option<Box<RawValue>> {
    // Canonicalizing `[args]` checks the depth the record gives them; `RawValue` then
    // checks that the text was one value (`1,2` is a valid array body, not a value).
    let why = match canonical::canonicalize(&format!("[{text}]")) {
        Ok(wrapped) => match RawValue::from_string(wrapped[1..wrapped.len() - 1].to_owned()) {
            Ok(raw) => return Some(raw),
            Err(e) => e.to_string(),
        },
        Err(e @ canonical::CanonicalError::TooDeep { .. }) => {
            add_detail(detail, &format!("arguments not stored: {e}"));
            return None;
        }
        Err(e) => e.to_string(),
    };
    add_detail(detail, &format!("arguments stored as text: {why}"));
    RawValue::from_string(serde_json::Value::String(text.to_owned()).to_string()).ok()
}

/// An integer as a record holds it: at most [`record::MAX_EXACT_INTEGER`].
fn exact(n: u64) -> u64 {
    n.min(record::MAX_EXACT_INTEGER)
}

fn add_detail(detail: &mut Option<Cow<'_, str>>, note: &str) {
    match detail {
        Some(text) => {
            let text = text.to_mut();
            text.push_str("; ");
            text.push_str(note);
        }
        None => *detail = Some(Cow::Owned(note.to_owned())),
    }
}

/// The day files, owned by the blocking side.
struct Sink {
    dir: PathBuf,
    open: Option<(Day, PathBuf, File)>,
    written: Written,
}

impl Sink {
    /// Syncs the open file.
    fn sync(&self) -> Result<(), AuditError> {
        if let Some((_, path, file)) = &self.open {
            file.sync_data().map_err(|e| AuditError::io(path, e))?;
        }
        Ok(())
    }

    /// One `write(2)` of whole lines to `day`'s file (more only after a short write).
    fn write(&mut self, day: Day, bytes: &[u8]) -> Result<(), AuditError> {
        let (path, file) = self.file_for(day)?;
        // `write_all` loops only if the kernel wrote less than asked, which on a regular
        // file means an error (disk full) is about to be reported anyway.
        file.write_all(bytes).map_err(|e| AuditError::io(path, e))
    }

    fn file_for(&mut self, day: Day) -> Result<(&Path, &mut File), AuditError> {
        if self.open.as_ref().is_none_or(|(d, _, _)| *d != day) {
            if let Some((_, path, old)) = self.open.take() {
                old.sync_data().map_err(|e| AuditError::io(&path, e))?;
            }
            let path = self.dir.join(format!("{day}.jsonl"));
            let file = open_day_file(&path, &self.dir).map_err(|e| AuditError::io(&path, e))?;
            self.written.file = Some(path.clone());
            self.open = Some((day, path, file));
        }
        let (_, path, file) = self.open.as_mut().expect("opened just above");
        Ok((path, file))
    }
}

/// Opens a day file for appending, creating it mode 0600 (whatever the umask). A new
/// file's directory entry is synced, so the file survives a crash with its records.
fn open_day_file(path: &Path, dir: &Path) -> io::Result<File> {
    let existed = path.exists();
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    if file.metadata()?.permissions().mode() & 0o777 != 0o600 {
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    if !existed {
        File::open(dir)?.sync_all()?;
    }
    Ok(file)
}

/// What the writer does, in order.
enum Step {
    Record(Box<Event>),
    Packed(PackedEvent),
    Workspace(Option<String>),
    Seal,
}

/// The chain and the files: owned by the writer thread.
struct State {
    chain: Chain,
    sink: Sink,
    /// `[audit.syslog]`: lines are offered to it once they are in the file.
    forward: Option<Forwarder>,
    /// Where a [`PackedEvent`]'s buffer goes once its record is made.
    texts: Arc<TextPool>,
}

impl State {
    /// Records the seal just written in the anchor (see [`super::anchor`]). A failure
    /// is logged, not fatal: the chain itself is whole on disk, and a session missing
    /// from the anchor is not reported as removed.
    fn anchor_seal(&self) {
        let Some(day) = self.chain.day_floor else {
            return;
        };
        let anchored = super::anchor::append(
            &self.sink.dir,
            &self.chain.key,
            &self.chain.session,
            day,
            self.chain.seq,
            &self.chain.prev,
        );
        if let Err(e) = anchored {
            tracing::error!(session = %self.chain.session, error = %e, "cannot anchor the audit seal");
        }
    }

    /// Encodes `steps` in order and appends their lines, one `write(2)` per day and per
    /// [`MAX_WRITE_BYTES`]; then syncs if `sync`.
    fn apply(&mut self, steps: &mut Vec<Step>, sync: bool) -> Result<(), AuditError> {
        // Whole lines of one day waiting for their `write(2)`. Not kept between
        // batches: one allocation per batch is nothing, and a large buffer kept would
        // count in the resident memory for good.
        let mut buf = Vec::with_capacity(MAX_WRITE_BYTES.min(64 * 1024));
        self.apply_into(steps, sync, &mut buf)
    }

    /// Appends whole lines to `day`'s file, then offers each to the collector.
    fn write(&mut self, day: Day, lines: &[u8]) -> Result<(), AuditError> {
        self.sink.write(day, lines)?;
        if let Some(forward) = &self.forward {
            for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                forward.offer(line);
            }
        }
        Ok(())
    }

    /// The seal; with a collector, what it got so far (after a short wait for the
    /// queue) is said in its `detail`, so the chain itself records what is missing
    /// from the collector's copy.
    fn seal_event(&self) -> Event {
        let seal = Event::new(Direction::Session, Decision::Seal);
        let seal = match &self.forward {
            Some(forward) => {
                let d = forward.drain(super::syslog::DRAIN_WAIT);
                seal.detail(format!(
                    "syslog: {} delivered, {} undelivered",
                    d.delivered, d.undelivered
                ))
            }
            None => seal,
        };
        seal.at(Timestamp::now())
    }

    /// Stops the forwarder after the seal went out (or not), and keeps its count.
    fn finish_forwarding(&mut self) {
        if let Some(forward) = self.forward.take() {
            let delivery = forward.finish();
            if delivery.undelivered > 0 {
                tracing::warn!(
                    undelivered = delivery.undelivered,
                    delivered = delivery.delivered,
                    "audit records did not reach the syslog collector (the local trail has them all)"
                );
            }
            self.sink.written.syslog = Some(delivery);
        }
    }

    fn apply_into(
        &mut self,
        steps: &mut Vec<Step>,
        sync: bool,
        buf: &mut Vec<u8>,
    ) -> Result<(), AuditError> {
        let mut buf_day = None;
        for step in steps.drain(..) {
            let start = buf.len();
            let day = match step {
                Step::Record(event) => self.chain.encode(&Fields::of(&event), buf),
                Step::Packed(event) => {
                    let day = self.chain.encode_packed(&event, buf);
                    self.texts.give(event.text);
                    day
                }
                Step::Workspace(workspace) => {
                    self.chain.workspace = workspace;
                    continue;
                }
                Step::Seal => {
                    // What came before the seal goes out first, so the collector's
                    // count in the seal covers every record of the chain.
                    if let Some(day) = buf_day.take()
                        && !buf.is_empty()
                    {
                        self.write(day, buf)?;
                        buf.clear();
                    }
                    // `buf_day` is unset now, so `start` below splits no write.
                    let seal = self.seal_event();
                    self.chain.encode(&Fields::of(&seal), buf)
                }
            };
            self.sink.written.records += 1;
            // The new line starts another write when its day differs or the buffer
            // would grow past the cap: what came before it goes out first.
            if let Some(before) = buf_day
                && start > 0
                && (before != day || buf.len() > MAX_WRITE_BYTES)
            {
                self.write(before, &buf[..start])?;
                buf.drain(..start);
            }
            buf_day = Some(day);
        }
        if let Some(day) = buf_day
            && !buf.is_empty()
        {
            self.write(day, buf)?;
        }
        if sync {
            self.sink.sync()?;
        }
        Ok(())
    }
}

/// A batch of at least this many records was a burst: its memory is given back.
const BURST_RECORDS: usize = 1024;
/// Room for steps kept between batches.
const KEPT_STEPS: usize = 256;

/// The writer: one loop on its own thread (the blocking pool's), no `select!`, since
/// its only input is the channel. Takes every queued message (up to
/// [`MAX_BATCH_RECORDS`]), encodes and appends them, then answers flushes and the
/// seal. Woken from idle by an event, it first waits [`COALESCE`] for more.
fn run(
    mut rx: mpsc::UnboundedReceiver<Message>,
    mut state: State,
    backlog: &AtomicUsize,
) -> Result<Written, AuditError> {
    let mut steps = Vec::new();
    let mut flushes = Vec::new();
    loop {
        let first = match rx.try_recv() {
            // Behind: go on at once.
            Ok(message) => message,
            // Every handle dropped without a seal: all recorded events are written;
            // the chain stays unsealed.
            Err(TryRecvError::Disconnected) => {
                state.finish_forwarding();
                return Ok(state.sink.written);
            }
            Err(TryRecvError::Empty) => {
                let Some(message) = rx.blocking_recv() else {
                    state.finish_forwarding();
                    return Ok(state.sink.written);
                };
                if matches!(
                    message,
                    Message::Record(_) | Message::Packed(_) | Message::Workspace(_)
                ) {
                    std::thread::sleep(COALESCE);
                }
                message
            }
        };
        let mut seal = None;
        let mut events = 0;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Record(event) => {
                    events += 1;
                    steps.push(Step::Record(event));
                }
                Message::Packed(event) => {
                    events += 1;
                    steps.push(Step::Packed(event));
                }
                Message::Workspace(workspace) => steps.push(Step::Workspace(workspace)),
                Message::Flush(reply) => flushes.push(reply),
                Message::Seal(reply) => {
                    steps.push(Step::Seal);
                    seal = Some(reply);
                    break;
                }
            }
            if steps.len() < MAX_BATCH_RECORDS {
                next = rx.try_recv().ok();
            }
        }
        let sync = seal.is_some() || !flushes.is_empty();
        let result = state.apply(&mut steps, sync);
        backlog.fetch_sub(events, Ordering::Relaxed);
        if events >= BURST_RECORDS {
            // A burst's events are written and freed: what they held goes back to the
            // system, not kept for good (the batch's vector, the events' buffers, the
            // channel's blocks; ~1 MiB after a flood).
            steps.shrink_to(KEPT_STEPS);
            crate::resident::release_free_heap();
        }
        if let Err(e) = result {
            for reply in flushes.drain(..) {
                let _ = reply.send(Err(e.clone()));
            }
            if let Some(reply) = seal {
                let _ = reply.send(Err(e.clone()));
            }
            return Err(e);
        }
        for reply in flushes.drain(..) {
            let _ = reply.send(Ok(()));
        }
        if let Some(reply) = seal {
            state.finish_forwarding();
            state.anchor_seal();
            let written = &mut state.sink.written;
            written.sealed = true;
            rx.close();
            while let Ok(message) = rx.try_recv() {
                match message {
                    Message::Record(_) | Message::Packed(_) => {
                        written.late += 1;
                        backlog.fetch_sub(1, Ordering::Relaxed);
                    }
                    Message::Workspace(_) => {}
                    Message::Flush(reply) => drop(reply.send(Err(AuditError::Closed))),
                    Message::Seal(reply) => drop(reply.send(Err(AuditError::Closed))),
                }
            }
            if written.late > 0 {
                tracing::warn!(
                    session = %state.chain.session,
                    late = written.late,
                    "audit events arrived after the seal and were not written"
                );
            }
            let _ = reply.send(Ok(written.clone()));
            return Ok(state.sink.written);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::Record;

    fn chain() -> Chain {
        Chain::new("1-2-0a0b0c0d".into(), None, &AuditKey::from_bytes([7; 32]))
    }

    impl Chain {
        /// One record's day and line.
        #[allow(
            clippy::needless_pass_by_value,
            reason = "each test's event is made for it"
        )]
        fn line(&mut self, event: Event) -> (Day, String) {
            let mut line = Vec::new();
            let day = self.encode(&Fields::of(&event), &mut line);
            (day, String::from_utf8(line).expect("utf-8"))
        }
    }

    fn parse(line: &str) -> Record {
        let checked =
            record::check_line(line.trim_end(), Some(&record::test_key())).expect("a valid line");
        assert_eq!(checked.computed, checked.record.hash, "{line}");
        checked.record
    }

    #[test]
    fn secrets_quoted_in_free_text_fields_are_redacted() {
        let token = format!("ghp_{}", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8");
        let event = Event::new(Direction::ToServer, Decision::Deny)
            .tool(format!("https://api.example.com/repo?token={token}"))
            .rule("no-secret-resources")
            .detail(format!("argument `{token}` is not allowed"));
        let (_, line) = chain().line(event);
        assert!(!line.contains(&token), "{line}");
        assert!(line.contains("[REDACTED:"), "{line}");
        let record = parse(&line);
        assert!(record.tool.is_some_and(|t| t.contains("[REDACTED:")));
        // The writer remembers the last clean tool name, never a redacted one.
        let mut chain = chain();
        let secret = format!("https://api.example.com/repo?token={token}");
        for tool in ["fs__read", secret.as_str(), "fs__read", secret.as_str()] {
            let event = Event::new(Direction::ToServer, Decision::Allow).tool(tool);
            let record = parse(&chain.line(event).1);
            let written = record.tool.expect("a tool");
            assert_eq!(
                written.contains("[REDACTED:"),
                tool != "fs__read",
                "{written}"
            );
            assert!(!written.contains(&token), "{written}");
        }
    }

    #[test]
    fn a_packed_event_makes_the_line_of_the_equal_event() {
        let at = Timestamp::from_millis(1_780_000_000_123);
        let token = format!("ghp_{}", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8");
        let cases: [(&[u8], Option<&str>, Option<&str>); 4] = [
            (br#"{"path":"/tmp/x","n":1.50}"#, None, None),
            (b"\"caf\xc3\xa9\"", Some("output:secrets"), Some("a reason")),
            (b"{\"bad\":\"\xff\xfe\"}", Some("r"), None),
            (token.as_bytes(), None, Some(token.as_str())),
        ];
        for (arguments, rule, detail) in cases {
            let mut event = Event::new(Direction::ToClient, Decision::Allow)
                .method("tools/call")
                .server("fs")
                .tool("fs__read\u{e9}")
                .arguments(String::from_utf8_lossy(arguments).into_owned())
                .ms(3)
                .bytes(120)
                .at(at);
            let mut packed = PackedEvent::with_capacity(Direction::ToClient, Decision::Allow, 8)
                .method("tools/call")
                .server("fs")
                .tool("fs__read\u{e9}")
                .arguments(arguments)
                .ms(3)
                .bytes(120)
                .at(at);
            if let Some(rule) = rule {
                event = event.rule(rule);
                packed = packed.rule(rule);
            }
            if let Some(detail) = detail {
                event = event.detail(detail);
                packed = packed.detail(detail);
            }
            let (mut a, mut b) = (chain(), chain());
            let want = a.line(event);
            let mut line = Vec::new();
            let day = b.encode_packed(&packed, &mut line);
            assert_eq!((day, String::from_utf8(line).expect("utf-8")), want);
        }
        // Absent fields stay absent.
        let mut line = Vec::new();
        let packed = PackedEvent::with_capacity(Direction::ToServer, Decision::Deny, 0).at(at);
        chain().encode_packed(&packed, &mut line);
        let want = chain().line(Event::new(Direction::ToServer, Decision::Deny).at(at));
        assert_eq!(String::from_utf8(line).expect("utf-8"), want.1);
    }

    #[test]
    fn a_spent_events_buffer_is_kept_for_the_next_event_within_bounds() {
        let pool = TextPool::default();
        let mut text = pool.take(100);
        text.extend_from_slice(b"tools/call");
        pool.give(text);
        // The next event gets the same buffer, empty, with the room it asks for.
        let again = pool.take(300);
        assert!(again.is_empty() && again.capacity() >= 300);
        pool.give(again);
        let reused = pool.take(10);
        assert!(reused.is_empty());
        pool.give(reused);
        assert_eq!(pool.0.lock().map_or(0, |k| k.len()), 1);
        // Large buffers are freed, and no more than POOL_BUFFERS are kept.
        pool.give(Vec::with_capacity(POOL_BUFFER_BYTES + 1));
        for _ in 0..2 * POOL_BUFFERS {
            pool.give(Vec::with_capacity(16));
        }
        assert_eq!(pool.0.lock().map_or(0, |k| k.len()), POOL_BUFFERS);
    }

    #[test]
    fn stored_arguments_are_canonical_or_noted() {
        let mut detail = None;
        let raw = stored_args(r#"{ "b": 1.50, "a": [ true ] }"#, &mut detail).expect("stored");
        assert_eq!(raw.get(), r#"{"a":[true],"b":1.5}"#);
        assert_eq!(detail, None);
        for text in ["1,2", "not json", r#"{"a":1,"a":2}"#] {
            let mut detail = None;
            let raw = stored_args(text, &mut detail).expect("stored as text");
            assert_eq!(
                raw.get(),
                serde_json::Value::String(text.into()).to_string()
            );
            assert!(
                detail
                    .expect("a note")
                    .starts_with("arguments stored as text")
            );
        }
        // Deep enough to canonicalize alone, one level too deep inside the record.
        let depth = canonical::MAX_DEPTH;
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(canonical::canonicalize(&deep).is_ok());
        let mut detail = None;
        assert!(stored_args(&deep, &mut detail).is_none());
        assert!(detail.expect("a note").contains("arguments not stored"));
    }

    #[test]
    fn every_line_checks_whatever_the_event_holds() {
        let mut chain = chain();
        let odd = Event::new(Direction::ToClient, Decision::Flag)
            .tool("t\u{1f600}\u{7}\"\\/\u{2028}")
            .detail("line\nbreak\ttab \u{0}")
            .arguments("not json")
            .redacted_args(r#"{"\u00e9":1e400}"#)
            .ms(u64::MAX)
            .bytes(1 << 60);
        let (_, line) = chain.line(odd);
        assert_eq!(line.matches('\n').count(), 1, "one line: {line}");
        let record = parse(&line);
        assert_eq!(record.ms, Some(record::MAX_EXACT_INTEGER));
        assert_eq!(record.tool.as_deref(), Some("t\u{1f600}\u{7}\"\\/\u{2028}"));
        let deep = canonical::MAX_DEPTH;
        let (_, line) = chain.line(
            Event::new(Direction::ToServer, Decision::Allow).redacted_args(format!(
                "{}{}",
                "[".repeat(deep),
                "]".repeat(deep)
            )),
        );
        assert_eq!(parse(&line).prev, record.hash);
    }

    #[test]
    fn days_never_go_back() {
        let mut chain = chain();
        let at = |text| Timestamp::parse_rfc3339(text).expect("ts");
        let event = |ts| Event::new(Direction::ToServer, Decision::Allow).at(ts);
        let (d1, _) = chain.line(event(at("2026-05-02T00:00:01Z")));
        let (d2, line) = chain.line(event(at("2026-05-01T23:59:59Z")));
        assert_eq!(
            d1, d2,
            "a clock stepping back stays in the later day's file"
        );
        assert_eq!(parse(&line).ts, at("2026-05-01T23:59:59Z"));
        let (d3, _) = chain.line(event(at("2026-05-03T00:00:00Z")));
        assert!(d3 > d2);
    }
}
