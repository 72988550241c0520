//! Which workspaces the user trusts, and at which file digests.
//!
//! A workspace's servers start, and its lock file counts, only when the user has run
//! `mcp-warden trust` there and neither `mcp-warden.toml` nor `mcp-warden.lock` changed
//! since: a cloned repository cannot start processes or pre-approve its tools. The
//! store is `trust.toml` in the data dir:
//!
//! ```toml
//! [workspaces."/home/u/src/project"]        # canonical workspace root
//! config = "sha256:<hex>"                   # of mcp-warden.toml
//! lock = "sha256:<hex>"                     # of mcp-warden.lock; absent when there was none
//! trusted_at = "2026-09-01T12:00:00Z"       # informational (unix seconds are read too)
//! ```
//!
//! This module owns that file and never guesses: a store it cannot parse is an error
//! with its position, never replaced, and never read as "nothing trusted" by a writer.
//! Readers ([`state`]) treat an unreadable store as "not trusted" (fail closed).
//! Writes are atomic (a temporary file in the same directory, then a rename) and
//! serialized with an advisory lock on `trust.toml.lock`; the data dir is created mode
//! 0700 and the files 0600.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::config::{Diagnostic, Severity, Source, TrustState};
use crate::file_error::FileError;
use crate::paths::{self, Paths};
use crate::time::Timestamp;

/// What every recorded digest starts with.
pub const DIGEST_PREFIX: &str = "sha256:";

/// Why the trust store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// `trust.toml` is not valid; never replaced automatically.
    #[error("{0}")]
    Invalid(Diagnostic),
    /// A file that could not be read or written, or a workspace root that cannot be
    /// resolved to a canonical path.
    #[error(transparent)]
    File(#[from] FileError),
    /// Trusting a directory without a workspace file would trust nothing.
    #[error("no `{}` in `{}`: nothing to trust", paths::WORKSPACE_FILE, root.display())]
    NoWorkspaceFile { root: PathBuf },
    /// Keys of the store are strings; a non-UTF-8 root cannot be recorded faithfully.
    #[error("workspace path `{}` is not valid UTF-8", path.display())]
    NotUnicode { path: PathBuf },
}

impl TrustError {
    /// The error as diagnostics, for commands that print every problem the same way.
    #[must_use]
    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        let path = match self {
            Self::Invalid(d) => return vec![d],
            Self::File(ref e) => e.path().to_owned(),
            Self::NoWorkspaceFile { root: ref path } | Self::NotUnicode { ref path } => {
                path.clone()
            }
        };
        vec![Diagnostic::file(&path, Severity::Error, self.to_string())]
    }
}

/// One trusted workspace as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustRecord {
    /// `sha256:<hex>` of `mcp-warden.toml`.
    pub config: String,
    /// `sha256:<hex>` of `mcp-warden.lock`; `None` when there was no lock file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// When the user trusted it (RFC 3339, UTC); informational only.
    pub trusted_at: String,
}

/// The whole store, keyed by canonical workspace root.
#[derive(Debug, Default, Serialize)]
struct Store {
    workspaces: BTreeMap<String, TrustRecord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(default)]
    workspaces: BTreeMap<String, RawRecord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    config: Spanned<String>,
    lock: Option<Spanned<String>>,
    trusted_at: TrustedAt,
}

/// `trusted_at` as written: RFC 3339 text, or unix seconds.
#[derive(Deserialize)]
#[serde(untagged)]
enum TrustedAt {
    Text(String),
    Seconds(i64),
}

/// The digests of a workspace's files as they are now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// `None` when `mcp-warden.toml` does not exist.
    pub config: Option<String>,
    /// `None` when `mcp-warden.lock` does not exist.
    pub lock: Option<String>,
}

/// What a covered file that cannot be read (a FIFO, a symlink, a device, an I/O
/// error) counts as in [`Digests`]: never a valid digest, so it never matches a record
/// and the workspace reads as changed (fail closed).
pub const UNREADABLE: &str = "unreadable";

/// A covered file read once (SPEC "Reading the files"): its bytes and their digest,
/// so that what is parsed is what was hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
}

/// Reads the covered file at `path` once (`durable::read_regular`): `None` when it does
/// not exist.
pub fn snapshot(path: &Path) -> io::Result<Option<Snapshot>> {
    Ok(crate::durable::read_regular(path)?.map(|bytes| Snapshot {
        digest: digest(&bytes),
        bytes,
    }))
}

