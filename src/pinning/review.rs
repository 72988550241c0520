//! What the servers offer now, next to what is pinned: the model behind `pins`, `pin`
//! and `scan`. Built from the [inventories](crate::upstream::inventory) and the lock
//! files, judged by the same [`judge`](super::judge) functions `serve` uses, so a
//! command shows exactly what `serve` would hold.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use serde::Serialize;

use super::files::LockState;
use super::judge::{self, Hold, ItemStatus, ServerFacts, ServerStatus, ServerVerdict};
use super::listed::{Inventory, Listing};
use super::lock::{ItemPin, Kind, LockFile, PinKey, ServerPin};
use crate::config::{PinningMode, ServerConfig};
use crate::names::exposed_name;
use crate::scan::{self, Finding, ItemKind, ScanContext};

/// An item's state, as `pins` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pinned,
    New,
    Changed,
    /// Matches its pin (or is new) but has findings its pin does not accept.
    Flagged,
    /// Pinned, but the server no longer offers it.
    Removed,
    /// Its definition cannot be pinned (duplicate keys, too deep).
    Invalid,
}

impl Status {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pinned => "pinned",
            Self::New => "new",
            Self::Changed => "changed",
            Self::Flagged => "flagged",
            Self::Removed => "removed",
            Self::Invalid => "invalid",
        }
    }

    /// Whether the lock is not up to date with this item.
    #[must_use]
    pub fn needs_review(self) -> bool {
        self != Self::Pinned
    }
}

/// One tool, prompt or resource template.
#[derive(Debug, Clone)]
pub struct ItemReview {
    pub key: PinKey,
    pub exposed: String,
    pub status: Status,
    /// Every finding of the current definition, low ones included.
    pub findings: Vec<Finding>,
    /// The pin accepting the current definition (`None`: removed or invalid).
    pub current: Option<ItemPin>,
    pub pinned: Option<ItemPin>,
    /// Why `serve` holds it, in the configured mode.
    pub hold: Option<Hold>,
}

/// One configured server.
#[derive(Debug, Clone)]
pub struct ServerReview {
    pub config: ServerConfig,
    pub lock_path: PathBuf,
    /// Why its lock does not count, if it does not.
    pub unusable: Option<String>,
    /// Why it could not be listed, if it could not.
    pub error: Option<String>,
    pub instructions: Option<String>,
    pub instruction_findings: Vec<Finding>,
    /// What pinning its identity and instructions would write.
    pub current: Option<ServerPin>,
    pub verdict: Option<ServerVerdict>,
    pub items: Vec<ItemReview>,
}

impl ServerReview {
    /// Whether the server's own pin needs review.
    #[must_use]
    pub fn needs_review(&self) -> bool {
        self.verdict
            .as_ref()
            .is_some_and(|v| v.status != ServerStatus::Pinned)
    }
}

/// Reviews every server: `inventories` in the order of `servers`; `locks` by path;
/// `lock_path` says which lock a server's pins live in; `replaced`: servers whose
/// executable was replaced (see [`super::machine::replaced`]).
#[must_use]
pub fn review<S: std::hash::BuildHasher>(
    mode: PinningMode,
    servers: &[ServerConfig],
    inventories: &[Inventory],
    locks: &HashMap<PathBuf, LockState, S>,
    lock_path: impl Fn(&ServerConfig) -> PathBuf,
    replaced: &std::collections::BTreeMap<String, String>,
) -> Vec<ServerReview> {
    let empty = LockFile::default();
    let listings: Vec<Option<&Listing>> = inventories
        .iter()
        .map(|inv| inv.outcome.as_ref().ok())
        .collect();
    servers
        .iter()
        .zip(inventories)
        .enumerate()
        .map(|(index, (config, inventory))| {
            let path = lock_path(config);
            let (lock, unusable) = match locks.get(&path) {
                Some(LockState::Ready(lock)) => (lock, None),
                Some(LockState::Unusable(why)) => (&empty, Some(why.clone())),
                None => (&empty, None),
            };
            let mode = if unusable.is_some() && mode != PinningMode::Off {
                PinningMode::Strict
            } else {
                mode
            };
            let mut review = ServerReview {
                config: config.clone(),
                lock_path: path,
                unusable,
                error: inventory.outcome.as_ref().err().cloned(),
                instructions: None,
                instruction_findings: Vec::new(),
                current: None,
                verdict: None,
                items: Vec::new(),
            };
            if let Ok(listing) = &inventory.outcome {
                let context = context_for(servers, &listings, index);
                let replaced = replaced.get(config.name.as_str()).map(String::as_str);
                review_listing(mode, lock, listing, &context, replaced, &mut review);
            }
            review
        })
        .collect()
}

