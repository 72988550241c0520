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
//! With a sandbox plan (`--sandbox`, JSON; see `sandbox/`), the launcher first leaves
//! mcp-warden's session (no controlling terminal for anything below it), makes itself
//! undumpable (it holds the server's environment), asks for an empty network
//! namespace along with the PID namespace when the plan has no network, and the
//! server's child applies the plan's layers just before exec, writing what it applied
//! as one report line on stderr (`sandbox::report`). `--report-only` stops there
//! instead of exec'ing: that is how `doctor` learns what a server would really get.
//!
//! This code runs before any thread exists (it is dispatched before the runtime starts),
//! which is what makes `fork` sound here.
#![allow(unsafe_code)]

use std::ffi::{CString, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};
use nix::sys::prctl;
use nix::sys::signal::{SigHandler, Signal, kill, signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, execv, fork, getppid};

use crate::ExitStatus;
use crate::sandbox::Plan;
use crate::sandbox::apply::{self, Exec, Namespaces};
use crate::sandbox::report::REFUSED_EXIT;
use crate::sandbox::support::simulated_missing;

/// The hidden subcommand that runs the launcher.
pub const SUBCOMMAND: &str = "__launch";

/// Exit code when the server could not be executed (as shells use).
const EXEC_FAILED: u8 = 127;

/// What the launcher was asked to do.
#[derive(Debug)]
pub struct Launch<'a> {
    /// mcp-warden's pid: if it is already gone, nothing is started.
    pub parent: u32,
    /// The sandbox plan as JSON; `None` runs the server unsandboxed (library tests).
    pub sandbox: Option<&'a str>,
    /// Apply the plan, report, and exit instead of exec'ing (`doctor`).
    pub report_only: bool,
    /// The server's absolute path, then its arguments.
    pub command: &'a [OsString],
}

/// Runs the launcher when `args` is exactly the command line [`crate::upstream`]
/// builds (`__launch --parent PID [--sandbox JSON] [--report-only] -- PROGRAM ARGS…`);
/// `None` for anything else, which then goes through the full command-line parser.
///
/// Why not clap: a launcher (and the namespace init it forks) stays resident for as
/// long as its server runs, one pair per upstream. Building clap's whole command tree
/// touches a few hundred KiB of code and heap that would stay resident in each of them
/// (measured in `docs/benchmark.md`), for a command line only we write.
#[must_use]
pub fn dispatch(args: &[OsString]) -> Option<ExitStatus> {
    let launch = parse_fixed(args)?;
    Some(run(&launch))
}

/// The fixed form of the launcher's command line, or `None`.
fn parse_fixed(args: &[OsString]) -> Option<Launch<'_>> {
    let mut rest = args.get(1..)?;
    if rest.first()?.as_bytes() != SUBCOMMAND.as_bytes() {
        return None;
    }
    rest = &rest[1..];
    let (mut parent, mut sandbox, mut report_only) = (None, None, false);
    loop {
        let (flag, tail) = rest.split_first()?;
        match flag.as_bytes() {
            b"--parent" => {
                let (value, tail) = tail.split_first()?;
                parent = Some(value.to_str()?.parse::<u32>().ok()?);
                rest = tail;
            }
            b"--sandbox" => {
                let (value, tail) = tail.split_first()?;
                sandbox = Some(value.to_str()?);
                rest = tail;
            }
            b"--report-only" => {
                report_only = true;
                rest = tail;
            }
            b"--" => {
                rest = tail;
                break;
            }
            _ => return None,
        }
    }
    if rest.is_empty() {
        return None;
    }
    Some(Launch {
        parent: parent?,
        sandbox,
        report_only,
        command: rest,
    })
}

/// Runs the server under the launcher.
#[must_use]
pub fn run(launch: &Launch<'_>) -> ExitStatus {
    let (parent, command) = (launch.parent, launch.command);
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
    let plan = match launch.sandbox.map(serde_json::from_str::<Plan>).transpose() {
        Ok(plan) => plan,
        Err(e) => return fail(&format!("unreadable sandbox plan: {e}")),
    };
    if plan.is_some() {
        // Fails only when already a session leader, which is as good.
        let _ = nix::unistd::setsid();
        let _ = prctl::set_dumpable(false);
    }
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
    let want_net = plan
        .as_ref()
        .is_some_and(|p| !p.network && p.network_ports.is_empty());
    let mut ns = namespaces(plan.is_some(), want_net && !simulated_missing("netns"));
    if want_net && simulated_missing("netns") {
        ns.net_error = Some(Errno::EPERM);
    }
    let child = Child {
        program: &program,
        argv: &argv,
        plan: plan.as_ref(),
        ns,
        report_only: launch.report_only,
    };
    if ns.pid {
        run_in_namespace(&child)
    } else {
        run_as_subreaper(&child)
    }
}

