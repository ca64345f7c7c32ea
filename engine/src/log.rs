//! A partition log: an append-only sequence of record batches in segment files.
//!
//! # Contract
//! - [`PartitionLog::append`] validates a client batch, assigns its offsets (and, for
//!   LogAppendTime topics, its timestamp) in place and copies it into the write buffers.
//!   Resolving means: in memory, in order, with offsets. It is not yet durable nor
//!   visible to readers.
//! - [`PartitionLog::flush`] resolves once every batch appended before the call is on disk
//!   (written and fdatasynced). Flushes are batched: callers that arrive while one flush
//!   is in flight wait for it and then share the next one (group commit), so N concurrent
//!   acks=all producers cost about one fdatasync per round, not N.
//! - The high watermark is one past the last durable offset; readers see exactly the
//!   batches below it. It never passes the log end offset and never moves back, except by
//!   [`PartitionLog::truncate_to`].
//! - After a failed write or fdatasync the log refuses appends and flushes
//!   ([`Error::LogFailed`]): the kernel may have dropped the dirty data, so retrying the
//!   fdatasync could report success for bytes that are gone (the "fsyncgate" lesson).
//!   Reads of what was durable keep working. Reopening recovers from what is really on
//!   disk.
//!
//! # Concurrency
//! A log belongs to one executor (it is `!Send`); tasks on that executor share it through
//! `Rc`. Appends are ordered by an append lock; one flush runs at a time (the `flushing`
//! flag); reads take no lock. No `RefCell` borrow is held across an `.await`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use event_listener::Event;
use glommio::io::DmaFile;
use glommio::sync::Semaphore;

use crate::appender::{wait_for, Appender, WriteQueue};
use crate::batch::{self, RecordBatch};
use crate::cache::{LogId, TailCache};
use crate::checkpoint;
use crate::config::LogConfig;
use crate::epoch::LeaderEpochCache;
use crate::error::{Error, IoContext, Result};
use crate::faults;
use crate::fsutil;
use crate::histogram::Histogram;
use crate::readahead::{self, ReadAhead};
use crate::reader::{self, ScanParams};
use crate::recovery::{self, RecoveryReport};
use crate::retention::{self, SegmentStat};
use crate::segment::{self, Segment};

/// How a batch is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppendOptions {
    /// Leader epoch written into the batch.
    pub leader_epoch: i32,
    /// `Some(now_ms)` for topics with `message.timestamp.type=LogAppendTime`.
    pub log_append_time_ms: Option<i64>,
}

/// The result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the batch's first record.
    pub base_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
    /// The append time written into the batch, or -1 (CreateTime).
    pub log_append_time_ms: i64,
    /// The log start offset at the time of the append.
    pub log_start_offset: u64,
}

/// Batches returned by a read.
#[derive(Debug, Clone, Default)]
pub struct ReadData {
    /// Stored batches, byte for byte, in offset order.
    pub batches: Vec<Bytes>,
    /// Their total size.
    pub bytes: usize,
    /// High watermark when the read was served.
    pub high_watermark: u64,
    /// Log start offset when the read was served.
    pub log_start_offset: u64,
    /// Whether the batches came from the tail cache.
    pub from_cache: bool,
}

/// A batch found by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampHit {
    /// Base offset of the first batch whose max timestamp is `>=` the one asked for.
    pub base_offset: u64,
    /// Its last offset.
    pub last_offset: u64,
    /// Its max timestamp.
    pub max_timestamp: i64,
}

/// Counters of one log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Batches appended since open.
    pub batches_appended: u64,
    /// Bytes appended since open.
    pub bytes_appended: u64,
    /// fdatasync calls made by flushes and rolls.
    pub fsyncs: u64,
    /// How long flushes' fdatasyncs took.
    pub fsync_latency: Histogram,
    /// Bytes of segments that flushes' fdatasyncs made durable (divided by `fsyncs`,
    /// the batch size of group commit).
    pub fsync_bytes: u64,
    /// Flush calls that were answered by another caller's fdatasync (group commit).
    pub flushes_shared: u64,
    /// Segments rolled.
    pub rolls: u64,
    /// Segments deleted by retention or DeleteRecords.
    pub segments_deleted: u64,
    /// Disk reads answered by the read-ahead started after the read before them.
    pub readahead_hits: u64,
}

/// Marks the log's one running flush; clears the mark and wakes waiting flushers when
/// dropped, whether the flush finished or its caller was cancelled.
struct FlushRunning<'a>(&'a PartitionLog);

impl Drop for FlushRunning<'_> {
    fn drop(&mut self) {
        self.0.state.borrow_mut().flushing = false;
        self.0.flush_done.notify(usize::MAX);
    }
}

/// The end of the log when its buffers were sealed for a flush, roll or truncation.
#[derive(Debug, Clone)]
struct SealedEnd {
    /// Write sequence number to wait for.
    seq: u64,
    file: Rc<DmaFile>,
    path: PathBuf,
    segment_base: u64,
    next_offset: u64,
    size: u64,
}