fn review_listing(
    mode: PinningMode,
    lock: &LockFile,
    listing: &Listing,
    context: &ScanContext,
    replaced_executable: Option<&str>,
    review: &mut ServerReview,
) {
    let config = &review.config;
    let server = config.name.as_str();
    review.instructions.clone_from(&listing.instructions);
    review.instruction_findings = listing
        .instructions
        .as_deref()
        .map(|text| scan::scan_instructions(server, text, context))
        .unwrap_or_default();
    let facts = ServerFacts {
        server,
        command: &config.raw_command,
        args: &config.raw_args,
        instructions: listing.instructions.as_deref(),
        instruction_findings: &review.instruction_findings,
        replaced_executable,
    };
    review.current = Some(judge::server_pin(&facts));
    let verdict = judge::judge_server(mode, lock, &facts);
    let mut seen = BTreeSet::new();
    for def in &listing.items {
        let key = PinKey::new(server, def.kind, def.name.clone());
        let exposed = match def.kind {
            Kind::ResourceTemplate => def.name.clone(),
            Kind::Tool | Kind::Prompt => exposed_name(&config.namespace, &def.name),
        };
        let findings = serde_json::from_str(&def.json)
            .map(|value| scan::scan_definition(item_kind(def.kind), &def.name, &value, context))
            .unwrap_or_default();
        let v = judge::judge_item(mode, lock, &key, &exposed, &def.json, &findings, &verdict);
        let status = match v.status {
            ItemStatus::Invalid(_) => Status::Invalid,
            ItemStatus::Changed => Status::Changed,
            _ if !v.unaccepted.is_empty() => Status::Flagged,
            ItemStatus::New => Status::New,
            ItemStatus::Pinned => Status::Pinned,
        };
        seen.insert(key.clone());
        review.items.push(ItemReview {
            current: judge::candidate_pin(&exposed, &def.json, &findings).ok(),
            pinned: lock.items.get(&key).cloned(),
            key,
            exposed,
            status,
            findings,
            hold: v.hold,
        });
    }
    for (key, pin) in lock.items.range(PinKey::new(server, Kind::Tool, "")..) {
        if key.server != server {
            break;
        }
        if !seen.contains(key) {
            review.items.push(ItemReview {
                key: key.clone(),
                exposed: pin.exposed.clone(),
                status: Status::Removed,
                findings: Vec::new(),
                current: None,
                pinned: Some(pin.clone()),
                hold: None,
            });
        }
    }
    review.verdict = Some(verdict);
}

/// What the scan knows of the servers other than `servers[index]`.
fn context_for(
    servers: &[ServerConfig],
    listings: &[Option<&Listing>],
    index: usize,
) -> ScanContext {
    let peers: Vec<Peer<'_>> = servers
        .iter()
        .zip(listings)
        .map(|(config, listing)| Peer {
            config,
            tools: listing
                .iter()
                .flat_map(|l| l.items.iter())
                .filter(|d| d.kind == Kind::Tool)
                .map(|d| d.name.as_str())
                .collect(),
        })
        .collect();
    scan_context(&peers, index)
}

