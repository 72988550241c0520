//! The one shape of a file that could not be read or written (or a workspace directory
//! that could not be used): the path, what was being done, and the system's cause.
//! Every subsystem that touches files (configuration, the trust store, the lock file,
//! `install`) carries it as its `File` variant instead of spelling the same variants
//! again, so the message reads the same whichever command hit it.
//!
//! The path is shown escaped onto one line (`output::one_line`): a file name may hold
//! a newline or a terminal escape, and these messages are printed to a terminal.
//! The audit trail keeps its own `AuditError::Io`: its errors are `Clone` (one failure
//! is reported to every waiter), which an `io::Error` is not.

use std::io;
use std::path::{Path, PathBuf};

use crate::output::one_line;

/// A file or directory that could not be read, written or used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read `{}`: {cause}", one_line(&path.to_string_lossy()))]
    Read { path: PathBuf, cause: io::Error },
    #[error("cannot write `{}`: {cause}", one_line(&path.to_string_lossy()))]
    Write { path: PathBuf, cause: io::Error },
    /// A workspace directory (`--workspace DIR`, a root to trust) that cannot be
    /// resolved or opened.
    #[error("workspace `{}` cannot be used: {cause}", one_line(&path.to_string_lossy()))]
    Workspace { path: PathBuf, cause: io::Error },
}

impl FileError {
    /// The file or directory it is about.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. } | Self::Write { path, .. } | Self::Workspace { path, .. } => {
                path
            }
        }
    }

    /// What the system said.
    #[must_use]
    pub fn cause(&self) -> &io::Error {
        match self {
            Self::Read { cause, .. }
            | Self::Write { cause, .. }
            | Self::Workspace { cause, .. } => cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_quoted_on_one_line() {
        let e = FileError::Read {
            path: PathBuf::from("/tmp/a\nb\u{1b}[31m"),
            cause: io::Error::from(io::ErrorKind::NotFound),
        };
        let text = e.to_string();
        assert!(text.starts_with("cannot read `/tmp/a"), "{text}");
        assert!(!text.contains('\n') && !text.contains('\u{1b}'), "{text}");
        assert_eq!(e.path(), Path::new("/tmp/a\nb\u{1b}[31m"));
        assert_eq!(e.cause().kind(), io::ErrorKind::NotFound);
    }
}