/// The end of one appended batch.
#[derive(Debug, Clone, Copy)]
struct BatchEnd {
    /// Write sequence number one past its last byte.
    seq: u64,
    /// Offset after it.
    next_offset: u64,
    /// Its segment, and the segment's size after it.
    segment_base: u64,
    segment_size: u64,
}

struct State {
    segments: Vec<Segment>,
    appender: Appender,
    log_start: u64,
    high_watermark: u64,
    failed: Option<Error>,
    closed: bool,
    /// A flush is running (see [`PartitionLog::flush`]).
    flushing: bool,
    /// A roll started and has not finished: the active segment may already be cut to its
    /// data, so nothing more is appended to it; the next append rolls again.
    rolling: bool,
    /// Leader epoch of each range of offsets.
    epochs: LeaderEpochCache,
    /// Where recent batches end, oldest first: lets a flush cover every batch whose bytes
    /// are all written when its fdatasync starts. Trimmed as writes complete, so it holds
    /// about the batches not yet written plus one.
    batch_ends: VecDeque<BatchEnd>,
    stats: LogStats,
}

impl State {
    fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }
    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }
    fn log_end(&self) -> u64 {
        self.active().next_offset
    }
    fn writable(&self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
    /// Index of the segment that may hold `offset`.
    fn segment_for(&self, offset: u64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }
}

