//! Pinning in a running session (SPEC "Pinning"): every listed item is judged against
//! the lock of the layer its server comes from, before it reaches a catalog.
//!
//! The decisions themselves are [`crate::pinning::judge`]'s; this file keeps the
//! session's state around them: the lock files in memory, which items are held (so a
//! call to one gets the blocked result rather than "unknown tool"), the scan findings
//! (cached: a definition is scanned once, not on every rebuild), what has been reported,
//! and the pins `tofu` writes.
//!
//! # Lock files change under a running session
//! A task polls each lock file (and, for a workspace, the files its trust depends on)
//! and sends the session a fresh reading when any changed, so a `pin` in another
//! terminal takes effect at once. Reading happens off the session's thread, under the
//! lock file's own lock, together with the trust check, so a write and its trust record
//! are always seen together. A lock that cannot be read (corrupt, or a workspace no
//! longer trusted) counts as empty and is never written: everything it pinned is held
//! until the user fixes it.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::catalog::{Item, ListKind};
use crate::config::{Effective, PinningMode, PinningSettings, ServerConfig};
use crate::paths::Paths;
use crate::pinning::files::{LockPlaces, LockState, WorkspaceLock, read_lock, write_pins};
use crate::pinning::judge::{self, Hold, ServerFacts, ServerVerdict};
use crate::pinning::lock::{ItemPin, Kind, LockFile, PinKey, ServerPin};
use crate::pinning::machine;
use crate::pinning::review::{self, Peer};
use crate::scan::{self, Finding, ScanContext};

/// How often lock files are looked at for changes made by other processes.
const POLL: Duration = Duration::from_millis(500);

/// What the session needs for pinning.
#[derive(Debug, Clone)]
pub struct PinningSetup {
    pub settings: PinningSettings,
    /// The data dir (the user lock) and the trust store.
    pub paths: Paths,
}

/// A fresh reading of one lock file.
#[derive(Debug)]
pub struct LockUpdate {
    pub path: PathBuf,
    pub state: LockState,
}

/// Which definition a cached scan is of: (server, kind index, upstream name).
type ScanKey = (String, usize, String);

/// A cached scan: the definition scanned, the fingerprint of the context it was
/// scanned in, and the findings.
type Scanned = (Box<str>, u64, Vec<Finding>);

/// What pinning reads from disk for a configuration: the lock files and the state of
/// the servers' executables. Blocking to make; made off the session's thread on reload.
#[derive(Debug)]
pub(super) struct Readings {
    places: LockPlaces,
    locks: HashMap<PathBuf, LockState>,
    replaced: BTreeMap<String, String>,
    warning: Option<String>,
}

impl Readings {
    /// Reads everything pinning needs for `effective` (blocking).
    pub(super) fn read(paths: &Paths, effective: &Effective) -> Self {
        let places = LockPlaces::new(paths, effective);
        let mut warning = None;
        let replaced = machine::replaced(paths, &effective.servers, |w| warning = Some(w));
        let locks = places.read_all(paths);
        Self {
            places,
            locks,
            replaced,
            warning,
        }
    }
}

/// The pinning state of one session.
#[derive(Debug)]
pub(super) struct Pins {
    setup: PinningSetup,
    /// Which lock file each server's pins live in.
    places: LockPlaces,
    locks: HashMap<PathBuf, LockState>,
    /// Per kind: exposed name → why it is held.
    held: [HashMap<String, Hold>; 3],
    /// Listed resources the scan flagged, left out of `resources/list`: URI → (the
    /// slot that listed it, its hold). Bounded with the session's URI routes.
    flagged_resources: HashMap<String, (usize, Hold)>,
    /// (item, rule) already reported this session.
    reported: HashSet<(String, String)>,
    /// What to tell the person: new holds, and findings in `off` mode.
    reports: Vec<String>,
    findings: HashMap<ScanKey, Scanned>,
    /// Servers whose executable was replaced on this machine: name → path.
    replaced: BTreeMap<String, String>,
    /// Pins `tofu` decided to write, per lock file.
    writes: BTreeMap<PathBuf, LockFile>,
    watcher: Option<JoinHandle<()>>,
}

