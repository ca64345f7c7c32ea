//! Direct-I/O appender: turns appended bytes into 4 KiB-aligned writes, in order.
//!
//! # Durability contract
//! - [`Appender::append`] returning means the bytes are in a write buffer in memory.
//! - A sealed buffer is written by the log's single writer task, issued in the order it
//!   was sealed with up to `write_depth` writes in flight (several in flight keep the
//!   disk busy while the executor is copying); [`WriteQueue::wait_written`] resolves
//!   once every byte up to a given sequence number is in the file (not yet durable).
//! - Durability comes only from the caller's `fdatasync` after `wait_written`.
//!
//! # Buffers and the partial tail block
//! Appends are copied into a chunk (`write_chunk_bytes`, aligned). A full chunk is sealed
//! and queued. A flush seals the partly filled chunk: it is written up to the next 4 KiB
//! boundary with the pad zeroed, and the bytes of its last, partial block are carried into
//! a fresh chunk that starts at that block's file position. The next write rewrites that
//! block with more data after it. Writes to one block therefore overlap, so a write that
//! overlaps one still in flight waits for it: the disk never sees two writes of a block
//! at once, and the later one always lands last. A torn rewrite cannot damage flushed
//! bytes: old and new versions of the block agree on them.
//!
//! The pad is zeroed: chunk buffers are recycled, and stale bytes past the end of the data
//! could hold an old, valid-looking batch. Recovery would still refuse it (its offsets do
//! not follow the last good batch), but zeros end the scan at once and cost little.
//!
//! # Sequence numbers
//! Every appended byte gets a log-wide sequence number (bytes appended since the log was
//! opened), so "written up to" is one number even when writes span segment files.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;

use event_listener::Event;
use glommio::io::{DmaBuffer, DmaFile};
use glommio::sync::Semaphore;
use glommio::{Latency, Shares, TaskQueueHandle};

use crate::config::IO_ALIGN;
use crate::error::{Error, Result};
use crate::faults;

thread_local! {
    static IO_QUEUE: std::cell::Cell<Option<TaskQueueHandle>> = const { std::cell::Cell::new(None) };
}

/// A short write, for fault injection: writes the first `n` bytes of `buf` (rounded down
/// to a block) at `pos` and returns how many were written.
async fn write_prefix(
    file: &DmaFile,
    buf: &DmaBuffer,
    pos: u64,
    n: usize,
) -> std::io::Result<usize> {
    let n = n.min(buf.len()) / 4096 * 4096;
    if n == 0 {
        return Ok(0);
    }
    let mut prefix = file.alloc_dma_buffer(n);
    prefix.as_bytes_mut().copy_from_slice(&buf.as_bytes()[..n]);
    file.write_at(prefix, pos)
        .await
        .map_err(std::io::Error::from)
}

/// Segment writes run in their own task queue. glommio picks the next queue by virtual
/// runtime, so after a burst of appends the writer runs before the next appenders instead
/// of waiting behind them in one FIFO queue (measured with 1 MiB batches and one producer:
/// 554 MB/s with one queue, 646 MB/s with two). A latency-sensitive queue
/// (`Latency::Matters`) would bound the wait further, but with glommio 0.9 on this machine
/// it stalled wake-ups until the 100 ms preempt timer (throughput fell to 12-80 MB/s), as did
/// preempt timers below a millisecond.
///
/// The executor's task queue for segment writes, created on first use.
fn io_queue() -> TaskQueueHandle {
    IO_QUEUE.with(|q| match q.get() {
        Some(h) => h,
        None => {
            let h = glommio::executor().create_task_queue(
                Shares::Static(1000),
                Latency::NotImportant,
                "corelog-segment-writes",
            );
            q.set(Some(h));
            h
        }
    })
}

/// Spawns `f` in the segment-write task queue.
fn spawn_io<T: 'static>(f: impl std::future::Future<Output = T> + 'static) -> glommio::Task<T> {
    glommio::spawn_local_into(f, io_queue()).expect("the segment-write task queue exists")
}

