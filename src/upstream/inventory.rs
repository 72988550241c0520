//! Taking the inventory of the configured servers, for `pin`, `pins`, `scan` and
//! `doctor`.
//!
//! Those commands have no client: they start each server themselves, initialize it
//! declaring every client capability (so it offers everything it would offer any
//! client), list all its tools, prompts and resource templates, and stop it. What a
//! pin or a scan judges must be what the server sent, so every definition is kept as
//! the raw JSON text of its array element ([`crate::pinning::listed`]). The probe,
//! the handshake and the paged listings are sequenced by the start-up machine
//! ([`super::startup`]), which reads them as `serve` does ([`crate::era::probe`],
//! [`super::handshake`], [`super::listing`]); this module does its I/O: one request
//! at a time, awaited in place.
//!
//! # Decisions
//! - **One server, one outcome.** A server that cannot be started, exits, stays silent
//!   past its `request_timeout`, or fails `initialize` or `tools/list` yields
//!   `Err(reason)`; the other servers are unaffected.
//! - **Prompts and templates are optional.** A server may declare `prompts` or
//!   `resources` and still answer their listing with an error (-32601 is common) or a
//!   malformed page: that kind is then empty and a warning is logged. Silence or an
//!   exit is not an answer, so it fails the server whatever was being listed: an
//!   inventory that only looks complete is worse than none.
//! - **Bounded like the session.** At most [`MAX_PAGES`] pages and [`MAX_ITEMS`]
//!   items per kind (the same [`super::listing`] bounds as `serve`), so a server that
//!   pages forever cannot hold a command up; the rest is dropped with a warning.
//! - **Nothing is left running.** Every started server is shut down (stdin closed,
//!   then SIGTERM, then SIGKILL to its process group) before its outcome is returned.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::startup::{Action, Event, Greeting, Initialize, Mint, Startup};
use crate::config::{ServerConfig, ServerName};
use crate::jsonrpc::error::result_response;
use crate::jsonrpc::message::Parsed;
use crate::jsonrpc::{ErrorCode, Id, Line, error_response, parse, recover_id};
use crate::pinning::listed::{Definition, Inventory, Listing};
use crate::pinning::lock::Kind;
use crate::router::catalog::ListKind;
use crate::router::ids::OurIds;
use crate::session::wire;
use crate::upstream::{self, InstanceId, SendError, SpawnError, Upstream, UpstreamEvent};

pub use super::listing::{MAX_ITEMS, MAX_PAGES};

/// Events one server's tasks may queue before its stdout reader waits for us.
const EVENT_QUEUE: usize = 64;

/// How often [`collect`] tells its watcher where each server is.
pub const PROGRESS_TICK: Duration = Duration::from_millis(250);

/// Where one server's inventory stands, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Started, waiting for its `initialize` answer.
    Starting,
    /// Answering a listing (`tools/list`, …).
    Listing(Kind),
    /// Listed, or failed: nothing more to wait for.
    Finished,
}

/// One server's progress: its phase, since when it has been waiting on it, and how
/// long it may wait in all (its `request_timeout` per request).
#[derive(Debug, Clone)]
pub struct Progress {
    pub server: ServerName,
    pub phase: Phase,
    pub since: Instant,
    pub wait: Duration,
}

/// Every server's progress, shared between the collecting futures (one thread: they
/// run on one task) and the watcher.
type Board = std::cell::RefCell<Vec<Progress>>;

/// Starts every server (in parallel), initializes it, lists all tools, prompts and
/// resource templates, and stops it. Results are in the order of `servers`.
///
/// `workspace_root` is each server's working directory when its config names none,
/// and the one root answered to `roots/list`. `watch` is called every
/// [`PROGRESS_TICK`] while some server is unfinished, with where each stands (a
/// terminal shows which one it waits for; see `cli::inventory`).
pub async fn collect(
    servers: &[ServerConfig],
    spawner: &upstream::Spawner,
    workspace_root: Option<&Path>,
    watch: &mut dyn FnMut(&[Progress]),
) -> Vec<Inventory> {
    let start = Instant::now();
    let board: Board = std::cell::RefCell::new(
        servers
            .iter()
            .map(|c| Progress {
                server: c.name.clone(),
                phase: Phase::Starting,
                since: start,
                wait: c.request_timeout,
            })
            .collect(),
    );
    let each = (0..).zip(servers).map(|(instance, config)| {
        collect_one(Run {
            config,
            spawner,
            workspace_root,
            instance,
            board: &board,
        })
    });
    let all = futures_util::future::join_all(each);
    tokio::pin!(all);
    let mut tick = tokio::time::interval(PROGRESS_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // The inventories: done when every server is.
            done = &mut all => return done,
            // The watcher sees the board between two steps of the servers' futures.
            _ = tick.tick() => watch(&board.borrow()),
        }
    }
}

