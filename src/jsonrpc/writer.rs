//! Writing framed lines to a stream: shared by the client side (stdout) and every
//! upstream's stdin, so both batch and flush the same way.
//!
//! Lines go to a writer task through a bounded queue. When the stream is a
//! non-blocking fd ([`crate::stdio::NonBlocking`]), the producer (the session) writes
//! to it itself while that task has nothing queued and nothing half written: a lone
//! answer, every call of a sequential client, then costs no hand-off to another task.
//! What a direct write does not take goes to the task, so order is kept, and the task
//! alone waits for room in the pipe: the session never blocks on a slow reader.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::stdio::NonBlocking;

/// Most lines one direct `writev(2)` carries (well under `IOV_MAX`).
const DIRECT_LINES: usize = 64;

/// Where a writer task writes, and the same fd for direct writes when it has one.
pub struct Output {
    writer: Box<dyn AsyncWrite + Unpin + Send>,
    direct: Option<Arc<NonBlocking>>,
}

impl Output {
    /// `writer`, also written directly through `direct` (the same open file).
    pub(crate) fn with_direct(
        writer: impl AsyncWrite + Unpin + Send + 'static,
        direct: Arc<NonBlocking>,
    ) -> Self {
        Self {
            writer: Box::new(writer),
            direct: Some(direct),
        }
    }
}

/// Any stream, written by its task only (tests' in-memory pipes, a regular file).
impl<W: AsyncWrite + Unpin + Send + 'static> From<W> for Output {
    fn from(writer: W) -> Self {
        Self {
            writer: Box::new(writer),
            direct: None,
        }
    }
}

/// The writer task has ended: the stream is closed or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// The producer's end: direct writes while the task is idle, its queue otherwise.
#[derive(Debug)]
pub struct LineSink {
    queue: mpsc::Sender<Bytes>,
    /// Lines handed to the task and not yet written by it: 0 means nothing is queued
    /// or half written, so a direct write keeps the order.
    busy: Arc<AtomicUsize>,
    direct: Option<Arc<NonBlocking>>,
}

/// Starts the writer task on `output` with a queue of `capacity` lines.
#[must_use]
pub fn start(output: Output, capacity: usize) -> (LineSink, JoinHandle<()>) {
    let (queue, rx) = mpsc::channel(capacity);
    let busy = Arc::new(AtomicUsize::new(0));
    let task = tokio::spawn({
        let busy = Arc::clone(&busy);
        // A failed write ends the task (the stream is gone); its producer then sees
        // the queue closed. `busy` stays above 0, so nothing is written directly after.
        async move {
            let _ = write_lines(output.writer, rx, &busy).await;
        }
    });
    let sink = LineSink {
        queue,
        busy,
        direct: output.direct,
    };
    (sink, task)
}

impl LineSink {
    /// Sends the front of `lines`, in order, as far as it goes without waiting; what
    /// does not fit in the queue stays in `lines`.
    ///
    /// # Errors
    /// [`Closed`] when the writer task has ended.
    pub fn send_from(&self, lines: &mut VecDeque<Bytes>) -> Result<(), Closed> {
        if lines.is_empty() {
            return Ok(());
        }
        self.write_directly(lines);
        while let Some(line) = lines.pop_front() {
            self.busy.fetch_add(1, Ordering::AcqRel);
            match self.queue.try_send(line) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(line)) => {
                    self.busy.fetch_sub(1, Ordering::AcqRel);
                    lines.push_front(line);
                    return Ok(());
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.busy.fetch_sub(1, Ordering::AcqRel);
                    return Err(Closed);
                }
            }
        }
        Ok(())
    }

    /// Lines the queue takes before it is full (0 while the task is behind).
    #[must_use]
    pub fn room(&self) -> usize {
        self.queue.capacity()
    }

    /// Whether the writer task has lines to write (queued or half written).
    #[must_use]
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) != 0
    }

    /// Whether the writer task has ended.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Waits until the queue has room for a line.
    ///
    /// # Errors
    /// [`Closed`] when the writer task has ended.
    pub async fn ready(&self) -> Result<(), Closed> {
        self.queue.reserve().await.map(drop).map_err(|_| Closed)
    }

    /// Writes the front of `lines` straight to the fd while the task is idle: whole
    /// lines leave `lines`, a line written in part keeps its unwritten rest in front.
    /// Stops at the first write that does not take everything (the pipe is full) or
    /// fails: the task then waits for room, or meets the same error and ends.
    fn write_directly(&self, lines: &mut VecDeque<Bytes>) {
        let Some(fd) = &self.direct else { return };
        if self.is_busy() {
            return;
        }
        while !lines.is_empty() {
            let result = if lines.len() == 1 {
                fd.write(&lines[0])
            } else {
                let mut slices = [IoSlice::new(&[]); DIRECT_LINES];
                let count = lines.len().min(DIRECT_LINES);
                for (slice, line) in slices.iter_mut().zip(lines.iter()) {
                    *slice = IoSlice::new(line);
                }
                fd.write_vectored(&slices[..count])
            };
            let mut written = match result {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            while let Some(front) = lines.front_mut() {
                if written < front.len() {
                    front.advance(written);
                    // In part, or nothing: the pipe is full.
                    return;
                }
                written -= front.len();
                lines.pop_front();
            }
        }
    }
}