/// Waits until `ready` gives a value, re-checking it each time `event` is notified. The
/// listener is registered before the second check, so a notification between the two
/// checks is not lost.
pub(crate) async fn wait_for<T>(event: &Event, mut ready: impl FnMut() -> Option<T>) -> T {
    loop {
        if let Some(v) = ready() {
            return v;
        }
        let listener = event.listen();
        if let Some(v) = ready() {
            return v;
        }
        listener.await;
    }
}

/// A chunk waiting for (or in) its write.
struct Sealed {
    file: Rc<DmaFile>,
    path: Rc<PathBuf>,
    buf: DmaBuffer,
    /// File position, a multiple of `IO_ALIGN`.
    pos: u64,
    /// Bytes to write, a multiple of `IO_ALIGN`.
    len: usize,
    /// Sequence number one past the last data byte in this write.
    end_seq: u64,
}

/// A write issued to the disk and not yet accounted for.
struct InFlight {
    task: glommio::Task<Result<()>>,
    buf: Rc<DmaBuffer>,
    file: Rc<DmaFile>,
    end_pos: u64,
    end_seq: u64,
}

#[derive(Default)]
struct QueueState {
    queue: VecDeque<Sealed>,
    writer_running: bool,
    /// Writes handed to the disk that have not finished yet.
    issued: usize,
    /// While set, the writer issues nothing new (an fdatasync is running).
    hold: bool,
    written_seq: u64,
    error: Option<Error>,
    spare: Vec<DmaBuffer>,
}

/// The ordered write-back queue of one log, shared by the log's appenders over time.
pub(crate) struct WriteQueue {
    state: RefCell<QueueState>,
    /// One unit per chunk that may be sealed and not yet written.
    slots: Semaphore,
    slots_max: usize,
    /// Writes in flight at once.
    write_depth: usize,
    written: Event,
}

impl std::fmt::Debug for WriteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.borrow();
        f.debug_struct("WriteQueue")
            .field("queued", &st.queue.len())
            .field("written_seq", &st.written_seq)
            .field("error", &st.error)
            .finish()
    }
}

impl WriteQueue {
    pub(crate) fn new(slots_max: usize, write_depth: usize) -> Rc<WriteQueue> {
        assert!(write_depth >= 1, "write depth must be at least 1");
        Rc::new(WriteQueue {
            state: RefCell::new(QueueState::default()),
            slots: Semaphore::new(slots_max as u64),
            slots_max,
            write_depth,
            written: Event::new(),
        })
    }

    /// Waits until `n` write slots are free and takes them; they are handed back one per
    /// chunk as its write completes, or through [`WriteQueue::return_slots`].
    pub(crate) async fn take_slots(&self, n: usize) -> Result<()> {
        assert!(
            n <= self.slots_max,
            "asked for {n} write slots of {}",
            self.slots_max
        );
        if n == 0 {
            return Ok(());
        }
        self.slots
            .acquire(n as u64)
            .await
            .map_err(|_| Error::Closed)
    }

    /// Gives back slots taken but not used.
    pub(crate) fn return_slots(&self, n: usize) {
        if n > 0 {
            self.slots.signal(n as u64);
        }
    }

    /// Every byte with a sequence number below this is in its file.
    pub(crate) fn written_seq(&self) -> u64 {
        self.state.borrow().written_seq
    }

    /// Resolves when every byte below `seq` has been written, or with the first failure.
    pub(crate) async fn wait_written(&self, seq: u64) -> Result<()> {
        wait_for(&self.written, || self.check_written(seq)).await
    }

    fn check_written(&self, seq: u64) -> Option<Result<()>> {
        let st = self.state.borrow();
        if let Some(e) = &st.error {
            return Some(Err(e.clone()));
        }
        (st.written_seq >= seq).then_some(Ok(()))
    }

    fn take_buffer(&self, file: &DmaFile, size: usize) -> DmaBuffer {
        let spare = self.state.borrow_mut().spare.pop();
        match spare {
            Some(b) if b.len() == size => b,
            _ => file.alloc_dma_buffer(size),
        }
    }