/// The server's process, as the launcher's innermost child starts it.
struct Child<'a> {
    program: &'a CString,
    argv: &'a [CString],
    plan: Option<&'a Plan>,
    ns: Namespaces,
    report_only: bool,
}

/// A PID namespace, a mount namespace (for a `/proc` of its own) when `want_mnt`, and
/// an empty network namespace when `want_net`. As root they are ours for the asking;
/// as a user, inside a user namespace of our own where the kernel allows unprivileged
/// ones. Each wanted extra the kernel refuses is dropped in turn, keeping the PID
/// namespace, with the network's reason kept (the server's child then falls back to
/// Landlock and seccomp).
fn namespaces(want_mnt: bool, want_net: bool) -> Namespaces {
    let pick = |on: bool, flag: CloneFlags| if on { flag } else { CloneFlags::empty() };
    let (mnt, net) = (
        pick(want_mnt, CloneFlags::CLONE_NEWNS),
        pick(want_net, CloneFlags::CLONE_NEWNET),
    );
    let pid = CloneFlags::CLONE_NEWPID;
    let mut attempts: Vec<CloneFlags> = Vec::new();
    for flags in [pid | mnt | net, pid | mnt, pid | net, pid] {
        if !attempts.contains(&flags) {
            attempts.push(flags);
        }
    }
    let mut net_error = None;
    let mut enter = |flags: CloneFlags, user: bool| -> bool {
        let result = if user {
            enter_user_namespace(flags).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
        } else {
            unshare(flags)
        };
        match result {
            Ok(()) => true,
            Err(e) => {
                if flags.contains(CloneFlags::CLONE_NEWNET) {
                    net_error = Some(e);
                }
                false
            }
        }
    };
    for user in [false, true] {
        if let Some(&flags) = attempts.iter().find(|&&flags| enter(flags, user)) {
            return Namespaces {
                pid: true,
                mnt: flags.contains(CloneFlags::CLONE_NEWNS),
                proc: false,
                net: flags.contains(CloneFlags::CLONE_NEWNET),
                net_error: if flags.contains(CloneFlags::CLONE_NEWNET) {
                    None
                } else {
                    net_error
                },
            };
        }
    }
    Namespaces {
        pid: false,
        mnt: false,
        proc: false,
        net: false,
        net_error,
    }
}

/// In a new mount namespace, from inside the new PID namespace: mounts stop
/// propagating back out, and a fresh `/proc` shows this namespace's processes only,
/// so a server cannot read other processes' command lines or status.
fn mount_own_proc() -> nix::Result<()> {
    use nix::mount::{MsFlags, mount};
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
}

/// A new user namespace mapping only our own uid and gid to themselves (so the server
/// runs as who it would have run as, with no capability after `exec`), and in it the
/// namespaces `flags` asks for.
fn enter_user_namespace(flags: CloneFlags) -> std::io::Result<()> {
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    unshare(CloneFlags::CLONE_NEWUSER | flags)?;
    // An unprivileged process must give up setgroups before it may map its gid.
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    Ok(())
}

/// With a new PID namespace: fork its init, which forks and execs the server.
fn run_in_namespace(child: &Child<'_>) -> ExitStatus {
    // SAFETY: the launcher is single-threaded (dispatched before any runtime or thread
    // starts), so the child may run arbitrary code after fork.
    match unsafe { fork() } {
        Err(e) => fail(&format!("cannot fork: {e}")),
        Ok(ForkResult::Child) => {
            // PID 1 of the new namespace: die with the launcher, run the server, reap.
            if prctl::set_pdeathsig(Signal::SIGKILL).is_err() {
                return fail("cannot set the parent-death signal");
            }
            let mut ns = child.ns;
            ns.proc = ns.mnt && mount_own_proc().is_ok();
            spawn_and_reap(&Child { ns, ..*child })
        }
        Ok(ForkResult::Parent { child }) => wait_for(child),
    }
}

