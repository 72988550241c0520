//! The operator's log: `logs/serve.log.YYYY-MM-DD` in the data dir, rolled daily at UTC
//! midnight, written off the message path by a background thread. Upstream stderr is
//! logged here with the server's name. Never stdout: in `serve` that is the protocol's.
//!
//! Every event is one line, escaped as [`crate::output::one_line`] escapes: upstream
//! stderr and the server-supplied text in messages carry ESC sequences, bare CRs and
//! newlines that would otherwise forge or hide lines when a person runs `tail` or
//! `less -R` on the log ([`Escaping`]).
//!
//! The files are created mode 0600 (whatever the umask) and opened without following
//! a symlink: they may hold upstream stderr, and the README promises that everything
//! in the data dir is the user's alone.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::time::{Day, Timestamp};

/// Environment variable with a `tracing` filter for the log file (default `info`).
pub const LOG_VAR: &str = "MCP_WARDEN_LOG";

/// The log files' name before the date.
const PREFIX: &str = "serve.log";

/// Log lines that may wait for the log thread. tracing-appender's default, 128,000,
/// allocates and touches its whole queue up front (32 bytes a slot: 4 MiB, a third of
/// `serve`'s resident memory). Lines are written within microseconds, and upstream
/// stderr, the only source that can flood, is limited to 200 lines a second per server;
/// past the limit lines are dropped rather than blocking the message path.
const LOG_QUEUE_LINES: usize = 4096;

/// Mode of the log files: private.
const MODE: u32 = 0o600;

/// Starts logging into `dir`. The directory is created mode 0700 and the files 0600,
/// so what they hold (upstream stderr, possibly with secrets) is private to the user.
/// Keep the guard alive: dropping it flushes the log.
pub fn init(dir: &Path) -> std::io::Result<WorkerGuard> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .finish(DailyFile::new(dir));
    let writer = Escaping(writer);
    let filter = EnvFilter::try_from_env(LOG_VAR).unwrap_or_else(|_| EnvFilter::new("info"));
    let installed = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
    if installed.is_err() {
        tracing::debug!("a tracing subscriber was already installed");
    }
    Ok(guard)
}

/// A log writer that escapes each event before it reaches the file. The formatter
/// writes one whole event per `write_all` (its text and a final newline), so the final
/// newline is the only character kept raw: everything else a terminal would act on or
/// a reader could not see, newlines inside the event included, is written visibly.
#[derive(Clone)]
struct Escaping<W>(W);

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (body, newline) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (&*text, ""),
        };
        let shown = crate::output::one_line(body);
        self.0.write_all(shown.as_bytes())?;
        self.0.write_all(newline.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<'a, M: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for Escaping<M>
{
    type Writer = Escaping<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Escaping(self.0.make_writer())
    }
}

/// `dir/serve.log.YYYY-MM-DD` for the current UTC day, reopened when the day changes.
struct DailyFile {
    dir: PathBuf,
    open: Option<(Day, File)>,
}

impl DailyFile {
    fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            open: None,
        }
    }

    /// The file of today, opened (append, 0600, no symlink) when needed.
    fn file(&mut self) -> io::Result<&mut File> {
        let today = Timestamp::now().day();
        if self.open.as_ref().is_none_or(|(day, _)| *day != today) {
            let path = self.dir.join(format!("{PREFIX}.{today}"));
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(MODE)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
                .open(&path)?;
            // A file made by an older version under a loose umask is tightened too.
            file.set_permissions(std::fs::Permissions::from_mode(MODE))?;
            self.open = Some((today, file));
        }
        match &mut self.open {
            Some((_, file)) => Ok(file),
            None => Err(io::Error::other("no log file")),
        }
    }
}

impl Write for DailyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.open {
            Some((_, file)) => file.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_escaped_line() {
        let mut out = Escaping(Vec::new());
        out.write_all(b"INFO upstream::stderr: server=x \x1b[2Jok\rforged\nnext\xe2\x80\xae\n")
            .expect("writes");
        assert_eq!(
            String::from_utf8(out.0).expect("utf-8"),
            "INFO upstream::stderr: server=x \\u{1b}[2Jok\\rforged\\nnext\\u{202e}\n"
        );
    }

    #[test]
    fn the_log_file_is_private_and_a_symlink_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = DailyFile::new(dir.path());
        log.write_all(b"line\n").expect("write");
        let path = dir
            .path()
            .join(format!("{PREFIX}.{}", Timestamp::now().day()));
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&path).expect("read"), b"line\n");

        let other = tempfile::tempdir().expect("tempdir");
        let target = other.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, &path).ok();
        std::fs::remove_file(&path).expect("rm");
        std::os::unix::fs::symlink(&target, &path).expect("symlink");
        let mut log = DailyFile::new(dir.path());
        assert!(log.write_all(b"x\n").is_err());
        assert!(!target.exists());
    }
}