/// A partition log. See the module documentation for the contract.
pub struct PartitionLog {
    dir: PathBuf,
    config: RefCell<LogConfig>,
    cache: Rc<RefCell<TailCache>>,
    cache_id: LogId,
    state: RefCell<State>,
    queue: Rc<WriteQueue>,
    append_lock: Semaphore,
    flush_done: Event,
    high_watermark_moved: Event,
    recovery: RecoveryReport,
    readahead: RefCell<Option<ReadAhead>>,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .field("log_start", &self.log_start_offset())
            .field("high_watermark", &self.high_watermark())
            .field("log_end", &self.log_end_offset())
            .finish()
    }
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering it if the last shutdown was not
    /// clean. Must run on the glommio executor that will own the log.
    pub async fn open(
        dir: impl AsRef<Path>,
        config: LogConfig,
        cache: Rc<RefCell<TailCache>>,
    ) -> Result<PartitionLog> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).ctx("create log directory", &dir)?;
        crate::device::prime(dir.parent().unwrap_or(&dir)).await?;

        let marker = dir.join(checkpoint::CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let mut epochs = LeaderEpochCache::read(&dir)?;
        let (mut segments, report) = recovery::load(&dir, &config, clean, &epochs).await?;
        let checkpointed_start = checkpoint::read_log_start(&dir)?;
        if segments.is_empty() {
            let seg = create_segment(&dir, checkpointed_start, &config).await?;
            segments.push(seg);
        }
        let active = segments.last().expect("just ensured");
        let tail = recovery::prepare_active(active, &config).await?;
        // What recovery kept must be durable before it is readable.
        active
            .file
            .fdatasync()
            .await
            .ctx("fdatasync segment", &active.log_path)?;
        if clean {
            // The marker must be gone for good before anything new is written, or a
            // crash later would skip validating the tail.
            std::fs::remove_file(&marker).ctx("remove clean shutdown marker", &marker)?;
            fsutil::sync_dir(&dir)?;
        }

        let log_end = active.next_offset;
        if epochs.truncate_from(log_end) {
            // Epochs whose batches did not survive the crash.
            epochs.write(&dir)?;
        }
        let mut log_start = checkpointed_start.max(segments[0].base_offset);
        if log_start > log_end {
            tracing::warn!(dir = %dir.display(), log_start, log_end,
                "log start checkpoint is past the log end; using the log end");
            log_start = log_end;
        }
        let queue = WriteQueue::new(config.write_chunks_inflight_max, config.write_depth);
        let appender = Appender::resume(
            active.file.clone(),
            active.log_path.clone(),
            queue.clone(),
            config.write_chunk_bytes,
            active.size,
            &tail,
            0,
        );
        let cache_id = cache.borrow_mut().register();
        tracing::info!(
            dir = %dir.display(),
            segments = report.segments,
            clean = report.clean,
            validated_bytes = report.validated_bytes,
            truncated_bytes = report.truncated_bytes,
            indexes_rebuilt = report.indexes_rebuilt,
            elapsed_us = report.elapsed_us,
            log_start, log_end,
            "log opened"
        );
        Ok(PartitionLog {
            dir,
            config: RefCell::new(config),
            cache,
            cache_id,
            state: RefCell::new(State {
                segments,
                appender,
                log_start,
                high_watermark: log_end,
                failed: None,
                closed: false,
                flushing: false,
                rolling: false,
                epochs,
                batch_ends: VecDeque::new(),
                stats: LogStats::default(),
            }),
            queue,
            append_lock: Semaphore::new(1),
            flush_done: Event::new(),
            high_watermark_moved: Event::new(),
            recovery: report,
            readahead: RefCell::new(None),
        })
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The log's settings.
    pub fn config(&self) -> LogConfig {
        self.config.borrow().clone()
    }

    /// Largest stored batch a read or scan accepts, from the current settings.
    fn batch_bytes_max(&self) -> usize {
        recovery::stored_batch_bytes_max(&self.config.borrow())
    }

    /// Changes the settings a running log may change: segment size and age, retention
    /// and the largest batch. The write-path sizing chosen at open stays; a new largest
    /// batch that it cannot carry is refused. Takes effect at the next append or
    /// retention pass.
    pub fn set_config(&self, mut next: LogConfig) -> Result<()> {
        let current = self.config.borrow().clone();
        next.write_chunk_bytes = current.write_chunk_bytes;
        next.write_chunks_inflight_max = current.write_chunks_inflight_max;
        next.write_depth = current.write_depth;
        next.index_interval_bytes = current.index_interval_bytes;
        next.validate()?;
        *self.config.borrow_mut() = next;
        Ok(())
    }
    /// What recovery found when the log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }
    /// First offset still in the log (the low watermark).
    pub fn log_start_offset(&self) -> u64 {
        self.state.borrow().log_start
    }
    /// One past the last durable offset: what readers may see.
    pub fn high_watermark(&self) -> u64 {
        self.state.borrow().high_watermark
    }
    /// The offset the next appended record will get.
    pub fn log_end_offset(&self) -> u64 {
        self.state.borrow().log_end()
    }
    /// Bytes of data in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.state.borrow().segments.iter().map(|s| s.size).sum()
    }
    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.state.borrow().segments.len()
    }
    /// Base offsets of the segments.
    pub fn segment_bases(&self) -> Vec<u64> {
        self.state
            .borrow()
            .segments
            .iter()
            .map(|s| s.base_offset)
            .collect()
    }
    /// Counters since open.
    pub fn stats(&self) -> LogStats {
        self.state.borrow().stats
    }
    /// The first failure that stopped writes, if any.
    pub fn failure(&self) -> Option<Error> {
        self.state.borrow().failed.clone()
    }

    fn fail(&self, e: Error) -> Error {
        let mut st = self.state.borrow_mut();
        let err = st
            .failed
            .get_or_insert_with(|| {
                tracing::error!(dir = %self.dir.display(), error = %e, "log failed; refusing writes until reopened");
                Error::LogFailed {
                    dir: self.dir.clone(),
                    cause: Arc::new(e),
                }
            })
            .clone();
        err
    }

    /// Takes the append lock, which orders appends, rolls, flush seals and truncation.
    async fn lock_appends(&self) -> Result<glommio::sync::Permit<'_>> {
        self.append_lock
            .acquire_permit(1)
            .await
            .map_err(|_| Error::Closed)
    }

    /// Validates `batch` and appends it; see the module documentation.
    pub async fn append(&self, mut batch: BytesMut, opts: AppendOptions) -> Result<AppendInfo> {
        self.queue.let_writes_out().await;
        let info = batch::validate(&batch, self.config.borrow().max_batch_bytes)?;
        let _order = self.lock_appends().await?;
        self.state.borrow().writable()?;
        if self.needs_roll(batch.len()) {
            self.roll().await?;
        }
        self.enter_epoch(opts.leader_epoch).await?;
        let slots = self.state.borrow().appender.slots_for_append(batch.len());
        self.queue.take_slots(slots).await?;

        // From here to the end nothing awaits: offsets are assigned in file order.
        let mut st = self.state.borrow_mut();
        if let Err(e) = st.writable() {
            self.queue.return_slots(slots);
            return Err(e);
        }
        let base = st.log_end();
        let last = base + info.offset_count as u64 - 1;
        tracing::trace!(base, len = batch.len(), "append");
        batch::assign(&mut batch, base as i64, opts.leader_epoch);
        let mut append_time = -1;
        if let Some(now) = opts.log_append_time_ms {
            batch::set_log_append_time(&mut batch, now);
            append_time = now;
        }
        let position = st.active().size;
        let view = RecordBatch::new(&batch).expect("validated above");
        st.active_mut().on_batch(position, &view);
        st.appender.append(&batch);
        debug_assert_eq!(st.appender.size(), st.active().size);
        let end = BatchEnd {
            seq: st.appender.next_seq(),
            next_offset: last + 1,
            segment_base: st.active().base_offset,
            segment_size: st.active().size,
        };
        let written = self.queue.written_seq();
        while st.batch_ends.len() > 1 && st.batch_ends[1].seq <= written {
            st.batch_ends.pop_front();
        }
        st.batch_ends.push_back(end);
        st.stats.batches_appended += 1;
        st.stats.bytes_appended += batch.len() as u64;
        let log_start = st.log_start;
        drop(st);
        self.cache
            .borrow_mut()
            .insert(self.cache_id, base, last, batch.freeze());
        Ok(AppendInfo {
            base_offset: base,
            last_offset: last,
            log_append_time_ms: append_time,
            log_start_offset: log_start,
        })
    }

    /// Records a new leader epoch durably before its first batch is appended; refuses an
    /// epoch older than the newest. Caller holds the append lock.
    async fn enter_epoch(&self, epoch: i32) -> Result<()> {
        let (latest, log_end) = {
            let st = self.state.borrow();
            (st.epochs.latest(), st.log_end())
        };
        if epoch == latest {
            return Ok(());
        }
        if epoch < latest {
            return Err(Error::InvalidArgument(format!(
                "leader epoch {epoch} is older than the log's epoch {latest}"
            )));
        }
        let mut next = self.state.borrow().epochs.clone();
        if next.assign(epoch, log_end) {
            fsutil::write_durable_off_executor(vec![next.file(&self.dir)]).await?;
        }
        self.state.borrow_mut().epochs = next;
        Ok(())
    }

    /// The leader epoch cache: each epoch and the first offset written under it.
    pub fn leader_epochs(&self) -> Vec<crate::epoch::EpochEntry> {
        self.state.borrow().epochs.entries().to_vec()
    }

    fn needs_roll(&self, len: usize) -> bool {
        let st = self.state.borrow();
        let active = st.active();
        if st.rolling {
            return true;
        }
        if active.size == 0 {
            return false;
        }
        active.size + len as u64 > self.config.borrow().segment_bytes
            || self
                .config
                .borrow()
                .segment_age
                .is_some_and(|age| active.opened_at.elapsed() >= age)
    }

    /// Makes everything appended so far durable and returns the new high watermark.
    ///
    /// Group commit: one caller at a time runs a flush, which covers everything appended
    /// up to its start. Callers arriving meanwhile wait for it to finish; those it covered
    /// return, and one of the rest starts the next flush, which covers everything appended
    /// in between (typically by the callers the previous flush just released).
    pub async fn flush(&self) -> Result<u64> {
        let target = self.log_end_offset();
        let mut waited = false;
        loop {
            {
                let mut st = self.state.borrow_mut();
                if st.high_watermark >= target {
                    st.stats.flushes_shared += u64::from(waited);
                    return Ok(st.high_watermark);
                }
                st.writable()?;
                if !st.flushing {
                    st.flushing = true;
                    break;
                }
            }
            let listener = self.flush_done.listen();
            {
                let st = self.state.borrow();
                if st.high_watermark >= target || !st.flushing || st.failed.is_some() {
                    continue;
                }
            }
            waited = true;
            listener.await;
        }
        // Cleared on drop too: a caller may be cancelled mid-flush (its request dropped),
        // and a flag left set would make every later flush wait forever.
        let _running = FlushRunning(self);
        self.flush_now().await
    }

    /// One flush: seal the end of the log, wait for the writes, fdatasync, publish.
    async fn flush_now(&self) -> Result<u64> {
        // Capture the end of the log and seal it, in append order; appends may go on while
        // the writes land.
        let end = {
            let _order = self.lock_appends().await?;
            self.seal_active().await?
        };
        let SealedEnd {
            seq: _,
            file,
            path,
            segment_base: seg_base,
            next_offset: end_offset,
            size: end_size,
        } = end.clone();
        tracing::trace!(end_offset, end_size, "flush sealed");
        self.wait_sealed(&end).await?;
        tracing::trace!("flush writes done; fdatasync");
        let _held = self.queue.hold().await;
        // Every write issued so far has landed and none starts until release: the
        // fdatasync also covers batches appended after the seal whose bytes are written.
        let (end_offset, end_size) = {
            let written = self.queue.written_seq();
            let st = self.state.borrow();
            st.batch_ends
                .iter()
                .rev()
                .find(|e| e.seq <= written && e.segment_base == seg_base)
                .filter(|e| e.next_offset > end_offset)
                .map_or((end_offset, end_size), |e| (e.next_offset, e.segment_size))
        };
        tracing::trace!(end_offset, "fdatasync covers");
        let sync_started = std::time::Instant::now();
        let synced = fdatasync(&file, &path).await;
        let sync_took = sync_started.elapsed();
        drop(_held);
        if let Err(e) = synced {
            return Err(self.fail(e));
        }
        tracing::trace!("fdatasync done");
        let hw = {
            let mut st = self.state.borrow_mut();
            st.stats.fsyncs += 1;
            st.stats.fsync_latency.record(sync_took);
            let mut made_durable = 0;
            if let Some(seg) = st.segments.iter_mut().find(|s| s.base_offset == seg_base) {
                made_durable = end_size.saturating_sub(seg.durable_size);
                seg.durable_size = seg.durable_size.max(end_size);
            }
            st.stats.fsync_bytes += made_durable;
            st.high_watermark = st.high_watermark.max(end_offset);
            assert!(
                st.high_watermark <= st.log_end(),
                "high watermark passed the log end"
            );
            st.high_watermark
        };
        self.high_watermark_moved.notify(usize::MAX);
        Ok(hw)
    }

    /// Closes the active segment and starts a new one. Caller holds the append lock.
    ///
    /// A roll that fails (a full disk when the new segment is preallocated) leaves the
    /// log writable, its active segment closed to appends, and no new segment file: the
    /// next append tries again. Appending on into the cut segment instead, beside a
    /// stray file named after the next offset, made a reopened log hand out that offset
    /// twice (found by `engine/tests/faults.rs`).
    async fn roll(&self) -> Result<()> {
        self.state.borrow_mut().rolling = true;
        self.finish_active().await?;
        {
            let st = self.state.borrow();
            let active = st.active();
            assert!(
                active.next_offset > active.base_offset,
                "a roll of an empty segment would create a second segment at its base"
            );
        }
        let (next, old_indexes) = {
            let mut st = self.state.borrow_mut();
            let active = st.active_mut();
            active.seal_time_index();
            (active.next_offset, active.encoded_indexes())
        };
        fsutil::write_durable_off_executor(old_indexes).await?;
        let seg = create_segment(&self.dir, next, &self.config()).await?;
        let mut st = self.state.borrow_mut();
        st.appender = Appender::resume(
            seg.file.clone(),
            seg.log_path.clone(),
            self.queue.clone(),
            self.config.borrow().write_chunk_bytes,
            0,
            &[],
            st.appender.next_seq(),
        );
        st.segments.push(seg);
        st.rolling = false;
        st.stats.rolls += 1;
        tracing::info!(dir = %self.dir.display(), base_offset = next, "rolled a new segment");
        Ok(())
    }

    /// Seals the active segment's buffered bytes for writing and returns where the log ends.
    /// Caller holds the append lock, so the end cannot move while it is captured.
    async fn seal_active(&self) -> Result<SealedEnd> {
        let slots = self.state.borrow().appender.slots_for_flush();
        self.queue.take_slots(slots).await?;
        let mut st = self.state.borrow_mut();
        let seq = st.appender.seal_for_flush();
        let active = st.active();
        Ok(SealedEnd {
            seq,
            file: active.file.clone(),
            path: active.log_path.clone(),
            segment_base: active.base_offset,
            next_offset: active.next_offset,
            size: active.size,
        })
    }

    /// Waits until everything sealed up to `end` is in the file; a failed write fails the
    /// log.
    async fn wait_sealed(&self, end: &SealedEnd) -> Result<()> {
        self.queue
            .wait_written(end.seq)
            .await
            .map_err(|e| self.fail(e))
    }

    /// Writes out, fdatasyncs and truncates the active segment to its data, and moves the
    /// high watermark to its end. Caller holds the append lock.
    async fn finish_active(&self) -> Result<()> {
        let end = self.seal_active().await?;
        self.wait_sealed(&end).await?;
        let SealedEnd {
            file,
            path,
            size,
            next_offset: end,
            ..
        } = end;
        let synced = async {
            faults::fail(faults::Op::Truncate, &path).ctx("truncate segment", &path)?;
            file.truncate(size).await.ctx("truncate segment", &path)?;
            fdatasync(&file, &path).await
        };
        if let Err(e) = synced.await {
            return Err(self.fail(e));
        }
        {
            let mut st = self.state.borrow_mut();
            st.stats.fsyncs += 1;
            st.active_mut().durable_size = size;
            st.high_watermark = st.high_watermark.max(end);
        }
        self.high_watermark_moved.notify(usize::MAX);
        Ok(())
    }

    /// Resolves once the high watermark is above `offset` (for long-polling fetches; the
    /// caller bounds the wait with a timer).
    pub async fn wait_for_data_after(&self, offset: u64) {
        wait_for(&self.high_watermark_moved, || {
            (self.high_watermark() > offset || self.state.borrow().closed).then_some(())
        })
        .await
    }

    /// Reads stored batches from `offset` (inclusive) up to the high watermark: whole
    /// batches starting with the one that holds `offset`, at most `max_bytes` of them
    /// except that the first is always returned whole. `offset == high_watermark` gives
    /// an empty result; outside `[log_start, high_watermark]` is `OffsetOutOfRange`.
    pub async fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadData> {
        let (log_start, hw) = {
            let st = self.state.borrow();
            (st.log_start, st.high_watermark)
        };
        if offset < log_start || offset > hw {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                log_start,
                high_watermark: hw,
            });
        }
        let mut out = ReadData {
            high_watermark: hw,
            log_start_offset: log_start,
            ..ReadData::default()
        };
        if offset == hw {
            return Ok(out);
        }
        if let Some(hit) = self
            .cache
            .borrow_mut()
            .read(self.cache_id, offset, hw, max_bytes)
        {
            if !hit.batches.is_empty() {
                out.batches = hit.batches;
                out.bytes = hit.bytes;
                out.from_cache = true;
                return Ok(out);
            }
        }
        let mut index = self.state.borrow().segment_for(offset);
        loop {
            let located = {
                let st = self.state.borrow();
                st.segments.get(index).map(|s| {
                    let from = if offset >= s.base_offset {
                        s.offset_index
                            .lookup((offset - s.base_offset).min(u32::MAX as u64) as u32)
                            .position as u64
                    } else {
                        0
                    };
                    (
                        s.file.clone(),
                        s.log_path.clone(),
                        from,
                        s.durable_size,
                        s.base_offset,
                    )
                })
            };
            let Some((file, path, from, to, segment_base)) = located else {
                return Ok(out);
            };
            let ahead = self
                .readahead
                .borrow_mut()
                .take()
                .filter(|ra| ra.offset == offset && ra.segment_base == segment_base);
            let mut found = None;
            if let Some(ra) = ahead {
                let pos = ra.pos;
                match ra.data().await {
                    Ok(data) => {
                        found = reader::batches_at(&data, offset, max_bytes).map(|b| (pos, b));
                        self.state.borrow_mut().stats.readahead_hits += u64::from(found.is_some());
                    }
                    Err(e) => tracing::debug!(error = %e, "read-ahead failed; reading again"),
                }
            }
            if found.is_none() {
                found = reader::read_batches(
                    &file,
                    &path,
                    from,
                    to,
                    offset,
                    max_bytes,
                    self.batch_bytes_max(),
                )
                .await?;
            }
            if let Some((start, bytes)) = found {
                // Keep only batches below the watermark captured above.
                let (keep, next_offset) = batches_below(&bytes, hw);
                if keep > 0 {
                    out.bytes = keep;
                    out.batches.push(bytes.slice(..keep));
                    // A bulk read (at least half of a limit that is not a probe's) is
                    // likely followed by a read of what comes next: start reading it now
                    // (see `readahead.rs`).
                    let next_pos = start + keep as u64;
                    if readahead::worth_it(max_bytes, keep) && next_pos < to {
                        let len = (max_bytes.saturating_add(reader::READ_SLACK_BYTES) as u64)
                            .min(to - next_pos) as usize;
                        *self.readahead.borrow_mut() =
                            ReadAhead::start(file, path, segment_base, next_offset, next_pos, len);
                    }
                }
                return Ok(out);
            }
            index += 1;
        }
    }

    /// The first batch (below the high watermark) whose max timestamp is `>= timestamp`, as
    /// Kafka's ListOffsets by timestamp needs; `None` if every batch is older.
    pub async fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampHit>> {
        let hw = self.high_watermark();
        let count = self.segment_count();
        for i in 0..count {
            let located = {
                let st = self.state.borrow();
                let Some(s) = st.segments.get(i) else { break };
                if s.max_timestamp < timestamp || s.base_offset >= hw {
                    continue;
                }
                let rel = s.time_index.scan_start(timestamp);
                let from = s.offset_index.lookup(rel);
                (
                    s.file.clone(),
                    s.log_path.clone(),
                    from.position as u64,
                    s.base_offset + from.relative_offset as u64,
                    s.durable_size,
                )
            };
            let (file, path, from, min_offset, to) = located;
            let mut hit = None;
            reader::scan(
                &file,
                &path,
                ScanParams {
                    from,
                    to,
                    check_crc: false,
                    min_offset,
                    batch_bytes_max: self.batch_bytes_max(),
                },
                |_, b| {
                    if b.last_offset() as u64 >= hw {
                        return false;
                    }
                    if b.max_timestamp() >= timestamp {
                        hit = Some(TimestampHit {
                            base_offset: b.base_offset() as u64,
                            last_offset: b.last_offset() as u64,
                            max_timestamp: b.max_timestamp(),
                        });
                        return false;
                    }
                    true
                },
            )
            .await?;
            if hit.is_some() {
                return Ok(hit);
            }
        }
        Ok(None)
    }

    /// The batch holding the largest timestamp in the log (Kafka's ListOffsets
    /// MAX_TIMESTAMP): its last offset and the timestamp, `None` for an empty log.
    pub fn max_timestamp(&self) -> Option<(u64, i64)> {
        let st = self.state.borrow();
        st.segments
            .iter()
            .filter(|s| s.size > 0 && s.max_timestamp_offset < st.high_watermark)
            .max_by_key(|s| s.max_timestamp)
            .map(|s| (s.max_timestamp_offset, s.max_timestamp))
    }

    /// Moves the log start offset to `offset` (Kafka DeleteRecords): records before it are
    /// no longer readable, and whole segments below it are deleted. The new start is
    /// durable when this returns. Returns the log start offset.
    ///
    /// The segments go first and the checkpoint after: on a full disk the checkpoint's
    /// new file only fits once they are gone (DeleteRecords is how an operator frees
    /// space). A crash in between leaves the start at the first remaining segment's base,
    /// which is at most `offset`: deleted records may reappear, none is lost.
    pub async fn delete_records_before(&self, offset: u64) -> Result<u64> {
        let _order = self.lock_appends().await?;
        let (start, hw) = {
            let st = self.state.borrow();
            (st.log_start, st.high_watermark)
        };
        if offset > hw {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                log_start: start,
                high_watermark: hw,
            });
        }
        if offset <= start {
            return Ok(start);
        }
        self.delete_segments_below(offset).await?;
        fsutil::write_durable_off_executor(vec![checkpoint::log_start_file(&self.dir, offset)])
            .await?;
        self.state.borrow_mut().log_start = offset;
        Ok(offset)
    }

    /// Deletes closed segments that lie wholly below `offset`.
    async fn delete_segments_below(&self, offset: u64) -> Result<usize> {
        let n = {
            let st = self.state.borrow();
            let closed = st.segments.len() - 1;
            st.segments[..closed]
                .iter()
                .take_while(|s| s.next_offset <= offset)
                .count()
        };
        self.remove_oldest(n).await
    }

    /// Applies the retention settings at time `now_ms`: deletes expired closed segments
    /// and advances the log start offset. Returns how many segments were deleted.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        let n = {
            let st = self.state.borrow();
            let closed = st.segments.len() - 1;
            let stats: Vec<SegmentStat> = st.segments[..closed]
                .iter()
                .map(|s| SegmentStat {
                    size: s.size,
                    max_timestamp_ms: s.max_timestamp,
                })
                .collect();
            let total = st.segments.iter().map(|s| s.size).sum();
            retention::segments_to_delete(&stats, total, &self.config.borrow(), now_ms)
        };
        self.remove_oldest(n).await
    }

    async fn remove_oldest(&self, n: usize) -> Result<usize> {
        if n == 0 {
            return Ok(0);
        }
        let removed: Vec<Segment> = {
            let mut st = self.state.borrow_mut();
            let n = n.min(st.segments.len() - 1);
            let removed: Vec<Segment> = st.segments.drain(..n).collect();
            st.log_start = st.log_start.max(st.segments[0].base_offset);
            st.stats.segments_deleted += removed.len() as u64;
            removed
        };
        let paths: Vec<PathBuf> = removed.iter().map(|s| s.log_path.clone()).collect();
        let count = paths.len();
        tracing::info!(dir = %self.dir.display(), segments = count,
            log_start = self.log_start_offset(), "deleted old segments");
        remove_segment_files(paths).await?;
        Ok(count)
    }

    /// Removes every record at or after `offset` (the whole batch holding it, so the new
    /// log end may be lower than `offset`). Used by replication to cut a diverged tail.
    /// Returns the new log end offset.
    ///
    /// Not cancellation-safe: it changes files and state across several awaits, so run it
    /// in a task that is not dropped before it finishes (append, flush and read are safe to
    /// cancel).
    pub async fn truncate_to(&self, offset: u64) -> Result<u64> {
        let _order = self.lock_appends().await?;
        self.state.borrow().writable()?;
        let (log_start, log_end) = {
            let st = self.state.borrow();
            (st.log_start, st.log_end())
        };
        if offset >= log_end {
            return Ok(log_end);
        }
        if offset < log_start {
            return Err(Error::InvalidArgument(format!(
                "cannot truncate to {offset}, below the log start offset {log_start}"
            )));
        }
        // Let every queued write land before cutting files under it.
        let end = self.seal_active().await?;
        self.wait_sealed(&end).await?;

        // Drop whole segments that start at or after the cut (keeping at least one).
        let doomed: Vec<Segment> = {
            let mut st = self.state.borrow_mut();
            let keep = st
                .segments
                .partition_point(|s| s.base_offset < offset)
                .max(1);
            st.segments.drain(keep..).collect()
        };
        let doomed_paths: Vec<PathBuf> = doomed.iter().map(|s| s.log_path.clone()).collect();
        drop(doomed);
        remove_segment_files(doomed_paths).await?;

        // Cut the segment that holds the offset at the start of the batch holding it.
        let (file, path, base, size) = {
            let st = self.state.borrow();
            let s = st.active();
            (s.file.clone(), s.log_path.clone(), s.base_offset, s.size)
        };
        let mut cut = (size, self.state.borrow().active().next_offset);
        let from = self
            .state
            .borrow()
            .active()
            .offset_index
            .lookup((offset.max(base) - base).min(u32::MAX as u64) as u32);
        reader::scan(
            &file,
            &path,
            ScanParams {
                from: from.position as u64,
                to: size,
                check_crc: false,
                min_offset: base + from.relative_offset as u64,
                batch_bytes_max: self.batch_bytes_max(),
            },
            |pos, b| {
                if b.last_offset() as u64 >= offset {
                    cut = (pos, b.base_offset() as u64);
                    return false;
                }
                true
            },
        )
        .await?;
        let (cut_pos, new_end) = if offset <= base { (0, base) } else { cut };
        let tail = async {
            file.truncate(cut_pos)
                .await
                .ctx("truncate segment", &path)?;
            fsutil::remove_if_exists(&path.with_extension(fsutil::INDEX_EXT))?;
            fsutil::remove_if_exists(&path.with_extension(fsutil::TIME_INDEX_EXT))?;
            let mut fresh = Segment::new(
                &self.dir,
                base,
                file.clone(),
                self.config.borrow().index_interval_bytes,
            );
            fresh.size = 0;
            Ok::<_, Error>(fresh)
        }
        .await;
        let mut fresh = match tail {
            Ok(f) => f,
            Err(e) => return Err(self.fail(e)),
        };
        // Rebuild the segment's metadata from what is left.
        reader::scan(
            &file,
            &path,
            ScanParams {
                from: 0,
                to: cut_pos,
                check_crc: false,
                min_offset: base,
                batch_bytes_max: self.batch_bytes_max(),
            },
            |pos, b| {
                fresh.on_batch(pos, b);
                true
            },
        )
        .await?;
        assert_eq!(
            fresh.size, cut_pos,
            "rescan of a truncated segment disagrees"
        );
        fresh.next_offset = new_end;
        fresh.durable_size = cut_pos;
        let tail_bytes = recovery::prepare_active(&fresh, &self.config()).await?;
        if let Err(e) = fdatasync(&file, &path).await {
            return Err(self.fail(e));
        }
        {
            let mut st = self.state.borrow_mut();
            let next_seq = st.appender.next_seq();
            st.appender = Appender::resume(
                file.clone(),
                path.clone(),
                self.queue.clone(),
                self.config.borrow().write_chunk_bytes,
                cut_pos,
                &tail_bytes,
                next_seq,
            );
            // Whatever roll was pending was for the segment just cut.
            st.rolling = false;
            *st.active_mut() = fresh;
            st.high_watermark = st.high_watermark.min(new_end);
        }
        let epochs = {
            let mut st = self.state.borrow_mut();
            st.epochs.truncate_from(new_end).then(|| st.epochs.clone())
        };
        if let Some(epochs) = epochs {
            fsutil::write_durable_off_executor(vec![epochs.file(&self.dir)]).await?;
        }
        self.cache.borrow_mut().truncate(self.cache_id, new_end);
        Ok(new_end)
    }

    /// Flushes everything, truncates the active segment to its data, writes its indexes
    /// and a clean shutdown marker, so the next open needs no recovery scan. The log
    /// refuses further writes. Like [`PartitionLog::truncate_to`], not cancellation-safe.
    pub async fn close(&self) -> Result<()> {
        drop(self.readahead.borrow_mut().take());
        let _order = self.lock_appends().await?;
        self.state.borrow().writable()?;
        self.finish_active().await?;
        let mut files = {
            let mut st = self.state.borrow_mut();
            st.closed = true;
            let active = st.active_mut();
            active.seal_time_index();
            active.encoded_indexes()
        };
        // The marker last: it vouches for the indexes.
        files.push((self.dir.join(checkpoint::CLEAN_SHUTDOWN_FILE), Vec::new()));
        fsutil::write_durable_off_executor(files).await?;
        self.queue.close();
        self.high_watermark_moved.notify(usize::MAX);
        Ok(())
    }
}

