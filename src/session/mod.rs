//! One client session: the actor that owns every piece of per-session state (the
//! upstream slots, the in-flight tables that remap ids, the merged catalogs) and routes
//! each message.
//!
//! # Ids
//! Upstreams all number their requests from 0 or 1, and so does the client, so ids are
//! remapped both ways, with the router's tables ([`crate::router::ids`]). Each upstream
//! slot mints its own increasing integers for every request sent to it and keeps
//! `our id → where the answer goes` (`Slot.pending`); the client's id is kept as the
//! exact JSON text it arrived as and spliced back into the answer (`inflight`).
//! Requests mcp-warden sends to the client get ids from one session-wide table
//! (`reverse`), mapped back the same way. Progress tokens follow the ids: an upstream
//! is given our id for the request as its token.
//!
//! # Order of events
//! The client's `initialize` starts the upstream handshakes (the servers were spawned
//! at start-up, so their start-up time overlaps the client's). The answer goes out when
//! every upstream is initialized or has failed. Each ready upstream's tools, prompts and
//! resource templates are then listed and merged; a request that needs them, or that
//! routes among the servers, waits while a server is starting or a listing is under way
//! rather than seeing a half-built catalog.
//!
//! # Turns
//! The loop waits for one event, then takes every other one already waiting (bounded),
//! and only then writes: what a burst produced leaves in one write per destination,
//! and a lone request or answer is written at once, by the session itself while the
//! destination's writer task is idle ([`crate::jsonrpc::writer::LineSink`]).
//!
//! # Back-pressure
//! Lines for the client go through a small queue to the writer task, with a bounded
//! backlog behind it. When the backlog fills, upstream output is no longer read (each
//! upstream then waits on its own pipe) while the client's requests and cancellations
//! still are, until its unread answers pile up too.
//!
//! # Files
//! This file holds the state and the event loop; `client.rs` handles what the client
//! sends, `upstreams.rs` starts the servers and handles what they send (`startup.rs`
//! drives each one's start-up machine, [`crate::upstream::startup`]), `policy.rs`
//! and `pins.rs` wire the decide and hold stages ([`crate::stages`]) in, `answer.rs`
//! is the one place a stopped message becomes an answer and an audit record,
//! `audit.rs` queues the records, `deadlines.rs` holds every timer (request timeouts,
//! start-up waits, restarts, task polls), and [`wire`] writes the messages mcp-warden
//! makes itself. The merged catalogs and cursors are the router's ([`crate::router`]).

mod answer;
mod approvals;
mod audit;
mod client;
mod deadlines;
mod mrtr;
mod pins;
mod policy;
mod probe;
mod reload;
mod server_requests;
mod startup;
mod subscriptions;
mod task_listen;
mod tasks;
mod tasks_inline;
mod tasks_poll;
mod upstreams;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use serde_json::Value;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::codec::FramedRead;

use crate::config::{Effective, ServerConfig, ServerName};
use crate::downstream;
use crate::filter::Chain;
use crate::jsonrpc::batch::BatchAnswers;
use crate::jsonrpc::message::reparse;
use crate::jsonrpc::writer::{Closed, LineSink, Output};
use crate::jsonrpc::{ErrorCode, Id, LineCodec, Message, error_response};
use crate::router::catalog::{self, Catalog, Collision, ListKind};
use crate::router::cursor;
use crate::router::ids::{ClientIds, OurIds};
use crate::stages::{Direction, Verdict, View};
use crate::stdio::Input;
use crate::upstream::slot::{Backoff, ListState, SlotState};
use crate::upstream::{InstanceId, Upstream, UpstreamEvent};
pub use pins::{LockUpdate, PinningSetup};

/// Requests in flight to one upstream; more get -32006 (busy) at once, so a flooding
/// client costs bounded memory and other upstreams do not notice (FAULTS 25).
const MAX_IN_FLIGHT: usize = 256;
/// How long the client's `initialize` (and its first requests) wait for slow servers.
/// Past it they are answered without them; a late server joins with `list_changed`.
/// Clients give up on a server that takes too long to initialize, and one slow
/// upstream must not take the others down with it.
const STARTUP_WAIT: Duration = Duration::from_secs(10);
/// Most resource URIs remembered for routing `resources/read` (from list answers).
const MAX_URI_ROUTES: usize = 100_000;
/// Unsent lines for the client past which upstream output is no longer read.
const UPSTREAM_BACKLOG: usize = 64;
/// Unsent bytes for the client past which upstream output is no longer read.
const UPSTREAM_BACKLOG_BYTES: usize = 4 * 1024 * 1024;
/// Unsent lines for the client past which its own input is no longer read either.
const CLIENT_BACKLOG: usize = 1024;
/// How long the last answers may take to reach the client at the end.
const FINAL_FLUSH: Duration = Duration::from_secs(2);
/// Lines from all upstreams not yet taken by the session. Small, because a line may be
/// a maximum-size message; each upstream's reader then waits on its own pipe.
const UPSTREAM_QUEUE: usize = 16;
/// Most events one turn takes after the one it waited for, before it writes.
const TURN: usize = 64;
/// While the audit writer is behind, how often to look whether it caught up.
const AUDIT_RECHECK: Duration = Duration::from_millis(5);
/// Log the first few non-JSON lines of a server's stdout, then only every this many.
const NOISE_LOG_EVERY: u64 = 1000;

