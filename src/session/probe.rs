//! The era of each upstream (`docs/dual-era.md` §1.3): the `server/discover` probe
//! sent when its process starts, its answer or its silence, and what a modern
//! upstream is sent in each request's `_meta`. The rules are [`crate::era::probe`]'s;
//! this file sends, times and records.

use serde_json::Value;

use super::{ListKind, Pending, Session, SlotState, Timer};
use crate::era::probe::{self, ProbeOutcome};
use crate::era::{Era, meta};
use crate::jsonrpc::Message;
use crate::upstream::InstanceId;
use crate::upstream::slot::AfterProbe;

impl Session {
    /// Sends the probe at `version`; the slot waits in [`SlotState::Probing`] for at
    /// most [`probe::PROBE_WAIT`] (or its `request_timeout`, when shorter).
    pub(super) fn send_probe(&mut self, index: usize, version: &'static str) {
        let slot = &mut self.slots[index];
        let Some(instance) = slot.upstream.as_ref().map(|u| u.instance) else {
            return;
        };
        let id = slot.mint(Pending::Probe(version));
        slot.state = SlotState::Probing { version };
        let wait = probe::PROBE_WAIT.min(slot.config.request_timeout);
        let caps = self.declared_capabilities(index, None);
        self.timers.insert(
            Timer::Probe {
                slot: index,
                instance,
                id,
            },
            wait,
        );
        self.send_upstream_raw(index, probe::discover_request(id, version, &caps));
    }

    /// The probe's answer: the era for the life of this process.
    pub(super) fn on_probe_answer(&mut self, index: usize, msg: &Message, asked: &'static str) {
        if !matches!(self.slots[index].state, SlotState::Probing { .. }) {
            return;
        }
        let outcome = probe::classify(msg, asked);
        self.after_probe(index, outcome);
    }

    /// Carries out what [`crate::upstream::slot::Probed::after`] says an outcome asks.
    pub(super) fn after_probe(&mut self, index: usize, outcome: ProbeOutcome) {
        match self.slots[index].probed.after(outcome) {
            AfterProbe::Ready(state) => {
                let slot = &mut self.slots[index];
                tracing::info!(server = %slot.config.name, era = ?state.era(), "modern server (answered `server/discover`)");
                slot.state = state;
                // A new process: our listen on the last one is gone with it.
                self.subs.forget_upstream(index);
                if self.client.started {
                    self.begin_handshake(index);
                }
                self.after_state_change();
            }
            AfterProbe::ProbeAgain(version) => self.send_probe(index, version),
            AfterProbe::Handshake => self.probed_legacy(index),
            AfterProbe::Refused(why) => self.refuses_us(index, &why),
        }
    }

