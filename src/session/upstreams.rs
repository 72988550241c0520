//! The upstream side of the session: starting and stopping servers (their probe,
//! handshake and listings are driven through their start-up machine, `startup.rs`),
//! and everything they send.

use bytes::Bytes;
use serde_json::Value;

use super::answer::Asker;
use super::audit::Subject as AuditSubject;
use super::catalog::ListKind;
use super::wire;
use super::{
    ListState, NOISE_LOG_EVERY, Pending, Reverse, Session, Slot, SlotState, Timer, reparse,
};
use crate::audit::{Decision, Direction as AuditDirection};
use crate::config::ServerConfig;
use crate::filter::Block;
use crate::jsonrpc::message::Parsed;
use crate::jsonrpc::{ErrorCode, Id, Kind, Line, Message, error_response, parse};
use crate::stages::{Direction, MessageKind, Stop, Verdict, View, audit, decide};
use crate::upstream::slot::Backoff;
use crate::upstream::{self, InstanceId, UpstreamEvent};

/// What an upstream answer is judged as: the client call it answers (a task's
/// terminal form: the call that made the task).
#[derive(Debug, Clone, Copy)]
pub(super) struct Answering<'a> {
    pub method: &'a str,
    pub tool: Option<&'a str>,
    /// The call's `arguments` as they arrived (the audit's HMAC).
    pub arguments: Option<&'a [u8]>,
    /// Monitor mode: the rule that would have stopped the call.
    pub monitor: Option<&'a str>,
    pub started: std::time::Instant,
    pub task: Option<&'a super::tasks::TaskHook>,
}

