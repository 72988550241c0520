//! Backups of client files: made by `install` before its first change, restored by
//! `uninstall`.
//!
//! A client file may hold secrets (the `env` values `install` moves out), and a
//! project's file lies in a directory that a sandboxed server may write. So:
//!
//! - a backup is created mode 0600, new (`O_EXCL`, which never follows a symlink), and
//!   beside its file, unless that file is inside a git work tree: then it goes to the
//!   data dir's `backups/` (0700), where `git status` cannot see it and no workspace
//!   server can swap it;
//! - the install record keeps the backup's digest and the file's own mode;
//! - `uninstall` reads a backup only through [`read`]: opened without following a
//!   symlink, refused unless it is a regular file with a single link, and refused when
//!   its bytes are not the ones recorded. Whatever stands at that path otherwise (a
//!   link to `~/.ssh/id_ed25519`, other bytes) is never copied into a client file.
//!
//! This module never writes outside the backup's own new file.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use super::InstallError;
use crate::file_error::FileError;
use crate::paths::Paths;

/// The infix of backup names: `<file>.mcp-warden-backup-<UTC timestamp>`.
pub const BACKUP_INFIX: &str = ".mcp-warden-backup-";

/// The data dir's directory for backups of files inside git work trees.
pub const DATA_SUBDIR: &str = "backups";

/// A backup on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub path: PathBuf,
    /// `sha256:<hex>` of its bytes.
    pub digest: String,
}

/// Writes `bytes` (the contents of `file`) to a new backup, mode 0600. `stamp` makes
/// the name (`20260901T120000Z`); `-2`, `-3`, ... are added when it is taken.
pub fn create(paths: &Paths, file: &Path, bytes: &[u8], stamp: &str) -> Result<Made, InstallError> {
    let (dir, name) = if in_git_work_tree(file) {
        let dir = paths.data_dir.join(DATA_SUBDIR);
        create_private_dir(&dir)?;
        (dir, data_dir_name(file))
    } else {
        (
            file.parent().unwrap_or(Path::new(".")).to_path_buf(),
            file_name(file),
        )
    };
    for n in 1u32..1000 {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("-{n}")
        };
        let path = dir.join(format!("{name}{BACKUP_INFIX}{stamp}{suffix}"));
        match create_new(&path, bytes) {
            Ok(()) => {
                return Ok(Made {
                    path,
                    digest: crate::config::trust::digest(bytes),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(cause) => return Err(InstallError::File(FileError::Write { path, cause })),
        }
    }
    Err(InstallError::File(FileError::Write {
        path: file.to_path_buf(),
        cause: io::Error::other("no free backup name"),
    }))
}

/// The bytes of the backup at `path`, and its mode, read without following a symlink;
/// refused unless it is a regular file with one link and, when `digest` is recorded,
/// holds exactly those bytes.
pub fn read(path: &Path, digest: Option<&str>) -> Result<(Vec<u8>, u32), InstallError> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let unsafe_backup = |why: &'static str| InstallError::BackupUnsafe {
        path: path.to_path_buf(),
        why,
    };
    // O_NONBLOCK: opening a FIFO put in its place must not hang us.
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path);
    let mut f = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(InstallError::BackupMissing {
                path: path.to_path_buf(),
            });
        }
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(unsafe_backup("it is a symbolic link"));
        }
        Err(cause) => {
            return Err(InstallError::File(FileError::Read {
                path: path.to_path_buf(),
                cause,
            }));
        }
    };
    let read_error = |cause| {
        InstallError::File(FileError::Read {
            path: path.to_path_buf(),
            cause,
        })
    };
    let meta = f.metadata().map_err(read_error)?;
    if !meta.is_file() {
        return Err(unsafe_backup("it is not a regular file"));
    }
    if meta.nlink() != 1 {
        return Err(unsafe_backup("it has another name (a hard link)"));
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(read_error)?;
    if digest.is_some_and(|d| d != crate::config::trust::digest(&bytes)) {
        return Err(unsafe_backup("its contents changed since install made it"));
    }
    Ok((bytes, meta.mode() & 0o7777))
}

