//! Path arguments as the file system will see them, for `under` / `not_under`.
//!
//! A path written in a call is turned into the real file it names: a `file://` URI is
//! decoded, `~` is the user's home, a relative path is relative to the server's working
//! directory, `.`, `..` and repeated slashes go, and **symlinks are resolved** the way
//! the kernel does it, one component at a time: the longest prefix that exists is
//! resolved (a symlink anywhere in it, dangling ones included, is followed to where it
//! points) and the rest, which does not exist yet, is appended. So
//! `${workspace}/link-to-etc/passwd` is outside the workspace, and a file about to be
//! created inside it is inside.
//!
//! A server may read `..` lexically first (Node's `path.resolve` does) and then open
//! the result, which can name another file than the kernel's reading when a symlink
//! comes before the `..`. A path with `..` therefore has two readings; the caller
//! ([`super::rules`]) counts a condition as holding or failing only when both agree,
//! and as "cannot be evaluated" (fail closed) otherwise.
//!
//! Cost: an `lstat` and a `realpath` (of the file, or of its directory when the file is
//! to be created); otherwise (a missing directory, a dangling symlink) one `lstat` per
//! existing component plus a `readlink` per symlink. Nothing is cached, since the file system
//! changes under a session. This is blocking I/O: see
//! [`super`] for running evaluation off the session's thread.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed for one path before giving up (Linux's own limit).
pub const MAX_SYMLINKS: usize = 40;

/// Why a path argument cannot be turned into a file: the condition cannot be
/// evaluated, which counts against the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("`{0}` is a relative path and the server's working directory is not known")]
    Relative(String),
    #[error("`{0}` is not a local `file:` URI")]
    NotLocal(String),
    #[error("`{0}` is a `{1}:` URI, not a path")]
    NotAPath(String, String),
    #[error("`{0}` has an invalid percent escape")]
    BadEscape(String),
    #[error("`{0}`: `~user` paths are not supported")]
    OtherUser(String),
    #[error("`{0}` contains a NUL byte")]
    Nul(String),
    #[error("`{0}`: more than {MAX_SYMLINKS} symlinks")]
    SymlinkLoop(String),
    #[error("`{path}` cannot be resolved: {kind}")]
    Io { path: String, kind: io::ErrorKind },
}

/// The files a path argument may name: one reading, or two when it has `..` and the
/// lexical reading resolves elsewhere than the kernel's (see the module docs).
pub fn readings(text: &str, cwd: Option<&Path>, home: &Path) -> Result<Vec<PathBuf>, PathError> {
    let written = local_path(text)?;
    let expanded = expand_tilde(&written, home).ok_or_else(|| PathError::OtherUser(text.into()))?;
    let absolute = if expanded.is_absolute() {
        expanded
    } else {
        cwd.ok_or_else(|| PathError::Relative(text.into()))?
            .join(expanded)
    };
    let physical = resolve(&absolute)?;
    let mut out = vec![physical];
    if absolute.components().any(|c| c == Component::ParentDir) {
        let lexical = resolve(&normalize_lexically(&absolute))?;
        if lexical != out[0] {
            out.push(lexical);
        }
    }
    Ok(out)
}

/// The path a call's string names: the string itself, or the path of a `file:` URI.
fn local_path(text: &str) -> Result<PathBuf, PathError> {
    if text.contains('\0') {
        return Err(PathError::Nul(text.into()));
    }
    let Some((scheme, rest)) = uri_scheme(text) else {
        return Ok(PathBuf::from(text));
    };
    if !scheme.eq_ignore_ascii_case("file") {
        return Err(PathError::NotAPath(text.into(), scheme.into()));
    }
    // `file:///p`, `file://localhost/p` or `file:/p`; query and fragment are not part
    // of the path.
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let path = match rest.strip_prefix("//") {
        Some(after) => {
            let (host, path) = after.find('/').map_or((after, ""), |i| after.split_at(i));
            if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) || path.is_empty() {
                return Err(PathError::NotLocal(text.into()));
            }
            path
        }
        None if rest.starts_with('/') => rest,
        None => return Err(PathError::NotLocal(text.into())),
    };
    let bytes = percent_decode(path).ok_or_else(|| PathError::BadEscape(text.into()))?;
    if bytes.contains(&0) {
        return Err(PathError::Nul(text.into()));
    }
    path_from_bytes(bytes).ok_or_else(|| PathError::BadEscape(text.into()))
}

/// `scheme` and the rest of `text` when it starts like a URI (`scheme:` with a scheme
/// of at least two characters, so a Windows drive letter is not one).
fn uri_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once(':')?;
    let mut chars = scheme.chars();
    let ok = scheme.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    // `name:x` without `/` after the colon is a file name with a colon, not a URI,
    // unless it is a `file:` URI.
    (ok && (rest.starts_with('/') || scheme.eq_ignore_ascii_case("file"))).then_some((scheme, rest))
}

