//! `mcp-warden audit` (read, follow, verify), `mcp-warden usage` and `mcp-warden review`:
//! the commands over the audit trail in the data dir (see `crate::audit`).

use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::ExitStatus;
use crate::audit::{
    self, ChainState, Decision, Entry, Filter, Glob, Location, Reader, Record, Review, Usage,
};
use crate::output;
use crate::paths::Paths;
use crate::time::{Since, Timestamp};

/// How often `--follow` looks for new lines: often enough to feel live, rarely enough
/// to cost nothing (one read of the directory and of the current file per poll).
pub const FOLLOW_POLL: Duration = Duration::from_millis(250);

/// Most problems `audit verify` prints after the first (all are counted).
const MAX_PROBLEMS_SHOWN: usize = 20;

/// A `--since` value as typed, and what it means.
#[derive(Debug, Clone)]
pub struct SinceArg {
    text: String,
    since: Since,
}

impl FromStr for SinceArg {
    type Err = crate::time::TimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self {
            text: s.trim().to_owned(),
            since: Since::parse(s)?,
        })
    }
}

impl SinceArg {
    fn start(&self, now: Timestamp) -> Timestamp {
        self.since.start(now)
    }

    /// "the last 30d", "since 2026-05-01".
    fn window(&self) -> String {
        match self.since {
            Since::Ago(_) => format!("the last {}", self.text),
            Since::At(_) => format!("the time since {}", self.text),
        }
    }
}

/// Read the audit log: every decision mcp-warden made, oldest first, from the daily
/// files in the data dir (`audit/YYYY-MM-DD.jsonl`). Lines that are not records (a
/// torn last line after a crash) are skipped with a note on stderr.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: Option<AuditCommand>,

    /// Only records from then on: a time ago (`90s`, `30m`, `1h`, `2d`, `1w`), a UTC
    /// date (`2026-05-01`) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<SinceArg>,

    /// Only records about tools whose exposed name matches this glob (`*`, `?`), e.g.
    /// `fs__*`; a list record matches when any name it lists does.
    #[arg(long, value_name = "GLOB")]
    pub tool: Option<String>,

    /// Only records about this server (its table name).
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,

    /// Only these decisions, comma-separated or repeated: allow, deny, hold, redact,
    /// flag, monitor, list, seal.
    #[arg(long, value_name = "D", value_delimiter = ',')]
    pub decision: Vec<Decision>,

    /// Only this session (its id, or the start of it).
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,

    /// Print one JSON document (`{"records": [...], "skipped": [...]}`); with
    /// `--follow`, one record per line.
    #[arg(long)]
    pub json: bool,

    /// Keep printing records as they are written (until interrupted).
    #[arg(long, short = 'f')]
    pub follow: bool,
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every session's hash chain: every line unedited, none dropped, reordered
    /// or cut off, every ended session sealed. Exit 1 naming the first bad line.
    Verify(VerifyArgs),
}

/// Arguments of `audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Per tool, how often it was listed, called and denied; tools listed (granted) but
/// never called are candidates to deny, with the rule to paste into `mcp-warden.toml`.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// The window: a time ago (`30d`, `1w`, `12h`) or a date (`2026-05-01`).
    #[arg(long, value_name = "WHEN", default_value = "30d")]
    pub since: SinceArg,

    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Near-misses: denied, held, flagged, redacted and monitored events, grouped by rule
/// and tool, with counts and the latest example of each (arguments as HMACs only).
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The window: a time ago (`7d`, `24h`) or a date (`2026-05-01`).
    #[arg(long, value_name = "WHEN", default_value = "7d")]
    pub since: SinceArg,

    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `audit` and `audit verify`.
