//! Forwarding the audit trail to a syslog collector (`[audit.syslog]`): each record,
//! exactly the JSON line written to the local file (`prev` and `hash` included, so the
//! collector's copy can be checked with the same key), as the MSG of one RFC 5424
//! message, over TCP (RFC 6587 octet-counting framing) or a Unix socket (one datagram
//! per message, or octet-counting on a stream socket).
//!
//! # What it must never do
//! - **Block the message path.** The writer hands each written line to
//!   [`Forwarder::offer`], which takes a mutex for a `push_back` and returns; all
//!   network I/O happens on the forwarder's own thread, with connect and write
//!   timeouts.
//! - **Grow without bound.** Lines wait in a queue of at most `buffer` records while
//!   the collector is unreachable; when it is full the oldest is dropped and counted.
//! - **Replace the local trail.** The file is written first and stays complete; what
//!   could not be delivered is counted ([`Delivery::undelivered`]), logged, and written
//!   into the session's seal record.
//!
//! Delivery is at least once: a record whose write failed half-way is sent again on the
//! next connection, so a collector may hold a duplicate (same `session` and `seq`),
//! never a gap it is not told about.

use std::collections::VecDeque;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a connection attempt may take before the collector counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one message may take to write: a collector that stops reading must not
/// hold the forwarder for longer (the queue keeps filling meanwhile, bounded).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait before reconnecting after a failure; doubled per failure up to
/// [`MAX_BACKOFF`], so an absent collector costs one attempt per 30 s at most.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long the end of a session waits for the queue to drain (before the seal is
/// written, and again after): long enough for a reachable collector to take a
/// session's tail, short enough that an absent one does not hold the exit up.
pub const DRAIN_WAIT: Duration = Duration::from_secs(2);
/// Records kept while the collector is unreachable, when `buffer` is not set: at a
/// few hundred bytes each, a few MiB.
pub const DEFAULT_BUFFER: usize = 10_000;
/// The largest `buffer` accepted.
pub const MAX_BUFFER: usize = 1_000_000;
/// `APP-NAME` of every message.
const APP_NAME: &str = "mcp-warden";
/// `MSGID` of every message: what the MSG is.
const MSG_ID: &str = "audit";

/// Where the collector listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `tcp://HOST:PORT`.
    Tcp(String),
    /// `unix:///PATH` (or `unix:/PATH`): a datagram socket such as `/dev/log`, or a
    /// stream socket.
    Unix(PathBuf),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(host_port) => write!(f, "tcp://{host_port}"),
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// Why an `address` or `facility` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyslogConfigError {
    #[error("`{0}` is not a syslog address: write `tcp://HOST:PORT` or `unix:///PATH`")]
    Address(String),
    #[error("unknown syslog facility `{0}`")]
    Facility(String),
}

impl std::str::FromStr for Address {
    type Err = SyslogConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SyslogConfigError::Address(s.to_owned());
        if let Some(rest) = s.strip_prefix("tcp://") {
            let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
            if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(bad());
            }
            return Ok(Self::Tcp(rest.to_owned()));
        }
        let path = s
            .strip_prefix("unix://")
            .or_else(|| s.strip_prefix("unix:"))
            .ok_or_else(bad)?;
        if !path.starts_with('/') {
            return Err(bad());
        }
        Ok(Self::Unix(PathBuf::from(path)))
    }
}

/// The facilities RFC 5424 names, by their usual names, with their codes.
pub const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The facility code of `name`.
pub fn facility(name: &str) -> Result<u8, SyslogConfigError> {
    FACILITIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, code)| *code)
        .ok_or_else(|| SyslogConfigError::Facility(name.to_owned()))
}

/// `[audit.syslog]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    pub address: Address,
    /// The facility code (default `authpriv`, 10: security events).
    pub facility: u8,
    /// Most records queued while the collector is unreachable.
    pub buffer: usize,
}

