//! The client side: the only module that writes to stdout in `serve`.
//!
//! One writer task owns stdout. Lines arrive on a bounded queue (back-pressure when
//! the client reads slowly) and are flushed whenever the queue runs dry, so a burst
//! becomes one write while a lone answer is not delayed; while that task is idle the
//! session writes to stdout directly ([`crate::jsonrpc::writer`]). A closed stdout
//! (EPIPE) ends the task, which the session takes as the client leaving. The client's
//! stdin is read by the session itself, a line at a time as it can take them.

use tokio::task::JoinHandle;

use crate::jsonrpc::writer::{self, LineSink, Output};

/// Lines that may wait for stdout. Small, because a line may be a maximum-size
/// message: a client that stops reading slows its producers instead of growing our
/// memory. The session keeps its own bounded backlog behind this queue.
pub const OUT_QUEUE: usize = 16;

/// Starts the writer task on `out`; returns the session's end and the task's handle.
/// The task ends when the sink is dropped (after flushing) or when the client closes
/// the pipe.
#[must_use]
pub fn start_writer(out: Output) -> (LineSink, JoinHandle<()>) {
    writer::start(out, OUT_QUEUE)
}
