//! One client connection: read a frame, decode its header, run the API's handler; a
//! writer task sends the responses in request order. Handlers run one at a time, in
//! order, as Kafka does, with one exception: an acks=all Produce returns once its
//! batches are appended, and its wait for the flush continues while the next requests
//! are read and handled (up to [`PIPELINE_MAX`] responses outstanding). Appends stay in
//! request order; pipelined produces share fdatasyncs.
//!
//! A frame whose size prefix is not positive or exceeds `request_max_bytes`, a header
//! that does not decode, an API key this broker does not serve, an unsupported version
//! of an API other than ApiVersions and a body that does not decode all close this
//! connection (with a log line naming the peer and the reason) and nothing else.
//!
//! Memory is budgeted ([`super::budget`]): a request's declared size is taken from the
//! connection's budget (`connection_bytes_in_flight_max`) and the shard's
//! (`shard_request_bytes_in_flight_max`; requests up to `SMALL_FRAME_BYTES` do not wait
//! there, and are counted there once read) before its bytes are read, and given back
//! once its handler is done; an answer's bytes are charged to the connection and to the
//! shard (`shard_response_bytes_in_flight_max`) until they are written. While a budget
//! is spent, requests wait in the socket, where TCP holds the client back.
//!
//! Time: a request's size must arrive within `connections_max_idle_ms` of the previous
//! answer being queued. Its bytes, once room is made for them, must arrive within
//! `request_read_timeout_ms` plus a second for every `request_read_min_bytes_per_sec`
//! of them received (Apache's mod_reqtimeout rule; never longer than
//! `connections_max_idle_ms`), so a client that declares a large request and trickles
//! it in is cut off within seconds instead of holding the shard's request budget that
//! other large requests wait for. An answer the peer does not read for
//! `connections_max_idle_ms` closes the connection, so neither a silent client nor one
//! that reads slowly holds its memory for longer.

use std::cell::Cell;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::rc::Rc;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use corelog_engine::socket::{recv_exact_into, SameSocket};
use futures_lite::AsyncWriteExt;
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::net::TcpStream;

use super::affinity::{Affinity, ShardsTouched};
use super::budget::{Budget, Held};
use super::per_ip::Slot;
use super::router::Handoff;
use super::shard::Shard;
use crate::api::{self, Answer};
use crate::metrics;
use crate::protocol::RequestHeader;

/// Capacity a large request frame (over `SMALL_FRAME_BYTES`, so holding its place in
/// the shard's budget) gets at a time, once bytes of it are waiting on the socket (never
/// on the size prefix's word alone). A 1 MiB batch plus its request header fits the
/// first step, so it is never moved by a regrowth.
const GROWTH_STEP_BYTES: usize = 4 << 20;
/// Frames up to this size get their buffer before their bytes arrive, saving the
/// readiness probe (a system call) on the smallest requests (one-record produces,
/// fetches, heartbeats, commits). Larger small frames grow by what is waiting on the
/// socket, at least this much at a time. So a silent peer pins at most this much
/// (`connections_max` x 8 KiB, 78 MiB with the defaults) and a trickling one about
/// twice what it sent, not what it declared.
const PREALLOCATED_FRAME_BYTES: usize = 8 << 10;
/// Requests up to this size never wait for the shard's request budget, so fetches,
/// heartbeats and commits are not queued behind bulk produces; they are counted on it
/// once their bytes are in.
const SMALL_FRAME_BYTES: usize = 128 << 10;

/// Responses a connection may have outstanding (pipelined acks=all produces) before
/// it stops reading requests.
pub const PIPELINE_MAX: usize = 16;

/// Serves a connection on this shard (counted against `connections_max`; `slot` is its
/// place in its IP's count) until the peer closes it, it sends something malformed,
/// stays idle for `connections_max_idle_ms`, or moves to another shard.
pub fn spawn(shard: Rc<Shard>, stream: TcpStream, slot: Slot) {
    shard.connections.set(shard.connections.get() + 1);
    glommio::spawn_local(async move {
        serve(&shard, stream, slot).await;
        shard.connections.set(shard.connections.get() - 1);
    })
    .detach();
}

