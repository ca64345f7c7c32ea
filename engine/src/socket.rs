//! TCP socket helpers shared by the broker and the bench client: reading into a buffer's
//! unused capacity without zeroing it first, and a second descriptor for a writer task.
//!
//! `AsyncRead` needs an initialised `&mut [u8]`, so a frame read the usual way is zeroed
//! and then overwritten. perf put that memset at 25% of the bench client's CPU while 32
//! consumers read 1.8 GB/s, and at ~4% of the broker's under 64 KiB produce requests.
//! [`recv_exact_into`] instead hands `recv(2)` a raw pointer into the spare capacity (no
//! reference to uninitialised memory is formed) and extends the length by what the kernel
//! wrote. When the socket has nothing to read, glommio's `peek` (io_uring, MSG_PEEK) waits
//! for data without taking it. A caller that owns its executor's CPU time (a latency
//! benchmark with one request in flight) may first busy-poll the socket for a bounded
//! time instead, which saves the executor's sleep and wake-up (several `io_uring_enter`
//! calls and a context switch) per message.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use glommio::net::TcpStream;

/// Appends exactly `n` bytes from `stream` to `buf`. Capacity is added only once the
/// socket has bytes to put there, and then as many as are waiting (`FIONREAD`), but at
/// least `step` and at most what is still missing. So a peer that claims a large frame
/// pins nothing until it sends, and then at most twice what it sent plus `step`; a frame
/// already waiting whole gets its buffer in one allocation. An end of stream before `n`
/// bytes is `UnexpectedEof`.
///
/// When the socket is empty, it is polled again, between the executor's other tasks,
/// for up to `busy_poll` (zero: not at all) before the task waits for readiness. That
/// keeps the executor from sleeping, so its thread burns its CPU meanwhile: only worth
/// it where latency matters more than the CPU.
pub async fn recv_exact_into(
    stream: &TcpStream,
    buf: &mut BytesMut,
    n: usize,
    step: usize,
    busy_poll: Duration,
) -> io::Result<()> {
    assert!(step > 0, "the growth step must be positive");
    let end = buf.len() + n;
    let fd = stream.as_raw_fd();
    let mut polling_since: Option<Instant> = None;
    while buf.len() < end {
        let missing = end - buf.len();
        let outcome = if buf.capacity() == buf.len() {
            // Memory is committed only once bytes are there to fill it: a peer that
            // claims a large frame and sends nothing holds nothing.
            let mut waiting: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int, the bytes queued on the socket.
            if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut waiting) } < 0 {
                Recv::Failed(io::Error::last_os_error())
            } else if waiting > 0 {
                buf.reserve(missing.min(step.max(waiting as usize)));
                Recv::Progress
            } else {
                // FIONREAD counts only up to an urgent (MSG_OOB) mark, so 0 does not mean
                // empty: peek. Taking 0 for empty there made the wait below return at
                // once, for ever, without the task ever yielding: a peer could spin a
                // shard with one urgent byte (found in review).
                let mut probe = 0u8;
                // SAFETY: recv writes at most one byte into `probe`.
                let g = unsafe {
                    libc::recv(
                        fd,
                        (&mut probe as *mut u8).cast::<libc::c_void>(),
                        1,
                        libc::MSG_DONTWAIT | libc::MSG_PEEK,
                    )
                };
                if g > 0 {
                    buf.reserve(missing.min(step));
                    Recv::Progress
                } else if g == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                } else {
                    would_block_or(io::Error::last_os_error())
                }
            }
        } else {
            let room = (buf.capacity() - buf.len()).min(missing);
            let spare = buf.spare_capacity_mut();
            // SAFETY: `spare` has at least `room` bytes of writable memory; recv writes
            // at most `room` bytes there and returns how many.
            let g = unsafe {
                libc::recv(
                    fd,
                    spare.as_mut_ptr().cast::<libc::c_void>(),
                    room,
                    libc::MSG_DONTWAIT,
                )
            };
            if g > 0 {
                let g = g as usize;
                assert!(g <= room, "recv wrote {g} bytes into {room}");
                // SAFETY: the kernel initialised these `g` bytes.
                unsafe { buf.set_len(buf.len() + g) };
                polling_since = None;
                Recv::Progress
            } else if g == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            } else {
                would_block_or(io::Error::last_os_error())
            }
        };
        match outcome {
            Recv::Progress => {}
            Recv::Failed(e) => return Err(e),
            Recv::Empty => {
                if !busy_poll.is_zero()
                    && polling_since.get_or_insert_with(Instant::now).elapsed() < busy_poll
                {
                    // Other tasks run and the rings are polled meanwhile (the task that
                    // sends the next request, say); the executor just does not sleep.
                    glommio::executor().yield_task_queue_now().await;
                    continue;
                }
                polling_since = None;
                if stream.peek(&mut [0u8; 1]).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
        }
    }
    Ok(())
}

/// A failed non-blocking `recv`: nothing to read yet, try again, or the error.
fn would_block_or(e: io::Error) -> Recv {
    match e.kind() {
        io::ErrorKind::WouldBlock => Recv::Empty,
        io::ErrorKind::Interrupted => Recv::Progress,
        _ => Recv::Failed(e),
    }
}

