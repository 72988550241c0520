//! The client side of the session: what the client sends, and how its requests reach
//! an upstream.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::catalog::ListKind;
use super::{ClientCall, Deferred, Origin, Pending, Reverse, Session, SlotState, Timer, reparse};
use super::{cursor, wire};
use crate::jsonrpc::batch::BatchAnswers;
use crate::jsonrpc::message::Parsed;
use crate::jsonrpc::{ErrorCode, Id, Kind, Line, Message, error_response, parse};
use crate::stages::{Direction, Verdict, View, audit, decide, hold};
use crate::upstream::SendError;

impl Session {
    // ----- client side ------------------------------------------------------------

    pub(super) fn on_client_line(&mut self, line: Line) {
        let bytes = match line {
            Line::Frame(bytes) => bytes,
            Line::Overlong { skipped, head } => {
                let msg = format!(
                    "message of {skipped} bytes exceeds the limit of {} bytes",
                    self.config.max_line
                );
                // Answered with its id when the head shows one (FAULTS 3), else null.
                let id = crate::jsonrpc::recover_id(&head);
                self.out.push_back(error_response(
                    id.as_ref(),
                    ErrorCode::InvalidRequest,
                    &msg,
                    None,
                ));
                return;
            }
        };
        match parse(bytes) {
            Ok(Parsed::Single(msg)) => self.on_client_message(msg, None),
            Ok(Parsed::Batch(items)) => self.on_client_batch(items),
            Err(e) => self
                .out
                .push_back(error_response(e.id.as_ref(), e.code, &e.reason, None)),
        }
    }

