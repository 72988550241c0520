//! What `pin`, `pins` and `scan` share: the configuration under the same trust gate as
//! `serve`, the servers started and listed with every client capability declared, the
//! lock files read, and each server reviewed against them.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::ExitStatus;
use crate::config::{Effective, TrustState};
use crate::output;
use crate::paths::Paths;
use crate::pinning::files::{LockPlaces, LockState};
use crate::pinning::review::{self, ServerReview};
use crate::upstream::Spawner;
use crate::upstream::inventory as collect;

/// Everything the servers offer now, next to the locks.
#[derive(Debug)]
pub struct Inventory {
    pub effective: Effective,
    pub places: LockPlaces,
    pub reviews: Vec<ServerReview>,
}

impl Inventory {
    /// Whether some server could not be started or listed.
    #[must_use]
    pub fn failed(&self) -> bool {
        self.reviews.iter().any(|r| r.error.is_some())
    }
}

/// Loads the configuration (errors printed: `Err(exit status)`), starts and lists every
/// server that `serve` would start, and reviews them.
pub fn take(
    paths: &Paths,
    workspace: Option<PathBuf>,
) -> anyhow::Result<Result<Inventory, ExitStatus>> {
    let choice = super::check::workspace_choice(workspace)?;
    let effective = match super::check::load_or_report(paths, &choice) {
        Ok(effective) => effective,
        Err(status) => return Ok(Err(status)),
    };
    say_what_does_not_start(&effective);
    let places = LockPlaces::new(paths, &effective);
    let locks: HashMap<PathBuf, LockState> = places.read_all(paths);
    for (path, state) in &locks {
        if let LockState::Unusable(why) = state {
            output::diag(&format!(
                "mcp-warden: `{}` does not count: {why}",
                path.display()
            ));
        }
    }
    let spawner = Spawner {
        state_dir: paths.data_dir.clone(),
        launcher: std::env::current_exe().ok(),
    };
    let root = effective.workspace.as_ref().map(|w| w.root.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut progress = output::Progress::new(PROGRESS_DELAY);
    let mut watch = |board: &[collect::Progress]| {
        progress.show(&progress_line(board, tokio::time::Instant::now()));
    };
    let inventories = runtime.block_on(collect::collect(
        &effective.servers,
        &spawner,
        root.as_deref(),
        &mut watch,
    ));
    progress.clear();
    for inv in &inventories {
        if let Err(why) = &inv.outcome {
            output::diag(&format!(
                "mcp-warden: server `{}` could not be listed: {why}",
                inv.server
            ));
            // A bare "Permission denied" says nothing of the cause (a dropped uid that
            // cannot enter the install's directory, a missing command, a sandbox layer
            // that is required): say what `doctor` says about it, with the fix.
            let config = effective.servers.iter().find(|s| s.name == inv.server);
            for wrong in config
                .map(|c| super::doctor::diagnose(c, &spawner, root.as_deref()))
                .unwrap_or_default()
            {
                output::diag(&format!("mcp-warden: server `{}`: {wrong}", inv.server));
            }
        }
    }
    let replaced = crate::pinning::machine::replaced(paths, &effective.servers, |w| {
        output::diag(&format!("mcp-warden: warning: {w}"));
    });
    let reviews = review::review(
        effective.pinning.mode,
        &effective.servers,
        &inventories,
        &locks,
        |server| places.for_server(server),
        &replaced,
    );
    Ok(Ok(Inventory {
        effective,
        places,
        reviews,
    }))
}

/// How long the servers may take before a terminal is shown where they are: a quick
/// run stays quiet, a slow one (a hung server, an `npx` download) is named.
pub(crate) const PROGRESS_DELAY: std::time::Duration = std::time::Duration::from_millis(750);

/// One line saying how many servers are listed and which one is waited for the
/// longest, with its step and how long it has left before it is given up on:
/// `listing servers: 2 of 3 done; waiting for `slow` (initialize, 12s of 60s)`.
fn progress_line(board: &[collect::Progress], now: tokio::time::Instant) -> String {
    let done = board
        .iter()
        .filter(|p| p.phase == collect::Phase::Finished)
        .count();
    let mut line = format!(
        "mcp-warden: listing servers: {done} of {} done",
        board.len()
    );
    let waiting = board
        .iter()
        .filter(|p| p.phase != collect::Phase::Finished)
        .max_by_key(|p| now.saturating_duration_since(p.since));
    if let Some(p) = waiting {
        let step = match p.phase {
            collect::Phase::Starting => "starting, `initialize`",
            collect::Phase::Listing(kind) => match kind {
                crate::pinning::lock::Kind::Tool => "`tools/list`",
                crate::pinning::lock::Kind::Prompt => "`prompts/list`",
                crate::pinning::lock::Kind::ResourceTemplate => "`resources/templates/list`",
            },
            collect::Phase::Finished => "",
        };
        let _ = std::fmt::Write::write_fmt(
            &mut line,
            format_args!(
                "; waiting for `{}` ({step}, {}s of {}s)",
                p.server,
                now.saturating_duration_since(p.since).as_secs(),
                p.wait.as_secs()
            ),
        );
        let others = board.len() - done - 1;
        if others > 0 {
            let _ = std::fmt::Write::write_fmt(&mut line, format_args!(" and {others} more"));
        }
    }
    line
}

/// Says which configured servers are not started, and why (an untrusted workspace's).
fn say_what_does_not_start(effective: &Effective) {
    if let Some(ws) = &effective.workspace
        && ws.file.is_some()
        && !matches!(ws.trust, TrustState::Trusted)
    {
        output::diag(&format!(
            "mcp-warden: workspace `{}` is not trusted: its servers are not started; review `mcp-warden.toml`, then run `mcp-warden trust`",
            ws.root.display()
        ));
    }
    for skipped in &effective.skipped {
        output::diag(&format!(
            "mcp-warden: server `{}` is not started: {}",
            skipped.server, skipped.reason
        ));
    }
}

/// What the lock files that count pin for the servers `serve` would start, read
/// without starting any (for `explain` and `status`): each server's pin and items.
pub fn pinned(paths: &Paths, effective: &Effective) -> crate::pinning::lock::LockFile {
    let places = LockPlaces::new(paths, effective);
    let mut out = crate::pinning::lock::LockFile::default();
    for (path, state) in places.read_all(paths) {
        let LockState::Ready(lock) = state else {
            continue;
        };
        // A server's pins come from the lock of the layer it is taken from.
        let counts = |server: &str| {
            effective
                .servers
                .iter()
                .any(|s| s.name.as_str() == server && places.for_server(s) == path)
        };
        out.servers
            .extend(lock.servers.into_iter().filter(|(name, _)| counts(name)));
        out.items.extend(
            lock.items
                .into_iter()
                .filter(|(key, _)| counts(&key.server)),
        );
    }
    out
}
