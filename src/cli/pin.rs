//! `mcp-warden pins`, `pin` and `unpin`: the lock file from the command line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use serde_json::{Value, json};

use super::inventory::{self, Inventory};
use crate::ExitStatus;
use crate::config;
use crate::output;
use crate::output::one_line;
use crate::paths::Paths;
use crate::pinning::files::{self, LockPlaces, LockState};
use crate::pinning::judge::ServerVerdict;
use crate::pinning::lock::{ItemPin, LockFile, PinKey, ServerPin};
use crate::pinning::review::{self, ItemReview, ServerReview, Status};
use crate::scan::Finding;

/// Show every pinned item and what the servers offer now: pinned, new, changed,
/// flagged or removed. Starts the servers (under the same trust gate as `serve`).
/// Exit 1 when anything needs review.
#[derive(Debug, Args)]
pub struct PinsArgs {
    /// Show the unified diff of each changed definition (or of TOOL only).
    #[arg(long, value_name = "TOOL", num_args = 0..=1, default_missing_value = "")]
    pub diff: Option<String>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Pin what the servers offer now. Shows what it accepts (new definitions in full,
/// changes as a diff of description and schema, scan findings by severity), in a
/// pager on a terminal, then writes `mcp-warden.lock`. With no argument it asks
/// item by item (`y`, `n`, `a` for this and the rest, `q` to stop); declining
/// everything exits 1.
#[derive(Debug, Args)]
// Independent command-line flags, as clap declares them.
#[allow(clippy::struct_excessive_bools)]
pub struct PinArgs {
    /// Exposed tool names (`fs__read_file`) or server table names (`fs`).
    #[arg(value_name = "TOOL or SERVER")]
    pub targets: Vec<String>,
    /// Every item of every server, and drop pins of items no longer offered.
    #[arg(long)]
    pub all: bool,
    /// Do not ask for confirmation (for scripts). Never pins an item with scan
    /// findings by itself: name the item, or add `--accept-findings`.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also pin items whose scan findings would be accepted without naming each one.
    #[arg(long)]
    pub accept_findings: bool,
    /// Print the review as one JSON document and never ask: pins only what is named,
    /// or everything with `--yes`; otherwise pins nothing and exits 1.
    #[arg(long)]
    pub json: bool,
}

/// Remove pins (the items are then held as new in `strict` mode). Does not start
/// the servers.
#[derive(Debug, Args)]
pub struct UnpinArgs {
    /// Exposed tool names or server table names.
    #[arg(value_name = "TOOL or SERVER", required = true)]
    pub targets: Vec<String>,
}

/// Runs `pins`.
pub fn run_pins(
    paths: &Paths,
    workspace: Option<PathBuf>,
    args: &PinsArgs,
) -> anyhow::Result<ExitStatus> {
    let inv = match inventory::take(paths, workspace)? {
        Ok(inv) => inv,
        Err(status) => return Ok(status),
    };
    if let Some(only) = &args.diff {
        let only = (!only.is_empty()).then_some(only.as_str());
        if let Some(name) = only
            && !inv
                .reviews
                .iter()
                .any(|r| r.items.iter().any(|i| i.exposed == name))
        {
            output::diag(&format!(
                "error: no tool, prompt or template `{name}` is offered or pinned"
            ));
            return Ok(ExitStatus::Usage);
        }
        print_diffs(&inv, only);
    } else if args.json {
        output::json(&serde_json::to_string_pretty(&pins_json(&inv))?);
    } else {
        print_table(&inv);
    }
    let review_needed = inv
        .reviews
        .iter()
        .any(|r| r.needs_review() || r.items.iter().any(|i| i.status.needs_review()));
    Ok(if inv.failed() {
        ExitStatus::Failure
    } else if review_needed {
        ExitStatus::Findings
    } else {
        ExitStatus::Success
    })
}

/// Runs `pin`.
pub fn run_pin(
    paths: &Paths,
    workspace: Option<PathBuf>,
    args: &PinArgs,
) -> anyhow::Result<ExitStatus> {
    let asks = args.targets.is_empty() || args.all;
    // Refused before anything starts or prints: without a terminal no one can answer,
    // and a review printed to no one is noise in a log.
    if asks && !args.yes && !args.json && !output::stdin_is_terminal() {
        output::diag(
            "error: refusing to pin without confirmation: no terminal; pass `--yes` \
             (or `--json` to see the review)",
        );
        return Ok(ExitStatus::Usage);
    }
    let inv = match inventory::take(paths, workspace)? {
        Ok(inv) => inv,
        Err(status) => return Ok(status),
    };
    let Some(plan) = plan(&inv, args) else {
        return Ok(ExitStatus::Usage);
    };
    let failed = || {
        if inv.failed() {
            ExitStatus::Failure
        } else {
            ExitStatus::Success
        }
    };
    if plan.is_empty() {
        if args.json {
            output::json(&serde_json::to_string_pretty(&review_json(
                &inv,
                &plan,
                &[],
            ))?);
        } else if plan.withheld == 0 {
            output::line("nothing to pin: every definition matches its pin");
        }
        // Items withheld for their findings still need a decision.
        return Ok(if plan.withheld > 0 && !inv.failed() {
            ExitStatus::Findings
        } else {
            failed()
        });
    }
    let decided_by_flags = !asks || args.yes;
    let chosen = if args.json {
        let chosen = vec![decided_by_flags; plan.entries.len()];
        output::json(&serde_json::to_string_pretty(&review_json(
            &inv, &plan, &chosen,
        ))?);
        chosen
    } else if decided_by_flags {
        output::block(&review_text(&inv, &plan));
        vec![true; plan.entries.len()]
    } else {
        output::page(&review_text(&inv, &plan));
        decide(&inv, &plan)?
    };
    if !chosen.contains(&true) {
        output::diag("nothing pinned");
        return Ok(ExitStatus::Findings);
    }
    for (path, change) in plan.changes(&chosen) {
        let root = inv.places.root_of(&path);
        files::write_pins(&path, root, paths, change.pins, |lock| {
            for key in &change.remove {
                lock.items.remove(key);
            }
        })?;
        if !args.json {
            output::line(&format!("pinned in `{}`", path.display()));
        }
    }
    // Pinning a server (or any of its items) also accepts the executable it runs now.
    let programs: Vec<PathBuf> = plan
        .entries
        .iter()
        .zip(&chosen)
        .filter(|(_, c)| **c)
        .map(|(e, _)| e.server)
        .collect::<BTreeSet<usize>>()
        .into_iter()
        .filter_map(|s| crate::upstream::program_of(&inv.reviews[s].config).ok())
        .collect();
    crate::pinning::machine::accept(paths, &programs)?;
    if !args.json {
        output::line(&format!("pinned {}", plan.summary(&chosen)));
    }
    Ok(failed())
}

/// Runs `unpin`.
pub fn run_unpin(
    paths: &Paths,
    workspace: Option<PathBuf>,
    args: &UnpinArgs,
) -> anyhow::Result<ExitStatus> {
    let choice = super::check::workspace_choice(workspace)?;
    let effective = match config::load(paths, &choice) {
        Ok(effective) => effective,
        Err(e) => {
            output::diag_block(&e.to_string());
            return Ok(ExitStatus::Usage);
        }
    };
    let places = LockPlaces::new(paths, &effective);
    let targets: BTreeSet<&str> = args.targets.iter().map(String::as_str).collect();
    let mut matched = BTreeSet::new();
    let mut count = 0;
    for (path, root) in places.all() {
        let lock = match files::read_lock(&path, root.as_ref(), paths) {
            LockState::Ready(lock) => lock,
            LockState::Unusable(why) => {
                output::diag(&format!(
                    "mcp-warden: `{}` is skipped: {why}",
                    path.display()
                ));
                continue;
            }
        };
        let items: Vec<PinKey> = lock
            .items
            .iter()
            .filter(|(key, pin)| {
                let hit = [key.server.as_str(), pin.exposed.as_str()]
                    .into_iter()
                    .find(|t| targets.contains(t));
                hit.inspect(|t| {
                    matched.insert((*t).to_owned());
                })
                .is_some()
            })
            .map(|(key, _)| key.clone())
            .collect();
        let servers: Vec<String> = lock
            .servers
            .keys()
            .filter(|s| targets.contains(s.as_str()))
            .cloned()
            .collect();
        matched.extend(servers.iter().cloned());
        if items.is_empty() && servers.is_empty() {
            continue;
        }
        count += items.len();
        files::write_pins(&path, root.as_ref(), paths, LockFile::default(), |lock| {
            for key in &items {
                lock.items.remove(key);
            }
            for server in &servers {
                lock.servers.remove(server);
            }
        })?;
        output::line(&format!(
            "unpinned {count} item(s){} in `{}`",
            if servers.is_empty() {
                ""
            } else {
                " and the server's own pin"
            },
            path.display()
        ));
    }
    let missing: Vec<&&str> = targets.iter().filter(|t| !matched.contains(**t)).collect();
    if !missing.is_empty() {
        for t in missing {
            output::diag(&format!("error: nothing pinned is named `{t}`"));
        }
        return Ok(ExitStatus::Usage);
    }
    Ok(ExitStatus::Success)
}

// ----- what to pin -------------------------------------------------------------------

/// The pins to write and remove, per lock file.
#[derive(Debug, Default)]
struct Change {
    pins: LockFile,
    remove: Vec<PinKey>,
}

/// What accepting one entry of the review writes.
#[derive(Debug)]
enum Action {
    Pin(PinKey, ItemPin),
    Remove(PinKey),
    Server(String, ServerPin),
}

/// One thing a person decides on: a server's own pin, or one item.
#[derive(Debug)]
struct Entry {
    /// Index of the server in the inventory.
    server: usize,
    /// Index of the item, `None` for the server's own pin.
    item: Option<usize>,
    lock: PathBuf,
    action: Action,
}

/// What `pin` would write, entry by entry: a server's own pin comes before its items.
#[derive(Debug, Default)]
struct Plan {
    entries: Vec<Entry>,
    /// Items left out because pinning them would accept findings nobody named.
    withheld: usize,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The lock changes of the `chosen` entries.
    fn changes(&self, chosen: &[bool]) -> BTreeMap<PathBuf, Change> {
        let mut by_lock: BTreeMap<PathBuf, Change> = BTreeMap::new();
        for (entry, _) in self.entries.iter().zip(chosen).filter(|(_, c)| **c) {
            let change = by_lock.entry(entry.lock.clone()).or_default();
            match &entry.action {
                Action::Pin(key, pin) => {
                    change.pins.items.insert(key.clone(), pin.clone());
                }
                Action::Remove(key) => change.remove.push(key.clone()),
                Action::Server(name, pin) => {
                    change.pins.servers.insert(name.clone(), pin.clone());
                }
            }
        }
        by_lock
    }

    fn summary(&self, chosen: &[bool]) -> String {
        let picked = || self.entries.iter().zip(chosen).filter(|(_, c)| **c);
        let items = picked().filter(|(e, _)| e.item.is_some()).count();
        let servers = picked().count() - items;
        match (items, servers) {
            (i, 0) => format!("{i} item(s)"),
            (0, s) => format!("{s} server identity/instructions pin(s)"),
            (i, s) => format!("{i} item(s) and {s} server identity/instructions pin(s)"),
        }
    }
}

/// Chooses what `args` pins; `None` (after saying why) when a target names nothing.
fn plan(inv: &Inventory, args: &PinArgs) -> Option<Plan> {
    let targets: BTreeSet<&str> = args.targets.iter().map(String::as_str).collect();
    let mut matched: BTreeSet<&str> = BTreeSet::new();
    let mut plan = Plan::default();
    for (s, review) in inv.reviews.iter().enumerate() {
        let server = review.config.name.as_str();
        let first = plan.entries.len();
        let whole = args.all || targets.contains(server);
        if targets.contains(server) {
            matched.insert(server);
        }
        let mut any_item = false;
        for (i, item) in review.items.iter().enumerate() {
            let named = targets.contains(item.exposed.as_str());
            if named {
                matched.insert(item.exposed.as_str());
            }
            let chosen = match item.status {
                Status::Invalid => {
                    if named || whole || targets.is_empty() {
                        output::diag(&format!(
                            "mcp-warden: `{}` cannot be pinned: its definition is not valid canonical JSON",
                            item.exposed
                        ));
                    }
                    false
                }
                Status::Removed => named || whole,
                Status::Pinned => false,
                _ => named || whole || targets.is_empty(),
            };
            if !chosen {
                continue;
            }
            // Accepting findings is a deliberate act: the item is named, or the
            // user said so (SPEC "Commands"); never a side effect of a server name,
            // `--all` or `--yes`.
            let accepts = new_findings(item);
            if !accepts.is_empty() && !named && !args.accept_findings {
                output::diag(&format!(
                    "mcp-warden: `{}` is not pinned: pinning it would accept its scan findings ({}); \
                     name it (`mcp-warden pin {}`) or add `--accept-findings`",
                    item.exposed,
                    accepts.join(", "),
                    item.exposed
                ));
                plan.withheld += 1;
                continue;
            }
            any_item = true;
            let action = match &item.current {
                Some(pin) if item.status != Status::Removed => {
                    Action::Pin(item.key.clone(), pin.clone())
                }
                _ => Action::Remove(item.key.clone()),
            };
            plan.entries.push(Entry {
                server: s,
                item: Some(i),
                lock: review.lock_path.clone(),
                action,
            });
        }
        // The server's own pin goes with any of its items (they stay held without it),
        // and with the server itself.
        if review.needs_review()
            && (any_item || whole || targets.is_empty())
            && let Some(current) = &review.current
        {
            // Before its items: declining it leaves them held anyway (see `decide`).
            plan.entries.insert(
                first,
                Entry {
                    server: s,
                    item: None,
                    lock: review.lock_path.clone(),
                    action: Action::Server(server.to_owned(), current.clone()),
                },
            );
        }
    }
    let missing: Vec<&&str> = targets.iter().filter(|t| !matched.contains(**t)).collect();
    if !missing.is_empty() {
        for t in missing {
            output::diag(&format!(
                "error: no server or exposed tool, prompt or template is named `{t}`"
            ));
        }
        return None;
    }
    Some(plan)
}

/// The finding ids pinning `item` now would accept that its pin does not already.
fn new_findings(item: &crate::pinning::review::ItemReview) -> Vec<&str> {
    let Some(current) = &item.current else {
        return Vec::new();
    };
    current
        .accepted
        .iter()
        .filter(|id| {
            item.pinned
                .as_ref()
                .is_none_or(|p| !p.accepted.contains(*id))
        })
        .map(String::as_str)
        .collect()
}

// ----- the review ---------------------------------------------------------------------

/// The whole review, our layout with every outside part escaped as one line: one
/// section per entry.
fn review_text(inv: &Inventory, plan: &Plan) -> String {
    let mut text = String::new();
    for entry in &plan.entries {
        let review = &inv.reviews[entry.server];
        match entry.item {
            None => server_section(review, &mut text),
            Some(i) => item_section(&review.items[i], review.config.name.as_str(), &mut text),
        }
        text.push('\n');
    }
    text.trim_end().to_owned()
}

fn server_section(review: &ServerReview, text: &mut String) {
    let name = review.config.name.as_str();
    let what = review.verdict.as_ref().map_or("", server_change);
    let mut command = review.config.raw_command.clone();
    for arg in &review.config.raw_args {
        command.push(' ');
        command.push_str(arg);
    }
    let _ = writeln!(text, "server `{}`: {what}", one_line(name));
    let _ = writeln!(text, "  command: {}", one_line(&command));
    if let Some(instructions) = &review.instructions {
        let _ = writeln!(text, "  instructions:");
        for line in instructions.lines() {
            let _ = writeln!(text, "  | {}", one_line(line));
        }
    }
    findings_section(&review.instruction_findings, text);
}

fn item_section(item: &ItemReview, server: &str, text: &mut String) {
    let _ = writeln!(text, "{}", item_label(item, server));
    match item.status {
        Status::Removed => {
            let _ = writeln!(text, "  no longer offered: its pin is removed");
        }
        _ => {
            let _ = writeln!(
                text,
                "{}",
                review::readable_change(item.pinned.as_ref(), item.current.as_ref())
            );
        }
    }
    findings_section(&item.findings, text);
}

/// The item's heading, escaped: ``changed tool `fs__read` (server `fs`)``.
fn item_label(item: &ItemReview, server: &str) -> String {
    format!(
        "{} {} `{}` (server `{}`)",
        item.status.as_str(),
        item.key.kind,
        one_line(&item.exposed),
        one_line(server)
    )
}

/// The findings, highest severity first, after a count per severity.
fn findings_section(findings: &[Finding], text: &mut String) {
    if findings.is_empty() {
        return;
    }
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let _ = writeln!(text, "  findings: {}", severity_counts(findings));
    for f in sorted {
        let at = if f.location.is_empty() {
            "/"
        } else {
            &f.location
        };
        let _ = writeln!(
            text,
            "    {:<6} {} at {}: {}",
            f.severity.as_str(),
            f.id,
            one_line(at),
            one_line(&f.message)
        );
        let _ = writeln!(text, "           \"{}\"", one_line(&f.excerpt));
    }
}

/// `1 high, 2 medium`: how many findings of each severity, highest first.
fn severity_counts(findings: &[Finding]) -> String {
    let mut counts: BTreeMap<std::cmp::Reverse<crate::scan::Severity>, usize> = BTreeMap::new();
    for f in findings {
        *counts.entry(std::cmp::Reverse(f.severity)).or_default() += 1;
    }
    counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.0.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn server_change(v: &ServerVerdict) -> &'static str {
    use crate::pinning::judge::ServerStatus;
    match v.status {
        ServerStatus::Pinned => "pinned",
        ServerStatus::New => "new",
        ServerStatus::IdentityChanged => "command or arguments changed",
        ServerStatus::InstructionsChanged => "instructions changed",
        ServerStatus::ExecutableChanged => "executable replaced on this machine",
    }
}

/// The one-line question for an entry.
fn entry_question(inv: &Inventory, entry: &Entry) -> String {
    let review = &inv.reviews[entry.server];
    let name = review.config.name.as_str();
    match entry.item {
        None => format!(
            "pin server `{name}` ({})?",
            review.verdict.as_ref().map_or("", server_change)
        ),
        Some(i) => {
            let item = &review.items[i];
            let mut q = format!("pin {}", item_label(item, name));
            if !item.findings.is_empty() {
                let _ = write!(q, ", findings: {}", severity_counts(&item.findings));
            }
            q.push('?');
            q
        }
    }
}

const DECIDE_HELP: &str = "y: pin it; n: leave it; a: pin it and every one after; q: pin none after (keeps the yeses); ?: this help";

/// Asks entry by entry (as `git add -p` does): `y`, `n`, `a` (this and the rest),
/// `q` (none of the rest). Declining a server's own pin skips its items: they would
/// stay held without it. The end of input is a `q`.
fn decide(inv: &Inventory, plan: &Plan) -> anyhow::Result<Vec<bool>> {
    let mut chosen = vec![false; plan.entries.len()];
    let mut all = false;
    let mut declined_server: Option<usize> = None;
    for (n, entry) in plan.entries.iter().enumerate() {
        if declined_server == Some(entry.server) && entry.item.is_some() {
            continue;
        }
        if all {
            chosen[n] = true;
            continue;
        }
        let question = format!(
            "({}/{}) {} [y,n,a,q,?] ",
            n + 1,
            plan.entries.len(),
            entry_question(inv, entry)
        );
        let answer = loop {
            match output::ask(&question)?.as_deref().map(str::trim) {
                None | Some("q" | "Q") => break None,
                Some("y" | "Y" | "yes") => break Some(true),
                Some("n" | "N" | "no" | "") => break Some(false),
                Some("a" | "A") => {
                    all = true;
                    break Some(true);
                }
                Some(_) => output::diag(DECIDE_HELP),
            }
        };
        match answer {
            None => break,
            Some(yes) => chosen[n] = yes,
        }
        if !chosen[n] && entry.item.is_none() {
            declined_server = Some(entry.server);
        }
    }
    Ok(chosen)
}

/// The review as JSON for scripts: per entry what it is, the readable change, its
/// findings, and whether this run pins it.
fn review_json(inv: &Inventory, plan: &Plan, chosen: &[bool]) -> Value {
    let entries: Vec<Value> = plan
        .entries
        .iter()
        .zip(chosen.iter().chain(std::iter::repeat(&false)))
        .map(|(entry, pinned)| {
            let review = &inv.reviews[entry.server];
            let server = review.config.name.as_str();
            match entry.item {
                None => json!({
                    "kind": "server",
                    "server": server,
                    "status": review.verdict.as_ref().map(server_change),
                    "instructions": review.instructions,
                    "findings": review.instruction_findings,
                    "lock": entry.lock,
                    "pinned": pinned,
                }),
                Some(i) => {
                    let item = &review.items[i];
                    let definition = |p: Option<&ItemPin>| {
                        p.and_then(|p| serde_json::from_str::<Value>(p.definition()).ok())
                    };
                    json!({
                        "kind": item.key.kind.as_str(),
                        "server": server,
                        "name": item.key.name,
                        "exposed": item.exposed,
                        "status": item.status,
                        "pinned_definition": definition(item.pinned.as_ref()),
                        "offered_definition": definition(item.current.as_ref()),
                        "findings": item.findings,
                        "lock": entry.lock,
                        "pinned": pinned,
                    })
                }
            }
        })
        .collect();
    json!({ "entries": entries, "pinned_any": chosen.contains(&true) })
}

// ----- pins: table, JSON, diffs --------------------------------------------------------

fn print_table(inv: &Inventory) {
    let mut rows: Vec<[String; 5]> = vec![[
        "STATUS".into(),
        "KIND".into(),
        "NAME".into(),
        "SERVER".into(),
        "FINDINGS".into(),
    ]];
    for review in &inv.reviews {
        let server = review.config.name.as_str().to_owned();
        let status = match (&review.error, &review.verdict) {
            (Some(_), _) => "unavailable".to_owned(),
            (None, Some(v)) => match server_change(v) {
                "pinned" => "pinned".into(),
                "new" => "new".into(),
                other => format!("changed ({other})"),
            },
            (None, None) => String::new(),
        };
        rows.push([
            status,
            "server".into(),
            server.clone(),
            server.clone(),
            ids(&review.instruction_findings),
        ]);
        for item in &review.items {
            rows.push([
                item.status.as_str().into(),
                item.key.kind.to_string(),
                item.exposed.clone(),
                server.clone(),
                ids(&item.findings),
            ]);
        }
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
            }
        }
        output::line(line.trim_end());
    }
    for review in &inv.reviews {
        if let Some(why) = &review.error {
            output::line(&format!(
                "server `{}` is unavailable: {why}",
                review.config.name
            ));
        }
    }
}

