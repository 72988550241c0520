//! Files that several mcp-warden processes may write at once (the trust store, the lock
//! file): an exclusive advisory lock held across read-modify-write, and an atomic
//! replace, so a reader never sees half a file and no writer loses another's update.
//!
//! Also the one way to read a file that trust covers ([`read_regular`], SPEC "Reading
//! the files"): opened once without following a symlink and without blocking on a FIFO,
//! checked to be a regular file on the descriptor itself, read once. Callers hash and
//! parse that one buffer; nothing here ever re-opens a path it checked.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg, OFlag};

/// The largest file [`read_regular`] reads: a lock file with thousands of pinned
/// definitions is a few MiB; anything near this is not one of ours, and reading it
/// whole would let a hostile workspace make `serve` allocate without bound.
pub const MAX_READ_BYTES: u64 = 64 * 1024 * 1024;

/// How long [`lock_exclusive`] waits for another process to release its lock. A
/// writer of ours holds it for one read-modify-write (milliseconds); a lock held
/// longer is a stuck or hostile process, and waiting for it would freeze a reload.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

/// How often a wait for a held lock tries again.
const LOCK_RETRY: Duration = Duration::from_millis(20);

/// Flags for every open of a covered or lock file: never through a symlink (a swapped
/// link would point the read or the lock elsewhere), never blocking (a FIFO opened
/// without a writer would hang the reader), not inherited by servers we spawn.
fn no_follow_flags() -> i32 {
    (OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits()
}

/// Fails unless the open descriptor is a regular file (checked on the descriptor, so
/// the answer is about the file that will be read, not whatever the path names now).
fn ensure_regular(file: &File, path: &Path) -> io::Result<fs::Metadata> {
    let meta = file.metadata()?;
    if meta.is_file() {
        Ok(meta)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a regular file", path.display()),
        ))
    }
}

/// Whether a read may follow a symbolic link at the path itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// A symlink is an error: files a workspace supplies, and our own state.
    Refuse,
    /// Followed: the user's and the managed configuration, which dotfile managers
    /// often link, and which only their owner can swap.
    Follow,
}

/// Reads the regular file at `path` once: `None` when it does not exist. A symlink, a
/// FIFO, a device or a directory at `path` is an error (a symlink reads as `ELOOP`),
/// as is a file over [`MAX_READ_BYTES`].
pub fn read_regular(path: &Path) -> io::Result<Option<Vec<u8>>> {
    read_file(path, Links::Refuse)
}

/// [`read_regular`], following a symlink at `path` when `links` says so (the target
/// must still be a regular file).
pub fn read_file(path: &Path, links: Links) -> io::Result<Option<Vec<u8>>> {
    let flags = match links {
        Links::Refuse => no_follow_flags(),
        Links::Follow => (OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits(),
    };
    let file = match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{}` is a symbolic link", path.display()),
            ));
        }
        Err(e) => return Err(e),
    };
    let meta = ensure_regular(&file, path)?;
    if meta.len() > MAX_READ_BYTES {
        return Err(too_large(path));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // One more byte than allowed tells a file that grew past the limit while read.
    file.take(MAX_READ_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_READ_BYTES {
        return Err(too_large(path));
    }
    Ok(Some(bytes))
}

fn too_large(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "`{}` is larger than {} MiB",
            path.display(),
            MAX_READ_BYTES / 1024 / 1024
        ),
    )
}

/// An exclusive advisory lock (`flock`), held until dropped. `flock` through `nix`:
/// std's `File::lock` is newer than the crate's MSRV (1.88).
#[derive(Debug)]
pub struct ExclusiveLock {
    _lock: Flock<File>,
}

/// Opens (creating, with `mode`) the lock file at `path` and takes an exclusive lock on
/// it, waiting at most [`LOCK_WAIT`] while another process holds it (then
/// `ErrorKind::TimedOut`). The lock file is opened without following a symlink and
/// must be a regular file. Blocking: call it off an async task's thread.
pub fn lock_exclusive(path: &Path, mode: u32) -> io::Result<ExclusiveLock> {
    lock_exclusive_within(path, mode, LOCK_WAIT)
}

/// [`lock_exclusive`] with a wait of `wait`.
pub fn lock_exclusive_within(path: &Path, mode: u32, wait: Duration) -> io::Result<ExclusiveLock> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode)
        .custom_flags(no_follow_flags())
        .open(path)?;
    ensure_regular(&file, path)?;
    let deadline = Instant::now() + wait;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(ExclusiveLock { _lock: lock }),
            Err((back, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                file = back;
                std::thread::sleep(LOCK_RETRY);
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "`{}` is locked by another process (waited {} s)",
                        path.display(),
                        wait.as_secs()
                    ),
                ));
            }
            Err((_, errno)) => return Err(io::Error::from(errno)),
        }
    }
}

/// Replaces `path` with `contents`: a new file beside it (mode `mode`, whatever the
/// umask), synced, renamed over the old one, and the directory synced so the rename
/// itself survives a crash. The temporary file is removed when anything fails.
pub fn replace(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = crate::time::clock_nanos();
    let tmp = dir.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir).and_then(|d| d.sync_all())
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_writes_with_the_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.toml");
        replace(&path, b"one", 0o600).expect("first write");
        replace(&path, b"two", 0o600).expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let mode = fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f.toml")]);
    }

    #[test]
    fn a_second_lock_waits_for_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".lck");
        let first = lock_exclusive(&path, 0o600).expect("lock");
        let path2 = path.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _second = lock_exclusive(&path2, 0o600).expect("lock");
            tx.send(()).expect("send");
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(100))
                .is_err(),
            "the lock was not exclusive"
        );
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("the second lock never came");
        waiter.join().expect("join");
    }

    #[test]
    fn a_lock_held_elsewhere_is_waited_for_a_bounded_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".lck");
        let _first = lock_exclusive(&path, 0o600).expect("lock");
        let started = Instant::now();
        let err = lock_exclusive_within(&path, 0o600, Duration::from_millis(200))
            .expect_err("the lock is held");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_lock_file_that_is_a_symlink_or_a_fifo_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("elsewhere");
        let link = dir.path().join(".lck");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(lock_exclusive(&link, 0o600).is_err());
        assert!(!target.exists(), "the lock followed the link");
        let fifo = dir.path().join(".fifo.lck");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        assert!(lock_exclusive(&fifo, 0o600).is_err());
    }

    #[test]
    fn read_regular_reads_files_and_refuses_links_fifos_and_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        assert_eq!(read_regular(&file).expect("absent"), None);
        fs::write(&file, b"bytes").expect("write");
        assert_eq!(read_regular(&file).expect("read"), Some(b"bytes".to_vec()));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        let err = read_regular(&link).expect_err("a symlink");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        // Returns at once: a FIFO without a writer never blocks the reader.
        let err = read_regular(&fifo).expect_err("a fifo");
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert!(read_regular(dir.path()).is_err());
    }
}