/// What the session needs to start.
#[derive(Debug)]
pub struct SessionConfig {
    pub effective: Effective,
    /// How servers are started.
    pub spawner: crate::upstream::Spawner,
    /// Reloads the configuration for another workspace (roots discovery); `None`
    /// when the workspace was fixed with `--workspace`.
    pub reload: Option<Reload>,
    /// Warnings to give the client as logging notifications once it is initialized.
    pub notices: Vec<String>,
    /// The largest line accepted from the client.
    pub max_line: usize,
    /// The pinning mode and where the lock files are.
    pub pinning: PinningSetup,
    /// Where decisions are recorded; `None`: not recorded (library tests).
    pub audit: Option<crate::audit::AuditHandle>,
    /// The key of the `requestState` envelopes (from the per-install audit key);
    /// `None`: one drawn for this process.
    pub state_key: Option<crate::era::state::StateKey>,
    /// Told once, the first time every upstream has started and been listed: `serve`
    /// then gives back the pages start-up faulted in (`crate::resident`). `None`:
    /// nobody asks (library tests).
    pub settled: Option<std::sync::Arc<tokio::sync::Notify>>,
}

/// Loads the configuration for the workspace the client's roots point at; `None`
/// keeps the current one (the new one was invalid).
pub struct Reload(pub Box<dyn FnMut(Vec<PathBuf>) -> Option<Effective> + Send>);

impl std::fmt::Debug for Reload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reload")
    }
}

/// Why the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The client closed stdin (or stdout): a normal end.
    ClientLeft,
    /// mcp-warden was asked to stop (SIGTERM, SIGINT, SIGHUP).
    Stopped,
}

/// Where an answer to the client goes: its id, the batch it belongs to, and the
/// request's modern envelope (`None`: a legacy request), which decides the era of
/// the answer and of the requests made for it upstream.
#[derive(Debug, Clone)]
struct Origin {
    id: Id,
    batch: Option<u64>,
    envelope: Option<std::sync::Arc<crate::era::envelope::Envelope>>,
}

impl Origin {
    fn is_modern(&self) -> bool {
        self.envelope.is_some()
    }

    /// A modern request's declared capabilities (`{}`-less `Null` for a legacy one).
    fn capabilities(&self) -> Value {
        self.envelope
            .as_ref()
            .map(|e| e.capabilities.clone())
            .unwrap_or_default()
    }

    /// Whether a modern request declares the tasks extension.
    fn declares_tasks(&self) -> bool {
        self.envelope
            .as_ref()
            .is_some_and(|e| crate::era::tasks::declares_extension(&e.capabilities))
    }
}

/// What an id we sent to an upstream stands for.
#[derive(Debug)]
enum Pending {
    /// A request of the slot's start-up machine (its probe, `initialize`): the
    /// answer is the machine's ([`crate::upstream::startup`], `startup.rs`).
    Startup,
    /// Our own request whose answer nobody needs (e.g. `logging/setLevel` fan-out).
    Internal,
    /// Our own `subscriptions/listen` to a modern server (`subscriptions.rs`): an
    /// answer means the server closed it.
    Listen,
    /// A client request; the answer goes back to its origin.
    Client(Box<ClientCall>),
    /// A client request the client cancelled: a late answer is dropped silently.
    Cancelled { timer: deadlines::Key },
    /// A client call held open while a modern client answers the server's questions
    /// (`mrtr.rs`); the handle of its record.
    Held(u64),
    /// Our `tasks/result` for a modern client's task on a legacy server (its id of
    /// ours): the task's questions come during it, its payload as the answer.
    TaskResult(String),
    /// Our own request about a legacy client's task on a modern server
    /// (`tasks_poll.rs`).
    Bridge(Box<tasks_poll::BridgeAsk>),
}

