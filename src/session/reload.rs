//! Live reload of the configuration (SPEC "Merging": `serve` watches these files). A
//! task polls the files a session's configuration comes from (the managed policy, the
//! user config, the workspace's `mcp-warden.toml`, and the trust store, since trust
//! decides which servers start), comparing their contents; when one changes it loads the configuration again
//! off the session's thread and hands the result over. A valid change takes effect at
//! once: the policy, the output filters and pinning settings are replaced, and when
//! the servers changed they are restarted (the client hears `list_changed`). An
//! invalid one is refused with its error, on stderr, in the log and to the client, and
//! the previous configuration stays.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Session;
use crate::config::{self, Effective, WorkspaceChoice};
use crate::paths::Paths;

/// How often the files are looked at.
const POLL: Duration = Duration::from_millis(500);

/// A fresh load of the configuration with what pinning reads for it (both made off
/// the session's thread), or why it failed.
pub(super) type ConfigUpdate = Result<(Effective, super::pins::Readings), String>;

/// The contents of the watched files, as digests: a rewrite that puts back the
/// length, modification time and inode is still seen.
async fn digests(files: &[PathBuf]) -> Option<Vec<Option<String>>> {
    let files = files.to_vec();
    tokio::task::spawn_blocking(move || {
        files
            .iter()
            .map(|f| crate::config::trust::content_digest(f))
            .collect()
    })
    .await
    .ok()
}

/// Watches the configuration of the workspace at `root` (`None`: no workspace).
pub(super) fn watch(
    paths: Paths,
    root: Option<PathBuf>,
    tx: mpsc::Sender<ConfigUpdate>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut files = vec![
            paths.managed_policy(),
            paths.user_config(),
            paths.trust_file(),
        ];
        if let Some(root) = &root {
            files.push(crate::paths::workspace_file(root));
        }
        let choice = match (&root, std::env::current_dir()) {
            (Some(root), _) => WorkspaceChoice::Flag(root.clone()),
            (None, Ok(cwd)) => WorkspaceChoice::Cwd(cwd),
            (None, Err(_)) => return,
        };
        let mut last: Option<Vec<Option<String>>> = None;
        loop {
            let Some(now) = digests(&files).await else {
                tokio::time::sleep(POLL).await;
                continue;
            };
            let changed = last.as_ref().is_some_and(|l| *l != now);
            last = Some(now.clone());
            if changed {
                let (p, c) = (paths.clone(), choice.clone());
                let loaded = tokio::task::spawn_blocking(move || {
                    let effective = config::load_serving(&p, &c).map_err(|e| e.to_string())?;
                    let readings = super::pins::Readings::read(&p, &effective);
                    Ok((effective, readings))
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
                let parsed = loaded
                    .as_ref()
                    .ok()
                    .and_then(|(e, _)| e.workspace.as_ref())
                    .map(|w| w.config_digest.clone());
                if tx.send(loaded).await.is_err() {
                    return;
                }
                // The load counts as settled only when the files held still around it
                // and it parsed the workspace file the watcher saw; otherwise a flip
                // during the load could leave in force a version no longer on disk,
                // with nothing left to notice. Then the next poll loads again.
                let after = digests(&files).await;
                let saw_parsed =
                    root.is_none() || parsed.is_none_or(|d| d == now.last().cloned().flatten());
                if after.as_ref() != Some(&now) || !saw_parsed {
                    last = Some(Vec::new());
                }
            }
            tokio::time::sleep(POLL).await;
        }
    })
}

impl Session {
    /// (Re)starts watching the configuration of the current workspace.
    pub(super) fn watch_config(&mut self) {
        if let Some(w) = self.config_watcher.take() {
            w.abort();
        }
        let paths = self.config.pinning.paths.clone();
        self.config_watcher = Some(watch(
            paths,
            self.workspace_root.clone(),
            self.config_tx.clone(),
        ));
    }

    /// A configuration file changed.
    pub(super) fn on_config_update(&mut self, update: ConfigUpdate) {
        let (effective, readings) = match update {
            Ok(loaded) => loaded,
            Err(e) => {
                let text = format!(
                    "the changed configuration is invalid; the previous one stays in force:\n{e}"
                );
                return self.tell(&text, "error");
            }
        };
        let servers_changed = effective.servers != self.config.effective.servers;
        let pinning_changed = effective.pinning != self.config.pinning.settings;
        self.policy = Arc::new(effective.policy.clone());
        self.chain.reconfigure(&effective.policy.settings);
        // New lock places (trust came or went, the workspace file's digest changed)
        // need fresh pins as much as new settings do: a lock reading counts only
        // against the configuration digest it was made for.
        let places = crate::pinning::files::LockPlaces::new(&self.config.pinning.paths, &effective);
        if pinning_changed || places != *self.pins.places() {
            self.config.pinning.settings = effective.pinning;
            self.pins = super::pins::Pins::from_readings(self.config.pinning.clone(), readings);
            self.pins.watch(self.pin_tx.clone());
        }
        let summary = if servers_changed {
            "the configuration changed; its servers are restarted"
        } else {
            "the configuration changed; the new policy is in force"
        };
        self.config.effective = effective;
        if servers_changed {
            self.stop_all_servers("the configuration changed");
            let servers = self.config.effective.servers.clone();
            self.start_servers(servers);
            self.announce = [true; 3];
        }
        self.tell(summary, "info");
        for note in self.config.effective.notes.clone() {
            self.tell(&note, "warning");
        }
        self.after_state_change();
    }

    /// Says something to the person: stderr, the log, and the client.
    fn tell(&mut self, text: &str, level: &str) {
        tracing::warn!("{text}");
        // Our own layout (a configuration error lists its diagnostics one per line).
        crate::output::diag_block(&format!("mcp-warden: {text}"));
        if self.client.initialized {
            self.out.push_back(super::wire::log_message(level, text));
        } else {
            self.notices.push(text.to_owned());
        }
    }
}
