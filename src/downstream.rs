//! The client side: the only module that writes to stdout in `serve`.
//!
//! One writer task owns stdout. Lines arrive on a bounded queue (back-pressure when
//! the client reads slowly) and are flushed whenever the queue runs dry, so a burst
//! becomes one write while a lone answer is not delayed. A closed stdout (EPIPE) ends
//! the task, which the session takes as the client leaving.

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;

use crate::jsonrpc::writer::write_lines;
use crate::jsonrpc::{Line, LineCodec};

/// Lines that may wait for stdout. Small, because a line may be a maximum-size
/// message: a client that stops reading slows its producers instead of growing our
/// memory. The session keeps its own bounded backlog behind this queue.
pub const OUT_QUEUE: usize = 16;
/// Lines from stdin not yet taken by the session.
pub const IN_QUEUE: usize = 1024;

/// What the client side tells the session.
#[derive(Debug)]
pub enum ClientEvent {
    Line(Line),
    /// stdin reached its end (or failed): the client is gone.
    Closed,
}

/// Starts the writer task on `out`; returns its queue and its handle. The task ends
/// when every sender is dropped (after flushing) or when the client closes the pipe.
pub fn start_writer<W>(out: W) -> (mpsc::Sender<Bytes>, JoinHandle<()>)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Bytes>(OUT_QUEUE);
    let task = tokio::spawn(async move {
        // A failed write means the client closed stdout: the task ends, and the session
        // sees its queue close.
        let _ = write_lines(out, rx).await;
    });
    (tx, task)
}

/// Starts the reader task on `input`, framing lines into `events`.
pub fn start_reader<R>(
    input: R,
    max_line: usize,
    events: mpsc::Sender<ClientEvent>,
) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut frames = FramedRead::new(input, LineCodec::new(max_line));
        while let Some(item) = frames.next().await {
            let Ok(line) = item else { break };
            if events.send(ClientEvent::Line(line)).await.is_err() {
                return;
            }
        }
        let _ = events.send(ClientEvent::Closed).await;
    })
}
