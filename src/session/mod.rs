//! One client session: the actor that owns every piece of per-session state (the
//! upstream slots, the in-flight tables that remap ids, the merged tool table) and
//! routes each message.
//!
//! # Ids
//! Upstreams all number their requests from 0 or 1, and so does the client, so ids are
//! remapped both ways. Each upstream slot mints its own increasing integers for every
//! request sent to it and keeps `our id → where the answer goes`; the client's id is
//! kept as the exact JSON text it arrived as and spliced back into the answer. Requests
//! an upstream sends to the client get ids from one session-wide counter, mapped back
//! the same way. Nothing is ever split out of an id string, so no name can smuggle a
//! delimiter into routing.
//!
//! # Order of events
//! The client's `initialize` starts the upstream handshakes (the servers were spawned
//! at start-up, so their start-up time overlaps the client's). The answer goes out when
//! every upstream is initialized or has failed. Each ready upstream's tools are then
//! listed and merged; a `tools/list` or `tools/call` that arrives while a listing is
//! under way waits for it rather than seeing a half-built table.

mod tools;
pub mod wire;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::time::{DelayQueue, delay_queue};

use crate::config::{Effective, ServerConfig};
use crate::downstream::{self, ClientEvent};
use crate::filter::{Block, Chain, Context, Direction, Verdict};
use crate::jsonrpc::message::{Parsed, span_in};
use crate::jsonrpc::{ErrorCode, Id, Kind, Line, Message, error_response, parse};
use crate::upstream::{self, InstanceId, SendError, Upstream, UpstreamEvent};
use tools::{MAX_PAGES, MAX_TOOLS_PER_SERVER, Page, Tool, ToolTable};

/// Lines from all upstreams not yet taken by the session.
const UPSTREAM_QUEUE: usize = 1024;
/// Log the first few non-JSON lines of a server's stdout, then only every this many.
const NOISE_LOG_EVERY: u64 = 1000;

/// What the session needs to start.
#[derive(Debug)]
pub struct SessionConfig {
    pub effective: Effective,
    /// Where per-server private directories live (the data dir).
    pub state_dir: PathBuf,
    /// Reloads the configuration for another workspace (roots discovery); `None`
    /// when the workspace was fixed with `--workspace`.
    pub reload: Option<Reload>,
    /// Warnings to give the client as logging notifications once it is initialized.
    pub notices: Vec<String>,
    /// The largest line accepted from the client.
    pub max_line: usize,
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

/// Where an answer to the client goes: its id, and the batch it belongs to.
#[derive(Debug, Clone)]
struct Origin {
    id: Id,
    batch: Option<u64>,
}

/// What an id we sent to an upstream stands for.
#[derive(Debug)]
enum Pending {
    /// Our `initialize`.
    Init,
    /// One page of our own `tools/list`.
    ListTools,
    /// Our own request whose answer nobody needs (e.g. `logging/setLevel` fan-out).
    Internal,
    /// A client request; the answer goes back to `origin`.
    Client {
        origin: Origin,
        method: Box<str>,
        tool: Option<String>,
        timer: delay_queue::Key,
    },
    /// A client request the client cancelled: a late answer is dropped silently.
    Cancelled { timer: delay_queue::Key },
}

#[derive(Debug)]
enum SlotState {
    /// Spawned; waiting for the client's `initialize` to start the handshake.
    Spawned,
    /// Our `initialize` is in flight.
    Initializing,
    Ready {
        instructions: Option<String>,
        has_tools: bool,
    },
    Failed(String),
}

#[derive(Debug)]
enum ToolsState {
    /// Not listed (yet, or the server has no tools).
    None,
    /// A listing is under way; `again` when a `list_changed` arrived meanwhile.
    Listing {
        acc: Vec<Tool>,
        pages: u32,
        again: bool,
    },
    Listed(Vec<Tool>),
}

#[derive(Debug)]
struct Slot {
    config: ServerConfig,
    upstream: Option<Upstream>,
    state: SlotState,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    tools: ToolsState,
    noise: u64,
}

impl Slot {
    fn is_settled(&self) -> bool {
        !matches!(self.state, SlotState::Spawned | SlotState::Initializing)
            && !matches!(self.tools, ToolsState::Listing { .. })
    }