async fn serve(shard: &Rc<Shard>, mut stream: TcpStream, slot: Slot) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    loop {
        // A second stream on the socket for the writer task, so that reading and
        // writing proceed independently.
        // SAFETY: the writer is awaited below before `stream` is closed or handed over.
        // Only if this task is dropped instead (at executor shutdown: connection tasks
        // are detached) does `stream` close the descriptor first: dropping the writer's
        // handle cancels the writer, which is never polled again, its stream does not
        // close the descriptor, and glommio cancels, without submitting, whatever
        // operation it had queued.
        let writer = unsafe { SameSocket::new(&stream) };
        let (tx, rx) = local_channel::new_bounded(PIPELINE_MAX);
        let queued = Rc::new(Cell::new(0));
        let fd = stream.as_raw_fd();
        let budget = Budget::new(shard.config.connection_bytes_in_flight_max);
        let writer = glommio::spawn_local(write_responses(
            shard.clone(),
            budget.clone(),
            writer,
            rx,
            fd,
            queued.clone(),
        ));
        let outcome = read_requests(shard, &budget, &mut stream, &tx, &queued).await;
        drop(tx);
        // Every response read so far is written before the socket closes or moves.
        let written = writer.await;
        // A failed write is the cause when both failed (it shuts the socket down).
        match written.and(outcome) {
            Ok(None) => {
                tracing::debug!(%peer, "connection closed by peer");
                break;
            }
            Ok(Some(to)) => match hand_over(shard, &stream, to, &slot).await {
                // Dropping the stream closes only this shard's descriptor.
                Ok(()) => {
                    tracing::debug!(%peer, from = shard.id, to, "connection moved to the shard of its partitions");
                    return;
                }
                Err(e) => {
                    tracing::debug!(%peer, to, error = %e, "connection stays: cannot hand it over");
                }
            },
            Err(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
        }
    }
    let _ = stream.close().await;
}

/// Sends a duplicate of the socket's descriptor to shard `to`, which serves the
/// connection from its next request on (`broker::affinity`). Nothing of the connection
/// is buffered here: frames are read exactly, and every response has been written. The
/// connection's per-IP place goes with it.
async fn hand_over(
    shard: &Rc<Shard>,
    stream: &TcpStream,
    to: usize,
    slot: &Slot,
) -> Result<(), String> {
    let socket = corelog_engine::socket::duplicate_fd(stream).map_err(|e| e.to_string())?;
    // The copy counts until the old place is dropped with this shard's stream (or, if
    // the hand-over fails, instead of it): one connection too many for a moment, never
    // one too few.
    let slot = slot.duplicate();
    shard.router.hand_over(to, Handoff { socket, slot }).await
}

/// Serves a connection another shard handed over (see [`hand_over`]).
pub fn adopt(shard: Rc<Shard>, handoff: Handoff) {
    // SAFETY: the descriptor is a connected TCP socket whose ownership moves into the
    // stream.
    let stream = unsafe { TcpStream::from_raw_fd(handoff.socket.into_raw_fd()) };
    spawn(shard, stream, handoff.slot);
}

/// An answer on its way to the writer, with the units its bytes hold (none yet for an
/// answer still to come: they are charged when it comes).
struct Outgoing {
    answer: Answer,
    held: Option<(Held, Held)>,
}

/// Charges an answer's bytes to the connection's budget and the shard's response
/// budget, until the returned units are dropped (once they are written).
fn charge_answer(
    shard: &Shard,
    budget: &Rc<Budget>,
    parts: &Option<Vec<bytes::Bytes>>,
) -> (Held, Held) {
    let bytes = parts.iter().flatten().map(|p| p.len()).sum();
    (budget.charge(bytes), shard.response_budget.charge(bytes))
}

/// Writes each answer, in order, once it is ready. On a write error the socket is shut
/// down, which ends the reader too. The stream is dropped, not closed (which would shut
/// down the socket's write side for every descriptor of it): the connection may move.
async fn write_responses(
    shard: Rc<Shard>,
    budget: Rc<Budget>,
    mut stream: SameSocket,
    answers: LocalReceiver<Outgoing>,
    socket: i32,
    queued: Rc<Cell<usize>>,
) -> Result<(), String> {
    let idle = shard.config.connections_max_idle;
    while let Some(out) = answers.recv().await {
        let parts = out.answer.wait().await;
        let held = out
            .held
            .unwrap_or_else(|| charge_answer(&shard, &budget, &parts));
        let written = match parts {
            Some(parts) => write_parts(&mut stream, &parts, idle).await,
            None => Ok(()),
        };
        // Written or failed, its bytes are gone.
        drop(held);
        queued.set(queued.get() - 1);
        if let Err(e) = written {
            // SAFETY: shutting down a socket descriptor the connection still owns.
            unsafe { libc::shutdown(socket, libc::SHUT_RDWR) };
            // Drop what is still queued, and what the reader queues until it sees the
            // socket shut: their units go back (the reader may be waiting for them in
            // the connection's budget) and nothing holds their memory.
            while let Some(out) = answers.recv().await {
                queued.set(queued.get() - 1);
                drop(out);
            }
            return if hung_up(&e) {
                Ok(())
            } else {
                Err(format!("write failed: {e}"))
            };
        }
    }
    Ok(())
}

