//! The client's stdin and stdout, and the servers' stdin, on the runtime's own event
//! loop.
//!
//! tokio's `stdin()` and `stdout()` do every read and write on its blocking thread pool,
//! which costs several thread hand-offs per message: measured here, about 20 µs of the
//! proxy's added latency per call (see `docs/benchmark.md`). A pipe, socket or terminal
//! can instead be made non-blocking and polled like a socket. mcp-warden works on
//! duplicates of fds 0 and 1, sets `O_NONBLOCK` on them (a flag of the open file, so it
//! is restored when the last holder lets go: a terminal must not be left non-blocking),
//! and falls back to tokio's own when the fd cannot be polled (a regular file).
//!
//! A writable end is shared ([`NonBlocking`]): its writer task holds it, and so does
//! the session, which writes to it directly while that task is idle
//! ([`crate::jsonrpc::writer::LineSink`]), saving two task hand-offs per call.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use futures_util::task::AtomicWaker;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::jsonrpc::writer::Output;

/// The client's stdin, polled when it can be.
#[must_use]
pub fn stdin() -> Input {
    match Polled::dup_of(std::io::stdin().as_fd()) {
        Some(fd) => {
            let eager = fd.eager.clone();
            Input {
                reader: Box::new(fd),
                eager: Some(eager),
            }
        }
        None => Input::from(tokio::io::stdin()),
    }
}

/// A readable end for the session: the stream, and its [`Eager`] when it is a polled
/// fd.
pub struct Input {
    pub reader: Box<dyn AsyncRead + Unpin + Send>,
    pub eager: Option<Eager>,
}

/// Any stream, read when the event loop says so (tests' in-memory pipes).
impl<R: AsyncRead + Unpin + Send + 'static> From<R> for Input {
    fn from(reader: R) -> Self {
        Self {
            reader: Box::new(reader),
            eager: None,
        }
    }
}

/// A server's stdout, polled, with its [`Eager`].
///
/// # Errors
/// When the pipe cannot be taken from tokio, made non-blocking or registered.
pub fn child_stdout(
    stdout: tokio::process::ChildStdout,
) -> std::io::Result<(Box<dyn AsyncRead + Unpin + Send>, Eager)> {
    pipe_reader(stdout.into_owned_fd()?)
}

/// The reading end of a pipe, polled, with its [`Eager`].
///
/// # Errors
/// When it cannot be made non-blocking or registered.
pub fn pipe_reader(owned: OwnedFd) -> std::io::Result<(Box<dyn AsyncRead + Unpin + Send>, Eager)> {
    let fd =
        Polled::own(owned).ok_or_else(|| std::io::Error::other("a pipe could not be polled"))?;
    let eager = fd.eager.clone();
    Ok((Box::new(fd), eager))
}

/// "An answer is likely there already": set by whoever just wrote to the peer that
/// answers on this fd. On one CPU the peer often runs the moment it is written to and
/// has answered by the time we look, yet the event loop would learn that only from its
/// next `epoll_wait` and a wake-up; the next read instead tries `read(2)` at once (one
/// attempt: if nothing is there, it waits as before).
#[derive(Debug, Clone, Default)]
pub struct Eager(Arc<EagerState>);

#[derive(Debug, Default)]
struct EagerState {
    armed: AtomicBool,
    /// The task that last found the fd empty: woken by [`Eager::expect`].
    waker: AtomicWaker,
}

impl Eager {
    /// The next read tries at once (for a reader about to look anyway).
    pub fn arm(&self) {
        self.0.armed.store(true, Ordering::Release);
    }

    /// [`Eager::arm`], and the task waiting on the fd is woken to look.
    pub fn expect(&self) {
        self.arm();
        self.0.waker.wake();
    }
}

/// The client's stdout, polled when it can be; then also written directly.
#[must_use]
// The downstream writer's stdout: in `serve`, the one writer of protocol frames.
#[allow(clippy::disallowed_methods)]
pub fn stdout() -> Output {
    match Polled::dup_of(std::io::stdout().as_fd()) {
        Some(fd) => fd.into_output(),
        None => Output::from(tokio::io::stdout()),
    }
}

/// A server's stdin, polled and written directly like the client's stdout.
///
/// # Errors
/// When the pipe cannot be taken from tokio, made non-blocking or registered.
pub fn child_stdin(stdin: tokio::process::ChildStdin) -> std::io::Result<Output> {
    pipe_writer(stdin.into_owned_fd()?)
}

/// The writing end of a pipe, polled and written directly.
///
/// # Errors
/// When it cannot be made non-blocking or registered.
pub fn pipe_writer(owned: OwnedFd) -> std::io::Result<Output> {
    Polled::own(owned)
        .map(Polled::into_output)
        .ok_or_else(|| std::io::Error::other("a pipe could not be polled"))
}

/// An open file made non-blocking by us, shared by its writer task and the session;
/// its file status flags are put back when the last holder lets go.
#[derive(Debug)]
pub struct NonBlocking {
    file: File,
    /// The file status flags before ours.
    flags: OFlag,
}

impl NonBlocking {
    /// One `write(2)`: never waits (`WouldBlock` when the pipe is full).
    ///
    /// # Errors
    /// What `write(2)` says.
    pub fn write(&self, data: &[u8]) -> std::io::Result<usize> {
        (&self.file).write(data)
    }

