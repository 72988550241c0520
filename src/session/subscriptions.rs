//! A modern client's `subscriptions/listen` (docs/dual-era.md §2.4): acknowledged by
//! mcp-warden with what it honours, its catalog changes told to the listens that
//! asked, resource updates re-tagged with the listen's id; the URIs a listen names
//! are subscribed on their legacy upstream (reference-counted in
//! [`crate::era::subscriptions::Subscriptions`]). A listen is never answered while
//! open: cancelled by the client, or closed with a result when mcp-warden stops.

use serde_json::Value;

use super::catalog::ListKind;
use super::{Origin, Pending, Session, SlotState, reparse, wire};
use crate::era::Era;
use crate::era::subscriptions::{Filter, UpstreamChange, tagged};
use crate::jsonrpc::{ErrorCode, Id, Message};
use crate::router::UriRoute;
use crate::stages::{Direction, Verdict, View, decide, hold};

impl Session {
    /// `subscriptions/listen` (id `c`): acknowledged at once; never answered while open.
    pub(super) fn on_listen(&mut self, msg: &Message, origin: &Origin) {
        // Never answered while open: a batch holding one would never be answered.
        if origin.batch.is_some() {
            let text = "`subscriptions/listen` cannot be part of a batch";
            return self.reply_error(origin, ErrorCode::InvalidRequest, text);
        }
        if self.subs.is_open(&origin.id) {
            let text = format!("subscription {} is already open", origin.id);
            return self.reply_error(origin, ErrorCode::InvalidRequest, &text);
        }
        let params: Value = msg
            .params()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(Value::Null);
        let mut filter = Filter::parse(&params);
        if Filter::asks_task_ids(&params) && !origin.declares_tasks() {
            return self.refuse_without_tasks_extension(origin);
        }
        // Only this session's extension tasks, of server processes still running.
        filter.task_ids.retain(|ours| self.listenable_task(ours));
        let task_slots = self.task_slots(&filter.task_ids);
        // Only the URIs a server subscribes to, that no hold or policy stops.
        let routed: Vec<(String, usize)> = std::mem::take(&mut filter.uris)
            .into_iter()
            .filter_map(|uri| self.subscribable(&uri).map(|slot| (uri, slot)))
            .collect();
        filter.uris = routed.iter().map(|(uri, _)| uri.clone()).collect();
        let ack = filter.to_ack();
        let first = match self.subs.open(origin.id.clone(), filter) {
            Ok(first) => first,
            Err(e) => return self.reply_error(origin, ErrorCode::Internal, &e.to_string()),
        };
        let mut params = tagged(None, &origin.id);
        params["notifications"] = ack;
        self.out.push_back(wire::notification(
            "notifications/subscriptions/acknowledged",
            Some(params),
        ));
        self.need_changed(
            routed.into_iter().filter(|(uri, _)| first.contains(uri)),
            "resources/subscribe",
        );
        // A modern server's listen widened with the server's ids of these tasks.
        for slot in task_slots {
            self.listen_upstream(slot);
        }
    }

    /// The client's `notifications/cancelled` for an open listen ends it (no answer);
    /// `false` when `id` is not a listen.
    pub(super) fn cancel_listen(&mut self, id: &Id) -> bool {
        let Some((filter, last)) = self.subs.close(id) else {
            return false;
        };
        for slot in self.task_slots(&filter.task_ids) {
            self.listen_upstream(slot);
        }
        let routed: Vec<(String, usize)> = last
            .into_iter()
            .filter_map(|uri| match self.uri_route(&uri) {
                UriRoute::Slot(slot) => Some((uri, slot)),
                _ => None,
            })
            .collect();
        self.need_changed(routed.into_iter(), "resources/unsubscribe");
        true
    }

    /// URIs whose need began or ended, each with its slot: a legacy server is sent
    /// `method` for each; a modern one gets its listen changed once.
    fn need_changed(&mut self, routed: impl Iterator<Item = (String, usize)>, method: &str) {
        let mut modern: Vec<usize> = Vec::new();
        for (uri, slot) in routed {
            if matches!(self.slots[slot].state.era(), Some(Era::Modern(_))) {
                if !modern.contains(&slot) {
                    modern.push(slot);
                }
            } else {
                self.send_subscription(slot, method, &uri);
            }
        }
        for slot in modern {
            self.listen_upstream(slot);
        }
    }

