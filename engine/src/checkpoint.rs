//! Small per-log state files.
//!
//! # Log start offset checkpoint (`log-start-offset`)
//!
//! Written (durably, by temp file and rename) whenever DeleteRecords moves the log start
//! offset past the first segment's base; retention needs none, because it deletes whole
//! segments and the first remaining segment's base is the start.
//!
//! ```text
//! offset size field
//!  0      4   magic "CLSO"
//!  4      8   log start offset (u64, big-endian)
//! 12      4   CRC-32C of bytes 0..12 (big-endian)
//! ```
//!
//! A file with a wrong size, magic or CRC is ignored with a warning (the start offset
//! then falls back to the first segment's base: data that was deleted may reappear, none
//! is lost).
//!
//! # Clean shutdown marker (`clean-shutdown`)
//!
//! An empty file created after a close has written every segment, truncated the active one
//! to its data and written its indexes. Its presence lets the next open skip re-validating
//! the active segment. Open removes it, durably, before the log accepts writes.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::fsutil;

/// File name of the log start offset checkpoint.
pub const LOG_START_FILE: &str = "log-start-offset";
/// File name of the clean shutdown marker.
pub const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";

const MAGIC: &[u8; 4] = b"CLSO";
const CHECKPOINT_BYTES: usize = 16;

/// Encodes the checkpoint.
pub fn encode_log_start(offset: u64) -> [u8; CHECKPOINT_BYTES] {
    let mut out = [0u8; CHECKPOINT_BYTES];
    out[0..4].copy_from_slice(MAGIC);
    out[4..12].copy_from_slice(&offset.to_be_bytes());
    let crc = crc32c::crc32c(&out[0..12]);
    out[12..16].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes the checkpoint, `None` when it is not well formed.
pub fn decode_log_start(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != CHECKPOINT_BYTES || &bytes[0..4] != MAGIC {
        return None;
    }
    let crc = u32::from_be_bytes(bytes[12..16].try_into().ok()?);
    if crc32c::crc32c(&bytes[0..12]) != crc {
        return None;
    }
    Some(u64::from_be_bytes(bytes[4..12].try_into().ok()?))
}

/// Reads the checkpoint of the log in `dir` (0 when absent or damaged).
pub fn read_log_start(dir: &Path) -> Result<u64> {
    let path = dir.join(LOG_START_FILE);
    Ok(match fsutil::read_optional(&path)? {
        None => 0,
        Some(b) => decode_log_start(&b).unwrap_or_else(|| {
            tracing::warn!(path = %path.display(), "ignoring a damaged log start offset checkpoint");
            0
        }),
    })
}

/// The checkpoint of `offset` for the log in `dir`: its path and bytes, for
/// [`fsutil::write_durable_off_executor`].
pub fn log_start_file(dir: &Path, offset: u64) -> (PathBuf, Vec<u8>) {
    (dir.join(LOG_START_FILE), encode_log_start(offset).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_detects_damage() {
        let b = encode_log_start(987654321);
        assert_eq!(decode_log_start(&b), Some(987654321));
        for i in 0..b.len() {
            let mut d = b;
            d[i] ^= 0x40;
            assert_eq!(decode_log_start(&d), None, "flip at {i}");
        }
        assert_eq!(decode_log_start(&b[..15]), None);
    }
}