pub fn run_audit(paths: &Paths, args: &AuditArgs) -> anyhow::Result<ExitStatus> {
    if let Some(AuditCommand::Verify(verify)) = &args.command {
        return run_verify(paths, verify);
    }
    let dir = audit::audit_dir(paths);
    let filter = Filter {
        since: args.since.as_ref().map(|s| s.start(Timestamp::now())),
        tool: args.tool.as_deref().map(Glob::new),
        server: args.server.clone(),
        decisions: args.decision.clone(),
        session: args.session.clone(),
    };
    if args.follow {
        return follow(&dir, &filter, args.json);
    }
    let mut shown = 0u64;
    let mut skipped = Vec::new();
    if args.json {
        output::json("{\"records\": [");
    } else {
        output::line(&table_header());
    }
    for entry in audit::read(&dir, filter.since) {
        match entry? {
            Entry::Record { record, .. } if filter.matches(&record) => {
                if args.json {
                    let comma = if shown == 0 { "" } else { "," };
                    output::json(&format!("{comma}{}", record_json(&record)));
                } else {
                    output::line(&table_row(&record));
                }
                shown += 1;
            }
            Entry::Record { .. } => {}
            Entry::Skipped { at, reason } => {
                output::diag(&format!("note: {at}: skipped: {reason}"));
                skipped.push(json!({"at": at.to_string(), "reason": reason.to_string()}));
            }
        }
    }
    if args.json {
        output::json(&format!("], \"skipped\": {}}}", json!(skipped)));
    } else if shown == 0 {
        output::diag(&format!("no matching audit records in `{}`", dir.display()));
    }
    Ok(ExitStatus::Success)
}

