//! The operator's log: `logs/serve.log.YYYY-MM-DD` in the data dir, rolled daily at UTC
//! midnight, written off the message path by a background thread. Upstream stderr is
//! logged here with the server's name. Never stdout: in `serve` that is the protocol's.
//!
//! Every event is one line, escaped as [`crate::output::one_line`] escapes: upstream
//! stderr and the server-supplied text in messages carry ESC sequences, bare CRs and
//! newlines that would otherwise forge or hide lines when a person runs `tail` or
//! `less -R` on the log ([`Escaping`]).

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Environment variable with a `tracing` filter for the log file (default `info`).
pub const LOG_VAR: &str = "MCP_WARDEN_LOG";

/// Starts logging into `dir`. The directory is created mode 0700, so the files in it
/// (which hold upstream stderr, possibly with secrets) are private to the user. Keep
/// the guard alive: dropping it flushes the log.
pub fn init(dir: &Path) -> std::io::Result<WorkerGuard> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("serve.log")
        .build(dir)
        .map_err(std::io::Error::other)?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
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
}
