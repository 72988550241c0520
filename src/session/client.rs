//! The client side of the session: what the client sends, and how its requests reach
//! an upstream.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::wire;
use super::{Batch, Deferred, Origin, Pending, Reverse, Session, SlotState, Timer, reparse};
use crate::filter::{Context, Direction, Verdict};
use crate::jsonrpc::message::{Parsed, span_in};
use crate::jsonrpc::{ErrorCode, Id, Kind, Line, Message, error_response, parse};
use crate::upstream::SendError;

impl Session {
    // ----- client side ------------------------------------------------------------

    pub(super) fn on_client_line(&mut self, line: Line) {
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

    pub(super) fn on_client_batch(
        &mut self,
        items: Vec<Result<Message, crate::jsonrpc::ParseError>>,
    ) {
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

    pub(super) fn on_client_message(&mut self, msg: Message, batch: Option<u64>) {
        match msg.kind().clone() {
            Kind::Request { id, method } => {
                self.on_client_request(msg, Origin { id, batch }, &method);
            }
            Kind::Notification { method } => self.on_client_notification(&msg, &method),
            Kind::Response { id, .. } => self.on_client_response(&msg, &id),
        }
    }

    pub(super) fn on_client_request(&mut self, msg: Message, origin: Origin, method: &str) {
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

    pub(super) fn on_initialize(&mut self, msg: &Message, origin: Origin) {
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

    pub(super) fn on_client_notification(&mut self, msg: &Message, method: &str) {
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

    pub(super) fn on_client_cancel(&mut self, msg: &Message) {
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

    pub(super) fn on_client_response(&mut self, msg: &Message, id: &Id) {
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

    pub(super) fn ask_roots(&mut self) {
        let offers_roots = self.client.capabilities.get("roots").is_some();
        if self.config.reload.is_none() || !offers_roots || !self.client.initialized {
            return;
        }
        self.next_reverse += 1;
        self.reverse.insert(self.next_reverse, Reverse::Roots);
        self.out
            .push(wire::request(self.next_reverse, "roots/list", None));
    }

    pub(super) fn on_roots(&mut self, msg: &Message) {
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

    pub(super) fn fan_out_set_level(&mut self, msg: &Message) {
        for index in 0..self.slots.len() {
            if !matches!(self.slots[index].state, SlotState::Ready { .. }) {
                continue;
            }
            let id = self.slots[index].mint(Pending::Internal);
            let line = msg.rewrite(Some(&id.to_string()), &[]);
            self.forward_to_upstream(index, msg, line, None);
        }
    }

    pub(super) fn on_tool_call(&mut self, msg: Message, origin: Origin) {
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
    pub(super) fn send_client_request(
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
}
