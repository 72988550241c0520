//! Taking the inventory of the configured servers, for `pin`, `pins`, `scan` and
//! `doctor`.
//!
//! Those commands have no client: they start each server themselves, initialize it
//! declaring every client capability (so it offers everything it would offer any
//! client), list all its tools, prompts and resource templates, and stop it. What a
//! pin or a scan judges must be what the server sent, so every definition is kept as
//! the raw JSON text of its array element ([`crate::pinning::listed`]). The probe,
//! the `initialize` answer and the paged listing are read as `serve` reads them
//! ([`crate::era::probe`], [`super::handshake`], [`super::listing`]); only the
//! sequencing differs: one request at a time, awaited in place.
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

use super::handshake::Initialized;
use super::listing::{self, Of, PageError, Paging};
use super::slot::{AfterProbe, Probed, SlotState};
use crate::config::{ServerConfig, ServerName};
use crate::era::Era;
use crate::era::probe::ProbeOutcome;
use crate::jsonrpc::codec::DEFAULT_MAX_LINE;
use crate::jsonrpc::error::result_response;
use crate::jsonrpc::message::Parsed;
use crate::jsonrpc::{ErrorCode, Id, Line, Message, error_response, parse, recover_id};
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
    match upstream::spawn(config, spawner, workspace_root, instance, tx) {
        Err(e) => Err(Lost::Failed(spawn_reason(&e))),
        Ok(upstream) => {
            let mut conn = Connection {
                upstream,
                events,
                ids: OurIds::default(),
                timeout: config.request_timeout,
                workspace_root,
                server: &config.name,
                progress: Box::new(move |phase| advance(board, index, phase)),
                modern: None,
                exited: false,
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

/// Why a listing ended without its items.
enum Failure {
    /// The server answered with an error or a malformed page.
    Refused(PageError),
    /// No answer: a timeout, an exit, a closed stdin.
    Lost(String),
}

/// How a legacy `initialize` ended, when the server answered it.
enum Initialize {
    Done(Box<Initialized>, Era),
    /// A -32022 naming the versions it speaks, to our `initialize` at `asked`.
    Refused {
        supported: Vec<String>,
        asked: &'static str,
    },
}

/// Every client capability, so a server offers everything it would offer any client.
fn declared_capabilities() -> Value {
    json!({"roots": {"listChanged": true}, "sampling": {}, "elicitation": {}})
}

/// A running server and the events of its tasks.
struct Connection<'a> {
    upstream: Upstream,
    events: mpsc::Receiver<UpstreamEvent>,
    /// Our ids for the requests sent to it (each awaited in turn).
    ids: OurIds<()>,
    timeout: Duration,
    workspace_root: Option<&'a Path>,
    server: &'a ServerName,
    /// Tells the progress board which step the server is at.
    progress: Box<dyn Fn(Phase) + 'a>,
    /// The modern version agreed at the probe (`None`: a legacy server).
    modern: Option<&'static str>,
    /// Its process exited.
    exited: bool,
}

impl Connection<'_> {
    /// The era probe (as `serve` does it: [`crate::era::probe`]), the handshake of a
    /// legacy server, and every listing the server's capabilities offer.
    async fn inventory(&mut self, probe: bool) -> Result<Listing, Lost> {
        let (init, era) = self.handshake(probe).await?;
        let mut items = Vec::new();
        for kind in [Kind::Tool, Kind::Prompt, Kind::ResourceTemplate] {
            if init
                .capabilities
                .get(list_kind(kind).capability())
                .is_none()
            {
                continue;
            }
            (self.progress)(Phase::Listing(kind));
            match self.list(kind).await {
                Ok(mut listed) => items.append(&mut listed),
                Err(Failure::Refused(why)) if kind != Kind::Tool => {
                    tracing::warn!(server = %self.server, %why, "listing refused; taken as empty");
                }
                Err(Failure::Refused(why)) => return Err(Lost::Failed(why.to_string())),
                Err(Failure::Lost(why)) => return Err(Lost::Failed(why)),
            }
        }
        let server_info = init.server_info_text();
        Ok(Listing {
            instructions: init.instructions,
            items,
            era,
            server_info,
        })
    }

    /// The handshake as `serve` makes it, through the same transitions
    /// ([`Probed::after`], [`Probed::after_initialize_refused`]): the era probe
    /// (asked again, once, at a version the server names), else `initialize`; a
    /// -32022 to it from a server a timed-out probe locked into the modern era (a
    /// slow start) probes again.
    async fn handshake(&mut self, probe: bool) -> Result<(Initialized, Era), Lost> {
        let mut probed = Probed::default();
        let mut next = if probe {
            AfterProbe::ProbeAgain(crate::era::MODERN_VERSIONS[0])
        } else {
            AfterProbe::Handshake
        };
        loop {
            next = match next {
                AfterProbe::ProbeAgain(version) => {
                    let outcome = self.probe(version).await?;
                    probed.after(outcome)
                }
                AfterProbe::Ready(SlotState::Ready {
                    era,
                    instructions,
                    capabilities,
                }) => {
                    let Era::Modern(version) = era else {
                        return Err(Lost::Failed("a probe made it ready as legacy".into()));
                    };
                    self.modern = Some(version);
                    let server_info = probed.server_info.take();
                    let init =
                        Initialized::modern(version, capabilities, instructions, server_info);
                    return Ok((init, era));
                }
                AfterProbe::Ready(_) => {
                    return Err(Lost::Failed("a probe ended in no ready state".into()));
                }
                AfterProbe::Refused(why) => {
                    return Err(Lost::Failed(format!("refuses mcp-warden: {why}")));
                }
                AfterProbe::Handshake => match self.initialize().await? {
                    Initialize::Done(init, era) => return Ok((*init, era)),
                    Initialize::Refused { supported, asked } => {
                        match probed.after_initialize_refused(&supported, asked) {
                            Ok(version) => AfterProbe::ProbeAgain(version),
                            Err(why) => AfterProbe::Refused(why),
                        }
                    }
                },
            };
        }
    }

    /// One `server/discover` probe at `version`: its outcome, legacy for silence
    /// (within [`PROBE_WAIT`]); an exit on it is [`Lost::ExitedOnProbe`].
    ///
    /// [`PROBE_WAIT`]: crate::era::probe::PROBE_WAIT
    async fn probe(&mut self, version: &'static str) -> Result<ProbeOutcome, Lost> {
        use crate::era::probe;
        let id = self.ids.mint(());
        let line = probe::discover_request(id, version, &declared_capabilities());
        let wait = probe::PROBE_WAIT.min(self.timeout);
        match self.exchange(id, "server/discover", line, wait).await {
            Ok(answer) => Ok(probe::classify(&answer, version)),
            Err(_) if self.exited => Err(Lost::ExitedOnProbe),
            Err(_) => Ok(ProbeOutcome::Legacy),
        }
    }

    /// The legacy handshake: `initialize` at the newest revision we speak (so a
    /// server shows everything it has), then `notifications/initialized`.
    async fn initialize(&mut self) -> Result<Initialize, Lost> {
        let id = self.ids.mint(());
        let info = crate::era::meta::our_info();
        let asked = crate::era::negotiate_legacy(None);
        let line = wire::upstream_initialize(id, asked, &declared_capabilities(), &info);
        let answer = self
            .exchange(id, "initialize", line, self.timeout)
            .await
            .map_err(Lost::Failed)?;
        if let Some(supported) = crate::era::probe::unsupported_versions(&answer) {
            return Ok(Initialize::Refused { supported, asked });
        }
        let Some(init) = Initialized::read(&answer) else {
            return Err(Lost::Failed(match answer.result() {
                Some(_) => "`initialize` answer has no valid result".to_owned(),
                None => format!("`initialize` failed: {}", listing::error_text(&answer)),
            }));
        };
        self.send(wire::notification("notifications/initialized", None));
        let version = crate::era::LEGACY_VERSIONS
            .iter()
            .find(|v| Some(**v) == init.version())
            .copied()
            .unwrap_or(asked);
        Ok(Initialize::Done(Box::new(init), Era::Legacy(version)))
    }

    /// Every item of one kind, following `nextCursor` within [`MAX_PAGES`] and
    /// [`MAX_ITEMS`] ([`Paging`], as `serve` does). A name listed twice keeps its
    /// first definition.
    async fn list(&mut self, kind: Kind) -> Result<Vec<Definition>, Failure> {
        let list_kind = list_kind(kind);
        let (method, field) = (list_kind.method(), list_kind.field());
        let caps = json!({"roots": {}, "sampling": {}, "elicitation": {}});
        let mut paging = Paging::default();
        let mut cursor: Option<String> = None;
        loop {
            let id = self.ids.mint(());
            let params = listing::list_params(cursor.as_deref(), self.modern.map(|v| (v, &caps)));
            let line = wire::request(id, method, params.as_ref());
            let answer = self
                .exchange(id, method, line, self.timeout)
                .await
                .map_err(Failure::Lost)?;
            let page = listing::read_page(&answer, method, field).map_err(Failure::Refused)?;
            let of = Of {
                server: self.server.as_str(),
                method,
            };
            let listed = page.items(field).unwrap_or_default().iter().copied();
            cursor = paging.take_page(listed, page.next_cursor.clone(), of, |raw| {
                let name = item_name(kind, raw)?;
                let json = raw.get().to_owned();
                Some((name.clone(), Definition { kind, name, json }))
            });
            if cursor.is_none() {
                return Ok(paging.into_items());
            }
        }
    }

    /// Queues a line we wrote; a server that does not read learns nothing from a retry.
    fn send(&self, line: Bytes) {
        if let Err(e) = self.upstream.send(line) {
            tracing::warn!(server = %self.server, ?e, "could not queue a message for the server");
        }
    }

    /// Sends request `id` (`line`) and waits, at most the server's `request_timeout`,
    /// for its answer, serving the server's own requests meanwhile. The answer may be
    /// an error response; `Err` means there was none.
    async fn exchange(
        &mut self,
        id: u64,
        method: &str,
        line: Bytes,
        wait: Duration,
    ) -> Result<Message, String> {
        let deadline = Instant::now() + wait;
        let unsent = self.upstream.send(line).err();
        loop {
            let Ok(event) = tokio::time::timeout_at(deadline, self.events.recv()).await else {
                return Err(match unsent {
                    Some(SendError::Closed) => {
                        format!("could not send `{method}`: its stdin is closed")
                    }
                    Some(SendError::Full) => {
                        format!("could not send `{method}`: it does not read its stdin")
                    }
                    None => format!(
                        "did not answer `{method}` within {}",
                        super::timeout_text(wait)
                    ),
                });
            };
            match event {
                // The supervisor holds a sender until it reports the exit, so this
                // means its task is gone without a word.
                None => return Err("its process was lost without an exit status".to_owned()),
                Some(UpstreamEvent::Exited {
                    status,
                    stderr_tail,
                    ..
                }) => {
                    self.exited = true;
                    return Err(super::exit_reason(&status, &stderr_tail));
                }
                Some(UpstreamEvent::Sandbox(_, report)) => {
                    tracing::info!(server = %self.server, "{}", report.summary());
                }
                // Only `serve` diagnoses on this channel; `pin` explains with `doctor`'s.
                Some(UpstreamEvent::Diagnosed { .. }) => {}
                Some(UpstreamEvent::Line(_, Line::Overlong { skipped, head })) => {
                    if recover_id(&head).and_then(|i| i.as_u64()) == Some(id) {
                        return Err(format!(
                            "its answer to `{method}` was {skipped} bytes, over the limit of {DEFAULT_MAX_LINE} bytes"
                        ));
                    }
                    tracing::warn!(server = %self.server, skipped, "dropped an overlong line from the server");
                }
                Some(UpstreamEvent::Line(_, Line::Frame(bytes))) => match parse(bytes) {
                    Ok(Parsed::Single(msg)) => match msg.kind() {
                        crate::jsonrpc::Kind::Response { id: answered, .. } => {
                            if answered.as_u64() == Some(id) {
                                self.ids.remove(&id);
                                return Ok(msg);
                            }
                            tracing::debug!(server = %self.server, id = %answered, "answer to no request in flight; dropped");
                        }
                        crate::jsonrpc::Kind::Request { id, method } => {
                            self.answer_server(id, method);
                        }
                        crate::jsonrpc::Kind::Notification { method } => {
                            tracing::debug!(server = %self.server, %method, "notification ignored");
                        }
                    },
                    // Servers print log text on stdout sometimes; it is not theirs to say.
                    Ok(Parsed::Batch(_)) => {
                        tracing::debug!(server = %self.server, "a batch from the server; dropped");
                    }
                    Err(e) => {
                        tracing::debug!(server = %self.server, why = %e, "a non-JSON-RPC line from the server; dropped");
                    }
                },
            }
        }
    }

    /// Answers a server-to-client request. There is no client and no user: roots are
    /// the workspace, questions are declined, and there is no model to sample.
    fn answer_server(&self, id: &Id, method: &str) {
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

/// The list kind of a pinned kind: its method, field and capability.
fn list_kind(kind: Kind) -> ListKind {
    match kind {
        Kind::Tool => ListKind::Tools,
        Kind::Prompt => ListKind::Prompts,
        Kind::ResourceTemplate => ListKind::Templates,
    }
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
