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
use crate::paths::Paths;
use crate::pinning::files::{self, LockPlaces, LockState};
use crate::pinning::judge::ServerVerdict;
use crate::pinning::lock::{ItemPin, LockFile, PinKey};
use crate::pinning::review::{ItemReview, ServerReview, Status};
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
/// changes as a diff, scan findings), then writes `mcp-warden.lock`. With no
/// argument it pins everything held, after confirmation.
#[derive(Debug, Args)]
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
    let inv = match inventory::take(paths, workspace)? {
        Ok(inv) => inv,
        Err(status) => return Ok(status),
    };
    let Some(plan) = plan(&inv, args) else {
        return Ok(ExitStatus::Usage);
    };
    if plan.is_empty() {
        output::line("nothing to pin: every definition matches its pin");
        return Ok(if inv.failed() {
            ExitStatus::Failure
        } else {
            ExitStatus::Success
        });
    }
    show_plan(&inv, &plan);
    let asks = args.targets.is_empty() || args.all;
    if asks && !args.yes && !confirm(&format!("pin {}?", plan.summary()))? {
        return Ok(ExitStatus::Usage);
    }
    for (path, change) in &plan.by_lock {
        let root = inv.places.root_of(path);
        let removed = change.remove.clone();
        files::write_pins(path, root, paths, change.pins.clone(), |lock| {
            for key in &removed {
                lock.items.remove(key);
            }
        })?;
        output::line(&format!("pinned in `{}`", path.display()));
    }
    // Pinning a server (or any of its items) also accepts the executable it runs now.
    let programs: Vec<PathBuf> = plan
        .shown
        .iter()
        .map(|(s, _)| *s)
        .collect::<BTreeSet<usize>>()
        .into_iter()
        .filter_map(|s| crate::upstream::program_of(&inv.reviews[s].config).ok())
        .collect();
    crate::pinning::machine::accept(paths, &programs)?;
    output::line(&format!("pinned {}", plan.summary()));
    Ok(if inv.failed() {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
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

#[derive(Debug, Default)]
struct Plan {
    by_lock: BTreeMap<PathBuf, Change>,
    /// What is shown: (server index, item index or `None` for the server itself).
    shown: Vec<(usize, Option<usize>)>,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }

    fn summary(&self) -> String {
        let items = self.shown.iter().filter(|(_, i)| i.is_some()).count();
        let servers = self.shown.len() - items;
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
                continue;
            }
            any_item = true;
            plan.shown.push((s, Some(i)));
            let change = plan.by_lock.entry(review.lock_path.clone()).or_default();
            match &item.current {
                Some(pin) if item.status != Status::Removed => {
                    change.pins.items.insert(item.key.clone(), pin.clone());
                }
                _ => change.remove.push(item.key.clone()),
            }
        }
        // The server's own pin goes with any of its items (they stay held without it),
        // and with the server itself.
        if review.needs_review()
            && (any_item || whole || targets.is_empty())
            && let Some(current) = &review.current
        {
            plan.shown.push((s, None));
            plan.by_lock
                .entry(review.lock_path.clone())
                .or_default()
                .pins
                .servers
                .insert(server.to_owned(), current.clone());
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

fn show_plan(inv: &Inventory, plan: &Plan) {
    for &(s, item) in &plan.shown {
        let review = &inv.reviews[s];
        match item {
            None => show_server(review),
            Some(i) => show_item(&review.items[i], review.config.name.as_str()),
        }
    }
}

fn show_server(review: &ServerReview) {
    let name = review.config.name.as_str();
    let what = review.verdict.as_ref().map_or("", server_change);
    let mut command = review.config.raw_command.clone();
    for arg in &review.config.raw_args {
        command.push(' ');
        command.push_str(arg);
    }
    output::line(&format!("server `{name}`: {what}"));
    output::line(&format!("  command: {command}"));
    if let Some(text) = &review.instructions {
        output::line("  instructions:");
        for line in text.lines() {
            output::line(&format!("  | {line}"));
        }
    }
    show_findings(&review.instruction_findings);
    output::line("");
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

fn show_item(item: &ItemReview, server: &str) {
    output::line(&format!(
        "{} {} `{}` (server `{server}`)",
        item.status.as_str(),
        item.key.kind,
        item.exposed
    ));
    match item.status {
        Status::Changed => output::block(&diff(item)),
        Status::Removed => output::line("  no longer offered: its pin is removed"),
        _ => {
            if let Some(pin) = &item.current {
                for line in pin.definition_pretty().lines() {
                    output::line(&format!("  | {line}"));
                }
            }
        }
    }
    show_findings(&item.findings);
    output::line("");
}

fn show_findings(findings: &[Finding]) {
    for f in findings {
        output::line(&format!(
            "  finding {} [{}] at {}: {}",
            f.id,
            f.severity,
            if f.location.is_empty() {
                "/"
            } else {
                &f.location
            },
            f.message,
        ));
        output::line(&format!("    \"{}\"", f.excerpt));
    }
}

/// Asks on the terminal; refuses (exit 2) without one.
fn confirm(question: &str) -> anyhow::Result<bool> {
    if !output::stdin_is_terminal() {
        output::diag("error: refusing to pin without confirmation: no terminal; pass `--yes`");
        return Ok(false);
    }
    let yes = output::confirm(question)?;
    if !yes {
        output::diag("nothing pinned");
    }
    Ok(yes)
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
            output::block(&diff(item));
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

/// The unified diff from an item's pin to its current definition.
fn diff(item: &ItemReview) -> String {
    crate::pinning::review::unified_diff(&item.exposed, item.pinned.as_ref(), item.current.as_ref())
}