impl Drop for Pins {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
    }
}

impl Pins {
    /// Pinning for `workspace` (its lock counts when trusted). Reads the lock files:
    /// once, at start-up or on a workspace switch, never per message. Blocking: a
    /// reload prepares its [`Readings`] off the session's thread instead.
    pub(super) fn new(setup: PinningSetup, effective: &Effective) -> Self {
        let readings = Readings::read(&setup.paths, effective);
        Self::from_readings(setup, readings)
    }

    /// Pinning from readings made beforehand (off the session's thread).
    pub(super) fn from_readings(setup: PinningSetup, readings: Readings) -> Self {
        Self {
            replaced: readings.replaced,
            setup,
            places: readings.places,
            locks: readings.locks,
            held: Default::default(),
            flagged_resources: HashMap::new(),
            reported: HashSet::new(),
            reports: readings.warning.into_iter().collect(),
            findings: HashMap::new(),
            writes: BTreeMap::new(),
            watcher: None,
        }
    }

    /// Where this session's lock files are.
    pub(super) fn places(&self) -> &LockPlaces {
        &self.places
    }

    /// Starts watching the lock files; readings arrive on `tx`.
    pub(super) fn watch(&mut self, tx: mpsc::Sender<LockUpdate>) {
        let watched = self.places.all();
        let paths = self.setup.paths.clone();
        self.watcher = Some(tokio::spawn(watch(watched, paths, tx)));
    }

    /// The mode in force.
    pub(super) fn mode(&self) -> PinningMode {
        self.setup.settings.mode
    }

    /// Whether a held item's call may ask the user to review it.
    pub(super) fn asks(&self) -> bool {
        self.setup.settings.ask && self.mode() != PinningMode::Off
    }

    /// The lock file a server's pins live in.
    pub(super) fn lock_path(&self, server: &ServerConfig) -> PathBuf {
        self.places.for_server(server)
    }

    /// Takes a fresh reading; `true` when it changed anything.
    pub(super) fn apply(&mut self, update: LockUpdate) -> bool {
        let Some(current) = self.locks.get_mut(&update.path) else {
            return false;
        };
        if *current == update.state {
            return false;
        }
        match &update.state {
            LockState::Unusable(why) => {
                self.reports
                    .push(format!("`{}` does not count: {why}", update.path.display()));
            }
            LockState::Ready(_) => {
                tracing::info!(path = %update.path.display(), "the lock file changed; pins reloaded");
            }
        }
        *current = update.state;
        true
    }

    /// Why an exposed name of `kind` is held, if it is.
    pub(super) fn held(&self, kind: ListKind, exposed: &str) -> Option<&Hold> {
        self.held[kind.index()].get(exposed)
    }

    /// [`Self::held`], with the exposed name as the hold stage names it.
    pub(super) fn held_named(&self, kind: ListKind, exposed: &str) -> Option<(&str, &Hold)> {
        self.held[kind.index()]
            .get_key_value(exposed)
            .map(|(name, hold)| (name.as_str(), hold))
    }

    /// Why a read of `uri` is held, with the name that resolves it: a listed resource
    /// the scan flagged, or a URI of a held resource template (a held template is left
    /// out of the catalog, and its URIs must not reach the server by another route).
    pub(super) fn held_resource(&self, uri: &str) -> Option<(&str, &Hold)> {
        if let Some((uri, (_, hold))) = self.flagged_resources.get_key_value(uri) {
            return Some((uri.as_str(), hold));
        }
        self.held[ListKind::Templates.index()]
            .iter()
            .find(|(template, _)| crate::router::catalog::template_matches(template, uri))
            .map(|(template, hold)| (template.as_str(), hold))
    }

    /// Records what the scan made of resource `uri` as slot `slot` listed it: held,
    /// or (with `None`) not held any more.
    pub(super) fn judge_resource(&mut self, slot: usize, uri: &str, hold: Option<Hold>) {
        match hold {
            Some(hold) => {
                self.flagged_resources.insert(uri.to_owned(), (slot, hold));
            }
            None => {
                self.flagged_resources.remove(uri);
            }
        }
    }