    /// Our catalog of `kind` changed: each listen that asked is told, tagged.
    pub(super) fn tell_listens(&mut self, kind: ListKind) {
        let lines: Vec<_> = self
            .subs
            .asking(kind)
            .map(|id| wire::notification(kind.changed_notification(), Some(tagged(None, id))))
            .collect();
        self.out.extend(lines);
    }

    /// An upstream's `notifications/resources/updated`: to each listen naming the
    /// URI, re-tagged with its id (through the output filter, as every notification).
    pub(super) fn updated_to_listens(&mut self, index: usize, msg: &Message) {
        let Some(uri) = msg
            .param(&["uri"])
            .and_then(|(raw, _)| serde_json::from_str::<String>(raw).ok())
        else {
            return;
        };
        let lines: Vec<_> = self
            .subs
            .naming(&uri)
            .map(|id| {
                wire::notification(
                    msg.method().unwrap_or_default(),
                    Some(tagged(msg.params(), id)),
                )
            })
            .collect();
        for line in lines {
            self.forward_to_client(index, line);
        }
    }

    /// A legacy upstream (re)initialized: every URI still needed that routes to it is
    /// subscribed again (a new process knows none of them).
    pub(super) fn resubscribe(&mut self, index: usize) {
        let uris: Vec<String> = self.subs.uris().map(str::to_owned).collect();
        for uri in uris {
            if matches!(self.uri_route(&uri), UriRoute::Slot(slot) if slot == index) {
                self.send_subscription(index, "resources/subscribe", &uri);
            }
        }
    }

    /// At shutdown each open listen is closed with a result (graceful closure).
    pub(super) fn close_listens(&mut self) {
        for id in self.subs.drain() {
            let meta = tagged(None, &id);
            let result = serde_json::json!({"resultType": "complete", "_meta": meta["_meta"]});
            self.out.push_back(crate::jsonrpc::error::result_response(
                &id,
                &result.to_string(),
            ));
        }
    }

    /// The slot that subscribes `uri` for a listen, when no hold and no policy
    /// rule stops a subscription to it (judged as the client's own
    /// `resources/subscribe` would be, without asking: `ask` is not honoured).
    fn subscribable(&mut self, uri: &str) -> Option<usize> {
        let UriRoute::Slot(slot) = self.uri_route(uri) else {
            return None;
        };
        let offers = matches!(&self.slots[slot].state, SlotState::Ready { capabilities, .. }
            if capabilities["resources"]["subscribe"] == Value::Bool(true));
        if !offers {
            return None;
        }
        // Judged as a `resources/subscribe` of that URI (the listen's id does not
        // matter to a rule).
        let params = serde_json::json!({"uri": uri});
        let msg = reparse(&wire::request(0, "resources/subscribe", Some(&params)))?;
        let server = self.slots[slot].config.name.clone();
        let view = View::of(Direction::ToUpstream, &msg)
            .server(&server)
            .name(Some(uri));
        if matches!(
            hold::hold(&view, |_, uri| self.pins.held_resource(uri)),
            Verdict::Stop(_)
        ) {
            return None;
        }
        let policy = self.policy();
        let cwd = self.slots[slot]
            .config
            .cwd
            .clone()
            .or_else(|| self.workspace_root.clone());
        let inputs = decide::Inputs {
            policy: &policy,
            flows: &self.flows,
            pinned: None,
            cwd: cwd.as_deref(),
        };
        let verdict = decide::decide(
            &view,
            &msg,
            &inputs,
            &mut self.rate.calls,
            std::time::Instant::now(),
        );
        matches!(
            verdict,
            Verdict::Pass | Verdict::Rewrite(_) | Verdict::Mark(_)
        )
        .then_some(slot)
    }

    /// mcp-warden's own `resources/subscribe` or `unsubscribe` of `uri` on `slot`;
    /// its answer is nobody's.
    fn send_subscription(&mut self, slot: usize, method: &str, uri: &str) {
        let id = self.slots[slot].mint(Pending::Internal);
        let params = serde_json::json!({"uri": uri});
        self.send_upstream_raw(slot, wire::request(id, method, Some(&params)));
    }
}

impl Session {
    /// An upstream's `notifications/resources/updated`: to each listen naming the
    /// URI (tagged with its id), and to a legacy client as it came, less a modern
    /// server's tag (the id of our listen means nothing to the client).
    pub(super) fn on_resource_updated(&mut self, index: usize, msg: &Message) {
        self.updated_to_listens(index, msg);
        if !self.client.initialized {
            return;
        }
        let tagged_by_server = msg
            .param(&["_meta", crate::era::subscriptions::SUBSCRIPTION_ID])
            .is_some();
        let line = if tagged_by_server {
            let params = crate::era::subscriptions::untagged(msg.params());
            wire::notification(msg.method().unwrap_or_default(), params)
        } else {
            msg.to_line()
        };
        self.forward_to_client(index, line);
    }