/// What a watcher compares to see that `path` changed (SPEC "Reading the files":
/// contents, not timestamps, which a writer can put back): the digest of its bytes,
/// `None` when absent, [`UNREADABLE`] when it is not a regular file. Follows a
/// symlink, since this only decides when to load again, and the load itself reads
/// strictly. Blocking.
#[must_use]
pub fn content_digest(path: &Path) -> Option<String> {
    match crate::durable::read_file(path, crate::durable::Links::Follow) {
        Ok(found) => found.map(|bytes| digest(&bytes)),
        Err(_) => Some(UNREADABLE.to_owned()),
    }
}

/// The digest a covered file counts with: `None` when absent, [`UNREADABLE`] when it
/// cannot be read as a regular file.
#[must_use]
pub fn digest_of(read: &io::Result<Option<Snapshot>>) -> Option<String> {
    match read {
        Ok(found) => found.as_ref().map(|s| s.digest.clone()),
        Err(_) => Some(UNREADABLE.to_owned()),
    }
}

/// `sha256:<hex>` of `bytes`.
#[must_use]
pub fn digest(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(DIGEST_PREFIX.len() + 64);
    out.push_str(DIGEST_PREFIX);
    for b in Sha256::digest(bytes) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The current digests of the workspace files in `root`, each file read once. For
/// [`trust`] and tests: a loader must digest the very bytes it parses, through
/// [`snapshot`] and [`judge`], never call this and then read the files again.
fn current_digests(root: &Path) -> Result<Digests, TrustError> {
    let read = |path: PathBuf| match snapshot(&path) {
        Ok(found) => Ok(found.map(|s| s.digest)),
        Err(cause) => Err(TrustError::File(FileError::Read { path, cause })),
    };
    Ok(Digests {
        config: read(paths::workspace_file(root))?,
        lock: read(root.join(paths::LOCK_FILE))?,
    })
}

/// Whether the workspace at `root` (canonical) is trusted at `now`, the digests of the
/// bytes the caller read and will use. A corrupt or unreadable store is an error; the
/// caller decides how to fail closed.
pub fn judge(paths: &Paths, root: &Path, now: &Digests) -> Result<TrustState, TrustError> {
    let Some(key) = root.to_str() else {
        return Ok(TrustState::NotTrusted);
    };
    let store = read_store(paths)?;
    let Some(record) = store.workspaces.get(key) else {
        return Ok(TrustState::NotTrusted);
    };
    let mut changed = Vec::new();
    if now.config.as_ref() != Some(&record.config) {
        changed.push(paths::workspace_file(root));
    }
    if now.lock != record.lock {
        changed.push(root.join(paths::LOCK_FILE));
    }
    Ok(if changed.is_empty() {
        TrustState::Trusted
    } else {
        TrustState::Changed { changed }
    })
}

/// Whether the workspace at `root` is trusted at the digests its files have now (each
/// read once). For reports only: a loader judges the bytes it parses with [`judge`].
/// Any problem reads as not trusted (fail closed).
#[must_use]
pub fn state(paths: &Paths, root: &Path) -> TrustState {
    let Ok(root) = root.canonicalize() else {
        return TrustState::NotTrusted;
    };
    current_digests(&root)
        .and_then(|now| judge(paths, &root, &now))
        .unwrap_or(TrustState::NotTrusted)
}

/// What trusting a workspace approves, each file read once: what `mcp-warden trust`
/// shows is what [`approve`] records (SPEC "Commands": a review screen shows exactly
/// what will be approved).
#[derive(Debug, Clone)]
pub struct Review {
    /// The canonical workspace root.
    pub root: PathBuf,
    pub config: Snapshot,
    /// `None` when there is no lock file.
    pub lock: Option<Snapshot>,
    /// What was trusted before, if anything.
    pub previous: Option<TrustRecord>,
}

/// Reads what trusting the workspace at `root` would approve.
pub fn review(paths: &Paths, root: &Path) -> Result<Review, TrustError> {
    let root = canonical(root)?;
    key(&root)?;
    let read = |path: PathBuf| {
        snapshot(&path).map_err(|cause| TrustError::File(FileError::Read { path, cause }))
    };
    let config = read(paths::workspace_file(&root))?
        .ok_or_else(|| TrustError::NoWorkspaceFile { root: root.clone() })?;
    let lock = read(root.join(paths::LOCK_FILE))?;
    let previous = read_store(paths)?.workspaces.remove(key(&root)?);
    Ok(Review {
        root,
        config,
        lock,
        previous,
    })
}

/// Trusts the reviewed workspace at the digests of the bytes reviewed (a file changed
/// since then is therefore not trusted), and keeps a private copy of those bytes so
/// the next review can show what changed.
pub fn approve(paths: &Paths, review: &Review) -> Result<TrustRecord, TrustError> {
    let key = key(&review.root)?;
    let _guard = lock_store(paths)?;
    for snapshot in std::iter::once(&review.config).chain(&review.lock) {
        keep_copy(paths, snapshot)?;
    }
    let record = TrustRecord {
        config: review.config.digest.clone(),
        lock: review.lock.as_ref().map(|l| l.digest.clone()),
        trusted_at: Timestamp::now().to_seconds(),
    };
    let mut store = read_store(paths)?;
    store.workspaces.insert(key.to_owned(), record.clone());
    write_store(paths, &store)?;
    Ok(record)
}

/// Trusts the workspace at `root` at its current digests, without showing anything.
/// Returns the canonical root and what was recorded.
pub fn trust(paths: &Paths, root: &Path) -> Result<(PathBuf, TrustRecord), TrustError> {
    let review = review(paths, root)?;
    let record = approve(paths, &review)?;
    Ok((review.root, record))
}

/// Where the copy of trusted bytes with `digest` is kept: content-addressed, in the
/// data dir (private: a workspace file may be private too).
fn copy_path(paths: &Paths, digest: &str) -> Option<PathBuf> {
    let hex = digest.strip_prefix(DIGEST_PREFIX)?;
    is_digest(digest).then(|| paths.data_dir.join("trusted").join(hex))
}

fn keep_copy(paths: &Paths, snapshot: &Snapshot) -> Result<(), TrustError> {
    let Some(path) = copy_path(paths, &snapshot.digest) else {
        return Ok(());
    };
    if path.is_file() {
        return Ok(());
    }
    let dir = paths.data_dir.join("trusted");
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(&dir)
        .and_then(|()| crate::durable::replace(&path, &snapshot.bytes, PRIVATE))
        .map_err(|cause| TrustError::File(FileError::Write { path, cause }))
}

/// The text trusted with `digest`, when a copy was kept and still matches it.
#[must_use]
pub fn trusted_text(paths: &Paths, digest: &str) -> Option<String> {
    let bytes = crate::durable::read_regular(&copy_path(paths, digest)?).ok()??;
    (self::digest(&bytes) == digest)
        .then(|| String::from_utf8(bytes).ok())
        .flatten()
}

/// Withdraws trust from the workspace at `root`; `false` when it was not trusted.
/// Works for a workspace directory that no longer exists.
pub fn untrust(paths: &Paths, root: &Path) -> Result<bool, TrustError> {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let key = key(&root)?;
    if !paths.trust_file().exists() {
        return Ok(false);
    }
    let _guard = lock_store(paths)?;
    let mut store = read_store(paths)?;
    if store.workspaces.remove(key).is_none() {
        return Ok(false);
    }
    write_store(paths, &store)?;
    Ok(true)
}

/// A write mcp-warden itself makes to a workspace's `mcp-warden.lock` (`pin`, `unpin`,
/// tofu), described by the digests it was made against.
#[derive(Debug, Clone, Copy)]
pub struct OwnWrite<'a> {
    /// The digest of the `mcp-warden.toml` the writer's configuration was loaded from.
    pub config: &'a str,
    /// The digest of the lock bytes the write started from (`None`: no file).
    pub before: Option<&'a str>,
    /// The digest of the bytes written (`None`: no file).
    pub after: Option<&'a str>,
}