/// `audit --follow`: what is there, then what is appended, until stdout goes away.
fn follow(dir: &Path, filter: &Filter, json: bool) -> anyhow::Result<ExitStatus> {
    let mut reader = Reader::new(dir, filter.since.map(Timestamp::day));
    if !json && !output::follow_line(&table_header()) {
        return Ok(ExitStatus::Success);
    }
    loop {
        while let Some(entry) = reader.next_entry(true)? {
            match entry {
                Entry::Record { record, .. } if filter.matches(&record) => {
                    let shown = if json {
                        output::follow_json(&record_json(&record))
                    } else {
                        output::follow_line(&table_row(&record))
                    };
                    if !shown {
                        return Ok(ExitStatus::Success);
                    }
                }
                Entry::Record { .. } => {}
                Entry::Skipped { at, reason } => {
                    output::diag(&format!("note: {at}: skipped: {reason}"));
                }
            }
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

fn record_json(record: &Record) -> String {
    // A record read from a file always serializes again.
    serde_json::to_string(record).unwrap_or_default()
}

fn table_header() -> String {
    format!(
        "{:<24}  {:<8}  {:<12}  {:<30}  {:<24}  {:>6}  SESSION",
        "TIME", "DECISION", "SERVER", "TOOL", "RULE", "MS"
    )
}

fn table_row(r: &Record) -> String {
    let tool = match (r.decision, &r.tool) {
        (Decision::List, _) => format!(
            "({} listed, {} held)",
            r.listed.unwrap_or_default(),
            r.held.unwrap_or_default()
        ),
        (_, Some(tool)) => tool.clone(),
        (_, None) => r.method.clone().unwrap_or_else(|| "-".into()),
    };
    format!(
        "{:<24}  {:<8}  {:<12}  {:<30}  {:<24}  {:>6}  {}",
        r.ts.to_string(),
        r.decision.as_str(),
        r.server.as_deref().unwrap_or("-"),
        tool,
        r.rule.as_deref().unwrap_or("-"),
        r.ms.map_or_else(|| "-".to_owned(), |ms| ms.to_string()),
        r.session
    )
}

/// Runs `audit verify`.
fn run_verify(paths: &Paths, args: &VerifyArgs) -> anyhow::Result<ExitStatus> {
    let dir = audit::audit_dir(paths);
    // Never created here: without the key, keyed chains are reported unverifiable.
    let key = audit::AuditKey::load(&audit::key_file(paths)).ok();
    let report = audit::verify(&dir, key.as_ref())?;
    let count = |state| report.sessions.iter().filter(|s| s.state == state).count();
    let (sealed, open, broken) = (
        count(ChainState::Sealed),
        count(ChainState::Open),
        count(ChainState::Broken),
    );
    if args.json {
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| {
                json!({
                    "file": p.at.file,
                    "line": p.at.line,
                    "session": p.session,
                    "problem": p.kind.to_string(),
                })
            })
            .collect();
        let sessions: Vec<_> = report
            .sessions
            .iter()
            .map(|s| {
                let state = match s.state {
                    ChainState::Sealed => "sealed",
                    ChainState::Open => "running",
                    ChainState::Broken => "broken",
                };
                json!({"session": s.session, "records": s.records, "state": state, "last": s.last.to_string()})
            })
            .collect();
        output::json(&serde_json::to_string_pretty(&json!({
            "ok": report.is_ok(),
            "dir": dir,
            "files": report.files,
            "lines": report.lines,
            "sessions": sessions,
            "problems": problems,
            "unkeyed": report.unkeyed,
        }))?);
    } else {
        let summary = format!(
            "{} in {}, {}: {sealed} sealed, {open} running, {broken} broken",
            plural(report.lines, "line"),
            plural(report.files as u64, "file"),
            plural(report.sessions.len() as u64, "session"),
        );
        if let Some((first, rest)) = report.problems.split_first() {
            output::line(&format!("audit verify: FAILED at {first}"));
            for problem in rest.iter().take(MAX_PROBLEMS_SHOWN) {
                output::line(&format!("  also {problem}"));
            }
            if rest.len() > MAX_PROBLEMS_SHOWN {
                output::line(&format!(
                    "  and {} more problems",
                    rest.len() - MAX_PROBLEMS_SHOWN
                ));
            }
            output::line(&summary);
        } else if report.lines == 0 {
            output::line(&format!(
                "audit verify: ok: no audit records in `{}`",
                dir.display()
            ));
        } else {
            output::line(&format!("audit verify: ok: {summary}"));
        }
        if report.unkeyed > 0 {
            output::line(&format!(
                "note: {} of format 1 chained without the key: verified as written, but \
                 such a chain could be rewritten by anyone",
                plural(report.unkeyed, "record")
            ));
        }
    }
    Ok(if report.is_ok() {
        ExitStatus::Success
    } else {
        ExitStatus::Findings
    })
}

/// `1 file`, `2 files`.
fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Reads every record from `since` on, noting on stderr the lines that are not records.
fn each_record(
    paths: &Paths,
    since: Timestamp,
    mut f: impl FnMut(&Location, &Record),
) -> anyhow::Result<()> {
    for entry in audit::read(&audit::audit_dir(paths), Some(since)) {
        match entry? {
            Entry::Record { at, record } => f(&at, &record),
            Entry::Skipped { at, reason } => {
                output::diag(&format!("note: {at}: skipped: {reason}"));
            }
        }
    }
    Ok(())
}

/// Runs `usage`.
pub fn run_usage(paths: &Paths, args: &UsageArgs) -> anyhow::Result<ExitStatus> {
    let since = args.since.start(Timestamp::now());
    let window = args.since.window();
    let mut usage = Usage::default();
    each_record(paths, since, |_, record| usage.add(record))?;
    let rule = usage.deny_rule(&window);
    let fits = cap_suggestions(paths, &usage, &window)?;
    if args.json {
        let tools: Vec<_> = usage.tools().collect();
        let unused: Vec<_> = usage.unused().map(|t| t.tool.as_str()).collect();
        output::json(&serde_json::to_string_pretty(&json!({
            "since": since,
            "lists": usage.lists,
            "calls": usage.calls,
            "tools": tools,
            "unused": unused,
            "deny_rule": rule,
            "to_fit": fits,
        }))?);
        return Ok(ExitStatus::Success);
    }
    output::line(&format!(
        "tool use in {window}: {}, {}",
        plural(usage.lists, "tool list"),
        plural(usage.calls, "call")
    ));
    if usage.tools().next().is_none() {
        output::line("no tools were listed or called");
        return Ok(ExitStatus::Success);
    }
    output::line("");
    output::line(&format!(
        "{:<40}  {:<12}  {:>6}  {:>6}  {:>6}  LAST CALLED",
        "TOOL", "SERVER", "LISTED", "CALLED", "DENIED"
    ));
    for t in usage.tools() {
        output::line(&format!(
            "{:<40}  {:<12}  {:>6}  {:>6}  {:>6}  {}",
            t.tool,
            t.server.as_deref().unwrap_or("-"),
            t.listed,
            t.called,
            t.denied,
            t.last_called
                .map_or_else(|| "never".to_owned(), |ts| ts.to_string())
        ));
    }
    output::line("");
    match rule {
        Some(rule) => {
            let n = usage.unused().count();
            output::line(&format!(
                "{n} {} listed but never called in {window}: candidates to deny. To deny {}, add to `mcp-warden.toml` (or your `config.toml`):",
                if n == 1 { "tool was" } else { "tools were" },
                if n == 1 { "it" } else { "them" },
            ));
            output::line("");
            output::block(rule.trim_end());
        }
        None if usage.lists == 0 => output::line(&format!(
            "no tool lists were recorded in {window}, so unused grants cannot be told"
        )),
        None => output::line("every listed tool was called"),
    }
    for fit in &fits {
        output::line("");
        output::line(&format!(
            "client `{}` ({}) takes {} tools and {} were listed: to fit, deny these {} (never called first, then the least called):",
            fit.client,
            fit.scope,
            fit.cap,
            fit.listed,
            fit.drop.len()
        ));
        output::line("");
        output::block(fit.rule.trim_end());
    }
    Ok(ExitStatus::Success)
}

/// What `usage` suggests for one client that takes fewer tools than were listed.
#[derive(Debug, serde::Serialize)]
struct CapSuggestion {
    client: String,
    scope: String,
    cap: usize,
    listed: usize,
    drop: Vec<String>,
    rule: String,
}

/// For each client that runs mcp-warden and takes fewer tools than were listed in the
/// window (issue 16 item 8): which grants to drop to fit, and the rule that drops them.
fn cap_suggestions(
    paths: &Paths,
    usage: &Usage,
    window: &str,
) -> anyhow::Result<Vec<CapSuggestion>> {
    let listed = usage.tools().filter(|t| t.listed > 0).count();
    let exe = std::env::current_exe()?;
    let workspace = std::env::current_dir().ok();
    let clients = crate::install::survey::survey(
        &crate::install::client::Environment::from_env(&paths.home),
        workspace.as_deref(),
        &exe.to_string_lossy(),
    );
    Ok(super::client_limits::tool_fits(&clients, listed)
        .into_iter()
        .filter(|f| !f.fits)
        .filter_map(|f| {
            let drop: Vec<&str> = super::client_limits::to_drop(usage, listed - f.cap)
                .into_iter()
                .map(|t| t.tool.as_str())
                .collect();
            let rule = crate::audit::query::deny_rule_for(
                &format!("fit-{}", f.client),
                &format!(
                    "{} takes {} tools: the least used in {window} (mcp-warden usage)",
                    f.client, f.cap
                ),
                &drop,
            )?;
            Some(CapSuggestion {
                drop: drop.iter().map(|t| (*t).to_owned()).collect(),
                client: f.client,
                scope: f.scope,
                cap: f.cap,
                listed,
                rule,
            })
        })
        .collect())
}

/// Runs `review`.
pub fn run_review(paths: &Paths, args: &ReviewArgs) -> anyhow::Result<ExitStatus> {
    let since = args.since.start(Timestamp::now());
    let window = args.since.window();
    let mut review = Review::default();
    each_record(paths, since, |at, record| review.add(at, record))?;
    let groups = review.groups();
    let events: u64 = groups.iter().map(|g| g.count).sum();
    if args.json {
        output::json(&serde_json::to_string_pretty(&json!({
            "since": since,
            "events": events,
            "groups": groups,
        }))?);
        return Ok(ExitStatus::Success);
    }
    if groups.is_empty() {
        output::line(&format!(
            "no near-misses in {window}: nothing was denied, held, flagged, redacted or monitored"
        ));
        return Ok(ExitStatus::Success);
    }
    output::line(&format!(
        "near-misses in {window}: {} in {} (by rule and tool)",
        plural(events, "event"),
        plural(groups.len() as u64, "group")
    ));
    output::line("");
    output::line(&format!(
        "{:>5}  {:<28}  {:<32}  {:<20}  LAST",
        "COUNT", "RULE", "TOOL", "DECISIONS"
    ));
    for g in groups {
        let mut decisions = String::new();
        for (decision, n) in &g.decisions {
            if !decisions.is_empty() {
                decisions.push_str(", ");
            }
            let _ = write!(decisions, "{decision} {n}");
        }
        output::line(&format!(
            "{:>5}  {:<28}  {:<32}  {:<20}  {}",
            g.count,
            g.rule.as_deref().unwrap_or("(no rule)"),
            g.tool.as_deref().unwrap_or("-"),
            decisions,
            g.last
        ));
        let e = &g.example;
        let mut example = format!("       e.g. {} {} session {}", e.ts, e.decision, e.session);
        if let Some(server) = &e.server {
            let _ = write!(example, " server {server}");
        }
        if let Some(hmac) = &e.args_hmac {
            let _ = write!(example, " args_hmac {hmac}");
        }
        if let Some(detail) = &e.detail {
            let _ = write!(example, ": {detail}");
        }
        let _ = write!(example, " ({})", e.at);
        output::line(&example);
    }
    Ok(ExitStatus::Success)
}
