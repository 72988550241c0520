//! The era of each upstream (`docs/dual-era.md` §1.3), once its start-up machine
//! found it (`startup.rs`, [`crate::upstream::startup`]: the `server/discover` probe,
//! its answer or its silence): a server that refuses us, what a modern upstream is
//! sent in each request's `_meta`, and when its lists are listed again (`ttlMs`).

use serde_json::Value;

use super::{ListKind, Session, SlotState};
use crate::era::{Era, meta};
use crate::jsonrpc::Message;

impl Session {
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
            self.list(index, kind);
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