/// Records a write mcp-warden itself made to `mcp-warden.lock`, so that it does not
/// make the workspace untrusted. The lock digest is updated only when the record still
/// says `write.config` for the configuration and `write.before` for the lock: an edit
/// of either file by someone else is never laundered into trust by a pin made on top
/// of it. The caller must hold the lock file's own lock. Returns whether the workspace
/// is still recorded as trusted.
pub fn record_own_write(
    paths: &Paths,
    root: &Path,
    write: OwnWrite<'_>,
) -> Result<bool, TrustError> {
    let root = canonical(root)?;
    let key = key(&root)?;
    if !paths.trust_file().exists() {
        return Ok(false);
    }
    let _guard = lock_store(paths)?;
    let mut store = read_store(paths)?;
    let Some(record) = store.workspaces.get_mut(key) else {
        return Ok(false);
    };
    if record.config != write.config || record.lock.as_deref() != write.before {
        return Ok(false);
    }
    let after = write.after.map(str::to_owned);
    if record.lock != after {
        record.lock = after;
        write_store(paths, &store)?;
    }
    Ok(true)
}

fn canonical(root: &Path) -> Result<PathBuf, TrustError> {
    root.canonicalize().map_err(|cause| {
        TrustError::File(FileError::Workspace {
            path: root.to_path_buf(),
            cause,
        })
    })
}

