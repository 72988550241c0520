//! The sandbox, layer by layer, through the real `mcp-warden serve`: the probe server
//! (`examples/probe_server.rs`) tries each thing a layer forbids, and each attempt must
//! fail with the error that layer gives when it is on, and succeed when the
//! configuration allows it. Then the degraded cases (a layer this machine lacks,
//! simulated in debug builds with `MCP_WARDEN_SIMULATE_MISSING`) and real servers
//! (server-filesystem, mcp-server-time) under the default sandbox.
//!
//! A test for a layer this machine cannot apply says so (`skipped: ...`) and returns.
//! The probe is an example: `cargo test` builds it, `cargo test --test sandbox` alone
//! does not (run `cargo build --examples` first). The real servers need
//! `MCP_WARDEN_TEST_PREFIX` (`./install.sh --test-deps`).

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mcp_warden::sandbox::support::{has_tcp_rules, landlock_abi};
use serde_json::{Value, json};
use support::prefix::{node_bin, run_client, step, test_prefix, venv_bin};
use support::{Env, Serve, example, example_table, path_str, processes_with_env, q, text_of};

/// Landlock's answer to a denied access (file or TCP port), and seccomp's here.
const EACCES: i64 = 13;
/// What a ptrace access check may answer instead of `EACCES`.
const EPERM: i64 = 1;
const ENOENT: i64 = 2;
/// A connection attempt in an empty network namespace (no interface, no route).
const ENETUNREACH: i64 = 101;

/// The range `user = "auto"` takes uids and gids from (`sandbox::uid`).
const AUTO_IDS: std::ops::Range<u64> = 1_900_000_000..1_900_100_000;

// ----- helpers -----------------------------------------------------------------------

/// A `[servers.NAME]` table running the probe server, `sandbox_toml` being the body of
/// its `[servers.NAME.sandbox]` table.
fn probe_table(name: &str, sandbox_toml: &str) -> String {
    probe_table_with(name, "", sandbox_toml)
}

/// [`probe_table`] with `server_toml` (`env = {...}`, ...) in the server's own table.
fn probe_table_with(name: &str, server_toml: &str, sandbox_toml: &str) -> String {
    format!(
        "{}{server_toml}\n[servers.{name}.sandbox]\n{sandbox_toml}\n",
        example_table(name, "probe_server", &[])
    )
}

/// `serve` on the test's workspace, with `extra_env` in mcp-warden's own environment;
/// initialized, its tools listed once (so every server has started or failed).
fn start(env: &Env, extra_env: &[(&str, &str)]) -> Serve {
    let mut cmd = env.command(&["serve", "--workspace", &path_str(&env.workspace)]);
    cmd.envs(extra_env.iter().copied());
    let mut serve = Serve::spawn(cmd);
    serve.initialize();
    serve.tool_names(1);
    serve
}

/// Calls a probe tool and returns its JSON answer (`{"ok": ...}`), checking that
/// `isError` agrees with `ok`.
fn call_json(serve: &mut Serve, id: i64, tool: &str, args: Value) -> Value {
    let answer = serve.call_tool(id, tool, args);
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{tool}: no text in {answer}"));
    let value: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{tool}: not JSON ({e}): {text}"));
    let is_error = answer["result"]["isError"].as_bool().unwrap_or(false);
    assert_eq!(
        is_error,
        value["ok"] == false,
        "{tool}: isError disagrees with ok: {answer}"
    );
    value
}

#[track_caller]
fn assert_ok(answer: &Value, what: &str) {
    assert_eq!(answer["ok"], true, "{what} should succeed: {answer}");
}

#[track_caller]
fn assert_errno(answer: &Value, errno: i64, what: &str) {
    assert_eq!(answer["ok"], false, "{what} should fail: {answer}");
    assert_eq!(answer["errno"], errno, "{what}: wrong error: {answer}");
}

/// Whether this kernel has Landlock; says why the test is skipped when not.
fn has_landlock(test: &str) -> bool {
    let found = landlock_abi().is_some();
    if !found {
        eprintln!("skipped: {test}: this kernel has no Landlock");
    }
    found
}

fn is_root(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: {test}: the uid drop is only made when mcp-warden runs as root");
    }
    root
}

/// Whether `MCP_WARDEN_SIMULATE_MISSING` works (debug builds only).
fn can_simulate(test: &str) -> bool {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: {test}: MCP_WARDEN_SIMULATE_MISSING works in debug builds only");
    }
    cfg!(debug_assertions)
}

/// A directory beside the workspace (in the test's directory, outside every allowed
/// path) holding `secret.txt`, readable and writable by any uid: only the sandbox
/// stands between a server and it.
fn outside_dir(env: &Env) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = env.dir.path().canonicalize().unwrap().join("outside");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(dir.join("secret.txt"), "outside the sandbox").unwrap();
    dir
}