/// A client request forwarded to an upstream.
#[derive(Debug)]
struct ClientCall {
    origin: Origin,
    /// When it was sent on (the audit's `ms`).
    started: std::time::Instant,
    /// Its `arguments` as they arrived, for the audit's HMAC (audited methods only).
    arguments: Option<Bytes>,
    /// Monitor mode: the rule that would have stopped it (its answer is marked).
    monitor: Option<String>,
    method: std::borrow::Cow<'static, str>,
    /// The exposed tool or prompt name, for the filter chain.
    tool: Option<String>,
    timer: deadlines::Key,
    /// The client's own progress token (JSON text); the upstream got our id instead.
    progress: Option<Box<str>>,
    /// A page of `resources/list`: the answer's cursor is rewritten to ours.
    paged: bool,
    /// For a request that may be answered `input_required`: what its retries need.
    mrtr: Option<Box<mrtr::CallMrtr>>,
    /// A request about one of our tasks: its answer's task id is made ours.
    task: Option<tasks::TaskHook>,
}

#[derive(Debug)]
struct Slot {
    config: ServerConfig,
    upstream: Option<Upstream>,
    state: SlotState,
    /// Our ids for what was sent to it → what each answer is for.
    pending: OurIds<Pending>,
    /// One listing per [`ListKind`], by its index.
    lists: [ListState; 3],
    noise: u64,
    /// When to start it again after a failure.
    backoff: Backoff,
    /// The instance id of the last start (kept when it failed), so a timer of an
    /// earlier life, or of a slot since replaced, is recognised.
    instance: InstanceId,
    /// Whether the client waits for this slot (its first start, for at most
    /// [`STARTUP_WAIT`]); a restart or a late server never holds the client up.
    blocking: bool,
    /// Why the launcher refused to start it (its sandbox), for good.
    refused: Option<String>,
    /// The level last set with `logging/setLevel` on this (legacy) server.
    log_level: Option<String>,
    /// Whether missing sandbox layers were already said for this server.
    sandbox_warned: bool,
    /// The start-up of its current process (probe, handshake), while it runs
    /// ([`crate::upstream::startup`]; its findings stay readable once ready).
    startup: Option<crate::upstream::startup::Startup<catalog::Item>>,
    /// Its process exited on our probe once: it is started without one for the rest
    /// of the session (some SDKs exit on a request before `initialize`).
    probe_fatal: bool,
    /// Per [`ListKind`]: the `ttlMs` of its last listing (a modern server's; the
    /// smallest over its pages).
    list_ttl: [Option<u64>; 3],
    /// Per [`ListKind`]: when its last listing completed.
    listed_at: [Option<std::time::Instant>; 3],
    /// Per [`ListKind`]: the listing under way is a refresh for an expired `ttlMs`.
    refreshing: [bool; 3],
}

impl Slot {
    /// Whether the client need not wait for this slot.
    fn is_settled(&self) -> bool {
        !self.blocking || self.is_ready_and_listed()
    }

    fn is_ready_and_listed(&self) -> bool {
        !self.state.is_starting()
            && !self
                .lists
                .iter()
                .any(|l| matches!(l, ListState::Listing { .. }))
    }

    fn mint(&mut self, pending: Pending) -> u64 {
        self.pending.mint(pending)
    }
}

#[derive(Debug)]
enum Timer {
    /// A client request to `slot` with our id `id` ran out of time.
    Request {
        slot: usize,
        instance: InstanceId,
        id: u64,
    },
    /// A request of an upstream's start-up machine (our id `id`) waited its time.
    Startup {
        slot: usize,
        instance: InstanceId,
        id: u64,
    },
    /// Time to restart a failed upstream, if it is still the `instance` that failed.
    Restart { slot: usize, instance: InstanceId },
    /// The client has waited long enough for slow servers at start-up.
    StartupWait,
    /// A timer of a legacy client's task on a modern server (`tasks_poll.rs`).
    Task(tasks_poll::TaskTimer),
}

/// A request the client made while a catalog was being built.
#[derive(Debug)]
struct Deferred {
    msg: Message,
    origin: Origin,
}

/// What a request mcp-warden sent to the client stands for.
#[derive(Debug)]
enum Reverse {
    Roots,
    /// An upstream's request forwarded to the client; `id` is the upstream's own id.
    Forwarded {
        slot: usize,
        instance: InstanceId,
        id: Id,
        /// The request's method, for the audit record of the answer.
        method: String,
    },
    /// The user is asked to review a held item before its call goes on.
    PinReview(Box<pins::PinReview>),
    /// The user is asked whether a call the policy says `ask` for may go through.
    PolicyAsk(Box<policy::PolicyAsk>),
    /// One `inputRequests` entry of a server's `input_required`, asked of a legacy
    /// client; `call` is the round's handle.
    Round {
        call: u64,
    },
    /// One `inputRequests` entry of a modern server's task, asked of the legacy
    /// client that made the task (`tasks_poll.rs`).
    TaskInput {
        task: String,
        key: String,
        method: String,
    },
}

