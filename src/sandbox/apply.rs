//! Applying a [`Plan`] in the launcher's server child, between `fork` and `exec`, in
//! the order that works (FIELD-NOTES "Sandboxing"):
//!
//! descriptors closed → Landlock rules gathered (while every path can still be
//! opened) → groups, gid, uid dropped and root proven gone → parent-death signal
//! (the uid change cleared it) → private HOME and TMPDIR → limits → `no_new_privs` →
//! not dumpable → Landlock enforced → seccomp last.
//!
//! Every step is recorded in a [`Report`]. A step that fails leaves its layer
//! `Missing` and the rest still apply, except the uid drop: a server planned to run as
//! another user never runs as root.

use std::ffi::CStr;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope,
};
use nix::sys::prctl;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid, getresgid, getresuid, setgroups, setresgid, setresuid, setuid};

use super::plan::Plan;
use super::report::{Layer, Report, State};
use super::support;

/// How the launcher set up the namespaces the server runs in. (Each flag is a fact of
/// its own the report states; `proc` can only hold with `mnt`, which must be known
/// before `/proc` is mounted over.)
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespaces {
    /// A PID namespace (else the launcher is a subreaper).
    pub pid: bool,
    /// A mount namespace.
    pub mnt: bool,
    /// A `/proc` of its own mounted in it (showing only its PID namespace).
    pub proc: bool,
    /// An empty network namespace.
    pub net: bool,
    /// Why a wanted network namespace could not be had.
    pub net_error: Option<nix::Error>,
}

/// What to exec once the layers are on: the program's open file when it is a native
/// executable (so a uid that cannot enter its directory can still run it), else its path.
#[derive(Debug)]
pub enum Exec {
    File(OwnedFd),
    Path,
}

/// Applies `plan` to the calling process (single-threaded, about to exec `program`).
#[must_use]
pub fn enter(plan: &Plan, ns: Namespaces, program: &CStr) -> (Report, Exec) {
    let mut report = Report::default();
    report.push(
        Layer::Environment,
        State::Applied,
        format!(
            "only the configured variables; HOME={} TMPDIR={}",
            plan.home.display(),
            plan.tmp.display()
        ),
    );
    report.push(
        Layer::Session,
        State::Applied,
        "a session of its own, no terminal",
    );
    report.push(
        Layer::Processes,
        State::Applied,
        match (ns.pid, ns.proc) {
            (true, true) => "a PID namespace and a /proc of its own",
            (true, false) => {
                "a PID namespace of its own; /proc still shows the machine's processes"
            }
            (false, _) => "the launcher reaps and kills every descendant (subreaper)",
        },
    );
    let closed = close_inherited_descriptors();
    report.push(
        Layer::Descriptors,
        State::Applied,
        format!("{closed} inherited beyond stdin, stdout, stderr closed"),
    );

    let exec = open_native(program);
    let abi = if support::simulated_missing("landlock") {
        None
    } else {
        support::landlock_abi()
    };
    let landlock_net = !plan.network && !ns.net;
    let ruleset = abi.map(|abi| gather(plan, abi, landlock_net));

    if let Err(why) = drop_user(plan) {
        report.push(Layer::User, State::Missing, why.clone());
        report.refused = Some(format!("the uid drop did not hold: {why}"));
        return (report, exec);
    }
    report.push(
        Layer::User,
        if plan.ids.is_some() {
            State::Applied
        } else {
            State::Off
        },
        plan.user_note.clone(),
    );
    let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    for dir in [&plan.home, &plan.tmp] {
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
    }
    // Without a configured `cwd` the server starts in its private HOME, never in the
    // directory mcp-warden was started from (the workspace): a repository's code must
    // not be resolved from there. Made only now, after the drop, so chdir here.
    if plan.cwd.is_none()
        && let Err(e) = std::env::set_current_dir(&plan.home)
    {
        report.refused = Some(format!(
            "cannot enter its private directory `{}`: {e}",
            plan.home.display()
        ));
        return (report, exec);
    }

    match set_limits(plan) {
        Ok(detail) => report.push(Layer::Limits, State::Applied, detail),
        Err(e) => report.push(Layer::Limits, State::Missing, e),
    }
    match prctl::set_no_new_privs() {
        Ok(()) => report.push(Layer::NoNewPrivs, State::Applied, "set"),
        Err(e) => report.push(Layer::NoNewPrivs, State::Missing, e.desc()),
    }
    match prctl::set_dumpable(false) {
        Ok(()) => report.push(
            Layer::NotDumpable,
            State::Applied,
            "launcher, init and server child; the kernel makes the server dumpable again at exec, \
             where its uid and Landlock's ptrace scoping keep other servers out",
        ),
        Err(e) => report.push(Layer::NotDumpable, State::Missing, e.desc()),
    }

    let landlock = enforce(ruleset, abi, plan);
    report.push(Layer::Filesystem, landlock.fs.0, landlock.fs.1);
    report.push(Layer::Scope, landlock.scope.0, landlock.scope.1);

    let (state, detail) = network_layer(plan, ns, landlock.tcp);
    report.push(Layer::Network, state, detail);

    if plan.required && report.missing().next().is_some() {
        let missing: Vec<&str> = report.missing().map(|l| l.layer.name()).collect();
        report.refused = Some(format!(
            "`required = true` and this machine cannot apply: {}",
            missing.join(", ")
        ));
    }
    (report, exec)
}