/// Writes queued lines (each with its `\n`) to `out` until the queue closes or a write
/// fails, taking each from `busy` once written. It flushes whenever the queue runs
/// dry: a burst becomes one write, while a lone message is not held back waiting for
/// company. A lone message is written from its own buffer, not copied into the batch
/// buffer first.
async fn write_lines<W>(
    out: W,
    mut queue: mpsc::Receiver<Bytes>,
    busy: &AtomicUsize,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut out = BufWriter::new(out);
    while let Some(line) = queue.recv().await {
        let Ok(next) = queue.try_recv() else {
            // The batch buffer is empty here (flushed below), so order is kept.
            out.get_mut().write_all(&line).await?;
            busy.fetch_sub(1, Ordering::AcqRel);
            continue;
        };
        out.write_all(&line).await?;
        out.write_all(&next).await?;
        let mut lines = 2;
        while let Ok(line) = queue.try_recv() {
            out.write_all(&line).await?;
            lines += 1;
        }
        out.flush().await?;
        busy.fetch_sub(lines, Ordering::AcqRel);
    }
    out.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use tokio::io::AsyncReadExt;

    /// Lone lines (written straight from their buffers) and bursts (batched) come out
    /// whole and in order.
    #[tokio::test]
    async fn lone_lines_and_bursts_keep_their_order() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let (sink, writer) = start(Output::from(ours), 16);
        let mut want = Vec::new();
        for round in 0..20u8 {
            // Rounds alternate one line and a burst of several.
            let count = if round % 2 == 0 { 1 } else { 5 };
            let mut lines = VecDeque::new();
            for i in 0..count {
                let line = format!("{{\"round\":{round},\"i\":{i}}}\n");
                want.extend_from_slice(line.as_bytes());
                lines.push_back(Bytes::from(line));
            }
            while !lines.is_empty() {
                sink.send_from(&mut lines).expect("open");
                sink.ready().await.expect("open");
            }
            tokio::task::yield_now().await;
        }
        drop(sink);
        writer.await.expect("joined");
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).await.expect("read");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
    }

    /// Into a real pipe read slowly: direct writes that fill it, the rest handed to the
    /// task, and direct writes again once it is idle, all in order and whole.
    #[tokio::test]
    async fn direct_writes_and_the_task_keep_the_order_when_the_pipe_fills() {
        let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
        let output = crate::stdio::pipe_writer(write_end).expect("polled");
        let (sink, writer) = start(output, 8);
        let reader = tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::from(read_end);
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match file.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                }
                // Slow at first, so the pipe fills; then fast.
                if got.len() < 200_000 {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            }
            got
        });
        let mut want = Vec::new();
        let mut pending = VecDeque::new();
        for i in 0..600u32 {
            let line = format!(
                "{{\"i\":{i},\"pad\":\"{}\"}}\n",
                "x".repeat(900 + (i as usize % 7) * 61)
            );
            want.extend_from_slice(line.as_bytes());
            pending.push_back(Bytes::from(line));
            if i % 5 == 4 {
                sink.send_from(&mut pending).expect("open");
                if !pending.is_empty() {
                    sink.ready().await.expect("open");
                }
            }
        }
        while !pending.is_empty() {
            sink.send_from(&mut pending).expect("open");
            if !pending.is_empty() {
                sink.ready().await.expect("open");
            }
        }
        drop(sink);
        writer.await.expect("joined");
        let got = reader.await.expect("joined");
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes out of order");
    }
}