/// A peer that hangs up while its answers are written (a consumer closing) is a normal
/// end; other write failures are worth a warning.
fn hung_up(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
    )
}

/// Most pieces handed to one `sendmsg`.
const IOVECS_MAX: usize = 64;

/// Writes a response's pieces (encoded fields and stored batches, which are not copied
/// together) with as few system calls as the socket allows: a vectored, non-blocking
/// `sendmsg` of everything left, and when the socket is full, glommio's write, which
/// waits for room, for at most `idle` (a peer that reads nothing for that long is cut
/// off: `TimedOut`).
async fn write_parts(
    stream: &mut TcpStream,
    parts: &[bytes::Bytes],
    idle: Duration,
) -> std::io::Result<()> {
    let fd = stream.as_raw_fd();
    let (mut idx, mut off) = (0usize, 0usize);
    while idx < parts.len() {
        let iov: Vec<libc::iovec> = parts[idx..]
            .iter()
            .take(IOVECS_MAX)
            .enumerate()
            .map(|(i, p)| {
                let s = if i == 0 { &p[off..] } else { &p[..] };
                libc::iovec {
                    iov_base: s.as_ptr() as *mut libc::c_void,
                    iov_len: s.len(),
                }
            })
            .collect();
        // SAFETY: msghdr is plain data; the iovecs point into `parts`, which outlive
        // the call, and sendmsg only reads them.
        let sent = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = iov.len() as _;
            libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        };
        let mut n = if sent >= 0 {
            sent as usize
        } else {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::WouldBlock {
                return Err(err);
            }
            // Full: let glommio wait until the socket takes more.
            within(idle, stream.write(&parts[idx][off..]))
                .await
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "the peer read nothing for {} ms (connections_max_idle_ms)",
                            idle.as_millis()
                        ),
                    )
                })??
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let left = parts[idx].len() - off;
            if n >= left {
                n -= left;
                idx += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
        while idx < parts.len() && parts[idx].len() == off {
            idx += 1;
            off = 0;
        }
    }
    Ok(())
}

