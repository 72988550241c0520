//! One server's start-up as a sans-I/O state machine: the era probe (its wait, a
//! late answer, a second probe at a version the server names, an exit on it), the
//! legacy handshake, and the paged listings its capabilities offer (for `serve`,
//! also the listings again for the life of the process).
//!
//! The machine writes no byte and sets no timer: it takes [`Event`]s (an answer from
//! the server, a request's wait run out, the process gone) and returns [`Action`]s
//! (send this line and wait this long for its answer, the server is ready in this
//! era, this kind is listed, it failed, start it again without the probe). Whoever
//! owns the process feeds it: the inventory of `pin`, `pins`, `scan` and `doctor`
//! ([`super::inventory`], [`Initialize::Ours`]) with one small async loop, and
//! `serve`'s session (`session/startup.rs`, [`Initialize::Clients`]) from its event
//! loop, with its ids and timers. The rules it sequences are
//! [`super::slot`]'s ([`Probed`]), [`crate::era::probe`]'s, [`super::handshake`]'s and
//! [`super::listing`]'s.
//!
//! Requests from the server and notifications are not the machine's: the driver
//! answers them as it answers any other (it knows whether a client is there).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use serde_json::value::RawValue;

use super::SendError;
use super::handshake::Initialized;
use super::listing::{self, Of, PageError, Paging};
use super::slot::{AfterProbe, Probed, SlotState};
use crate::era::Era;
use crate::era::probe::{self, ProbeOutcome};
use crate::jsonrpc::codec::DEFAULT_MAX_LINE;
use crate::jsonrpc::{Kind, Message};
use crate::router::catalog::ListKind;
use crate::session::wire;

/// Reads one listed item of a kind into its key (a name listed twice keeps its
/// first definition) and what the driver keeps of it; `None` drops it. A closure,
/// so the session's can know the server's namespace.
struct ReadItem<T>(Box<ReadFn<T>>);

type ReadFn<T> = dyn Fn(ListKind, &RawValue) -> Option<(String, T)> + Send + Sync;

impl<T> std::fmt::Debug for ReadItem<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadItem")
    }
}

/// Who a legacy server's `initialize` speaks for, and so what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initialize {
    /// No client (`pin`, `pins`, `scan`, `doctor`): `initialize` at once, at our
    /// newest version, with our info and [`Greeting::handshake`]'s capabilities; the
    /// era is the version the server answers (when one of ours); every kind its
    /// capabilities offer is listed next, one after the other.
    Ours,
    /// For a client (`serve`): `initialize` waits for the client ([`Action::AwaitClient`],
    /// then [`Startup::client`]) and declares its version, capabilities and info; the
    /// era is the client's version. Once ready, the machine lists what the driver asks
    /// ([`Startup::list`]: each kind on its own, so in parallel; asked again while
    /// listing, it lists once more after), for the life of the process; a listing
    /// refused, unanswered or unreadable is abandoned ([`Action::ListRefused`],
    /// [`Action::ListAbandoned`]: the driver keeps what it listed before), never
    /// the server failed. A failed handshake is worded as the session has always said
    /// it (`initialize failed: ANSWER`).
    Clients,
}

/// The client a legacy server's `initialize` declares ([`Initialize::Clients`]).
#[derive(Debug, Clone)]
pub struct Hello {
    /// The revision asked for (the client's).
    pub version: &'static str,
    /// The client's capabilities, as it declared them.
    pub capabilities: Value,
    /// The client's `clientInfo`.
    pub info: Value,
    /// The capabilities a probe sent from now on declares (a second probe, after a
    /// -32022 to `initialize`): the client's as mediated for this server, where the
    /// first probe, sent before the client came, declared [`Greeting::handshake`].
    pub probe_capabilities: Value,
}

/// What a start-up is told about its server and how to greet it.
#[derive(Debug, Clone)]
pub struct Greeting {
    /// The server's name, for the log.
    pub server: String,
    /// Its `request_timeout`: the wait for each answer (the probe's is shorter,
    /// [`probe::PROBE_WAIT`], when this is not).
    pub timeout: Duration,
    /// The client capabilities declared in the probe (and in `initialize` with
    /// [`Initialize::Ours`]).
    pub handshake: Value,
    /// The client capabilities declared in a modern server's list requests (with
    /// [`Initialize::Clients`], those given to each [`Startup::list`] since).
    pub listing: Value,
    /// Whom `initialize` speaks for.
    pub initialize: Initialize,
}

/// What happened to the server the machine is starting.
#[derive(Debug)]
pub enum Event<'a> {
    /// An answer (a response, result or error) from the server.
    Answer(&'a Message),
    /// A line too long to read; `id` is the one read from its head, when any.
    Overlong { id: Option<u64>, skipped: usize },
    /// The wait armed for request `id` ran out; `unsent` when its line could not be
    /// queued (the reason then says so).
    TimedOut { id: u64, unsent: Option<SendError> },
    /// The process exited (`why`: [`super::exit_reason`]).
    Exited(String),
    /// The process is gone without an exit status (`why`).
    Lost(String),
}

/// What the driver does next.
#[derive(Debug)]
pub enum Action<T> {
    /// Send `line` to the server; when `wait` is set, fire [`Event::TimedOut`] for
    /// request `id` after it unless answered first.
    Send {
        line: Bytes,
        wait: Option<(u64, Duration)>,
    },
    /// The handshake is done: the era, and what the server said about itself.
    Ready { era: Era, server: Box<Initialized> },
    /// Legacy, and [`Initialize::Clients`]: `initialize` waits for the client; call
    /// [`Startup::client`] once it is there (at once, if it is).
    AwaitClient,
    /// A listing of this kind begins.
    Listing(ListKind),
    /// A kind is listed (within [`listing::MAX_PAGES`] and [`listing::MAX_ITEMS`]);
    /// `ttl_ms`: the smallest a modern server's pages gave.
    Listed {
        kind: ListKind,
        items: Vec<T>,
        ttl_ms: Option<u64>,
    },
    /// A kind's listing was answered with an error or a malformed page; the next
    /// kind is listed all the same (whether that fails the server is the driver's).
    ListRefused(ListKind, PageError),
    /// A listing's page was not answered in time, or too long to read
    /// ([`Initialize::Clients`]; with [`Initialize::Ours`] that fails the server):
    /// why.
    ListAbandoned(ListKind, String),
    /// Every listing the server offers is done ([`Initialize::Ours`]).
    Done,
    /// It speaks no version we speak (why); never started again by time.
    Refused(String),
    /// It failed (why): an exit, silence, a bad `initialize` answer.
    Failed(String),
    /// It exited on the probe, the first time: start it again without the probe
    /// (some SDKs exit on a request before `initialize`).
    RestartWithoutProbe,
}