/// What one non-blocking step of [`recv_exact_into`] found.
enum Recv {
    /// Bytes were read or capacity added (or a signal interrupted): go on.
    Progress,
    /// Nothing to read yet.
    Empty,
    Failed(io::Error),
}

/// A second stream on `stream`'s own descriptor (no new descriptor, so a connection
/// costs one open file, not two), so that one task can write while another reads. It
/// gives the descriptor back when dropped instead of closing it (a patch of the
/// vendored glommio: `IntoRawFd`).
pub struct SameSocket(Option<TcpStream>);

impl std::fmt::Debug for SameSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SameSocket")
            .field(&self.0.as_ref().map(|s| s.as_raw_fd()))
            .finish()
    }
}

impl SameSocket {
    /// # Safety
    /// `stream` must stay open for as long as the result lives: the result uses its
    /// descriptor without owning it.
    pub unsafe fn new(stream: &TcpStream) -> SameSocket {
        // SAFETY: the descriptor is open (the caller's promise) and is never closed
        // through this stream (see Drop).
        SameSocket(Some(unsafe { TcpStream::from_raw_fd(stream.as_raw_fd()) }))
    }
}

impl std::ops::Deref for SameSocket {
    type Target = TcpStream;
    fn deref(&self) -> &TcpStream {
        self.0.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for SameSocket {
    fn deref_mut(&mut self) -> &mut TcpStream {
        self.0.as_mut().expect("present until dropped")
    }
}

impl Drop for SameSocket {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            // Not closed: the descriptor belongs to the stream it was made from.
            let _ = s.into_raw_fd();
        }
    }
}

/// A second stream on a duplicate of `stream`'s descriptor, so that one task can write
/// while another reads.
pub fn duplicate(stream: &TcpStream) -> io::Result<TcpStream> {
    // SAFETY: the stream takes ownership of a descriptor nothing else owns.
    Ok(unsafe { TcpStream::from_raw_fd(duplicate_fd(stream)?.into_raw_fd()) })
}