    fn mint(&mut self, pending: Pending) -> u64 {
        self.next_id += 1;
        self.pending.insert(self.next_id, pending);
        self.next_id
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
    /// An upstream's `initialize` ran out of time.
    Init { slot: usize, instance: InstanceId },
}

/// A request the client made while the tool table was being built.
#[derive(Debug)]
struct Deferred {
    msg: Message,
    origin: Origin,
}

/// Answers collected for one client batch.
#[derive(Debug)]
struct Batch {
    remaining: usize,
    parts: Vec<Bytes>,
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
    },
}

#[derive(Debug, Default)]
struct ClientState {
    /// `initialize` arrived; upstream handshakes may start.
    started: bool,
    /// The `initialize` request still to be answered.
    initialize: Option<Origin>,
    /// `notifications/initialized` arrived: notifications may flow to the client.
    initialized: bool,
    version: &'static str,
    capabilities: Value,
    info: Value,
}

struct Session {
    out: Vec<Bytes>,
    upstream_tx: mpsc::Sender<UpstreamEvent>,
    slots: Vec<Slot>,
    instances: HashMap<InstanceId, usize>,
    next_instance: InstanceId,
    client: ClientState,
    /// Client requests in flight: client id → (slot, our id). Also refuses a reused id.
    inflight: HashMap<Id, (usize, u64)>,
    reverse: HashMap<u64, Reverse>,
    next_reverse: u64,
    table: ToolTable,
    tool_list_waiters: Vec<Origin>,
    deferred: Vec<Deferred>,
    timers: DelayQueue<Timer>,
    chain: Chain,
    batches: HashMap<u64, Batch>,
    next_batch: u64,
    notices: Vec<String>,
    config: SessionConfig,
    workspace_root: Option<PathBuf>,
    stopping: JoinSet<()>,
    /// A list change is to be announced once the current listings finish.
    announce_tools: bool,
    /// The collisions last reported.
    collisions: Vec<tools::Collision>,
    /// The client has been sent a tool list (so changes are worth announcing).
    client_listed: bool,
}

/// Runs one session over the client's `input` and `output` until the client leaves
/// or `stop` completes; either way every upstream is stopped before it returns.
pub async fn run<R, W>(
    mut config: SessionConfig,
    chain: Chain,
    input: R,
    output: W,
    stop: impl Future<Output = ()>,
) -> Outcome
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut stop = std::pin::pin!(stop);
    let (client_tx, mut client_rx) = mpsc::channel(downstream::IN_QUEUE);
    let reader = downstream::start_reader(input, config.max_line, client_tx);
    let (out_tx, writer) = downstream::start_writer(output);
    let (upstream_tx, mut upstream_rx) = mpsc::channel(UPSTREAM_QUEUE);
    let notices = std::mem::take(&mut config.notices);
    let workspace_root = config.effective.workspace.as_ref().map(|w| w.root.clone());
    let mut session = Session {
        out: Vec::new(),
        upstream_tx,
        slots: Vec::new(),
        instances: HashMap::new(),
        next_instance: 0,
        client: ClientState::default(),
        inflight: HashMap::new(),
        reverse: HashMap::new(),
        next_reverse: 0,
        table: ToolTable::default(),
        tool_list_waiters: Vec::new(),
        deferred: Vec::new(),
        timers: DelayQueue::new(),
        chain,
        batches: HashMap::new(),
        next_batch: 0,
        notices,
        config,
        workspace_root,
        stopping: JoinSet::new(),
        announce_tools: false,
        collisions: Vec::new(),
        client_listed: false,
    };
    let servers = session.config.effective.servers.clone();
    session.start_servers(servers);

    let outcome = loop {
        tokio::select! {
            biased;
            // A signal: stop like a client that left.
            () = &mut stop => break Outcome::Stopped,
            // The client: requests, answers and notifications; its EOF ends the session.
            event = client_rx.recv() => match event {
                Some(ClientEvent::Line(line)) => session.on_client_line(line),
                Some(ClientEvent::Closed) | None => break Outcome::ClientLeft,
            },
            // Every upstream's stdout lines and exits, tagged with the instance.
            Some(event) = upstream_rx.recv() => session.on_upstream_event(event),
            // Request and handshake deadlines.
            Some(expired) = session.timers.next() => session.on_timer(expired.get_ref()),
        }
        if !session.flush(&out_tx).await {
            break Outcome::ClientLeft;
        }
    };
    reader.abort();
    session.shutdown().await;
    drop(out_tx);
    let _ = writer.await;
    outcome
}

impl Session {
    /// Sends what the last event produced for the client; `false` when stdout is gone.
    async fn flush(&mut self, out: &mpsc::Sender<Bytes>) -> bool {
        for line in self.out.drain(..) {
            if out.send(line).await.is_err() {
                return false;
            }
        }
        true
    }

    async fn shutdown(mut self) {
        for slot in &mut self.slots {
            if let Some(up) = slot.upstream.take() {
                self.stopping.spawn(up.shutdown());
            }
        }
        while self.stopping.join_next().await.is_some() {}
    }

    // ----- upstream set -----------------------------------------------------------

    fn start_servers(&mut self, servers: Vec<ServerConfig>) {
        let default_cwd = self.workspace_root.clone();
        for config in servers {
            let instance = self.next_instance;
            self.next_instance += 1;
            let index = self.slots.len();
            let spawned = upstream::spawn(
                &config,
                &self.config.state_dir,
                default_cwd.as_deref(),
                instance,
                self.upstream_tx.clone(),
            );
            let (upstream, state) = match spawned {
                Ok(up) => {
                    self.instances.insert(instance, index);
                    (Some(up), SlotState::Spawned)
                }
                Err(e) => {
                    tracing::error!(server = %config.name, error = %e, "upstream failed to start");
                    crate::output::diag(&format!("mcp-warden: {e}"));
                    self.notices.push(e.to_string());
                    (None, SlotState::Failed(e.to_string()))
                }
            };
            self.slots.push(Slot {
                config,
                upstream,
                state,
                pending: HashMap::new(),
                next_id: 0,
                tools: ToolsState::None,
                noise: 0,
            });
            if self.client.started {
                self.begin_handshake(index);
            }
        }
    }

    /// Stops every upstream and fails what is in flight (a workspace switch).
    fn stop_all_servers(&mut self, why: &str) {
        for index in 0..self.slots.len() {
            self.fail_slot(index, why);
            if let Some(up) = self.slots[index].upstream.take() {
                self.instances.remove(&up.instance);
                self.stopping.spawn(up.shutdown());
            }
        }
        self.slots.clear();
        self.rebuild_table();
    }

    fn begin_handshake(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        if !matches!(slot.state, SlotState::Spawned) {
            return;
        }
        let Some(instance) = slot.upstream.as_ref().map(|u| u.instance) else {
            return;
        };
        let id = slot.mint(Pending::Init);
        let line = wire::upstream_initialize(
            id,
            self.client.version,
            &self.client.capabilities,
            &self.client.info,
        );
        slot.state = SlotState::Initializing;
        let timeout = slot.config.request_timeout;
        self.timers.insert(
            Timer::Init {
                slot: index,
                instance,
            },
            timeout,
        );
        self.send_upstream_raw(index, line);
    }