    pub(super) fn on_client_batch(
        &mut self,
        items: Vec<Result<Message, crate::jsonrpc::ParseError>>,
    ) {
        if self.client.version != crate::era::BATCH_VERSION {
            let msg = "batches are only allowed with protocol version 2025-03-26";
            self.out
                .push_back(error_response(None, ErrorCode::InvalidRequest, msg, None));
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
        let batch = self.batches.mint(BatchAnswers::new(answers));
        for item in items {
            match item {
                Ok(msg) => self.on_client_message(msg, Some(batch)),
                Err(e) => {
                    let origin = Origin {
                        id: e.id.clone().unwrap_or_else(|| Id::number(0)),
                        batch: Some(batch),
                        envelope: None,
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
                // The client edge of the era adapter: a request is modern iff it
                // carries the modern envelope, checked before anything else.
                let envelope = match crate::era::envelope::classify(&msg) {
                    Ok(envelope) => envelope.map(std::sync::Arc::new),
                    Err(e) => {
                        let origin = Origin {
                            id: id.clone(),
                            batch,
                            envelope: None,
                        };
                        let line = error_response(Some(&id), e.code(), &e.to_string(), e.data());
                        return self.reply(&origin, line);
                    }
                };
                let origin = Origin {
                    id,
                    batch,
                    envelope,
                };
                self.on_client_request(msg, origin, &method);
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
        // A modern request needs no handshake: the first one starts the upstreams'
        // (its capabilities are what legacy servers are initialized with).
        if let Some(envelope) = &origin.envelope
            && !self.client.started
        {
            let envelope = std::sync::Arc::clone(envelope);
            self.start_for_modern(&envelope);
        }
        self.tell_modern_client(&origin);
        let started = self.client.started;
        let modern = origin.is_modern();
        match method {
            "initialize" if self.client.legacy => {
                self.reply_error(&origin, ErrorCode::InvalidRequest, "already initialized");
            }
            "initialize" => self.on_initialize(&msg, origin),
            "ping" => self.reply_result(&origin, "{}"),
            "server/discover" if started && !self.is_settled() => {
                self.deferred.push(Deferred { msg, origin });
            }
            "server/discover" => self.on_discover(&origin),
            // The modern era sets the level per request (`logLevel` in `_meta`).
            "logging/setLevel" if modern => self.reply_error(
                &origin,
                ErrorCode::MethodNotFound,
                "`logging/setLevel` is not part of protocol version 2026-07-28; set `io.modelcontextprotocol/logLevel` per request",
            ),
            _ if !started => {
                self.reply_error(
                    &origin,
                    ErrorCode::InvalidRequest,
                    &format!("`{method}` before `initialize`"),
                );
            }
            // These read the catalogs or route among the servers: while a server is
            // starting or a catalog is being built, they wait for it.
            "tools/list"
            | "prompts/list"
            | "resources/templates/list"
            | "tools/call"
            | "prompts/get"
            | "completion/complete"
            | "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "resources/list"
            | "subscriptions/listen"
                if !self.is_settled() =>
            {
                self.deferred.push(Deferred { msg, origin });
            }
            "tools/list" => self.reply_listing(&origin, ListKind::Tools),
            "prompts/list" => self.reply_listing(&origin, ListKind::Prompts),
            "resources/templates/list" => self.reply_listing(&origin, ListKind::Templates),
            "tools/call" => self.route_named(msg, origin, ListKind::Tools),
            "prompts/get" => self.route_named(msg, origin, ListKind::Prompts),
            "completion/complete" => self.on_complete(&msg, origin),
            "resources/list" => self.on_resources_list(&msg, origin),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                self.route_by_uri(&msg, origin, method);
            }
            "tasks/get" | "tasks/result" | "tasks/cancel" if !modern => {
                self.on_task_request(&msg, origin, method);
            }
            "tasks/list" if !modern => self.on_tasks_list(&origin),
            // The 2026 extension's methods (`tasks/result` and `tasks/list` are not
            // among them: -32601 below, as any other method we do not mediate).
            "tasks/get" | "tasks/update" | "tasks/cancel" => {
                self.on_task_request(&msg, origin, method);
            }
            "subscriptions/listen" if modern => self.on_listen(&msg, &origin),
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
        self.client.version = crate::era::negotiate_legacy(params.version.as_deref());
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
        self.client.legacy = true;
        self.client.initialize = Some(origin);
        // After modern requests the handshakes are already made (and kept).
        if !self.client.started {
            self.start_handshakes();
        }
        self.after_state_change();
    }

    /// The client is there: every upstream's handshake (legacy) or listing (modern)
    /// starts, and the client waits for them at most [`super::STARTUP_WAIT`].
    fn start_handshakes(&mut self) {
        self.client.started = true;
        self.timers.insert(Timer::StartupWait, super::STARTUP_WAIT);
        for index in 0..self.slots.len() {
            self.begin_handshake(index);
        }
    }

    /// What mcp-warden has to tell a client that never sent `initialize` (a server
    /// that refuses us, a collision) goes out as `notifications/message` within its
    /// next request that asks for warnings: the only channel the modern era leaves
    /// (S/server/utilities/logging.mdx).
    fn tell_modern_client(&mut self, origin: &Origin) {
        let wants = origin
            .envelope
            .as_ref()
            .and_then(|e| e.log_level.as_deref())
            .and_then(crate::era::log_rank)
            .is_some_and(|rank| Some(rank) <= crate::era::log_rank("warning"));
        if !wants || self.client.initialized {
            return;
        }
        for notice in std::mem::take(&mut self.notices) {
            self.out.push_back(wire::log_message("warning", &notice));
        }
    }

    /// A modern client's first request: legacy upstreams are initialized with its
    /// capabilities and identity at our newest legacy version.
    fn start_for_modern(&mut self, envelope: &crate::era::envelope::Envelope) {
        self.client.version = crate::era::LEGACY_VERSIONS[0];
        self.client.capabilities = envelope.capabilities.clone();
        self.client.info = envelope
            .info
            .clone()
            .unwrap_or_else(|| serde_json::json!({"name": "unknown-client", "version": "0"}));
        self.start_handshakes();
    }

    /// `server/discover`, from any client at any time: every version we speak, the
    /// merged capabilities, our identity (S/server/discover.mdx).
    fn on_discover(&mut self, origin: &Origin) {
        let instructions = self.merged_instructions();
        let mut capabilities = self.merged_capabilities();
        // 2025-11-25 tasks are a legacy capability; the 2026 extension is offered when
        // a ready server offers it.
        if let Some(caps) = capabilities.as_object_mut() {
            caps.remove("tasks");
            if self.offers_tasks_extension() {
                caps.insert(
                    "extensions".to_owned(),
                    crate::era::tasks::extension_capability(),
                );
            }
        }
        let ttl = self
            .slots
            .iter()
            .filter(|s| s.state.era().is_some_and(crate::era::Era::is_modern))
            .map(|s| {
                s.startup
                    .as_ref()
                    .and_then(|m| m.probed().ttl_ms)
                    .unwrap_or(0)
            })
            .min()
            .unwrap_or(0);
        let result = wire::discover_result(&capabilities, instructions.as_deref(), ttl);
        self.reply_result(origin, &result);
    }

    pub(super) fn on_client_notification(&mut self, msg: &Message, method: &str) {
        match method {
            "notifications/initialized" => {
                if self.client.initialized {
                    return;
                }
                self.client.initialized = true;
                for notice in std::mem::take(&mut self.notices) {
                    self.out.push_back(wire::log_message("warning", &notice));
                }
                self.ask_roots();
            }
            "notifications/cancelled" => self.on_client_cancel(msg),
            "notifications/roots/list_changed" => self.ask_roots(),
            _ => tracing::debug!(method, "client notification not forwarded"),
        }
    }

    pub(super) fn on_client_cancel(&mut self, msg: &Message) {
        let Some((request_id, span)) = msg.param(&["requestId"]) else {
            return;
        };
        let Ok(client_id) = Id::from_json(request_id) else {
            return;
        };
        if self.cancel_listen(&client_id) {
            return;
        }
        // Not sent on yet: waiting for the catalogs, or for the user's review of a
        // held tool. Dropped there, never answered.
        if let Some(at) = self.deferred.iter().position(|d| d.origin.id == client_id) {
            let deferred = self.deferred.remove(at);
            return self.reply_none(&deferred.origin);
        }
        let reviewing = self.reverse.take_where(|r| match r {
            Reverse::PinReview(review) => review.origin_id() == &client_id,
            Reverse::PolicyAsk(ask) => ask.origin().id == client_id,
            _ => false,
        });
        match reviewing {
            Some((_, Reverse::PinReview(review))) => return self.reply_none(review.origin()),
            Some((_, Reverse::PolicyAsk(ask))) => return self.reply_none(ask.origin()),
            _ => {}
        }
        // A call waiting on the answers to its server's questions (input_required).
        if self.cancel_round(&client_id) || self.cancel_task_wait(&client_id) {
            return;
        }
        // Unknown or already answered: nothing to cancel (FAULTS 30).
        let Some((index, our_id)) = self.inflight.remove(&client_id) else {
            return;
        };
        let slot = &mut self.slots[index];
        if let Some(Pending::Client(call)) = slot.pending.remove(&our_id) {
            slot.pending
                .insert(our_id, Pending::Cancelled { timer: call.timer });
            // A cancelled request is never answered; its batch must not wait for it.
            self.reply_none(&call.origin);
        }
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
            Reverse::Round { call } => {
                let ours = id.as_u64().unwrap_or_default();
                self.on_round_answer(call, ours, msg);
            }
            Reverse::TaskInput { task, key, method } => {
                self.on_task_input_answer(&task, key, &method, msg);
            }
            Reverse::PinReview(review) => self.on_pin_review(msg, *review),
            Reverse::PolicyAsk(ask) => self.on_policy_answer(msg, *ask),
            Reverse::Forwarded {
                slot,
                instance,
                id: upstream_id,
                method,
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
                self.flag_secret_in_answer(slot, msg, &method);
                let line = msg.rewrite(Some(upstream_id.as_str()), &[]);
                self.forward_to_upstream(slot, msg, line, None);
            }
        }
    }

    /// The in-filter's cell for the user's answer to a server request: it goes on
    /// unchanged (the user's choice), and a secret in it is recorded as `flag`.
    pub(super) fn flag_secret_in_answer(&mut self, slot: usize, msg: &Message, method: &str) {
        let server = self.slots[slot].config.name.clone();
        let view = View::of(Direction::ToUpstream, msg).server(&server);
        let Some(block) = audit::secret_in_answer(&view, msg) else {
            return;
        };
        tracing::info!(server = %server, method, rule = %block.rule, "the user's answer carries a secret; passed on, flagged");
        let subject = super::audit::Subject {
            server: Some(server.as_str()),
            method,
            ..super::audit::Subject::default()
        };
        let (direction, decision) = (
            crate::audit::Direction::ToServer,
            crate::audit::Decision::Flag,
        );
        self.audit_decision(direction, decision, &subject, Some(&block));
    }

    pub(super) fn ask_roots(&mut self) {
        let offers_roots = self.client.capabilities.get("roots").is_some();
        if self.config.reload.is_none() || !offers_roots || !self.client.initialized {
            return;
        }
        let ours = self.reverse.mint(Reverse::Roots);
        self.out.push_back(wire::request(ours, "roots/list", None));
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
        if let Some(audit) = &self.audit {
            let _ = audit.set_workspace(new_root.as_deref());
        }
        self.workspace_root = new_root;
        self.watch_config();
        for skipped in &effective.skipped {
            let text = format!(
                "server `{}` not started: {}",
                skipped.server, skipped.reason
            );
            self.out.push_back(wire::log_message("warning", &text));
        }
        self.announce = [true; 3];
        self.policy = std::sync::Arc::new(effective.policy.clone());
        self.pins = super::pins::Pins::new(self.config.pinning.clone(), &effective);
        self.pins.watch(self.pin_tx.clone());
        self.config.effective = effective;
        let servers = self.config.effective.servers.clone();
        self.start_servers(servers);
        self.after_state_change();
    }

    pub(super) fn fan_out_set_level(&mut self, msg: &Message) {
        let level = msg
            .param(&["level"])
            .and_then(|(raw, _)| serde_json::from_str::<String>(raw).ok());
        self.client.log_level.clone_from(&level);
        for index in 0..self.slots.len() {
            // A modern server has no `logging/setLevel`: the level goes per request.
            if !matches!(
                self.slots[index].state.era(),
                Some(crate::era::Era::Legacy(_))
            ) {
                continue;
            }
            self.slots[index].log_level.clone_from(&level);
            let id = self.slots[index].mint(Pending::Internal);
            let line = msg.rewrite(Some(&id.to_string()), &[]);
            self.forward_to_upstream(index, msg, line, None);
        }
    }

    /// A modern request's `logLevel` toward a legacy server that logs: the server is
    /// sent `logging/setLevel` first when the request asks a lower level than the one
    /// last set (its messages are then passed on only for such requests, see
    /// `on_upstream_notification`).
    fn lower_log_level(&mut self, index: usize, origin: &Origin) {
        let Some(wanted) = origin.envelope.as_ref().and_then(|e| e.log_level.clone()) else {
            return;
        };
        let slot = &self.slots[index];
        let logs = matches!(&slot.state, SlotState::Ready { era: crate::era::Era::Legacy(_), capabilities, .. } if capabilities.get("logging").is_some());
        let rank = |l: Option<&String>| l.and_then(|l| crate::era::log_rank(l));
        let Some(wanted_rank) = rank(Some(&wanted)) else {
            return;
        };
        if !logs || rank(slot.log_level.as_ref()).is_some_and(|set| set <= wanted_rank) {
            return;
        }
        let slot = &mut self.slots[index];
        slot.log_level = Some(wanted.clone());
        let id = slot.mint(Pending::Internal);
        let params = serde_json::json!({ "level": wanted });
        self.send_upstream_raw(index, wire::request(id, "logging/setLevel", Some(&params)));
    }

    /// `tools/call` and `prompts/get`: routed by the exposed name, which becomes the
    /// upstream's own name on the way.
    pub(super) fn route_named(&mut self, msg: Message, origin: Origin, kind: ListKind) {
        // A modern client's answer to a review of ours comes as a retry of the call.
        if self.review_answer(&msg, &origin) {
            return;
        }
        let method = if kind == ListKind::Tools {
            "tools/call"
        } else {
            "prompts/get"
        };
        let what = if kind == ListKind::Tools {
            "tool"
        } else {
            "prompt"
        };
        let name_of = |msg: &Message| {
            let (raw, span) = msg.param(&["name"])?;
            Some((crate::jsonrpc::string_value(raw)?.into_owned(), span))
        };
        let Some((exposed, span)) = name_of(&msg) else {
            let text = format!("`{method}` needs a string `name`");
            return self.reply_error(&origin, ErrorCode::InvalidParams, &text);
        };
        // The upstream's name is all that is needed of the route: no copy of it.
        let routed = self.catalogs[kind.index()].route(&exposed).map(|route| {
            let upstream_name = serde_json::to_string(&route.name).unwrap_or_default();
            (route.slot, upstream_name)
        });
        let Some((slot, upstream_name)) = routed else {
            // Not routable: held by pinning, hidden by the policy, or unknown.
            let view = View::of(Direction::ToUpstream, &msg).name(Some(&exposed));
            if self.pins.asks()
                && hold::applies(&view)
                && self.pins.held(kind, &exposed).is_some()
                && self.ask_to_pin(&msg, &origin, kind, &exposed)
            {
                return;
            }
            let pins = &self.pins;
            let mut verdict = hold::hold(&view, |_, name| pins.held_named(kind, name));
            if verdict == Verdict::Pass {
                verdict = decide::hidden(&view, &msg, &self.policy, &self.flows);
            }
            if let Verdict::Stop(stop) = verdict {
                return self.stop_request(&view, &msg, &origin, &stop);
            }
            return self.reply_error(
                &origin,
                ErrorCode::InvalidParams,
                &format!("unknown {what} `{exposed}`"),
            );
        };
        let server = self.slots[slot].config.name.clone();
        let view = View::of(Direction::ToUpstream, &msg)
            .server(&server)
            .name(Some(&exposed));
        // PIPELINE.md's order, as for reads: decide, then the in-filter.
        let monitor = match self.decide(&msg, &origin, &view, slot) {
            super::policy::Outcome::Go(monitor) => monitor,
            super::policy::Outcome::Answered => return,
        };
        let (msg, span) = match self.chain.inspect(&view, &msg) {
            Verdict::Stop(stop) => return self.stop_request(&view, &msg, &origin, &stop),
            // A rewritten message has its name elsewhere: find it again in what is sent.
            Verdict::Rewrite(line) => {
                match reparse(&line).and_then(|m| Some((name_of(&m)?.1, m))) {
                    Some((span, m)) => (m, span),
                    None => {
                        return self.reply_error(
                            &origin,
                            ErrorCode::Internal,
                            "a filter produced an invalid message",
                        );
                    }
                }
            }
            Verdict::Pass | Verdict::Mark(_) | Verdict::Ask(_) => (msg, span),
        };
        if kind == ListKind::Tools && self.needs_tasks_extension(slot, &exposed, &origin) {
            return self.refuse_without_tasks_extension(&origin);
        }
        let mut edits = vec![(span, upstream_name)];
        // A modern client's task on a legacy server: asked as a 2025-11-25 one.
        if kind == ListKind::Tools {
            edits.extend(self.legacy_task_edit(slot, &exposed, &msg, &origin));
        }
        let forward = Forward {
            method,
            tool: Some(exposed),
            edits,
            paged: false,
            monitor,
        };
        self.send_client_request(slot, &msg, origin, forward);
    }

    /// `resources/read`, `subscribe` and `unsubscribe`: routed by URI to the server that
    /// listed it, else the one whose template matches it most specifically, else the
    /// only server that offers resources; a collision serves neither.
    fn route_by_uri(&mut self, msg: &Message, origin: Origin, method: &str) {
        #[derive(Deserialize)]
        struct Params {
            uri: String,
        }
        let Some(uri) = msg
            .params()
            .and_then(|p| serde_json::from_str::<Params>(p).ok())
            .map(|p| p.uri)
        else {
            return self.reply_error(
                &origin,
                ErrorCode::InvalidParams,
                &format!("`{method}` needs a string `uri`"),
            );
        };
        // Held before routing: a held template is not in the catalog, so its URIs
        // would otherwise reach a server by another route.
        let unrouted = View::of(Direction::ToUpstream, msg).name(Some(&uri));
        if let Verdict::Stop(stop) = hold::hold(&unrouted, |_, uri| self.pins.held_resource(uri)) {
            return self.stop_request(&unrouted, msg, &origin, &stop);
        }
        let Some(slot) = self.uri_slot_or_reply(&uri, &origin) else {
            return;
        };
        let super::policy::Outcome::Go(monitor) = self.decide_routed(msg, &origin, slot, &uri)
        else {
            return;
        };
        if method != "resources/read" && self.legacy_subscription(slot, &uri, method, &origin) {
            return;
        }
        let forward = Forward {
            method,
            tool: (method == "resources/read").then(|| uri.clone()),
            edits: Vec::new(),
            paged: false,
            monitor,
        };
        self.forward_request(slot, msg, origin, forward);
    }

    /// Runs the decide stage over a request about `item` routed to `slot`.
    fn decide_routed(
        &mut self,
        msg: &Message,
        origin: &Origin,
        slot: usize,
        item: &str,
    ) -> super::policy::Outcome {
        let server = self.slots[slot].config.name.clone();
        let view = View::of(Direction::ToUpstream, msg)
            .server(&server)
            .name(Some(item));
        self.decide(msg, origin, &view, slot)
    }

    /// The slot serving `uri`; else answers `origin` with why none does (unknown, or
    /// a collision naming both servers) and gives `None`.
    fn uri_slot_or_reply(&mut self, uri: &str, origin: &Origin) -> Option<usize> {
        let text = match self.uri_route(uri) {
            crate::router::UriRoute::Slot(slot) => return Some(slot),
            crate::router::UriRoute::Unknown => format!("unknown resource `{uri}`"),
            crate::router::UriRoute::Collision(a, b) => format!(
                "resource `{uri}` is served by servers `{}` and `{}`; neither is served",
                self.slots[a].config.name, self.slots[b].config.name
            ),
        };
        self.reply_error(origin, ErrorCode::InvalidParams, &text);
        None
    }

    /// Where `uri` routes: the server that listed it, else the most specific
    /// template's, else the only server that offers resources.
    pub(super) fn uri_route(&self, uri: &str) -> crate::router::UriRoute {
        let templates = &self.catalogs[ListKind::Templates.index()];
        let listed = self.uri_routes.get(uri).copied();
        crate::router::route_uri(uri, listed, templates, || {
            let first = self.next_resource_slot(0)?;
            self.next_resource_slot(first + 1)
                .is_none()
                .then_some(first)
        })
    }

    /// `completion/complete`: by the prompt's exposed name, or the resource template;
    /// decided as a request for that ref (a hidden or denied ref is refused).
    fn on_complete(&mut self, msg: &Message, origin: Origin) {
        let string = |path: &[&str]| {
            msg.param(path)
                .and_then(|(raw, span)| Some((serde_json::from_str::<String>(raw).ok()?, span)))
        };
        let kind = string(&["ref", "type"]).map(|(k, _)| k);
        // A completion for a held prompt or template is held like a get or a read of
        // it (a held item is not in the catalog, so its ref could reach a server by
        // another route).
        let by_prompt = kind.as_deref() == Some("ref/prompt");
        let named = string(if by_prompt {
            &["ref", "name"]
        } else {
            &["ref", "uri"]
        });
        let view =
            View::of(Direction::ToUpstream, msg).name(named.as_ref().map(|(n, _)| n.as_str()));
        let pins = &self.pins;
        let held = hold::hold(&view, |_, name| {
            if by_prompt {
                pins.held_named(ListKind::Prompts, name)
            } else {
                pins.held_named(ListKind::Templates, name)
                    .or_else(|| pins.held_resource(name))
            }
        });
        if let Verdict::Stop(stop) = held {
            return self.stop_request(&view, msg, &origin, &stop);
        }
        let (slot, edits, item) = match (
            kind.as_deref(),
            string(&["ref", "name"]),
            string(&["ref", "uri"]),
        ) {
            (Some("ref/prompt"), Some((exposed, span)), _) => {
                let Some(route) = self.catalogs[ListKind::Prompts.index()]
                    .route(&exposed)
                    .cloned()
                else {
                    // Hidden by the policy: refused with its rule, not "unknown".
                    let view = View::of(Direction::ToUpstream, msg).name(Some(&exposed));
                    if let Verdict::Stop(stop) =
                        decide::hidden(&view, msg, &self.policy, &self.flows)
                    {
                        return self.stop_request(&view, msg, &origin, &stop);
                    }
                    return self.reply_error(
                        &origin,
                        ErrorCode::InvalidParams,
                        &format!("unknown prompt `{exposed}`"),
                    );
                };
                let name = serde_json::to_string(&route.name).unwrap_or_default();
                (route.slot, vec![(span, name)], exposed)
            }
            (Some("ref/resource"), _, Some((uri, _))) => {
                let owner = self.catalogs[ListKind::Templates.index()]
                    .route(&uri)
                    .map(|r| r.slot);
                let Some(slot) = owner.or_else(|| self.uri_slot_or_reply(&uri, &origin)) else {
                    return;
                };
                (slot, Vec::new(), uri)
            }
            _ => {
                return self.reply_error(
                    &origin,
                    ErrorCode::InvalidParams,
                    "`completion/complete` needs a known `ref`",
                );
            }
        };
        let super::policy::Outcome::Go(monitor) = self.decide_routed(msg, &origin, slot, &item)
        else {
            return;
        };
        let forward = Forward {
            method: "completion/complete",
            tool: None,
            edits,
            paged: false,
            monitor,
        };
        self.forward_request(slot, msg, origin, forward);
    }

    /// `resources/list`: one upstream at a time, our cursor naming which (see `cursor`).
    fn on_resources_list(&mut self, msg: &Message, origin: Origin) {
        let mut params: serde_json::Map<String, Value> = msg
            .params()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default();
        let (slot, upstream_cursor) = match params.get("cursor") {
            None | Some(Value::Null) => match self.next_resource_slot(0) {
                Some(slot) => (slot, None),
                None => return self.reply_result(&origin, r#"{"resources":[]}"#),
            },
            Some(Value::String(c)) => {
                let found = cursor::decode(c).and_then(|(instance, upstream)| {
                    let slot = *self.instances.get(&instance)?;
                    Some((slot, upstream.map(str::to_owned)))
                });
                match found {
                    Some(found) => found,
                    None => {
                        return self.reply_error(
                            &origin,
                            ErrorCode::InvalidParams,
                            "unknown or expired cursor",
                        );
                    }
                }
            }
            Some(_) => {
                return self.reply_error(
                    &origin,
                    ErrorCode::InvalidParams,
                    "`cursor` must be a string",
                );
            }
        };
        match upstream_cursor {
            Some(c) => params.insert("cursor".into(), Value::String(c)),
            None => params.remove("cursor"),
        };
        // The one request whose params are rebuilt rather than spliced: the cursor may
        // have to go away entirely.
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":{},"method":"resources/list","params":{}}}"#,
            origin.id,
            Value::Object(params)
        );
        let Some(rebuilt) = reparse(&bytes::Bytes::from(line + "\n")) else {
            return self.reply_error(
                &origin,
                ErrorCode::Internal,
                "could not rebuild `resources/list`",
            );
        };
        let forward = Forward {
            method: "resources/list",
            tool: None,
            edits: Vec::new(),
            paged: true,
            monitor: None,
        };
        self.forward_request(slot, &rebuilt, origin, forward);
    }

    /// Passes a routed request through the chain, then on to the upstream.
    pub(super) fn forward_request(
        &mut self,
        slot: usize,
        msg: &Message,
        origin: Origin,
        forward: Forward<'_>,
    ) {
        let uri = msg
            .param(&["uri"])
            .and_then(|(raw, _)| serde_json::from_str::<String>(raw).ok());
        if self.passes_in_filter(slot, msg, &origin, uri.as_deref()) {
            self.send_client_request(slot, msg, origin, forward);
        }
    }

    /// The in-filter over a client request to slot `slot` about `name`: whether it
    /// may go on; when not, the client was answered.
    pub(super) fn passes_in_filter(
        &mut self,
        slot: usize,
        msg: &Message,
        origin: &Origin,
        name: Option<&str>,
    ) -> bool {
        let server = self.slots[slot].config.name.clone();
        let view = View::of(Direction::ToUpstream, msg)
            .server(&server)
            .name(name);
        match self.chain.inspect(&view, msg) {
            Verdict::Stop(stop) => {
                self.stop_request(&view, msg, origin, &stop);
                false
            }
            // A rewritten request would invalidate the spans of the edits to make.
            Verdict::Rewrite(_) => {
                self.reply_error(
                    origin,
                    ErrorCode::Internal,
                    "a filter may not rewrite this request",
                );
                false
            }
            Verdict::Pass | Verdict::Mark(_) | Verdict::Ask(_) => true,
        }
    }

    /// The instance of the server in `index` when it can take one more request;
    /// otherwise the client is answered why not (unavailable, busy) and `None`.
    fn ready_instance(
        &mut self,
        index: usize,
        origin: &Origin,
    ) -> Option<crate::upstream::InstanceId> {
        let slot = &self.slots[index];
        let name = &slot.config.name;
        let (Some(instance), SlotState::Ready { .. }) =
            (slot.upstream.as_ref().map(|u| u.instance), &slot.state)
        else {
            let why = match &slot.state {
                SlotState::Failed(why) => why.clone(),
                _ => "not started".to_owned(),
            };
            let text = format!("server `{name}` is unavailable: {why}");
            self.reply_error(origin, ErrorCode::Unavailable, &text);
            return None;
        };
        if slot.pending.len() >= super::MAX_IN_FLIGHT {
            let text = format!(
                "server `{name}` is busy: {} requests in flight",
                super::MAX_IN_FLIGHT
            );
            self.reply_error(origin, ErrorCode::Busy, &text);
            return None;
        }
        Some(instance)
    }

    /// Forwards a client request to an upstream under a fresh id, with a deadline.
    pub(super) fn send_client_request(
        &mut self,
        index: usize,
        msg: &Message,
        origin: Origin,
        forward: Forward<'_>,
    ) {
        let Forward {
            method,
            tool,
            mut edits,
            paged,
            monitor,
        } = forward;
        let Some(instance) = self.ready_instance(index, &origin) else {
            return;
        };
        self.lower_log_level(index, &origin);
        let slot = &mut self.slots[index];
        let timeout = slot.config.request_timeout;
        // A modern retry's envelope is checked before anything goes on.
        let Ok(retry) = self.open_retry(index, msg, &origin, method, tool.as_deref()) else {
            return;
        };
        let slot = &mut self.slots[index];
        let id = slot.pending.reserve();
        // The upstream gets our id as its progress token; the client's own comes back
        // in `notifications/progress` (see `on_upstream_progress`).
        let progress = crate::router::progress_token(msg).map(|(span, token)| {
            edits.push((span, id.to_string()));
            token
        });
        // The upstream edge of the era adapter: `_meta` for this server's era. A
        // legacy client's task on a modern server declares the tasks extension.
        let legacy_task = self.legacy_task_capabilities(index, msg, &origin, method);
        let client_caps = origin
            .envelope
            .as_ref()
            .map(|e| &e.capabilities)
            .or(legacy_task.as_ref());
        edits.extend(self.era_edits(index, msg, client_caps));
        edits.sort_by_key(|(r, _)| r.start);
        // Our id's text on the stack: `to_string` was a formatter run and an
        // allocation per forwarded request.
        let id_text = crate::canonical::Decimal::new(id);
        let mut line = msg.rewrite_with(Some(id_text.as_str()), &edits);
        if legacy_task.is_some()
            && let Some(sent) = reparse(&line)
        {
            // The extension has no `params.task`: the server decides.
            let edits = crate::era::meta::remove_params(&sent, &["task"]);
            let edits: Vec<_> = edits.iter().map(|(r, t)| (r.clone(), t.as_str())).collect();
            line = sent.rewrite(None, &edits);
        }
        let Some((line, mrtr)) = self.mrtr_outgoing(index, msg, method, line, retry.as_ref())
        else {
            let text = "could not rebuild the retry for the server";
            return self.reply_error(&origin, ErrorCode::Internal, text);
        };
        let slot = &mut self.slots[index];
        // Written with the rest of this turn's lines for the server (`flush_upstreams`).
        let sent = slot
            .upstream
            .as_mut()
            .map_or(Err(SendError::Closed), |u| u.push(line));
        match sent {
            Ok(()) => {
                if !self.unflushed.contains(&index) {
                    self.unflushed.push(index);
                }
                let arguments = audit::is_audited(method)
                    .then(|| audit::arguments_of(msg))
                    .flatten();
                // One clock read, just after the send, starts both the deadline and
                // the audit's `ms`: its age is nil, so the deadline is not early.
                let now = tokio::time::Instant::now();
                let timer = self.timers.insert_from(
                    now,
                    Timer::Request {
                        slot: index,
                        instance,
                        id,
                    },
                    timeout,
                );
                let call = ClientCall {
                    started: now.into_std(),
                    arguments,
                    monitor,
                    origin: origin.clone(),
                    method: crate::jsonrpc::method_text(method),
                    tool,
                    timer,
                    progress,
                    paged,
                    mrtr,
                    task: legacy_task.map(|_| super::tasks::TaskHook::LegacyCreate),
                };
                slot.pending.insert(id, Pending::Client(Box::new(call)));
                self.inflight.insert(origin.id, (index, id));
            }
            Err(e) => {
                // Named here only: a copy of the name per forwarded call was one of
                // its allocations.
                let name = &self.slots[index].config.name;
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

/// How a routed client request goes on: the method (for the answer's filter context),
/// the exposed name, the splices to make, and whether the answer is a page of ours.
pub(super) struct Forward<'a> {
    pub method: &'a str,
    pub tool: Option<String>,
    pub edits: Vec<(std::ops::Range<usize>, String)>,
    pub paged: bool,
    /// Monitor mode: the rule that would have stopped it.
    pub monitor: Option<String>,
}