fn key(root: &Path) -> Result<&str, TrustError> {
    root.to_str().ok_or_else(|| TrustError::NotUnicode {
        path: root.to_path_buf(),
    })
}

/// Reads the store; a missing file is an empty store.
fn read_store(paths: &Paths) -> Result<Store, TrustError> {
    let path = paths.trust_file();
    let bytes = match crate::durable::read_regular(&path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(Store::default()),
        Err(cause) => return Err(TrustError::File(FileError::Read { path, cause })),
    };
    let text = crate::config::error::utf8_text(&path, bytes)
        .map_err(|d| TrustError::Invalid(corrupt(d)))?;
    parse_store(&path, &text)
}

fn corrupt(d: Diagnostic) -> Diagnostic {
    d.with_hint(
        "mcp-warden never replaces a trust store it cannot read: fix it by hand, or delete it to \
         withdraw all trust",
    )
}

fn parse_store(path: &Path, text: &str) -> Result<Store, TrustError> {
    let source = Source::new(path, text);
    let raw: RawStore = toml::from_str(text)
        .map_err(|e| TrustError::Invalid(corrupt(source.toml_error(&e, None))))?;
    let mut store = Store::default();
    for (root, record) in raw.workspaces {
        for value in std::iter::once(&record.config).chain(&record.lock) {
            if !is_digest(value.get_ref()) {
                let message = format!("invalid digest `{}`", value.get_ref());
                return Err(TrustError::Invalid(corrupt(
                    source.error(&value.span(), message),
                )));
            }
        }
        let trusted_at = match record.trusted_at {
            TrustedAt::Text(t) => t,
            TrustedAt::Seconds(s) => s.to_string(),
        };
        let record = TrustRecord {
            config: record.config.into_inner(),
            lock: record.lock.map(Spanned::into_inner),
            trusted_at,
        };
        store.workspaces.insert(root, record);
    }
    Ok(store)
}

fn is_digest(s: &str) -> bool {
    s.strip_prefix(DIGEST_PREFIX).is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Creates the data dir (mode 0700, with any missing parents).
fn ensure_data_dir(paths: &Paths) -> Result<(), TrustError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&paths.data_dir).map_err(|cause| {
        TrustError::File(FileError::Write {
            path: paths.data_dir.clone(),
            cause,
        })
    })
}

/// Files of the trust store are the user's alone.
const PRIVATE: u32 = 0o600;

/// Holds the store's advisory lock until dropped, so two writers cannot lose each
/// other's update between read and rename.
fn lock_store(paths: &Paths) -> Result<crate::durable::ExclusiveLock, TrustError> {
    ensure_data_dir(paths)?;
    let path = paths.data_dir.join("trust.toml.lock");
    crate::durable::lock_exclusive(&path, PRIVATE)
        .map_err(|cause| TrustError::File(FileError::Write { path, cause }))
}