/// Without a namespace: become a subreaper, run the server, and kill every orphan
/// left behind when it exits.
fn run_as_subreaper(child: &Child<'_>) -> ExitStatus {
    let _ = prctl::set_child_subreaper(true);
    let status = spawn_and_reap(child);
    kill_descendants();
    status
}

/// Forks the server and reaps every child until the server itself exits.
fn spawn_and_reap(child: &Child<'_>) -> ExitStatus {
    // SAFETY: still single-threaded; see `run_in_namespace`.
    match unsafe { fork() } {
        Err(e) => fail(&format!("cannot fork: {e}")),
        Ok(ForkResult::Child) => {
            // Dies with whoever started it (the namespace's init, or the subreaper
            // launcher), so even without a namespace a killed launcher takes it along.
            let _ = prctl::set_pdeathsig(Signal::SIGKILL);
            // An ignored signal stays ignored across exec: give the server the default.
            set_sigterm(SigHandler::SigDfl);
            exec_server(child)
        }
        Ok(ForkResult::Parent { child }) => wait_for(child),
    }
}

/// In the server's own process: the sandbox's layers, the report, then the exec.
fn exec_server(child: &Child<'_>) -> ExitStatus {
    let Some(plan) = child.plan else {
        let Err(e) = execv(child.program, child.argv);
        return fail_exec(child.program, e);
    };
    let (report, exec) = apply::enter(plan, child.ns, child.program);
    report_line(&report.to_line());
    if let Some(why) = &report.refused {
        fail(&format!("server `{}` not started: {why}", plan.server));
        return ExitStatus::Child(REFUSED_EXIT);
    }
    if child.report_only {
        return ExitStatus::Child(0);
    }
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut entry = k.into_vec();
            entry.push(b'=');
            entry.extend(v.into_vec());
            CString::new(entry).ok()
        })
        .collect();
    let Err(e) = match exec {
        Exec::File(fd) => nix::unistd::fexecve(fd, child.argv, &env),
        Exec::Path => nix::unistd::execve(child.program, child.argv, &env),
    };
    fail_exec(child.program, e)
}

#[allow(clippy::print_stderr)]
fn report_line(line: &str) {
    eprintln!("{line}");
}

/// Waits for `child`, reaping any other child (orphans re-parented to us) meanwhile,
/// and returns the child's status as ours.
fn wait_for(child: Pid) -> ExitStatus {
    // All the launcher and the init do from here on is wait: the code that started
    // them need not stay resident, once per server.
    crate::resident::release_pages_for_waiting();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_command_line_spawn_builds_is_read_without_clap() {
        let a = args(&[
            "mcp-warden",
            "__launch",
            "--parent",
            "42",
            "--sandbox",
            "{}",
            "--report-only",
            "--",
            "/bin/server",
            "--flag",
            "--",
        ]);
        let launch = parse_fixed(&a).expect("the fixed form");
        assert_eq!(launch.parent, 42);
        assert_eq!(launch.sandbox, Some("{}"));
        assert!(launch.report_only);
        assert_eq!(launch.command, &a[8..]);
        let plain = args(&[
            "mcp-warden",
            "__launch",
            "--parent",
            "7",
            "--",
            "/bin/server",
        ]);
        let launch = parse_fixed(&plain).expect("without a sandbox");
        assert_eq!(
            (launch.parent, launch.sandbox, launch.report_only),
            (7, None, false)
        );
    }

    #[test]
    fn any_other_command_line_is_left_to_clap() {
        for list in [
            &["mcp-warden", "serve"][..],
            &["mcp-warden", "__launch", "--parent=7", "--", "/bin/x"],
            &["mcp-warden", "__launch", "--parent", "x", "--", "/bin/x"],
            &["mcp-warden", "__launch", "--parent", "7", "--"],
            &["mcp-warden", "__launch", "--sandbox", "{}", "--", "/bin/x"],
            &["mcp-warden", "__launch", "--parent", "7", "/bin/x"],
            &["mcp-warden", "__launch", "--parent"],
            &["mcp-warden"],
        ] {
            assert!(parse_fixed(&args(list)).is_none(), "{list:?}");
        }
    }
}