    /// How many flagged resources are remembered.
    pub(super) fn flagged_resources(&self) -> usize {
        self.flagged_resources.len()
    }

    /// Forgets the resources slot `slot` listed (it stopped).
    pub(super) fn forget_resources_of(&mut self, slot: usize) {
        self.flagged_resources.retain(|_, (s, _)| *s != slot);
    }

    /// Messages for the person since the last call.
    pub(super) fn take_reports(&mut self) -> Vec<String> {
        std::mem::take(&mut self.reports)
    }

    /// The lock (and mode) a server is judged by: an unusable lock is an empty one,
    /// judged strictly.
    fn lock_of(&self, server: &ServerConfig) -> (PinningMode, &LockFile, Option<&str>) {
        static EMPTY: std::sync::LazyLock<LockFile> = std::sync::LazyLock::new(LockFile::default);
        let mode = self.mode();
        match self.locks.get(&self.lock_path(server)) {
            Some(LockState::Ready(lock)) => (mode, lock, None),
            Some(LockState::Unusable(why)) if mode != PinningMode::Off => {
                (PinningMode::Strict, &EMPTY, Some(why.as_str()))
            }
            _ => (mode, &EMPTY, None),
        }
    }

    /// The verdict on a server's identity and instructions.
    pub(super) fn judge_server(
        &mut self,
        server: &ServerConfig,
        instructions: Option<&str>,
    ) -> ServerVerdict {
        let findings = match instructions {
            Some(text) => {
                let context = ScanContext {
                    own_server: server.name.as_str().to_owned(),
                    ..ScanContext::default()
                };
                self.scan(
                    server.name.as_str(),
                    usize::MAX,
                    server.name.as_str(),
                    text,
                    0,
                    || scan::scan_instructions(server.name.as_str(), text, &context),
                )
            }
            None => Vec::new(),
        };
        let facts = ServerFacts {
            server: server.name.as_str(),
            command: &server.raw_command,
            args: &server.raw_args,
            instructions,
            instruction_findings: &findings,
            replaced_executable: self.replaced.get(server.name.as_str()).map(String::as_str),
        };
        let (mode, lock, _) = self.lock_of(server);
        judge::judge_server(mode, lock, &facts)
    }

    /// Judges one kind of a server's items (`context`: what the scan knows of the
    /// other servers); returns, per item, whether it is admitted to the catalog.
    /// Held items are remembered (see [`Pins::held`]) and reported once.
    pub(super) fn judge_items(
        &mut self,
        server: &ServerConfig,
        instructions: Option<&str>,
        kind: ListKind,
        items: &[Item],
        context: &ScanContext,
    ) -> Vec<bool> {
        let verdict = self.judge_server(server, instructions);
        let fingerprint = fingerprint(context);
        let name = server.name.as_str();
        let mut admitted = Vec::with_capacity(items.len());
        let lock_kind = lock_kind(kind);
        let mut item_pins = Vec::new();
        for item in items {
            let findings = self.scan(
                name,
                kind.index(),
                &item.name,
                &item.source,
                fingerprint,
                || match serde_json::from_str(&item.source) {
                    Ok(value) => scan::scan_definition(
                        review::item_kind(lock_kind),
                        &item.name,
                        &value,
                        context,
                    ),
                    Err(_) => Vec::new(),
                },
            );
            let key = PinKey::new(name, lock_kind, item.name.clone());
            let (mode, v, unusable) = {
                let (mode, lock, unusable) = self.lock_of(server);
                let v = judge::judge_item(
                    mode,
                    lock,
                    &key,
                    &item.exposed,
                    &item.source,
                    &findings,
                    &verdict,
                );
                (mode, v, unusable.map(str::to_owned))
            };
            if mode == PinningMode::Off && !v.unaccepted.is_empty() {
                let ids = v.unaccepted.join(", ");
                self.report_once(&item.exposed, &ids, || {
                    format!(
                        "`{}` has scan findings ({ids}); pinning is off, so it is served",
                        item.exposed
                    )
                });
            }
            if let Some(mut hold) = v.hold {
                if let Some(why) = unusable {
                    hold.reason = format!("{}; the lock file does not count: {why}", hold.reason);
                }
                let exposed = item.exposed.clone();
                self.report_once(&exposed, &hold.rule, || {
                    format!("held `{exposed}`: {}", hold.explain(&exposed))
                });
                self.held[kind.index()].insert(exposed, hold);
                admitted.push(false);
            } else {
                if let Some(pin) = v.pin {
                    item_pins.push((key, pin));
                }
                admitted.push(true);
            }
        }
        if verdict.pin.is_some() || !item_pins.is_empty() {
            self.pin_in_memory(server, verdict.pin, item_pins);
        }
        admitted
    }