/// Writes the store atomically (see `durable::replace`).
fn write_store(paths: &Paths, store: &Store) -> Result<(), TrustError> {
    ensure_data_dir(paths)?;
    let path = paths.trust_file();
    let body = toml::to_string(store).map_err(|e| {
        TrustError::File(FileError::Write {
            path: path.clone(),
            cause: io::Error::other(e.to_string()),
        })
    })?;
    let text = format!(
        "# Workspaces trusted with `mcp-warden trust`, at the digests of their files.\n\
         # Written by mcp-warden; `mcp-warden untrust` withdraws a workspace.\n\n{body}"
    );
    crate::durable::replace(&path, text.as_bytes(), PRIVATE)
        .map_err(|cause| TrustError::File(FileError::Write { path, cause }))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Env {
        _dir: tempfile::TempDir,
        paths: Paths,
        root: PathBuf,
    }

    fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    fn env() -> Env {
        let dir = ok(tempfile::tempdir());
        let base = ok(dir.path().canonicalize());
        let root = base.join("ws");
        ok(fs::create_dir_all(&root));
        ok(fs::write(root.join("mcp-warden.toml"), "[servers]\n"));
        let paths = Paths {
            managed_dir: base.join("managed"),
            config_dir: base.join("config"),
            data_dir: base.join("data"),
            home: base.clone(),
        };
        Env {
            _dir: dir,
            paths,
            root,
        }
    }

    fn trust_ok(e: &Env) -> TrustRecord {
        ok(trust(&e.paths, &e.root)).1
    }

    #[test]
    fn untrusted_until_trusted_then_trusted() {
        let e = env();
        assert_eq!(state(&e.paths, &e.root), TrustState::NotTrusted);
        let record = trust_ok(&e);
        assert!(is_digest(&record.config));
        assert_eq!(record.config, digest(b"[servers]\n"));
        assert_eq!(record.lock, None);
        assert_eq!(state(&e.paths, &e.root), TrustState::Trusted);
    }

    #[test]
    fn editing_the_config_makes_it_changed() {
        let e = env();
        trust_ok(&e);
        ok(fs::write(
            e.root.join("mcp-warden.toml"),
            "[servers.x]\ncommand = \"evil\"\n",
        ));
        let changed = vec![e.root.join("mcp-warden.toml")];
        assert_eq!(state(&e.paths, &e.root), TrustState::Changed { changed });
    }

    #[test]
    fn adding_editing_or_removing_the_lock_makes_it_changed() {
        let e = env();
        trust_ok(&e);
        let lock = e.root.join("mcp-warden.lock");
        ok(fs::write(&lock, "a"));
        assert_eq!(
            state(&e.paths, &e.root),
            TrustState::Changed {
                changed: vec![lock.clone()]
            }
        );
        let record = trust_ok(&e);
        assert_eq!(record.lock, Some(digest(b"a")));
        assert_eq!(state(&e.paths, &e.root), TrustState::Trusted);
        ok(fs::write(&lock, "b"));
        assert_eq!(
            state(&e.paths, &e.root),
            TrustState::Changed {
                changed: vec![lock.clone()]
            }
        );
        ok(fs::remove_file(&lock));
        assert_eq!(
            state(&e.paths, &e.root),
            TrustState::Changed {
                changed: vec![lock]
            }
        );
    }

    #[test]
    fn untrust_withdraws() {
        let e = env();
        assert!(!ok(untrust(&e.paths, &e.root)));
        trust_ok(&e);
        assert!(ok(untrust(&e.paths, &e.root)));
        assert_eq!(state(&e.paths, &e.root), TrustState::NotTrusted);
        assert!(!ok(untrust(&e.paths, &e.root)));
    }

    #[test]
    fn own_lock_writes_keep_trust_but_other_edits_are_not_laundered() {
        let e = env();
        let lock = e.root.join("mcp-warden.lock");
        let config = digest(b"[servers]\n");
        let (v1, v2, v3) = (digest(b"v1"), digest(b"v2"), digest(b"v3"));
        let write = |before, after| OwnWrite {
            config: &config,
            before,
            after,
        };
        ok(fs::write(&lock, "v1"));
        // Nothing recorded: nothing to keep.
        assert!(!ok(record_own_write(
            &e.paths,
            &e.root,
            write(Some(&v1), Some(&v2))
        )));
        trust_ok(&e);
        ok(fs::write(&lock, "v2"));
        assert!(ok(record_own_write(
            &e.paths,
            &e.root,
            write(Some(&v1), Some(&v2))
        )));
        assert_eq!(state(&e.paths, &e.root), TrustState::Trusted);
        // A write made on top of a lock someone else changed is not recorded.
        ok(fs::write(&lock, "v3"));
        assert!(!ok(record_own_write(
            &e.paths,
            &e.root,
            write(Some(&v1), Some(&v3))
        )));
        // Nor one made by a session loaded from another configuration.
        let edited = digest(b"# edited\n");
        let other = OwnWrite {
            config: &edited,
            before: Some(&v2),
            after: Some(&v3),
        };
        assert!(!ok(record_own_write(&e.paths, &e.root, other)));
        assert!(matches!(
            state(&e.paths, &e.root),
            TrustState::Changed { .. }
        ));
    }

    #[test]
    fn a_covered_file_that_is_not_regular_is_never_trusted() {
        let e = env();
        trust_ok(&e);
        let file = e.root.join("mcp-warden.toml");
        let saved = e.root.join("saved.toml");
        ok(fs::rename(&file, &saved));
        ok(std::os::unix::fs::symlink(&saved, &file));
        assert!(matches!(
            state(&e.paths, &e.root),
            TrustState::NotTrusted | TrustState::Changed { .. }
        ));
        ok(fs::remove_file(&file));
        ok(nix::unistd::mkfifo(
            &file,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        ));
        // Returns at once, and not trusted: the FIFO is never opened for a blocking read.
        assert!(!state(&e.paths, &e.root).is_trusted());
        let lock = e.root.join("mcp-warden.lock");
        ok(fs::remove_file(&file));
        ok(fs::rename(&saved, &file));
        assert!(state(&e.paths, &e.root).is_trusted());
        ok(nix::unistd::mkfifo(
            &lock,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        ));
        let now = Digests {
            config: Some(digest(b"[servers]\n")),
            lock: digest_of(&snapshot(&lock)),
        };
        assert_eq!(now.lock.as_deref(), Some(UNREADABLE));
        assert_eq!(
            ok(judge(&e.paths, &e.root, &now)),
            TrustState::Changed {
                changed: vec![lock]
            }
        );
    }

    #[test]
    fn trusting_without_a_workspace_file_is_refused() {
        let e = env();
        ok(fs::remove_file(e.root.join("mcp-warden.toml")));
        assert!(matches!(
            trust(&e.paths, &e.root),
            Err(TrustError::NoWorkspaceFile { .. })
        ));
        assert!(!e.paths.trust_file().exists());
    }

    #[test]
    fn a_corrupt_store_is_an_error_with_position_and_is_kept() {
        let e = env();
        ok(fs::create_dir_all(&e.paths.data_dir));
        let bad = "[workspaces.\"/x\"]\nconfig = \"md5:abc\"\ntrusted_at = \"now\"\n";
        ok(fs::write(e.paths.trust_file(), bad));
        let err = trust(&e.paths, &e.root)
            .err()
            .map(|x| x.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("trust.toml:2:10: error: invalid digest `md5:abc`"),
            "{err}"
        );
        assert!(err.contains("hint: mcp-warden never replaces"), "{err}");
        assert_eq!(
            fs::read_to_string(e.paths.trust_file()).ok().as_deref(),
            Some(bad)
        );
        let now = ok(current_digests(&e.root));
        assert!(judge(&e.paths, &e.root, &now).is_err());
        assert_eq!(state(&e.paths, &e.root), TrustState::NotTrusted);
        ok(fs::write(e.paths.trust_file(), "[workspaces\n"));
        let err = untrust(&e.paths, &e.root)
            .err()
            .map(|x| x.to_string())
            .unwrap_or_default();
        assert!(err.contains("trust.toml:1:"), "{err}");
    }

    #[test]
    fn store_reads_unix_seconds_and_round_trips() {
        let text = format!(
            "[workspaces.\"/a\"]\nconfig = \"{}\"\ntrusted_at = 1700000000\n",
            digest(b"x")
        );
        let store = ok(parse_store(Path::new("t"), &text));
        assert_eq!(store.workspaces["/a"].trusted_at, "1700000000");
        let written = ok(toml::to_string(&store));
        let again = ok(parse_store(Path::new("t"), &written));
        assert_eq!(again.workspaces, store.workspaces);
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private_and_no_temporary_file_is_left() {
        use std::os::unix::fs::PermissionsExt;
        let e = env();
        trust_ok(&e);
        let mode = |p: &Path| fs::metadata(p).map_or(0, |m| m.permissions().mode() & 0o777);
        assert_eq!(mode(&e.paths.data_dir), 0o700);
        assert_eq!(mode(&e.paths.trust_file()), 0o600);
        let names: Vec<String> = ok(fs::read_dir(&e.paths.data_dir))
            .filter_map(Result::ok)
            .map(|f| f.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.starts_with(".trust.toml.")),
            "{names:?}"
        );
    }
}