/// [`percent_decode`], keeping a `%` that does not start a valid escape as it is.
pub(crate) fn percent_decode_lossy(text: &str) -> Vec<u8> {
    decode(text, false).unwrap_or_default()
}

/// `text` with its `%XX` escapes decoded; `None` when a `%` starts no valid escape.
pub(crate) fn percent_decode(text: &str) -> Option<Vec<u8>> {
    decode(text, true)
}

fn decode(text: &str, strict: bool) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let escape = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match escape {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None if strict => return None,
                None => {}
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Some(out)
}

#[cfg(unix)]
#[allow(clippy::unnecessary_wraps)] // the same signature as elsewhere, where it can fail
fn path_from_bytes(bytes: Vec<u8>) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    Some(PathBuf::from(OsString::from_vec(bytes)))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: Vec<u8>) -> Option<PathBuf> {
    String::from_utf8(bytes).ok().map(PathBuf::from)
}

/// `~` and `~/rest` with the home directory; `None` for `~user`.
#[must_use]
pub fn expand_tilde(path: &Path, home: &Path) -> Option<PathBuf> {
    let mut components = path.components();
    match components.next() {
        Some(Component::Normal(first)) if first == "~" => Some(home.join(components.as_path())),
        Some(Component::Normal(first)) if first.to_string_lossy().starts_with('~') => None,
        _ => Some(path.to_path_buf()),
    }
}

/// `.` and `..` removed and repeated separators collapsed, without looking at the file
/// system (`..` at the root stays at the root).
#[must_use]
pub fn normalize_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// One step still to take while resolving.
enum Part {
    Root(PathBuf),
    Parent,
    Name(OsString),
}

fn push_parts(stack: &mut Vec<Part>, path: &Path) {
    let parts: Vec<Part> = path
        .components()
        .filter_map(|c| match c {
            Component::Prefix(_) | Component::RootDir => {
                Some(Part::Root(PathBuf::from(c.as_os_str())))
            }
            Component::CurDir => None,
            Component::ParentDir => Some(Part::Parent),
            Component::Normal(n) => Some(Part::Name(n.to_os_string())),
        })
        .collect();
    // A stack: the first component is taken first.
    stack.extend(parts.into_iter().rev());
}