    /// No answer to the probe in time: a legacy server (or a slow one; either way it
    /// gets `initialize`). A late answer finds no pending probe and is dropped.
    pub(super) fn on_probe_timeout(&mut self, index: usize, instance: InstanceId, id: u64) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if slot.upstream.as_ref().map(|u| u.instance) != Some(instance)
            || !matches!(slot.pending.get(&id), Some(Pending::Probe(_)))
        {
            return;
        }
        // Kept: a late discover result still counts (see `on_late_probe_answer`).
        if let Some(Pending::Probe(version)) = slot.pending.remove(&id) {
            slot.pending.insert(id, Pending::LateProbe(version));
        }
        tracing::info!(server = %slot.config.name, "no answer to `server/discover` in time; taken for a legacy server");
        self.probed_legacy(index);
    }

    /// A discover result after the probe's wait, while the server's `initialize` is
    /// still unanswered: modern after all (a slow start); the `initialize` answer is
    /// then ignored. Anything else, or once the handshake is done, is dropped.
    pub(super) fn on_late_probe_answer(
        &mut self,
        index: usize,
        msg: &Message,
        asked: &'static str,
    ) {
        let outcome = probe::classify(msg, asked);
        let slot = &self.slots[index];
        if matches!(outcome, ProbeOutcome::Modern(_))
            && matches!(slot.state, SlotState::Spawned | SlotState::Initializing)
        {
            tracing::info!(server = %slot.config.name, "a late answer to `server/discover`: a modern server after all");
            self.after_probe(index, outcome);
        }
    }

    fn probed_legacy(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        tracing::debug!(server = %slot.config.name, "legacy server");
        slot.state = SlotState::Spawned;
        if self.client.started {
            self.begin_handshake(index);
        }
        self.after_state_change();
    }

    /// A server that speaks no version we speak: failed for this process, said to the
    /// client (not only logged), never restarted by time (it needs the user).
    pub(super) fn refuses_us(&mut self, index: usize, why: &str) {
        let name = self.slots[index].config.name.clone();
        let text = format!("server `{name}` refuses mcp-warden: {why}");
        tracing::error!(server = %name, %why, "the server refuses us");
        crate::output::diag(&format!("mcp-warden: {text}"));
        self.tell_client("warning", text);
        self.fail_slot(index, why);
        // Its process is of no use: stopped now rather than at the end of the session.
        if let Some(up) = self.slots[index].upstream.take() {
            self.instances.remove(&up.instance);
            self.stopping.spawn(up.shutdown());
        }
    }

    /// The client capabilities declared to slot `index` for a request whose client
    /// declared `client` (`None`: those of the connection): see [`meta::mediated`].
    /// A modern request that declares the tasks extension has it declared too.
    pub(super) fn declared_capabilities(&self, index: usize, client: Option<&Value>) -> Value {
        let config = &self.slots[index].config;
        let mut caps = meta::mediated(
            client.unwrap_or(&self.client.capabilities),
            config.elicitation,
            config.sampling,
        );
        if client.is_some_and(crate::era::tasks::declares_extension) {
            caps["extensions"] = crate::era::tasks::extension_capability();
        }
        caps
    }

    /// The `_meta` edits of a request for slot `index` (`client`: the capabilities
    /// of a modern request, `None` for a legacy one): our envelope for a modern
    /// server, the modern keys of a modern request removed for a legacy one (the Python SDK's dual
    /// server refuses an enveloped request on a connection opened with `initialize`).
    pub(super) fn era_edits(
        &self,
        index: usize,
        msg: &Message,
        client: Option<&Value>,
    ) -> Vec<meta::Edit> {
        match self.slots[index].state.era() {
            Some(Era::Modern(version)) => {
                let owned = meta::Owned {
                    version,
                    capabilities: self.declared_capabilities(index, client),
                    log_level: self.client.log_level.clone(),
                };
                meta::set_owned(msg, &owned)
            }
            // A legacy request has no envelope to remove (it would be modern):
            // legacy to legacy is left exactly as before, at no cost.
            _ if client.is_none() => Vec::new(),
            _ => meta::strip_owned(msg),
        }
    }

    /// The params of one of our own list requests to slot `index`.
    pub(super) fn list_params(&self, index: usize, cursor: Option<&str>) -> Option<Value> {
        let modern = match self.slots[index].state.era() {
            Some(Era::Modern(version)) => Some((version, self.declared_capabilities(index, None))),
            _ => None,
        };
        let modern = modern.as_ref().map(|(v, caps)| (*v, caps));
        crate::upstream::listing::list_params(cursor, modern)
    }

    /// Lists again each modern server's list of `kind` whose `ttlMs` has run out: a
    /// modern server sends no `list_changed` outside `subscriptions/listen`, so its
    /// `ttlMs` is the only word on when its list may have changed. The client is
    /// answered from what was listed meanwhile; the next list sees the new one.
    pub(super) fn refresh_expired(&mut self, kind: ListKind) {
        let i = kind.index();
        let expired: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                matches!(&s.state, SlotState::Ready { era: Era::Modern(_), capabilities, .. } if capabilities.get(kind.capability()).is_some())
                    && matches!(s.lists[i], super::ListState::Listed(_))
                    && s.listed_at[i].is_none_or(|at| {
                        let ttl = std::time::Duration::from_millis(s.list_ttl[i].unwrap_or(0));
                        at.elapsed() >= ttl.max(LIST_REFRESH_FLOOR)
                    })
            })
            .map(|(index, _)| index)
            .collect();
        for index in expired {
            self.slots[index].refreshing[i] = true;
            self.list(index, kind, None);
        }
    }

    /// The smallest `ttlMs` of the lists of `kind` the catalog merges: a modern
    /// server's own (0 when it gave none), a legacy server's [`LIST_TTL_CAP`] when it
    /// announces changes, else 0 (we cannot know when it changes).
    pub(super) fn list_ttl(&self, kind: ListKind) -> u64 {
        self.slots
            .iter()
            .filter_map(|s| match &s.state {
                SlotState::Ready {
                    era, capabilities, ..
                } => {
                    let cap = capabilities.get(kind.capability())?;
                    Some(match era {
                        Era::Modern(_) => s.list_ttl[kind.index()].unwrap_or(0),
                        Era::Legacy(_) => {
                            if cap.get("listChanged") == Some(&Value::Bool(true)) {
                                LIST_TTL_CAP
                            } else {
                                0
                            }
                        }
                    })
                }
                _ => None,
            })
            .fold(LIST_TTL_CAP, u64::min)
    }
}

/// The least time between two refreshes of a modern server's list: one with `ttlMs`
/// 0 (or none) is not listed again at every client request of a busy client.
const LIST_REFRESH_FLOOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The longest `ttlMs` mcp-warden gives a merged list: five minutes. A list can
/// change without any upstream saying so (a held item approved, a policy reload), and
/// `list_changed` reaches only a client that listens.
pub const LIST_TTL_CAP: u64 = 300_000;