/// Where the driver's ids come from: each call is a fresh id for one request.
pub type Mint<'a> = &'a mut dyn FnMut() -> u64;

/// The actions of one step, and the ids to send them under.
struct Out<'m, T> {
    actions: Vec<Action<T>>,
    mint: Mint<'m>,
}

impl<'m, T> Out<'m, T> {
    fn new(mint: Mint<'m>) -> Self {
        Self {
            actions: Vec::new(),
            mint,
        }
    }

    fn push(&mut self, action: Action<T>) {
        self.actions.push(action);
    }
}

/// What one of our requests is for.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Probe(&'static str),
    /// A probe whose wait ran out: its discover result still counts while the
    /// `initialize` sent since is unanswered (a slow start).
    LateProbe(&'static str),
    Initialize(&'static str),
    List(ListKind),
}

impl Pending {
    fn method(self) -> &'static str {
        match self {
            Self::Probe(_) | Self::LateProbe(_) => "server/discover",
            Self::Initialize(_) => "initialize",
            Self::List(kind) => kind.method(),
        }
    }
}

/// Where the start-up is.
#[derive(Debug)]
enum Step<T> {
    /// Nothing sent yet.
    Idle,
    /// Our request `id` is awaited.
    Waiting { id: u64 },
    /// Legacy: `initialize` waits for the client ([`Initialize::Clients`]).
    AwaitingClient,
    /// Listing a kind, one after the other ([`Initialize::Ours`]).
    Listing(Lister<T>),
    /// Ready ([`Initialize::Clients`]): the listings run each on its own
    /// ([`Startup::lists`]).
    Ready,
    /// Listed everything, or failed: events change nothing.
    Over,
}

/// One listing under way.
#[derive(Debug)]
struct Lister<T> {
    /// The page awaited.
    id: u64,
    /// The pages so far.
    paging: Paging<T>,
    /// The smallest `ttlMs` of its pages.
    ttl_ms: Option<u64>,
    /// Asked again meanwhile: listed once more when done.
    again: bool,
}

impl<T> Default for Lister<T> {
    fn default() -> Self {
        Self {
            id: 0,
            paging: Paging::default(),
            ttl_ms: None,
            again: false,
        }
    }
}

/// One server's start-up, from its first line to its last listing.
#[derive(Debug)]
pub struct Startup<T> {
    greeting: Greeting,
    read: ReadItem<T>,
    probed: Probed,
    /// Our requests in flight (a late probe's included), by the ids the driver gave.
    asked: HashMap<u64, Pending>,
    step: Step<T>,
    /// The era and capabilities, once ready.
    ready: Option<(Era, Value)>,
    /// The kinds still to list ([`Initialize::Ours`]).
    kinds: Vec<ListKind>,
    /// The listings under way, by [`ListKind::index`] ([`Initialize::Clients`]).
    lists: [Option<Lister<T>>; 3],
}

impl<T> Startup<T> {
    /// A start-up of a freshly spawned process; `read` reads a listed item.
    #[must_use]
    pub fn new(
        greeting: Greeting,
        read: impl Fn(ListKind, &RawValue) -> Option<(String, T)> + Send + Sync + 'static,
    ) -> Self {
        Self {
            greeting,
            read: ReadItem(Box::new(read)),
            probed: Probed::default(),
            asked: HashMap::new(),
            step: Step::Idle,
            ready: None,
            kinds: Vec::new(),
            lists: [None, None, None],
        }
    }

    /// The first actions: the probe (when `probe`), else `initialize`. `mint` gives
    /// the id of each request the machine sends (the driver's id table: the
    /// server's other requests share its ids).
    pub fn start(&mut self, probe: bool, mint: Mint<'_>) -> Vec<Action<T>> {
        let mut out = Out::new(mint);
        if probe {
            self.send_probe(crate::era::MODERN_VERSIONS[0], &mut out);
        } else {
            self.probed.fatal = true;
            self.send_initialize(&mut out);
        }
        out.actions
    }

    /// The actions `event` asks for (`mint`: as for [`Self::start`]).
    pub fn on(&mut self, event: Event<'_>, mint: Mint<'_>) -> Vec<Action<T>> {
        let mut out = Out::new(mint);
        if matches!(self.step, Step::Over) {
            return out.actions;
        }
        match event {
            Event::Answer(msg) => self.on_answer(msg, &mut out),
            Event::Overlong { id, skipped } => {
                let Some(pending) = id
                    .filter(|id| self.awaits(*id))
                    .and_then(|id| self.asked.remove(&id))
                else {
                    tracing::warn!(server = %self.greeting.server, skipped, "dropped an overlong line from the server");
                    return out.actions;
                };
                if let Pending::Probe(_) = pending {
                    // An unreadable discover result is no usable one: legacy.
                    self.after_probe(ProbeOutcome::Legacy, &mut out);
                } else {
                    let method = pending.method();
                    let why = format!(
                        "its answer to `{method}` was {skipped} bytes, over the limit of {DEFAULT_MAX_LINE} bytes"
                    );
                    self.fail_or_abandon(pending, why, &mut out);
                }
            }
            Event::TimedOut { id, unsent } => {
                if !self.awaits(id) {
                    return out.actions;
                }
                match self.asked.remove(&id) {
                    Some(Pending::Probe(version)) => {
                        // Kept: a late discover result still counts.
                        self.asked.insert(id, Pending::LateProbe(version));
                        tracing::info!(server = %self.greeting.server, "no answer to `server/discover` in time; taken for a legacy server");
                        self.after_probe(ProbeOutcome::Legacy, &mut out);
                    }
                    Some(pending) => {
                        let method = pending.method();
                        let why = match unsent {
                            Some(SendError::Closed) => {
                                format!("could not send `{method}`: its stdin is closed")
                            }
                            Some(SendError::Full) => {
                                format!("could not send `{method}`: it does not read its stdin")
                            }
                            None => format!(
                                "did not answer `{method}` within {}",
                                super::timeout_text(self.wait_for(pending))
                            ),
                        };
                        self.fail_or_abandon(pending, why, &mut out);
                    }
                    None => {}
                }
            }
            Event::Exited(why) => {
                if self.probed.restart_without_probe(self.probing()) {
                    self.step = Step::Over;
                    out.push(Action::RestartWithoutProbe);
                } else {
                    self.fail(why, &mut out);
                }
            }
            Event::Lost(why) => self.fail(why, &mut out),
        }
        out.actions
    }

