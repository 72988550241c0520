//! `mcp-warden __launch`: the small, single-threaded process every upstream server
//! runs under, so that no server outlives mcp-warden and none leaves a descendant.
//!
//! ```text
//! mcp-warden serve ──spawn──▶ launcher ──fork──▶ init (PID 1 of a new PID namespace)
//!                              │                   └──fork──▶ the server (exec)
//!                              └ parent-death: SIGKILL   └ parent-death: SIGKILL
//! ```
//!
//! The launcher asks to be killed when mcp-warden dies (parent-death signal), then
//! tries to open a new PID namespace. Its child is that namespace's init: it also dies
//! with its parent, reaps orphans, and exits when the server exits, and when a PID
//! namespace's init dies the kernel kills everything left inside it, including a
//! grandchild that started a new session (as `npx` wrappers can). So a SIGKILL to
//! mcp-warden, the launcher being killed, or the server exiting all take the whole tree
//! down.
//!
//! Where the machine refuses a PID namespace (no root, no user namespaces), the
//! launcher becomes a child subreaper instead: orphaned descendants are re-parented to
//! it, and it kills every one of them when the server exits.
//!
//! This code runs before any thread exists (it is dispatched before the runtime starts),
//! which is what makes `fork` sound here.
#![allow(unsafe_code)]

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};
use nix::sys::prctl;
use nix::sys::signal::{SigHandler, Signal, kill, signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, execv, fork, getppid};

use crate::ExitStatus;

/// The hidden subcommand that runs the launcher.
pub const SUBCOMMAND: &str = "__launch";

/// Exit code when the server could not be executed (as shells use).
const EXEC_FAILED: u8 = 127;

/// Runs `command` (an absolute path, then its arguments) under the launcher. `parent`
/// is mcp-warden's pid: if it is already gone, nothing is started.
#[must_use]
pub fn run(parent: u32, command: &[OsString]) -> ExitStatus {
    let Some((program, _)) = command.split_first() else {
        return fail("no command given");
    };
    let Ok(program) = CString::new(program.as_bytes()) else {
        return fail("the command contains a NUL byte");
    };
    let Ok(argv) = command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return fail("an argument contains a NUL byte");
    };
    if prctl::set_pdeathsig(Signal::SIGKILL).is_err() {
        return fail("cannot set the parent-death signal");
    }
    // The parent may have died before the signal was armed: then nobody will kill us.
    if u32::try_from(getppid().as_raw()).ok() != Some(parent) {
        return ExitStatus::Child(1);
    }
    // mcp-warden's SIGTERM goes to the whole process group. The launcher outlives it so
    // the server can finish gracefully; the SIGKILL that follows, if the server does
    // not, takes the launcher and with it everything.
    set_sigterm(SigHandler::SigIgn);
    // As root a PID namespace is ours for the asking; as a user, inside a user
    // namespace of our own where the kernel allows unprivileged ones.
    if unshare(CloneFlags::CLONE_NEWPID).is_ok() || enter_user_and_pid_namespace().is_ok() {
        run_in_namespace(&program, &argv)
    } else {
        run_as_subreaper(&program, &argv)
    }
}

/// A new user namespace mapping only our own uid and gid to themselves (so the server
/// runs as who it would have run as, with no capability after `exec`), and in it a new
/// PID namespace for the next child.
fn enter_user_and_pid_namespace() -> std::io::Result<()> {
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWPID)?;
    // An unprivileged process must give up setgroups before it may map its gid.
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    Ok(())
}

/// With a new PID namespace: fork its init, which forks and execs the server.
fn run_in_namespace(program: &CString, argv: &[CString]) -> ExitStatus {
    // SAFETY: the launcher is single-threaded (dispatched before any runtime or thread
    // starts), so the child may run arbitrary code after fork.
    match unsafe { fork() } {
        Err(e) => fail(&format!("cannot fork: {e}")),
        Ok(ForkResult::Child) => {
            // PID 1 of the new namespace: die with the launcher, run the server, reap.
            if prctl::set_pdeathsig(Signal::SIGKILL).is_err() {
                return fail("cannot set the parent-death signal");
            }
            spawn_and_reap(program, argv)
        }
        Ok(ForkResult::Parent { child }) => wait_for(child),
    }
}

/// Without a namespace: become a subreaper, run the server, and kill every orphan
/// left behind when it exits.
fn run_as_subreaper(program: &CString, argv: &[CString]) -> ExitStatus {
    let _ = prctl::set_child_subreaper(true);
    let status = spawn_and_reap(program, argv);
    kill_descendants();
    status
}

/// Forks the server and reaps every child until the server itself exits.
fn spawn_and_reap(program: &CString, argv: &[CString]) -> ExitStatus {
    // SAFETY: still single-threaded; see `run_in_namespace`.
    match unsafe { fork() } {
        Err(e) => fail(&format!("cannot fork: {e}")),
        Ok(ForkResult::Child) => {
            // Dies with whoever started it (the namespace's init, or the subreaper
            // launcher), so even without a namespace a killed launcher takes it along.
            let _ = prctl::set_pdeathsig(Signal::SIGKILL);
            // An ignored signal stays ignored across exec: give the server the default.
            set_sigterm(SigHandler::SigDfl);
            let Err(e) = execv(program, argv);
            fail_exec(program, e)
        }
        Ok(ForkResult::Parent { child }) => wait_for(child),
    }
}

/// Waits for `child`, reaping any other child (orphans re-parented to us) meanwhile,
/// and returns the child's status as ours.
fn wait_for(child: Pid) -> ExitStatus {
    loop {
        match waitpid(None, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => {
                return ExitStatus::Child(u8::try_from(code).unwrap_or(1));
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => {
                // As shells report it: 128 + the signal number.
                return ExitStatus::Child(u8::try_from(128 + signal as i32).unwrap_or(1));
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return ExitStatus::Child(1),
        }
    }
}

/// Kills the subreaper's remaining children until there are none (each kill may
/// re-parent grandchildren to us).
fn kill_descendants() {
    let me = std::process::id().to_string();
    for _ in 0..100 {
        let children = children_of(&me);
        if children.is_empty() {
            return;
        }
        for pid in children {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
            if status == WaitStatus::StillAlive {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The pids whose parent is `parent`, from `/proc/*/stat`.
fn children_of(parent: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // Fields after the parenthesised name: state, ppid, ...
            let mut rest = stat.rsplit_once(')')?.1.split_whitespace();
            (rest.nth(1)? == parent).then_some(pid)
        })
        .collect()
}

fn set_sigterm(handler: SigHandler) {
    // SAFETY: `SigIgn` and `SigDfl` install no handler code, so nothing can run in a
    // signal context.
    let _ = unsafe { signal(Signal::SIGTERM, handler) };
}

#[allow(clippy::print_stderr)]
fn fail(why: &str) -> ExitStatus {
    // Goes to the server's stderr pipe, so it lands in the log with the server's name.
    eprintln!("mcp-warden launcher: {why}");
    ExitStatus::Child(EXEC_FAILED)
}

fn fail_exec(program: &CString, e: Errno) -> ExitStatus {
    fail(&format!(
        "cannot execute `{}`: {}",
        program.to_string_lossy(),
        e.desc()
    ))
}