    /// The user pinned `server` from the client: the executable it runs now is
    /// accepted too (recorded off the session's thread).
    pub(super) fn accept_executable(&mut self, server: &ServerConfig) {
        if self.replaced.remove(server.name.as_str()).is_none() {
            return;
        }
        let paths = self.setup.paths.clone();
        let server = server.clone();
        tokio::task::spawn_blocking(move || {
            let accepted = crate::upstream::program_of(&server)
                .map_err(anyhow::Error::from)
                .and_then(|program| machine::accept(&paths, &[program]));
            if let Err(e) = accepted {
                tracing::error!(server = %server.name, error = %e, "cannot record the server's executable");
            }
        });
    }

    /// The pin of `key` in the lock `server`'s pins live in.
    pub(super) fn pinned(&self, server: &ServerConfig, key: &PinKey) -> Option<&ItemPin> {
        match self.locks.get(&self.lock_path(server)) {
            Some(LockState::Ready(lock)) => lock.items.get(key),
            _ => None,
        }
    }

    /// How many items of `kind` are held.
    pub(super) fn held_count(&self, kind: ListKind) -> usize {
        self.held[kind.index()].len()
    }

    /// Forgets the holds of `kind` (before a rebuild judges every item again).
    pub(super) fn clear_held(&mut self, kind: ListKind) {
        self.held[kind.index()].clear();
    }

    /// Pins (a user's approval, or `tofu`) into the session's lock at once, and queues
    /// the write of the lock file.
    pub(super) fn pin_in_memory(
        &mut self,
        server: &ServerConfig,
        server_pin: Option<ServerPin>,
        items: Vec<(PinKey, ItemPin)>,
    ) {
        let path = self.lock_path(server);
        let Some(LockState::Ready(lock)) = self.locks.get_mut(&path) else {
            return;
        };
        let queued = self.writes.entry(path).or_default();
        if let Some(pin) = server_pin {
            lock.servers
                .insert(server.name.as_str().to_owned(), pin.clone());
            queued.servers.insert(server.name.as_str().to_owned(), pin);
        }
        for (key, pin) in items {
            lock.items.insert(key.clone(), pin.clone());
            queued.items.insert(key, pin);
        }
    }

    /// Writes what was pinned in memory to the lock files, off the session's thread.
    pub(super) fn flush_writes(&mut self) {
        for (path, pins) in std::mem::take(&mut self.writes) {
            let root = self.places.root_of(&path).cloned();
            let paths = self.setup.paths.clone();
            tokio::task::spawn_blocking(move || {
                match write_pins(&path, root.as_ref(), &paths, pins, |_| {}) {
                    Ok(_) => tracing::info!(path = %path.display(), "pins written"),
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "cannot write pins");
                    }
                }
            });
        }
    }

    fn report_once(&mut self, item: &str, rule: &str, text: impl FnOnce() -> String) {
        if self.reported.insert((item.to_owned(), rule.to_owned())) {
            self.reports.push(text());
        }
    }

    /// Scan findings of one definition, from the cache when neither it nor the context
    /// changed.
    fn scan(
        &mut self,
        server: &str,
        kind: usize,
        name: &str,
        source: &str,
        fingerprint: u64,
        run: impl FnOnce() -> Vec<Finding>,
    ) -> Vec<Finding> {
        let key = (server.to_owned(), kind, name.to_owned());
        if let Some((cached, at, findings)) = self.findings.get(&key)
            && **cached == *source
            && *at == fingerprint
        {
            return findings.clone();
        }
        let findings = run();
        self.findings
            .insert(key, (source.into(), fingerprint, findings.clone()));
        findings
    }
}