    fn push(self: &Rc<Self>, sealed: Sealed) {
        let spawn = {
            let mut st = self.state.borrow_mut();
            if st.error.is_some() {
                // After a failed write nothing more may reach the file (it would sit past a
                // hole); the log is failed and waiters see the error.
                drop(st);
                self.slots.signal(1);
                return;
            }
            st.queue.push_back(sealed);
            !std::mem::replace(&mut st.writer_running, true)
        };
        if spawn {
            let me = self.clone();
            spawn_io(async move { me.run_writer().await }).detach();
        }
    }

    /// Drains the queue in order with up to `write_depth` writes in flight. A write that
    /// overlaps one still in flight (the carried tail block after a flush) waits for it,
    /// so a block is never written twice at once. Completions are accounted in issue
    /// order, so `written_seq` only ever covers bytes whose writes all finished.
    async fn run_writer(self: Rc<Self>) {
        let mut inflight: VecDeque<InFlight> = VecDeque::new();
        loop {
            let next = self.state.borrow_mut().queue.pop_front();
            let Some(item) = next else {
                if let Some(oldest) = inflight.pop_front() {
                    if !self.complete(oldest, &mut inflight).await {
                        return;
                    }
                    continue;
                }
                self.state.borrow_mut().writer_running = false;
                return;
            };
            let overlaps = |w: &InFlight| Rc::ptr_eq(&w.file, &item.file) && item.pos < w.end_pos;
            while inflight.len() >= self.write_depth || inflight.iter().any(overlaps) {
                let oldest = inflight.pop_front().expect("non-empty");
                if !self.complete(oldest, &mut inflight).await {
                    // Failed: the rest of the queue was dropped; drop this one too.
                    self.slots.signal(1);
                    return;
                }
            }
            self.wait_released().await;
            let buf = Rc::new(item.buf);
            let (file, path, pos, len) = (item.file.clone(), item.path.clone(), item.pos, item.len);
            let b = buf.clone();
            tracing::trace!(pos, len, depth = inflight.len(), "write issued");
            self.state.borrow_mut().issued += 1;
            let me = self.clone();
            let task = spawn_io(async move {
                let result = match faults::check(faults::Op::Write, &path, len) {
                    None => file.write_rc_at(b, pos).await.map_err(std::io::Error::from),
                    Some(faults::Fault::Short(n)) => write_prefix(&file, &b, pos, n).await,
                    Some(f) => Err(f.error()),
                };
                me.state.borrow_mut().issued -= 1;
                me.written.notify(usize::MAX);
                match result {
                    Ok(n) if n >= len => Ok(()),
                    Ok(n) => Err(Error::io(
                        "write segment",
                        path.as_path(),
                        std::io::Error::new(
                            std::io::ErrorKind::WriteZero,
                            format!("short write: {n} of {len} bytes at position {pos}"),
                        ),
                    )),
                    Err(e) => Err(Error::io("write segment", path.as_path(), e)),
                }
            });
            inflight.push_back(InFlight {
                task,
                buf,
                file: item.file,
                end_pos: item.pos + item.len as u64,
                end_seq: item.end_seq,
            });
        }
    }

