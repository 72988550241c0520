//! The benchmark: a client talking to an upstream MCP server directly and through
//! `mcp-warden serve`, side by side in one run. Not a test: it prints figures.
//!
//! ```sh
//! cargo run --release --example bench              # full run (~25 s after the build)
//! cargo run --release --example bench -- --quick   # a short smoke run
//! ```
//!
//! It first runs `cargo build --release --bin mcp-warden --example bench_server` (skip
//! with `--no-build`), then pins itself to CPU 0 (`sched_setaffinity`), which every
//! thread and process it starts inherits: all of them share one CPU (a pipe wake-up
//! across vCPUs costs ~20 µs here and makes unpinned figures bimodal; see
//! docs/benchmark.md).
//!
//! Each round runs, in this order (A B A B … across rounds):
//! 1. direct: `bench_server`; sequential `tools/call` latency, then throughput with
//!    `--in-flight` requests pipelined;
//! 2. proxy, 1 upstream: the same through `mcp-warden serve`, then its `VmHWM`;
//! 3. proxy, 5 upstreams: throughput spread over all five, then its `VmHWM`;
//! 4. start-up, direct: time to the `initialize` answer of one `bench_server
//!    --startup-ms 500`;
//! 5. start-up, proxy: the same through mcp-warden with five upstreams of 100..500 ms.
//!
//! Figures are medians across rounds. Options: `--calls N` (latency calls per run),
//! `--throughput-calls N`, `--warmup N`, `--in-flight N`, `--rounds N`, `--quick`,
//! `--no-build`, `--no-pin`, `--socketpair` (the client's ends of the children's stdio
//! are Unix socketpairs, as Node and Electron clients set them up, instead of pipes),
//! `--warden PATH` (another mcp-warden binary).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail, ensure};
use nix::sched::{CpuSet, sched_setaffinity};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The 64-byte message every call carries (and gets back).
const PAYLOAD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// Start-up times of the five upstreams in the start-up test, in ms.
const STARTUP_MS: [u64; 5] = [100, 200, 300, 400, 500];
/// Longest one phase (one process's session) may take before the watchdog kills it.
const PHASE_DEADLINE: Duration = Duration::from_secs(120);
/// How long a process may take to exit after its stdin is closed.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

// Targets.
const TARGET_ADDED_P50_US: f64 = 25.0;
const TARGET_ADDED_P99_US: f64 = 100.0;
const TARGET_CALLS_PER_S: f64 = 50_000.0;
const TARGET_RSS_MIB: f64 = 15.0;
/// "≈ the slowest upstream": at most this much over it.
const TARGET_STARTUP_SLACK_MS: f64 = 50.0;
// Issue 12's targets: ratios to the direct pipe in the same run, which carry across
// machines of the same kind better than absolute figures, and serve's PSS.
const TARGET_P50_RATIO: f64 = 3.0;
const TARGET_P99_RATIO: f64 = 4.0;
const TARGET_TPUT_SHARE: f64 = 0.12;
const TARGET_PSS_MIB: f64 = 10.0;

struct Options {
    calls: usize,
    throughput_calls: usize,
    warmup: usize,
    in_flight: usize,
    rounds: usize,
    build: bool,
    pin: bool,
    warden: Option<PathBuf>,
    transport: Transport,
}

/// What the client's end of the child's stdin and stdout is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// Pipes (`std::process`, Python's `subprocess`, most SDKs' stdio clients).
    Pipe,
    /// A Unix socketpair per stream, as libuv (Node, Electron) sets up a child's stdio.
    Socket,
}

fn usage() -> &'static str {
    "usage: cargo run --release --example bench -- [--calls N] [--throughput-calls N] \
     [--warmup N] [--in-flight N] [--rounds N] [--quick] [--no-build] [--no-pin] [--socketpair] [--warden PATH]"
}