/// The lock's kind for a catalog kind.
pub(super) fn lock_kind(kind: ListKind) -> Kind {
    match kind {
        ListKind::Tools => Kind::Tool,
        ListKind::Prompts => Kind::Prompt,
        ListKind::Templates => Kind::ResourceTemplate,
    }
}

fn fingerprint(context: &ScanContext) -> u64 {
    let mut h = DefaultHasher::new();
    context.other_servers.hash(&mut h);
    context.other_tools.hash(&mut h);
    context.own_tools.hash(&mut h);
    h.finish()
}

/// What a lock file's reading depends on, as content digests (the lock, and for a
/// workspace's lock its `mcp-warden.toml` and the trust store): a rewrite that puts
/// back the length, modification time and inode is still seen. Blocking.
fn digests(path: &Path, workspace: Option<&WorkspaceLock>, paths: &Paths) -> Vec<Option<String>> {
    let mut files = vec![path.to_path_buf()];
    if let Some(w) = workspace {
        files.push(crate::paths::workspace_file(&w.root));
        files.push(paths.trust_file());
    }
    files
        .iter()
        .map(|f| crate::config::trust::content_digest(f))
        .collect()
}

/// Polls the lock files (and what a workspace's trust depends on) and sends a fresh
/// reading of each one that changed; the first reading of each is always sent.
async fn watch(
    watched: Vec<(PathBuf, Option<WorkspaceLock>)>,
    paths: Paths,
    tx: mpsc::Sender<LockUpdate>,
) {
    let mut last: Vec<Option<Vec<Option<String>>>> = vec![None; watched.len()];
    loop {
        for (i, (path, root)) in watched.iter().enumerate() {
            let (p, r, ps) = (path.clone(), root.clone(), paths.clone());
            let Ok(now) = tokio::task::spawn_blocking(move || digests(&p, r.as_ref(), &ps)).await
            else {
                continue;
            };
            if last[i].as_ref() == Some(&now) {
                continue;
            }
            last[i] = Some(now.clone());
            let (p, r, ps) = (path.clone(), root.clone(), paths.clone());
            let Ok(state) =
                tokio::task::spawn_blocking(move || read_lock(&p, r.as_ref(), &ps)).await
            else {
                continue;
            };
            let update = LockUpdate {
                path: path.clone(),
                state,
            };
            if tx.send(update).await.is_err() {
                return;
            }
            // A reading counts as settled only when the files held still around it:
            // else a flip during the read could leave in force a version no longer on
            // disk, with nothing left to notice. Then the next poll reads again.
            let (p, r, ps) = (path.clone(), root.clone(), paths.clone());
            let after = tokio::task::spawn_blocking(move || digests(&p, r.as_ref(), &ps)).await;
            if after.ok().as_ref() != Some(&now) {
                last[i] = None;
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

impl super::Session {
    /// Judges every ready server's listing of `kind`; returns the (slot, exposed name)
    /// pairs that are held.
    pub(super) fn judge_listings(&mut self, kind: ListKind) -> HashSet<(usize, String)> {
        self.pins.clear_held(kind);
        let mut refused = HashSet::new();
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            let super::SlotState::Ready { instructions, .. } = &slot.state else {
                continue;
            };
            let items = match &slot.lists[kind.index()] {
                super::ListState::Listed(items)
                | super::ListState::Listing {
                    previous: items, ..
                } => items,
                super::ListState::None => continue,
            };
            if items.is_empty() {
                continue;
            }
            let context = self.scan_context(index);
            let admitted =
                self.pins
                    .judge_items(&slot.config, instructions.as_deref(), kind, items, &context);
            for (item, admitted) in items.iter().zip(admitted) {
                if !admitted {
                    refused.insert((index, item.exposed.clone()));
                }
            }
        }
        refused
    }

    /// What the scan knows about the servers other than the one in slot `index`.
    pub(super) fn scan_context(&self, index: usize) -> ScanContext {
        let peers: Vec<Peer<'_>> = self
            .slots
            .iter()
            .map(|slot| Peer {
                config: &slot.config,
                tools: match &slot.lists[ListKind::Tools.index()] {
                    super::ListState::Listed(items)
                    | super::ListState::Listing {
                        previous: items, ..
                    } => items.iter().map(|t| t.name.as_str()).collect(),
                    super::ListState::None => Vec::new(),
                },
            })
            .collect();
        review::scan_context(&peers, index)
    }

    /// Says what pinning found: each item on stderr and in the log; the client gets
    /// one message (a summary when there are many, so a first run does not flood it).
    pub(super) fn report_pins(&mut self) {
        let reports = self.pins.take_reports();
        for text in &reports {
            tracing::warn!("{text}");
            crate::output::diag(&format!("mcp-warden: {text}"));
        }
        let to_client = match reports.len() {
            0 => return,
            1..=3 => reports.join("\n"),
            n => format!(
                "{n} pinning notices, e.g. {}; `mcp-warden pins` lists them all, `mcp-warden pin` reviews and pins",
                reports[0]
            ),
        };
        if self.client.initialized {
            self.out
                .push_back(super::wire::log_message("warning", &to_client));
        } else {
            self.notices.push(to_client);
        }
    }

    /// A lock file changed: every catalog is judged again, and the client hears of
    /// lists that changed.
    pub(super) fn on_lock_update(&mut self, update: LockUpdate) {
        if self.pins.apply(update) {
            self.after_state_change();
            self.report_pins();
        }
    }
}

/// A call waiting for the user's review of the held item it names.
#[derive(Debug)]
pub(super) struct PinReview {
    request: crate::jsonrpc::Message,
    origin: super::Origin,
    kind: ListKind,
    exposed: String,
    slot: usize,
    key: PinKey,
    pin: ItemPin,
    server_pin: Option<ServerPin>,
    hold: Hold,
}

impl PinReview {
    pub(super) fn origin(&self) -> &super::Origin {
        &self.origin
    }

    pub(super) fn origin_id(&self) -> &crate::jsonrpc::Id {
        &self.origin.id
    }

    /// The request the answer arrived with takes the review over (a modern client
    /// answers on a retry, with an id of its own).
    pub(super) fn retarget(&mut self, request: crate::jsonrpc::Message, origin: super::Origin) {
        self.request = request;
        self.origin = origin;
    }
}

impl super::Session {
    /// `[pinning] ask`: asks the user, through the client's elicitation, to review a
    /// held item (its diff, or its whole definition, and the findings) and pin it; the
    /// call goes on once pinned. `false` when the client cannot be asked.
    pub(super) fn ask_to_pin(
        &mut self,
        request: &crate::jsonrpc::Message,
        origin: &super::Origin,
        kind: ListKind,
        exposed: &str,
    ) -> bool {
        let modern = super::mrtr::client_is_modern(request);
        let can_ask =
            self.client.initialized && self.client.capabilities.get("elicitation").is_some();
        if !modern && !can_ask {
            return false;
        }
        let Some(hold) = self.pins.held(kind, exposed).cloned() else {
            return false;
        };
        let found = self.slots.iter().enumerate().find_map(|(index, slot)| {
            let super::ListState::Listed(items) = &slot.lists[kind.index()] else {
                return None;
            };
            let item = items.iter().find(|i| i.exposed == exposed)?;
            let super::SlotState::Ready { instructions, .. } = &slot.state else {
                return None;
            };
            Some((index, item.clone(), instructions.clone()))
        });
        let Some((slot, item, instructions)) = found else {
            return false;
        };
        let config = self.slots[slot].config.clone();
        let context = self.scan_context(slot);
        let findings = match serde_json::from_str(&item.source) {
            Ok(value) => scan::scan_definition(
                review::item_kind(lock_kind(kind)),
                &item.name,
                &value,
                &context,
            ),
            Err(_) => Vec::new(),
        };
        let Ok(pin) = judge::candidate_pin(exposed, &item.source, &findings) else {
            return false;
        };
        let verdict = self.pins.judge_server(&config, instructions.as_deref());
        let server_pin = verdict.hold.as_ref().map(|_| {
            judge::server_pin(&ServerFacts {
                server: config.name.as_str(),
                command: &config.raw_command,
                args: &config.raw_args,
                instructions: instructions.as_deref(),
                instruction_findings: &[],
                replaced_executable: None,
            })
        });
        let key = PinKey::new(config.name.as_str(), lock_kind(kind), item.name.clone());
        let pinned = self.pins.pinned(&config, &key).cloned();
        let mut message = format!(
            "mcp-warden holds {} `{exposed}` of server `{}`: {}.\n\n",
            key.kind, config.name, hold.reason
        );
        message.push_str(&review::unified_diff(exposed, pinned.as_ref(), Some(&pin)));
        for f in findings
            .iter()
            .filter(|f| f.severity >= judge::HOLD_SEVERITY)
        {
            let _ = write!(
                message,
                "\n\nScan finding {} ({}): {} \"{}\"",
                f.id, f.severity, f.message, f.excerpt
            );
        }
        if server_pin.is_some() {
            let _ = write!(
                message,
                "\n\nPinning it also pins the command and instructions of server `{}`.",
                config.name
            );
        }
        message.push_str("\n\nPin this definition and let the call go on?");
        let params = super::wire::pin_review_params(&message);
        let review = Box::new(PinReview {
            request: request.clone(),
            origin: origin.clone(),
            kind,
            exposed: exposed.to_owned(),
            slot,
            key,
            pin,
            server_pin,
            hold,
        });
        if modern {
            return self.review_modern(request, origin, &params, review);
        }
        let ours = self.reverse.mint(super::Reverse::PinReview(review));
        tracing::info!(item = exposed, "asking the user to review a held item");
        self.out.push_back(super::wire::request(
            ours,
            "elicitation/create",
            Some(&params),
        ));
        true
    }

    /// The user's answer to a review: pinned and the call goes on, or the call is
    /// blocked as declined.
    pub(super) fn on_pin_review(&mut self, answer: &crate::jsonrpc::Message, review: PinReview) {
        #[derive(serde::Deserialize)]
        struct Answer {
            action: String,
            #[serde(default)]
            content: Option<serde_json::Value>,
        }
        let accepted = answer
            .result()
            .and_then(|r| serde_json::from_str::<Answer>(r).ok())
            .is_some_and(|a| {
                a.action == "accept"
                    && a.content.and_then(|c| c.get("pin").cloned())
                        == Some(serde_json::Value::Bool(true))
            });
        let Some(config) = self.slots.get(review.slot).map(|s| s.config.clone()) else {
            return;
        };
        if accepted {
            tracing::info!(item = %review.exposed, "the user pinned a held item from the client");
            if review.server_pin.is_some() {
                self.pins.accept_executable(&config);
            }
            self.pins
                .pin_in_memory(&config, review.server_pin, vec![(review.key, review.pin)]);
            self.pins.flush_writes();
            self.after_state_change();
            if self.catalogs[review.kind.index()]
                .route(&review.exposed)
                .is_some()
            {
                let method = review.request.method().unwrap_or_default().to_owned();
                return self.on_client_request(review.request, review.origin, &method);
            }
        }
        let reason = if accepted {
            format!("{}; it could not be pinned", review.hold.reason)
        } else {
            "declined by the user".to_owned()
        };
        let stop = crate::stages::hold::stop(&review.hold, &review.exposed, Some(reason));
        let view = crate::stages::View::of(crate::stages::Direction::ToUpstream, &review.request)
            .server(&config.name)
            .name(Some(&review.exposed));
        self.stop_request(&view, &review.request, &review.origin, &stop);
    }
}
