//! Opening a log directory: loading segments and indexes, and repairing a torn tail.
//!
//! Closed segments were fdatasynced and truncated to their data before the next segment
//! was created, so they are trusted; their indexes are loaded and spot-checked against the
//! segment (last entry must point at a batch with the right offset) and rebuilt by a scan
//! when missing or wrong.
//!
//! The last segment is the only one a crash can leave torn. After a clean shutdown (marker
//! file present) it is loaded like a closed one. Otherwise it is scanned from the start
//! with CRC checks and truncated at the first invalid byte, and its indexes are rebuilt
//! from the scan. Recovery time is therefore bounded by `segment_bytes`, not by the size of
//! the log. The truncated file is cut and preallocated again, so no stale bytes of an
//! unfinished write stay behind the new end to be mistaken for batches later.

use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use glommio::io::DmaFile;

use crate::batch::{RecordBatch, HEADER_BYTES};
use crate::config::LogConfig;
use crate::epoch::LeaderEpochCache;
use crate::error::{IoContext, Result};
use crate::fsutil;
use crate::index::{OffsetIndex, TimeIndex};
use crate::reader::{self, ScanParams};
use crate::segment::{self, Segment};

/// What recovery found, for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments found.
    pub segments: usize,
    /// The previous shutdown was clean (no tail validation needed).
    pub clean: bool,
    /// Bytes of the active segment that were validated batch by batch.
    pub validated_bytes: u64,
    /// Bytes cut from the end of the active segment (data past the first invalid byte).
    pub truncated_bytes: u64,
    /// Why the scan stopped, when it cut something.
    pub truncation_reason: Option<String>,
    /// Index files rebuilt because they were missing or disagreed with their segment.
    pub indexes_rebuilt: usize,
    /// Time spent, in microseconds.
    pub elapsed_us: u64,
}

/// Largest length field treated as a possible batch while scanning stored data. Batches
/// written under an older, larger `max_batch_bytes` (settings change at run time) must
/// still be readable, so the bound never drops below [`STORED_BATCH_BYTES_FLOOR`].
pub(crate) fn stored_batch_bytes_max(config: &LogConfig) -> usize {
    (config.segment_bytes as usize)
        .max(config.max_batch_bytes)
        .max(STORED_BATCH_BYTES_FLOOR)
}

/// Batches up to this size are always accepted when reading stored data, whatever the
/// current settings: the broker never lets a topic's largest batch exceed it.
pub const STORED_BATCH_BYTES_FLOOR: usize = 64 << 20;

/// Loads the segments of `dir`. The last one is ready to become active (its file is
/// preallocated) but has no appender yet.
pub(crate) async fn load(
    dir: &Path,
    config: &LogConfig,
    clean: bool,
    epochs: &LeaderEpochCache,
) -> Result<(Vec<Segment>, RecoveryReport)> {
    let started = Instant::now();
    let bases = segment::list_segments(dir)?;
    let mut report = RecoveryReport {
        segments: bases.len(),
        clean,
        ..RecoveryReport::default()
    };
    let mut segments = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate() {
        let path = fsutil::segment_file(dir, base, fsutil::LOG_EXT);
        let file = Rc::new(segment::open_file(&path, false).await?);
        let file_size = file.file_size().await.ctx("stat segment", &path)?;
        let mut seg = Segment::new(dir, base, file, config.index_interval_bytes);
        let next_base = bases.get(i + 1).copied();
        if next_base.is_some() || clean {
            load_trusted(&mut seg, file_size, next_base, config, &mut report).await?;
        } else {
            recover_tail(&mut seg, file_size, config, epochs, &mut report).await?;
        }
        seg.durable_size = seg.size;
        segments.push(seg);
    }
    report.elapsed_us = started.elapsed().as_micros() as u64;
    Ok((segments, report))
}

