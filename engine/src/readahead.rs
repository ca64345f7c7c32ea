//! Sequential read-ahead for reads that miss the tail cache.
//!
//! Segments are read with O_DIRECT, so the kernel's page-cache read-ahead does nothing for
//! them: a consumer catching up from disk waited for each fetch's read in turn (about
//! 1 MiB), and 4 consumers read 245 MB/s from a disk that gives about 1 GB/s. After a
//! disk read that returned whole batches, the log starts reading the same amount after
//! them in the background; a read for exactly the next offset in the same segment takes
//! that data instead of issuing its own.
//!
//! One read-ahead per log, of at most [`MAX_BYTES`], and at most [`SHARD_BUDGET_BYTES`]
//! in all on one executor (a shard): a read-ahead that does not fit is not started, so
//! memory stays bounded however many partitions are read at once. Any other read (another
//! offset or segment) drops it, and dropping cancels the read in flight.
//!
//! The data was below the segment's durable size when the read started, so it is durable;
//! the caller still trims it to the high watermark it captured, as for any read.

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;

use glommio::io::{DmaFile, ReadResult};

use crate::error::Result;

/// Largest read-ahead of one log.
pub(crate) const MAX_BYTES: usize = 4 << 20;

/// Bytes all read-aheads of one executor may hold at once.
pub(crate) const SHARD_BUDGET_BYTES: usize = 64 << 20;

thread_local! {
    /// Bytes held by this executor's read-aheads.
    static HELD: Cell<usize> = const { Cell::new(0) };
}

/// Read limits below this are probes (a timestamp lookup, a peek at one batch), not bulk
/// reads, and start no read-ahead.
pub(crate) const MIN_LIMIT_BYTES: usize = 4096;

/// Whether a disk read that returned `returned` bytes for a limit of `limit` looks like
/// one of a sequence of bulk reads: a limit that is not a probe's, at least half used.
pub(crate) fn worth_it(limit: usize, returned: usize) -> bool {
    limit >= MIN_LIMIT_BYTES && returned >= limit.min(MAX_BYTES) / 2
}

/// A background read of the bytes that follow the last disk read.
pub(crate) struct ReadAhead {
    /// Offset of the first batch the read starts with.
    pub(crate) offset: u64,
    /// Base offset of the segment read.
    pub(crate) segment_base: u64,
    /// File position of that batch.
    pub(crate) pos: u64,
    /// Bytes counted against the executor's budget until this is dropped.
    held: usize,
    task: glommio::Task<Result<ReadResult>>,
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        HELD.with(|h| h.set(h.get() - self.held));
    }
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead")
            .field("offset", &self.offset)
            .field("segment_base", &self.segment_base)
            .field("pos", &self.pos)
            .finish()
    }
}

impl ReadAhead {
    /// Starts reading up to `len` bytes (at most [`MAX_BYTES`]) at `pos` of the segment
    /// with base `segment_base`, where the batch holding `offset` starts; `None` when the
    /// executor's read-aheads already hold their budget.
    pub(crate) fn start(
        file: Rc<DmaFile>,
        path: PathBuf,
        segment_base: u64,
        offset: u64,
        pos: u64,
        len: usize,
    ) -> Option<ReadAhead> {
        let len = len.min(MAX_BYTES);
        assert!(len > 0, "an empty read-ahead");
        let fits = HELD.with(|h| {
            let fits = h.get() + len <= SHARD_BUDGET_BYTES;
            if fits {
                h.set(h.get() + len);
            }
            fits
        });
        if !fits {
            return None;
        }
        let task = glommio::spawn_local(async move {
            crate::reader::read_at(&file, path.as_path(), pos, len).await
        });
        Some(ReadAhead {
            offset,
            segment_base,
            pos,
            held: len,
            task,
        })
    }

    /// Bytes this executor's read-aheads hold now.
    #[cfg(test)]
    pub(crate) fn held_on_this_executor() -> usize {
        HELD.with(|h| h.get())
    }

    /// Waits for the data.
    pub(crate) async fn data(mut self) -> Result<ReadResult> {
        (&mut self.task).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_aheads_stay_within_the_executor_budget() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.log");
        std::fs::write(&path, vec![7u8; 64 << 10]).unwrap();
        crate::testing::run_on_executor(move || async move {
            let file = Rc::new(DmaFile::open(&path).await.unwrap());
            let start = |len| ReadAhead::start(file.clone(), path.clone(), 0, 0, 0, len);
            let mut held = Vec::new();
            while let Some(ra) = start(usize::MAX) {
                held.push(ra);
                assert!(held.len() <= SHARD_BUDGET_BYTES / MAX_BYTES, "over budget");
            }
            assert_eq!(held.len(), SHARD_BUDGET_BYTES / MAX_BYTES);
            assert_eq!(ReadAhead::held_on_this_executor(), SHARD_BUDGET_BYTES);
            // Data of a finished read-ahead is the file's; its share comes back either way.
            let one = held.pop().unwrap();
            let data = one.data().await.unwrap();
            assert_eq!(&data[..], &vec![7u8; 64 << 10][..]);
            assert!(start(4096).is_some(), "a freed share can be used again");
            drop(held);
            assert_eq!(ReadAhead::held_on_this_executor(), 0);
        });
    }
}
