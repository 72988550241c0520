//! The session's driver of each upstream's start-up machine
//! ([`crate::upstream::startup`]): the probe, its wait and late answer, the legacy
//! handshake and the paged listings are the machine's; this file gives it ids from
//! the slot's one id table (client calls share it), sends its lines, arms its waits
//! on the session's timers, feeds it answers, waits run out and exits, and carries
//! out what it says. What the session keeps of a listing is its own: the previous
//! list served while a new one runs and kept when it fails, `ttlMs` and when each
//! kind was listed, and whether the client is told.

use super::{ListState, Pending, Session, SlotState, Timer};
use crate::era::Era;
use crate::router::catalog::{self, Item, ListKind};
use crate::upstream::InstanceId;
use crate::upstream::handshake::Initialized;
use crate::upstream::startup::{Action, Event, Greeting, Hello, Initialize, Startup};

/// What fed the machine, for what its failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fed {
    /// A wait ran out: a hung handshake; its process is stopped and started again.
    Wait,
    /// Anything else: a failure keeps the process (as an error answer always has).
    Other,
}

impl Session {
    /// Starts the machine of slot `index`'s freshly spawned process: the probe
    /// (unless its process once exited on it), else the handshake when the client is
    /// there.
    pub(super) fn start_machine(&mut self, index: usize) {
        let handshake = self.declared_capabilities(index, None);
        let slot = &mut self.slots[index];
        let greeting = Greeting {
            server: slot.config.name.to_string(),
            timeout: slot.config.request_timeout,
            listing: handshake.clone(),
            handshake,
            initialize: Initialize::Clients,
        };
        let namespace = slot.config.namespace.clone();
        let name = slot.config.name.clone();
        let read = move |kind: ListKind, raw: &serde_json::value::RawValue| {
            let item = catalog::read_item(kind, &namespace, raw)?;
            if kind != ListKind::Templates && item.is_mapped(&namespace) {
                tracing::info!(server = %name, item = %item.name, exposed = %item.exposed, "name mapped to a client-valid name");
            }
            Some((item.exposed.clone(), item))
        };
        let mut startup = Startup::new(greeting, read);
        let pending = &mut slot.pending;
        let actions = startup.start(!slot.probe_fatal, &mut || pending.mint(Pending::Startup));
        slot.startup = Some(startup);
        self.carry_out(index, actions, Fed::Other);
    }

    /// Feeds slot `index`'s machine one event; what it asks (nothing without one).
    pub(super) fn feed_machine(&mut self, index: usize, event: Event<'_>) -> Vec<Action<Item>> {
        let slot = &mut self.slots[index];
        let (Some(startup), pending) = (&mut slot.startup, &mut slot.pending) else {
            return Vec::new();
        };
        startup.on(event, &mut || pending.mint(Pending::Startup))
    }

    /// An answer to one of the machine's requests.
    pub(super) fn on_machine_answer(&mut self, index: usize, msg: &crate::jsonrpc::Message) {
        let actions = self.feed_machine(index, Event::Answer(msg));
        self.carry_out(index, actions, Fed::Other);
    }

    /// A wait the machine armed ran out (if still of the current process).
    pub(super) fn on_startup_timer(&mut self, index: usize, instance: InstanceId, id: u64) {
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        if slot.upstream.as_ref().map(|u| u.instance) != Some(instance) {
            return;
        }
        let actions = self.feed_machine(index, Event::TimedOut { id, unsent: None });
        // An answer no longer awaited (a listing's page) leaves the id table now; a
        // probe's late answer still counts.
        let slot = &mut self.slots[index];
        if !slot.startup.as_ref().is_some_and(|m| m.expects(id)) {
            slot.pending.remove(&id);
        }
        self.carry_out(index, actions, Fed::Wait);
    }

    /// Lists slot `index`'s items of `kind` (again, after `list_changed` or an
    /// expired `ttlMs`; once more after the listing under way).
    pub(super) fn list(&mut self, index: usize, kind: ListKind) {
        let declared = self.declared_capabilities(index, None);
        let slot = &mut self.slots[index];
        let (Some(startup), pending) = (&mut slot.startup, &mut slot.pending) else {
            return;
        };
        let actions = startup.list(kind, &declared, &mut || pending.mint(Pending::Startup));
        self.carry_out(index, actions, Fed::Other);
    }

    /// Slot `index`'s process exited (`why`): whether its machine asks for it to be
    /// started again at once without the probe (it exited on the probe, the first
    /// time). The rest of an exit is the session's (`upstreams.rs`).
    pub(super) fn exited_on_probe(&mut self, index: usize, why: String) -> bool {
        let actions = self.feed_machine(index, Event::Exited(why));
        let again = actions
            .iter()
            .any(|a| matches!(a, Action::RestartWithoutProbe));
        if again {
            self.slots[index].probe_fatal = true;
        }
        again
    }