    /// Marks a slot failed: every request waiting on it gets -32004 naming the server.
    fn fail_slot(&mut self, index: usize, why: &str) {
        let slot = &mut self.slots[index];
        let name = slot.config.name.clone();
        let had_tools = matches!(&slot.tools, ToolsState::Listed(t) if !t.is_empty());
        slot.state = SlotState::Failed(why.to_owned());
        slot.tools = ToolsState::None;
        let pending: Vec<Pending> = slot.pending.drain().map(|(_, p)| p).collect();
        for p in pending {
            match p {
                Pending::Client { origin, timer, .. } => {
                    self.timers.remove(&timer);
                    self.inflight.remove(&origin.id);
                    let msg = format!("server `{name}` is unavailable: {why}");
                    self.reply(
                        &origin,
                        error_response(Some(&origin.id), ErrorCode::Unavailable, &msg, None),
                    );
                }
                Pending::Cancelled { timer } => {
                    self.timers.remove(&timer);
                }
                Pending::Init | Pending::ListTools | Pending::Internal => {}
            }
        }
        self.reverse
            .retain(|_, r| !matches!(r, Reverse::Forwarded { slot, .. } if *slot == index));
        if had_tools {
            self.announce_tools = true;
        }
        self.after_state_change();
    }

    // ----- client side ------------------------------------------------------------

    fn on_client_line(&mut self, line: Line) {
        let bytes = match line {
            Line::Frame(bytes) => bytes,
            Line::Overlong { skipped } => {
                let msg = format!(
                    "message of {skipped} bytes exceeds the limit of {} bytes",
                    self.config.max_line
                );
                self.out
                    .push(error_response(None, ErrorCode::InvalidRequest, &msg, None));
                return;
            }
        };
        match parse(bytes) {
            Ok(Parsed::Single(msg)) => self.on_client_message(msg, None),
            Ok(Parsed::Batch(items)) => self.on_client_batch(items),
            Err(e) => self
                .out
                .push(error_response(e.id.as_ref(), e.code, &e.reason, None)),
        }
    }

    fn on_client_batch(&mut self, items: Vec<Result<Message, crate::jsonrpc::ParseError>>) {
        if self.client.version != wire::BATCH_VERSION {
            let msg = "batches are only allowed with protocol version 2025-03-26";
            self.out
                .push(error_response(None, ErrorCode::InvalidRequest, msg, None));
            return;
        }
        let answers = items
            .iter()
            .filter(|item| {
                item.as_ref()
                    .map_or(true, |m| matches!(m.kind(), Kind::Request { .. }))
            })
            .count();
        if answers == 0 {
            for msg in items.into_iter().flatten() {
                self.on_client_message(msg, None);
            }
            return;
        }
        self.next_batch += 1;
        let batch = self.next_batch;
        self.batches.insert(
            batch,
            Batch {
                remaining: answers,
                parts: Vec::with_capacity(answers),
            },
        );
        for item in items {
            match item {
                Ok(msg) => self.on_client_message(msg, Some(batch)),
                Err(e) => {
                    let origin = Origin {
                        id: e.id.clone().unwrap_or_else(|| Id::number(0)),
                        batch: Some(batch),
                    };
                    self.reply(
                        &origin,
                        error_response(e.id.as_ref(), e.code, &e.reason, None),
                    );
                }
            }
        }
    }

    fn on_client_message(&mut self, msg: Message, batch: Option<u64>) {
        match msg.kind().clone() {
            Kind::Request { id, method } => {
                self.on_client_request(msg, Origin { id, batch }, &method);
            }
            Kind::Notification { method } => self.on_client_notification(&msg, &method),
            Kind::Response { id, .. } => self.on_client_response(&msg, &id),
        }
    }

    fn on_client_request(&mut self, msg: Message, origin: Origin, method: &str) {
        if self.inflight.contains_key(&origin.id) {
            let text = format!("request id {} is already in flight", origin.id);
            return self.reply(
                &origin,
                error_response(Some(&origin.id), ErrorCode::InvalidRequest, &text, None),
            );
        }
        let started = self.client.started;
        match method {
            "initialize" if started => {
                self.reply_error(&origin, ErrorCode::InvalidRequest, "already initialized");
            }
            "initialize" => self.on_initialize(&msg, origin),
            "ping" => self.reply_result(&origin, "{}"),
            _ if !started => {
                self.reply_error(
                    &origin,
                    ErrorCode::InvalidRequest,
                    &format!("`{method}` before `initialize`"),
                );
            }
            "tools/list" => {
                if self.is_settled() {
                    let listing = self.table.listing().to_owned();
                    self.reply_tool_listing(&origin, &listing);
                } else {
                    self.tool_list_waiters.push(origin);
                }
            }
            "tools/call" => {
                if self.is_settled() {
                    self.on_tool_call(msg, origin);
                } else {
                    self.deferred.push(Deferred { msg, origin });
                }
            }
            "logging/setLevel" => {
                self.fan_out_set_level(&msg);
                self.reply_result(&origin, "{}");
            }
            _ => self.reply_error(
                &origin,
                ErrorCode::MethodNotFound,
                &format!("method `{method}` not found"),
            ),
        }
    }