#[derive(Debug, Default)]
struct ClientState {
    /// `initialize` or a first modern request arrived; upstream handshakes may start.
    started: bool,
    /// `initialize` arrived (the connection speaks the legacy era too).
    legacy: bool,
    /// The level of the client's last `logging/setLevel`, stamped as `logLevel` on
    /// its requests to modern servers (which have no `logging/setLevel`).
    log_level: Option<String>,
    /// The `initialize` request still to be answered.
    initialize: Option<Origin>,
    /// `notifications/initialized` arrived: notifications may flow to the client.
    initialized: bool,
    version: &'static str,
    capabilities: Value,
    info: Value,
    /// The tasks upstreams created for this client, under ids of ours.
    tasks: crate::era::tasks::TaskTable,
    /// Its 2026 tasks on legacy servers: what mediating them needs besides.
    inline_tasks: tasks_inline::InlineTasks,
    /// Those of its tasks made on modern servers for it as a legacy client, polled
    /// by mcp-warden.
    bridges: tasks_poll::Bridges,
}

struct Session {
    /// Lines for the client not yet in the writer's queue.
    out: VecDeque<Bytes>,
    /// Slots with requests pushed this turn and not yet written.
    unflushed: Vec<usize>,
    upstream_tx: mpsc::Sender<UpstreamEvent>,
    /// Every running server's stdout, read here (not by a task each).
    stdouts: crate::upstream::StdoutSet,
    slots: Vec<Slot>,
    instances: HashMap<InstanceId, usize, crate::router::ids::OursHash>,
    next_instance: InstanceId,
    client: ClientState,
    /// Client requests in flight: client id → (slot, our id). Also refuses a reused id.
    inflight: ClientIds,
    /// Requests mcp-warden sent to the client: our id → what the answer is for.
    reverse: OurIds<Reverse>,
    /// One merged catalog per [`ListKind`], by its index.
    catalogs: [Catalog; 3],
    /// Resource URIs seen in `resources/list` answers → the slot that listed them.
    uri_routes: HashMap<String, crate::router::Listers>,
    deferred: Vec<Deferred>,
    timers: deadlines::Deadlines<Timer>,
    chain: Chain,
    /// The client's batches still being answered, under numbers of ours.
    batches: OurIds<BatchAnswers>,
    notices: Vec<String>,
    config: SessionConfig,
    workspace_root: Option<PathBuf>,
    stopping: JoinSet<()>,
    /// Per kind: a change is to be announced once the current listings finish.
    announce: [bool; 3],
    /// Per kind: the collisions last reported.
    collisions: [Vec<Collision>; 3],
    /// Per kind: the client has been sent a list (so changes are worth announcing).
    client_listed: [bool; 3],
    /// Pinning: the locks, what is held, what to write.
    pins: pins::Pins,
    /// Where the lock watcher sends fresh readings.
    pin_tx: mpsc::Sender<LockUpdate>,
    /// The audit trail's writer; taken from the config.
    audit: Option<crate::audit::AuditHandle>,
    /// The writer stopped and that was said.
    audit_failed: bool,
    /// The merged policy in force.
    policy: std::sync::Arc<crate::policy::PolicySet>,
    /// The labels of this session's completed calls (flow rules); never shared.
    flows: crate::policy::FlowState,
    /// Requests the user allowed once after an `ask`, each bound to its request.
    approvals: approvals::Approvals,
    /// The rates the session limits: tool calls of the last minute (`[limits]`), and
    /// each server's requests to the client (in a call, bounded, rate-limited).
    rate: Rates,
    /// Where the configuration watcher sends fresh loads.
    config_tx: mpsc::Sender<reload::ConfigUpdate>,
    config_watcher: Option<tokio::task::JoinHandle<()>>,
    /// Multi round-trip requests: envelopes issued, rounds waiting on the client.
    mrtr: mrtr::Mrtr,
    /// The client's open `subscriptions/listen` and the URIs they need upstream.
    subs: crate::era::subscriptions::Subscriptions,
}

/// What the session counts to limit rates.
#[derive(Debug, Default)]
struct Rates {
    /// Tool calls of the last minute, for `[limits]`.
    calls: crate::stages::limits::CallRate,
    /// Each server's requests to the client.
    server_requests: server_requests::Gate,
    /// Each server's notification decisions recorded in the audit.
    notification_records: audit::Budget,
}

