//! Writing framed lines to a stream: shared by the client side (stdout) and every
//! upstream's stdin, so both batch and flush the same way.

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

/// Writes queued lines (each with its `\n`) to `out` until the queue closes or a write
/// fails. It flushes whenever the queue runs dry: a burst becomes one write, while a
/// lone message is not held back waiting for company. A lone message (every call of a
/// sequential client) is written from its own buffer, not copied into the batch buffer
/// first.
pub async fn write_lines<W>(out: W, mut queue: mpsc::Receiver<Bytes>) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut out = BufWriter::new(out);
    while let Some(line) = queue.recv().await {
        let Ok(next) = queue.try_recv() else {
            // The batch buffer is empty here (flushed below), so order is kept.
            out.get_mut().write_all(&line).await?;
            continue;
        };
        out.write_all(&line).await?;
        out.write_all(&next).await?;
        while let Ok(line) = queue.try_recv() {
            out.write_all(&line).await?;
        }
        out.flush().await?;
    }
    out.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Lone lines (written straight from their buffers) and bursts (batched) come out
    /// whole and in order.
    #[tokio::test]
    async fn lone_lines_and_bursts_keep_their_order() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let (tx, rx) = mpsc::channel(16);
        let writer = tokio::spawn(write_lines(ours, rx));
        let mut want = Vec::new();
        for round in 0..20u8 {
            // Rounds alternate one line and a burst of several.
            let count = if round % 2 == 0 { 1 } else { 5 };
            for i in 0..count {
                let line = format!("{{\"round\":{round},\"i\":{i}}}\n");
                want.extend_from_slice(line.as_bytes());
                tx.send(Bytes::from(line)).await.expect("queued");
            }
            tokio::task::yield_now().await;
        }
        drop(tx);
        writer.await.expect("joined").expect("written");
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).await.expect("read");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
    }
}
