//! The upstream side of the session: starting and stopping servers, their handshake and
//! tool listings, and everything they send.

use std::collections::HashMap;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::tools::{self, MAX_PAGES, MAX_TOOLS_PER_SERVER, Page};
use super::wire;
use super::{
    NOISE_LOG_EVERY, Pending, Reverse, Session, Slot, SlotState, Timer, ToolsState, reparse,
};
use crate::config::ServerConfig;
use crate::filter::{Block, Context, Direction, Verdict};
use crate::jsonrpc::message::Parsed;
use crate::jsonrpc::{ErrorCode, Id, Kind, Line, Message, error_response, parse};
use crate::upstream::{self, UpstreamEvent};

impl Session {
    // ----- upstream set -----------------------------------------------------------

    pub(super) fn start_servers(&mut self, servers: Vec<ServerConfig>) {
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
    pub(super) fn stop_all_servers(&mut self, why: &str) {
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

    pub(super) fn begin_handshake(&mut self, index: usize) {
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
    pub(super) fn fail_slot(&mut self, index: usize, why: &str) {
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

    // ----- upstream side ----------------------------------------------------------

    pub(super) fn on_upstream_event(&mut self, event: UpstreamEvent) {
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
    pub(super) fn noise(&mut self, index: usize, why: &str) {
        let slot = &mut self.slots[index];
        slot.noise += 1;
        if slot.noise <= 10 || slot.noise.is_multiple_of(NOISE_LOG_EVERY) {
            tracing::warn!(server = %slot.config.name, count = slot.noise, why, "dropped a non-JSON-RPC line from the server's stdout");
        }
    }

    pub(super) fn on_upstream_message(&mut self, index: usize, msg: &Message) {
        match msg.kind().clone() {
            Kind::Response { id, .. } => self.on_upstream_response(index, msg, &id),
            Kind::Request { id, method } => self.on_upstream_request(index, msg, id, &method),
            Kind::Notification { method } => self.on_upstream_notification(index, msg, &method),
        }
    }

    pub(super) fn on_upstream_response(&mut self, index: usize, msg: &Message, id: &Id) {
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

    pub(super) fn on_upstream_initialized(&mut self, index: usize, msg: &Message) {
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
    pub(super) fn list_tools(&mut self, index: usize, cursor: Option<&str>) {
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

    pub(super) fn on_tools_page(&mut self, index: usize, msg: &Message) {
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

    pub(super) fn on_upstream_request(
        &mut self,
        index: usize,
        msg: &Message,
        id: Id,
        method: &str,
    ) {
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

    pub(super) fn on_upstream_notification(&mut self, index: usize, msg: &Message, method: &str) {
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
    pub(super) fn refuse_upstream_request(
        &mut self,
        index: usize,
        id: &Id,
        rule: &str,
        reason: String,
    ) {
        let block = Block {
            rule: rule.into(),
            reason,
        };
        tracing::info!(server = %self.slots[index].config.name, rule, "server-to-client request refused");
        let data = Some(wire::blocked_data("deny", &block));
        self.answer_upstream(index, id, Err((ErrorCode::Blocked, block.reason, data)));
    }

    pub(super) fn answer_upstream(
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
    pub(super) fn send_upstream_raw(&mut self, index: usize, line: Bytes) {
        let slot = &self.slots[index];
        if let Some(up) = &slot.upstream
            && let Err(e) = up.send(line)
        {
            tracing::warn!(server = %slot.config.name, ?e, "could not queue a message for the server");
        }
    }

    /// Forwards a message from the client through the chain to an upstream, as `line`.
    pub(super) fn forward_to_upstream(
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
}