/// What the forwarder did, for the seal record and the operator log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Records the collector accepted (written to its socket).
    pub delivered: u64,
    /// Records it never got: dropped from a full queue, or still queued at the end.
    pub undelivered: u64,
}

/// The queue between the writer and the forwarder's thread.
#[derive(Debug, Default)]
struct Queue {
    /// Lines with a number each, so the thread can tell whether the line it sent is
    /// still the front (a full queue may have dropped it meanwhile).
    lines: VecDeque<(u64, Vec<u8>)>,
    next: u64,
    dropped: u64,
    delivered: u64,
    /// The last attempt failed: the collector is unreachable until one succeeds.
    unreachable: bool,
    /// Set at the end: the thread sends what it can until this moment, then stops.
    stop_at: Option<Instant>,
}

impl Queue {
    fn delivery(&self) -> Delivery {
        Delivery {
            delivered: self.delivered,
            undelivered: self.dropped + self.lines.len() as u64,
        }
    }
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a line is queued or the end is set (to the thread), and when the
    /// queue empties (to [`Forwarder::drain`]).
    changed: Condvar,
    capacity: usize,
}

impl Shared {
    /// The queue, even if a thread panicked holding it: it holds plain data that is
    /// consistent after every statement.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Hands written audit lines to the collector; owned by the writer.
#[derive(Debug)]
pub struct Forwarder {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    target: SyslogTarget,
}

impl Forwarder {
    /// Starts the forwarder's thread for `target`; nothing is connected until the first
    /// line is offered.
    pub fn start(target: SyslogTarget) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            capacity: target.buffer.max(1),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            let sender = Sender::new(target.clone());
            std::thread::Builder::new()
                .name("mcp-warden-syslog".into())
                .spawn(move || sender.run(&shared))?
        };
        Ok(Self {
            shared,
            thread: Some(thread),
            target,
        })
    }

    /// Queues one record line (without its newline); never blocks on the network. A
    /// full queue drops its oldest line, counted as undelivered.
    pub fn offer(&self, line: &[u8]) {
        let mut queue = self.shared.lock();
        if queue.lines.len() >= self.shared.capacity {
            queue.lines.pop_front();
            queue.dropped += 1;
            if queue.dropped == 1 || queue.dropped.is_power_of_two() {
                tracing::warn!(
                    collector = %self.target.address,
                    dropped = queue.dropped,
                    "the syslog queue is full: the oldest audit records are dropped (the local trail is complete)"
                );
            }
        }
        let id = queue.next;
        queue.next += 1;
        queue.lines.push_back((id, line.to_vec()));
        drop(queue);
        self.shared.changed.notify_all();
    }

    /// Waits up to `wait` for every queued line to be sent (not at all while the
    /// collector is unreachable); returns the count so far.
    #[must_use]
    pub fn drain(&self, wait: Duration) -> Delivery {
        let deadline = Instant::now() + wait;
        let mut queue = self.shared.lock();
        while !queue.lines.is_empty() && !queue.unreachable {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            queue = self
                .shared
                .changed
                .wait_timeout(queue, deadline - now)
                .map_or_else(|e| e.into_inner().0, |(q, _)| q);
        }
        queue.delivery()
    }

    /// Sends what it can within [`DRAIN_WAIT`] (nothing more while the collector is
    /// unreachable), stops the thread, and says what was delivered.
    #[must_use]
    pub fn finish(mut self) -> Delivery {
        self.stop(DRAIN_WAIT)
    }

    fn stop(&mut self, wait: Duration) -> Delivery {
        {
            let mut queue = self.shared.lock();
            let wait = if queue.unreachable {
                Duration::ZERO
            } else {
                wait
            };
            queue.stop_at = Some(Instant::now() + wait);
        }
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.shared.lock().delivery()
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop(Duration::ZERO);
        }
    }
}

/// A connection to the collector.
enum Connection {
    Tcp(TcpStream),
    UnixStream(UnixStream),
    UnixDatagram(UnixDatagram),
}