/// A segment whose file size is its data size: load and check its indexes.
async fn load_trusted(
    seg: &mut Segment,
    file_size: u64,
    next_base: Option<u64>,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<()> {
    let loaded = load_indexes(seg, file_size).await?;
    match loaded {
        Some((offsets, times)) => {
            seg.offset_index = offsets;
            seg.time_index = times;
            seg.size = file_size;
            if let Some(t) = seg.time_index.last() {
                seg.max_timestamp = t.timestamp;
                seg.max_timestamp_offset = seg.base_offset + t.relative_offset as u64;
            }
            seg.next_offset = match next_base {
                Some(next) => next,
                None => last_offset_after(seg, config).await?,
            };
        }
        None => {
            report.indexes_rebuilt += 1;
            let end = rebuild(seg, file_size, None, config).await?;
            if end.stop.is_some() {
                tracing::error!(
                    path = %seg.log_path.display(),
                    at = end.end,
                    reason = end.stop.as_deref().unwrap_or(""),
                    "closed segment is damaged; data after this position is unreadable"
                );
            }
        }
    }
    Ok(())
}

/// Reads both index files and checks them against the segment; `None` means rebuild.
async fn load_indexes(seg: &Segment, file_size: u64) -> Result<Option<(OffsetIndex, TimeIndex)>> {
    let (Some(ob), Some(tb)) = (
        fsutil::read_optional(&seg.index_path())?,
        fsutil::read_optional(&seg.time_index_path())?,
    ) else {
        return Ok(None);
    };
    let (offsets, times) = match (OffsetIndex::decode(&ob, file_size), TimeIndex::decode(&tb)) {
        (Ok(o), Ok(t)) => (o, t),
        (o, t) => {
            tracing::warn!(
                path = %seg.index_path().display(),
                offset_index = ?o.err(), time_index = ?t.err(),
                "index does not parse; rebuilding"
            );
            return Ok(None);
        }
    };
    if file_size > 0 && times.is_empty() {
        return Ok(None); // a closed segment with data always has a time index entry
    }
    if let Some(last) = offsets.last() {
        let hdr =
            reader::read_at(&seg.file, &seg.log_path, last.position as u64, HEADER_BYTES).await?;
        let ok = hdr.len() == HEADER_BYTES
            && crate::batch::framed_len(&hdr).is_some()
            && i64::from_be_bytes(hdr[0..8].try_into().expect("8 bytes"))
                == (seg.base_offset + last.relative_offset as u64) as i64;
        if !ok {
            tracing::warn!(path = %seg.index_path().display(), "index disagrees with its segment; rebuilding");
            return Ok(None);
        }
    }
    Ok(Some((offsets, times)))
}

/// One past the last offset of a trusted segment: scan from its last index entry.
async fn last_offset_after(seg: &Segment, config: &LogConfig) -> Result<u64> {
    let from = seg.offset_index.lookup(u32::MAX);
    let end = reader::scan(
        &seg.file,
        &seg.log_path,
        ScanParams {
            from: from.position as u64,
            to: seg.size,
            check_crc: false,
            min_offset: seg.base_offset + from.relative_offset as u64,
            batch_bytes_max: stored_batch_bytes_max(config),
        },
        |_, _| true,
    )
    .await?;
    Ok(end.next_offset)
}

/// Rebuilds a segment's indexes and counters by scanning it from the start; the segment
/// ends where the scan stopped. With `strict`, every batch's CRC is checked, offsets must
/// follow each other exactly (the engine never leaves gaps) and each batch must carry the
/// leader epoch the cache gives for its offset: the base offset and the epoch lie outside
/// the CRC, so this is what catches damage there.
async fn rebuild(
    seg: &mut Segment,
    to: u64,
    strict: Option<&LeaderEpochCache>,
    config: &LogConfig,
) -> Result<reader::ScanEnd> {
    let file = seg.file.clone();
    let path = seg.log_path.clone();
    let mut fresh = Segment::new(
        path.parent().expect("segment path has a directory"),
        seg.base_offset,
        file.clone(),
        config.index_interval_bytes,
    );
    let mut refused = None;
    let mut end = reader::scan(
        &file,
        &path,
        ScanParams {
            from: 0,
            to,
            check_crc: strict.is_some(),
            min_offset: seg.base_offset,
            batch_bytes_max: stored_batch_bytes_max(config),
        },
        |pos, b: &RecordBatch<'_>| {
            if let Some(epochs) = strict {
                let base = b.base_offset() as u64;
                if base != fresh.next_offset {
                    refused = Some(format!(
                        "batch at offset {base} does not follow offset {}",
                        fresh.next_offset
                    ));
                    return false;
                }
                let want = epochs.epoch_for(base);
                if b.leader_epoch() != want {
                    refused = Some(format!(
                        "batch at offset {base} has leader epoch {}, the epoch cache says {want}",
                        b.leader_epoch()
                    ));
                    return false;
                }
            }
            fresh.on_batch(pos, b);
            true
        },
    )
    .await?;
    if refused.is_some() {
        end.stop = refused;
    }
    seg.size = fresh.size;
    seg.next_offset = fresh.next_offset;
    seg.max_timestamp = fresh.max_timestamp;
    seg.max_timestamp_offset = fresh.max_timestamp_offset;
    seg.offset_index = fresh.offset_index;
    seg.time_index = fresh.time_index;
    seg.seal_time_index();
    Ok(end)
}

/// Validates the last segment after an unclean shutdown and cuts it at the first invalid
/// byte.
async fn recover_tail(
    seg: &mut Segment,
    file_size: u64,
    config: &LogConfig,
    epochs: &LeaderEpochCache,
    report: &mut RecoveryReport,
) -> Result<()> {
    report.indexes_rebuilt += 1;
    let end = rebuild(seg, file_size, Some(epochs), config).await?;
    report.validated_bytes = end.end;
    // Everything past the data is discarded: cut the file there and preallocate again so
    // the rest reads as zeros.
    let stale = file_size - end.end;
    seg.file
        .truncate(end.end)
        .await
        .ctx("truncate segment", &seg.log_path)?;
    report.truncated_bytes = stale;
    if let Some(reason) = end.stop {
        // Past the data of a preallocated file the scan meets zeros; only other stops are
        // worth a warning.
        if end.at_zeros {
            tracing::debug!(path = %seg.log_path.display(), at = end.end, "end of data");
        } else {
            tracing::warn!(
                path = %seg.log_path.display(),
                at = end.end,
                reason = %reason,
                "truncated a torn tail after an unclean shutdown"
            );
            report.truncation_reason = Some(reason);
        }
    }
    Ok(())
}

/// Makes the last segment writable: preallocates it and reads its partial last block.
pub(crate) async fn prepare_active(seg: &Segment, config: &LogConfig) -> Result<Vec<u8>> {
    let file: &DmaFile = &seg.file;
    let size = file.file_size().await.ctx("stat segment", &seg.log_path)?;
    if size > seg.size {
        // Stale bytes past the data (clean close truncates, so only an unusual file gets
        // here): cut them.
        file.truncate(seg.size)
            .await
            .ctx("truncate segment", &seg.log_path)?;
    }
    let prealloc = config.segment_bytes.max(seg.size).next_multiple_of(4096);
    file.pre_allocate(prealloc, false)
        .await
        .ctx("preallocate segment", &seg.log_path)?;
    let aligned = seg.size - seg.size % crate::config::IO_ALIGN as u64;
    let tail_len = (seg.size - aligned) as usize;
    if tail_len == 0 {
        return Ok(Vec::new());
    }
    let tail = reader::read_at(file, &seg.log_path, aligned, tail_len).await?;
    Ok(tail[..tail_len].to_vec())
}