/// Records that server `index` is now at `phase`.
fn advance(board: &Board, index: usize, phase: Phase) {
    if let Some(p) = board.borrow_mut().get_mut(index) {
        p.phase = phase;
        p.since = Instant::now();
    }
}

/// One server to take the inventory of, and where to report its progress.
#[derive(Clone, Copy)]
struct Run<'a> {
    config: &'a ServerConfig,
    spawner: &'a upstream::Spawner,
    workspace_root: Option<&'a Path>,
    instance: InstanceId,
    board: &'a Board,
}

/// One server, start to stop. Each has its own event channel, so no demultiplexing.
async fn collect_one(run: Run<'_>) -> Inventory {
    let Run {
        config,
        instance,
        board,
        ..
    } = run;
    let index = usize::try_from(instance).unwrap_or(usize::MAX);
    let mut outcome = run_once(run, true).await;
    if matches!(outcome, Err(Lost::ExitedOnProbe)) {
        // As in `serve`: a server that exits on the probe is legacy; once more, asked
        // the legacy way only.
        outcome = run_once(run, false).await;
    }
    let outcome = outcome.map_err(|lost| match lost {
        Lost::ExitedOnProbe => "exited on the `server/discover` probe".to_owned(),
        Lost::Failed(why) => why,
    });
    advance(board, index, Phase::Finished);
    if let Err(why) = &outcome {
        tracing::warn!(server = %config.name, %why, "could not take the server's inventory");
    }
    Inventory {
        server: config.name.clone(),
        outcome,
    }
}

/// Why a run of one server gave no listing.
enum Lost {
    /// Its process exited on our probe: to be started again without it.
    ExitedOnProbe,
    Failed(String),
}

/// One start of a server: probe (when `probe`), handshake, listings, stop.
async fn run_once(run: Run<'_>, probe: bool) -> Result<Listing, Lost> {
    let Run {
        config,
        spawner,
        workspace_root,
        instance,
        board,
    } = run;
    let index = usize::try_from(instance).unwrap_or(usize::MAX);
    let (tx, events) = mpsc::channel(EVENT_QUEUE);
    match upstream::spawn(
        config,
        spawner,
        workspace_root,
        instance,
        tx,
        upstream::StdoutTo::Events,
    ) {
        Err(e) => Err(Lost::Failed(spawn_reason(&e))),
        Ok(upstream) => {
            let mut conn = Connection {
                upstream,
                events,
                timeout: config.request_timeout,
                workspace_root,
                server: &config.name,
                progress: Box::new(move |phase| advance(board, index, phase)),
            };
            let outcome = conn.inventory(probe).await;
            let Connection {
                upstream, events, ..
            } = conn;
            // Dropped first: the supervisor's last event must not wait for a reader.
            drop(events);
            upstream.shutdown().await;
            outcome
        }
    }
}

/// A spawn error without the server's name, which the [`Inventory`] already carries.
fn spawn_reason(e: &SpawnError) -> String {
    match e {
        SpawnError::PrivateDir { path, source, .. } => format!(
            "cannot create its private directory `{}`: {source}",
            path.display()
        ),
        SpawnError::Start {
            command, source, ..
        } => format!("cannot start `{command}`: {source}"),
        SpawnError::Sandbox { source, .. } => format!("sandbox: {source}"),
    }
}

/// Every client capability, so a server offers everything it would offer any client.
fn declared_capabilities() -> Value {
    json!({"roots": {"listChanged": true}, "sampling": {}, "elicitation": {}})
}

/// A running server and the events of its tasks.
struct Connection<'a> {
    upstream: Upstream,
    events: mpsc::Receiver<UpstreamEvent>,
    timeout: Duration,
    workspace_root: Option<&'a Path>,
    server: &'a ServerName,
    /// Tells the progress board which step the server is at.
    progress: Box<dyn Fn(Phase) + 'a>,
}