/// A `notifications/message` whose text holds every one of `needles`, from what the
/// client has seen or gets within `wait`.
fn log_message(serve: &mut Serve, needles: &[&str], wait: Duration) -> Option<Value> {
    let matches = |msg: &Value| {
        msg["method"] == "notifications/message"
            && msg["params"]["data"]
                .as_str()
                .is_some_and(|text| needles.iter().all(|n| text.contains(n)))
    };
    let deadline = Instant::now() + wait;
    loop {
        if let Some(found) = serve.seen.iter().find(|m| matches(m)) {
            return Some(found.clone());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let line = serve.recv_line_within(left)?;
        serve.seen.push(serde_json::from_str(&line).unwrap());
    }
}

/// The host pid of the probe server whose environment holds `marker` (the server
/// itself, not its launcher, which carries the same environment).
fn host_pid_of_probe(marker: &str) -> u32 {
    let probe = example("probe_server");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = processes_with_env(marker).into_iter().find(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == probe)
        });
        if let Some(pid) = found {
            return pid;
        }
        assert!(Instant::now() < deadline, "no probe server with {marker}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pids whose command line holds `marker`.
fn processes_with_cmdline(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(marker) && support::is_alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// A process's fields from `/proc/PID/stat`, as seen from the host.
struct Stat {
    ppid: u32,
    session: u32,
    tty: u32,
}

impl Stat {
    fn of(pid: u32) -> Self {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // After the parenthesised name: state, ppid, pgrp, session, tty_nr, ...
        let fields: Vec<u32> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .skip(1)
            .take(4)
            .map(|f| f.parse().unwrap())
            .collect();
        Self {
            ppid: fields[0],
            session: fields[2],
            tty: fields[3],
        }
    }
}

/// A marker no other test (or earlier run) uses.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{what}-{}-{nanos}", std::process::id())
}

/// What the test listens on: a TCP port a server may be allowed, another TCP port
/// (open too, so a refusal there is the sandbox's and not the kernel's), a UDP port.
struct Listeners {
    allowed: TcpListener,
    other: TcpListener,
    udp: UdpSocket,
}

impl Listeners {
    fn new() -> Self {
        let tcp = || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            listener
        };
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        Self {
            allowed: tcp(),
            other: tcp(),
            udp,
        }
    }

    fn port(listener: &TcpListener) -> u16 {
        listener.local_addr().unwrap().port()
    }

    fn udp_port(&self) -> u16 {
        self.udp.local_addr().unwrap().port()
    }

    /// What the probe wrote over one accepted connection, if one came.
    fn tcp_received(listener: &TcpListener) -> Option<String> {
        let (mut stream, _) = listener.accept().ok()?;
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text)
    }

    /// The datagram the probe sent, if one arrived within the read timeout.
    fn udp_received(&self) -> Option<String> {
        let mut buf = [0u8; 64];
        let (n, _) = self.udp.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

// ----- 1. file system ----------------------------------------------------------------

#[test]
fn reads_outside_the_allowed_paths_fail_with_eacces_unless_fs_read_allows_them() {
    if !has_landlock("file-system reads") {
        return;
    }
    let env = Env::new();
    let outside = outside_dir(&env);
    let config_toml = env.warden_home.join("config.toml");
    env.user_config(&format!(
        "{}{}",
        probe_table("a", ""),
        probe_table("b", &format!("fs_read = [{}]", q(path_str(&outside)))),
    ));
    std::fs::write(env.workspace.join("inside.txt"), "inside").unwrap();
    let mut serve = start(&env, &[]);
    let secret = path_str(&outside.join("secret.txt"));

    let inside = call_json(
        &mut serve,
        2,
        "a__read_file",
        json!({"path": path_str(&env.workspace.join("inside.txt"))}),
    );
    assert_ok(&inside, "reading in the workspace");
    assert_eq!(inside["content"], "inside");
    for (id, path) in [(3, secret.clone()), (4, path_str(&config_toml))] {
        let read = call_json(&mut serve, id, "a__read_file", json!({ "path": path }));
        assert_errno(&read, EACCES, &format!("reading {path}"));
    }
    for (id, dir) in [(6, "/root"), (7, &*path_str(&env.warden_home))] {
        let listed = call_json(&mut serve, id, "a__list_dir", json!({ "path": dir }));
        assert_errno(&listed, EACCES, &format!("listing {dir}"));
    }

    let allowed = call_json(&mut serve, 8, "b__read_file", json!({ "path": secret }));
    assert_ok(&allowed, "reading a directory in fs_read");
    assert_eq!(allowed["content"], "outside the sandbox");
    let still = call_json(
        &mut serve,
        9,
        "b__read_file",
        json!({"path": path_str(&config_toml)}),
    );
    assert_errno(&still, EACCES, "reading beside fs_read");
}

#[test]
fn writes_go_only_to_the_workspace_by_default_and_to_fs_write_when_configured() {
    if !has_landlock("file-system writes") {
        return;
    }
    let env = Env::new();
    let outside = outside_dir(&env);
    env.user_config(&format!(
        "{}{}",
        probe_table("a", ""),
        probe_table("b", &format!("fs_write = [{}]", q(path_str(&outside)))),
    ));
    let mut serve = start(&env, &[]);
    let write = |serve: &mut Serve, id, tool, path: &Path| {
        call_json(
            serve,
            id,
            tool,
            json!({"path": path_str(path), "content": "written"}),
        )
    };

    let inside = env.workspace.join("from-a.txt");
    assert_ok(
        &write(&mut serve, 2, "a__write_file", &inside),
        "writing in the workspace",
    );
    assert_eq!(std::fs::read_to_string(&inside).unwrap(), "written");
    for (id, path) in [
        (3, outside.join("from-a.txt")),
        (4, outside.join("secret.txt")),
        (5, env.warden_home.join("config.toml")),
        (6, PathBuf::from("/root/from-a.txt")),
    ] {
        assert_errno(
            &write(&mut serve, id, "a__write_file", &path),
            EACCES,
            &format!("writing {}", path.display()),
        );
    }
    assert_eq!(
        std::fs::read_to_string(outside.join("secret.txt")).unwrap(),
        "outside the sandbox"
    );

    let allowed = outside.join("from-b.txt");
    assert_ok(
        &write(&mut serve, 7, "b__write_file", &allowed),
        "writing in fs_write",
    );
    assert_eq!(std::fs::read_to_string(&allowed).unwrap(), "written");
}

// ----- 2. environment ----------------------------------------------------------------

#[test]
fn the_environment_holds_only_the_base_and_the_configured_variables() {
    let env = Env::new();
    env.user_config(&format!(
        "{}{}",
        probe_table_with(
            "a",
            "env = { EXTRA = \"configured\" }\nenv_passthrough = [\"PASSED\"]\n",
            ""
        ),
        probe_table("b", ""),
    ));
    let mut serve = start(
        &env,
        &[("PASSED", "passed"), ("SECRET_TOKEN", "must-not-leak")],
    );
    let a = call_json(&mut serve, 2, "a__env", json!({}));
    let b = call_json(&mut serve, 3, "b__env", json!({}));
    for (name, answer, extra) in [("a", &a, &["EXTRA", "PASSED"][..]), ("b", &b, &[][..])] {
        let vars = answer["env"].as_object().unwrap();
        let mut keys: Vec<&str> = vars.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let allowed = ["HOME", "LANG", "PATH", "PYTHONSAFEPATH", "TERM", "TMPDIR"];
        assert!(
            keys.iter()
                .all(|k| allowed.contains(k) || extra.contains(k)),
            "{name}: unexpected variables in {keys:?}"
        );
        for required in ["HOME", "LANG", "PATH", "PYTHONSAFEPATH", "TMPDIR"]
            .iter()
            .chain(extra)
        {
            assert!(
                keys.contains(required),
                "{name}: {required} missing: {keys:?}"
            );
        }
        let home = vars["HOME"].as_str().unwrap();
        assert_ne!(home, path_str(&env.home), "{name} has mcp-warden's HOME");
        assert_ne!(vars["HOME"], vars["TMPDIR"], "{name}");
    }
    assert_eq!(a["env"]["EXTRA"], "configured");
    assert_eq!(a["env"]["PASSED"], "passed");
    assert!(
        b["env"].get("PASSED").is_none(),
        "passthrough is per server"
    );
    assert_ne!(a["env"]["HOME"], b["env"]["HOME"], "HOME is per server");
    assert_ne!(
        a["env"]["TMPDIR"], b["env"]["TMPDIR"],
        "TMPDIR is per server"
    );
}

// ----- 3. other processes ------------------------------------------------------------

#[test]
fn a_server_cannot_read_another_servers_environ() {
    let root = nix::unistd::geteuid().is_root();
    if !root && landlock_abi().is_none() {
        eprintln!(
            "skipped: reading another server's environ: neither root (uid drop) nor Landlock"
        );
        return;
    }
    let env = Env::new();
    let (marker_a, marker_b) = (unique("probe-a"), unique("probe-b"));
    env.user_config(&format!(
        "{}{}",
        probe_table_with(
            "a",
            &format!("env = {{ PROBE_ID = {} }}\n", q(&marker_a)),
            ""
        ),
        probe_table_with(
            "b",
            &format!("env = {{ PROBE_ID = {} }}\n", q(&marker_b)),
            ""
        ),
    ));
    let mut serve = start(&env, &[]);
    let a_pid = host_pid_of_probe(&marker_a);
    let b_pid = host_pid_of_probe(&marker_b);

    // The file is there to read for one who may: the test itself (root), and b its own.
    let by_test = std::fs::read(format!("/proc/{a_pid}/environ")).unwrap();
    assert!(String::from_utf8_lossy(&by_test).contains(&marker_a));
    // b sees itself by its pid inside its own PID namespace (and its own /proc).
    let b_inner = call_json(&mut serve, 20, "b__whoami", json!({}))["pid"].clone();
    let own = call_json(&mut serve, 2, "b__read_environ", json!({ "pid": b_inner }));
    assert_ok(&own, "b reading its own environ");
    let _ = b_pid;
    assert!(own["environ"].to_string().contains(&marker_b), "{own}");

    let other = call_json(&mut serve, 3, "b__read_environ", json!({ "pid": a_pid }));
    assert_eq!(other["ok"], false, "b read a's environ: {other}");
    // Not there at all in b's own /proc (ENOENT); where /proc is the machine's, the
    // uid drop and Landlock's ptrace scoping refuse it (EACCES, EPERM).
    assert!(
        other["errno"] == ENOENT || other["errno"] == EACCES || other["errno"] == EPERM,
        "expected ENOENT, EACCES or EPERM: {other}"
    );
    assert!(!other.to_string().contains(&marker_a), "{other}");
}

#[test]
fn servers_sharing_a_uid_still_cannot_read_each_others_environ() {
    // Same uid: only Landlock's ptrace restriction (one domain per server) is left.
    if !is_root("two servers as `nobody`") || !has_landlock("Landlock's ptrace restriction") {
        return;
    }
    let env = Env::new();
    let (marker_a, marker_b) = (unique("nobody-a"), unique("nobody-b"));
    env.user_config(&format!(
        "{}{}",
        probe_table_with(
            "a",
            &format!("env = {{ PROBE_ID = {} }}\n", q(&marker_a)),
            "user = \"nobody\"",
        ),
        probe_table_with(
            "b",
            &format!("env = {{ PROBE_ID = {} }}\n", q(&marker_b)),
            "user = \"nobody\"",
        ),
    ));
    let mut serve = start(&env, &[]);
    let a_pid = host_pid_of_probe(&marker_a);
    let b_pid = host_pid_of_probe(&marker_b);
    let a = call_json(&mut serve, 2, "a__whoami", json!({}));
    let b = call_json(&mut serve, 3, "b__whoami", json!({}));
    assert_eq!(a["uid"], 65534, "{a}");
    assert_eq!(a["uid"], b["uid"], "{a} {b}");

    let own = call_json(&mut serve, 4, "b__read_environ", json!({ "pid": b["pid"] }));
    assert_ok(&own, "b reading its own environ");
    let _ = b_pid;
    let other = call_json(&mut serve, 5, "b__read_environ", json!({ "pid": a_pid }));
    // Invisible in b's own /proc; where /proc is the machine's, Landlock's ptrace
    // scoping is what refuses a process of the same uid.
    assert_eq!(other["ok"], false, "b read a's environ: {other}");
    assert!(
        other["errno"] == ENOENT || other["errno"] == EACCES,
        "expected ENOENT or EACCES: {other}"
    );
}

/// A server's PID namespace comes with a /proc of its own (a mount namespace): the
/// machine's processes, other servers and their launchers (whose command line carries
/// the sandbox plan) are not there to read.
#[test]
fn a_server_cannot_read_another_servers_command_line() {
    let env = Env::new();
    let marker_a = unique("cmdline-a");
    env.user_config(&format!(
        "{}{}",
        probe_table_with(
            "a",
            &format!("env = {{ PROBE_ID = {} }}\n", q(&marker_a)),
            ""
        ),
        probe_table("b", ""),
    ));
    let mut serve = start(&env, &[]);
    let a_pid = host_pid_of_probe(&marker_a);
    let launcher = Stat::of(Stat::of(a_pid).ppid).ppid;
    for (id, pid) in [(2, a_pid), (3, launcher), (4, serve.pid())] {
        let path = format!("/proc/{pid}/cmdline");
        let read = call_json(&mut serve, id, "b__read_file", json!({ "path": path }));
        assert_eq!(read["ok"], false, "b read {path}: {read}");
    }
}

// ----- 4. network --------------------------------------------------------------------

#[test]
fn with_network_false_neither_tcp_nor_udp_gets_out() {
    let env = Env::new();
    let net = Listeners::new();
    let marker = unique("probe-offline");
    env.user_config(&probe_table_with(
        "a",
        &format!("env = {{ PROBE_ID = {} }}\n", q(&marker)),
        "network = false",
    ));
    let mut serve = start(&env, &[]);
    let pid = host_pid_of_probe(&marker);
    let net_ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let in_namespace = net_ns(&pid.to_string()) != net_ns("self");

    let tcp = call_json(
        &mut serve,
        2,
        "a__tcp_connect",
        json!({"port": Listeners::port(&net.allowed), "timeout_ms": 500}),
    );
    let udp = call_json(
        &mut serve,
        3,
        "a__udp_send",
        json!({"port": net.udp_port()}),
    );
    let dgram = call_json(
        &mut serve,
        4,
        "a__socket",
        json!({"family": "inet", "type": "dgram"}),
    );
    assert_eq!(Listeners::tcp_received(&net.allowed), None, "TCP got out");
    assert_eq!(net.udp_received(), None, "a datagram got out");
    if in_namespace {
        // An empty namespace: sockets can be made, but there is no route out.
        assert_errno(&tcp, ENETUNREACH, "tcp_connect in an empty namespace");
        assert_errno(&udp, ENETUNREACH, "udp_send in an empty namespace");
        assert_ok(&dgram, "a UDP socket in an empty namespace");
    } else {
        eprintln!("note: no network namespace here; Landlock and seccomp hold the line");
        assert_errno(&tcp, EACCES, "tcp_connect under Landlock's TCP rules");
        assert_errno(&udp, EACCES, "udp_send under seccomp");
        assert_errno(&dgram, EACCES, "a UDP socket under seccomp");
    }
}

#[test]
fn without_a_network_namespace_seccomp_refuses_udp_raw_netlink_and_packet_sockets() {
    let test = "the seccomp network filter";
    if !can_simulate(test) {
        return;
    }
    if !landlock_abi().is_some_and(has_tcp_rules) {
        eprintln!("skipped: {test}: this kernel has no Landlock TCP rules (ABI 4)");
        return;
    }
    let env = Env::new();
    let net = Listeners::new();
    env.user_config(&probe_table_with(
        "a",
        "env = { MCP_WARDEN_SIMULATE_MISSING = \"netns\" }\n",
        "network = false",
    ));
    let mut serve = start(&env, &[]);
    let whoami = call_json(&mut serve, 2, "a__whoami", json!({}));
    assert_eq!(whoami["seccomp"], 2, "no seccomp filter: {whoami}");

    let mut id = 3;
    for (family, kind) in [
        ("inet", "dgram"),
        ("inet6", "dgram"),
        ("inet", "raw"),
        ("netlink", "dgram"),
        ("netlink", "raw"),
        ("packet", "dgram"),
        ("packet", "raw"),
    ] {
        let made = call_json(
            &mut serve,
            id,
            "a__socket",
            json!({"family": family, "type": kind}),
        );
        assert_errno(&made, EACCES, &format!("a {family} {kind} socket"));
        id += 1;
    }
    for (family, kind) in [("unix", "stream"), ("unix", "dgram"), ("inet", "stream")] {
        let made = call_json(
            &mut serve,
            id,
            "a__socket",
            json!({"family": family, "type": kind}),
        );
        assert_ok(&made, &format!("a {family} {kind} socket"));
        id += 1;
    }
    let tcp = call_json(
        &mut serve,
        id,
        "a__tcp_connect",
        json!({"port": Listeners::port(&net.allowed), "timeout_ms": 500}),
    );
    assert_errno(&tcp, EACCES, "tcp_connect under Landlock's TCP rules");
    assert_eq!(Listeners::tcp_received(&net.allowed), None);
    let udp = call_json(
        &mut serve,
        id + 1,
        "a__udp_send",
        json!({"port": net.udp_port()}),
    );
    assert_errno(&udp, EACCES, "udp_send under seccomp");
    assert_eq!(net.udp_received(), None);
    // Landlock and seccomp make a full network layer: nothing is reported missing.
    assert!(
        !serve.stderr().contains("sandbox layers missing"),
        "{}",
        serve.stderr()
    );
}

#[test]
fn network_ports_allow_tcp_to_exactly_those_ports() {
    let test = "network_ports";
    if !landlock_abi().is_some_and(has_tcp_rules) {
        eprintln!("skipped: {test}: this kernel has no Landlock TCP rules (ABI 4)");
        return;
    }
    let env = Env::new();
    let net = Listeners::new();
    let port = Listeners::port(&net.allowed);
    env.user_config(&probe_table(
        "a",
        &format!("network = false\nnetwork_ports = [{port}]"),
    ));
    let mut serve = start(&env, &[]);

    let allowed = call_json(&mut serve, 2, "a__tcp_connect", json!({ "port": port }));
    assert_ok(&allowed, "tcp_connect to an allowed port");
    assert_eq!(
        Listeners::tcp_received(&net.allowed).as_deref(),
        Some("probe\n")
    );
    let other = call_json(
        &mut serve,
        3,
        "a__tcp_connect",
        json!({"port": Listeners::port(&net.other), "timeout_ms": 500}),
    );
    assert_errno(&other, EACCES, "tcp_connect to another (open) port");
    assert_eq!(Listeners::tcp_received(&net.other), None);
    let udp = call_json(
        &mut serve,
        4,
        "a__udp_send",
        json!({"port": net.udp_port()}),
    );
    assert_errno(&udp, EACCES, "udp_send with only TCP ports allowed");
    assert_eq!(net.udp_received(), None);
}

#[test]
fn with_the_default_network_tcp_and_udp_work() {
    let env = Env::new();
    let net = Listeners::new();
    env.user_config(&probe_table("a", ""));
    let mut serve = start(&env, &[]);
    let tcp = call_json(
        &mut serve,
        2,
        "a__tcp_connect",
        json!({"port": Listeners::port(&net.allowed)}),
    );
    assert_ok(&tcp, "tcp_connect with network = true");
    assert_eq!(
        Listeners::tcp_received(&net.allowed).as_deref(),
        Some("probe\n")
    );
    let udp = call_json(
        &mut serve,
        3,
        "a__udp_send",
        json!({"port": net.udp_port()}),
    );
    assert_ok(&udp, "udp_send with network = true");
    assert_eq!(net.udp_received().as_deref(), Some("probe"));
}

// ----- 5. identity -------------------------------------------------------------------

#[test]
fn a_server_runs_as_its_own_uid_without_capabilities_limits_or_inherited_descriptors() {
    let env = Env::new();
    env.user_config(&format!("{}{}", probe_table("a", ""), probe_table("b", "")));
    let mut serve = start(&env, &[]);
    let me = call_json(&mut serve, 2, "a__whoami", json!({}));
    assert_ok(&me, "whoami");

    // Every layer but the uid drop holds whoever runs mcp-warden.
    assert_eq!(me["no_new_privs"], 1, "{me}");
    assert_eq!(me["rlimit_core"], json!([0, 0]), "{me}");
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    let files = hard.min(8192);
    assert_eq!(me["rlimit_nofile"], json!([files, files]), "{me}");
    assert_eq!(me["fds"], json!([0, 1, 2]), "inherited descriptors: {me}");
    // It starts in its private HOME, not the workspace (issue 14 item 2).
    let own = call_json(&mut serve, 9, "a__env", json!({}));
    assert_eq!(me["cwd"], own["env"]["HOME"], "{me}");
    // network = true: no seccomp filter is needed.
    assert_eq!(me["seccomp"], 0, "{me}");

    if !is_root("uid, gid, groups and capabilities") {
        return;
    }
    let uid = me["uid"].as_u64().unwrap();
    let gid = me["gid"].as_u64().unwrap();
    assert!(AUTO_IDS.contains(&uid), "uid {uid} outside the auto range");
    assert!(AUTO_IDS.contains(&gid), "gid {gid} outside the auto range");
    assert_eq!(
        uid,
        u64::from(mcp_warden::sandbox::uid::auto_ids("a").uid),
        "the documented uid of `a`"
    );
    assert_eq!(me["euid"], me["uid"], "{me}");
    assert_eq!(me["egid"], me["gid"], "{me}");
    assert_eq!(me["groups"], json!([]), "supplementary groups kept: {me}");
    assert_eq!(me["cap_eff"], "0000000000000000", "capabilities kept: {me}");
    let other = call_json(&mut serve, 3, "b__whoami", json!({}));
    assert_ne!(other["uid"], me["uid"], "two servers share a uid");
}

#[test]
fn a_server_is_in_its_launchers_session_without_a_terminal() {
    let env = Env::new();
    let marker = unique("probe-session");
    env.user_config(&probe_table_with(
        "a",
        &format!("env = {{ PROBE_ID = {} }}\n", q(&marker)),
        "",
    ));
    let serve = start(&env, &[]);
    let server = Stat::of(host_pid_of_probe(&marker));
    assert_ne!(
        server.session,
        Stat::of(serve.pid()).session,
        "the server is in mcp-warden's session"
    );
    assert_eq!(server.tty, 0, "the server has a controlling terminal");
    // The session's leader is the server's launcher, a child of mcp-warden (from inside
    // the server's PID namespace it lies outside: `getsid` reads 0 there).
    let leader = Stat::of(server.session);
    assert_eq!(leader.session, server.session);
    assert_eq!(
        leader.ppid,
        serve.pid(),
        "the leader is not mcp-warden's child"
    );
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.session)).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains(mcp_warden::sandbox::launcher::SUBCOMMAND),
        "the session leader is not the launcher"
    );
}

