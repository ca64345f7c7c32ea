//! One segment of a partition log: a file of batches back to back, named by the offset of
//! its first batch, with its sparse offset and time indexes.
//!
//! # Segment file (`<base offset, 20 digits>.log`)
//!
//! Stored RecordBatch v2 bytes (see [`crate::batch`]) back to back, from position 0, with
//! nothing between them and no file header: a segment is exactly what a fetch returns.
//! Offsets strictly increase from batch to batch; the first batch's base offset is the
//! segment's base offset.
//!
//! The active (last) segment is preallocated to `segment_bytes`, so past its data the
//! file reads as zeros, which never parse as a batch (the length field would be 0). A
//! closed segment is truncated to its data and never written again.
//!
//! Torn tail (crash): the active segment's data may end in a partial batch, or in bytes
//! of a write that never completed. Recovery scans it batch by batch (framing, CRC-32C,
//! offsets increasing) and truncates at the first byte that fails.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use glommio::io::DmaFile;

use crate::batch::RecordBatch;
use crate::error::{IoContext, Result};
use crate::fsutil::{self, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT};
use crate::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};

/// A segment's metadata and indexes, plus its open file.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    pub log_path: PathBuf,
    pub file: Rc<DmaFile>,
    /// Bytes of data appended (some may still be in write buffers for the active segment).
    pub size: u64,
    /// Bytes known durable and readable from the file.
    pub durable_size: u64,
    /// One past the last offset appended.
    pub next_offset: u64,
    /// Largest batch max-timestamp, and the last offset of the batch that has it.
    pub max_timestamp: i64,
    pub max_timestamp_offset: u64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// Bytes appended since the last offset index entry.
    bytes_since_index: u64,
    index_interval_bytes: u64,
    /// When the segment was opened or created: age-based rolling counts from here.
    pub opened_at: Instant,
}

impl Segment {
    pub fn new(
        dir: &Path,
        base_offset: u64,
        file: Rc<DmaFile>,
        index_interval_bytes: u32,
    ) -> Segment {
        Segment {
            base_offset,
            log_path: fsutil::segment_file(dir, base_offset, LOG_EXT),
            file,
            size: 0,
            durable_size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            max_timestamp_offset: base_offset,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            index_interval_bytes: index_interval_bytes as u64,
            opened_at: Instant::now(),
        }
    }

    pub fn index_path(&self) -> PathBuf {
        self.log_path.with_extension(INDEX_EXT)
    }

    pub fn time_index_path(&self) -> PathBuf {
        self.log_path.with_extension(TIME_INDEX_EXT)
    }

    fn relative(&self, offset: u64) -> u32 {
        let rel = offset - self.base_offset;
        assert!(
            rel <= u32::MAX as u64,
            "offset {offset} too far from segment base {}",
            self.base_offset
        );
        rel as u32
    }

    /// Records a batch that now sits at `position`. Called for appends and for each batch
    /// found while rebuilding indexes.
    pub fn on_batch(&mut self, position: u64, batch: &RecordBatch<'_>) {
        let base = batch.base_offset() as u64;
        let last = batch.last_offset() as u64;
        assert!(
            base >= self.next_offset && position == self.size,
            "segment {} got batch {base}..={last} at {position}, expected offset >= {} at {}",
            self.log_path.display(),
            self.next_offset,
            self.size
        );
        if batch.max_timestamp() > self.max_timestamp {
            self.max_timestamp = batch.max_timestamp();
            self.max_timestamp_offset = last;
        }
        if self.size == 0 || self.bytes_since_index >= self.index_interval_bytes {
            if position > 0 {
                self.offset_index.push(OffsetEntry {
                    relative_offset: self.relative(base),
                    position: position as u32,
                });
            }
            self.bytes_since_index = 0;
            self.seal_time_index();
        }
        self.bytes_since_index += batch.len() as u64;
        self.size += batch.len() as u64;
        self.next_offset = last + 1;
    }

    /// Records the running maximum timestamp in the time index (if it grew). Called at
    /// index points and on close, so that after a restart the index alone gives the
    /// segment's newest timestamp.
    pub fn seal_time_index(&mut self) {
        if self.max_timestamp >= 0 {
            let rel = self.relative(self.max_timestamp_offset.max(self.base_offset));
            self.time_index.maybe_push(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset: rel,
            });
        }
    }

    /// The index files' paths and bytes, for [`fsutil::write_durable_off_executor`].
    pub fn encoded_indexes(&self) -> Vec<(PathBuf, Vec<u8>)> {
        vec![
            (self.index_path(), self.offset_index.encode()),
            (self.time_index_path(), self.time_index.encode()),
        ]
    }

    /// Removes the segment's files (the open file stays readable for readers holding it).
    pub fn remove_files_blocking(log: &Path) -> Result<()> {
        fsutil::remove_if_exists(log)?;
        fsutil::remove_if_exists(&log.with_extension(INDEX_EXT))?;
        fsutil::remove_if_exists(&log.with_extension(TIME_INDEX_EXT))
    }
}

/// Opens a segment file for direct-I/O reads and writes.
pub(crate) async fn open_file(path: &Path, create: bool) -> Result<DmaFile> {
    glommio::io::OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .dma_open(path)
        .await
        .ctx(
            if create {
                "create segment"
            } else {
                "open segment"
            },
            path,
        )
}

/// Parses a directory listing into sorted segment base offsets, removing leftovers: index
/// files without a segment and temporary files.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut logs = Vec::new();
    let mut others = Vec::new();
    for entry in std::fs::read_dir(dir).ctx("list directory", dir)? {
        let entry = entry.ctx("list directory", dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        match fsutil::parse_segment_name(name) {
            // A durable write's temporary file (`<base>.index.tmp`; `<base>.tmp` from
            // before) that a crash or a failed write left behind; the file it was to
            // replace is intact.
            _ if name.ends_with(".tmp") => fsutil::remove_if_exists(&entry.path())?,
            Some((base, LOG_EXT)) => logs.push(base),
            Some((base, ext)) => others.push((base, ext.to_string(), entry.path())),
            None => {}
        }
    }
    logs.sort_unstable();
    for (base, ext, path) in others {
        if logs.binary_search(&base).is_err() {
            tracing::info!(path = %path.display(), "removing an index whose segment is gone");
            fsutil::remove_if_exists(&path)?;
        } else if ext != INDEX_EXT && ext != TIME_INDEX_EXT {
            tracing::warn!(path = %path.display(), "ignoring an unexpected file in a log directory");
        }
    }
    Ok(logs)
}