/// The network layer: off, an empty namespace, or Landlock's TCP rules with seccomp.
fn network_layer(plan: &Plan, ns: Namespaces, landlock_tcp: bool) -> (State, String) {
    if plan.network {
        (State::Off, "network = true".to_owned())
    } else if ns.net {
        (
            State::Applied,
            "an empty network namespace (no interface up)".to_owned(),
        )
    } else {
        let seccomp = super::seccomp::network_filter()
            .and_then(|bpf| seccompiler::apply_filter(&bpf).map_err(|e| e.to_string()));
        let why_no_ns = ns.net_error.map_or_else(String::new, |e| {
            format!("no network namespace ({}); ", e.desc())
        });
        match (landlock_tcp, seccomp) {
            (true, Ok(())) => (
                State::Applied,
                format!(
                    "{why_no_ns}Landlock TCP rules (connect only to {}) and seccomp (no UDP, raw, \
                     netlink or packet sockets, no io_uring)",
                    ports(&plan.network_ports)
                ),
            ),
            (tcp, seccomp) => (
                State::Missing,
                format!(
                    "{why_no_ns}Landlock TCP rules {}; seccomp {}",
                    if tcp {
                        "applied"
                    } else {
                        "unavailable (needs Landlock ABI 4)"
                    },
                    seccomp.map_or_else(|e| format!("failed: {e}"), |()| "applied".to_owned())
                ),
            ),
        }
    }
}

fn ports(ports: &[u16]) -> String {
    if ports.is_empty() {
        "no port".to_owned()
    } else {
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        format!("port {}", list.join(", "))
    }
}

/// Closes every descriptor above stderr; returns how many there were.
fn close_inherited_descriptors() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let fds: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    // The directory's own descriptor is in the list but already closed: EBADF.
    fds.into_iter()
        .filter(|&fd| nix::unistd::close(fd).is_ok())
        .count()
}

/// The program's file, open, when it is an ELF executable. Scripts are run by path:
/// their interpreter must open them again by name.
fn open_native(program: &CStr) -> Exec {
    let Ok(path) = program.to_str() else {
        return Exec::Path;
    };
    let Ok(mut file) = File::open(path) else {
        return Exec::Path;
    };
    if is_elf(&mut file) {
        Exec::File(OwnedFd::from(file))
    } else {
        Exec::Path
    }
}

/// Whether `file` starts with the ELF magic: a native executable, which the launcher
/// runs from an open descriptor (so a uid that cannot enter its directory still can).
pub fn is_elf(file: &mut impl Read) -> bool {
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic).is_ok() && magic == *b"\x7fELF"
}

/// The rules, opened now, while the paths can still be reached.
struct Gathered {
    ruleset: Result<RulesetCreated, String>,
    skipped: usize,
    tcp: bool,
    scope: bool,
}

fn gather(plan: &Plan, abi: ABI, landlock_net: bool) -> Gathered {
    let tcp = landlock_net && support::has_tcp_rules(abi);
    let scope = support::has_scope(abi);
    let mut skipped = 0;
    let mut build = || -> Result<RulesetCreated, landlock::RulesetError> {
        let mut ruleset = Ruleset::default().handle_access(AccessFs::from_all(abi))?;
        if tcp {
            ruleset = ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?;
        }
        if scope {
            ruleset = ruleset.scope(Scope::from_all(abi))?;
        }
        let mut created = ruleset.create()?;
        for (paths, access) in [
            (&plan.read, AccessFs::from_read(abi)),
            (&plan.write, AccessFs::from_all(abi)),
        ] {
            for path in paths {
                let Some((fd, access)) = open_for_rule(path, access, abi) else {
                    skipped += 1;
                    continue;
                };
                created = created.add_rule(PathBeneath::new(fd, access))?;
            }
        }
        if tcp {
            for &port in &plan.network_ports {
                created = created.add_rule(NetPort::new(port, AccessNet::ConnectTcp))?;
            }
        }
        Ok(created)
    };
    let ruleset = build().map_err(|e| e.to_string());
    Gathered {
        ruleset,
        skipped,
        tcp,
        scope,
    }
}

