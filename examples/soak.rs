//! The soak (issue 14 item 6): a million `tools/call`s through one `mcp-warden serve`
//! with the audit trail on, then the checks that matter for a long-lived gateway:
//! its resident memory stays flat, every call has its audit record, and
//! `mcp-warden audit verify` passes. A benchmark, not a test: it prints figures
//! (`docs/benchmark.md`).
//!
//! ```sh
//! cargo build --release --bin mcp-warden --example bench_server --example soak
//! target/release/examples/soak [--calls N] [--in-flight N]
//! ```
//!
//! The binaries are taken from beside this one (`../mcp-warden`, `bench_server`).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_precision_loss
)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, anyhow, ensure};

const PAYLOAD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("soak: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn option(name: &str, default: u64) -> anyhow::Result<u64> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("{name} takes a number")),
        None => Ok(default),
    }
}

/// Reads lines up to the next answer; an error answer is a failure.
fn answer(output: &mut impl BufRead, line: &mut String) -> anyhow::Result<()> {
    loop {
        line.clear();
        ensure!(output.read_line(line)? > 0, "serve closed its stdout");
        if line.contains("\"id\"") {
            ensure!(!line.contains("\"error\""), "an error: {line}");
            return Ok(());
        }
    }
}

/// The audit records of the soak's calls in the day files of `audit`.
fn count_records(audit: &Path) -> anyhow::Result<u64> {
    let mut records = 0u64;
    for entry in std::fs::read_dir(audit)?.flatten() {
        let path = entry.path();
        let day_file = path.extension().is_some_and(|e| e == "jsonl")
            && path.file_name() != Some("anchor.jsonl".as_ref());
        if day_file {
            let text = std::fs::read_to_string(&path)?;
            records += text
                .lines()
                .filter(|l| {
                    l.contains("\"tool\":\"b0__echo\"") && l.contains("\"method\":\"tools/call\"")
                })
                .count() as u64;
        }
    }
    Ok(records)
}

/// `VmRSS` of `pid`, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS"))
}

fn run() -> anyhow::Result<()> {
    let calls = option("--calls", 1_000_000)?;
    let in_flight = option("--in-flight", 64)?.max(1);
    let here: PathBuf = std::env::current_exe()?
        .parent()
        .context("no directory")?
        .to_path_buf();
    let warden = here.parent().context("no parent")?.join("mcp-warden");
    let server = here.join("bench_server");
    for bin in [&warden, &server] {
        ensure!(
            bin.exists(),
            "`{}` is missing: build it first",
            bin.display()
        );
    }
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("warden");
    std::fs::create_dir_all(&home)?;
    std::fs::write(
        home.join("config.toml"),
        format!(
            "[pinning]\nmode = \"tofu\"\n\n[servers.b0]\ncommand = {:?}\n",
            server.to_string_lossy()
        ),
    )?;
    let mut child = Command::new(&warden)
        .args(["serve", "--workspace"])
        .arg(dir.path())
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("MCP_WARDEN_HOME", &home)
        .env("MCP_WARDEN_MANAGED_DIR", dir.path().join("managed"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let mut input = child.stdin.take().context("stdin")?;
    let mut output = BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    writeln!(
        input,
        r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"soak","version":"1"}}}}}}"#
    )?;
    answer(&mut output, &mut line)?;
    writeln!(
        input,
        r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
    )?;
    writeln!(input, r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list"}}"#)?;
    answer(&mut output, &mut line)?;
    ensure!(line.contains("b0__echo"), "no b0__echo: {line}");

    let started = Instant::now();
    let mut samples = vec![(0u64, rss_kib(pid)?)];
    let mut batch = String::new();
    let mut done = 0u64;
    let mut id = 10u64;
    while done < calls {
        let n = in_flight.min(calls - done);
        batch.clear();
        for _ in 0..n {
            id += 1;
            let _ = writeln!(
                batch,
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"b0__echo\",\"arguments\":{{\"message\":\"{PAYLOAD}\"}}}}}}"
            );
        }
        input.write_all(batch.as_bytes())?;
        for _ in 0..n {
            answer(&mut output, &mut line)?;
        }
        let before = done;
        done += n;
        if done / 100_000 != before / 100_000 {
            samples.push((done, rss_kib(pid)?));
            eprintln!("soak: {done} calls");
        }
    }
    let elapsed = started.elapsed();
    drop(input);
    let status = child.wait()?;
    ensure!(status.success(), "serve exited with {status}");

    let audit = home.join("data").join("audit");
    let records = count_records(&audit)?;
    let verify = Command::new(&warden)
        .args(["audit", "verify"])
        .env_clear()
        .env("HOME", dir.path())
        .env("MCP_WARDEN_HOME", &home)
        .output()?;
    print_figures(
        calls,
        elapsed.as_secs_f64(),
        &samples,
        records,
        &verify,
        &audit,
    )
}

fn print_figures(
    calls: u64,
    secs: f64,
    samples: &[(u64, u64)],
    records: u64,
    verify: &std::process::Output,
    audit: &Path,
) -> anyhow::Result<()> {
    println!(
        "calls: {calls} in {secs:.1} s ({:.0} calls/s)",
        calls as f64 / secs
    );
    println!("serve VmRSS (KiB) by calls done:");
    for (done, kib) in samples {
        println!("  {done:>9}  {kib}");
    }
    // From the first sample after warm-up (100k calls) to the last: flat means the
    // gateway holds no per-call state beyond its bounded queues.
    if let (Some(first), Some(last)) = (samples.get(1), samples.last())
        && samples.len() > 2
    {
        println!(
            "RSS growth from {} to {} calls: {} KiB",
            first.0,
            last.0,
            last.1.saturating_sub(first.1)
        );
    }
    println!("audit records of the calls: {records} (expected at least {calls})");
    let said = String::from_utf8_lossy(&verify.stdout);
    println!("audit verify ({}): {}", audit.display(), said.trim());
    ensure!(records >= calls, "audit records were lost");
    ensure!(verify.status.success(), "audit verify failed");
    Ok(())
}