/// Reads and handles requests until the peer closes the connection (`Ok(None)`), the
/// connection should move to another shard (`Ok(Some(shard))`, between two requests),
/// or it fails.
async fn read_requests(
    shard: &Rc<Shard>,
    budget: &Rc<Budget>,
    stream: &mut TcpStream,
    answers: &local_channel::LocalSender<Outgoing>,
    queued: &Cell<usize>,
) -> Result<Option<usize>, String> {
    let max = shard.config.request_max_bytes;
    let peer_ip = stream.peer_addr().ok().map(|a| format!("/{}", a.ip()));
    let mut affinity = Affinity::new(shard.id);
    let idle = shard.config.connections_max_idle;
    let too_slow = || {
        format!(
            "no whole request within {} ms (connections_max_idle_ms)",
            idle.as_millis()
        )
    };
    let mut head = BytesMut::with_capacity(4);
    loop {
        // The next request's size must arrive within `idle` of the previous answer
        // being queued, and its bytes at the request pace once room is made for them
        // (`read_frame`): an idle client, or one that trickles a frame in (slowloris),
        // is cut off instead of holding its connection, buffer and budget.
        let size = within(idle, async {
            // The size; an idle connection may busy-poll for it first.
            head.clear();
            match recv_exact_into(stream, &mut head, 4, 4, shard.config.busy_poll).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(format!("read failed: {e}")),
            }
            let size = i32::from_be_bytes(head[..].try_into().expect("4 bytes"));
            if size <= 0 || size as usize > max {
                return Err(format!(
                    "frame size {size} is outside 1..={max} (request_max_bytes)"
                ));
            }
            Ok(Some(size as usize))
        });
        let size = match size.await.ok_or_else(too_slow)?? {
            Some(size) => size,
            None => return Ok(None),
        };
        // Room for the request, in this connection and then on this shard; until then
        // its bytes wait in the socket. (Configuration keeps both budgets at least
        // `request_max_bytes`, so a request always fits an empty budget.) A small
        // request never waits on the shard: fetches, heartbeats and commits are not
        // queued behind bulk produces (or behind clients that declare large requests
        // and send them slowly). It is counted there once its bytes are in, so peers
        // that declare small requests and go silent do not spend the shard's budget
        // (and what they pin is `PREALLOCATED_FRAME_BYTES` each, see `read_frame`).
        let in_connection = budget.take(size).await;
        let waited_on_shard = if size > SMALL_FRAME_BYTES {
            Some(shard.request_budget.take(size).await)
        } else {
            None
        };
        let pace = Pace {
            timeout: shard.config.request_read_timeout,
            min_bytes_per_sec: shard.config.request_read_min_bytes_per_sec,
        };
        let frame = read_frame(stream, size, pace, idle).await?;
        let on_shard = waited_on_shard.unwrap_or_else(|| shard.request_budget.charge(size));
        let (mut header, body_at) = match RequestHeader::decode(&frame) {
            Ok(Some(h)) => h,
            Ok(None) => {
                let key = i16::from_be_bytes([frame[0], frame[1]]);
                return Err(format!("unknown API key {key}"));
            }
            Err(e) => return Err(format!("request header: {e}")),
        };
        header.client_host = peer_ip.clone();
        tracing::trace!(api = header.api_key, version = header.api_version,
            client = ?header.client_id, correlation = header.correlation_id, "request");
        let mut body = frame;
        let _ = body.split_to(body_at);
        let touched = ShardsTouched::default();
        let started = Instant::now();
        let api_key = header.api_key;
        let answer = match api::handle(shard, &header, body, &touched).await {
            // Start the wait now (the flush is requested at once); the writer only
            // collects the result in order.
            Ok(Answer::Later(f)) => Answer::Later(Box::pin(glommio::spawn_local(async move {
                let answer = f.await;
                let took = started.elapsed();
                metrics::request_done(api_key, took, false);
                metrics::produce_durable(took);
                answer
            }))),
            Ok(now) => {
                metrics::request_done(api_key, started.elapsed(), false);
                now
            }
            Err(e) => {
                metrics::request_done(api_key, started.elapsed(), true);
                return Err(format!(
                    "API {} v{}: {e}",
                    header.api_key, header.api_version
                ));
            }
        };
        // The handler is done with the request's bytes.
        drop((in_connection, on_shard));
        match answer {
            // Nothing is waiting to be written before it: the reader writes the answer
            // itself, which saves a pass of the executor loop before the writer task
            // runs (one-record produces, latency mode: median p50 31.5 -> 27 us over six
            // alternating runs; default settings 286 -> 215 us).
            Answer::Now(parts) if queued.get() == 0 => {
                let _held = charge_answer(shard, budget, &parts);
                if let Some(parts) = parts {
                    if let Err(e) = write_parts(stream, &parts, idle).await {
                        return if hung_up(&e) {
                            Ok(None)
                        } else {
                            Err(format!("write failed: {e}"))
                        };
                    }
                }
            }
            answer => {
                let held = match &answer {
                    Answer::Now(parts) => Some(charge_answer(shard, budget, parts)),
                    Answer::Later(_) => None,
                };
                queued.set(queued.get() + 1);
                if answers.send(Outgoing { answer, held }).await.is_err() {
                    return Err("the response writer stopped".into());
                }
            }
        }
        if let Some(to) = affinity.observe(touched.get()) {
            if !shard.stopping() {
                return Ok(Some(to));
            }
        }
    }
}

/// `f`'s output, or `None` if it takes longer than `limit`.
async fn within<T>(limit: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    glommio::timer::timeout(limit, async { Ok(f.await) })
        .await
        .ok()
}

/// The pace a request's bytes must keep: all of them received so far within `timeout`
/// plus a second for every `min_bytes_per_sec` of them.
#[derive(Debug, Clone, Copy)]
struct Pace {
    timeout: Duration,
    min_bytes_per_sec: u64,
}

impl Pace {
    /// How long `received` bytes may take.
    fn allowed(&self, received: usize) -> Duration {
        let credit = received as f64 / self.min_bytes_per_sec as f64;
        self.timeout.saturating_add(Duration::from_secs_f64(credit))
    }
}

