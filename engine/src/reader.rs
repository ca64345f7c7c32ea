//! Reading stored batches back from a segment file with direct I/O.
//!
//! All readers walk the segment batch by batch from a known batch start (position 0 or a
//! sparse index entry). [`scan`] is the one loop that recovery, index rebuilding,
//! timestamp lookups and fetches share; it stops at the first bytes that are not a
//! complete, well-framed batch with offsets above the previous one (and, when asked, a
//! matching CRC).

use std::path::Path;

use bytes::Bytes;
use glommio::io::{DmaFile, ReadResult};

use crate::batch::{framed_len, RecordBatch, HEADER_BYTES, LOG_OVERHEAD};
use crate::error::{IoContext, Result};
use crate::faults;

/// Bytes read per I/O while scanning.
pub const SCAN_WINDOW_BYTES: usize = 1 << 20;

/// Where and why a scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEnd {
    /// Position just past the last good batch visited.
    pub end: u64,
    /// Offset after the last good batch visited (the `min_offset` given if none).
    pub next_offset: u64,
    /// Why the scan stopped before `to`, or `None` if it reached it (or the visitor
    /// stopped it).
    pub stop: Option<String>,
    /// The scan stopped at a zero length field: the normal end of the data in a
    /// preallocated segment, not a sign of damage.
    pub at_zeros: bool,
}

/// Parameters of a scan.
#[derive(Debug, Clone, Copy)]
pub struct ScanParams {
    /// First position; must be a batch start.
    pub from: u64,
    /// Position not to read past.
    pub to: u64,
    /// Verify each batch's CRC.
    pub check_crc: bool,
    /// The first batch's base offset must be at least this; each later one must be above
    /// the previous batch's last offset.
    pub min_offset: u64,
    /// A framed length above this is treated as corruption, not as a batch.
    pub batch_bytes_max: usize,
}

/// `len` bytes of a segment file from `pos` (fewer at its end), through the fault plan
/// (`faults.rs`).
pub(crate) async fn read_at(
    file: &DmaFile,
    path: &Path,
    pos: u64,
    len: usize,
) -> Result<ReadResult> {
    faults::fail(faults::Op::Read, path).ctx("read segment", path)?;
    file.read_at(pos, len).await.ctx("read segment", path)
}