/// Where a judged answer goes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Deliver<'a> {
    /// To the client, as the answer to its request.
    Reply(&'a super::Origin),
    /// A task's status a server pushed: to the client's listens naming the task, as
    /// `notifications/tasks` (`task_listen.rs`).
    Listens(&'a [Id]),
}

impl Session {
    // ----- upstream set -----------------------------------------------------------

    pub(super) fn start_servers(&mut self, servers: Vec<ServerConfig>) {
        for config in servers {
            let index = self.slots.len();
            self.slots.push(Slot {
                config,
                upstream: None,
                state: SlotState::Spawned,
                pending: crate::router::ids::OurIds::default(),
                lists: Default::default(),
                noise: 0,
                backoff: Backoff::new(std::time::Instant::now()),
                instance: 0,
                blocking: true,
                refused: None,
                log_level: None,
                sandbox_warned: false,
                startup: None,
                probe_fatal: false,
                list_ttl: [None; 3],
                listed_at: [None; 3],
                refreshing: [false; 3],
            });
            self.spawn_slot(index);
        }
        // Servers started for a client that is already there (a workspace switch) hold
        // it up for the same bounded time as at start-up.
        if self.client.started {
            self.timers.insert(Timer::StartupWait, super::STARTUP_WAIT);
        }
    }

    /// Starts (or restarts) the process of a slot and probes its era; a server whose
    /// process exited while probed is not probed again, and handshakes at once when
    /// the client is there. A spawn error (a missing command) is not retried: it needs
    /// the user, not time.
    pub(super) fn spawn_slot(&mut self, index: usize) {
        let instance = self.next_instance;
        self.next_instance += 1;
        let default_cwd = self.workspace_root.clone();
        let slot = &mut self.slots[index];
        let spawned = upstream::spawn(
            &slot.config,
            &self.config.spawner,
            default_cwd.as_deref(),
            instance,
            self.upstream_tx.clone(),
            upstream::StdoutTo::Caller,
        );
        slot.backoff.started(std::time::Instant::now());
        slot.instance = instance;
        match spawned {
            Ok(mut up) => {
                if let Some(lines) = up.take_stdout() {
                    self.stdouts.insert(lines);
                }
                self.instances.insert(instance, index);
                slot.upstream = Some(up);
                slot.state = SlotState::Spawned;
                slot.list_ttl = [None; 3];
                self.start_machine(index);
            }
            Err(e) => {
                tracing::error!(server = %slot.config.name, error = %e, "upstream failed to start");
                crate::output::diag(&format!("mcp-warden: {e}"));
                if self.client.initialized {
                    self.out
                        .push_back(wire::log_message("error", &e.to_string()));
                } else {
                    self.notices.push(e.to_string());
                }
                slot.state = SlotState::Failed(e.to_string());
                self.after_state_change();
            }
        }
    }

    /// After a crash or a hung handshake: try again later ([`Backoff`]).
    pub(super) fn schedule_restart(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        let delay = slot.backoff.failed(std::time::Instant::now());
        tracing::warn!(server = %slot.config.name, ?delay, attempt = slot.backoff.attempt(), "restarting the server");
        let instance = slot.instance;
        self.timers.insert(
            Timer::Restart {
                slot: index,
                instance,
            },
            delay,
        );
    }

    /// A restart timer fired.
    pub(super) fn on_restart_timer(&mut self, index: usize, instance: InstanceId) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if slot.instance == instance && slot.upstream.is_none() {
            // The client goes on while a crashed server comes back.
            slot.blocking = false;
            self.spawn_slot(index);
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
        for kind in ListKind::ALL {
            self.rebuild_catalog(kind);
        }
    }

    /// The client is there: a legacy server gets our `initialize` (declaring the
    /// client's capabilities), a modern one, ready since its probe, is listed (with
    /// them in each request's envelope).
    pub(super) fn begin_handshake(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        if let SlotState::Ready {
            era: crate::era::Era::Modern(_),
            capabilities,
            ..
        } = &slot.state
        {
            let offered: Vec<ListKind> = ListKind::offered(capabilities)
                .filter(|k| matches!(slot.lists[k.index()], ListState::None))
                .collect();
            for kind in offered {
                self.list(index, kind);
            }
            self.listen_upstream(index);
            return;
        }
        // A legacy server awaiting the client: its machine's `initialize`.
        self.hello_machine(index);
    }

    /// Marks a slot failed: every request waiting on it gets -32004 naming the server.
    pub(super) fn fail_slot(&mut self, index: usize, why: &str) {
        let slot = &mut self.slots[index];
        let name = slot.config.name.clone();
        for kind in ListKind::ALL {
            if matches!(&slot.lists[kind.index()], ListState::Listed(items) if !items.is_empty()) {
                self.announce[kind.index()] = true;
            }
        }
        slot.state = SlotState::Failed(why.to_owned());
        slot.startup = None;
        slot.lists = Default::default();
        let pending: Vec<Pending> = slot.pending.drain().map(|(_, p)| p).collect();
        for p in pending {
            match p {
                Pending::Client(call) => {
                    let origin = call.origin;
                    self.timers.remove(&call.timer);
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
                Pending::Bridge(ask) => {
                    let msg = format!("server `{name}` is unavailable: {why}");
                    self.bridge_failed(*ask, &msg);
                }
                // A held call's record fails its retry (the instance is gone), a
                // task's poll finds its server restarted.
                Pending::Startup
                | Pending::Internal
                | Pending::Listen
                | Pending::Held(_)
                | Pending::TaskResult(_) => {}
            }
        }
        self.reverse
            .retain(|_, r| !matches!(r, Reverse::Forwarded { slot, .. } if *slot == index));
        self.uri_routes.retain(|_, listers| listers.remove(index));
        self.rate.server_requests.forget(index);
        self.pins.forget_resources_of(index);
        self.after_state_change();
    }

    // ----- upstream side ----------------------------------------------------------

    /// A line of a server's stdout (read by the session's [`upstream::StdoutSet`], or
    /// forwarded as an event).
    pub(super) fn on_stdout_line(&mut self, instance: InstanceId, line: Line) {
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
            Line::Overlong { skipped, head } => {
                self.on_upstream_overlong(index, skipped, &head);
            }
        }
    }

    pub(super) fn on_upstream_event(&mut self, event: UpstreamEvent) {
        match event {
            UpstreamEvent::Line(instance, line) => self.on_stdout_line(instance, line),
            UpstreamEvent::Sandbox(instance, report) => {
                if let Some(&index) = self.instances.get(&instance) {
                    self.on_sandbox_report(index, &report);
                }
            }
            UpstreamEvent::Exited {
                instance,
                status,
                stderr_tail,
            } => {
                // Its last lines were read (or waited for long enough).
                self.stdouts.remove(instance);
                let Some(index) = self.instances.remove(&instance) else {
                    return;
                };
                let name = self.slots[index].config.name.clone();
                self.slots[index].upstream = None;
                let before_handshake = self.slots[index].state.is_starting();
                let why = upstream::exit_reason(&status, &stderr_tail);
                if self.slots[index].refused.is_none() && self.exited_on_probe(index, why.clone()) {
                    // Some SDKs exit on any request before `initialize`: such a server
                    // is legacy. Started again at once, without a probe and without
                    // counting as a failure (it did not fail; we asked the wrong way).
                    tracing::info!(server = %name, %status, "exited on the `server/discover` probe; restarting it as a legacy server");
                    self.slots[index].pending.clear();
                    self.spawn_slot(index);
                    return;
                }
                if let Some(why) = self.slots[index].refused.clone() {
                    // A refusal repeats on every restart: it needs the user, not time.
                    self.fail_slot(index, &why);
                    return;
                }
                tracing::error!(server = %name, %why, "upstream exited");
                if self.client.initialized {
                    self.out.push_back(wire::log_message(
                        "error",
                        &format!("server `{name}` {why}; restarting it"),
                    ));
                }
                self.fail_slot(index, &why);
                self.schedule_restart(index);
                // The first of a run of failures before the handshake: say why, as
                // `doctor` would (issue 16 item 3), once, not at every restart.
                if before_handshake && self.slots[index].backoff.attempt() == 1 {
                    self.diagnose(index);
                }
            }
            UpstreamEvent::Diagnosed { server, found } => {
                for finding in found {
                    tracing::error!(server = %server, %finding, "why the server cannot start");
                    let text = format!("server `{server}`: {finding}");
                    crate::output::diag(&format!("mcp-warden: {text}"));
                    self.tell_client("error", text);
                }
            }
        }
    }

    /// Runs [`crate::sandbox::diagnose::after_failure`] for a slot's server off the
    /// session's thread (it reads the file system); what it finds comes back as
    /// [`UpstreamEvent::Diagnosed`].
    fn diagnose(&self, index: usize) {
        let config = self.slots[index].config.clone();
        let workspace = self.workspace_root.clone();
        let state_dir = self.config.spawner.state_dir.clone();
        let events = self.upstream_tx.clone();
        drop(tokio::task::spawn_blocking(move || {
            // A command that no longer resolves: the spawn said so already.
            let found = crate::upstream::program_of(&config).map_or_else(
                |_| Vec::new(),
                |program| {
                    let server = config.sandboxed(&program);
                    crate::sandbox::diagnose::after_failure(
                        &server,
                        workspace.as_deref(),
                        &state_dir,
                    )
                },
            );
            if !found.is_empty() {
                let server = config.name.clone();
                // The session may be gone by then: nothing is left to tell.
                let _ = events.blocking_send(UpstreamEvent::Diagnosed { server, found });
            }
        }));
    }

    /// What a server's sandbox holds. A missing layer is said once per server (stderr,
    /// log, and a logging notification to the client); a refusal fails the server for
    /// good with the reason.
    fn on_sandbox_report(&mut self, index: usize, report: &crate::sandbox::Report) {
        let slot = &mut self.slots[index];
        let name = slot.config.name.clone();
        if let Some(why) = &report.refused {
            let text = format!("server `{name}` not started: {why}");
            tracing::error!(server = %name, %why, "sandbox refused");
            crate::output::diag(&format!("mcp-warden: {text}"));
            slot.refused = Some(text.clone());
            self.tell_client("error", text);
            return;
        }
        let summary = report.summary();
        let missing = report.missing().next().is_some();
        if !missing {
            tracing::info!(server = %name, "{summary}");
            return;
        }
        tracing::warn!(server = %name, "{summary}");
        if std::mem::replace(&mut slot.sandbox_warned, true) {
            return;
        }
        let text = format!("server `{name}`: {summary}");
        crate::output::diag(&format!("mcp-warden: {text}"));
        self.tell_client("warning", text);
    }

    /// A logging notification now, or a notice for when the client is ready.
    pub(super) fn tell_client(&mut self, level: &str, text: String) {
        if self.client.initialized {
            self.out.push_back(wire::log_message(level, &text));
        } else {
            self.notices.push(text);
        }
    }

    /// A message from a server over the size limit is dropped; when it answers a
    /// client request (its id is in the line's head), that request fails now instead
    /// of waiting for its timeout (FAULTS 37).
    fn on_upstream_overlong(&mut self, index: usize, skipped: usize, head: &[u8]) {
        let slot = &mut self.slots[index];
        let name = slot.config.name.clone();
        tracing::warn!(server = %name, skipped, "dropped an overlong line from the server");
        let ours = crate::jsonrpc::recover_id(head).and_then(|id| id.as_u64());
        let Some(Pending::Client(call)) = ours.and_then(|n| slot.pending.remove(&n)) else {
            return;
        };
        self.timers.remove(&call.timer);
        self.inflight.remove(&call.origin.id);
        let text = format!(
            "the answer of server `{name}` was {skipped} bytes, over the limit of {} bytes; it was dropped",
            crate::jsonrpc::codec::DEFAULT_MAX_LINE
        );
        self.reply_error(&call.origin, ErrorCode::Internal, &text);
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
        // A task a message relates to is named by our id before anything reads it.
        let retagged = self.retag_related_task(index, msg);
        let msg = retagged.as_ref().unwrap_or(msg);
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
            Pending::Startup => self.on_machine_answer(index, msg),
            Pending::Internal => {}
            Pending::Listen => self.on_upstream_listen_closed(index, msg, id),
            Pending::Held(handle) => self.on_held_answer(msg, handle),
            Pending::TaskResult(ours) => self.on_task_fetched(&ours, msg),
            Pending::Bridge(ask) => self.on_bridge_answer(index, msg, *ask),
            Pending::Cancelled { timer } => {
                self.timers.remove(&timer);
            }
            Pending::Client(call) => {
                if let Some(call) = self.take_input_required(index, msg, call) {
                    self.on_client_answer(index, msg, *call);
                }
            }
        }
    }

    /// The answer to a client request we forwarded: through the chain (and monitor,
    /// limits, audit) to the client.
    pub(super) fn on_client_answer(
        &mut self,
        index: usize,
        msg: &Message,
        call: super::ClientCall,
    ) {
        // Task ids in the answer become ours before any stage sees it.
        let retagged = self.task_answer(index, msg, &call);
        let msg = retagged.as_ref().unwrap_or(msg);
        // A modern client's task on a legacy server: made a 2026 answer first.
        let Some(call) = self.legacy_task_answer(index, msg, call) else {
            return;
        };
        // An extension task's poll: its terminal form is the call's answer.
        let Some(call) = self.task_poll(index, msg, call) else {
            return;
        };
        let super::ClientCall {
            origin,
            method,
            tool,
            timer,
            paged,
            started,
            arguments,
            monitor,
            task,
            ..
        } = call;
        self.timers.remove(&timer);
        self.inflight.remove(&origin.id);
        if paged {
            return self.on_resources_page(index, msg, &origin);
        }
        let answering = Answering {
            method: &method,
            tool: tool.as_deref(),
            arguments: arguments.as_deref(),
            monitor: monitor.as_deref(),
            started,
            task: task.as_ref(),
        };
        self.answer_through_stages(index, msg, &answering, Deliver::Reply(&origin));
    }

    /// An upstream's answer (`msg`, ids already the client's) through the chain,
    /// monitor mode, `[limits] max_result_bytes`, flows and audit as the answer to
    /// `answering`, then to `to`. A task's terminal form is kept for later polls and
    /// pushes (once: this is where it is audited).
    pub(super) fn answer_through_stages(
        &mut self,
        index: usize,
        msg: &Message,
        answering: &Answering<'_>,
        to: Deliver<'_>,
    ) {
        let Answering {
            method,
            tool,
            arguments,
            monitor,
            started,
            task,
        } = *answering;
        let server = self.slots[index].config.name.clone();
        let view = View::of(Direction::ToClient, msg)
            .server(&server)
            .name(tool)
            .answering(method);
        self.record_flow(method, tool);
        let subject = AuditSubject {
            server: Some(server.as_str()),
            tool,
            method,
            arguments,
        };
        let verdict = match (self.chain.inspect(&view, msg), monitor) {
            (Verdict::Stop(stop), _) => Verdict::Stop(stop),
            // Monitor mode: the answer says what would have happened.
            (Verdict::Rewrite(line), Some(rule)) => {
                Verdict::Rewrite(decide::mark_monitor(&line, rule).unwrap_or(line))
            }
            (_, Some(rule)) => {
                decide::mark_monitor(&msg.to_line(), rule).map_or(Verdict::Pass, Verdict::Rewrite)
            }
            (verdict, None) => verdict,
        };
        // `[limits] max_result_bytes`: an answer too big never reaches the client.
        let size = match &verdict {
            Verdict::Rewrite(line) => line.len(),
            _ => msg.raw().len(),
        };
        let limits = self.policy().settings.limits;
        let verdict = match decide::answer_size(&view, &limits, size) {
            Verdict::Stop(stop) => Verdict::Stop(stop),
            _ => verdict,
        };
        let decided = |d: (Decision, Option<String>)| match monitor {
            Some(rule) => (Decision::Monitor, Some(rule.to_owned())),
            None => d,
        };
        match verdict {
            Verdict::Pass | Verdict::Mark(_) | Verdict::Ask(_) => {
                let decision = decided((Decision::Allow, None));
                self.audit_answer(&subject, decision, started, msg.raw().len());
                self.keep_terminal(task, method, msg);
                self.deliver_answer(to, method, msg);
            }
            Verdict::Rewrite(line) => {
                if let Some(m) = reparse(&line) {
                    let decision = decided(audit::decision_of_rewrite(&line));
                    self.audit_answer(&subject, decision, started, line.len());
                    self.keep_terminal(task, method, &m);
                    self.deliver_answer(to, method, &m);
                } else if let Deliver::Reply(origin) = to {
                    let text = "a filter produced an invalid message";
                    self.reply_error(origin, ErrorCode::Internal, text);
                } else {
                    tracing::error!(server = %server, "a filter produced an invalid message");
                }
            }
            Verdict::Stop(stop) => {
                let to = match to {
                    Deliver::Reply(origin) => Asker::Client(origin),
                    Deliver::Listens(_) => Asker::Nobody,
                };
                self.answer_stopped(&view, to, &subject, &stop);
            }
        }
    }

    fn deliver_answer(&mut self, to: Deliver<'_>, method: &str, msg: &Message) {
        match to {
            Deliver::Reply(origin) => self.reply_answer(origin, method, msg),
            Deliver::Listens(listens) => self.push_task(listens, msg.result()),
        }
    }

    /// A server's answer to a client's `method`, under the client's id: a read's result
    /// to a modern client gets its cache hints ([`crate::era::meta::read_cache_hints`]).
    fn reply_answer(&mut self, origin: &super::Origin, method: &str, msg: &Message) {
        let mut edits = Vec::new();
        if method == "resources/read" && origin.is_modern() {
            edits = crate::era::meta::read_cache_hints(msg);
            edits.sort_by_key(|(r, _)| r.start);
        }
        let edits: Vec<(std::ops::Range<usize>, &str)> =
            edits.iter().map(|(r, t)| (r.clone(), t.as_str())).collect();
        self.reply(origin, msg.rewrite(Some(origin.id.as_str()), &edits));
    }

    /// A page of `resources/list` from one upstream: its URIs are remembered for
    /// routing, and its cursor becomes one of ours that also names the server.
    fn on_resources_page(&mut self, index: usize, msg: &Message, origin: &super::Origin) {
        let server = self.slots[index].config.name.clone();
        let page = upstream::listing::read_page(msg, "resources/list", "resources").ok();
        let Some(page) = page else {
            // An error answer (or garbage): pass it on as it is.
            let line = msg.rewrite(Some(origin.id.as_str()), &[]);
            return self.reply_checked(origin, line, Some(&server), "resources/list");
        };
        // Each item is scanned like a definition (SPEC "Pinning": resources are
        // scanned, not pinned): a flagged one is left out, and reads of it are held.
        let scanning = self.pins.mode() != crate::config::PinningMode::Off;
        let context = if scanning {
            self.scan_context(index)
        } else {
            crate::scan::ScanContext::default()
        };
        let items = page.items("resources").unwrap_or_default();
        let mut listed = Vec::with_capacity(items.len());
        for raw in items {
            let Ok(item) = serde_json::from_str::<Value>(raw.get()) else {
                continue;
            };
            let Some(uri) = item.get("uri").and_then(Value::as_str) else {
                listed.push(raw.get());
                continue;
            };
            let findings = if scanning {
                crate::scan::scan_definition(crate::scan::ItemKind::Resource, uri, &item, &context)
            } else {
                Vec::new()
            };
            if self.uri_routes.len() + self.pins.flagged_resources() >= super::MAX_URI_ROUTES {
                // Past the bound nothing is remembered; a flagged item is still left out.
                if findings.is_empty() {
                    listed.push(raw.get());
                }
                continue;
            }
            let hold = crate::pinning::judge::resource_hold(uri, &findings);
            if let Some(hold) = &hold {
                tracing::warn!(server = %server, uri, rule = %hold.rule, "a listed resource is flagged by the scan; left out, reads held");
                self.uri_routes.remove(uri);
            } else {
                // Listed by a second server too: a collision (SPEC "Names").
                self.uri_routes
                    .entry(uri.to_owned())
                    .and_modify(|listers| listers.add(index))
                    .or_insert_with(|| crate::router::Listers::new(index));
                listed.push(raw.get());
            }
            self.pins.judge_resource(index, uri, hold);
        }
        let instance_of = |slot: usize| self.slots[slot].upstream.as_ref().map(|u| u.instance);
        let next = match page.next_cursor {
            Some(cursor) => instance_of(index).map(|i| super::cursor::encode(i, Some(&cursor))),
            None => self
                .next_resource_slot(index + 1)
                .and_then(instance_of)
                .map(|i| super::cursor::encode(i, None)),
        };
        let hints = crate::era::meta::cache_hints(self.list_ttl(ListKind::Templates))
            .map(|(k, v)| format!("\"{k}\":{v},"))
            .concat();
        let mut result = format!("{{{hints}\"resources\":[{}]", listed.join(","));
        if let Some(next) = next {
            result.push_str(",\"nextCursor\":");
            result.push_str(&serde_json::to_string(&next).unwrap_or_default());
        }
        result.push('}');
        self.client_listed[ListKind::Templates.index()] = true;
        let line = crate::jsonrpc::error::result_response(&origin.id, &result);
        self.reply_checked(origin, line, Some(&server), "resources/list");
    }

    pub(super) fn on_upstream_request(
        &mut self,
        index: usize,
        msg: &Message,
        id: Id,
        method: &str,
    ) {
        let name = self.slots[index].config.name.clone();
        // Before the server's table: only in a call of the client's, bounded and
        // rate-limited (so a refused flood is bounded too).
        if matches!(method, "sampling/createMessage" | "elicitation/create")
            && let Err(refusal) = self.admit_server_request(index)
        {
            return self.refuse_server_request(index, &id, method, refusal);
        }
        match method {
            "ping" => self.answer_upstream(index, &id, Ok("{}".to_owned())),
            "roots/list" => {
                let roots = wire::roots_result(self.workspace_root.as_deref());
                self.answer_upstream(index, &id, Ok(roots));
            }
            "sampling/createMessage" if !self.slots[index].config.sampling => {
                let reason =
                    format!("server `{name}` may not use sampling (`sampling = \"deny\"`)");
                self.refuse_upstream_request(index, &id, method, "sampling", reason);
            }
            "elicitation/create" if !self.slots[index].config.elicitation => {
                let reason = format!(
                    "server `{name}` may not ask the user questions (`elicitation = \"deny\"`)"
                );
                self.refuse_upstream_request(index, &id, method, "elicitation", reason);
            }
            "sampling/createMessage" | "elicitation/create" => {
                // Allowed by the server's table: on to the client, if it can answer.
                let capability = if method == "sampling/createMessage" {
                    "sampling"
                } else {
                    "elicitation"
                };
                if self.ask_for_legacy_task(index, msg, &id, method) {
                    // A modern client's task: asked on its next `tasks/get`.
                } else if self.hold_for_modern_client(index, msg, &id, method) {
                    // A modern client's call: asked as `input_required` (mrtr.rs).
                } else if self.client.initialized
                    && self.client.capabilities.get(capability).is_some()
                {
                    self.forward_request_to_client(index, msg, id);
                } else {
                    let text = format!("the client does not offer `{capability}`");
                    self.answer_upstream(index, &id, Err((ErrorCode::MethodNotFound, text, None)));
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
            "notifications/tools/list_changed" => self.list(index, ListKind::Tools),
            "notifications/prompts/list_changed" => self.list(index, ListKind::Prompts),
            "notifications/resources/list_changed" => self.list(index, ListKind::Templates),
            // Progress belongs to a request in flight: a modern client (never
            // `initialized`) gets it too.
            "notifications/progress" => self.on_upstream_progress(index, msg),
            // A modern server closes our listen this way too (S/basic/patterns/cancellation.mdx).
            "notifications/cancelled" if self.upstream_listen_cancelled(index, msg) => {}
            "notifications/cancelled" if self.client.initialized => {
                self.on_upstream_cancel(index, msg);
            }
            // A modern client gets a server's log only within one of its requests
            // to that server that asked for that level (S/server/utilities/logging.mdx).
            "notifications/message" if !self.client.initialized && self.wants_log(index, msg) => {
                self.forward_to_client(index, msg.to_line());
            }
            // A modern client's task: read, not forwarded (tasks_inline.rs).
            "notifications/tasks/status" if self.legacy_task_status(index, msg) => {}
            "notifications/tasks/status" if self.client.initialized => {
                if let Some(line) = self.task_status(index, msg) {
                    self.forward_to_client(index, line);
                }
            }
            "notifications/resources/updated" => self.on_resource_updated(index, msg),
            // The tasks extension's pushes, for the client listens naming the task.
            "notifications/tasks" => self.on_task_pushed(index, msg),
            "notifications/message" if self.client.initialized => {
                self.forward_to_client(index, msg.to_line());
            }
            _ => {
                tracing::debug!(server = %self.slots[index].config.name, method, "notification not forwarded");
            }
        }
    }

    /// Whether a request of the client's to slot `index` in flight asked for the
    /// level of this `notifications/message` or a lower one.
    fn wants_log(&self, index: usize, msg: &Message) -> bool {
        let Some(level) = msg
            .param(&["level"])
            .and_then(|(raw, _)| serde_json::from_str::<String>(raw).ok())
            .and_then(|l| crate::era::log_rank(&l))
        else {
            return false;
        };
        self.slots[index].pending.values().any(|p| match p {
            Pending::Client(call) => call
                .origin
                .envelope
                .as_ref()
                .and_then(|e| e.log_level.as_deref())
                .and_then(crate::era::log_rank)
                .is_some_and(|wanted| wanted <= level),
            _ => false,
        })
    }

    /// Progress for a request we forwarded: the upstream knows our token (our id for
    /// that request); the client gets its own token back. Progress for a request that
    /// is finished, or that this upstream was never given, is dropped.
    fn on_upstream_progress(&mut self, index: usize, msg: &Message) {
        let Some((token, span)) = msg.param(&["progressToken"]) else {
            return;
        };
        let client_token = crate::router::ids::our_id(token).and_then(|ours| {
            match self.slots[index].pending.get(&ours) {
                Some(Pending::Client(call)) => call.progress.clone(),
                _ => None,
            }
        });
        let Some(client_token) = client_token else {
            tracing::debug!(server = %self.slots[index].config.name, token, "progress for no request in flight; dropped");
            return;
        };
        // Across the rounds of an `input_required` call the client has one token.
        if !self.progress_goes_forward(index, token, msg) {
            return;
        }
        let line = msg.rewrite(None, &[(span, &client_token)]);
        self.forward_to_client(index, line);
    }

    /// An upstream cancels one of its own requests that we forwarded to the client.
    fn on_upstream_cancel(&mut self, index: usize, msg: &Message) {
        let Some((request_id, span)) = msg.param(&["requestId"]) else {
            return;
        };
        let Ok(upstream_id) = Id::from_json(request_id) else {
            return;
        };
        let forwarded = self.reverse.take_where(|r| {
            matches!(r, Reverse::Forwarded { slot, id, .. } if *slot == index && *id == upstream_id)
        });
        let Some((ours, _)) = forwarded else { return };
        let line = msg.rewrite(None, &[(span, &ours.to_string())]);
        self.forward_to_client(index, line);
    }

    /// Passes a message from an upstream, already remapped for the client (`line`),
    /// through the chain to the client: stages see what the client would see.
    pub(super) fn forward_to_client(&mut self, index: usize, line: Bytes) {
        let server = self.slots[index].config.name.clone();
        let Some(msg) = reparse(&line) else { return };
        let view = View::of(Direction::ToClient, &msg).server(&server);
        let verdict = self.chain.inspect(&view, &msg);
        // The audit stage's cell for notifications: flag / redact recorded, and a
        // dropped one too, within a budget per server.
        if let Some(decision) = audit::of_notification(&view, &verdict) {
            self.audit_notification(index, msg.method().unwrap_or_default(), decision);
        }
        match verdict {
            Verdict::Rewrite(line) => self.out.push_back(line),
            Verdict::Stop(stop) => {
                tracing::info!(server = %server, rule = %stop.block.rule, "a message to the client was blocked");
            }
            Verdict::Pass | Verdict::Mark(_) | Verdict::Ask(_) => self.out.push_back(line),
        }
    }

    /// The first slot at or after `from` that is ready and offers resources.
    pub(super) fn next_resource_slot(&self, from: usize) -> Option<usize> {
        (from..self.slots.len()).find(|&i| {
            matches!(&self.slots[i].state, SlotState::Ready { capabilities, .. } if capabilities.get("resources").is_some())
                && self.slots[i].upstream.is_some()
        })
    }

    /// A server's request to the client, under an id of ours; the answer is mapped
    /// back in `on_client_response`.
    fn forward_request_to_client(&mut self, index: usize, msg: &Message, id: Id) {
        let Some(instance) = self.slots[index].upstream.as_ref().map(|u| u.instance) else {
            return;
        };
        let server = self.slots[index].config.name.clone();
        let view = View::of(Direction::ToClient, msg).server(&server);
        let reserved = self.reverse.reserve();
        let ours = reserved.to_string();
        let (line, (decision, rule)) = match self.chain.inspect(&view, msg) {
            Verdict::Stop(Stop { block, .. }) => {
                let method = msg.method().unwrap_or_default();
                return self.refuse_upstream_request(index, &id, method, &block.rule, block.reason);
            }
            Verdict::Rewrite(line) => (
                reparse(&line).map(|m| m.rewrite(Some(&ours), &[])),
                audit::decision_of_rewrite(&line),
            ),
            Verdict::Pass | Verdict::Mark(_) | Verdict::Ask(_) => {
                (Some(msg.rewrite(Some(&ours), &[])), (Decision::Allow, None))
            }
        };
        if let Some(line) = line {
            let subject = AuditSubject {
                server: Some(server.as_str()),
                method: msg.method().unwrap_or_default(),
                ..AuditSubject::default()
            };
            let block = rule.map(|rule| Block {
                rule,
                reason: String::new(),
            });
            self.audit_decision(AuditDirection::ToClient, decision, &subject, block.as_ref());
            self.reverse.insert(
                reserved,
                Reverse::Forwarded {
                    slot: index,
                    instance,
                    id,
                    method: subject.method.to_owned(),
                },
            );
            self.out.push_back(line);
        }
    }

    /// Answers a server-to-client request with -32003 and the decision in `data`.
    pub(super) fn refuse_upstream_request(
        &mut self,
        index: usize,
        id: &Id,
        method: &str,
        rule: &str,
        reason: String,
    ) {
        let server = self.slots[index].config.name.clone();
        let subject = AuditSubject {
            server: Some(server.as_str()),
            method,
            ..AuditSubject::default()
        };
        let view = View {
            direction: Direction::ToClient,
            kind: MessageKind::ServerRequest,
            server: Some(&server),
            name: None,
            request_method: None,
        };
        let stop = Stop::deny(Block {
            rule: rule.into(),
            reason,
        });
        self.answer_stopped(&view, Asker::Upstream { slot: index, id }, &subject, &stop);
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
        let slot = &mut self.slots[index];
        if let Some(up) = &mut slot.upstream
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
        let view = View::of(Direction::ToUpstream, original)
            .server(&server)
            .name(tool);
        match self.chain.inspect(&view, original) {
            Verdict::Pass => self.send_upstream_raw(index, line),
            _ => {
                tracing::info!(server = %server, "a filter stopped a forwarded message");
            }
        }
    }
}