impl Connection {
    fn open(address: &Address) -> std::io::Result<Self> {
        match address {
            Address::Tcp(host_port) => {
                let addrs: Vec<SocketAddr> = host_port.to_socket_addrs()?.collect();
                let mut last = std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the host name resolves to no address",
                );
                for addr in addrs {
                    match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                        Ok(stream) => {
                            stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
                            stream.set_nodelay(true)?;
                            return Ok(Self::Tcp(stream));
                        }
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
            Address::Unix(path) => {
                let datagram = UnixDatagram::unbound()?;
                match datagram.connect(path) {
                    Ok(()) => {
                        datagram.set_write_timeout(Some(WRITE_TIMEOUT))?;
                        Ok(Self::UnixDatagram(datagram))
                    }
                    // A stream socket refuses a datagram peer with EPROTOTYPE.
                    Err(e) if e.raw_os_error() == Some(nix::libc::EPROTOTYPE) => {
                        let stream = UnixStream::connect(path)?;
                        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
                        Ok(Self::UnixStream(stream))
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Sends one message: framed by its length on a stream (RFC 6587 octet counting),
    /// as one datagram otherwise.
    fn send(&mut self, message: &[u8]) -> std::io::Result<()> {
        let framed = |message: &[u8]| {
            let mut out = format!("{} ", message.len()).into_bytes();
            out.extend_from_slice(message);
            out
        };
        match self {
            Self::Tcp(stream) => stream.write_all(&framed(message)),
            Self::UnixStream(stream) => stream.write_all(&framed(message)),
            Self::UnixDatagram(socket) => socket.send(message).map(drop),
        }
    }
}

/// The forwarder's thread: formats and sends, reconnecting with backoff.
struct Sender {
    target: SyslogTarget,
    hostname: String,
    pid: u32,
    connection: Option<Connection>,
    backoff: Duration,
    /// When the next connection attempt may be made.
    retry_at: Option<Instant>,
}

impl Sender {
    fn new(target: SyslogTarget) -> Self {
        let hostname = nix::sys::utsname::uname()
            .ok()
            .and_then(|u| u.nodename().to_str().map(str::to_owned))
            .filter(|h| !h.is_empty() && h.bytes().all(|b| (33..=126).contains(&b)))
            .unwrap_or_else(|| "-".to_owned());
        Self {
            target,
            hostname,
            pid: std::process::id(),
            connection: None,
            backoff: FIRST_BACKOFF,
            retry_at: None,
        }
    }

    fn run(mut self, shared: &Shared) {
        let mut queue = shared.lock();
        loop {
            let now = Instant::now();
            let stopping = queue.stop_at.is_some_and(|at| now >= at);
            if stopping || (queue.stop_at.is_some() && queue.lines.is_empty()) {
                return;
            }
            let Some((id, line)) = queue.lines.front().cloned() else {
                queue = shared
                    .changed
                    .wait(queue)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            };
            // Waiting to reconnect: sleep until then (or the end), unless woken.
            if let Some(at) = self.retry_at.filter(|at| *at > now) {
                let until = queue.stop_at.map_or(at, |stop| stop.min(at));
                queue = shared
                    .changed
                    .wait_timeout(queue, until.saturating_duration_since(now))
                    .map_or_else(|e| e.into_inner().0, |(q, _)| q);
                continue;
            }
            drop(queue);
            let sent = self.send(&line);
            queue = shared.lock();
            queue.unreachable = !sent;
            if sent {
                // Unless a full queue dropped it meanwhile (then counted as dropped).
                if queue.lines.front().is_some_and(|(front, _)| *front == id) {
                    queue.lines.pop_front();
                    queue.delivered += 1;
                }
            }
            if queue.lines.is_empty() || !sent {
                shared.changed.notify_all();
            }
        }
    }

    /// Sends one line, connecting first if needed; on failure drops the connection and
    /// schedules the next attempt.
    fn send(&mut self, line: &[u8]) -> bool {
        let message = self.message(line);
        let result = match &mut self.connection {
            Some(connection) => connection.send(&message),
            None => match Connection::open(&self.target.address) {
                Ok(mut connection) => {
                    tracing::info!(collector = %self.target.address, "connected to the syslog collector");
                    let sent = connection.send(&message);
                    self.connection = Some(connection);
                    sent
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => {
                self.backoff = FIRST_BACKOFF;
                self.retry_at = None;
                true
            }
            Err(e) => {
                tracing::warn!(
                    collector = %self.target.address,
                    error = %e,
                    retry_in_ms = u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX),
                    "cannot send audit records to the syslog collector; they wait in a bounded queue"
                );
                self.connection = None;
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                false
            }
        }
    }

    /// The RFC 5424 message for one record line:
    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`, with the record's own
    /// `ts` as TIMESTAMP and the line, unchanged, as MSG.
    fn message(&self, line: &[u8]) -> Vec<u8> {
        #[derive(serde::Deserialize)]
        struct Head<'a> {
            ts: Option<&'a str>,
            decision: Option<&'a str>,
        }
        let head: Option<Head<'_>> = serde_json::from_slice(line).ok();
        let ts = head
            .as_ref()
            .and_then(|h| h.ts)
            .filter(|ts| ts.len() <= 32 && ts.bytes().all(|b| (33..=126).contains(&b)))
            .unwrap_or("-");
        let severity = severity(head.as_ref().and_then(|h| h.decision));
        let pri = u16::from(self.target.facility) * 8 + u16::from(severity);
        let mut out = format!(
            "<{pri}>1 {ts} {} {APP_NAME} {} {MSG_ID} - ",
            self.hostname, self.pid
        )
        .into_bytes();
        out.extend_from_slice(line);
        out
    }
}

/// The syslog severity of a record: warning (4) for what was stopped, notice (5) for
/// what was changed or marked, informational (6) for the rest.
fn severity(decision: Option<&str>) -> u8 {
    match decision {
        Some("deny" | "hold") => 4,
        Some("redact" | "flag" | "monitor") => 5,
        _ => 6,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn addresses_parse_and_bad_ones_are_refused() {
        assert_eq!(
            "tcp://127.0.0.1:514".parse(),
            Ok(Address::Tcp("127.0.0.1:514".into()))
        );
        assert_eq!(
            "tcp://[::1]:6514".parse(),
            Ok(Address::Tcp("[::1]:6514".into()))
        );
        assert_eq!(
            "unix:///dev/log".parse(),
            Ok(Address::Unix("/dev/log".into()))
        );
        assert_eq!(
            "unix:/dev/log".parse(),
            Ok(Address::Unix("/dev/log".into()))
        );
        for bad in [
            "udp://h:1",
            "tcp://h",
            "tcp://h:0",
            "tcp://:514",
            "unix:rel",
            "/dev/log",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
        assert_eq!(facility("local0"), Ok(16));
        assert!(facility("local8").is_err());
    }

    fn target(address: Address, buffer: usize) -> SyslogTarget {
        SyslogTarget {
            address,
            facility: 10,
            buffer,
        }
    }

    /// Reads octet-counted frames until `n` were read.
    fn frames(stream: &mut TcpStream, n: usize) -> Vec<String> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        while out.len() < n {
            let got = stream.read(&mut chunk).expect("read");
            assert!(got > 0, "closed after {out:?}");
            buf.extend_from_slice(&chunk[..got]);
            while let Some(space) = buf.iter().position(|b| *b == b' ') {
                let len: usize = std::str::from_utf8(&buf[..space])
                    .expect("utf8")
                    .parse()
                    .expect("length");
                if buf.len() < space + 1 + len {
                    break;
                }
                out.push(
                    String::from_utf8(buf[space + 1..space + 1 + len].to_vec()).expect("utf8"),
                );
                buf.drain(..space + 1 + len);
            }
        }
        out
    }

    #[test]
    fn lines_go_out_as_rfc5424_with_octet_counting_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let forwarder = Forwarder::start(target(Address::Tcp(format!("127.0.0.1:{port}")), 100))
            .expect("start");
        let deny = r#"{"v":1,"ts":"2026-05-01T12:00:00.123Z","decision":"deny","seq":1}"#;
        let allow = r#"{"v":1,"ts":"2026-05-01T12:00:01.000Z","decision":"allow","seq":2}"#;
        forwarder.offer(deny.as_bytes());
        forwarder.offer(allow.as_bytes());
        let (mut stream, _) = listener.accept().expect("accept");
        let got = frames(&mut stream, 2);
        let pid = std::process::id();
        // authpriv (10) * 8 + warning (4) = 84; + informational (6) = 86.
        assert!(
            got[0].starts_with("<84>1 2026-05-01T12:00:00.123Z "),
            "{got:?}"
        );
        assert!(
            got[0].ends_with(&format!(" mcp-warden {pid} audit - {deny}")),
            "{got:?}"
        );
        assert!(
            got[1].starts_with("<86>1 2026-05-01T12:00:01.000Z "),
            "{got:?}"
        );
        assert!(got[1].ends_with(allow), "{got:?}");
        assert_eq!(
            forwarder.finish(),
            Delivery {
                delivered: 2,
                undelivered: 0
            }
        );
    }

    #[test]
    fn an_absent_collector_costs_a_bounded_queue_and_a_count_never_a_block() {
        // A port nobody listens on: bind, learn the port, close.
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let forwarder =
            Forwarder::start(target(Address::Tcp(format!("127.0.0.1:{port}")), 10)).expect("start");
        let started = Instant::now();
        for i in 0..1000 {
            forwarder.offer(format!(r#"{{"seq":{i}}}"#).as_bytes());
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "offer blocked"
        );
        assert!(forwarder.shared.lock().lines.len() <= 10);
        let delivery = forwarder.drain(Duration::from_millis(50));
        assert_eq!(delivery.delivered, 0);
        assert_eq!(delivery.undelivered, 1000);
        let started = Instant::now();
        assert_eq!(forwarder.finish().undelivered, 1000);
        assert!(started.elapsed() <= DRAIN_WAIT + Duration::from_secs(1));
    }

    #[test]
    fn a_collector_that_comes_back_gets_what_waited() {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let forwarder = Forwarder::start(target(Address::Tcp(format!("127.0.0.1:{port}")), 100))
            .expect("start");
        forwarder.offer(br#"{"seq":1}"#);
        std::thread::sleep(Duration::from_millis(50));
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("rebind");
        forwarder.offer(br#"{"seq":2}"#);
        let (mut stream, _) = listener.accept().expect("accept");
        let got = frames(&mut stream, 2);
        assert!(
            got[0].ends_with(r#"{"seq":1}"#) && got[1].ends_with(r#"{"seq":2}"#),
            "{got:?}"
        );
        assert_eq!(forwarder.finish().undelivered, 0);
    }

    #[test]
    fn unix_datagram_sockets_get_one_message_per_datagram() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.sock");
        let socket = UnixDatagram::bind(&path).expect("bind");
        let forwarder = Forwarder::start(target(Address::Unix(path), 10)).expect("start");
        forwarder.offer(br#"{"decision":"flag"}"#);
        let mut buf = [0u8; 1024];
        let n = socket.recv(&mut buf).expect("recv");
        let got = String::from_utf8_lossy(&buf[..n]).into_owned();
        // authpriv * 8 + notice (5) = 85; no framing on a datagram.
        assert!(got.starts_with("<85>1 - "), "{got}");
        assert!(got.ends_with(r#"audit - {"decision":"flag"}"#), "{got}");
        assert_eq!(forwarder.finish().delivered, 1);
    }
}