impl Connection<'_> {
    /// The era probe, the handshake of a legacy server and every listing the
    /// server's capabilities offer, as `serve` sequences them ([`Startup`]): one
    /// request at a time, each awaited in place at most its wait.
    async fn inventory(&mut self, probe: bool) -> Result<Listing, Lost> {
        let greeting = Greeting {
            server: self.server.to_string(),
            timeout: self.timeout,
            handshake: declared_capabilities(),
            listing: json!({"roots": {}, "sampling": {}, "elicitation": {}}),
            initialize: Initialize::Ours,
        };
        let mut startup = Startup::new(greeting, read_definition);
        // Our ids for the requests sent to it (each awaited in turn).
        let mut ids = OurIds::<()>::default();
        let mut mint = || ids.reserve();
        let mut actions = startup.start(probe, &mut mint);
        // The request awaited, until when, and why it could not be queued.
        let mut awaited: Option<(u64, Instant, Option<SendError>)> = None;
        let mut ready = None;
        let mut items = Vec::new();
        loop {
            for action in actions {
                match action {
                    Action::Send {
                        line,
                        wait: Some((id, wait)),
                    } => {
                        let unsent = self.upstream.send(line).err();
                        awaited = Some((id, Instant::now() + wait, unsent));
                    }
                    Action::Send { line, wait: None } => self.send(line),
                    // Ours: `initialize` is sent at once, never awaits a client.
                    Action::AwaitClient => {}
                    Action::Ready { era, server } => ready = Some((era, server)),
                    Action::Listing(kind) => (self.progress)(Phase::Listing(pin_kind(kind))),
                    Action::Listed {
                        items: mut listed, ..
                    } => items.append(&mut listed),
                    // Tools are what a pin is for; prompts and templates are optional.
                    Action::ListRefused(ListKind::Tools, why) => {
                        return Err(Lost::Failed(why.to_string()));
                    }
                    Action::ListRefused(_, why) => {
                        tracing::warn!(server = %self.server, %why, "listing refused; taken as empty");
                    }
                    Action::Done => {
                        let Some((era, server)) = ready.take() else {
                            return Err(Lost::Failed("listed before its handshake".into()));
                        };
                        let server_info = server.server_info_text();
                        return Ok(Listing {
                            instructions: server.instructions,
                            items,
                            era,
                            server_info,
                        });
                    }
                    Action::Refused(why) => {
                        return Err(Lost::Failed(format!("refuses mcp-warden: {why}")));
                    }
                    // Ours: silence fails the server; a listing is never abandoned.
                    Action::Failed(why) | Action::ListAbandoned(_, why) => {
                        return Err(Lost::Failed(why));
                    }
                    Action::RestartWithoutProbe => return Err(Lost::ExitedOnProbe),
                }
            }
            let Some((id, deadline, unsent)) = awaited else {
                return Err(Lost::Failed("no request awaited before the end".into()));
            };
            actions = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Err(_) => {
                    awaited = None;
                    startup.on(Event::TimedOut { id, unsent }, &mut mint)
                }
                Ok(event) => self.on_event(event, &mut startup, &mut mint),
            };
        }
    }

    /// Feeds one event of the server's tasks to `startup`, serving the server's own
    /// requests meanwhile.
    fn on_event(
        &mut self,
        event: Option<UpstreamEvent>,
        startup: &mut Startup<Definition>,
        mint: Mint<'_>,
    ) -> Vec<Action<Definition>> {
        match event {
            // The supervisor holds a sender until it reports the exit, so this
            // means its task is gone without a word.
            None => startup.on(
                Event::Lost("its process was lost without an exit status".to_owned()),
                mint,
            ),
            Some(UpstreamEvent::Exited {
                status,
                stderr_tail,
                ..
            }) => startup.on(
                Event::Exited(super::exit_reason(&status, &stderr_tail)),
                mint,
            ),
            Some(UpstreamEvent::Sandbox(_, report)) => {
                tracing::info!(server = %self.server, "{}", report.summary());
                Vec::new()
            }
            // Only `serve` diagnoses on this channel; `pin` explains with `doctor`'s.
            Some(UpstreamEvent::Diagnosed { .. }) => Vec::new(),
            Some(UpstreamEvent::Line(_, Line::Overlong { skipped, head })) => {
                let id = recover_id(&head).and_then(|i| i.as_u64());
                startup.on(Event::Overlong { id, skipped }, mint)
            }
            Some(UpstreamEvent::Line(_, Line::Frame(bytes))) => match parse(bytes) {
                Ok(Parsed::Single(msg)) => match msg.kind() {
                    crate::jsonrpc::Kind::Response { .. } => startup.on(Event::Answer(&msg), mint),
                    crate::jsonrpc::Kind::Request { id, method } => {
                        self.answer_server(id, method);
                        Vec::new()
                    }
                    crate::jsonrpc::Kind::Notification { method } => {
                        tracing::debug!(server = %self.server, %method, "notification ignored");
                        Vec::new()
                    }
                },
                // Servers print log text on stdout sometimes; it is not theirs to say.
                Ok(Parsed::Batch(_)) => {
                    tracing::debug!(server = %self.server, "a batch from the server; dropped");
                    Vec::new()
                }
                Err(e) => {
                    tracing::debug!(server = %self.server, why = %e, "a non-JSON-RPC line from the server; dropped");
                    Vec::new()
                }
            },
        }
    }

    /// Queues a line we wrote; a server that does not read learns nothing from a retry.
    fn send(&mut self, line: Bytes) {
        if let Err(e) = self.upstream.send(line) {
            tracing::warn!(server = %self.server, ?e, "could not queue a message for the server");
        }
    }

    /// Answers a server-to-client request. There is no client and no user: roots are
    /// the workspace, questions are declined, and there is no model to sample.
    fn answer_server(&mut self, id: &Id, method: &str) {
        let line = match method {
            "ping" => result_response(id, "{}"),
            "roots/list" => result_response(id, &wire::roots_result(self.workspace_root)),
            "elicitation/create" => result_response(id, r#"{"action":"decline"}"#),
            "sampling/createMessage" => error_response(
                Some(id),
                ErrorCode::MethodNotFound,
                "mcp-warden is taking the server's inventory: there is no model to sample",
                None,
            ),
            _ => error_response(
                Some(id),
                ErrorCode::MethodNotFound,
                &format!("method `{method}` is not available while mcp-warden takes the inventory"),
                None,
            ),
        };
        self.send(line);
    }
}