/// One configured server and the upstream names of its tools.
#[derive(Debug)]
pub struct Peer<'a> {
    pub config: &'a ServerConfig,
    pub tools: Vec<&'a str>,
}

/// What the scan knows of the servers other than `peers[index]`: their table names,
/// namespaces and tools (upstream and exposed names), to find a description that
/// gives instructions about them.
#[must_use]
pub fn scan_context(peers: &[Peer<'_>], index: usize) -> ScanContext {
    let own = &peers[index];
    let mut context = ScanContext {
        own_server: own.config.name.as_str().to_owned(),
        own_tools: own.tools.iter().map(|t| (*t).to_owned()).collect(),
        ..ScanContext::default()
    };
    for (i, other) in peers.iter().enumerate() {
        if i == index {
            continue;
        }
        let config = other.config;
        context.other_servers.push(config.name.as_str().to_owned());
        let ns = config.namespace.as_str();
        if !ns.is_empty() && ns != config.name.as_str() {
            context.other_servers.push(ns.to_owned());
        }
        for tool in &other.tools {
            context.other_tools.push((*tool).to_owned());
            context
                .other_tools
                .push(exposed_name(&config.namespace, tool));
        }
    }
    context
}

/// The scan's kind for a lock kind.
#[must_use]
pub fn item_kind(kind: Kind) -> ItemKind {
    match kind {
        Kind::Tool => ItemKind::Tool,
        Kind::Prompt => ItemKind::Prompt,
        Kind::ResourceTemplate => ItemKind::ResourceTemplate,
    }
}

/// The unified diff from a pinned definition to the offered one (either may be
/// absent), one JSON member per line as the lock file shows them.
#[must_use]
pub fn unified_diff(exposed: &str, pinned: Option<&ItemPin>, offered: Option<&ItemPin>) -> String {
    let text = |pin: Option<&ItemPin>| {
        pin.map(|p| {
            let mut t = p.definition_pretty();
            if !t.ends_with('\n') {
                t.push('\n');
            }
            t
        })
        .unwrap_or_default()
    };
    let (old, new) = (text(pinned), text(offered));
    let old_label = format!("pinned {exposed}");
    let new_label = format!("offered {exposed}");
    let mut text = similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&old_label, &new_label)
        .to_string();
    while text.ends_with('\n') {
        text.pop();
    }
    text
}

/// What a person reads to review one item (issue 16 item 6): its description as text
/// and every other member flattened to one `path: value` line per leaf
/// (`inputSchema.properties.path.type: "string"`), as a diff from its pin (`-` pinned,
/// `+` offered, unchanged lines left out of a change) or in full when there is no pin.
/// Every line is indented two spaces; outside text is escaped as one line
/// ([`crate::output::one_line`]), so the result can be printed as a block.
#[must_use]
pub fn readable_change(pinned: Option<&ItemPin>, offered: Option<&ItemPin>) -> String {
    let parse = |pin: Option<&ItemPin>| {
        pin.and_then(|p| serde_json::from_str::<serde_json::Value>(p.definition()).ok())
    };
    let (old, new) = (parse(pinned), parse(offered));
    let description = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .and_then(|v| v.get("description"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let fields = |v: &Option<serde_json::Value>| {
        let mut lines = Vec::new();
        if let Some(serde_json::Value::Object(map)) = v {
            for (key, value) in map.iter().filter(|(k, _)| *k != "description") {
                flatten(key, value, &mut lines);
            }
        }
        lines.join("\n")
    };
    let mut out = Vec::new();
    let is_new = pinned.is_none();
    section(
        "description",
        is_new,
        &description(&old),
        &description(&new),
        &mut out,
    );
    let (old_fields, new_fields) = (fields(&old), fields(&new));
    section(
        "schema and other fields",
        is_new,
        &old_fields,
        &new_fields,
        &mut out,
    );
    out.join("\n")
}

/// One part of an item under its `title`: in full when the item `is_new`, the changed
/// lines when it differs from its pin, or one line saying it is unchanged.
fn section(title: &str, is_new: bool, old: &str, new: &str, out: &mut Vec<String>) {
    if is_new {
        out.push(format!("  {title}:"));
    } else if old == new {
        out.push(format!("  {title}: unchanged"));
        return;
    } else {
        out.push(format!("  {title} (- pinned, + offered):"));
    }
    diff_lines(!is_new, old, new, out);
}

/// Longest flattened value shown on one line; longer ones are cut with `…` (the full
/// definition stays in `pins --diff`).
const MAX_VALUE_CHARS: usize = 160;

/// Appends one `path: value` line per leaf of `value` under `path`.
fn flatten(path: &str, value: &serde_json::Value, lines: &mut Vec<String>) {
    use serde_json::Value;
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, v) in map {
                flatten(&format!("{path}.{key}"), v, lines);
            }
        }
        Value::Array(items)
            if !items.is_empty() && items.iter().any(serde_json::Value::is_object) =>
        {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{path}[{i}]"), v, lines);
            }
        }
        leaf => {
            let mut text = leaf.to_string();
            if let Some((cut, _)) = text.char_indices().nth(MAX_VALUE_CHARS) {
                text.truncate(cut);
                text.push('…');
            }
            lines.push(format!("{path}: {text}"));
        }
    }
}