    fn on_initialize(&mut self, msg: &Message, origin: Origin) {
        #[derive(Deserialize)]
        struct Params {
            #[serde(rename = "protocolVersion")]
            version: Option<String>,
            #[serde(default)]
            capabilities: Value,
            #[serde(rename = "clientInfo", default)]
            info: Value,
        }
        let params: Params = match msg.params().map(serde_json::from_str).transpose() {
            Ok(Some(p)) => p,
            Ok(None) | Err(_) => {
                return self.reply_error(
                    &origin,
                    ErrorCode::InvalidParams,
                    "`initialize` needs params",
                );
            }
        };
        self.client.version = wire::negotiate(params.version.as_deref());
        self.client.capabilities = if params.capabilities.is_object() {
            params.capabilities
        } else {
            Value::Object(serde_json::Map::default())
        };
        self.client.info = if params.info.is_object() {
            params.info
        } else {
            serde_json::json!({"name": "unknown-client", "version": "0"})
        };
        self.client.started = true;
        self.client.initialize = Some(origin);
        for index in 0..self.slots.len() {
            self.begin_handshake(index);
        }
        self.after_state_change();
    }

    fn on_client_notification(&mut self, msg: &Message, method: &str) {
        match method {
            "notifications/initialized" => {
                if self.client.initialized {
                    return;
                }
                self.client.initialized = true;
                for notice in std::mem::take(&mut self.notices) {
                    self.out.push(wire::log_message("warning", &notice));
                }
                self.ask_roots();
            }
            "notifications/cancelled" => self.on_client_cancel(msg),
            "notifications/roots/list_changed" => self.ask_roots(),
            _ => tracing::debug!(method, "client notification not forwarded"),
        }
    }

