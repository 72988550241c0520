//! What `demo` leaves behind: nothing, even when run as root or stopped with Ctrl-C.
//!
//! - [`TempHome`]: the throw-away home under the system temp dir, removed when dropped.
//! - [`SandboxDirs`]: run as root, `serve` gives each demo server a uid of its own and a
//!   private directory under [`DROPPED_BASE`], named after the server and its uid. The
//!   ones this run created are removed when dropped; one that was there before (a real
//!   server of the same name) is left alone.
//! - [`watch_interrupts`]: Ctrl-C (SIGINT), SIGTERM or SIGHUP would end the process
//!   before any destructor ran. A thread waits for them instead: the first one marks the
//!   demo interrupted and stops `serve`, so the demo's waits fail at once and the guards
//!   above are dropped on the way out; a second one ends the process at once.
//!
//! Must never remove anything it did not create.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use anyhow::Context as _;

use crate::sandbox::plan::DROPPED_BASE;
use crate::sandbox::uid::auto_ids;

/// Set once an interrupt arrived.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The pid of the running `serve`; 0 when there is none.
static SERVE_PID: AtomicI32 = AtomicI32::new(0);

/// The exit code shells report for a process ended by SIGINT (128 + 2).
pub const INTERRUPTED_EXIT: u8 = 130;

/// The demo's home directory, removed when dropped.
pub struct TempHome(pub PathBuf);

impl TempHome {
    pub fn create() -> anyhow::Result<Self> {
        let nanos = crate::time::clock_nanos();
        let dir = std::env::temp_dir().join(format!(
            "mcp-warden-demo-{}-{nanos:08x}",
            std::process::id()
        ));
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The private directories of the demo's servers that this run will create, removed
/// when dropped. Empty unless running as root (otherwise they live in the temp home).
pub struct SandboxDirs(Vec<PathBuf>);

impl SandboxDirs {
    /// Notes which of `servers`' directories do not exist yet.
    #[must_use]
    pub fn before_start(servers: &[&str]) -> Self {
        if !nix::unistd::geteuid().is_root() {
            return Self(Vec::new());
        }
        Self::in_base(Path::new(DROPPED_BASE), servers)
    }

    fn in_base(base: &Path, servers: &[&str]) -> Self {
        Self(
            servers
                .iter()
                .map(|name| dir_of(base, name))
                .filter(|dir| std::fs::symlink_metadata(dir).is_err())
                .collect(),
        )
    }
}

/// Where `serve` keeps the private directory of server `name` run under its auto uid
/// (`sandbox::plan`'s naming).
fn dir_of(base: &Path, name: &str) -> PathBuf {
    base.join(format!("{name}.{}", auto_ids(name).uid))
}

impl Drop for SandboxDirs {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Starts the thread that turns SIGINT, SIGTERM and SIGHUP into a clean stop.
pub fn watch_interrupts() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot watch for Ctrl-C")?;
    // Registered here, before the demo starts, so no signal falls in between.
    let mut signals = runtime.block_on(async {
        Ok::<_, std::io::Error>([
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        ])
    })?;
    // Lives as long as the process: nothing to join.
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let [int, term, hup] = &mut signals;
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                }
                if INTERRUPTED.swap(true, Ordering::SeqCst) {
                    // A second interrupt: the person wants out now.
                    std::process::exit(i32::from(INTERRUPTED_EXIT));
                }
                stop_serve();
            }
        });
    });
    Ok(())
}

/// Whether an interrupt arrived.
#[must_use]
pub fn is_interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Records the running `serve` (so an interrupt can stop it); fails when the demo was
/// interrupted already.
pub fn serve_started(pid: u32) -> anyhow::Result<()> {
    SERVE_PID.store(i32::try_from(pid).unwrap_or(0), Ordering::SeqCst);
    if is_interrupted() {
        stop_serve();
        anyhow::bail!("interrupted");
    }
    Ok(())
}

/// `serve` has exited.
pub fn serve_ended() {
    SERVE_PID.store(0, Ordering::SeqCst);
}

/// Asks `serve` to shut down (it stops its servers); the demo's reader then sees it go.
fn stop_serve() {
    let pid = SERVE_PID.load(Ordering::SeqCst);
    if pid > 0 {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sandbox_dir_is_named_as_serve_names_it() {
        let ids = auto_ids("notes");
        assert_eq!(
            dir_of(Path::new("/b"), "notes"),
            PathBuf::from(format!("/b/notes.{}", ids.uid))
        );
    }

    #[test]
    fn only_the_directories_this_run_created_are_removed() {
        let base = tempfile::tempdir().expect("tempdir");
        let theirs = dir_of(base.path(), "web");
        std::fs::create_dir_all(theirs.join("keep")).expect("mkdir");
        let dirs = SandboxDirs::in_base(base.path(), &["notes", "web"]);
        let ours = dir_of(base.path(), "notes");
        std::fs::create_dir_all(ours.join("home/.cache")).expect("mkdir");
        drop(dirs);
        assert!(!ours.exists(), "the run's own directory is removed");
        assert!(
            theirs.join("keep").exists(),
            "one that was there is left alone"
        );
    }
}
