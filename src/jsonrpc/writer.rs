//! Writing framed lines to a stream: shared by the client side (stdout) and every
//! upstream's stdin, so both batch and flush the same way.

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

/// Writes queued lines (each with its `\n`) to `out` until the queue closes or a write
/// fails. It flushes whenever the queue runs dry: a burst becomes one write, while a
/// lone message is not held back waiting for company.
pub async fn write_lines<W>(out: W, mut queue: mpsc::Receiver<Bytes>) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut out = BufWriter::new(out);
    while let Some(line) = queue.recv().await {
        out.write_all(&line).await?;
        while let Ok(line) = queue.try_recv() {
            out.write_all(&line).await?;
        }
        out.flush().await?;
    }
    out.flush().await
}
