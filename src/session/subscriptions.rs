//! A modern client's `subscriptions/listen` (docs/dual-era.md §2.4): acknowledged by
//! mcp-warden with what it honours, its catalog changes told to the listens that
//! asked, resource updates re-tagged with the listen's id; the URIs a listen names
//! are subscribed on their legacy upstream (reference-counted in
//! [`crate::era::subscriptions::Subscriptions`]). A listen is never answered while
//! open: cancelled by the client, or closed with a result when mcp-warden stops.

use serde_json::Value;

use super::catalog::ListKind;
use super::{Origin, Pending, Session, SlotState, reparse, wire};
use crate::era::subscriptions::{Filter, tagged};
use crate::jsonrpc::{ErrorCode, Id, Message};
use crate::router::UriRoute;
use crate::stages::{Direction, Verdict, View, decide, hold};

impl Session {
    /// `subscriptions/listen` (id `c`): acknowledged at once; never answered while open.
    pub(super) fn on_listen(&mut self, msg: &Message, origin: &Origin) {
        if self.subs.is_open(&origin.id) {
            let text = format!("subscription {} is already open", origin.id);
            return self.reply_error(origin, ErrorCode::InvalidRequest, &text);
        }
        let params: Value = msg
            .params()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(Value::Null);
        let mut filter = Filter::parse(&params);
        // Only the URIs a legacy upstream subscribes to, that no hold or policy stops.
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
        for (uri, slot) in routed {
            if first.contains(&uri) {
                self.send_subscription(slot, "resources/subscribe", &uri);
            }
        }
    }

    /// The client's `notifications/cancelled` for an open listen ends it (no answer);
    /// `false` when `id` is not a listen.
    pub(super) fn cancel_listen(&mut self, id: &Id) -> bool {
        let Some((_, last)) = self.subs.close(id) else {
            return false;
        };
        for uri in last {
            if let UriRoute::Slot(slot) = self.uri_route(&uri) {
                self.send_subscription(slot, "resources/unsubscribe", &uri);
            }
        }
        true
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

    /// The legacy slot that subscribes `uri` for a listen, when no hold and no policy
    /// rule stops a subscription to it (judged as the client's own
    /// `resources/subscribe` would be, without asking: `ask` is not honoured).
    fn subscribable(&mut self, uri: &str) -> Option<usize> {
        let UriRoute::Slot(slot) = self.uri_route(uri) else {
            return None;
        };
        let offers = matches!(&self.slots[slot].state, SlotState::Ready { era: crate::era::Era::Legacy(_), capabilities, .. }
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