fn parse_args() -> anyhow::Result<Options> {
    let mut opts = Options {
        calls: 20_000,
        throughput_calls: 100_000,
        warmup: 2_000,
        in_flight: 64,
        rounds: 5,
        build: true,
        pin: true,
        warden: None,
        transport: Transport::Pipe,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> anyhow::Result<usize> {
            let value = args.next().ok_or_else(|| anyhow!("{name} needs a value"))?;
            let n: usize = value.parse().map_err(|e| anyhow!("{name} {value}: {e}"))?;
            ensure!(n > 0, "{name} must be at least 1");
            Ok(n)
        };
        match arg.as_str() {
            "--calls" => opts.calls = number("--calls")?,
            "--throughput-calls" => opts.throughput_calls = number("--throughput-calls")?,
            "--warmup" => opts.warmup = number("--warmup")?,
            "--in-flight" => opts.in_flight = number("--in-flight")?,
            "--rounds" => opts.rounds = number("--rounds")?,
            "--quick" => {
                opts.calls = 2_000;
                opts.throughput_calls = 10_000;
                opts.warmup = 500;
                opts.rounds = 2;
            }
            "--no-build" => opts.build = false,
            "--no-pin" => opts.pin = false,
            "--socketpair" => opts.transport = Transport::Socket,
            "--warden" => {
                opts.warden = Some(PathBuf::from(
                    args.next()
                        .ok_or_else(|| anyhow!("--warden needs a path"))?,
                ));
            }
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => bail!("unknown option `{other}`\n{}", usage()),
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn run(opts: &Options) -> anyhow::Result<()> {
    // The build runs on every CPU; the pin comes after it.
    if opts.build {
        build()?;
    }
    if opts.pin {
        // Everything after this point runs on CPU 0, and so does every thread and
        // process started from here on.
        let mut cpus = CpuSet::new();
        cpus.set(0)?;
        sched_setaffinity(Pid::from_raw(0), &cpus).context("cannot pin to CPU 0")?;
    }
    let bins = Binaries::locate(opts)?;
    let world = World::new(&bins)?;
    start_watchdog();

    let machine = machine();
    println!(
        "mcp-warden benchmark: {} rounds; {} latency calls, {} throughput calls ({} in flight) per run; {}-byte payloads",
        opts.rounds,
        opts.calls,
        opts.throughput_calls,
        opts.in_flight,
        PAYLOAD.len()
    );
    println!(
        "machine: {} CPUs, {}; processes {}",
        machine.cpus,
        machine.model,
        if opts.pin {
            format!("pinned to CPU {}", cpus_allowed())
        } else {
            "NOT pinned".to_owned()
        }
    );
    println!("mcp-warden: {}", bins.warden.display());
    println!(
        "client <-> child stdio: {}",
        match opts.transport {
            Transport::Pipe => "pipes",
            Transport::Socket => "Unix socketpairs (as Node/Electron clients)",
        }
    );
    report_other_load("before the run");
    if cfg!(debug_assertions) {
        println!("warning: this harness is a debug build; run it with --release");
    }
    println!();

    let mut figures = Figures::default();
    for round in 1..=opts.rounds {
        let r = run_round(opts, &bins, &world).with_context(|| format!("round {round}"))?;
        println!(
            "round {round}: p50 {:.1}/{:.1} µs, p99 {:.1}/{:.1} µs, {:.0}/{:.0}/{:.0} calls/s, RSS {:.1}/{:.1} MiB, PSS {:.1}/{:.1} MiB, start-up {:.0}/{:.0} ms  (direct/proxy[/proxy x5])",
            r.direct_p50,
            r.proxy_p50,
            r.direct_p99,
            r.proxy_p99,
            r.direct_tput,
            r.proxy_tput,
            r.spread_tput,
            r.rss1,
            r.rss5,
            r.pss1,
            r.pss5,
            r.startup_direct,
            r.startup_proxy
        );
        figures.push(&r);
    }
    println!();
    figures.report();
    report_other_load("after the run");
    Ok(())
}

// ----- building and finding the binaries ------------------------------------------

fn build() -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("bench: cargo build --release --bin mcp-warden --example bench_server");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--bin",
            "mcp-warden",
            "--example",
            "bench_server",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .context("cannot run cargo")?;
    ensure!(status.success(), "cargo build failed ({status})");
    Ok(())
}

struct Binaries {
    warden: PathBuf,
    server: PathBuf,
}

impl Binaries {
    fn locate(opts: &Options) -> anyhow::Result<Self> {
        // This file runs as <target>/<profile>/examples/bench; the others are release builds.
        let exe = std::env::current_exe()?;
        let target = exe
            .ancestors()
            .nth(3)
            .ok_or_else(|| anyhow!("unexpected location {}", exe.display()))?;
        let release = target.join("release");
        let warden = opts
            .warden
            .clone()
            .unwrap_or_else(|| release.join("mcp-warden"));
        let server = release.join("examples").join("bench_server");
        for path in [&warden, &server] {
            ensure!(
                path.is_file(),
                "{} is missing: run `cargo build --release --bin mcp-warden --example bench_server`",
                path.display()
            );
        }
        Ok(Self {
            warden: warden.canonicalize()?,
            server,
        })
    }
}

// ----- the temporary world ---------------------------------------------------------

/// A temporary directory with three `MCP_WARDEN_HOME`s (one, five, and five slow-starting
/// upstreams) and an empty workspace.
struct World {
    dir: tempfile::TempDir,
    one: PathBuf,
    five: PathBuf,
    slow: PathBuf,
    workspace: PathBuf,
}

impl World {
    fn new(bins: &Binaries) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("mcp-warden-bench")
            .tempdir()?;
        let root = dir.path().canonicalize()?;
        let world = Self {
            one: root.join("home-1"),
            five: root.join("home-5"),
            slow: root.join("home-slow"),
            workspace: root.join("workspace"),
            dir,
        };
        for d in [&world.one, &world.five, &world.slow, &world.workspace] {
            std::fs::create_dir_all(d)?;
        }
        let server = toml_string(&bins.server.to_string_lossy());
        let table = |name: &str, args: &[String]| {
            let args: Vec<String> = args.iter().map(|a| toml_string(a)).collect();
            format!(
                "[servers.{name}]\ncommand = {server}\nargs = [{}]\n\n",
                args.join(", ")
            )
        };
        // Pinning on, as users run it: `tofu` pins the bench server's tools on first
        // sight, so every call takes the path of a pinned tool.
        let pinning = "[pinning]\nmode = \"tofu\"\n\n";
        std::fs::write(
            world.one.join("config.toml"),
            format!("{pinning}{}", table("b0", &[])),
        )?;
        let five: String = (0..5).map(|i| table(&format!("b{i}"), &[])).collect();
        std::fs::write(world.five.join("config.toml"), format!("{pinning}{five}"))?;
        let slow: String = STARTUP_MS
            .iter()
            .enumerate()
            .map(|(i, ms)| table(&format!("b{i}"), &["--startup-ms".into(), ms.to_string()]))
            .collect();
        std::fs::write(world.slow.join("config.toml"), format!("{pinning}{slow}"))?;
        Ok(world)
    }

    /// `mcp-warden serve` with `home` as `MCP_WARDEN_HOME` and nothing else from ours.
    fn warden(&self, bins: &Binaries, home: &Path) -> Command {
        let mut cmd = Command::new(&bins.warden);
        cmd.args(["serve", "--workspace"])
            .arg(&self.workspace)
            .current_dir(&self.workspace)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("MCP_WARDEN_HOME", home)
            .env("MCP_WARDEN_MANAGED_DIR", self.dir.path().join("managed"));
        cmd
    }
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ----- one round ---------------------------------------------------------------------

struct Round {
    direct_p50: f64,
    direct_p99: f64,
    proxy_p50: f64,
    proxy_p99: f64,
    direct_tput: f64,
    proxy_tput: f64,
    spread_tput: f64,
    rss1: f64,
    rss5: f64,
    pss1: f64,
    pss5: f64,
    helpers1: Helpers,
    helpers5: Helpers,
    startup_direct: f64,
    startup_proxy: f64,
}

fn run_round(opts: &Options, bins: &Binaries, world: &World) -> anyhow::Result<Round> {
    // A: direct.
    let mut direct = Peer::spawn("bench_server", Command::new(&bins.server), opts.transport)?;
    direct.handshake(&["echo"])?;
    let (direct_p50, direct_p99) = direct.latency_run("echo", opts)?;
    let direct_tput = direct.throughput_run(&["echo".into()], opts)?;
    direct.finish()?;

    // B: through mcp-warden, one upstream.
    let mut proxy = Peer::spawn("mcp-warden", world.warden(bins, &world.one), opts.transport)?;
    proxy.handshake(&["b0__echo"])?;
    let (proxy_p50, proxy_p99) = proxy.latency_run("b0__echo", opts)?;
    let proxy_tput = proxy.throughput_run(&["b0__echo".into()], opts)?;
    let rss1 = proxy.peak_rss_mib()?;
    let pss1 = pss_mib(proxy.child.id()).unwrap_or(f64::NAN);
    let helpers1 = proxy.helpers(&bins.warden);
    proxy.finish()?;

    // B': through mcp-warden, five upstreams, the load spread over them.
    let tools: Vec<String> = (0..5).map(|i| format!("b{i}__echo")).collect();
    let names: Vec<&str> = tools.iter().map(String::as_str).collect();
    let mut spread = Peer::spawn(
        "mcp-warden",
        world.warden(bins, &world.five),
        opts.transport,
    )?;
    spread.handshake(&names)?;
    let spread_tput = spread.throughput_run(&tools, opts)?;
    let rss5 = spread.peak_rss_mib()?;
    let pss5 = pss_mib(spread.child.id()).unwrap_or(f64::NAN);
    let helpers5 = spread.helpers(&bins.warden);
    spread.finish()?;

    // Start-up: A one server of the slowest start-up, B all five through mcp-warden.
    let slowest = STARTUP_MS.iter().max().copied().unwrap_or_default();
    let mut cmd = Command::new(&bins.server);
    cmd.args(["--startup-ms", &slowest.to_string()]);
    let startup_direct = time_to_initialize("bench_server", cmd, opts.transport, &["echo"])?;
    let slow_tools: Vec<String> = (0..STARTUP_MS.len())
        .map(|i| format!("b{i}__echo"))
        .collect();
    let slow_names: Vec<&str> = slow_tools.iter().map(String::as_str).collect();
    let startup_proxy = time_to_initialize(
        "mcp-warden",
        world.warden(bins, &world.slow),
        opts.transport,
        &slow_names,
    )?;

    Ok(Round {
        direct_p50,
        direct_p99,
        proxy_p50,
        proxy_p99,
        direct_tput,
        proxy_tput,
        spread_tput,
        rss1,
        rss5,
        pss1,
        pss5,
        helpers1,
        helpers5,
        startup_direct,
        startup_proxy,
    })
}

/// A process's proportional set size now (`Pss` of `smaps_rollup`), in MiB: its
/// private pages plus its fair share of pages it shares (the binary's text with the
/// launchers, libc with everyone), unlike RSS, which counts shared pages whole.
fn pss_mib(pid: u32) -> Option<f64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let kib: f64 = rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Milliseconds from spawning `cmd` to the answer of the `initialize` sent right after.
fn time_to_initialize(
    name: &'static str,
    cmd: Command,
    transport: Transport,
    tools: &[&str],
) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let mut peer = Peer::spawn(name, cmd, transport)?;
    peer.initialize()?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    // Every upstream must really be up, not failed.
    peer.list_tools(tools)?;
    peer.finish()?;
    Ok(ms)
}

// ----- a client over a child's stdio ---------------------------------------------------

struct Peer {
    name: &'static str,
    child: Child,
    stdin: Option<Box<dyn Write + Send>>,
    stdout: BufReader<Box<dyn Read + Send>>,
    line: Vec<u8>,
    request: Vec<u8>,
    next_id: u64,
    done: bool,
}

impl Peer {
    fn spawn(name: &'static str, mut cmd: Command, transport: Transport) -> anyhow::Result<Self> {
        cmd.stderr(Stdio::inherit());
        // Our ends of the child's stdin and stdout.
        let (stdin, stdout): (Box<dyn Write + Send>, Box<dyn Read + Send>);
        let child = match transport {
            Transport::Pipe => {
                cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
                let mut child = cmd
                    .spawn()
                    .with_context(|| format!("cannot start {name}"))?;
                let (Some(i), Some(o)) = (child.stdin.take(), child.stdout.take()) else {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("{name}: pipes missing");
                };
                (stdin, stdout) = (Box::new(i), Box::new(o));
                child
            }
            Transport::Socket => {
                // What libuv (Node, Electron: most MCP clients) gives a child for stdio.
                let (ours_in, theirs_in) = UnixStream::pair()?;
                let (ours_out, theirs_out) = UnixStream::pair()?;
                cmd.stdin(Stdio::from(OwnedFd::from(theirs_in)))
                    .stdout(Stdio::from(OwnedFd::from(theirs_out)));
                let child = cmd
                    .spawn()
                    .with_context(|| format!("cannot start {name}"))?;
                (stdin, stdout) = (Box::new(ours_in), Box::new(ours_out));
                child
            }
        };
        // The child's ends must close here, or its stdin would never reach EOF.
        drop(cmd);
        watch(child.id());
        arm_watchdog();
        Ok(Self {
            name,
            child,
            stdin: Some(stdin),
            stdout: BufReader::with_capacity(64 * 1024, stdout),
            line: Vec::with_capacity(4096),
            request: Vec::with_capacity(64 * 1024),
            next_id: 0,
            done: false,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().ok_or_else(|| anyhow!("stdin closed"))?;
        stdin
            .write_all(bytes)
            .with_context(|| format!("{}: write failed", self.name))
    }

    /// Reads the next line into `self.line` (without its newline).
    fn read_line(&mut self) -> anyhow::Result<()> {
        self.line.clear();
        let n = self
            .stdout
            .read_until(b'\n', &mut self.line)
            .with_context(|| format!("{}: read failed", self.name))?;
        if n == 0 {
            if watchdog_fired() {
                bail!(
                    "{}: killed by the watchdog after {PHASE_DEADLINE:?}",
                    self.name
                );
            }
            bail!("{}: closed its stdout", self.name);
        }
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        }
        Ok(())
    }

    /// Sends one request and returns its answer's `result` (notifications in between
    /// are skipped).
    fn request(&mut self, method: &str, params: &str) -> anyhow::Result<serde_json::Value> {
        self.next_id += 1;
        let id = self.next_id;
        let line = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{method}\",\"params\":{params}}}\n"
        );
        self.write(line.as_bytes())?;
        loop {
            self.read_line()?;
            let msg: serde_json::Value = serde_json::from_slice(&self.line).with_context(|| {
                format!(
                    "{}: not JSON: {}",
                    self.name,
                    String::from_utf8_lossy(&self.line)
                )
            })?;
            if msg.get("method").is_some() || msg.get("id") != Some(&id.into()) {
                continue;
            }
            if let Some(result) = msg.get("result") {
                return Ok(result.clone());
            }
            bail!("{}: {method} failed: {msg}", self.name);
        }
    }

    fn initialize(&mut self) -> anyhow::Result<()> {
        let result = self.request(
            "initialize",
            r#"{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"mcp-warden-bench","version":"1"}}"#,
        )?;
        ensure!(
            result.get("protocolVersion").is_some(),
            "{}: odd initialize result {result}",
            self.name
        );
        self.write(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
    }

    fn list_tools(&mut self, expected: &[&str]) -> anyhow::Result<()> {
        let result = self.request("tools/list", "{}")?;
        let names: Vec<&str> = result
            .get("tools")
            .and_then(serde_json::Value::as_array)
            .map(|tools| {
                tools
                    .iter()
                    .filter_map(|t| t.get("name").and_then(serde_json::Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        for want in expected {
            ensure!(
                names.contains(want),
                "{}: tool `{want}` not listed (got {names:?})",
                self.name
            );
        }
        Ok(())
    }

    fn handshake(&mut self, tools: &[&str]) -> anyhow::Result<()> {
        self.initialize()?;
        self.list_tools(tools)?;
        // One checked call per tool, parsed in full, before the fast path takes over.
        for tool in tools {
            let result = self.request(
                "tools/call",
                &format!(r#"{{"name":"{tool}","arguments":{{"message":"{PAYLOAD}"}}}}"#),
            )?;
            let text = result
                .pointer("/content/0/text")
                .and_then(serde_json::Value::as_str);
            ensure!(text == Some(PAYLOAD), "{}: odd echo {result}", self.name);
        }
        Ok(())
    }

    /// Appends one `tools/call` with a fresh id to `self.request`; returns the id.
    fn push_call(&mut self, tool: &str) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let _ = writeln!(
            Buf(&mut self.request),
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"{tool}\",\"arguments\":{{\"message\":\"{PAYLOAD}\"}}}}}}"
        );
        id
    }

    /// Reads lines until an answer; returns its id after checking it is the echo.
    fn read_answer(&mut self) -> anyhow::Result<u64> {
        loop {
            self.read_line()?;
            if let Some(id) = check_answer(&self.line).with_context(|| {
                format!("{}: {}", self.name, String::from_utf8_lossy(&self.line))
            })? {
                return Ok(id);
            }
        }
    }

    /// Sequential calls: warm-up, then `opts.calls` timed ones. Returns (p50, p99) in µs.
    fn latency_run(&mut self, tool: &str, opts: &Options) -> anyhow::Result<(f64, f64)> {
        arm_watchdog();
        let mut samples = Vec::with_capacity(opts.calls);
        for i in 0..opts.warmup + opts.calls {
            self.request.clear();
            let id = self.push_call(tool);
            let t0 = Instant::now();
            let request = std::mem::take(&mut self.request);
            let written = self.write(&request);
            self.request = request;
            written?;
            let got = self.read_answer()?;
            let dt = t0.elapsed();
            ensure!(got == id, "{}: answer to {got}, expected {id}", self.name);
            if i >= opts.warmup {
                samples.push(dt.as_nanos() as u64);
            }
        }
        samples.sort_unstable();
        Ok((
            percentile(&samples, 50.0) as f64 / 1e3,
            percentile(&samples, 99.0) as f64 / 1e3,
        ))
    }

    /// Pipelined calls, `opts.in_flight` outstanding, spread round-robin over `tools`:
    /// a warm-up pass, then a timed one. Returns calls per second.
    fn throughput_run(&mut self, tools: &[String], opts: &Options) -> anyhow::Result<f64> {
        arm_watchdog();
        self.pipelined(
            tools,
            opts.warmup.min(opts.throughput_calls),
            opts.in_flight,
        )?;
        let t0 = Instant::now();
        self.pipelined(tools, opts.throughput_calls, opts.in_flight)?;
        Ok(opts.throughput_calls as f64 / t0.elapsed().as_secs_f64())
    }

    fn pipelined(&mut self, tools: &[String], total: usize, window: usize) -> anyhow::Result<()> {
        let base = self.next_id + 1;
        let mut answered = vec![false; total];
        let (mut sent, mut done) = (0, 0);
        while done < total {
            // Top up the window with one write, then take every answer already here.
            self.request.clear();
            while sent < total && sent - done < window {
                self.push_call(&tools[sent % tools.len()]);
                sent += 1;
            }
            if !self.request.is_empty() {
                let request = std::mem::take(&mut self.request);
                let written = self.write(&request);
                self.request = request;
                written?;
            }
            loop {
                let id = self.read_answer()?;
                let slot = id
                    .checked_sub(base)
                    .and_then(|i| usize::try_from(i).ok())
                    .filter(|&i| i < sent && !answered[i])
                    .ok_or_else(|| anyhow!("{}: unexpected answer id {id}", self.name))?;
                answered[slot] = true;
                done += 1;
                if self.stdout.buffer().is_empty() || done == total {
                    break;
                }
            }
        }
        Ok(())
    }

    /// The process's peak resident set (`VmHWM`), in MiB.
    fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmHWM in {path}"))?;
        Ok(kib / 1024.0)
    }

    /// The processes below this one that run `exe` too (mcp-warden's per-upstream
    /// launchers): how many, and their summed proportional set size (`Pss`), which
    /// shares the binary's pages fairly between them.
    fn helpers(&self, exe: &Path) -> Helpers {
        let mut parents: Vec<(u32, u32)> = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse().ok());
            if let Some(parent) = parent {
                parents.push((pid, parent));
            }
        }
        let mut below = vec![self.child.id()];
        let mut i = 0;
        while i < below.len() {
            let parent = below[i];
            below.extend(
                parents
                    .iter()
                    .filter(|(_, pp)| *pp == parent)
                    .map(|(p, _)| *p),
            );
            i += 1;
        }
        let mut helpers = Helpers::default();
        for pid in &below[1..] {
            let same = std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == exe);
            if let (true, Some(mib)) = (same, pss_mib(*pid)) {
                helpers.count += 1;
                helpers.pss_mib += mib;
            }
        }
        helpers
    }

    /// Closes stdin (how a client leaves) and waits for a clean exit.
    fn finish(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let deadline = Instant::now() + EXIT_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.done = true;
                unwatch(self.child.id());
                ensure!(status.success(), "{} exited with {status}", self.name);
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} still running {EXIT_DEADLINE:?} after its stdin closed",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Peer {
    /// On any error path: the process is killed and reaped, never left behind.
    fn drop(&mut self) {
        if !self.done {
            drop(self.stdin.take());
            let _ = self.child.kill();
            let _ = self.child.wait();
            unwatch(self.child.id());
        }
    }
}

/// mcp-warden's own helper processes below the serve process.
#[derive(Default, Clone, Copy)]
struct Helpers {
    count: usize,
    pss_mib: f64,
}

/// `fmt::Write` into a byte buffer.
struct Buf<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Buf<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The id of an answer that carries the echoed payload; `None` for a notification or
/// a request; an error for anything else. Cheap: the timed loops call it per answer.
fn check_answer(line: &[u8]) -> anyhow::Result<Option<u64>> {
    if contains(line, b"\"method\"") {
        return Ok(None);
    }
    ensure!(
        !contains(line, b"\"error\"") && contains(line, PAYLOAD.as_bytes()),
        "not the echo"
    );
    let at = find(line, b"\"id\":").ok_or_else(|| anyhow!("no id"))? + 5;
    let digits: Vec<u8> = line[at..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    let id = std::str::from_utf8(&digits)?.parse()?;
    Ok(Some(id))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

// ----- statistics and the report --------------------------------------------------------

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

#[derive(Default)]
struct Figures {
    direct_p50: Vec<f64>,
    direct_p99: Vec<f64>,
    proxy_p50: Vec<f64>,
    proxy_p99: Vec<f64>,
    direct_tput: Vec<f64>,
    proxy_tput: Vec<f64>,
    spread_tput: Vec<f64>,
    rss1: Vec<f64>,
    rss5: Vec<f64>,
    pss1: Vec<f64>,
    pss5: Vec<f64>,
    helpers1: Vec<Helpers>,
    helpers5: Vec<Helpers>,
    startup_direct: Vec<f64>,
    startup_proxy: Vec<f64>,
}

impl Figures {
    fn push(&mut self, r: &Round) {
        self.direct_p50.push(r.direct_p50);
        self.direct_p99.push(r.direct_p99);
        self.proxy_p50.push(r.proxy_p50);
        self.proxy_p99.push(r.proxy_p99);
        self.direct_tput.push(r.direct_tput);
        self.proxy_tput.push(r.proxy_tput);
        self.spread_tput.push(r.spread_tput);
        self.rss1.push(r.rss1);
        self.rss5.push(r.rss5);
        self.pss1.push(r.pss1);
        self.pss5.push(r.pss5);
        self.helpers1.push(r.helpers1);
        self.helpers5.push(r.helpers5);
        self.startup_direct.push(r.startup_direct);
        self.startup_proxy.push(r.startup_proxy);
    }

    fn summary(&self) -> Summary {
        Summary {
            direct_p50: median(&self.direct_p50),
            proxy_p50: median(&self.proxy_p50),
            direct_p99: median(&self.direct_p99),
            proxy_p99: median(&self.proxy_p99),
            direct_tput: median(&self.direct_tput),
            proxy_tput: median(&self.proxy_tput),
            spread_tput: median(&self.spread_tput),
            rss1: median(&self.rss1),
            rss5: median(&self.rss5),
            pss1: median(&self.pss1),
            pss5: median(&self.pss5),
            helpers1: median_helpers(&self.helpers1),
            helpers5: median_helpers(&self.helpers5),
            startup_direct: median(&self.startup_direct),
            startup_proxy: median(&self.startup_proxy),
        }
    }

    fn report(&self) {
        let s = self.summary();
        println!("medians across {} rounds:", self.direct_p50.len());
        s.table();
        println!();
        s.verdicts();
    }
}

/// Medians across rounds.
struct Summary {
    direct_p50: f64,
    proxy_p50: f64,
    direct_p99: f64,
    proxy_p99: f64,
    direct_tput: f64,
    proxy_tput: f64,
    spread_tput: f64,
    rss1: f64,
    rss5: f64,
    pss1: f64,
    pss5: f64,
    helpers1: Helpers,
    helpers5: Helpers,
    startup_direct: f64,
    startup_proxy: f64,
}

fn median_helpers(all: &[Helpers]) -> Helpers {
    let pss: Vec<f64> = all.iter().map(|h| h.pss_mib).collect();
    Helpers {
        count: all.iter().map(|h| h.count).max().unwrap_or_default(),
        pss_mib: median(&pss),
    }
}

fn slowest_startup() -> f64 {
    STARTUP_MS.iter().max().copied().unwrap_or_default() as f64
}

impl Summary {
    fn table(&self) {
        let slowest = slowest_startup();
        let sum: u64 = STARTUP_MS.iter().sum();
        println!(
            "| {:<38} | {:>12} | {:>18} | {:>12} | {:<22} |",
            "measure", "direct", "through mcp-warden", "added", "target"
        );
        println!(
            "|{:-<40}|{:->14}|{:->20}|{:->14}|{:-<24}|",
            "", "", "", "", ""
        );
        let row = |what: &str, direct: String, proxy: String, added: String, target: String| {
            println!("| {what:<38} | {direct:>12} | {proxy:>18} | {added:>12} | {target:<22} |");
        };
        row(
            "tools/call latency p50",
            format!("{:.1} µs", self.direct_p50),
            format!("{:.1} µs", self.proxy_p50),
            format!("{:+.1} µs", self.proxy_p50 - self.direct_p50),
            format!("added ≤ {TARGET_ADDED_P50_US} µs"),
        );
        row(
            "tools/call latency p99",
            format!("{:.1} µs", self.direct_p99),
            format!("{:.1} µs", self.proxy_p99),
            format!("{:+.1} µs", self.proxy_p99 - self.direct_p99),
            format!("added ≤ {TARGET_ADDED_P99_US} µs"),
        );
        row(
            "calls/s, 64 in flight, 1 upstream",
            format!("{:.0}", self.direct_tput),
            format!("{:.0}", self.proxy_tput),
            String::new(),
            format!("≥ {TARGET_CALLS_PER_S:.0} proxied"),
        );
        row(
            "calls/s, 64 in flight, 5 upstreams",
            String::new(),
            format!("{:.0}", self.spread_tput),
            String::new(),
            String::new(),
        );
        row(
            "peak RSS, 1 upstream",
            String::new(),
            format!("{:.1} MiB", self.rss1),
            String::new(),
            format!("≤ {TARGET_RSS_MIB} MiB"),
        );
        row(
            "peak RSS, 5 upstreams",
            String::new(),
            format!("{:.1} MiB", self.rss5),
            String::new(),
            format!("≤ {TARGET_RSS_MIB} MiB"),
        );
        for (n, pss) in [(1, self.pss1), (5, self.pss5)] {
            row(
                &format!(
                    "PSS after the run, {n} upstream{}",
                    if n == 1 { "" } else { "s" }
                ),
                String::new(),
                format!("{pss:.1} MiB"),
                String::new(),
                "(information)".into(),
            );
        }
        for (n, h) in [(1, self.helpers1), (5, self.helpers5)] {
            if h.count > 0 {
                row(
                    &format!(
                        "helper processes, {n} upstream{}",
                        if n == 1 { "" } else { "s" }
                    ),
                    String::new(),
                    format!("{} × {:.1} MiB", h.count, h.pss_mib / h.count as f64),
                    String::new(),
                    "(PSS; not in target)".to_owned(),
                );
            }
        }
        row(
            "first initialize answer",
            format!("{:.1} ms", self.startup_direct),
            format!("{:.1} ms", self.startup_proxy),
            format!("{:+.1} ms", self.startup_proxy - slowest),
            format!("≤ {slowest:.0} + {TARGET_STARTUP_SLACK_MS:.0} ms"),
        );
        println!("(peak RSS: VmHWM of the mcp-warden process alone, after the throughput run)");
        println!(
            "(first initialize answer: direct = one server that sleeps {slowest:.0} ms; through mcp-warden = five servers that sleep {STARTUP_MS:?} ms (sum {sum} ms); added is over the slowest, {slowest:.0} ms)"
        );
    }

    fn verdicts(&self) {
        let slowest = slowest_startup();
        let verdict = |ok: bool, text: String| {
            println!("{} {text}", if ok { "PASS" } else { "MISS" });
        };
        let added50 = self.proxy_p50 - self.direct_p50;
        let added99 = self.proxy_p99 - self.direct_p99;
        verdict(
            added50 <= TARGET_ADDED_P50_US,
            format!("added latency p50: {added50:+.1} µs (target ≤ {TARGET_ADDED_P50_US} µs)"),
        );
        verdict(
            added99 <= TARGET_ADDED_P99_US,
            format!("added latency p99: {added99:+.1} µs (target ≤ {TARGET_ADDED_P99_US} µs)"),
        );
        verdict(
            self.proxy_tput >= TARGET_CALLS_PER_S,
            format!(
                "throughput through mcp-warden: {:.0} calls/s with 64 in flight (target ≥ {TARGET_CALLS_PER_S:.0})",
                self.proxy_tput
            ),
        );
        verdict(
            self.rss1.max(self.rss5) <= TARGET_RSS_MIB,
            format!(
                "mcp-warden peak RSS: {:.1} MiB with 1 upstream, {:.1} MiB with 5 (target ≤ {TARGET_RSS_MIB} MiB)",
                self.rss1, self.rss5
            ),
        );
        verdict(
            added50 <= TARGET_P50_RATIO * self.direct_p50,
            format!(
                "added latency p50 / direct p50: {:.1}x (target ≤ {TARGET_P50_RATIO}x)",
                added50 / self.direct_p50
            ),
        );
        verdict(
            added99 <= TARGET_P99_RATIO * self.direct_p99,
            format!(
                "added latency p99 / direct p99: {:.1}x (target ≤ {TARGET_P99_RATIO}x)",
                added99 / self.direct_p99
            ),
        );
        verdict(
            self.proxy_tput >= TARGET_TPUT_SHARE * self.direct_tput,
            format!(
                "throughput through mcp-warden / direct: {:.1} % (target ≥ {:.0} %)",
                100.0 * self.proxy_tput / self.direct_tput,
                100.0 * TARGET_TPUT_SHARE
            ),
        );
        verdict(
            self.pss1.max(self.pss5) <= TARGET_PSS_MIB,
            format!(
                "mcp-warden PSS after the run: {:.1} MiB with 1 upstream, {:.1} MiB with 5 (target ≤ {TARGET_PSS_MIB} MiB)",
                self.pss1, self.pss5
            ),
        );
        verdict(
            self.startup_proxy - slowest <= TARGET_STARTUP_SLACK_MS,
            format!(
                "first initialize answer: {:.1} ms with upstreams of {STARTUP_MS:?} ms; slowest {slowest:.0} ms (target ≤ slowest + {TARGET_STARTUP_SLACK_MS:.0} ms, not the sum)",
                self.startup_proxy
            ),
        );
    }
}

// ----- the machine -----------------------------------------------------------------------

struct Machine {
    cpus: usize,
    model: String,
}

fn machine() -> Machine {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpus = info.lines().filter(|l| l.starts_with("processor")).count();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    Machine { cpus, model }
}

/// Prints how many CPUs other work kept busy over half a second: the pinned CPU is
/// shared with it, so a busy machine makes the figures noisy.
fn report_other_load(when: &str) {
    let Some(busy) = cpus_busy(Duration::from_millis(500)) else {
        return;
    };
    let note = if busy > 0.2 {
        " (warning: the machine is busy; expect noise)"
    } else {
        ""
    };
    println!("other work {when}: {busy:.2} CPUs busy{note}");
}

/// CPUs busy on average (0 to the number of CPUs) over `window`, from /proc/stat.
fn cpus_busy(window: Duration) -> Option<f64> {
    fn sample() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let total: u64 = fields.iter().take(8).sum();
        let idle = fields.get(3)? + fields.get(4)?;
        Some((total, idle))
    }
    let (t0, i0) = sample()?;
    std::thread::sleep(window);
    let (t1, i1) = sample()?;
    let total = t1.checked_sub(t0).filter(|&t| t > 0)?;
    let busy = total.saturating_sub(i1.saturating_sub(i0));
    let all = machine().cpus.max(1);
    Some(busy as f64 / total as f64 * all as f64)
}

fn cpus_allowed() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map_or_else(|| "?".to_owned(), |s| s.trim().to_owned())
}

// ----- the watchdog --------------------------------------------------------------------

/// Processes alive right now; the watchdog kills them if a phase overruns, which turns
/// a hang into a read error on the main thread (whose cleanup then reaps them).
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// Milliseconds since the epoch when the current phase must be over; 0 = none.
static DEADLINE_MS: AtomicU64 = AtomicU64::new(0);
static FIRED: AtomicBool = AtomicBool::new(false);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn arm_watchdog() {
    DEADLINE_MS.store(
        now_ms() + PHASE_DEADLINE.as_millis() as u64,
        Ordering::SeqCst,
    );
}

fn watchdog_fired() -> bool {
    FIRED.load(Ordering::SeqCst)
}

fn watch(pid: u32) {
    if let Ok(mut live) = LIVE.lock() {
        live.push(pid);
    }
}

fn unwatch(pid: u32) {
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|&p| p != pid);
    }
}

fn start_watchdog() {
    std::thread::spawn(|| {
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let deadline = DEADLINE_MS.load(Ordering::SeqCst);
            if deadline == 0 || now_ms() < deadline {
                continue;
            }
            FIRED.store(true, Ordering::SeqCst);
            if let Ok(live) = LIVE.lock() {
                for &pid in live.iter() {
                    if let Ok(pid) = i32::try_from(pid) {
                        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                }
            }
            DEADLINE_MS.store(0, Ordering::SeqCst);
        }
    });
}