/// The item's own name: `name`, or `uriTemplate` for templates; `None` when it is
/// missing or not a string.
fn item_name(kind: Kind, raw: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Named {
        name: String,
    }
    #[derive(Deserialize)]
    struct Templated {
        #[serde(rename = "uriTemplate")]
        uri_template: String,
    }
    let text = raw.get();
    match kind {
        Kind::Tool | Kind::Prompt => serde_json::from_str::<Named>(text).ok().map(|n| n.name),
        Kind::ResourceTemplate => serde_json::from_str::<Templated>(text)
            .ok()
            .map(|t| t.uri_template),
    }
}

/// The pinned kind of a list kind.
fn pin_kind(kind: ListKind) -> Kind {
    match kind {
        ListKind::Tools => Kind::Tool,
        ListKind::Prompts => Kind::Prompt,
        ListKind::Templates => Kind::ResourceTemplate,
    }
}

/// A listed item as a pin keeps it: its own name and the raw JSON text it was sent as.
fn read_definition(kind: ListKind, raw: &RawValue) -> Option<(String, Definition)> {
    let kind = pin_kind(kind);
    let name = item_name(kind, raw)?;
    let json = raw.get().to_owned();
    Some((name.clone(), Definition { kind, name, json }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_per_kind() {
        let raw = |t: &str| -> Box<RawValue> {
            RawValue::from_string(t.to_owned()).unwrap_or_else(|_| panic!("{t}"))
        };
        assert_eq!(
            item_name(Kind::Tool, &raw(r#"{"name":"a","x":1.50}"#)).as_deref(),
            Some("a")
        );
        assert_eq!(item_name(Kind::Prompt, &raw(r#"{"name":7}"#)), None);
        assert_eq!(
            item_name(
                Kind::ResourceTemplate,
                &raw(r#"{"uriTemplate":"file:///{p}","name":"f"}"#)
            )
            .as_deref(),
            Some("file:///{p}")
        );
        assert_eq!(
            item_name(Kind::ResourceTemplate, &raw(r#"{"name":"f"}"#)),
            None
        );
    }
}
