//! A server's stdout as framed lines, read either by a task of its own that forwards
//! them as [`UpstreamEvent::Line`]s (the inventory) or by the session itself, which
//! holds every running server's in one [`StdoutSet`].
//!
//! Why the session reads them itself: a forwarding task costs every answer a task
//! wake-up and a trip through a bounded channel on the session's thread (~1.2k of the
//! session thread's ~28.6k instructions a `tools/call`, docs/benchmark.md), and the
//! answer that is already in the pipe when the session has written the request is
//! read in the same turn.
//!
//! Either way the supervisor learns that the last line was taken from the reader's
//! drop (its [`StdoutLines`] holds the sender of a oneshot the supervisor waits on),
//! so a process's exit is reported after its last line.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::io::AsyncRead;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;

use super::{InstanceId, UpstreamEvent};
use crate::jsonrpc::{Line, LineCodec};

/// One server's stdout, framed.
pub struct StdoutLines {
    instance: InstanceId,
    frames: FramedRead<Box<dyn AsyncRead + Unpin + Send>, LineCodec>,
    /// Dropped with the reader: its supervisor then reports the exit.
    _drained: oneshot::Sender<()>,
}

impl std::fmt::Debug for StdoutLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdoutLines")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl StdoutLines {
    /// The reader, and what its supervisor waits on (resolves when the reader is
    /// dropped).
    pub(super) fn new(
        instance: InstanceId,
        stdout: Box<dyn AsyncRead + Unpin + Send>,
    ) -> (Self, oneshot::Receiver<()>) {
        let (drained, wait) = oneshot::channel();
        let lines = Self {
            instance,
            frames: FramedRead::new(stdout, LineCodec::default()),
            _drained: drained,
        };
        (lines, wait)
    }

    /// The next line; `None` at end of file or on a read error (the process is gone
    /// or going: its exit comes from the supervisor).
    fn poll_line(&mut self, cx: &mut Context<'_>) -> Poll<Option<Line>> {
        match Pin::new(&mut self.frames).poll_next(cx) {
            Poll::Ready(Some(Ok(line))) => Poll::Ready(Some(line)),
            Poll::Ready(Some(Err(_)) | None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Forwards every line as an [`UpstreamEvent::Line`] until end of file or until
    /// nobody listens.
    pub(super) async fn forward(mut self, events: mpsc::Sender<UpstreamEvent>) {
        while let Some(line) = std::future::poll_fn(|cx| self.poll_line(cx)).await {
            if events
                .send(UpstreamEvent::Line(self.instance, line))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// Every running server's stdout, read by the session on its own thread.
#[derive(Debug, Default)]
pub struct StdoutSet {
    readers: Vec<StdoutLines>,
    /// Where the next poll starts, so a chatty server cannot starve the others.
    next: usize,
}

impl StdoutSet {
    pub fn insert(&mut self, lines: StdoutLines) {
        self.readers.push(lines);
    }

    /// Stops reading `instance`'s stdout (its process has exited).
    pub fn remove(&mut self, instance: InstanceId) {
        self.readers.retain(|r| r.instance != instance);
    }

    /// The next line of any server. A reader at its end is dropped (which lets its
    /// supervisor report the exit) and the others are asked on.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<(InstanceId, Line)> {
        let mut asked = 0;
        while asked < self.readers.len() {
            let at = (self.next + asked) % self.readers.len();
            match self.readers[at].poll_line(cx) {
                Poll::Ready(Some(line)) => {
                    self.next = at + 1;
                    return Poll::Ready((self.readers[at].instance, line));
                }
                Poll::Ready(None) => {
                    self.readers.swap_remove(at);
                }
                Poll::Pending => asked += 1,
            }
        }
        Poll::Pending
    }

    /// [`StdoutSet::poll_next`] as a future.
    pub fn next_line(&mut self) -> impl Future<Output = (InstanceId, Line)> + '_ {
        std::future::poll_fn(|cx| self.poll_next(cx))
    }

    /// A complete line some reader already holds. Only readers with bytes in their
    /// buffer are asked (one holding part of a line may read its pipe for the rest).
    pub fn buffered(&mut self) -> Option<(InstanceId, Line)> {
        let mut at = 0;
        while let Some(reader) = self.readers.get_mut(at) {
            if reader.frames.read_buffer().is_empty() {
                at += 1;
                continue;
            }
            match reader.poll_line(&mut Context::from_waker(std::task::Waker::noop())) {
                Poll::Ready(Some(line)) => return Some((reader.instance, line)),
                Poll::Ready(None) => {
                    self.readers.swap_remove(at);
                }
                Poll::Pending => at += 1,
            }
        }
        None
    }

    /// Reads and drops every line until each server's stdout ends, so servers that
    /// are being stopped can still write theirs without a broken pipe.
    pub async fn discard(mut self) {
        std::future::poll_fn(|cx| {
            // A bounded number of lines a poll, so a flood cannot hold the thread.
            for _ in 0..64 {
                match self.poll_next(cx) {
                    Poll::Ready(_) => {}
                    // The last reader ended (nothing left to wake us) or all wait.
                    Poll::Pending if self.readers.is_empty() => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn pipe() -> (
        StdoutLines,
        oneshot::Receiver<()>,
        std::fs::File,
        InstanceId,
    ) {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let instance = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (read, write) = nix::unistd::pipe().expect("a pipe");
        let (reader, _eager) = crate::stdio::pipe_reader(read).expect("polled");
        let (lines, drained) = StdoutLines::new(instance, reader);
        (lines, drained, std::fs::File::from(write), instance)
    }

    fn frame(line: &Line) -> &[u8] {
        match line {
            Line::Frame(bytes) => bytes,
            Line::Overlong { .. } => panic!("an overlong line"),
        }
    }

    #[tokio::test]
    async fn lines_of_every_server_come_tagged_and_an_ended_one_lets_its_supervisor_go() {
        let mut set = StdoutSet::default();
        let (first, mut first_drained, mut first_writer, first_id) = pipe();
        let (second, _second_drained, mut second_writer, second_id) = pipe();
        set.insert(first);
        set.insert(second);
        second_writer.write_all(b"{\"b\":1}\n").expect("write");
        let (from, line) = set.next_line().await;
        assert_eq!((from, frame(&line)), (second_id, &b"{\"b\":1}"[..]));
        first_writer
            .write_all(b"{\"a\":1}\n{\"a\":2}\n")
            .expect("write");
        let (from, line) = set.next_line().await;
        assert_eq!((from, frame(&line)), (first_id, &b"{\"a\":1}"[..]));
        // The second line is already read: taken without asking the pipe.
        let (from, line) = set.buffered().expect("a buffered line");
        assert_eq!((from, frame(&line)), (first_id, &b"{\"a\":2}"[..]));
        assert!(set.buffered().is_none());
        assert!(
            first_drained
                .try_recv()
                .is_err_and(|e| e == oneshot::error::TryRecvError::Empty)
        );
        drop(first_writer);
        // `a` ends: dropped on the way (its supervisor is let go), `b` has nothing.
        let none =
            tokio::time::timeout(std::time::Duration::from_millis(50), set.next_line()).await;
        assert!(none.is_err());
        assert!(
            first_drained
                .try_recv()
                .is_err_and(|e| e == oneshot::error::TryRecvError::Closed)
        );
        second_writer.write_all(b"{\"b\":2}\n").expect("write");
        let (from, _) = set.next_line().await;
        assert_eq!(from, second_id);
        drop(second_writer);
        tokio::time::timeout(std::time::Duration::from_secs(5), set.discard())
            .await
            .expect("discard ends when every stdout has");
    }

    #[tokio::test]
    async fn a_part_of_a_line_in_one_reader_does_not_hide_a_whole_line_in_another() {
        let mut set = StdoutSet::default();
        let (first, _first_drained, mut first_writer, first_id) = pipe();
        let (second, _second_drained, mut second_writer, second_id) = pipe();
        set.insert(first);
        set.insert(second);
        first_writer.write_all(b"{\"a\":1}\n{\"a\"").expect("write");
        assert_eq!(set.next_line().await.0, first_id);
        second_writer
            .write_all(b"{\"b\":1}\n{\"b\":2}\n")
            .expect("write");
        assert_eq!(set.next_line().await.0, second_id);
        let (from, line) = set.buffered().expect("the second reader's buffered line");
        assert_eq!((from, frame(&line)), (second_id, &b"{\"b\":2}"[..]));
        assert!(set.buffered().is_none());
    }

    #[tokio::test]
    async fn removing_an_instance_lets_its_supervisor_go() {
        let mut set = StdoutSet::default();
        let (first, first_drained, _first_writer, first_id) = pipe();
        set.insert(first);
        set.remove(first_id);
        assert!(set.readers.is_empty());
        assert!(first_drained.await.is_err());
    }
}