/// Runs one session over the client's `input` and `output` until the client leaves
/// or `stop` completes; either way every upstream is stopped before it returns.
#[allow(
    clippy::too_many_lines,
    reason = "the literal naming every field of the session is most of it"
)]
pub async fn run(
    mut config: SessionConfig,
    chain: Chain,
    input: impl Into<Input>,
    output: impl Into<Output>,
    stop: impl Future<Output = ()>,
) -> Outcome {
    let mut stop = std::pin::pin!(stop);
    let Input { reader, eager } = input.into();
    let mut frames = FramedRead::new(reader, LineCodec::new(config.max_line));
    let (sink, writer) = downstream::start_writer(output.into());
    let mut writer = std::pin::pin!(writer);
    let (upstream_tx, mut upstream_rx) = mpsc::channel(UPSTREAM_QUEUE);
    let notices = std::mem::take(&mut config.notices);
    let workspace_root = config.effective.workspace.as_ref().map(|w| w.root.clone());
    // The scan's patterns take a moment to compile; done while the servers start.
    drop(tokio::task::spawn_blocking(crate::scan::warm_up));
    let audit = config.audit.take();
    let policy = std::sync::Arc::new(config.effective.policy.clone());
    let (pin_tx, mut pin_rx) = mpsc::channel(4);
    let (config_tx, mut config_rx) = mpsc::channel(2);
    let mut pins = pins::Pins::new(config.pinning.clone(), &config.effective);
    pins.watch(pin_tx.clone());
    let mut session = Session {
        out: VecDeque::new(),
        unflushed: Vec::new(),
        upstream_tx,
        stdouts: crate::upstream::StdoutSet::default(),
        slots: Vec::new(),
        instances: HashMap::default(),
        next_instance: 0,
        client: ClientState::default(),
        inflight: ClientIds::default(),
        reverse: OurIds::default(),
        catalogs: Default::default(),
        uri_routes: HashMap::new(),
        deferred: Vec::new(),
        timers: deadlines::Deadlines::default(),
        chain,
        batches: OurIds::default(),
        notices,
        // Before `config` moves in.
        mrtr: mrtr::Mrtr::new(config.state_key.take()),
        config,
        workspace_root,
        stopping: JoinSet::new(),
        announce: [false; 3],
        collisions: Default::default(),
        client_listed: [false; 3],
        pins,
        pin_tx,
        audit,
        audit_failed: false,
        policy,
        flows: crate::policy::FlowState::default(),
        approvals: approvals::Approvals::default(),
        rate: Rates::default(),
        config_tx,
        config_watcher: None,
        subs: crate::era::subscriptions::Subscriptions::default(),
    };
    session.watch_config();
    let servers = session.config.effective.servers.clone();
    session.start_servers(servers);

    let outcome = loop {
        // What the last turn produced, each destination in one write.
        session.flush_upstreams();
        let answered = !session.out.is_empty();
        if session.push_out(&sink).is_err() {
            break Outcome::ClientLeft;
        }
        // A client that was answered often has its next request written by the time
        // its stdin is polled below: read it then, not after the next `epoll_wait`.
        if answered && let Some(eager) = &eager {
            eager.arm();
        }
        let gate = session.gate();
        tokio::select! {
            biased;
            // A signal: stop like a client that left.
            () = &mut stop => break Outcome::Stopped,
            // The writer ended: stdout is closed, so nobody is listening any more. It
            // can only end while it has lines to write (a direct write that fails
            // leaves them to it), so it is watched only then.
            _ = &mut writer, if sink.is_busy() => break Outcome::ClientLeft,
            // The client's queue has room again: the backlog moves on.
            room = sink.ready(), if gate.backlog > 0 => if room.is_err() {
                break Outcome::ClientLeft;
            },
            // Every upstream's stdout lines, tagged with the instance. Asked before the
            // client: the answer to the request just written is often there already
            // (the pipe is read at once after a write to the server).
            (instance, line) = session.stdouts.next_line(), if !gate.upstream_paused() => {
                session.on_stdout_line(instance, line);
            }
            // The upstreams' other events: sandbox reports, exits, diagnoses.
            Some(event) = upstream_rx.recv(), if !gate.upstream_paused() => {
                session.on_upstream_event(event);
            }
            // The client: requests, answers and notifications; its EOF ends the session.
            item = frames.next(), if gate.client_open() => match item {
                Some(Ok(line)) => session.on_client_line(line),
                Some(Err(_)) | None => break Outcome::ClientLeft,
            },
            // Request and handshake deadlines.
            timer = session.timers.expired() => session.on_timer(&timer),
            // A lock file changed (a `pin` in another terminal, an edit, trust).
            Some(update) = pin_rx.recv() => session.on_lock_update(update),
            // A configuration file changed.
            Some(update) = config_rx.recv() => session.on_config_update(update),
            // Look again soon whether the audit writer caught up.
            // (`select!` builds every branch's future each turn, enabled or not: built
            // in an `async` block, the sleep and its clock read happen only when it
            // runs, not twice per call.)
            () = async { tokio::time::sleep(AUDIT_RECHECK).await }, if gate.audit_behind => {}
        }
        // The rest of the turn: whatever else is already waiting, without waiting.
        if session
            .take_waiting(&mut frames, &mut upstream_rx)
            .is_break()
        {
            break Outcome::ClientLeft;
        }
    };
    // Each open listen is closed with a result before the end (graceful closure).
    session.close_listens();
    // What is already answered still goes out, within a bound.
    session.flush_upstreams();
    let _ = tokio::time::timeout(FINAL_FLUSH, async {
        while !session.out.is_empty() {
            if session.push_out(&sink).is_err() || sink.ready().await.is_err() {
                break;
            }
        }
    })
    .await;
    drop(frames);
    session.shutdown().await;
    drop(sink);
    if !writer.is_finished() {
        let _ = writer.await;
    }
    outcome
}