/// Reads a frame of `size` bytes at `pace` or faster, and within `idle` in any case.
/// The pace is checked each time `GROWTH_STEP_BYTES` of it (or the rest of the frame)
/// are in, so bytes may come unevenly within such a step, but each must be complete by
/// the time the bytes received up to its end allow. (One timer per step: a frame up to
/// a step long costs one timer, as before the pace.) The buffer grows as the bytes
/// arrive: `PREALLOCATED_FRAME_BYTES` or more at a time for frames up to
/// `SMALL_FRAME_BYTES`, else `GROWTH_STEP_BYTES`.
async fn read_frame(
    stream: &mut TcpStream,
    size: usize,
    pace: Pace,
    idle: Duration,
) -> Result<BytesMut, String> {
    let mut frame = if size <= PREALLOCATED_FRAME_BYTES {
        BytesMut::with_capacity(size)
    } else {
        BytesMut::new()
    };
    let growth = if size <= SMALL_FRAME_BYTES {
        PREALLOCATED_FRAME_BYTES
    } else {
        GROWTH_STEP_BYTES
    };
    let started = Instant::now();
    while frame.len() < size {
        let step = (size - frame.len()).min(GROWTH_STEP_BYTES);
        let paced = pace.allowed(frame.len() + step);
        let left = paced.min(idle).saturating_sub(started.elapsed());
        let read = recv_exact_into(stream, &mut frame, step, growth, Duration::ZERO);
        match within(left, read).await {
            Some(done) => done.map_err(|e| format!("frame of {size} bytes cut short: {e}"))?,
            None if idle <= paced => {
                return Err(format!(
                    "no whole request within {} ms (connections_max_idle_ms)",
                    idle.as_millis()
                ))
            }
            None => {
                return Err(format!(
                    "request too slow: {} of {size} bytes in {} ms \
                     (request_read_timeout_ms {}, request_read_min_bytes_per_sec {})",
                    frame.len(),
                    started.elapsed().as_millis(),
                    pace.timeout.as_millis(),
                    pace.min_bytes_per_sec
                ))
            }
        }
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_lite::AsyncReadExt;
    use glommio::net::TcpListener;
    use std::sync::Arc;

    /// When a write fails (here: the peer reads nothing for the idle time), the answers
    /// queued behind it are dropped at once, and their units go back to the
    /// connection's and the shard's budgets while the reader still holds its sender:
    /// a reader waiting for room in the connection's budget must get it, or it waits
    /// for ever.
    #[test]
    fn a_failed_write_gives_back_the_units_of_the_answers_queued_behind_it() {
        corelog_engine::testing::run_on_executor(|| async {
            let dir = tempfile::tempdir().unwrap();
            let mut config = crate::api::testkit::config(dir.path());
            config.connections_max_idle = Duration::from_millis(200);
            let shard = crate::api::testkit::shard(Arc::new(config)).await;
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            // A peer that reads nothing.
            let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let owner = listener.accept().await.unwrap();
            let budget = Budget::new(1 << 30);
            let queued = Rc::new(Cell::new(0));
            let (tx, rx) = local_channel::new_bounded(PIPELINE_MAX);
            // SAFETY: `owner` outlives the writer, which is awaited below.
            let stream = unsafe { SameSocket::new(&owner) };
            let writer = glommio::spawn_local(write_responses(
                shard.clone(),
                budget.clone(),
                stream,
                rx,
                owner.as_raw_fd(),
                queued.clone(),
            ));
            // Far more than the socket buffers take (zeroed pages: no real memory).
            let big = Bytes::from(vec![0u8; 64 << 20]);
            for _ in 0..3 {
                let parts = Some(vec![big.clone()]);
                let held = Some(charge_answer(&shard, &budget, &parts));
                queued.set(queued.get() + 1);
                assert!(tx
                    .send(Outgoing {
                        answer: Answer::Now(parts),
                        held
                    })
                    .await
                    .is_ok());
            }
            assert_eq!(budget.used(), 3 << 26);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while budget.used() > 0 && std::time::Instant::now() < deadline {
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(budget.used(), 0, "units of queued answers still held");
            assert_eq!(shard.response_budget.used(), 0);
            assert_eq!(queued.get(), 0);
            drop(tx);
            let written = writer.await;
            assert!(
                matches!(&written, Err(e) if e.contains("read nothing")),
                "{written:?}"
            );
            drop(peer);
        });
    }

    /// Many pieces of odd sizes through a socket whose reader starts late, so that
    /// sendmsg fills the socket, falls back to waiting, and resumes mid-piece.
    #[test]
    fn pieces_arrive_whole_and_in_order_through_a_full_socket() {
        corelog_engine::testing::run_on_executor(|| async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let parts: Vec<Bytes> = (0..3000u32)
                .map(|i| {
                    let len = (i as usize * 7919) % 9000 + 1;
                    Bytes::from(
                        (0..len)
                            .map(|j| (i as usize + j) as u8)
                            .collect::<Vec<u8>>(),
                    )
                })
                .collect();
            let expected: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
            let reader = glommio::spawn_local(async move {
                let mut s = listener.accept().await.unwrap();
                glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
                let mut got = Vec::new();
                s.read_to_end(&mut got).await.unwrap();
                got
            });
            let mut out = TcpStream::connect(addr).await.unwrap();
            write_parts(&mut out, &parts, Duration::from_secs(10))
                .await
                .unwrap();
            out.close().await.unwrap();
            assert_eq!(reader.await, expected);
        });
    }
}