fn file_name(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The name a backup of `file` starts with in the data dir: many projects have a
/// `.mcp.json`, so it says which one this was.
fn data_dir_name(file: &Path) -> String {
    let which = crate::config::trust::digest(file.as_os_str().as_encoded_bytes());
    let short = which
        .trim_start_matches("sha256:")
        .get(..12)
        .unwrap_or_default();
    format!("{short}-{}", file_name(file))
}

/// Every backup of `file`, beside it or in the data dir, newest first.
#[must_use]
pub fn all_of(paths: &Paths, file: &Path) -> Vec<PathBuf> {
    let mut found = named_in(file.parent(), &file_name(file));
    found.extend(named_in(
        Some(&paths.data_dir.join(DATA_SUBDIR)),
        &data_dir_name(file),
    ));
    // Each name ends in a sortable timestamp (and a `-N` when two share it).
    let stamp = |p: &PathBuf| {
        let name = p.to_string_lossy();
        name.rsplit_once(BACKUP_INFIX)
            .map(|(_, stamp)| stamp.to_owned())
    };
    found.sort_by_key(|p| std::cmp::Reverse(stamp(p)));
    found
}

/// The backups in `dir` of a file called `name`.
fn named_in(dir: Option<&Path>, name: &str) -> Vec<PathBuf> {
    let Some(dir) = dir else {
        return Vec::new();
    };
    let prefix = format!("{name}{BACKUP_INFIX}");
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `file` lies inside a git work tree: one of its directories holds `.git`.
fn in_git_work_tree(file: &Path) -> bool {
    file.ancestors()
        .skip(1)
        .any(|dir| fs::symlink_metadata(dir.join(".git")).is_ok())
}

fn create_private_dir(dir: &Path) -> Result<(), InstallError> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|cause| {
            InstallError::File(FileError::Write {
                path: dir.to_path_buf(),
                cause,
            })
        })
}

/// Creates `path` new, mode 0600 (never through an existing name, symlinks included),
/// with `bytes`, synced.
fn create_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    // The umask may have taken bits away; it cannot have added any.
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_is_read_back_only_as_made() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths {
            managed_dir: dir.path().join("managed"),
            config_dir: dir.path().join("config"),
            data_dir: dir.path().join("data"),
            home: dir.path().to_path_buf(),
        };
        let file = dir.path().join("mcp.json");
        let made = create(&paths, &file, b"{}", "20260901T120000Z").expect("made");
        assert_eq!(
            made.path,
            dir.path()
                .join("mcp.json.mcp-warden-backup-20260901T120000Z")
        );
        let again = create(&paths, &file, b"{}", "20260901T120000Z").expect("made");
        assert!(again.path.to_string_lossy().ends_with("Z-2"));
        assert_eq!(
            read(&made.path, Some(&made.digest)).expect("reads"),
            (b"{}".to_vec(), 0o600)
        );
        std::fs::write(&made.path, b"[]").expect("writes");
        assert!(matches!(
            read(&made.path, Some(&made.digest)),
            Err(InstallError::BackupUnsafe { .. })
        ));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&again.path, &link).expect("symlink");
        assert!(matches!(
            read(&link, None),
            Err(InstallError::BackupUnsafe { .. })
        ));
        assert!(matches!(
            read(&dir.path().join("none"), None),
            Err(InstallError::BackupMissing { .. })
        ));

        // Inside a git work tree: in the data dir, and still found for the file.
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join(".git")).expect("mkdir");
        let tracked = repo.join(".mcp.json");
        let kept = create(&paths, &tracked, b"{}", "20260902T120000Z").expect("made");
        assert!(
            kept.path.starts_with(paths.data_dir.join(DATA_SUBDIR)),
            "{kept:?}"
        );
        assert_eq!(all_of(&paths, &tracked), [kept.path]);
        assert_eq!(all_of(&paths, &file), [again.path, made.path]);
    }
}