/// Visits batches from `p.from` until `p.to`, the first invalid bytes, or until `visit`
/// returns `false`. `visit` gets each batch's file position.
pub async fn scan(
    file: &DmaFile,
    path: &Path,
    p: ScanParams,
    mut visit: impl FnMut(u64, &RecordBatch<'_>) -> bool,
) -> Result<ScanEnd> {
    let mut pos = p.from;
    let mut next_offset = p.min_offset;
    let stop = |pos: u64, next_offset: u64, why: String| ScanEnd {
        end: pos,
        next_offset,
        stop: Some(why),
        at_zeros: false,
    };
    while pos < p.to {
        let want = (p.to - pos).min(SCAN_WINDOW_BYTES as u64) as usize;
        let window = read_at(file, path, pos, want).await?;
        let mut consumed = 0usize;
        loop {
            let rest = &window[consumed..];
            let at = pos + consumed as u64;
            if rest.is_empty() {
                break;
            }
            let Some(len) = framed_len(rest) else {
                if window.len() < want || at + (rest.len() as u64) >= p.to {
                    return Ok(stop(at, next_offset, "incomplete batch header".into()));
                }
                break; // header straddles the window: read on from `at`
            };
            if len == LOG_OVERHEAD as i64 && rest[..LOG_OVERHEAD].iter().all(|&b| b == 0) {
                return Ok(ScanEnd {
                    at_zeros: true,
                    ..stop(at, next_offset, "end of data (zeros)".into())
                });
            }
            if len < HEADER_BYTES as i64 || len > p.batch_bytes_max as i64 {
                return Ok(stop(
                    at,
                    next_offset,
                    format!("no batch here (length field gives {len} bytes)"),
                ));
            }
            let len = len as usize;
            if at + len as u64 > p.to {
                return Ok(stop(
                    at,
                    next_offset,
                    format!("batch of {len} bytes runs past the end of the data"),
                ));
            }
            let whole;
            let bytes: &[u8] = if len <= rest.len() {
                &rest[..len]
            } else if consumed == 0 {
                // A batch larger than the window: read it alone.
                whole = read_at(file, path, at, len).await?;
                if whole.len() < len {
                    return Ok(stop(at, next_offset, "segment file is short".into()));
                }
                &whole[..len]
            } else {
                break; // straddles the window: read on from `at`
            };
            let Some(batch) = RecordBatch::from_prefix(bytes) else {
                return Ok(stop(at, next_offset, "bad magic or framing".into()));
            };
            if p.check_crc {
                if let Err(e) = batch.verify_crc() {
                    return Ok(stop(at, next_offset, e.to_string()));
                }
            }
            if batch.base_offset() < next_offset as i64 || batch.last_offset_delta() < 0 {
                return Ok(stop(
                    at,
                    next_offset,
                    format!(
                        "batch offsets {}..={} do not follow {}",
                        batch.base_offset(),
                        batch.last_offset(),
                        next_offset
                    ),
                ));
            }
            if !visit(at, &batch) {
                return Ok(ScanEnd {
                    end: at,
                    next_offset,
                    stop: None,
                    at_zeros: false,
                });
            }
            next_offset = batch.last_offset() as u64 + 1;
            consumed += len;
            if len > rest.len() {
                break;
            }
        }
        if consumed == 0 && window.len() < want {
            return Ok(stop(pos, next_offset, "segment file is short".into()));
        }
        pos += consumed as u64;
    }
    Ok(ScanEnd {
        end: pos,
        next_offset,
        stop: None,
        at_zeros: false,
    })
}

/// Bytes read beyond `max_bytes` by a fetch, so that the batch holding the offset (at most
/// about one index interval past the index entry it starts from) is usually in the same
/// read.
pub const READ_SLACK_BYTES: usize = 64 << 10;

/// Reads whole batches starting with the one that holds `offset`, from batch start
/// `from`, not past position `to`, at most `max_bytes` except that the first batch is
/// always whole. Returns the file position of the first batch and the bytes (one copy out
/// of the DMA buffer, so they can cross cores), or `None` if no batch at or after
/// `offset` starts before `to`.
///
/// Usually one read: `[from, from + max_bytes + READ_SLACK_BYTES)`, searched in memory.
/// When the batch holding `offset` is not whole in that window, it scans on from the last
/// batch found and reads again.
pub async fn read_batches(
    file: &DmaFile,
    path: &Path,
    from: u64,
    to: u64,
    offset: u64,
    max_bytes: usize,
    batch_bytes_max: usize,
) -> Result<Option<(u64, Bytes)>> {
    let want = ((max_bytes.saturating_add(READ_SLACK_BYTES)) as u64).min(to - from) as usize;
    let data = read_at(file, path, from, want).await?;
    let mut pos = 0usize;
    while let Some(b) = RecordBatch::from_prefix(&data[pos..]) {
        if b.last_offset() as u64 >= offset {
            let end = whole_batches_within(&data[pos..], max_bytes);
            return Ok(Some((
                from + pos as u64,
                Bytes::copy_from_slice(&data[pos..pos + end]),
            )));
        }
        pos += b.len();
    }
    if from + pos as u64 >= to {
        return Ok(None);
    }
    read_batches_scanning(
        file,
        path,
        from + pos as u64,
        to,
        offset,
        max_bytes,
        batch_bytes_max,
    )
    .await
}

/// Length of the whole batches at the start of `bytes` that fit in `max_bytes`, the first
/// one always counted.
fn whole_batches_within(bytes: &[u8], max_bytes: usize) -> usize {
    let mut end = 0usize;
    while let Some(b) = RecordBatch::from_prefix(&bytes[end..]) {
        if end > 0 && end + b.len() > max_bytes {
            break;
        }
        end += b.len();
    }
    end
}

/// The slow path of [`read_batches`]: scan from `from` for the batch holding `offset`,
/// then read from it.
async fn read_batches_scanning(
    file: &DmaFile,
    path: &Path,
    from: u64,
    to: u64,
    offset: u64,
    max_bytes: usize,
    batch_bytes_max: usize,
) -> Result<Option<(u64, Bytes)>> {
    let mut start = None;
    let mut first_len = 0usize;
    scan(
        file,
        path,
        ScanParams {
            from,
            to,
            check_crc: false,
            min_offset: 0,
            batch_bytes_max,
        },
        |pos, b| {
            if (b.last_offset() as u64) < offset {
                return true;
            }
            start = Some(pos);
            first_len = b.len();
            false
        },
    )
    .await?;
    let Some(start) = start else {
        return Ok(None);
    };
    // Read the first batch plus whatever of the limit follows, then keep whole batches.
    let want = (max_bytes.max(first_len) as u64).min(to - start) as usize;
    let data = read_at(file, path, start, want).await?;
    let end = whole_batches_within(&data, max_bytes);
    if end == 0 {
        return Ok(None);
    }
    Ok(Some((start, Bytes::copy_from_slice(&data[..end]))))
}

/// The whole batches at the start of `data` that fit in `max_bytes` (the first always
/// counted), if the first one starts at `offset` and is whole: what a read for `offset`
/// returns when `data` was read from that batch's position (see `readahead.rs`).
pub(crate) fn batches_at(data: &[u8], offset: u64, max_bytes: usize) -> Option<Bytes> {
    let first = RecordBatch::from_prefix(data)?;
    if first.base_offset() as u64 != offset {
        return None;
    }
    let end = whole_batches_within(data, max_bytes);
    (end > 0).then(|| Bytes::copy_from_slice(&data[..end]))
}