    /// Waits for the oldest write and accounts for it; `false` if it failed (the log is
    /// then failed, every queued and in-flight write is abandoned and its slot returned).
    async fn complete(&self, w: InFlight, rest: &mut VecDeque<InFlight>) -> bool {
        let result = w.task.await;
        let mut st = self.state.borrow_mut();
        let ok = match result {
            Ok(()) => {
                tracing::trace!(end_pos = w.end_pos, "write done");
                debug_assert!(w.end_seq >= st.written_seq);
                st.written_seq = w.end_seq;
                if let Ok(b) = Rc::try_unwrap(w.buf) {
                    if st.spare.len() < self.slots_max {
                        st.spare.push(b);
                    }
                }
                self.slots.signal(1);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "segment write failed; the log stops accepting writes");
                st.error.get_or_insert(e);
                // Later writes would leave a hole before them: drop the queued ones, and
                // let the in-flight ones finish without counting them.
                let dropped = st.queue.len() + 1 + rest.len();
                st.queue.clear();
                st.writer_running = false;
                rest.clear();
                self.slots.signal(dropped as u64);
                false
            }
        };
        drop(st);
        self.written.notify(usize::MAX);
        ok
    }

    /// Stops the writer from issuing new writes and waits until every write already issued
    /// has finished. An fdatasync runs while the returned guard lives: on a disk
    /// whose cache flush waits for every outstanding write, letting new writes in during an
    /// fdatasync makes it several times slower (measured: 3.6 ms instead of 0.3 ms with two
    /// 1 MiB writes in flight).
    ///
    /// The returned guard lets the writer go on when dropped, also if the caller is
    /// cancelled while holding it.
    pub(crate) async fn hold(&self) -> WriterHold<'_> {
        self.state.borrow_mut().hold = true;
        let guard = WriterHold(self);
        wait_for(&self.written, || {
            (self.state.borrow().issued == 0).then_some(())
        })
        .await;
        guard
    }

    /// If sealed writes wait for the writer, waits one reactor cycle so that they reach the
    /// kernel before the caller's CPU-heavy work. glommio hands queued I/O to the kernel
    /// only when no task is runnable (or at its preemption timer), so after a flush wakes
    /// several appenders, each one's copy and CRC (about 0.35 ms per 1 MiB batch) would
    /// otherwise delay the writes sealed by the ones before it while the disk idles (seen in
    /// traces: 0.8 ms from an fdatasync's end to the next write, on a 5 ms cycle). A 1 us
    /// timer is still pending when first polled and only the reactor fires it.
    pub(crate) async fn let_writes_out(&self) {
        let waiting = {
            let st = self.state.borrow();
            !st.queue.is_empty() && !st.hold
        };
        if waiting {
            glommio::timer::sleep(std::time::Duration::from_micros(1)).await;
        }
    }

    async fn wait_released(&self) {
        wait_for(&self.written, || (!self.state.borrow().hold).then_some(())).await
    }

    /// Closes the slot semaphore so waiters fail; used when the log is dropped.
    pub(crate) fn close(&self) {
        self.slots.close();
        self.written.notify(usize::MAX);
    }
}

/// Keeps the writer from issuing new writes while alive (see [`WriteQueue::hold`]).
pub(crate) struct WriterHold<'a>(&'a WriteQueue);

impl Drop for WriterHold<'_> {
    fn drop(&mut self) {
        self.0.state.borrow_mut().hold = false;
        self.0.written.notify(usize::MAX);
    }
}

/// Appends to one segment file through a [`WriteQueue`].
pub(crate) struct Appender {
    file: Rc<DmaFile>,
    path: Rc<PathBuf>,
    queue: Rc<WriteQueue>,
    chunk: DmaBuffer,
    chunk_bytes: usize,
    /// File position of `chunk[0]`, a multiple of `IO_ALIGN`.
    chunk_pos: u64,
    /// Bytes of `chunk` holding data.
    chunk_len: usize,
    /// Bytes of `chunk` already handed to the writer (sealed); data past it is new.
    chunk_sealed_len: usize,
    /// Sequence number of the byte at `chunk[chunk_len]` (the next byte appended).
    next_seq: u64,
}

impl std::fmt::Debug for Appender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender")
            .field("path", &self.path)
            .field("chunk_pos", &self.chunk_pos)
            .field("chunk_len", &self.chunk_len)
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