    /// The client is there: a legacy server awaiting it is sent `initialize`
    /// declaring the client's version, capabilities and info.
    pub(super) fn hello_machine(&mut self, index: usize) {
        let hello = Hello {
            version: self.client.version,
            capabilities: self.client.capabilities.clone(),
            info: self.client.info.clone(),
            probe_capabilities: self.declared_capabilities(index, None),
        };
        let slot = &mut self.slots[index];
        let (Some(startup), pending) = (&mut slot.startup, &mut slot.pending) else {
            return;
        };
        let actions = startup.client(&hello, &mut || pending.mint(Pending::Startup));
        self.carry_out(index, actions, Fed::Other);
    }

    /// What slot `index`'s machine asked for, after an event `fed`.
    fn carry_out(&mut self, index: usize, actions: Vec<Action<Item>>, fed: Fed) {
        // A listing's end is judged once the whole step is carried out (a listing
        // done and begun again leaves the slot listing).
        let mut listed = false;
        for action in actions {
            match action {
                Action::Send { line, wait } => {
                    let instance = self.slots[index].upstream.as_ref().map(|u| u.instance);
                    if let (Some((id, wait)), Some(instance)) = (wait, instance) {
                        let timer = Timer::Startup {
                            slot: index,
                            instance,
                            id,
                        };
                        self.timers.insert(timer, wait);
                    }
                    self.send_upstream_raw(index, line);
                }
                Action::AwaitClient => {
                    tracing::debug!(server = %self.slots[index].config.name, "legacy server");
                    self.slots[index].state = SlotState::Spawned;
                    if self.client.started {
                        self.hello_machine(index);
                    }
                    self.after_state_change();
                }
                Action::Ready { era, server } => self.on_slot_ready(index, era, *server),
                Action::Refused(why) => self.refuses_us(index, &why),
                Action::Failed(why) => {
                    tracing::error!(server = %self.slots[index].config.name, %why, "upstream handshake failed");
                    self.fail_slot(index, &why);
                    if fed == Fed::Wait {
                        if let Some(up) = self.slots[index].upstream.take() {
                            self.instances.remove(&up.instance);
                            self.stopping.spawn(up.shutdown());
                        }
                        self.schedule_restart(index);
                    }
                }
                Action::Listing(kind) => {
                    // The previous list stays served while this one runs.
                    let state = &mut self.slots[index].lists[kind.index()];
                    if !matches!(state, ListState::Listing { .. }) {
                        let previous = match std::mem::take(state) {
                            ListState::Listed(items) => items,
                            _ => Vec::new(),
                        };
                        *state = ListState::Listing { previous };
                    }
                }
                Action::Listed {
                    kind,
                    items,
                    ttl_ms,
                } => {
                    let slot = &mut self.slots[index];
                    let i = kind.index();
                    slot.lists[i] = ListState::Listed(items);
                    slot.listed_at[i] = Some(std::time::Instant::now());
                    slot.list_ttl[i] = ttl_ms;
                    // A refresh for an expired `ttlMs` is announced only if the catalog
                    // changes (`rebuild_catalog`): a client that lists on `list_changed`
                    // would otherwise make the next refresh, and so on.
                    if !std::mem::take(&mut slot.refreshing[i]) {
                        self.announce[i] = true;
                    }
                    listed = true;
                }
                Action::ListRefused(kind, why) => {
                    tracing::error!(server = %self.slots[index].config.name, %why, "the listing failed; keeping what was listed before");
                    self.abandon_listing(index, kind);
                    listed = true;
                }
                Action::ListAbandoned(kind, why) => {
                    tracing::error!(server = %self.slots[index].config.name, method = kind.method(), %why, "the listing timed out; keeping what was listed before");
                    self.abandon_listing(index, kind);
                    listed = true;
                }
                // An exit's restart is `exited_on_probe`'s; `Done` is the inventory's.
                Action::RestartWithoutProbe | Action::Done => {}
            }
        }
        if listed {
            self.after_state_change();
        }
    }

    /// A listing that failed or timed out: what was listed before stays.
    fn abandon_listing(&mut self, index: usize, kind: ListKind) {
        let state = &mut self.slots[index].lists[kind.index()];
        if let ListState::Listing { previous } = std::mem::take(state) {
            *state = ListState::Listed(previous);
        }
    }

    /// Ready in `era`: a modern server (ready since its probe) is listed once the
    /// client is there; a legacy one, initialized for the client, is listed now.
    fn on_slot_ready(&mut self, index: usize, era: Era, server: Initialized) {
        let slot = &mut self.slots[index];
        let offered: Vec<ListKind> = ListKind::offered(&server.capabilities).collect();
        slot.state = SlotState::Ready {
            era,
            instructions: server.instructions,
            capabilities: server.capabilities,
        };
        if era.is_modern() {
            tracing::info!(server = %slot.config.name, era = ?era, "modern server (answered `server/discover`)");
            // A new process: our listen on the last one is gone with it.
            self.subs.forget_upstream(index);
            if self.client.started {
                self.begin_handshake(index);
            }
        } else {
            let instance = slot.upstream.as_ref().map(|u| u.instance);
            tracing::info!(server = %slot.config.name, ?instance, "upstream initialized");
            self.resubscribe(index);
            for kind in offered {
                self.list(index, kind);
            }
        }
        self.after_state_change();
    }
}