// ----- 6. processes ------------------------------------------------------------------

#[test]
fn a_grandchild_that_left_the_session_does_not_outlive_serve() {
    let env = Env::new();
    env.user_config(&probe_table("a", ""));
    let mut serve = start(&env, &[]);
    let marker = unique("sleeper");
    let spawned = call_json(
        &mut serve,
        2,
        "a__spawn_grandchild",
        json!({ "marker": marker }),
    );
    assert_ok(&spawned, "spawn_grandchild");
    let deadline = Instant::now() + Duration::from_secs(2);
    while processes_with_cmdline(&marker).is_empty() {
        assert!(Instant::now() < deadline, "the grandchild never ran");
        std::thread::sleep(Duration::from_millis(20));
    }

    let (status, stderr) = serve.close();
    assert!(status.success(), "{stderr}");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let sleepers = processes_with_cmdline(&marker);
        let servers = processes_with_env(&path_str(env.dir.path()));
        if sleepers.is_empty() && servers.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: grandchild {sleepers:?}, server processes {servers:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ----- 7. degrading ------------------------------------------------------------------

#[test]
fn a_server_missing_landlock_still_starts_and_the_missing_layer_is_said() {
    if !can_simulate("a missing Landlock") {
        return;
    }
    let env = Env::new();
    env.user_config(&probe_table_with(
        "a",
        "env = { MCP_WARDEN_SIMULATE_MISSING = \"landlock\" }\n",
        "",
    ));
    let mut serve = start(&env, &[]);
    let me = call_json(&mut serve, 2, "a__whoami", json!({}));
    assert_ok(&me, "whoami without Landlock");
    // Honestly missing: what Landlock would have refused goes through.
    let config = call_json(
        &mut serve,
        3,
        "a__read_file",
        json!({"path": path_str(&env.warden_home.join("config.toml"))}),
    );
    assert_ok(&config, "reading outside without Landlock");

    let warning = log_message(
        &mut serve,
        &["server `a`", "sandbox layers missing", "filesystem"],
        Duration::from_secs(5),
    );
    assert!(
        warning.is_some(),
        "the client was not told: {:?}",
        serve.seen
    );
    assert_eq!(warning.unwrap()["params"]["level"], "warning");
    let stderr = serve.stderr();
    assert!(
        stderr.contains("server `a`: sandbox layers missing: filesystem"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("sandbox layers missing").count(),
        1,
        "said more than once: {stderr}"
    );
    serve.close();
    let log = env.log();
    assert!(
        log.lines()
            .any(|l| l.contains("sandbox layers missing: filesystem") && l.contains("server=a")),
        "not in the log:\n{log}"
    );
}

#[test]
fn required_refuses_a_server_missing_a_layer_for_good_and_the_others_still_serve() {
    if !can_simulate("required = true") {
        return;
    }
    let env = Env::new();
    env.user_config(&format!(
        "{}{}",
        probe_table_with(
            "a",
            "env = { MCP_WARDEN_SIMULATE_MISSING = \"landlock\" }\n",
            "required = true",
        ),
        probe_table("b", ""),
    ));
    let mut serve = start(&env, &[]);
    let names = serve.tool_names(2);
    assert!(names.iter().any(|n| n == "b__whoami"), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("a__")),
        "a refused server serves tools: {names:?}"
    );
    let told = log_message(
        &mut serve,
        &["server `a` not started", "`required = true`", "filesystem"],
        Duration::from_secs(5),
    );
    assert!(told.is_some(), "the client was not told: {:?}", serve.seen);
    assert_ok(&call_json(&mut serve, 3, "b__whoami", json!({})), "b");

    // Not restarted: restarts begin after 250 ms, and each would be refused (and said)
    // again.
    std::thread::sleep(Duration::from_secs(2));
    let names = serve.tool_names(4);
    assert!(!names.iter().any(|n| n.starts_with("a__")), "{names:?}");
    let stderr = serve.stderr();
    let refusal =
        "server `a` not started: `required = true` and this machine cannot apply: filesystem";
    assert_eq!(
        stderr.matches(refusal).count(),
        1,
        "refused other than once: {stderr}"
    );
    serve.close();
    let log = env.log();
    assert_eq!(
        log.matches("sandbox refused").count(),
        1,
        "refused other than once in the log:\n{log}"
    );
}

// ----- 8. real servers ---------------------------------------------------------------

#[test]
fn server_filesystem_works_in_the_workspace_and_landlock_stops_it_outside() {
    let Some(prefix) = test_prefix() else { return };
    if !has_landlock("server-filesystem outside its sandbox") {
        return;
    }
    let env = Env::new();
    let outside = outside_dir(&env);
    // The server is told both directories are allowed; its sandbox allows only the
    // workspace.
    env.user_config(&format!(
        "[servers.fs]\ncommand = {}\nargs = [{}, {}]\n",
        q(path_str(&node_bin(&prefix, "mcp-server-filesystem"))),
        q(path_str(&env.workspace)),
        q(path_str(&outside)),
    ));
    std::fs::write(env.workspace.join("hello.txt"), "hello").unwrap();
    let mut serve = start(&env, &[]);
    let ws = path_str(&env.workspace);

    let listed = serve.call_tool(2, "fs__list_directory", json!({ "path": ws }));
    assert!(text_of(&listed).contains("hello.txt"), "{listed}");
    let written = serve.call_tool(
        3,
        "fs__write_file",
        json!({"path": format!("{ws}/new.txt"), "content": "from the server"}),
    );
    assert_ne!(written["result"]["isError"], true, "{written}");
    let read = serve.call_tool(
        4,
        "fs__read_text_file",
        json!({"path": format!("{ws}/new.txt")}),
    );
    assert_eq!(text_of(&read), "from the server", "{read}");

    let allowed = serve.call_tool(5, "fs__list_allowed_directories", json!({}));
    assert!(
        text_of(&allowed).contains(&path_str(&outside)),
        "the server's own check should let it try: {allowed}"
    );
    let secret = serve.call_tool(
        6,
        "fs__read_text_file",
        json!({"path": path_str(&outside.join("secret.txt"))}),
    );
    assert_eq!(secret["result"]["isError"], true, "{secret}");
    let text = text_of(&secret);
    assert!(text.contains("EACCES"), "not Landlock's refusal: {secret}");
    assert!(!text.contains("outside the sandbox"), "{secret}");
}

#[test]
fn mcp_server_time_answers_through_the_python_sdk_under_the_default_sandbox() {
    let Some(prefix) = test_prefix() else { return };
    let env = Env::new();
    env.user_config(&format!(
        "[servers.time]\ncommand = {}\n",
        q(path_str(&venv_bin(&prefix, "mcp-server-time"))),
    ));
    let script = json!([{
        "op": "call_tool",
        "label": "now",
        "name": "time__get_current_time",
        "arguments": {"timezone": "UTC"},
    }]);
    let out = run_client(&env, &prefix, &script, &[]);
    let now = step(&out, "now");
    assert_ne!(now["result"]["isError"], true, "{now}");
    let text = now["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains("\"timezone\": \"UTC\"") || text.contains("\"timezone\":\"UTC\""),
        "{now}"
    );
    if landlock_abi().is_some() {
        let log = env.log();
        assert!(!log.contains("sandbox layers missing"), "{log}");
    }
}

#[test]
fn npx_runs_a_server_offline_under_the_sandbox_with_memory_and_cpu_limits() {
    let Some(prefix) = test_prefix() else { return };
    let npx = std::path::Path::new("/usr/bin/npx");
    if !npx.exists() {
        eprintln!("skipped: npx under the sandbox: no /usr/bin/npx");
        return;
    }
    let env = Env::new();
    std::fs::write(env.workspace.join("hello.txt"), "hello").unwrap();
    // `npx --no-install` finds the installed package from its directory: npm's own
    // code, the node preset and the package tree, with no network at all.
    env.user_config(&format!(
        "[servers.fs]\ncommand = \"npx\"\nargs = [\"--no-install\", \"mcp-server-filesystem\", {}]\n\
         cwd = {}\nenv = {{ npm_config_update_notifier = \"false\" }}\n\
         [servers.fs.sandbox]\nnetwork = false\nmemory = \"2G\"\ncpu_time = \"10m\"\n",
        q(path_str(&env.workspace)),
        q(path_str(&prefix.join("node"))),
    ));
    let mut serve = start(&env, &[]);
    let read = serve.call_tool(
        2,
        "fs__read_text_file",
        json!({"path": path_str(&env.workspace.join("hello.txt"))}),
    );
    assert_eq!(text_of(&read), "hello", "{read}\n{}", env.log());
}

#[test]
fn memory_and_cpu_limits_reach_the_server() {
    let env = Env::new();
    env.user_config(&probe_table("a", "memory = \"1G\"\ncpu_time = \"1h\""));
    let mut serve = start(&env, &[]);
    let limits = call_json(
        &mut serve,
        2,
        "a__read_file",
        json!({"path": "/proc/self/limits"}),
    );
    assert_ok(&limits, "reading its own limits");
    let text = limits["content"].as_str().unwrap();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no `{name}` in {text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        line("Max data size").contains("1073741824 1073741824"),
        "{text}"
    );
    assert!(line("Max cpu time").contains("3600 3605"), "{text}");
    assert!(line("Max core file size").contains("0 0"), "{text}");
}

#[test]
fn uvx_runs_a_server_offline_under_the_sandbox() {
    let Some(prefix) = test_prefix() else { return };
    let (uvx, wheels) = (venv_bin(&prefix, "uvx"), prefix.join("wheels"));
    if !uvx.exists() || !wheels.is_dir() {
        eprintln!(
            "skipped: uvx under the sandbox: the test prefix has no uvx or wheels (re-run ./install.sh --test-deps)"
        );
        return;
    }
    let env = Env::new();
    // uvx builds the tool's environment in the server's private HOME from the pinned
    // wheels: the python preset, its own cache, no network at all.
    env.user_config(&format!(
        "[servers.time]\ncommand = {}\nargs = [\"--offline\", \"--no-index\", \"--find-links\", {}, \
         \"--python\", \"/usr/bin/python3\", \"mcp-server-time==2026.10.19\"]\n\
         [servers.time.sandbox]\nnetwork = false\nfs_read = [{}]\n",
        q(path_str(&uvx)),
        q(path_str(&wheels)),
        q(path_str(&wheels)),
    ));
    let mut serve = start(&env, &[]);
    let now = serve.call_tool(2, "time__get_current_time", json!({"timezone": "UTC"}));
    assert!(
        text_of(&now).contains("\"timezone\": \"UTC\""),
        "{now}\n{}",
        env.log()
    );
}