impl Appender {
    /// An appender that continues a file whose data ends at `size`. `tail` holds the file's
    /// bytes from `align_down(size)` to `size` (the partial last block), read by the caller.
    pub(crate) fn resume(
        file: Rc<DmaFile>,
        path: PathBuf,
        queue: Rc<WriteQueue>,
        chunk_bytes: usize,
        size: u64,
        tail: &[u8],
        next_seq: u64,
    ) -> Appender {
        let chunk_pos = size - size % IO_ALIGN as u64;
        assert_eq!(
            tail.len() as u64,
            size - chunk_pos,
            "tail must be the partial last block"
        );
        let mut chunk = queue.take_buffer(&file, chunk_bytes);
        chunk.as_bytes_mut()[..tail.len()].copy_from_slice(tail);
        Appender {
            file,
            path: Rc::new(path),
            queue,
            chunk,
            chunk_bytes,
            chunk_pos,
            chunk_len: tail.len(),
            chunk_sealed_len: tail.len(),
            next_seq,
        }
    }

    /// File position one past the last appended byte.
    pub(crate) fn size(&self) -> u64 {
        self.chunk_pos + self.chunk_len as u64
    }

    /// Sequence number the next appended byte will get.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Write slots an append of `len` bytes needs (one per chunk it fills).
    pub(crate) fn slots_for_append(&self, len: usize) -> usize {
        (self.chunk_len + len) / self.chunk_bytes
    }

    /// Write slots a flush needs (one if there are unsealed bytes).
    pub(crate) fn slots_for_flush(&self) -> usize {
        usize::from(self.chunk_len > self.chunk_sealed_len)
    }

    /// Copies `data` into the write buffers, sealing each chunk it fills. The caller holds
    /// [`Appender::slots_for_append`] slots for this call; each seal consumes one.
    pub(crate) fn append(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = self.chunk_bytes - self.chunk_len;
            let n = room.min(data.len());
            self.chunk.as_bytes_mut()[self.chunk_len..self.chunk_len + n]
                .copy_from_slice(&data[..n]);
            self.chunk_len += n;
            self.next_seq += n as u64;
            data = &data[n..];
            if self.chunk_len == self.chunk_bytes {
                self.seal_full();
            }
        }
    }

    fn seal_full(&mut self) {
        debug_assert_eq!(self.chunk_len, self.chunk_bytes);
        let fresh = self.queue.take_buffer(&self.file, self.chunk_bytes);
        let buf = std::mem::replace(&mut self.chunk, fresh);
        self.queue.push(Sealed {
            file: self.file.clone(),
            path: self.path.clone(),
            buf,
            pos: self.chunk_pos,
            len: self.chunk_bytes,
            end_seq: self.next_seq,
        });
        self.chunk_pos += self.chunk_bytes as u64;
        self.chunk_len = 0;
        self.chunk_sealed_len = 0;
    }

    /// Seals the partly filled chunk so a flush can wait for it, and returns the sequence
    /// number to wait for. Consumes [`Appender::slots_for_flush`] slots.
    pub(crate) fn seal_for_flush(&mut self) -> u64 {
        if self.chunk_len == self.chunk_sealed_len {
            return self.next_seq;
        }
        let padded = self.chunk_len.next_multiple_of(IO_ALIGN);
        let tail_start = self.chunk_len - self.chunk_len % IO_ALIGN;
        let mut fresh = self.queue.take_buffer(&self.file, self.chunk_bytes);
        let tail_len = self.chunk_len - tail_start;
        fresh.as_bytes_mut()[..tail_len]
            .copy_from_slice(&self.chunk.as_bytes()[tail_start..self.chunk_len]);
        let mut buf = std::mem::replace(&mut self.chunk, fresh);
        buf.as_bytes_mut()[self.chunk_len..padded].fill(0);
        // A trimmed buffer is not recycled (glommio cannot grow it back); flush-heavy loads
        // allocate one per flush, which glibc serves from its free lists.
        buf.trim_to_size(padded);
        self.queue.push(Sealed {
            file: self.file.clone(),
            path: self.path.clone(),
            buf,
            pos: self.chunk_pos,
            len: padded,
            end_seq: self.next_seq,
        });
        self.chunk_pos += tail_start as u64;
        self.chunk_len = tail_len;
        self.chunk_sealed_len = tail_len;
        self.next_seq
    }
}
