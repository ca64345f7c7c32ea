//! Per-log settings, validated once when a log is opened.

use std::time::Duration;

use crate::error::{Error, Result};

/// Alignment of every direct-I/O write and of every write buffer. The device may accept
/// 512, but ext4's block is 4096 and writing whole blocks avoids read-modify-write.
pub const IO_ALIGN: usize = 4096;

/// Settings of one partition log. Sizes are bytes, durations are what their type says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment is rolled once it holds this many bytes (Kafka `segment.bytes`). Also the
    /// preallocation size of a new segment, and the bound on crash recovery work, which
    /// re-validates only the active segment.
    pub segment_bytes: u64,
    /// A segment is rolled once its first append is this old (Kafka `segment.ms`).
    pub segment_age: Option<Duration>,
    /// Closed segments whose newest record is older than this are deleted
    /// (Kafka `retention.ms`; `None` keeps them forever).
    pub retention_age: Option<Duration>,
    /// Oldest closed segments are deleted while the log is larger than this
    /// (Kafka `retention.bytes`; `None` is unlimited).
    pub retention_bytes: Option<u64>,
    /// One sparse index entry per this many bytes of batches (Kafka
    /// `index.interval.bytes`).
    pub index_interval_bytes: u32,
    /// Largest batch accepted (Kafka `max.message.bytes`).
    pub max_batch_bytes: usize,
    /// Size of one direct-I/O write buffer. Appends are copied into it and it is written
    /// when full or when a flush needs it.
    pub write_chunk_bytes: usize,
    /// How many full write buffers may wait for (or be in) the disk at once per log before
    /// appends wait: the log's write-back memory is at most this many chunks plus one.
    pub write_chunks_inflight_max: usize,
    /// Writes a log keeps in flight at once (queue depth). Above one, the disk stays busy
    /// while the executor is busy copying and checking batches.
    pub write_depth: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 128 << 20,
            segment_age: Some(Duration::from_secs(7 * 24 * 3600)),
            retention_age: Some(Duration::from_secs(7 * 24 * 3600)),
            retention_bytes: None,
            index_interval_bytes: 4096,
            max_batch_bytes: 1_048_588,
            write_chunk_bytes: 1 << 20,
            write_chunks_inflight_max: 4,
            write_depth: 4,
        }
    }
}

impl LogConfig {
    /// Checks the relationships the engine relies on.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.write_chunk_bytes < IO_ALIGN || !self.write_chunk_bytes.is_multiple_of(IO_ALIGN) {
            return bad(format!(
                "write_chunk_bytes ({}) must be a non-zero multiple of {IO_ALIGN}",
                self.write_chunk_bytes
            ));
        }
        if self.write_chunks_inflight_max < 2 {
            return bad("write_chunks_inflight_max must be at least 2".into());
        }
        if self.write_depth == 0 || self.write_depth > self.write_chunks_inflight_max {
            return bad(format!(
                "write_depth ({}) must be between 1 and write_chunks_inflight_max ({})",
                self.write_depth, self.write_chunks_inflight_max
            ));
        }
        if self.max_batch_bytes < crate::batch::HEADER_BYTES {
            return bad(format!(
                "max_batch_bytes ({}) is smaller than a batch header",
                self.max_batch_bytes
            ));
        }
        // One append may fill the rest of a chunk and then whole chunks; it must be able to
        // get enough write slots without waiting for itself.
        let chunks_per_batch = self.max_batch_bytes.div_ceil(self.write_chunk_bytes) + 1;
        if chunks_per_batch > self.write_chunks_inflight_max {
            return bad(format!(
                "a batch of max_batch_bytes ({}) spans {chunks_per_batch} write chunks of {} bytes, \
                 more than write_chunks_inflight_max ({})",
                self.max_batch_bytes, self.write_chunk_bytes, self.write_chunks_inflight_max
            ));
        }
        if self.segment_bytes < IO_ALIGN as u64 {
            return bad(format!(
                "segment_bytes ({}) must be at least {IO_ALIGN}",
                self.segment_bytes
            ));
        }
        // Index entries hold 32-bit positions; a segment may overshoot segment_bytes by one
        // batch before it rolls.
        if self.segment_bytes + self.max_batch_bytes as u64 >= u32::MAX as u64 {
            return bad(format!(
                "segment_bytes ({}) plus max_batch_bytes must stay below 4 GiB",
                self.segment_bytes
            ));
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_values_are_named() {
        LogConfig::default().validate().unwrap();
        let c = LogConfig {
            write_chunk_bytes: 1000,
            ..LogConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("write_chunk_bytes"));
        let c = LogConfig {
            max_batch_bytes: 8 << 20,
            ..LogConfig::default()
        };
        assert!(c.validate().is_err());
        let c = LogConfig {
            segment_bytes: 5 << 30,
            ..LogConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
