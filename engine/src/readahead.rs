//! Sequential read-ahead for reads that miss the tail cache.
//!
//! Segments are read with O_DIRECT, so the kernel's page-cache read-ahead does nothing for
//! them: a consumer catching up from disk waited for each fetch's read in turn (about
//! 1 MiB), and 4 consumers read 245 MB/s from a disk that gives about 1 GB/s. After a
//! disk read that returned whole batches, the log starts reading the same amount after
//! them in the background; a read for exactly the next offset in the same segment takes
//! that data instead of issuing its own.
//!
//! One read-ahead per log. Any other read (another offset or segment) drops it, and
//! dropping cancels the read in flight. The data was below the segment's durable size
//! when the read started, so it is durable; the caller still trims it to the high
//! watermark it captured, as for any read.

use std::path::PathBuf;
use std::rc::Rc;

use glommio::io::{DmaFile, ReadResult};

use crate::error::{IoContext, Result};

/// Read limits below this are probes (a timestamp lookup, a peek at one batch), not bulk
/// reads, and start no read-ahead.
pub(crate) const MIN_LIMIT_BYTES: usize = 4096;

/// Whether a disk read that returned `returned` bytes for a limit of `limit` looks like
/// one of a sequence of bulk reads: a limit that is not a probe's, at least half used.
pub(crate) fn worth_it(limit: usize, returned: usize) -> bool {
    limit >= MIN_LIMIT_BYTES && returned >= limit / 2
}

/// A background read of the bytes that follow the last disk read.
pub(crate) struct ReadAhead {
    /// Offset of the first batch the read starts with.
    pub(crate) offset: u64,
    /// Base offset of the segment read.
    pub(crate) segment_base: u64,
    /// File position of that batch.
    pub(crate) pos: u64,
    task: glommio::Task<Result<ReadResult>>,
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
    /// Starts reading `len` bytes at `pos` of the segment with base `segment_base`, where
    /// the batch holding `offset` starts.
    pub(crate) fn start(
        file: Rc<DmaFile>,
        path: PathBuf,
        segment_base: u64,
        offset: u64,
        pos: u64,
        len: usize,
    ) -> ReadAhead {
        assert!(len > 0, "an empty read-ahead");
        let task = glommio::spawn_local(async move {
            file.read_at(pos, len)
                .await
                .ctx("read segment ahead", path.as_path())
        });
        ReadAhead {
            offset,
            segment_base,
            pos,
            task,
        }
    }

    /// Waits for the data.
    pub(crate) async fn data(self) -> Result<ReadResult> {
        self.task.await
    }
}