    /// One `writev(2)`: never waits.
    ///
    /// # Errors
    /// What `writev(2)` says.
    pub fn write_vectored(&self, data: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        (&self.file).write_vectored(data)
    }
}

impl AsRawFd for NonBlocking {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl Drop for NonBlocking {
    fn drop(&mut self) {
        let _ = fcntl(&self.file, FcntlArg::F_SETFL(self.flags));
    }
}

/// A non-blocking fd, registered with the runtime.
struct Polled {
    fd: AsyncFd<Arc<NonBlocking>>,
    eager: Eager,
}

impl Polled {
    /// A duplicate of a standard fd; `None` when it cannot be duplicated, made
    /// non-blocking or polled.
    fn dup_of(fd: BorrowedFd<'_>) -> Option<Self> {
        Self::own(fd.try_clone_to_owned().ok()?)
    }

    /// `None` when `owned` cannot be made non-blocking or polled.
    fn own(owned: OwnedFd) -> Option<Self> {
        let flags = OFlag::from_bits_truncate(fcntl(&owned, FcntlArg::F_GETFL).ok()?);
        fcntl(&owned, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).ok()?;
        let shared = Arc::new(NonBlocking {
            file: File::from(owned),
            flags,
        });
        // SAFETY: the `NonBlocking` owns its fd, which stays open and refers to the same
        // open file for as long as the `AsyncFd` (or any other holder) keeps the `Arc`.
        // A file that cannot be polled (a regular file) gets its flags back when the
        // refused `Arc` drops.
        unsafe { AsyncFd::register(shared) }.ok().map(|fd| Self {
            fd,
            eager: Eager::default(),
        })
    }

    /// This fd as a writer task's output, with the direct path beside it.
    fn into_output(self) -> Output {
        let direct = Arc::clone(self.fd.get_ref());
        Output::with_direct(self, direct)
    }
}

/// One `read(2)` into `unfilled`, which it does not read from.
fn raw_read(
    file: &NonBlocking,
    unfilled: &mut [std::mem::MaybeUninit<u8>],
) -> std::io::Result<usize> {
    // SAFETY: the pointer and length describe writable memory we hold exclusively;
    // `read(2)` writes at most that many bytes and returns how many.
    let n = unsafe {
        nix::libc::read(
            file.as_raw_fd(),
            unfilled.as_mut_ptr().cast(),
            unfilled.len(),
        )
    };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

impl AsyncRead for Polled {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.eager.0.armed.swap(false, Ordering::AcqRel) {
            // SAFETY: as below: nothing is read from the slice before `read(2)`
            // has written it.
            let unfilled = unsafe { buf.unfilled_mut() };
            match raw_read(self.fd.get_ref(), unfilled) {
                Ok(n) => {
                    // SAFETY: `read(2)` initialized the first `n` bytes.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Not there yet: wait for it as usual.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        loop {
            let mut guard = match self.fd.poll_read_ready(cx) {
                Poll::Ready(guard) => guard?,
                Poll::Pending => {
                    self.eager.0.waker.register(cx.waker());
                    return Poll::Pending;
                }
            };
            let wanted = buf.remaining();
            // `read(2)` straight into the unfilled part: the framed reader hands over
            // its spare capacity uninitialized on every read, and zeroing it first
            // (`initialize_unfilled`) cost a memset of the whole buffer per message.
            // SAFETY: nothing is read from the slice before `read(2)` has written it.
            let unfilled = unsafe { buf.unfilled_mut() };
            match guard.try_io(|file| raw_read(file.get_ref(), unfilled)) {
                Ok(Ok(n)) => {
                    // SAFETY: `read(2)` initialized the first `n` bytes.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    // A short read emptied the pipe or socket: wait for its next edge
                    // instead of learning that from one more `read` that fails with
                    // EAGAIN (one syscall per message saved; tokio's own sockets do
                    // the same). End of file (0) keeps the readiness: it stays true.
                    if 0 < n && n < wanted {
                        guard.clear_ready();
                    }
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // Spurious readiness: wait again.
                Err(_would_block) => {}
            }
        }
    }
}

impl AsyncWrite for Polled {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            if let Ok(result) = guard.try_io(|file| file.get_ref().write(data)) {
                // A short write filled the pipe: the next one waits for room instead
                // of failing with EAGAIN first.
                if matches!(result, Ok(n) if 0 < n && n < data.len()) {
                    guard.clear_ready();
                }
                return Poll::Ready(result);
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // Writes go straight to the fd: nothing is buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// An armed read takes what is there at once; with nothing there it waits as an
    /// unarmed one does; the end of the pipe is the end either way.
    #[tokio::test]
    async fn an_armed_read_takes_what_is_there_and_otherwise_waits_as_before() {
        let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
        let (mut reader, eager) = pipe_reader(read_end).expect("polled");
        let mut writer = File::from(write_end);
        let mut buf = [0u8; 16];
        eager.arm();
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), reader.read(&mut buf)).await;
        assert!(waited.is_err(), "read what was never written");
        writer.write_all(b"one\n").expect("written");
        let n = reader.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"one\n");
        writer.write_all(b"two\n").expect("written");
        eager.arm();
        let n = reader.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"two\n");
        eager.expect();
        writer.write_all(b"three\n").expect("written");
        let n = reader.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"three\n");
        drop(writer);
        eager.arm();
        assert_eq!(reader.read(&mut buf).await.expect("read"), 0);
    }
}