/// The real file an absolute path names: the longest existing prefix with every
/// symlink in it followed, then the rest as written (`..` in the rest removed
/// lexically). Dangling symlinks are followed too: writing through one creates its
/// target.
pub fn resolve(path: &Path) -> Result<PathBuf, PathError> {
    let shown = || path.display().to_string();
    // The common cases cheaply: each `lstat` or `realpath` walks the whole path in the
    // kernel, so one of each beats an `lstat` per component. A file that exists: its
    // `realpath`. A file to be created in a directory that exists (the path itself
    // absent, so it is no dangling symlink): the directory's `realpath` and the name.
    let io = |e: io::Error| PathError::Io {
        path: shown(),
        kind: e.kind(),
    };
    let missing = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
        )
    };
    match std::fs::symlink_metadata(path) {
        Ok(_) => match std::fs::canonicalize(path) {
            Ok(real) => return Ok(real),
            Err(e) if missing(&e) => {}
            Err(e) => return Err(io(e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let (Some(parent), Some(name)) = (path.parent(), path.file_name())
                && let Ok(real) = std::fs::canonicalize(parent)
            {
                return Ok(real.join(name));
            }
        }
        Err(e) if missing(&e) => {}
        Err(e) => return Err(io(e)),
    }
    let mut stack = Vec::new();
    push_parts(&mut stack, path);
    let mut out = PathBuf::new();
    let mut exists = true;
    let mut links = 0;
    while let Some(part) = stack.pop() {
        match part {
            Part::Root(root) => {
                // A Windows prefix is followed by its root: keep both.
                if root.has_root() && !out.as_os_str().is_empty() && !out.has_root() {
                    out.push(root);
                } else {
                    out = root;
                }
            }
            Part::Parent => {
                out.pop();
            }
            Part::Name(name) => {
                out.push(&name);
                if !exists {
                    continue;
                }
                match std::fs::symlink_metadata(&out) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        links += 1;
                        if links > MAX_SYMLINKS {
                            return Err(PathError::SymlinkLoop(shown()));
                        }
                        let target = std::fs::read_link(&out).map_err(|e| PathError::Io {
                            path: shown(),
                            kind: e.kind(),
                        })?;
                        out.pop();
                        push_parts(&mut stack, &target);
                    }
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                        ) =>
                    {
                        exists = false;
                    }
                    Err(e) => {
                        return Err(PathError::Io {
                            path: shown(),
                            kind: e.kind(),
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(all(test, unix))]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    fn tmp() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let base = dir.path().canonicalize().unwrap_or_else(|e| panic!("{e}"));
        (dir, base)
    }

    fn one(text: &str, cwd: Option<&Path>) -> PathBuf {
        let r = readings(text, cwd, Path::new("/home/u")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.len(), 1, "{r:?}");
        r.into_iter().next().unwrap_or_default()
    }

    #[test]
    fn dots_and_repeated_slashes_are_normalized() {
        assert_eq!(
            one("/nonexistent-x//a/./b/../c", None),
            Path::new("/nonexistent-x/a/c")
        );
        assert_eq!(
            one("/../../nonexistent-x", None),
            Path::new("/nonexistent-x")
        );
    }

    #[test]
    fn tilde_is_home_and_other_users_are_refused() {
        assert_eq!(
            one("~/nonexistent-x/.ssh", None),
            Path::new("/home/u/nonexistent-x/.ssh")
        );
        assert!(matches!(
            readings("~bob/x", None, Path::new("/h")),
            Err(PathError::OtherUser(_))
        ));
    }

    #[test]
    fn relative_paths_need_a_working_directory() {
        assert!(matches!(
            readings("src/x", None, Path::new("/h")),
            Err(PathError::Relative(_))
        ));
        assert_eq!(
            one("src/x", Some(Path::new("/nonexistent-w"))),
            Path::new("/nonexistent-w/src/x")
        );
    }

    #[test]
    fn file_uris_are_decoded() {
        assert_eq!(
            one("file:///nonexistent-x/a%20b", None),
            Path::new("/nonexistent-x/a b")
        );
        assert_eq!(
            one("file://localhost/nonexistent-x/a", None),
            Path::new("/nonexistent-x/a")
        );
        assert_eq!(
            one("file:/nonexistent-x/a?q=1#f", None),
            Path::new("/nonexistent-x/a")
        );
        for bad in ["file://evil/x", "file:x", "file:///a%zz", "file:///a%00b"] {
            assert!(readings(bad, None, Path::new("/h")).is_err(), "{bad}");
        }
        assert!(matches!(
            readings("https://example.org/x", None, Path::new("/h")),
            Err(PathError::NotAPath(..))
        ));
        // A colon inside a file name is not a scheme.
        assert_eq!(
            one("/nonexistent-x/a:b", None),
            Path::new("/nonexistent-x/a:b")
        );
    }

    #[test]
    fn symlinks_in_the_existing_prefix_are_followed() {
        let (_d, base) = tmp();
        let ws = base.join("ws");
        fs::create_dir_all(ws.join("src")).unwrap_or_else(|e| panic!("{e}"));
        fs::create_dir_all(base.join("etc")).unwrap_or_else(|e| panic!("{e}"));
        symlink(base.join("etc"), ws.join("link")).unwrap_or_else(|e| panic!("{e}"));
        symlink("../etc/shadow", ws.join("rel")).unwrap_or_else(|e| panic!("{e}"));
        symlink(base.join("etc/new"), ws.join("dangling")).unwrap_or_else(|e| panic!("{e}"));
        let p = |s: &str| ws.join(s).to_string_lossy().into_owned();
        assert_eq!(one(&p("link/passwd"), None), base.join("etc/passwd"));
        assert_eq!(one(&p("rel"), None), base.join("etc/shadow"));
        assert_eq!(one(&p("dangling"), None), base.join("etc/new"));
        assert_eq!(one(&p("src/new/file.rs"), None), ws.join("src/new/file.rs"));
        // Through a file: the rest is appended as written.
        fs::write(ws.join("f"), "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one(&p("f/x"), None), ws.join("f/x"));
    }

    #[test]
    fn dot_dot_after_a_symlink_has_two_readings() {
        let (_d, base) = tmp();
        let ws = base.join("ws");
        fs::create_dir_all(&ws).unwrap_or_else(|e| panic!("{e}"));
        fs::create_dir_all(base.join("other/deep")).unwrap_or_else(|e| panic!("{e}"));
        symlink(base.join("other/deep"), ws.join("link")).unwrap_or_else(|e| panic!("{e}"));
        let text = ws.join("link/../x").to_string_lossy().into_owned();
        let r = readings(&text, None, Path::new("/h")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r, [base.join("other/x"), ws.join("x")]);
    }

    #[test]
    fn a_symlink_loop_is_an_error() {
        let (_d, base) = tmp();
        symlink(base.join("b"), base.join("a")).unwrap_or_else(|e| panic!("{e}"));
        symlink(base.join("a"), base.join("b")).unwrap_or_else(|e| panic!("{e}"));
        // The kernel's ELOOP, or our own count when we walk.
        let r = resolve(&base.join("a/x"));
        assert!(
            matches!(r, Err(PathError::SymlinkLoop(_) | PathError::Io { .. })),
            "{r:?}"
        );
        let r = resolve(&base.join("a"));
        assert!(
            matches!(r, Err(PathError::SymlinkLoop(_) | PathError::Io { .. })),
            "{r:?}"
        );
    }
}