/// Appends `old` → `new` line by line, four spaces in: with `changes_only`, the lines
/// that differ marked `-`/`+`; otherwise every line of `new`.
fn diff_lines(changes_only: bool, old: &str, new: &str, out: &mut Vec<String>) {
    use crate::output::one_line;
    if !changes_only {
        out.extend(new.lines().map(|l| format!("    {}", one_line(l))));
        if new.is_empty() {
            out.push("    (none)".to_owned());
        }
        return;
    }
    for change in similar::TextDiff::from_lines(old, new).iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Equal => continue,
            similar::ChangeTag::Delete => '-',
            similar::ChangeTag::Insert => '+',
        };
        let text = change.value().trim_end_matches('\n');
        out.push(format!("  {sign} {}", one_line(text)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(json: &str) -> ItemPin {
        ItemPin::new("s__t", json).expect("valid definition")
    }

    #[test]
    fn a_change_shows_only_what_changed_and_escapes_it() {
        let old = pin(
            r#"{"name":"t","description":"Reads a file.","inputSchema":{"type":"object","properties":{"path":{"type":"string"}}}}"#,
        );
        let new = pin(
            r#"{"name":"t","description":"Reads a file.\u001b[2J","inputSchema":{"type":"object","properties":{"path":{"type":"string"},"ctx":{"type":"string"}}}}"#,
        );
        let shown = readable_change(Some(&old), Some(&new));
        assert!(shown.contains("  - Reads a file.\n"), "{shown}");
        assert!(shown.contains(r"  + Reads a file.\u{1b}[2J"), "{shown}");
        assert!(
            shown.contains(r#"  + inputSchema.properties.ctx.type: "string""#),
            "{shown}"
        );
        assert!(
            !shown.contains("properties.path"),
            "unchanged lines are left out: {shown}"
        );
        assert!(!shown.contains('\u{1b}'), "{shown}");
    }

    #[test]
    fn a_new_item_is_shown_in_full_and_an_unchanged_part_says_so() {
        let new = pin(r#"{"name":"t","description":"Line one.\nLine two."}"#);
        let shown = readable_change(None, Some(&new));
        assert!(
            shown.contains("  description:\n    Line one.\n    Line two."),
            "{shown}"
        );
        assert!(shown.contains(r#"    name: "t""#), "{shown}");
        let changed = pin(r#"{"name":"t","description":"Line one.\nLine two.","title":"T"}"#);
        let shown = readable_change(Some(&new), Some(&changed));
        assert!(shown.contains("  description: unchanged"), "{shown}");
        assert!(shown.contains(r#"  + title: "T""#), "{shown}");
    }
}