    /// A legacy client's `resources/subscribe` or `unsubscribe` of `uri`, decided and
    /// routed to `slot`: counted with the listens' needs. A modern server (which has
    /// no such methods) gets our listen changed instead, and an unsubscribe a listen
    /// still needs is not sent on; both answered `{}` here (`true`). `false`: send it
    /// on as it is.
    pub(super) fn legacy_subscription(
        &mut self,
        slot: usize,
        uri: &str,
        method: &str,
        origin: &Origin,
    ) -> bool {
        let modern = matches!(self.slots[slot].state.era(), Some(Era::Modern(_)));
        let changed = if method == "resources/subscribe" {
            self.subs.subscribe(uri)
        } else {
            self.subs.unsubscribe(uri)
        };
        if modern {
            if changed {
                self.listen_upstream(slot);
            }
        } else if changed || method == "resources/subscribe" {
            return false;
        }
        self.reply_result(origin, "{}");
        true
    }

    /// mcp-warden's own listen on modern server `index`, for the union of what the
    /// session needs of it: its lists' changes (the rug-pull check must not depend on
    /// a client listening, or on `ttlMs`) and the URIs routed to it. Opened when the
    /// server is ready; replaced (the old one cancelled) when that union changes.
    pub(super) fn listen_upstream(&mut self, index: usize) {
        let SlotState::Ready {
            era: Era::Modern(version),
            capabilities,
            ..
        } = &self.slots[index].state
        else {
            return;
        };
        let version = *version;
        let mut filter = Filter::default();
        for kind in ListKind::ALL {
            filter.lists[kind.index()] =
                capabilities[kind.capability()]["listChanged"] == Value::Bool(true);
        }
        let mut uris: Vec<String> = self.subs.uris().map(str::to_owned).collect();
        uris.retain(|uri| matches!(self.uri_route(uri), UriRoute::Slot(s) if s == index));
        uris.sort();
        filter.uris = uris;
        filter.task_ids = self.server_task_ids(index);
        let UpstreamChange::Replace { cancel: old } = self.subs.upstream_change(index, &filter)
        else {
            return;
        };
        if let Some(old) = old {
            self.slots[index].pending.remove(&old);
            let params = serde_json::json!({"requestId": old});
            self.send_upstream_raw(
                index,
                wire::notification("notifications/cancelled", Some(params)),
            );
        }
        let id = (filter != Filter::default()).then(|| {
            let caps = self.declared_capabilities(index, None);
            let params = serde_json::json!({
                "notifications": filter.to_ack(),
                "_meta": crate::era::meta::envelope(version, &caps),
            });
            let id = self.slots[index].mint(Pending::Listen);
            self.send_upstream_raw(
                index,
                wire::request(id, "subscriptions/listen", Some(&params)),
            );
            id
        });
        self.subs.opened_upstream(index, id, filter);
    }

    /// A modern server's `notifications/cancelled` for our listen: closed as by an
    /// answer; `false` when it is about something else.
    pub(super) fn upstream_listen_cancelled(&mut self, index: usize, msg: &Message) -> bool {
        let Some(ours) = msg
            .param(&["requestId"])
            .and_then(|(raw, _)| raw.parse::<u64>().ok())
            .filter(|&ours| self.subs.is_upstream(index, ours))
        else {
            return false;
        };
        self.slots[index].pending.remove(&ours);
        if self.subs.upstream_closed(index, ours) {
            self.listen_upstream(index);
        }
        true
    }

    /// A modern server answered our listen: it closed it (S/basic/patterns/
    /// subscriptions.mdx); opened again, unless this process keeps closing it.
    pub(super) fn on_upstream_listen_closed(&mut self, index: usize, msg: &Message, id: &Id) {
        let Some(ours) = id.as_u64() else { return };
        let reopen = self.subs.upstream_closed(index, ours);
        let server = &self.slots[index].config.name;
        if let Some(error) = msg.error() {
            // Refused (a server without subscriptions): asking again would be refused.
            tracing::info!(server = %server, error, "the server refused mcp-warden's subscriptions/listen; its lists are relisted on `ttlMs` only");
        } else if reopen {
            self.listen_upstream(index);
        } else {
            tracing::warn!(server = %server, "the server keeps closing mcp-warden's subscriptions/listen; left closed");
        }
    }
}