    /// The client is there ([`Initialize::Clients`]): a legacy server waiting for
    /// it is sent `initialize` declaring `hello`; otherwise nothing to do.
    pub fn client(&mut self, hello: &Hello, mint: Mint<'_>) -> Vec<Action<T>> {
        let mut out = Out::new(mint);
        self.greeting
            .handshake
            .clone_from(&hello.probe_capabilities);
        if matches!(self.step, Step::AwaitingClient) {
            self.send_hello(hello, &mut out);
        }
        out.actions
    }

    /// Lists `kind` ([`Initialize::Clients`], once ready), declaring `declared` to a
    /// modern server (the client's capabilities as mediated for it); a listing of
    /// `kind` under way is done once more when it ends (a `list_changed` storm is
    /// one more listing).
    pub fn list(&mut self, kind: ListKind, declared: &Value, mint: Mint<'_>) -> Vec<Action<T>> {
        let mut out = Out::new(mint);
        if !matches!(self.step, Step::Ready) {
            return out.actions;
        }
        self.greeting.listing.clone_from(declared);
        match &mut self.lists[kind.index()] {
            Some(lister) => lister.again = true,
            None => self.start_listing(kind, &mut out),
        }
        out.actions
    }

    /// Whether an answer to our request `id` is still of use (a probe whose wait
    /// ran out is: its late answer counts); the driver forgets the others.
    #[must_use]
    pub fn expects(&self, id: u64) -> bool {
        self.asked.contains_key(&id)
    }

    /// What the probes of this process learnt (its discover result's `ttlMs` and
    /// `serverInfo`, and whether it was started without one).
    #[must_use]
    pub fn probed(&self) -> &Probed {
        &self.probed
    }

    /// Whether request `id` is the one awaited now.
    fn awaits(&self, id: u64) -> bool {
        match &self.step {
            Step::Waiting { id: w } | Step::Listing(Lister { id: w, .. }) => *w == id,
            Step::Ready => self.lists.iter().flatten().any(|l| l.id == id),
            Step::Idle | Step::AwaitingClient | Step::Over => false,
        }
    }