/// Opens `path` for a rule; a file gets only the rights a file can have.
fn open_for_rule(
    path: &Path,
    access: BitFlags<AccessFs>,
    abi: ABI,
) -> Option<(PathFd, BitFlags<AccessFs>)> {
    let meta = std::fs::metadata(path).ok()?;
    let fd = PathFd::new(path).ok()?;
    let access = if meta.is_dir() {
        access
    } else {
        access & AccessFs::from_file(abi)
    };
    Some((fd, access))
}

struct Enforced {
    fs: (State, String),
    scope: (State, String),
    tcp: bool,
}

fn enforce(gathered: Option<Gathered>, abi: Option<ABI>, plan: &Plan) -> Enforced {
    let (Some(gathered), Some(abi)) = (gathered, abi) else {
        return Enforced {
            fs: (
                State::Missing,
                "Landlock is not available in this kernel".to_owned(),
            ),
            scope: (State::Missing, "needs Landlock ABI 6".to_owned()),
            tcp: false,
        };
    };
    let n = support::abi_number(abi);
    let failed = |why: String| Enforced {
        fs: (State::Missing, why.clone()),
        scope: (State::Missing, why),
        tcp: false,
    };
    let ruleset = match gathered.ruleset {
        Ok(r) => r,
        Err(e) => return failed(format!("Landlock rules could not be made: {e}")),
    };
    match ruleset.restrict_self() {
        Ok(status) if status.ruleset == RulesetStatus::FullyEnforced => Enforced {
            fs: (
                State::Applied,
                format!(
                    "Landlock ABI {n}: read {} paths, write {} ({} absent, skipped)",
                    plan.read.len(),
                    plan.write.len(),
                    gathered.skipped
                ),
            ),
            scope: if gathered.scope {
                (
                    State::Applied,
                    "no signals to and no abstract sockets of processes outside".to_owned(),
                )
            } else {
                (
                    State::Missing,
                    format!("needs Landlock ABI 6 (kernel has {n})"),
                )
            },
            tcp: gathered.tcp,
        },
        Ok(status) => failed(format!("Landlock ABI {n}: {:?}", status.ruleset)),
        Err(e) => failed(format!("Landlock could not be enforced: {e}")),
    }
}

/// Drops groups, gid and uid to the plan's, then proves root cannot come back.
fn drop_user(plan: &Plan) -> Result<(), String> {
    let Some(ids) = plan.ids else {
        return Ok(());
    };
    let (uid, gid) = (Uid::from_raw(ids.uid), Gid::from_raw(ids.gid));
    setgroups(&[]).map_err(|e| format!("setgroups: {}", e.desc()))?;
    setresgid(gid, gid, gid).map_err(|e| format!("setresgid: {}", e.desc()))?;
    setresuid(uid, uid, uid).map_err(|e| format!("setresuid: {}", e.desc()))?;
    if setuid(Uid::from_raw(0)).is_ok() {
        return Err("setuid(0) succeeded after the drop".to_owned());
    }
    let held = getresuid().is_ok_and(|r| r.real == uid && r.effective == uid && r.saved == uid)
        && getresgid().is_ok_and(|r| r.real == gid && r.effective == gid && r.saved == gid);
    if !held {
        return Err("the ids read back differ".to_owned());
    }
    Ok(())
}

/// Open files, no core dumps, and the configured memory and CPU limits. Not
/// `RLIMIT_AS` (Node.js reserves far more address space than it uses) nor
/// `RLIMIT_NPROC` (it counts every process of the uid, not the server's).
fn set_limits(plan: &Plan) -> Result<String, String> {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| e.desc().to_owned())?;
    let files = plan.open_files.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, files, files)
        .map_err(|e| format!("open files: {}", e.desc()))?;
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(|e| format!("core: {}", e.desc()))?;
    let mut detail = format!("{files} open files, no core dumps");
    if let Some(bytes) = plan.memory {
        setrlimit(Resource::RLIMIT_DATA, bytes, bytes)
            .map_err(|e| format!("memory: {}", e.desc()))?;
        let _ = write!(detail, ", data {} MiB", bytes >> 20);
    }
    if let Some(seconds) = plan.cpu_seconds {
        // SIGXCPU at the soft limit, SIGKILL a little after.
        setrlimit(Resource::RLIMIT_CPU, seconds, seconds.saturating_add(5))
            .map_err(|e| format!("cpu: {}", e.desc()))?;
        let _ = write!(detail, ", {seconds} s of CPU");
    }
    Ok(detail)
}