impl Drop for PartitionLog {
    fn drop(&mut self) {
        self.queue.close();
        self.cache.borrow_mut().unregister(self.cache_id);
    }
}

/// Of the whole batches at the start of `bytes`, those whose last offset is below `end`:
/// their length in bytes and the offset after the last of them.
fn batches_below(bytes: &[u8], end: u64) -> (usize, u64) {
    let (mut n, mut next) = (0, 0);
    while let Some(b) = RecordBatch::from_prefix(&bytes[n..]) {
        if b.last_offset() as u64 >= end {
            break;
        }
        next = b.last_offset() as u64 + 1;
        n += b.len();
    }
    (n, next)
}

/// Removes segments' files (segment and indexes). Unlinking a large file can take
/// milliseconds, so it runs off the executor; readers that still hold a segment's file
/// keep reading it until they drop it.
async fn remove_segment_files(logs: Vec<PathBuf>) -> Result<()> {
    glommio::executor()
        .spawn_blocking(move || {
            for p in logs {
                Segment::remove_files_blocking(&p)?;
            }
            Ok::<(), Error>(())
        })
        .await
}

/// fdatasync of a segment file (through the fault plan, see `faults.rs`).
async fn fdatasync(file: &DmaFile, path: &Path) -> Result<()> {
    faults::fail(faults::Op::Sync, path).ctx("fdatasync", path)?;
    file.fdatasync().await.ctx("fdatasync", path)
}

/// Creates and preallocates an empty segment starting at `base`, durably.
async fn create_segment(dir: &Path, base: u64, config: &LogConfig) -> Result<Segment> {
    let path = fsutil::segment_file(dir, base, fsutil::LOG_EXT);
    let file = segment::open_file(&path, true).await?;
    let prepared = async {
        faults::fail(faults::Op::Allocate, &path).ctx("preallocate segment", &path)?;
        file.pre_allocate(config.segment_bytes.next_multiple_of(4096), false)
            .await
            .ctx("preallocate segment", &path)?;
        let d = dir.to_path_buf();
        glommio::executor()
            .spawn_blocking(move || fsutil::sync_dir(&d))
            .await
    };
    if let Err(e) = prepared.await {
        // No file stays behind for a segment that does not exist (the roll is retried;
        // a crash before that would otherwise reopen with an empty last segment).
        if let Err(rm) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %rm, "cannot remove a segment file that failed to preallocate");
        }
        return Err(e);
    }
    Ok(Segment::new(
        dir,
        base,
        Rc::new(file),
        config.index_interval_bytes,
    ))
}