/// What the loop may read this turn.
struct Gate {
    /// Lines for the client not yet in its writer's queue.
    backlog: usize,
    backlog_bytes: usize,
    /// The audit writer is far behind (a flood): new client messages wait for it.
    audit_behind: bool,
}

impl Gate {
    /// A client that reads slowly holds back what the upstreams send (they block on
    /// their own pipes), but its own requests and cancellations still flow until its
    /// unread answers pile up too (FAULTS 23).
    fn upstream_paused(&self) -> bool {
        self.backlog >= UPSTREAM_BACKLOG || self.backlog_bytes >= UPSTREAM_BACKLOG_BYTES
    }

    fn client_open(&self) -> bool {
        self.backlog < CLIENT_BACKLOG && !self.audit_behind
    }
}

impl Session {
    /// What the loop may read now.
    fn gate(&self) -> Gate {
        Gate {
            backlog: self.out.len(),
            backlog_bytes: self.out.iter().map(Bytes::len).sum(),
            audit_behind: self
                .audit
                .as_ref()
                .is_some_and(|a| a.backlog() > crate::audit::MAX_BACKLOG),
        }
    }

    /// Writes the requests this turn pushed for each server, one write per server.
    fn flush_upstreams(&mut self) {
        for index in self.unflushed.drain(..) {
            if let Some(up) = self.slots.get_mut(index).and_then(|s| s.upstream.as_mut()) {
                up.flush();
            }
        }
    }

    /// Moves what is ready for the client towards stdout without waiting (written
    /// directly, or queued for its writer); what does not fit stays in the backlog.
    fn push_out(&mut self, sink: &LineSink) -> Result<(), Closed> {
        sink.send_from(&mut self.out)
    }

