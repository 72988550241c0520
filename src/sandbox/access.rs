//! Whether a uid can reach a path by the file modes alone: the trap `doctor` warns
//! about when mcp-warden runs as root and a server is dropped to a uid of its own,
//! which cannot enter `/root` (an npm cache, a venv, a binary installed there) or
//! write a workspace only root may write.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::uid::Ids;

/// What the uid must be able to do to the path itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Read,
    Write,
    Execute,
}

/// The first place on the way to `path` that `ids` may not pass, with why; `None`
/// when the uid can do `want` to `path`. Directories on the way need search (`x`).
#[must_use]
pub fn blocked(path: &Path, ids: Ids, want: Want) -> Option<(PathBuf, String)> {
    let ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
    for dir in ancestors.into_iter().rev() {
        let Ok(meta) = std::fs::metadata(dir) else {
            return Some((dir.to_owned(), "it does not exist".to_owned()));
        };
        if !allows(&meta, ids, 0o1) {
            return Some((dir.to_owned(), describe(&meta, "enter")));
        }
    }
    let Ok(meta) = std::fs::metadata(path) else {
        return Some((path.to_owned(), "it does not exist".to_owned()));
    };
    let (bit, verb) = match want {
        Want::Read => (0o4, "read"),
        Want::Write => (0o2, "write"),
        Want::Execute => (0o1, "execute"),
    };
    (!allows(&meta, ids, bit)).then(|| (path.to_owned(), describe(&meta, verb)))
}

fn allows(meta: &std::fs::Metadata, ids: Ids, bit: u32) -> bool {
    let mode = meta.mode();
    let shift = if meta.uid() == ids.uid {
        6
    } else if meta.gid() == ids.gid {
        3
    } else {
        0
    };
    mode >> shift & bit != 0
}

fn describe(meta: &std::fs::Metadata, verb: &str) -> String {
    format!(
        "cannot {verb} it (owner uid {}, gid {}, mode {:o})",
        meta.uid(),
        meta.gid(),
        meta.mode() & 0o7777
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_private_directory_on_the_way_blocks_and_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("private");
        std::fs::create_dir(&inner).unwrap();
        let file = inner.join("tool");
        std::fs::write(&file, "x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700)).unwrap();
        let stranger = Ids {
            uid: 1_900_000_001,
            gid: 1_900_000_001,
        };
        let (at, why) = blocked(&file, stranger, Want::Execute).unwrap();
        assert_eq!(at, inner);
        assert!(why.starts_with("cannot enter it"), "{why}");
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o711)).unwrap();
        assert_eq!(blocked(&file, stranger, Want::Execute), None);
        let (at, why) = blocked(&inner, stranger, Want::Write).unwrap();
        assert_eq!(at, inner);
        assert!(why.starts_with("cannot write it"), "{why}");
    }
}
