//! Which lock file a server's pins live in, and reading one as it counts (SPEC "Files
//! and layers"): a workspace server's pins come from `mcp-warden.lock` beside its
//! `mcp-warden.toml`, and count only while the workspace is trusted; user-level and
//! managed servers' pins come from the data dir's lock.

use std::path::{Path, PathBuf};

use crate::config::{Effective, Layer, ServerConfig};
use crate::paths::{LOCK_FILE, Paths};
use crate::pinning::lock::{self, LockFile};

/// A lock file as it counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    Ready(LockFile),
    /// It does not count, and why: everything it would pin is held.
    Unusable(String),
}

/// The trusted workspace whose lock counts, as the configuration in force saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceLock {
    /// The workspace root (canonical).
    pub root: PathBuf,
    /// The digest of the `mcp-warden.toml` the configuration was parsed from: a reading
    /// of the lock counts only if the trust store pairs it with this digest, so a
    /// configuration file swapped since the load can never lend the lock its trust.
    pub config: String,
}

/// Where the lock files of one invocation are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockPlaces {
    /// The data dir's lock: user-level and managed servers.
    pub user: PathBuf,
    /// The workspace whose lock counts: only a trusted one.
    pub workspace: Option<WorkspaceLock>,
}

impl LockPlaces {
    /// The places for `effective`, with the user lock in `paths`' data dir.
    #[must_use]
    pub fn new(paths: &Paths, effective: &Effective) -> Self {
        Self {
            user: paths.data_dir.join(LOCK_FILE),
            workspace: effective
                .workspace
                .as_ref()
                .filter(|w| w.trust.is_trusted())
                .and_then(|w| {
                    Some(WorkspaceLock {
                        root: w.root.clone(),
                        config: w.config_digest.clone()?,
                    })
                }),
        }
    }

    /// The lock file `server`'s pins live in.
    #[must_use]
    pub fn for_server(&self, server: &ServerConfig) -> PathBuf {
        match (&server.layer, &self.workspace) {
            (Layer::Workspace, Some(w)) => w.root.join(LOCK_FILE),
            _ => self.user.clone(),
        }
    }

    /// The workspace a lock file's trust depends on (`None`: the user lock).
    #[must_use]
    pub fn root_of(&self, path: &Path) -> Option<&WorkspaceLock> {
        self.workspace
            .as_ref()
            .filter(|w| path.parent() == Some(w.root.as_path()))
    }

    /// Reads every lock file in use (blocking), each as it counts.
    #[must_use]
    pub fn read_all(&self, paths: &Paths) -> std::collections::HashMap<PathBuf, LockState> {
        self.all()
            .into_iter()
            .map(|(path, workspace)| {
                let state = read_lock(&path, workspace.as_ref(), paths);
                (path, state)
            })
            .collect()
    }

    /// Every lock file in use, each with the workspace it depends on.
    #[must_use]
    pub fn all(&self) -> Vec<(PathBuf, Option<WorkspaceLock>)> {
        let mut out = vec![(self.user.clone(), None)];
        if let Some(w) = &self.workspace {
            out.push((w.root.join(LOCK_FILE), Some(w.clone())));
        }
        out
    }
}

/// Reads a lock file once (blocking): absent is empty; for a workspace's lock, the
/// trust store must pair the digest of the very bytes parsed with the configuration in
/// force (SPEC "Reading the files"), checked under the file's own lock so a write and
/// its trust record are seen together.
#[must_use]
pub fn read_lock(path: &Path, workspace: Option<&WorkspaceLock>, paths: &Paths) -> LockState {
    let read = lock::read_then(path, |lock_digest| {
        workspace.map(|w| {
            let now = crate::config::trust::Digests {
                config: Some(w.config.clone()),
                lock: lock_digest.map(str::to_owned),
            };
            crate::config::trust::judge(paths, &w.root, &now).is_ok_and(|t| t.is_trusted())
        })
    });
    match read {
        Ok((_, Some(false))) => LockState::Unusable(
            "the workspace is no longer trusted (its `mcp-warden.toml` or `mcp-warden.lock` changed); review the change, then run `mcp-warden trust`".into(),
        ),
        Ok((lock, _)) => LockState::Ready(lock.unwrap_or_default()),
        Err(e) => LockState::Unusable(e.to_string()),
    }
}

/// Adds `pins` to the lock file at `path` (and takes out `remove`), creating its
/// directory if needed, and records the write in the trust store when it is the
/// workspace's (`workspace`), all under the file's lock. Returns whether the file
/// changed.
pub fn write_pins(
    path: &Path,
    workspace: Option<&WorkspaceLock>,
    paths: &Paths,
    pins: LockFile,
    remove: impl FnOnce(&mut LockFile),
) -> anyhow::Result<bool> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let (_, (written, trust)) = lock::update_then(
        path,
        |lock| {
            remove(lock);
            lock.servers.extend(pins.servers);
            lock.items.extend(pins.items);
        },
        |written| {
            let trust = match workspace {
                Some(w) if written.changed => {
                    let write = crate::config::trust::OwnWrite {
                        config: &w.config,
                        before: written.before,
                        after: written.after,
                    };
                    crate::config::trust::record_own_write(paths, &w.root, write).map(|_| ())
                }
                _ => Ok(()),
            };
            (written.changed, trust)
        },
    )?;
    trust?;
    Ok(written)
}