fn ids(findings: &[Finding]) -> String {
    let ids: BTreeSet<&str> = findings.iter().map(|f| f.id).collect();
    ids.into_iter().collect::<Vec<_>>().join(",")
}

fn pins_json(inv: &Inventory) -> Value {
    let servers: Vec<Value> = inv
        .reviews
        .iter()
        .map(|r| {
            let items: Vec<Value> = r
                .items
                .iter()
                .map(|i| {
                    json!({
                        "kind": i.key.kind.as_str(),
                        "name": i.key.name,
                        "exposed": i.exposed,
                        "status": i.status,
                        "digest": i.current.as_ref().map(ItemPin::digest),
                        "pinned_digest": i.pinned.as_ref().map(ItemPin::digest),
                        "findings": i.findings,
                        "hold": i.hold.as_ref().map(|h| json!({"rule": h.rule, "reason": h.reason})),
                    })
                })
                .collect();
            json!({
                "server": r.config.name.as_str(),
                "lock": r.lock_path,
                "status": r.verdict.as_ref().map(server_change),
                "error": r.error,
                "lock_unusable": r.unusable,
                "instruction_findings": r.instruction_findings,
                "items": items,
            })
        })
        .collect();
    json!({ "mode": inv.effective.pinning.mode.as_str(), "servers": servers })
}

fn print_diffs(inv: &Inventory, only: Option<&str>) {
    let mut any = false;
    for item in inv.reviews.iter().flat_map(|r| r.items.iter()) {
        let wanted = match only {
            Some(name) => item.exposed == name,
            None => item.status == Status::Changed,
        };
        if wanted {
            any = true;
            let mut text = String::new();
            item_section(item, item.key.server.as_str(), &mut text);
            output::block(text.trim_end());
        }
    }
    for review in &inv.reviews {
        if only.is_none()
            && let Some(v) = &review.verdict
            && v.status != crate::pinning::judge::ServerStatus::Pinned
            && v.status != crate::pinning::judge::ServerStatus::New
        {
            any = true;
            output::line(&format!(
                "server `{}`: {} (the lock keeps digests only; run `mcp-warden pin {}` to see it in full)",
                review.config.name,
                server_change(v),
                review.config.name
            ));
        }
    }
    if !any {
        output::line("no changes: every pinned definition matches what its server offers");
    }
}