    /// The version of the probe awaited now, if a probe is.
    fn probing(&self) -> Option<&'static str> {
        match self.step {
            Step::Waiting { id } => match self.asked.get(&id) {
                Some(Pending::Probe(version)) => Some(*version),
                _ => None,
            },
            _ => None,
        }
    }

    fn wait_for(&self, pending: Pending) -> Duration {
        match pending {
            Pending::Probe(_) | Pending::LateProbe(_) => {
                probe::PROBE_WAIT.min(self.greeting.timeout)
            }
            Pending::Initialize(_) | Pending::List(_) => self.greeting.timeout,
        }
    }

    fn send(
        &mut self,
        pending: Pending,
        line: impl FnOnce(u64) -> Bytes,
        out: &mut Out<'_, T>,
    ) -> u64 {
        let id = (out.mint)();
        self.asked.insert(id, pending);
        let wait = self.wait_for(pending);
        out.push(Action::Send {
            line: line(id),
            wait: Some((id, wait)),
        });
        id
    }

    fn send_probe(&mut self, version: &'static str, out: &mut Out<'_, T>) {
        let caps = self.greeting.handshake.clone();
        let id = self.send(
            Pending::Probe(version),
            |id| probe::discover_request(id, version, &caps),
            out,
        );
        self.step = Step::Waiting { id };
    }

    /// The legacy handshake: without a client, `initialize` at the newest revision
    /// we speak (so a server shows everything it has); for a client, once it is there.
    fn send_initialize(&mut self, out: &mut Out<'_, T>) {
        match self.greeting.initialize {
            Initialize::Ours => {
                let hello = Hello {
                    version: crate::era::negotiate_legacy(None),
                    capabilities: self.greeting.handshake.clone(),
                    info: crate::era::meta::our_info(),
                    probe_capabilities: self.greeting.handshake.clone(),
                };
                self.send_hello(&hello, out);
            }
            Initialize::Clients => {
                self.step = Step::AwaitingClient;
                out.push(Action::AwaitClient);
            }
        }
    }

    fn send_hello(&mut self, hello: &Hello, out: &mut Out<'_, T>) {
        let asked = hello.version;
        let id = self.send(
            Pending::Initialize(asked),
            |id| wire::upstream_initialize(id, asked, &hello.capabilities, &hello.info),
            out,
        );
        self.step = Step::Waiting { id };
    }

    fn fail(&mut self, why: String, out: &mut Out<'_, T>) {
        self.step = Step::Over;
        out.push(Action::Failed(why));
    }

    /// A request of `pending`'s went unanswered (`why`): a listing for a client is
    /// abandoned, anything else fails the server.
    fn fail_or_abandon(&mut self, pending: Pending, why: String, out: &mut Out<'_, T>) {
        match (pending, &self.step) {
            (Pending::List(kind), Step::Ready) => {
                self.lists[kind.index()] = None;
                out.push(Action::ListAbandoned(kind, why));
            }
            _ => self.fail(why, out),
        }
    }

    fn on_answer(&mut self, msg: &Message, out: &mut Out<'_, T>) {
        let Kind::Response { id: answered, .. } = msg.kind() else {
            return;
        };
        let Some(id) = answered.as_u64().filter(|id| self.asked.contains_key(id)) else {
            tracing::debug!(server = %self.greeting.server, id = %answered, "answer to no request in flight; dropped");
            return;
        };
        match self.asked.get(&id).copied() {
            Some(Pending::LateProbe(asked)) => {
                self.asked.remove(&id);
                let outcome = probe::classify(msg, asked);
                // Modern after all while `initialize` is unanswered: its answer is
                // then ignored. Anything else, or once the handshake is done, is dropped.
                if matches!(outcome, ProbeOutcome::Modern(_)) && self.ready.is_none() {
                    tracing::info!(server = %self.greeting.server, "a late answer to `server/discover`: a modern server after all");
                    self.after_probe(outcome, out);
                }
            }
            _ if !self.awaits(id) => {}
            Some(Pending::Probe(asked)) => {
                self.asked.remove(&id);
                self.after_probe(probe::classify(msg, asked), out);
            }
            Some(Pending::Initialize(asked)) => {
                self.asked.remove(&id);
                self.on_initialized(msg, asked, out);
            }
            Some(Pending::List(kind)) => {
                self.asked.remove(&id);
                self.on_page(kind, msg, out);
            }
            None => {}
        }
    }

    /// Carries out what [`Probed::after`] says a probe's outcome asks.
    fn after_probe(&mut self, outcome: ProbeOutcome, out: &mut Out<'_, T>) {
        match self.probed.after(outcome) {
            AfterProbe::Ready(SlotState::Ready {
                era,
                instructions,
                capabilities,
            }) => {
                let version = match era {
                    Era::Modern(v) | Era::Legacy(v) => v,
                };
                let info = self.probed.server_info.clone();
                let server = Initialized::modern(version, capabilities, instructions, info);
                self.ready(era, server, out);
            }
            AfterProbe::Ready(_) => self.fail("a probe ended in no ready state".into(), out),
            AfterProbe::ProbeAgain(version) => self.send_probe(version, out),
            AfterProbe::Handshake => self.send_initialize(out),
            AfterProbe::Refused(why) => {
                self.step = Step::Over;
                out.push(Action::Refused(why));
            }
        }
    }

    fn on_initialized(&mut self, answer: &Message, asked: &'static str, out: &mut Out<'_, T>) {
        if let Some(supported) = probe::unsupported_versions(answer) {
            // A server a timed-out probe locked into the modern era: probed again, once.
            match self.probed.after_initialize_refused(&supported, asked) {
                Ok(version) => self.send_probe(version, out),
                Err(why) => {
                    self.step = Step::Over;
                    out.push(Action::Refused(why));
                }
            }
            return;
        }
        let Some(server) = Initialized::read(answer) else {
            let why = match self.greeting.initialize {
                Initialize::Ours => match answer.result() {
                    Some(_) => "`initialize` answer has no valid result".to_owned(),
                    None => format!("`initialize` failed: {}", listing::error_text(answer)),
                },
                // What `serve` has always said (the server's whole answer).
                Initialize::Clients => {
                    if matches!(answer.kind(), Kind::Response { is_error: true, .. }) {
                        format!(
                            "initialize failed: {}",
                            String::from_utf8_lossy(answer.raw())
                        )
                    } else {
                        "initialize answer has no valid result".to_owned()
                    }
                }
            };
            return self.fail(why, out);
        };
        out.push(Action::Send {
            line: wire::notification("notifications/initialized", None),
            wait: None,
        });
        // A client's session is in the client's revision, whatever the server says.
        let version = match self.greeting.initialize {
            Initialize::Ours => crate::era::LEGACY_VERSIONS
                .iter()
                .find(|v| Some(**v) == server.version())
                .copied()
                .unwrap_or(asked),
            Initialize::Clients => asked,
        };
        self.ready(Era::Legacy(version), server, out);
    }

    /// Ready in `era`; then every listing its capabilities offer.
    fn ready(&mut self, era: Era, server: Initialized, out: &mut Out<'_, T>) {
        // A late probe's `initialize`, or the probe itself, answered after this is dropped.
        self.asked.clear();
        // Popped from the end: listed in the order of their index.
        self.kinds = ListKind::offered(&server.capabilities).rev().collect();
        self.ready = Some((era, server.capabilities.clone()));
        out.push(Action::Ready {
            era,
            server: Box::new(server),
        });
        match self.greeting.initialize {
            Initialize::Ours => self.next_listing(out),
            // The driver asks for each listing (a modern server's once the client is there).
            Initialize::Clients => self.step = Step::Ready,
        }
    }

    fn next_listing(&mut self, out: &mut Out<'_, T>) {
        match self.kinds.pop() {
            None => {
                self.step = Step::Over;
                out.push(Action::Done);
            }
            Some(kind) => self.start_listing(kind, out),
        }
    }

    fn start_listing(&mut self, kind: ListKind, out: &mut Out<'_, T>) {
        out.push(Action::Listing(kind));
        self.ask_page(kind, Lister::default(), None, out);
    }

    /// A listing ended (listed or refused): the next kind ([`Initialize::Ours`]).
    fn listing_ended(&mut self, out: &mut Out<'_, T>) {
        if let Initialize::Ours = self.greeting.initialize {
            self.next_listing(out);
        }
    }

    fn ask_page(
        &mut self,
        kind: ListKind,
        mut lister: Lister<T>,
        cursor: Option<&str>,
        out: &mut Out<'_, T>,
    ) {
        let modern = match self.ready {
            Some((Era::Modern(version), _)) => Some(version),
            _ => None,
        };
        let params = listing::list_params(cursor, modern.map(|v| (v, &self.greeting.listing)));
        lister.id = self.send(
            Pending::List(kind),
            |id| wire::request(id, kind.method(), params.as_ref()),
            out,
        );
        match self.step {
            Step::Ready => self.lists[kind.index()] = Some(lister),
            _ => self.step = Step::Listing(lister),
        }
    }

    /// The listing of `kind` under way, taken out to be carried on.
    fn take_lister(&mut self, kind: ListKind) -> Option<Lister<T>> {
        match self.step {
            Step::Ready => self.lists[kind.index()].take(),
            _ => match std::mem::replace(&mut self.step, Step::Idle) {
                Step::Listing(lister) => Some(lister),
                step => {
                    self.step = step;
                    None
                }
            },
        }
    }

    fn on_page(&mut self, kind: ListKind, answer: &Message, out: &mut Out<'_, T>) {
        let Some(mut lister) = self.take_lister(kind) else {
            return;
        };
        let (method, field) = (kind.method(), kind.field());
        let page = match listing::read_page(answer, method, field) {
            Ok(page) => page,
            Err(why) => {
                out.push(Action::ListRefused(kind, why));
                return self.listing_ended(out);
            }
        };
        // A modern server's caching hint: the smallest over the listing's pages.
        if let Some(ttl) = page.ttl_ms {
            lister.ttl_ms = Some(lister.ttl_ms.map_or(ttl, |kept| kept.min(ttl)));
        }
        let of = Of {
            server: &self.greeting.server,
            method,
        };
        let read_item = &self.read.0;
        let items = page.items(field).unwrap_or_default().iter().copied();
        let next = lister
            .paging
            .take_page(items, page.next_cursor.clone(), of, |raw| {
                read_item(kind, raw)
            });
        if let Some(cursor) = next {
            self.ask_page(kind, lister, Some(&cursor), out);
        } else {
            let Lister {
                paging,
                ttl_ms,
                again,
                ..
            } = lister;
            out.push(Action::Listed {
                kind,
                items: paging.into_items(),
                ttl_ms,
            });
            if again {
                self.start_listing(kind, out);
            }
            self.listing_ended(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::listing::{MAX_ITEMS, MAX_PAGES};

    /// What the script feeds the machine.
    #[derive(Debug, Clone, Copy)]
    enum In {
        /// The answer to id N: the rest of its JSON (`"result":…` or `"error":…`).
        Answer(u64, &'static str),
        /// A message that is no answer, or an answer to an id never asked.
        Line(&'static str),
        Timeout(u64),
        Unsent(u64),
        Overlong(u64),
        Exit,
        Lost,
        /// The client is there ([`Initialize::Clients`]), at revision 2025-03-26.
        Client,
    }

    const MODERN: &str = r#""result":{"supportedVersions":["2026-07-28"],"capabilities":{}}"#;
    const LEGACY: &str =
        r#""result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{},"prompts":{}}}"#;
    const NOT_FOUND: &str = r#""error":{"code":-32601,"message":"no"}"#;

    fn message(line: &str) -> Message {
        crate::jsonrpc::message::reparse(&Bytes::from(format!("{line}\n")))
            .unwrap_or_else(|| panic!("a message: {line}"))
    }

    /// The machine with the driver's side of ids: 1, 2, 3…
    struct Driven {
        startup: Startup<String>,
        last: u64,
    }

    impl Driven {
        fn start(&mut self, probe: bool) -> Vec<Action<String>> {
            let last = &mut self.last;
            self.startup.start(probe, &mut || {
                *last += 1;
                *last
            })
        }

        fn on(&mut self, event: Event<'_>) -> Vec<Action<String>> {
            let last = &mut self.last;
            self.startup.on(event, &mut || {
                *last += 1;
                *last
            })
        }
    }

    fn machine() -> Driven {
        machine_for(Initialize::Ours)
    }

    fn machine_for(initialize: Initialize) -> Driven {
        let greeting = Greeting {
            server: "s".into(),
            timeout: Duration::from_secs(10),
            handshake: serde_json::json!({}),
            listing: serde_json::json!({}),
            initialize,
        };
        let startup = Startup::new(greeting, |_, raw| {
            let name = serde_json::from_str::<Value>(raw.get()).ok()?;
            let name = name.get("name")?.as_str()?.to_owned();
            Some((name.clone(), name))
        });
        Driven { startup, last: 0 }
    }

    /// The actions, one short line each.
    fn show(actions: Vec<Action<String>>) -> Vec<String> {
        actions
            .into_iter()
            .map(|a| match a {
                Action::Send { line, wait } => {
                    let sent = message(std::str::from_utf8(&line).expect("utf-8").trim_end());
                    let method = match sent.kind() {
                        Kind::Request { method, .. } | Kind::Notification { method } => {
                            method.to_string()
                        }
                        Kind::Response { .. } => "a response".into(),
                    };
                    match wait {
                        Some((id, _)) => format!("send {method}#{id}"),
                        None => format!("send {method}"),
                    }
                }
                Action::Ready { era, .. } => format!("ready {era:?}"),
                Action::Listing(kind) => format!("listing {}", kind.method()),
                Action::Listed {
                    kind,
                    items,
                    ttl_ms: None,
                } => format!("listed {} {items:?}", kind.method()),
                Action::Listed {
                    kind,
                    items,
                    ttl_ms: Some(ttl),
                } => format!("listed {} {items:?} ttl {ttl}", kind.method()),
                Action::ListAbandoned(kind, why) => format!("abandoned {}: {why}", kind.method()),
                Action::ListRefused(kind, why) => format!("refused {}: {why}", kind.method()),
                Action::Done => "done".into(),
                Action::Refused(why) => format!("refuses us: {why}"),
                Action::Failed(why) => format!("failed: {why}"),
                Action::RestartWithoutProbe => "restart without probe".into(),
                Action::AwaitClient => "await the client".into(),
            })
            .collect()
    }

    fn feed(startup: &mut Driven, input: In) -> Vec<String> {
        let actions = match input {
            In::Answer(id, body) => startup.on(Event::Answer(&message(&format!(
                r#"{{"jsonrpc":"2.0","id":{id},{body}}}"#
            )))),
            In::Line(line) => startup.on(Event::Answer(&message(line))),
            In::Timeout(id) => startup.on(Event::TimedOut { id, unsent: None }),
            In::Unsent(id) => startup.on(Event::TimedOut {
                id,
                unsent: Some(SendError::Full),
            }),
            In::Overlong(id) => startup.on(Event::Overlong {
                id: Some(id),
                skipped: 9,
            }),
            In::Exit => startup.on(Event::Exited("exited (signal 9)".into())),
            In::Lost => startup.on(Event::Lost("lost".into())),
            In::Client => {
                let hello = Hello {
                    version: "2025-03-26",
                    capabilities: serde_json::json!({"roots": {}}),
                    info: serde_json::json!({"name": "c", "version": "1"}),
                    probe_capabilities: serde_json::json!({"roots": {}}),
                };
                let last = &mut startup.last;
                startup.startup.client(&hello, &mut || {
                    *last += 1;
                    *last
                })
            }
        };
        show(actions)
    }

    const LEGACY_READY: &[&str] = &[
        "send notifications/initialized",
        r#"ready Legacy("2025-06-18")"#,
        "listing tools/list",
        "send tools/list#3",
    ];

    #[test]
    #[allow(
        clippy::too_many_lines,
        reason = "one table of scripts reads best whole"
    )]
    fn start_up_scripts() {
        // (what it is, probed first, the script: each input and the actions it asks)
        type Script = (&'static str, bool, &'static [(In, &'static [&'static str])]);
        let scripts: &[Script] = &[
            (
                "a legacy server",
                true,
                &[
                    (In::Answer(1, NOT_FOUND), &["send initialize#2"]),
                    (In::Answer(2, LEGACY), LEGACY_READY),
                    (
                        In::Answer(
                            3,
                            r#""result":{"tools":[{"name":"a"},{"name":"b"}],"nextCursor":"c"}"#,
                        ),
                        &["send tools/list#4"],
                    ),
                    (
                        In::Answer(4, r#""result":{"tools":[{"name":"a"},{"name":"c"},{}]}"#),
                        &[
                            r#"listed tools/list ["a", "b", "c"]"#,
                            "listing prompts/list",
                            "send prompts/list#5",
                        ],
                    ),
                    (
                        In::Answer(5, r#""result":{"prompts":[]}"#),
                        &["listed prompts/list []", "done"],
                    ),
                    (In::Exit, &[]),
                ],
            ),
            (
                "a modern server",
                true,
                &[
                    (
                        In::Answer(
                            1,
                            r#""result":{"supportedVersions":["2026-07-28"],"capabilities":{"resources":{}}}"#,
                        ),
                        &[
                            r#"ready Modern("2026-07-28")"#,
                            "listing resources/templates/list",
                            "send resources/templates/list#2",
                        ],
                    ),
                    (
                        In::Answer(2, r#""result":{"resourceTemplates":[]}"#),
                        &["listed resources/templates/list []", "done"],
                    ),
                ],
            ),
            (
                "a -32022 to the probe naming only the version asked: legacy",
                true,
                &[(
                    In::Answer(
                        1,
                        r#""error":{"code":-32022,"message":"v","data":{"supported":["2026-07-28","2099-01-01"]}}"#,
                    ),
                    &["send initialize#2"],
                )],
            ),
            (
                "a late probe answer before the initialize answer",
                true,
                &[
                    (In::Timeout(1), &["send initialize#2"]),
                    (
                        In::Answer(1, MODERN),
                        &[r#"ready Modern("2026-07-28")"#, "done"],
                    ),
                    (In::Answer(2, LEGACY), &[]),
                ],
            ),
            (
                "a late probe answer after the handshake is dropped",
                true,
                &[
                    (In::Timeout(1), &["send initialize#2"]),
                    (In::Answer(2, LEGACY), LEGACY_READY),
                    (In::Answer(1, MODERN), &[]),
                ],
            ),
            (
                "-32022 on initialize after a late probe: probed again, once",
                true,
                &[
                    (In::Timeout(1), &["send initialize#2"]),
                    (
                        In::Answer(
                            2,
                            r#""error":{"code":-32022,"message":"v","data":{"supported":["2026-07-28"]}}"#,
                        ),
                        &["send server/discover#3"],
                    ),
                    (
                        In::Answer(3, MODERN),
                        &[r#"ready Modern("2026-07-28")"#, "done"],
                    ),
                ],
            ),
            (
                "a server speaking no version of ours",
                true,
                &[(
                    In::Answer(
                        1,
                        r#""error":{"code":-32022,"message":"v","data":{"supported":["2099-01-01"]}}"#,
                    ),
                    &[
                        "refuses us: speaks only 2099-01-01; mcp-warden speaks 2026-07-28, 2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05",
                    ],
                )],
            ),
            (
                "an exit on the probe",
                true,
                &[(In::Exit, &["restart without probe"])],
            ),
            (
                "started again without the probe, it exits",
                false,
                &[(In::Exit, &["failed: exited (signal 9)"])],
            ),
            (
                "an exit on initialize after a silent probe",
                true,
                &[
                    (In::Timeout(1), &["send initialize#2"]),
                    (In::Exit, &["failed: exited (signal 9)"]),
                ],
            ),
            ("lost on the probe", true, &[(In::Lost, &["failed: lost"])]),
            (
                "garbage",
                false,
                &[
                    (
                        In::Line(r#"{"jsonrpc":"2.0","method":"notifications/message"}"#),
                        &[],
                    ),
                    (
                        In::Line(r#"{"jsonrpc":"2.0","id":"x","method":"ping"}"#),
                        &[],
                    ),
                    (In::Answer(7, LEGACY), &[]),
                    (In::Timeout(7), &[]),
                    (
                        In::Answer(1, r#""result":[]"#),
                        &["failed: `initialize` answer has no valid result"],
                    ),
                    (In::Answer(1, LEGACY), &[]),
                ],
            ),
            (
                "an initialize error",
                false,
                &[(
                    In::Answer(1, NOT_FOUND),
                    &["failed: `initialize` failed: error -32601: no"],
                )],
            ),
            (
                "silence",
                true,
                &[
                    (In::Timeout(1), &["send initialize#2"]),
                    (
                        In::Timeout(2),
                        &["failed: did not answer `initialize` within 10s"],
                    ),
                ],
            ),
            (
                "a server that does not read",
                false,
                &[(
                    In::Unsent(1),
                    &["failed: could not send `initialize`: it does not read its stdin"],
                )],
            ),
            (
                "overlong answers",
                true,
                &[
                    (In::Overlong(1), &["send initialize#2"]),
                    (In::Overlong(9), &[]),
                    (
                        In::Overlong(2),
                        &[
                            "failed: its answer to `initialize` was 9 bytes, over the limit of 8388608 bytes",
                        ],
                    ),
                ],
            ),
            (
                "a listing page error",
                false,
                &[
                    (
                        In::Answer(1, LEGACY),
                        &[
                            "send notifications/initialized",
                            r#"ready Legacy("2025-06-18")"#,
                            "listing tools/list",
                            "send tools/list#2",
                        ],
                    ),
                    (
                        In::Answer(2, NOT_FOUND),
                        &[
                            "refused tools/list: `tools/list` failed: error -32601: no",
                            "listing prompts/list",
                            "send prompts/list#3",
                        ],
                    ),
                    (
                        In::Answer(3, r#""result":{"tools":[]}"#),
                        &[
                            "refused prompts/list: `prompts/list` answered without `prompts`",
                            "done",
                        ],
                    ),
                ],
            ),
        ];
        for (what, probe, script) in scripts {
            let mut startup = machine();
            let first = show(startup.start(*probe));
            let want = if *probe {
                "send server/discover#1"
            } else {
                "send initialize#1"
            };
            assert_eq!(first, [want], "{what}");
            for (step, (input, want)) in script.iter().enumerate() {
                assert_eq!(
                    feed(&mut startup, *input),
                    *want,
                    "{what}, step {step}: {input:?}"
                );
            }
        }
    }

    #[test]
    #[allow(
        clippy::too_many_lines,
        reason = "one table of scripts reads best whole"
    )]
    fn for_a_client_initialize_waits_for_it_and_declares_its_version() {
        // (what it is, probed first, the first actions, the script)
        type Script = (
            &'static str,
            bool,
            &'static [&'static str],
            &'static [(In, &'static [&'static str])],
        );
        const DISCOVER: &[&str] = &["send server/discover#1"];
        const READY: &[&str] = &[
            "send notifications/initialized",
            r#"ready Legacy("2025-03-26")"#,
        ];
        let scripts: &[Script] = &[
            (
                "a legacy server, the client later",
                true,
                DISCOVER,
                &[
                    (In::Answer(1, NOT_FOUND), &["await the client"]),
                    (In::Client, &["send initialize#2"]),
                    (In::Answer(2, LEGACY), READY),
                    (In::Client, &[]),
                ],
            ),
            (
                "the client first, then a silent probe, then a late discover result",
                true,
                DISCOVER,
                &[
                    (In::Client, &[]),
                    (In::Timeout(1), &["await the client"]),
                    (In::Client, &["send initialize#2"]),
                    (In::Answer(1, MODERN), &[r#"ready Modern("2026-07-28")"#]),
                    (In::Answer(2, LEGACY), &[]),
                    (In::Timeout(2), &[]),
                ],
            ),
            (
                "a modern server needs no client to be ready, and is not listed",
                true,
                DISCOVER,
                &[
                    (
                        In::Answer(
                            1,
                            r#""result":{"supportedVersions":["2026-07-28"],"capabilities":{"tools":{}}}"#,
                        ),
                        &[r#"ready Modern("2026-07-28")"#],
                    ),
                    (In::Client, &[]),
                ],
            ),
            (
                "started again without the probe: an error answer, in serve's words",
                false,
                &["await the client"],
                &[
                    (In::Client, &["send initialize#1"]),
                    (
                        In::Answer(1, NOT_FOUND),
                        &[
                            r#"failed: initialize failed: {"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#,
                        ],
                    ),
                ],
            ),
            (
                "a result that is no initialize result",
                false,
                &["await the client"],
                &[
                    (In::Client, &["send initialize#1"]),
                    (
                        In::Answer(1, r#""result":[]"#),
                        &["failed: initialize answer has no valid result"],
                    ),
                ],
            ),
            (
                "-32022 to the client's initialize after a silent probe: probed again",
                true,
                DISCOVER,
                &[
                    (In::Timeout(1), &["await the client"]),
                    (In::Client, &["send initialize#2"]),
                    (
                        In::Answer(
                            2,
                            r#""error":{"code":-32022,"message":"v","data":{"supported":["2026-07-28"]}}"#,
                        ),
                        &["send server/discover#3"],
                    ),
                    (In::Answer(3, MODERN), &[r#"ready Modern("2026-07-28")"#]),
                ],
            ),
            (
                "an exit while the client is awaited",
                true,
                DISCOVER,
                &[
                    (In::Answer(1, NOT_FOUND), &["await the client"]),
                    (In::Exit, &["failed: exited (signal 9)"]),
                ],
            ),
            (
                "an exit on the probe",
                true,
                DISCOVER,
                &[(In::Exit, &["restart without probe"])],
            ),
            (
                "silence to the client's initialize",
                true,
                DISCOVER,
                &[
                    (In::Answer(1, NOT_FOUND), &["await the client"]),
                    (In::Client, &["send initialize#2"]),
                    (
                        In::Timeout(2),
                        &["failed: did not answer `initialize` within 10s"],
                    ),
                ],
            ),
        ];
        for (what, probe, first, script) in scripts {
            let mut startup = machine_for(Initialize::Clients);
            assert_eq!(show(startup.start(*probe)), *first, "{what}");
            for (step, (input, want)) in script.iter().enumerate() {
                assert_eq!(
                    feed(&mut startup, *input),
                    *want,
                    "{what}, step {step}: {input:?}"
                );
            }
        }
    }

    #[test]
    fn the_client_s_initialize_declares_what_it_declared() {
        let mut startup = machine_for(Initialize::Clients);
        startup.start(false);
        let actions = feed(&mut startup, In::Client);
        assert_eq!(actions, ["send initialize#1"]);
        let mut startup = machine_for(Initialize::Clients);
        startup.start(false);
        let hello = Hello {
            version: "2025-03-26",
            capabilities: serde_json::json!({"roots": {}}),
            info: serde_json::json!({"name": "c", "version": "1"}),
            probe_capabilities: serde_json::json!({}),
        };
        let sent = startup.startup.client(&hello, &mut || 7);
        let [Action::Send { line, .. }] = sent.as_slice() else {
            panic!("one line sent: {sent:?}");
        };
        let sent: Value = serde_json::from_slice(line).expect("json");
        assert_eq!(sent["id"], 7);
        assert_eq!(sent["params"]["protocolVersion"], "2025-03-26");
        assert_eq!(sent["params"]["capabilities"], hello.capabilities);
        assert_eq!(sent["params"]["clientInfo"], hello.info);
    }

    #[test]
    fn for_a_client_each_kind_is_listed_on_its_own_and_again_when_asked() {
        let mut m = machine_for(Initialize::Clients);
        m.start(false);
        feed(&mut m, In::Client);
        let ready = feed(&mut m, In::Answer(1, LEGACY));
        assert_eq!(ready[1], r#"ready Legacy("2025-03-26")"#);
        let list = |m: &mut Driven, kind| {
            let last = &mut m.last;
            show(m.startup.list(kind, &serde_json::json!({}), &mut || {
                *last += 1;
                *last
            }))
        };
        // Both kinds at once; asked again while listing: once more after.
        assert_eq!(
            list(&mut m, ListKind::Tools),
            ["listing tools/list", "send tools/list#2"]
        );
        assert_eq!(
            list(&mut m, ListKind::Prompts),
            ["listing prompts/list", "send prompts/list#3"]
        );
        assert!(list(&mut m, ListKind::Tools).is_empty());
        assert!(
            list(&mut m, ListKind::Tools).is_empty(),
            "a storm is one more"
        );
        let steps: &[(In, &[&str])] = &[
            (
                In::Answer(3, r#""result":{"prompts":[{"name":"p"}],"nextCursor":"c"}"#),
                &["send prompts/list#4"],
            ),
            (
                In::Answer(2, r#""result":{"tools":[{"name":"a"}],"ttlMs":500}"#),
                &[
                    r#"listed tools/list ["a"] ttl 500"#,
                    "listing tools/list",
                    "send tools/list#5",
                ],
            ),
            // A page that fails: refused, the server is not.
            (
                In::Answer(4, NOT_FOUND),
                &["refused prompts/list: `prompts/list` failed: error -32601: no"],
            ),
            (In::Answer(4, r#""result":{"prompts":[]}"#), &[]),
            // Silence: abandoned, and asked again later.
            (
                In::Timeout(5),
                &["abandoned tools/list: did not answer `tools/list` within 10s"],
            ),
            (In::Answer(5, r#""result":{"tools":[]}"#), &[]),
            (In::Overlong(9), &[]),
        ];
        for (step, (input, want)) in steps.iter().enumerate() {
            assert_eq!(feed(&mut m, *input), *want, "step {step}: {input:?}");
        }
        assert!(!m.startup.expects(5), "an abandoned page is forgotten");
        assert_eq!(
            list(&mut m, ListKind::Tools),
            ["listing tools/list", "send tools/list#6"]
        );
        assert_eq!(
            feed(&mut m, In::Overlong(6)),
            [
                "abandoned tools/list: its answer to `tools/list` was 9 bytes, over the limit of 8388608 bytes"
            ]
        );
        // An exit ends it; nothing more is listed.
        assert_eq!(feed(&mut m, In::Exit), ["failed: exited (signal 9)"]);
        assert!(list(&mut m, ListKind::Tools).is_empty());
    }

    #[test]
    fn for_a_client_nothing_is_listed_before_ready() {
        let mut m = machine_for(Initialize::Clients);
        m.start(true);
        let last = &mut m.last;
        let asked = m
            .startup
            .list(ListKind::Tools, &serde_json::json!({}), &mut || {
                *last += 1;
                *last
            });
        assert!(asked.is_empty());
    }

    /// Answers every list request until the machine stops asking; the listed items.
    fn list_until_done(page: impl Fn(u64) -> String) -> (u64, Vec<String>) {
        let mut startup = machine();
        startup.start(false);
        let ready = r#""result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}}}"#;
        let mut actions = startup.on(Event::Answer(&message(&format!(
            r#"{{"jsonrpc":"2.0","id":1,{ready}}}"#
        ))));
        let mut asked = 0;
        loop {
            let mut next = None;
            for action in actions {
                match action {
                    Action::Send {
                        wait: Some((id, _)),
                        ..
                    } => next = Some(id),
                    Action::Listed { items, .. } => return (asked, items),
                    _ => {}
                }
            }
            let id = next.expect("a page asked for");
            asked += 1;
            let answer = message(&format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{}}}"#,
                page(id)
            ));
            actions = startup.on(Event::Answer(&answer));
        }
    }

    #[test]
    fn a_cursor_loop_ends_at_the_page_bound() {
        let (asked, items) = list_until_done(|id| {
            format!(r#"{{"tools":[{{"name":"t{id}"}}],"nextCursor":"same"}}"#)
        });
        assert_eq!(asked, u64::from(MAX_PAGES));
        assert_eq!(items.len(), usize::try_from(MAX_PAGES).expect("small"));
    }

    #[test]
    fn a_listing_keeps_at_most_the_item_bound() {
        let tools: Vec<String> = (0..=MAX_ITEMS)
            .map(|i| format!(r#"{{"name":"t{i}"}}"#))
            .collect();
        let page = format!(r#"{{"tools":[{}],"nextCursor":"more"}}"#, tools.join(","));
        let (asked, items) = list_until_done(|_| page.clone());
        assert_eq!(asked, 1, "no page asked past the bound");
        assert_eq!(items.len(), MAX_ITEMS);
    }
}