    fn on_client_cancel(&mut self, msg: &Message) {
        #[derive(Deserialize)]
        struct Params<'a> {
            #[serde(rename = "requestId", borrow)]
            request_id: &'a RawValue,
        }
        let Some(params) = msg.params() else { return };
        let Ok(p) = serde_json::from_str::<Params<'_>>(params) else {
            return;
        };
        let Ok(client_id) = Id::from_raw(p.request_id) else {
            return;
        };
        // Unknown or already answered: nothing to cancel (FAULTS 30).
        let Some((index, our_id)) = self.inflight.remove(&client_id) else {
            return;
        };
        let slot = &mut self.slots[index];
        if let Some(Pending::Client { timer, origin, .. }) = slot.pending.remove(&our_id) {
            slot.pending.insert(our_id, Pending::Cancelled { timer });
            // A cancelled request is never answered; its batch must not wait for it.
            self.reply_none(&origin);
        }
        let span = span_in(
            std::str::from_utf8(msg.raw()).unwrap_or_default(),
            p.request_id.get(),
        );
        let line = msg.rewrite(None, &[(span, &our_id.to_string())]);
        self.forward_to_upstream(index, msg, line, None);
    }

    fn on_client_response(&mut self, msg: &Message, id: &Id) {
        let Some(reverse) = id.as_u64().and_then(|n| self.reverse.remove(&n)) else {
            tracing::warn!(id = %id, "client answered an id never issued; dropped");
            return;
        };
        match reverse {
            Reverse::Roots => self.on_roots(msg),
            Reverse::Forwarded {
                slot,
                instance,
                id: upstream_id,
            } => {
                if self
                    .slots
                    .get(slot)
                    .and_then(|s| s.upstream.as_ref())
                    .map(|u| u.instance)
                    != Some(instance)
                {
                    return;
                }
                let line = msg.rewrite(Some(upstream_id.as_str()), &[]);
                self.forward_to_upstream(slot, msg, line, None);
            }
        }
    }

    fn ask_roots(&mut self) {
        let offers_roots = self.client.capabilities.get("roots").is_some();
        if self.config.reload.is_none() || !offers_roots || !self.client.initialized {
            return;
        }
        self.next_reverse += 1;
        self.reverse.insert(self.next_reverse, Reverse::Roots);
        self.out
            .push(wire::request(self.next_reverse, "roots/list", None));
    }

    fn on_roots(&mut self, msg: &Message) {
        #[derive(Deserialize)]
        struct Root {
            uri: String,
        }
        #[derive(Deserialize)]
        struct Roots {
            roots: Vec<Root>,
        }
        let Some(roots) = msg
            .result()
            .and_then(|r| serde_json::from_str::<Roots>(r).ok())
        else {
            return;
        };
        let paths: Vec<PathBuf> = roots
            .roots
            .iter()
            .filter_map(|r| wire::uri_path(&r.uri))
            .collect();
        let Some(reload) = self.config.reload.as_mut() else {
            return;
        };
        let Some(effective) = (reload.0)(paths) else {
            return;
        };
        let new_root = effective.workspace.as_ref().map(|w| w.root.clone());
        if new_root == self.workspace_root {
            return;
        }
        tracing::info!(workspace = ?new_root, "client roots chose another workspace; restarting servers");
        self.stop_all_servers("the workspace changed");
        self.workspace_root = new_root;
        for skipped in &effective.skipped {
            let text = format!(
                "server `{}` not started: {}",
                skipped.server, skipped.reason
            );
            self.out.push(wire::log_message("warning", &text));
        }
        self.announce_tools = true;
        self.config.effective = effective;
        let servers = self.config.effective.servers.clone();
        self.start_servers(servers);
        self.after_state_change();
    }

    fn fan_out_set_level(&mut self, msg: &Message) {
        for index in 0..self.slots.len() {
            if !matches!(self.slots[index].state, SlotState::Ready { .. }) {
                continue;
            }
            let id = self.slots[index].mint(Pending::Internal);
            let line = msg.rewrite(Some(&id.to_string()), &[]);
            self.forward_to_upstream(index, msg, line, None);
        }
    }

    fn on_tool_call(&mut self, msg: Message, origin: Origin) {
        #[derive(Deserialize)]
        struct Params<'a> {
            #[serde(borrow)]
            name: &'a RawValue,
        }
        let Some(params) = msg
            .params()
            .and_then(|p| serde_json::from_str::<Params<'_>>(p).ok())
        else {
            return self.reply_error(
                &origin,
                ErrorCode::InvalidParams,
                "`tools/call` needs a string `name`",
            );
        };
        let Ok(exposed) = serde_json::from_str::<String>(params.name.get()) else {
            return self.reply_error(
                &origin,
                ErrorCode::InvalidParams,
                "`tools/call` needs a string `name`",
            );
        };
        let Some(route) = self.table.route(&exposed).cloned() else {
            return self.reply_error(
                &origin,
                ErrorCode::InvalidParams,
                &format!("unknown tool `{exposed}`"),
            );
        };
        let ctx_server = self.slots[route.slot].config.name.clone();
        let ctx = Context {
            direction: Direction::ToUpstream,
            server: Some(&ctx_server),
            tool: Some(&exposed),
            request_method: None,
        };
        let verdict = self.chain.inspect(&ctx, &msg);
        let msg = match verdict {
            Verdict::Allow => msg,
            Verdict::Block(block) => return self.reply_blocked_tool(&origin, "deny", &block),
            Verdict::Rewrite(line) => match reparse(&line) {
                Some(m) => m,
                None => {
                    return self.reply_error(
                        &origin,
                        ErrorCode::Internal,
                        "a filter produced an invalid message",
                    );
                }
            },
        };
        let text = std::str::from_utf8(msg.raw()).unwrap_or_default();
        let Some(name_raw) = msg
            .params()
            .and_then(|p| serde_json::from_str::<Params<'_>>(p).ok())
            .map(|p| p.name)
        else {
            return self.reply_error(
                &origin,
                ErrorCode::InvalidParams,
                "`tools/call` needs a string `name`",
            );
        };
        let name_span = span_in(text, name_raw.get());
        let upstream_name = serde_json::to_string(&route.name).unwrap_or_default();
        self.send_client_request(
            route.slot,
            &msg,
            origin,
            "tools/call",
            Some(exposed),
            &[(name_span, &upstream_name)],
        );
    }

    /// Forwards a client request to an upstream under a fresh id, with a deadline.
    fn send_client_request(
        &mut self,
        index: usize,
        msg: &Message,
        origin: Origin,
        method: &str,
        tool: Option<String>,
        edits: &[(std::ops::Range<usize>, &str)],
    ) {
        let slot = &mut self.slots[index];
        let name = slot.config.name.clone();
        let (Some(instance), SlotState::Ready { .. }) =
            (slot.upstream.as_ref().map(|u| u.instance), &slot.state)
        else {
            let why = match &slot.state {
                SlotState::Failed(why) => why.clone(),
                _ => "not started".to_owned(),
            };
            return self.reply_error(
                &origin,
                ErrorCode::Unavailable,
                &format!("server `{name}` is unavailable: {why}"),
            );
        };
        let timeout = slot.config.request_timeout;
        slot.next_id += 1;
        let id = slot.next_id;
        let timer = self.timers.insert(
            Timer::Request {
                slot: index,
                instance,
                id,
            },
            timeout,
        );
        let line = msg.rewrite(Some(&id.to_string()), edits);
        let slot = &mut self.slots[index];
        let sent = slot
            .upstream
            .as_ref()
            .map_or(Err(SendError::Closed), |u| u.send(line));
        match sent {
            Ok(()) => {
                slot.pending.insert(
                    id,
                    Pending::Client {
                        origin: origin.clone(),
                        method: method.into(),
                        tool,
                        timer,
                    },
                );
                self.inflight.insert(origin.id, (index, id));
            }
            Err(e) => {
                self.timers.remove(&timer);
                let (code, why) = match e {
                    SendError::Full => (
                        ErrorCode::Busy,
                        format!("server `{name}` is busy: too many requests in flight"),
                    ),
                    SendError::Closed => (
                        ErrorCode::Unavailable,
                        format!("server `{name}` is unavailable"),
                    ),
                };
                self.reply_error(&origin, code, &why);
            }
        }
    }

    // ----- upstream side ----------------------------------------------------------

    fn on_upstream_event(&mut self, event: UpstreamEvent) {
        match event {
            UpstreamEvent::Line(instance, line) => {
                let Some(&index) = self.instances.get(&instance) else {
                    return;
                };
                match line {
                    Line::Frame(bytes) => match parse(bytes) {
                        Ok(Parsed::Single(msg)) => self.on_upstream_message(index, &msg),
                        Ok(Parsed::Batch(_)) => {
                            self.noise(index, "a batch (servers may not send batches)");
                        }
                        Err(e) => self.noise(index, &e.reason),
                    },
                    Line::Overlong { skipped } => {
                        let name = &self.slots[index].config.name;
                        tracing::warn!(server = %name, skipped, "dropped an overlong line from the server");
                    }
                }
            }
            UpstreamEvent::Exited {
                instance,
                status,
                stderr_tail,
            } => {
                let Some(index) = self.instances.remove(&instance) else {
                    return;
                };
                let name = self.slots[index].config.name.clone();
                self.slots[index].upstream = None;
                let mut why = format!("exited ({status})");
                if let Some(last) = stderr_tail.last() {
                    why = format!("{why}; last stderr line: {last}");
                }
                tracing::error!(server = %name, %why, "upstream exited");
                if self.client.initialized {
                    self.out.push(wire::log_message(
                        "error",
                        &format!("server `{name}` {why}"),
                    ));
                }
                self.fail_slot(index, &why);
            }
        }
    }

    /// A line on a server's stdout that is not a JSON-RPC message: log text printed to
    /// the wrong stream, usually. Dropped, never forwarded; logged at a bounded rate.
    fn noise(&mut self, index: usize, why: &str) {
        let slot = &mut self.slots[index];
        slot.noise += 1;
        if slot.noise <= 10 || slot.noise.is_multiple_of(NOISE_LOG_EVERY) {
            tracing::warn!(server = %slot.config.name, count = slot.noise, why, "dropped a non-JSON-RPC line from the server's stdout");
        }
    }

    fn on_upstream_message(&mut self, index: usize, msg: &Message) {
        match msg.kind().clone() {
            Kind::Response { id, .. } => self.on_upstream_response(index, msg, &id),
            Kind::Request { id, method } => self.on_upstream_request(index, msg, id, &method),
            Kind::Notification { method } => self.on_upstream_notification(index, msg, &method),
        }
    }

    fn on_upstream_response(&mut self, index: usize, msg: &Message, id: &Id) {
        let slot = &mut self.slots[index];
        let Some(pending) = id.as_u64().and_then(|n| slot.pending.remove(&n)) else {
            tracing::warn!(server = %slot.config.name, id = %id, "answer to an id never issued (or answered twice); dropped");
            return;
        };
        match pending {
            Pending::Init => self.on_upstream_initialized(index, msg),
            Pending::ListTools => self.on_tools_page(index, msg),
            Pending::Internal => {}
            Pending::Cancelled { timer } => {
                self.timers.remove(&timer);
            }
            Pending::Client {
                origin,
                method,
                tool,
                timer,
            } => {
                self.timers.remove(&timer);
                self.inflight.remove(&origin.id);
                let server = self.slots[index].config.name.clone();
                let ctx = Context {
                    direction: Direction::ToClient,
                    server: Some(&server),
                    tool: tool.as_deref(),
                    request_method: Some(&method),
                };
                match self.chain.inspect(&ctx, msg) {
                    Verdict::Allow => {
                        self.reply(&origin, msg.rewrite(Some(origin.id.as_str()), &[]));
                    }
                    Verdict::Rewrite(line) => match reparse(&line) {
                        Some(m) => self.reply(&origin, m.rewrite(Some(origin.id.as_str()), &[])),
                        None => self.reply_error(
                            &origin,
                            ErrorCode::Internal,
                            "a filter produced an invalid message",
                        ),
                    },
                    Verdict::Block(block) if &*method == "tools/call" => {
                        self.reply_blocked_tool(&origin, "deny", &block);
                    }
                    Verdict::Block(block) => self.reply_blocked(&origin, "deny", &block),
                }
            }
        }
    }

    fn on_upstream_initialized(&mut self, index: usize, msg: &Message) {
        #[derive(Deserialize)]
        struct InitResult {
            #[serde(default)]
            capabilities: Value,
            instructions: Option<String>,
        }
        let slot = &mut self.slots[index];
        let instance = slot.upstream.as_ref().map(|u| u.instance);
        let parsed = msg
            .result()
            .and_then(|r| serde_json::from_str::<InitResult>(r).ok());
        let Some(result) = parsed else {
            let why = if matches!(msg.kind(), Kind::Response { is_error: true, .. }) {
                format!("initialize failed: {}", String::from_utf8_lossy(msg.raw()))
            } else {
                "initialize answer has no valid result".to_owned()
            };
            tracing::error!(server = %slot.config.name, %why, "upstream handshake failed");
            self.fail_slot(index, &why);
            return;
        };
        let has_tools = result.capabilities.get("tools").is_some();
        slot.state = SlotState::Ready {
            instructions: result.instructions,
            has_tools,
        };
        tracing::info!(server = %slot.config.name, ?instance, "upstream initialized");
        self.send_upstream_raw(index, wire::notification("notifications/initialized", None));
        if has_tools {
            self.list_tools(index, None);
        }
        self.after_state_change();
    }

    /// Starts (or continues, with `cursor`) listing a slot's tools.
    fn list_tools(&mut self, index: usize, cursor: Option<&str>) {
        let slot = &mut self.slots[index];
        match (&mut slot.tools, cursor) {
            (ToolsState::Listing { again, .. }, None) => {
                *again = true;
                return;
            }
            (_, None) => {
                slot.tools = ToolsState::Listing {
                    acc: Vec::new(),
                    pages: 0,
                    again: false,
                }
            }
            _ => {}
        }
        let id = slot.mint(Pending::ListTools);
        let params = cursor.map(|c| serde_json::json!({ "cursor": c }));
        self.send_upstream_raw(index, wire::request(id, "tools/list", params.as_ref()));
    }

    fn on_tools_page(&mut self, index: usize, msg: &Message) {
        let slot = &mut self.slots[index];
        let name = slot.config.name.clone();
        let page = msg
            .result()
            .and_then(|r| serde_json::from_str::<Page<'_>>(r).ok());
        let ToolsState::Listing { acc, pages, again } = &mut slot.tools else {
            return;
        };
        let Some(page) = page else {
            tracing::error!(server = %name, "tools/list failed or was malformed; the server's tools are not served");
            slot.tools = ToolsState::Listed(Vec::new());
            self.announce_tools = true;
            return self.after_state_change();
        };
        for raw in page.tools {
            if acc.len() >= MAX_TOOLS_PER_SERVER {
                tracing::warn!(server = %name, "more than {MAX_TOOLS_PER_SERVER} tools; the rest are dropped");
                break;
            }
            let Some(tool) = tools::read_tool(&slot.config.namespace, raw) else {
                tracing::warn!(server = %name, "a tool without a string name was dropped");
                continue;
            };
            if tool.is_mapped(&slot.config.namespace) {
                tracing::info!(server = %name, tool = %tool.name, exposed = %tool.exposed, "tool name mapped to a client-valid name");
            }
            acc.push(tool);
        }
        *pages += 1;
        let next = page
            .next_cursor
            .filter(|_| *pages < MAX_PAGES && acc.len() < MAX_TOOLS_PER_SERVER);
        if let Some(cursor) = next {
            return self.list_tools(index, Some(&cursor));
        }
        let again = *again;
        let acc = std::mem::take(acc);
        slot.tools = ToolsState::Listed(acc);
        self.announce_tools = true;
        if again {
            self.list_tools(index, None);
        }
        self.after_state_change();
    }

    fn on_upstream_request(&mut self, index: usize, msg: &Message, id: Id, method: &str) {
        let name = self.slots[index].config.name.clone();
        match method {
            "ping" => self.answer_upstream(index, &id, Ok("{}".to_owned())),
            "roots/list" => {
                let roots = wire::roots_result(self.workspace_root.as_deref());
                self.answer_upstream(index, &id, Ok(roots));
            }
            "sampling/createMessage" => {
                let reason =
                    format!("server `{name}` may not use sampling (`sampling = \"deny\"`)");
                self.refuse_upstream_request(index, &id, "sampling", reason);
            }
            "elicitation/create" if !self.slots[index].config.elicitation => {
                let reason = format!(
                    "server `{name}` may not ask the user questions (`elicitation = \"deny\"`)"
                );
                self.refuse_upstream_request(index, &id, "elicitation", reason);
            }
            "elicitation/create"
                if self.client.initialized
                    && self.client.capabilities.get("elicitation").is_some() =>
            {
                let Some(instance) = self.slots[index].upstream.as_ref().map(|u| u.instance) else {
                    return;
                };
                self.next_reverse += 1;
                let ours = self.next_reverse;
                let server = name.clone();
                let ctx = Context {
                    direction: Direction::ToClient,
                    server: Some(&server),
                    tool: None,
                    request_method: None,
                };
                match self.chain.inspect(&ctx, msg) {
                    Verdict::Block(block) => {
                        self.refuse_upstream_request(index, &id, &block.rule, block.reason);
                    }
                    verdict => {
                        let line = match verdict {
                            Verdict::Rewrite(line) => {
                                reparse(&line).map(|m| m.rewrite(Some(&ours.to_string()), &[]))
                            }
                            _ => Some(msg.rewrite(Some(&ours.to_string()), &[])),
                        };
                        if let Some(line) = line {
                            self.reverse.insert(
                                ours,
                                Reverse::Forwarded {
                                    slot: index,
                                    instance,
                                    id,
                                },
                            );
                            self.out.push(line);
                        }
                    }
                }
            }
            _ => {
                let text = format!("method `{method}` is not available through mcp-warden");
                self.answer_upstream(index, &id, Err((ErrorCode::MethodNotFound, text, None)));
            }
        }
    }

    fn on_upstream_notification(&mut self, index: usize, msg: &Message, method: &str) {
        if !matches!(self.slots[index].state, SlotState::Ready { .. }) {
            tracing::debug!(server = %self.slots[index].config.name, method, "notification before initialize; dropped");
            return;
        }
        match method {
            "notifications/tools/list_changed" => self.list_tools(index, None),
            "notifications/message" | "notifications/progress" if self.client.initialized => {
                let server = self.slots[index].config.name.clone();
                let ctx = Context {
                    direction: Direction::ToClient,
                    server: Some(&server),
                    tool: None,
                    request_method: None,
                };
                match self.chain.inspect(&ctx, msg) {
                    Verdict::Allow => self.out.push(msg.to_line()),
                    Verdict::Rewrite(line) => self.out.push(line),
                    Verdict::Block(block) => {
                        tracing::info!(server = %server, rule = %block.rule, "notification blocked");
                    }
                }
            }
            _ => {
                tracing::debug!(server = %self.slots[index].config.name, method, "notification not forwarded");
            }
        }
    }

    /// Answers a server-to-client request with -32003 and the decision in `data`.
    fn refuse_upstream_request(&mut self, index: usize, id: &Id, rule: &str, reason: String) {
        let block = Block {
            rule: rule.into(),
            reason,
        };
        tracing::info!(server = %self.slots[index].config.name, rule, "server-to-client request refused");
        let data = Some(wire::blocked_data("deny", &block));
        self.answer_upstream(index, id, Err((ErrorCode::Blocked, block.reason, data)));
    }

    fn answer_upstream(
        &mut self,
        index: usize,
        id: &Id,
        answer: Result<String, (ErrorCode, String, Option<Value>)>,
    ) {
        let line = match answer {
            Ok(result) => crate::jsonrpc::error::result_response(id, &result),
            Err((code, text, data)) => error_response(Some(id), code, &text, data),
        };
        self.send_upstream_raw(index, line);
    }

    /// Sends a line mcp-warden wrote itself (not subject to the filter chain).
    fn send_upstream_raw(&mut self, index: usize, line: Bytes) {
        let slot = &self.slots[index];
        if let Some(up) = &slot.upstream
            && let Err(e) = up.send(line)
        {
            tracing::warn!(server = %slot.config.name, ?e, "could not queue a message for the server");
        }
    }

    /// Forwards a message from the client through the chain to an upstream, as `line`.
    fn forward_to_upstream(
        &mut self,
        index: usize,
        original: &Message,
        line: Bytes,
        tool: Option<&str>,
    ) {
        let server = self.slots[index].config.name.clone();
        let ctx = Context {
            direction: Direction::ToUpstream,
            server: Some(&server),
            tool,
            request_method: None,
        };
        match self.chain.inspect(&ctx, original) {
            Verdict::Allow => self.send_upstream_raw(index, line),
            Verdict::Rewrite(_) | Verdict::Block(_) => {
                tracing::info!(server = %server, "a filter stopped a forwarded message");
            }
        }
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
                    Some(Pending::Client { origin, .. }) => {
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
                        let text =
                            format!("server `{name}` did not answer within {}", humantime(after));
                        self.reply_error(&origin, ErrorCode::Timeout, &text);
                    }
                    Some(Pending::Cancelled { .. }) | None => {}
                    Some(other) => {
                        slot.pending.insert(id, other);
                    }
                }
            }
            Timer::Init {
                slot: index,
                instance,
            } => {
                let Some(slot) = self.slots.get(index) else {
                    return;
                };
                let current = slot.upstream.as_ref().map(|u| u.instance) == Some(instance);
                if current && matches!(slot.state, SlotState::Initializing) {
                    let why = format!(
                        "did not answer `initialize` within {}",
                        humantime(slot.config.request_timeout)
                    );
                    tracing::error!(server = %slot.config.name, %why, "upstream handshake timed out");
                    self.fail_slot(index, &why);
                    if let Some(up) = self.slots[index].upstream.take() {
                        self.instances.remove(&up.instance);
                        self.stopping.spawn(up.shutdown());
                    }
                }
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
            .all(|s| !matches!(s.state, SlotState::Spawned | SlotState::Initializing));
        if handshakes_done && let Some(origin) = self.client.initialize.take() {
            let instructions = self.merged_instructions();
            let result = wire::initialize_result(self.client.version, instructions.as_deref());
            self.reply_result(&origin, &result);
        }
        if !self.is_settled() {
            return;
        }
        self.rebuild_table();
        // A client that never listed has nothing stale to be told about.
        if std::mem::take(&mut self.announce_tools) && self.client.initialized && self.client_listed
        {
            self.out
                .push(wire::notification("notifications/tools/list_changed", None));
        }
        for origin in std::mem::take(&mut self.tool_list_waiters) {
            let listing = self.table.listing().to_owned();
            self.reply_tool_listing(&origin, &listing);
        }
        for Deferred { msg, origin } in std::mem::take(&mut self.deferred) {
            self.on_tool_call(msg, origin);
        }
    }

    fn merged_instructions(&self) -> Option<String> {
        let parts: Vec<String> = self
            .slots
            .iter()
            .filter_map(|s| match &s.state {
                SlotState::Ready {
                    instructions: Some(text),
                    ..
                } if !text.trim().is_empty() => {
                    Some(format!("## Server `{}`\n{}", s.config.name, text.trim()))
                }
                _ => None,
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("\n\n"))
    }

    fn rebuild_table(&mut self) {
        let listed = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match &s.tools {
                ToolsState::Listed(tools)
                    if matches!(
                        s.state,
                        SlotState::Ready {
                            has_tools: true,
                            ..
                        }
                    ) =>
                {
                    Some((i, &s.config.name, tools.as_slice()))
                }
                _ => None,
            });
        let (table, collisions) = ToolTable::build(listed);
        // Said once per change, not on every rebuild.
        if collisions == self.collisions {
            self.table = table;
            return;
        }
        self.collisions.clone_from(&collisions);
        for c in &collisions {
            tracing::error!("{c}");
            if self.client.initialized {
                self.out.push(wire::log_message("error", &c.to_string()));
            } else {
                self.notices.push(c.to_string());
            }
        }
        self.table = table;
    }

    // ----- answering the client ---------------------------------------------------

    fn reply(&mut self, origin: &Origin, line: Bytes) {
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
        if let Some(line) = line {
            batch.parts.push(line.slice(..line.len().saturating_sub(1)));
        }
        batch.remaining = batch.remaining.saturating_sub(1);
        if batch.remaining == 0
            && let Some(batch) = self
                .batches
                .remove(&batch_id)
                .filter(|b| !b.parts.is_empty())
        {
            let mut out = Vec::new();
            out.push(b'[');
            for (i, part) in batch.parts.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(part);
            }
            out.extend_from_slice(b"]\n");
            self.out.push(Bytes::from(out));
        }
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

    fn reply_blocked_tool(&mut self, origin: &Origin, decision: &str, block: &Block) {
        self.reply_result(origin, &wire::blocked_tool_result(decision, block));
    }

    fn reply_blocked(&mut self, origin: &Origin, decision: &str, block: &Block) {
        let data = Some(wire::blocked_data(decision, block));
        let text = format!(
            "Blocked by mcp-warden: rule `{}`: {}",
            block.rule, block.reason
        );
        self.reply(
            origin,
            error_response(Some(&origin.id), ErrorCode::Blocked, &text, data),
        );
    }

    /// The merged listing passes the chain like any other answer to the client.
    fn reply_tool_listing(&mut self, origin: &Origin, listing: &str) {
        self.client_listed = true;
        let line = crate::jsonrpc::error::result_response(&origin.id, listing);
        let Some(msg) = reparse(&line) else {
            return self.reply_error(
                origin,
                ErrorCode::Internal,
                "the merged tool list is not valid JSON",
            );
        };
        let ctx = Context {
            direction: Direction::ToClient,
            server: None,
            tool: None,
            request_method: Some("tools/list"),
        };
        match self.chain.inspect(&ctx, &msg) {
            Verdict::Allow => self.reply(origin, line),
            Verdict::Rewrite(line) => self.reply(origin, line),
            Verdict::Block(block) => self.reply_blocked(origin, "deny", &block),
        }
    }
}

/// Parses a complete line (with `\n`) that mcp-warden or a filter produced.
fn reparse(line: &Bytes) -> Option<Message> {
    match parse(line.slice(..line.len().saturating_sub(1))) {
        Ok(Parsed::Single(m)) => Some(m),
        _ => None,
    }
}

fn humantime(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