    /// Handles the events already waiting, up to [`TURN`], so a burst is answered in
    /// one write; `Break` when the client has left.
    fn take_waiting<R>(
        &mut self,
        frames: &mut FramedRead<R, LineCodec>,
        upstream_rx: &mut mpsc::Receiver<UpstreamEvent>,
    ) -> std::ops::ControlFlow<()>
    where
        R: AsyncRead + Unpin,
    {
        for _ in 0..TURN {
            let gate = self.gate();
            if !gate.upstream_paused() {
                // Lines already read from a server's pipe, then the other events.
                if let Some((instance, line)) = self.stdouts.buffered() {
                    self.on_stdout_line(instance, line);
                    continue;
                }
                if let Ok(event) = upstream_rx.try_recv() {
                    self.on_upstream_event(event);
                    continue;
                }
            }
            // Only lines already read: asking the pipe again when the last read
            // emptied it costs more than the next turn's wait.
            if !gate.client_open() || frames.read_buffer().is_empty() {
                break;
            }
            match frames.next().now_or_never() {
                Some(Some(Ok(line))) => self.on_client_line(line),
                Some(Some(Err(_)) | None) => return std::ops::ControlFlow::Break(()),
                None => break,
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    async fn shutdown(mut self) {
        for slot in &mut self.slots {
            if let Some(up) = slot.upstream.take() {
                self.stopping.spawn(up.shutdown());
            }
        }
        // Their stdout is still read (and dropped) while they stop: a server that
        // writes on its way out gets no broken pipe, and its supervisor no wait.
        let stdouts = std::mem::take(&mut self.stdouts);
        let stopped = async { while self.stopping.join_next().await.is_some() {} };
        let mut stopped = std::pin::pin!(stopped);
        tokio::select! {
            () = &mut stopped => return,
            () = stdouts.discard() => {}
        }
        stopped.await;
    }

    // ----- timers -----------------------------------------------------------------

    fn on_timer(&mut self, timer: &Timer) {
        match *timer {
            Timer::Request {
                slot: index,
                instance,
                id,
            } => {
                let Some(slot) = self.slots.get_mut(index) else {
                    return;
                };
                if slot.upstream.as_ref().map(|u| u.instance) != Some(instance) {
                    return;
                }
                match slot.pending.remove(&id) {
                    Some(Pending::Client(call)) => {
                        let origin = call.origin;
                        let name = slot.config.name.clone();
                        let after = slot.config.request_timeout;
                        self.inflight.remove(&origin.id);
                        let cancel = wire::notification(
                            "notifications/cancelled",
                            Some(
                                serde_json::json!({"requestId": id, "reason": "timed out in mcp-warden"}),
                            ),
                        );
                        self.send_upstream_raw(index, cancel);
                        let text = format!(
                            "server `{name}` did not answer within {}",
                            crate::upstream::timeout_text(after)
                        );
                        self.reply_error(&origin, ErrorCode::Timeout, &text);
                    }
                    Some(Pending::Cancelled { .. }) | None => {}
                    Some(other) => {
                        slot.pending.insert(id, other);
                    }
                }
            }
            Timer::Startup { slot, instance, id } => self.on_startup_timer(slot, instance, id),
            Timer::Restart { slot, instance } => self.on_restart_timer(slot, instance),
            Timer::Task(ref task) => self.on_task_timer(task),
            Timer::StartupWait => {
                // Servers still starting no longer hold up the client: they join later,
                // announced with `list_changed`.
                for slot in &mut self.slots {
                    if !slot.is_settled() {
                        tracing::warn!(server = %slot.config.name, "still starting after {STARTUP_WAIT:?}; the client goes on without it for now");
                    }
                    slot.blocking = false;
                }
                self.after_state_change();
            }
        }
    }

    // ----- progress of the whole session ------------------------------------------

    fn is_settled(&self) -> bool {
        self.slots.iter().all(Slot::is_settled)
    }

    /// Called after anything that may complete the handshake or a listing.
    fn after_state_change(&mut self) {
        let handshakes_done = self
            .slots
            .iter()
            .all(|s| !s.blocking || !s.state.is_starting());
        if handshakes_done && let Some(origin) = self.client.initialize.take() {
            let instructions = self.merged_instructions();
            let capabilities = self.merged_capabilities();
            let result = wire::initialize_result(
                self.client.version,
                &capabilities,
                instructions.as_deref(),
            );
            self.reply_result(&origin, &result);
        }
        if !self.is_settled() {
            return;
        }
        if let Some(settled) = self.config.settled.take() {
            settled.notify_one();
        }
        for kind in ListKind::ALL {
            self.rebuild_catalog(kind);
            // A client that never listed has nothing stale to be told about.
            let i = kind.index();
            if std::mem::take(&mut self.announce[i]) {
                if self.client.initialized && self.client_listed[i] {
                    self.out
                        .push_back(wire::notification(kind.changed_notification(), None));
                }
                self.tell_listens(kind);
            }
        }
        // Requests that waited for the catalogs, in the order they came.
        for Deferred { msg, origin } in std::mem::take(&mut self.deferred) {
            if let Some(method) = msg.method().map(str::to_owned) {
                self.on_client_request(msg, origin, &method);
            }
        }
    }

    /// What mcp-warden offers: always tools (with `listChanged`) and logging; resources,
    /// prompts and completions when a ready upstream offers them.
    fn merged_capabilities(&self) -> Value {
        let offered = |cap: &'static str| {
            self.slots.iter().filter_map(move |s| match &s.state {
                SlotState::Ready { capabilities, .. } => capabilities.get(cap),
                _ => None,
            })
        };
        let mut caps = serde_json::json!({"tools": {"listChanged": true}, "logging": {}});
        if offered("resources").next().is_some() {
            let subscribe =
                offered("resources").any(|r| r.get("subscribe") == Some(&Value::Bool(true)));
            caps["resources"] = serde_json::json!({"subscribe": subscribe, "listChanged": true});
        }
        if offered("prompts").next().is_some() {
            caps["prompts"] = serde_json::json!({"listChanged": true});
        }
        if offered("completions").next().is_some() {
            caps["completions"] = serde_json::json!({});
        }
        // A modern server's extension is offered as 2025 tasks too: mcp-warden polls
        // it for the legacy client (`tasks_poll.rs`).
        let tasks = crate::era::tasks::legacy_capability(offered("tasks")).or_else(|| {
            self.offers_tasks_extension()
                .then(|| serde_json::from_str(crate::era::tasks::LEGACY_CAPABILITY).ok())
                .flatten()
        });
        if let Some(tasks) = tasks {
            caps["tasks"] = tasks;
        }
        caps
    }

    /// Every ready server's instructions, except those pinning holds (changed, new in
    /// `strict`, or flagged): they reach the model as surely as a tool description.
    fn merged_instructions(&mut self) -> Option<String> {
        let pins = &mut self.pins;
        let parts: Vec<String> = self
            .slots
            .iter()
            .filter_map(|s| match &s.state {
                SlotState::Ready {
                    instructions: Some(text),
                    ..
                } if !text.trim().is_empty()
                    && pins
                        .judge_server(&s.config, Some(text))
                        .shows_instructions() =>
                {
                    Some(format!("## Server `{}`\n{}", s.config.name, text.trim()))
                }
                _ => None,
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("\n\n"))
    }

    fn rebuild_catalog(&mut self, kind: ListKind) {
        let i = kind.index();
        let refused = self.judge_listings(kind);
        let listed = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, s)| match &s.lists[i] {
                ListState::Listed(items)
                | ListState::Listing {
                    previous: items, ..
                } if matches!(s.state, SlotState::Ready { .. }) => {
                    Some((slot, &s.config.name, items.as_slice()))
                }
                _ => None,
            });
        let (catalog, collisions) = Catalog::build(kind, listed, |slot, item| {
            !refused.contains(&(slot, item.exposed.clone()))
                && !self.policy_hides(kind, &item.exposed)
        });
        let changed = catalog.listing() != self.catalogs[i].listing();
        self.catalogs[i] = catalog;
        self.pins.flush_writes();
        self.report_pins();
        if changed {
            self.announce[i] = true;
        }
        // Said once per change, not on every rebuild.
        if collisions == self.collisions[i] {
            return;
        }
        for c in &collisions {
            tracing::error!("{c}");
            if self.client.initialized {
                self.out
                    .push_back(wire::log_message("error", &c.to_string()));
            } else {
                self.notices.push(c.to_string());
            }
        }
        self.collisions[i] = collisions;
    }

    // ----- answering the client ---------------------------------------------------

    /// Every answer to a client request goes out here: the client edge of the era
    /// adapter ([`crate::era::meta::for_client`]) gives a modern request's result its
    /// `resultType` and maps error codes to the request's era.
    fn reply(&mut self, origin: &Origin, line: Bytes) {
        let line = crate::era::meta::for_client(line, origin.is_modern());
        self.answer_batch_part(origin, Some(line));
    }

    /// Counts a request that will never be answered (cancelled) towards its batch.
    fn reply_none(&mut self, origin: &Origin) {
        if origin.batch.is_some() {
            self.answer_batch_part(origin, None);
        }
    }

    fn answer_batch_part(&mut self, origin: &Origin, line: Option<Bytes>) {
        let Some(batch_id) = origin.batch else {
            self.out.extend(line);
            return;
        };
        let Some(batch) = self.batches.get_mut(&batch_id) else {
            return;
        };
        let done = batch.answer(line);
        if batch.is_done() {
            self.batches.remove(&batch_id);
        }
        self.out.extend(done);
    }

    fn reply_result(&mut self, origin: &Origin, result: &str) {
        self.reply(
            origin,
            crate::jsonrpc::error::result_response(&origin.id, result),
        );
    }

    fn reply_error(&mut self, origin: &Origin, code: ErrorCode, text: &str) {
        self.reply(origin, error_response(Some(&origin.id), code, text, None));
    }

    /// A merged list passes the chain like any other answer to the client.
    fn reply_listing(&mut self, origin: &Origin, kind: ListKind) {
        self.refresh_expired(kind);
        self.client_listed[kind.index()] = true;
        self.audit_listing(kind);
        let listing = crate::era::meta::with_cache_hints(
            &self.listing_for(origin, kind),
            self.list_ttl(kind),
        );
        let line = crate::jsonrpc::error::result_response(&origin.id, &listing);
        self.reply_checked(origin, line, None, kind.method());
    }

    /// Replies with an answer mcp-warden built, after the filter chain has seen it.
    fn reply_checked(
        &mut self,
        origin: &Origin,
        line: Bytes,
        server: Option<&ServerName>,
        method: &str,
    ) {
        let Some(msg) = reparse(&line) else {
            return self.reply_error(
                origin,
                ErrorCode::Internal,
                "an answer mcp-warden built is not valid JSON",
            );
        };
        let mut view = View::of(Direction::ToClient, &msg).answering(method);
        view.server = server;
        match self.chain.inspect(&view, &msg) {
            Verdict::Rewrite(line) => self.reply(origin, line),
            Verdict::Stop(stop) => {
                let subject = audit::Subject {
                    server: server.map(ServerName::as_str),
                    method,
                    ..audit::Subject::default()
                };
                let to = answer::Asker::Client(origin);
                self.answer_stopped(&view, to, &subject, &stop);
            }
            Verdict::Pass | Verdict::Mark(_) | Verdict::Ask(_) => self.reply(origin, line),
        }
    }
}
