//! `[audit.syslog]` against a real rsyslog (Debian's `rsyslog`), started by the test on
//! loopback: every record `serve` wrote reaches the collector byte for byte, in order,
//! chain included, over TCP and over a Unix socket; an absent collector delays nothing
//! and its count of undelivered records lands in the seal, while the local trail stays
//! complete and verifies. Skipped, with the reason printed, when `rsyslogd` is absent
//! (`.ci/run` installs it).

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Env, path_str, q, test_server_table};

/// A private rsyslogd listening on a loopback TCP port and a Unix socket, writing the
/// MSG of every message it gets, one per line, to `out.log`.
struct Rsyslog {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Rsyslog {
    fn start() -> Option<Self> {
        let Some(rsyslogd) = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
        else {
            eprintln!(
                "skipped: rsyslogd is not installed (Debian: apt-get install rsyslog; .ci/run does)"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        // A free port: bound by us, released, then taken by rsyslog.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = path_str(dir.path());
        let conf = format!(
            r#"global(workDirectory="{d}" maxMessageSize="1m")
module(load="imtcp")
module(load="imuxsock" SysSock.Use="off")
input(type="imtcp" address="127.0.0.1" port="{port}")
input(type="imuxsock" Socket="{d}/log.sock" UseSpecialParser="off")
template(name="msgonly" type="string" string="%msg%\n")
template(name="head" type="string" string="%pri% %app-name% %msgid%\n")
action(type="omfile" file="{d}/out.log" template="msgonly")
action(type="omfile" file="{d}/head.log" template="head")
"#
        );
        let conf_path = dir.path().join("rsyslog.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(rsyslogd)
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let me = Self { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() || !me.socket().exists() {
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(me)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("log.sock")
    }

    fn read(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until the collector has `n` messages; returns them.
    fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lines = self.read("out.log");
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every line of every local day file, in order.
fn local_trail(env: &Env) -> Vec<String> {
    let dir = env.warden_home.join("data").join("audit");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        // The anchor of seals is the trail's own index, kept locally: not a record.
        .filter(|p| p.file_name().is_some_and(|n| n != "anchor.jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Runs one `serve` session with `[audit.syslog]` at `address`: lists, calls twice,
/// has one call denied, then closes. Returns how long the session took.
fn one_session(env: &Env, address: &str, buffer: Option<u64>) -> Duration {
    let buffer = buffer.map_or_else(String::new, |b| format!("buffer = {b}\n"));
    env.user_config(&format!(
        "{}\n[[policy.rules]]\nid = \"no-pid\"\ntools = [\"t__pid\"]\nwhen = {{ arg = \"path\", under = [\"/etc\"] }}\naction = \"deny\"\n\n[audit.syslog]\naddress = {}\nfacility = \"local0\"\n{buffer}",
        test_server_table("t", &[]),
        q(address)
    ));
    let started = Instant::now();
    let mut serve = env.ready_serve();
    for id in 2..4 {
        let answer = serve.call_tool(id, "t__echo", json!({"message": "hi"}));
        assert_ne!(answer["result"]["isError"], true, "{answer}");
    }
    let denied = serve.call_tool(4, "t__pid", json!({}));
    assert_eq!(denied["result"]["isError"], true, "{denied}");
    let (status, stderr) = serve.close();
    assert!(status.success(), "{stderr}");
    started.elapsed()
}

fn verify(env: &Env) {
    let out = env.run(&["audit", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_collector_has_the_trail(rsyslog: &Rsyslog, env: &Env) {
    let local = local_trail(env);
    assert!(local.len() >= 5, "{local:#?}");
    let got = rsyslog.wait_for(local.len());
    // Byte for byte and in order: the collector's copy is the chain itself.
    assert_eq!(got, local);
    let seal: Value = serde_json::from_str(local.last().unwrap()).unwrap();
    assert_eq!(seal["decision"], "seal");
    assert_eq!(
        seal["detail"],
        format!("syslog: {} delivered, 0 undelivered", local.len() - 1),
        "{seal}"
    );
    verify(env);
}

#[test]
fn every_record_reaches_rsyslog_over_tcp_in_order_with_the_chain() {
    let Some(rsyslog) = Rsyslog::start() else {
        return;
    };
    let env = Env::new();
    let address = format!("tcp://127.0.0.1:{}", rsyslog.port);
    one_session(&env, &address, None);
    assert_collector_has_the_trail(&rsyslog, &env);
    // `status` says where the trail goes.
    let status = String::from_utf8_lossy(&env.run(&["status"]).stdout).into_owned();
    assert!(
        status.contains(&format!("and each record to syslog `{address}`")),
        "{status}"
    );
    // RFC 5424 as rsyslog parsed it: local0 (16) * 8 + severity; the denial is a
    // warning (4), the rest informational (6).
    let heads = rsyslog.read("head.log");
    assert!(
        heads.iter().all(|h| h.ends_with(" mcp-warden audit")),
        "{heads:?}"
    );
    let pris: Vec<&str> = heads.iter().map(|h| h.split(' ').next().unwrap()).collect();
    assert!(pris.contains(&"132") && pris.contains(&"134"), "{pris:?}");
    let records = local_trail(&env);
    let denied = records
        .iter()
        .position(|r| r.contains("\"decision\":\"deny\""))
        .unwrap();
    assert_eq!(pris[denied], "132", "{heads:?}");
}

#[test]
fn every_record_reaches_rsyslog_over_a_unix_socket() {
    let Some(rsyslog) = Rsyslog::start() else {
        return;
    };
    let env = Env::new();
    one_session(
        &env,
        &format!("unix://{}", path_str(&rsyslog.socket())),
        None,
    );
    assert_collector_has_the_trail(&rsyslog, &env);
}

#[test]
fn an_absent_collector_delays_nothing_and_the_seal_counts_what_it_missed() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = Env::new();
    let took = one_session(&env, &format!("tcp://127.0.0.1:{port}"), Some(2));
    assert!(took < Duration::from_secs(10), "the session took {took:?}");
    let local = local_trail(&env);
    let seal: Value = serde_json::from_str(local.last().unwrap()).unwrap();
    assert_eq!(
        seal["detail"],
        format!("syslog: 0 delivered, {} undelivered", local.len() - 1),
        "{seal}"
    );
    // The local trail is complete and its chain intact.
    verify(&env);
    assert!(
        env.log()
            .contains("cannot send audit records to the syslog collector")
    );
}

#[test]
fn a_workspace_cannot_send_the_audit_trail_elsewhere() {
    let env = Env::new();
    env.workspace_config("[audit.syslog]\naddress = \"tcp://attacker.example:514\"\n");
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("mcp-warden.toml:1:1: error: `audit.syslog` is not read from a workspace's `mcp-warden.toml`"),
        "{text}"
    );
    env.workspace_config("");
    env.user_config("[audit.syslog]\naddress = \"udp://h:514\"\nfacility = \"local9\"\n");
    let text = String::from_utf8_lossy(&env.run(&["check"]).stdout).into_owned();
    assert!(
        text.contains("`udp://h:514` is not a syslog address"),
        "{text}"
    );
    assert!(text.contains("unknown syslog facility `local9`"), "{text}");
}