/// A duplicate of `stream`'s descriptor (for another thread to serve the connection).
pub fn duplicate_fd(stream: &TcpStream) -> io::Result<OwnedFd> {
    // SAFETY: dup returns a new descriptor that nothing else owns (or -1, checked), and
    // OwnedFd takes ownership of it.
    unsafe {
        let fd = libc::dup(stream.as_raw_fd());
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::io::AsyncWriteExt;
    use glommio::net::TcpListener;

    /// A stream on the same descriptor writes, and dropping it leaves the descriptor
    /// open for the stream it was made from.
    #[test]
    fn a_same_socket_stream_gives_the_descriptor_back() {
        crate::testing::run_on_executor(|| async {
            use futures_lite::io::AsyncReadExt;
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let peer = glommio::spawn_local(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                let mut got = Vec::new();
                s.read_to_end(&mut got).await.unwrap();
                got
            });
            let mut owner = listener.accept().await.unwrap();
            let fd = owner.as_raw_fd();
            for round in 0..3u8 {
                // SAFETY: `owner` stays open throughout.
                let mut second = unsafe { SameSocket::new(&owner) };
                assert_eq!(second.as_raw_fd(), fd);
                second.write_all(&[round]).await.unwrap();
                drop(second);
                // SAFETY: fcntl only queries the descriptor.
                assert!(unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0, "closed");
            }
            owner.write_all(b"end").await.unwrap();
            owner.close().await.unwrap();
            assert_eq!(peer.await, b"\x00\x01\x02end");
        });
    }

    #[test]
    fn frames_arrive_whole_in_pieces_and_a_short_stream_is_an_error() {
        crate::testing::run_on_executor(|| async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + 3) as u8).collect();
            let sent = payload.clone();
            let writer = glommio::spawn_local(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                // Dribbles: the reader must wait for readiness many times.
                for piece in sent.chunks(7_919) {
                    s.write_all(piece).await.unwrap();
                    glommio::timer::sleep(std::time::Duration::from_micros(200)).await;
                }
                s.close().await.unwrap();
            });
            let stream = listener.accept().await.unwrap();
            let mut buf = BytesMut::new();
            recv_exact_into(&stream, &mut buf, 100_000, 4096, Duration::ZERO)
                .await
                .unwrap();
            // Busy polling (far shorter than the writer's pauses) then waiting.
            recv_exact_into(
                &stream,
                &mut buf,
                150_000,
                1 << 20,
                Duration::from_micros(50),
            )
            .await
            .unwrap();
            assert_eq!(&buf[..], &payload[..250_000]);
            let mut rest = BytesMut::new();
            let short = recv_exact_into(&stream, &mut rest, 60_000, 4096, Duration::ZERO).await;
            assert_eq!(
                short.unwrap_err().kind(),
                io::ErrorKind::UnexpectedEof,
                "50,000 bytes were left, not 60,000"
            );
            assert_eq!(&rest[..], &payload[250_000..]);
            writer.await;
        });
    }

    /// A peer that trickles a frame in pins about what it sent, however large the frame
    /// it claims; one that sends a frame whole gets it in one allocation.
    #[test]
    fn memory_follows_the_bytes_that_arrived() {
        crate::testing::run_on_executor(|| async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut peer = TcpStream::connect(addr).await.unwrap();
            let stream = listener.accept().await.unwrap();
            let step = 8 << 10;
            let mut buf = BytesMut::new();
            let mut sent = 0;
            for piece in [1usize, 3, 20_000, 30_000] {
                peer.write_all(&vec![7u8; piece]).await.unwrap();
                sent += piece;
                // Read until the claim of 1 MiB would need more than has been sent.
                let _ = glommio::timer::timeout(Duration::from_millis(100), async {
                    Ok(recv_exact_into(&stream, &mut buf, 1 << 20, step, Duration::ZERO).await)
                })
                .await;
                assert_eq!(buf.len(), sent);
                assert!(
                    buf.capacity() <= 2 * sent + step,
                    "{} bytes sent, {} committed",
                    sent,
                    buf.capacity()
                );
            }
            let whole: Vec<u8> = (0..30_000u32).map(|i| i as u8).collect();
            let sent = whole.clone();
            let writer = glommio::spawn_local(async move {
                peer.write_all(&sent).await.unwrap();
                peer
            });
            // Until the whole frame waits on the socket (bounded: a host whose buffers
            // hold less reads it in parts, and the assertion below says so).
            for _ in 0..200 {
                if queued(&stream) >= whole.len() {
                    break;
                }
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
            let mut frame = BytesMut::new();
            recv_exact_into(&stream, &mut frame, whole.len(), step, Duration::ZERO)
                .await
                .unwrap();
            assert_eq!(&frame[..], &whole[..]);
            assert_eq!(frame.capacity(), whole.len(), "grown more than once");
            drop(writer.await);
        });
    }

    /// Bytes waiting on `stream`, as FIONREAD counts them.
    fn queued(stream: &TcpStream) -> usize {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int.
        assert!(unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut n) } >= 0);
        n as usize
    }

    /// An urgent (MSG_OOB) byte right where the buffer is full: FIONREAD counts 0 there
    /// though bytes follow. Reading must go on past it (the urgent byte itself is not
    /// part of the stream) instead of spinning without yielding, which hung the executor
    /// (so the reader runs on a thread of its own, watched with a deadline).
    #[test]
    fn an_urgent_byte_does_not_stall_the_reader() {
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            crate::testing::run_on_executor(|| async move {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let mut peer = TcpStream::connect(addr).await.unwrap();
                let stream = listener.accept().await.unwrap();
                peer.write_all(&[1u8; 64]).await.unwrap();
                // SAFETY: sends one byte from a live buffer on an open socket.
                let sent = unsafe {
                    libc::send(
                        peer.as_raw_fd(),
                        b"!".as_ptr().cast::<libc::c_void>(),
                        1,
                        libc::MSG_OOB,
                    )
                };
                assert_eq!(sent, 1);
                peer.write_all(&[2u8; 5]).await.unwrap();
                glommio::timer::sleep(Duration::from_millis(20)).await;
                // A first step of exactly the 64 bytes before the mark fills the buffer.
                let mut buf = BytesMut::new();
                let read = glommio::timer::timeout(Duration::from_secs(5), async {
                    Ok(recv_exact_into(&stream, &mut buf, 69, 64, Duration::ZERO).await)
                })
                .await;
                done.send((read.is_ok(), buf.to_vec())).unwrap();
                drop(peer);
            });
        });
        let (finished, got) = result
            .recv_timeout(Duration::from_secs(20))
            .expect("the reader spun at the urgent mark without yielding");
        assert!(finished, "the read did not finish");
        let mut want = vec![1u8; 64];
        want.extend([2u8; 5]);
        assert_eq!(got, want);
    }

    /// A peer that is expected to send a large frame and sends nothing (slowloris)
    /// makes the reader commit no memory; the first byte brings one step of it.
    #[test]
    fn no_memory_is_committed_before_bytes_arrive() {
        crate::testing::run_on_executor(|| async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut peer = TcpStream::connect(addr).await.unwrap();
            let stream = listener.accept().await.unwrap();
            let mut buf = BytesMut::new();
            let waited = glommio::timer::timeout(Duration::from_millis(50), async {
                Ok(recv_exact_into(&stream, &mut buf, 50 << 20, 4 << 20, Duration::ZERO).await)
            })
            .await;
            assert!(
                waited.is_err(),
                "nothing was sent, so the read cannot finish"
            );
            assert_eq!(
                buf.capacity(),
                0,
                "memory committed before any byte arrived"
            );
            peer.write_all(b"abc").await.unwrap();
            let waited = glommio::timer::timeout(Duration::from_millis(200), async {
                Ok(recv_exact_into(&stream, &mut buf, 50 << 20, 4 << 20, Duration::ZERO).await)
            })
            .await;
            assert!(waited.is_err());
            assert_eq!(&buf[..], b"abc");
            assert!(
                buf.capacity() >= 3 && buf.capacity() < 8 << 20,
                "{}",
                buf.capacity()
            );
        });
    }
}
