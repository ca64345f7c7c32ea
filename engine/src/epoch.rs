//! The leader epoch cache: which leader epoch each range of offsets was written under.
//!
//! Kafka keeps the same cache (`LeaderEpochFileCache`): replication needs it to answer
//! OffsetForLeaderEpoch and to find where a follower diverged. corelog also uses it to
//! check stored batches during recovery: the `partitionLeaderEpoch` field lies outside the
//! batch CRC (so that brokers can assign it in place), and this cache is what lets a
//! corrupted epoch be caught at all.
//!
//! # File (`leader-epoch-checkpoint`)
//!
//! Written durably (temp file + rename) before the first batch of a new epoch is appended,
//! and after truncation removes epochs. All integers big-endian:
//!
//! ```text
//! offset  size  field
//!  0      4     magic "CLEP"
//!  4      4     entry count n (u32)
//!  8      12*n  entries: epoch (i32), start offset (u64), in increasing order of both
//!  8+12n  4     CRC-32C of bytes 0..8+12n
//! ```
//!
//! A damaged file is an error at open (the log cannot check its tail without it); a
//! missing one means no epoch was recorded yet, and batches must carry epoch 0.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil;

/// File name of the checkpoint.
pub const EPOCH_FILE: &str = "leader-epoch-checkpoint";
const MAGIC: &[u8; 4] = b"CLEP";
const ENTRY_BYTES: usize = 12;
/// More entries than this in a file is treated as damage (an epoch changes only when
/// leadership moves).
const ENTRIES_MAX: usize = 1 << 20;

/// One epoch and the first offset written under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// Leader epoch.
    pub epoch: i32,
    /// First offset written under it.
    pub start_offset: u64,
}

/// The cache of one log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// The epoch a batch starting at `offset` must carry: that of the last entry starting
    /// at or before it, or 0 when there is none.
    pub fn epoch_for(&self, offset: u64) -> i32 {
        let i = self.entries.partition_point(|e| e.start_offset <= offset);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].epoch
        }
    }

    /// The newest epoch, or 0.
    pub fn latest(&self) -> i32 {
        self.entries.last().map_or(0, |e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`. Returns whether the cache changed
    /// (and so must be written). Epochs never go back.
    pub fn assign(&mut self, epoch: i32, start_offset: u64) -> bool {
        match self.entries.last() {
            Some(last) if epoch == last.epoch => false,
            Some(last) => {
                assert!(
                    epoch > last.epoch && start_offset >= last.start_offset,
                    "leader epochs must grow: {last:?} then ({epoch}, {start_offset})"
                );
                if start_offset == last.start_offset {
                    self.entries.pop();
                }
                self.entries.push(EpochEntry {
                    epoch,
                    start_offset,
                });
                true
            }
            None if epoch == 0 && start_offset == 0 => false,
            None => {
                self.entries.push(EpochEntry {
                    epoch,
                    start_offset,
                });
                true
            }
        }
    }

    /// Forgets epochs that start at or after `offset` (the log was cut there). Returns
    /// whether the cache changed.
    pub fn truncate_from(&mut self, offset: u64) -> bool {
        let keep = self.entries.partition_point(|e| e.start_offset < offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The file bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.entries.len() * ENTRY_BYTES);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.start_offset.to_be_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses file bytes.
    pub fn decode(bytes: &[u8]) -> std::result::Result<LeaderEpochCache, String> {
        if bytes.len() < 12 || &bytes[0..4] != MAGIC {
            return Err("not a leader epoch checkpoint".into());
        }
        let n = u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
        if n > ENTRIES_MAX || bytes.len() != 12 + n * ENTRY_BYTES {
            return Err(format!("{n} entries do not fit {} bytes", bytes.len()));
        }
        let body = &bytes[..bytes.len() - 4];
        let crc = u32::from_be_bytes(bytes[bytes.len() - 4..].try_into().expect("4 bytes"));
        if crc32c::crc32c(body) != crc {
            return Err("CRC mismatch".into());
        }
        let mut cache = LeaderEpochCache::default();
        for chunk in body[8..].chunks_exact(ENTRY_BYTES) {
            let e = EpochEntry {
                epoch: i32::from_be_bytes(chunk[0..4].try_into().expect("4 bytes")),
                start_offset: u64::from_be_bytes(chunk[4..12].try_into().expect("8 bytes")),
            };
            if let Some(last) = cache.entries.last() {
                if e.epoch <= last.epoch || e.start_offset < last.start_offset {
                    return Err(format!("entries out of order: {last:?} then {e:?}"));
                }
            }
            cache.entries.push(e);
        }
        Ok(cache)
    }

    /// Reads the checkpoint of the log in `dir` (empty when absent).
    pub fn read(dir: &Path) -> Result<LeaderEpochCache> {
        let path = dir.join(EPOCH_FILE);
        match fsutil::read_optional(&path)? {
            None => Ok(LeaderEpochCache::default()),
            Some(b) => {
                LeaderEpochCache::decode(&b).map_err(|reason| Error::Corrupt { path, reason })
            }
        }
    }

    /// Durably writes the checkpoint (blocking: where a log opens).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let (path, bytes) = self.file(dir);
        fsutil::write_durable(&path, &bytes)
    }

    /// The checkpoint's path and bytes, for [`fsutil::write_durable_off_executor`].
    pub fn file(&self, dir: &Path) -> (PathBuf, Vec<u8>) {
        (dir.join(EPOCH_FILE), self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_map_offsets_and_round_trip() {
        let mut c = LeaderEpochCache::default();
        assert!(!c.assign(0, 0), "epoch 0 from offset 0 is implied");
        assert!(c.assign(3, 100));
        assert!(!c.assign(3, 150));
        assert!(c.assign(5, 200));
        assert_eq!(c.epoch_for(0), 0);
        assert_eq!(c.epoch_for(99), 0);
        assert_eq!(c.epoch_for(100), 3);
        assert_eq!(c.epoch_for(1000), 5);
        let bytes = c.encode();
        assert_eq!(LeaderEpochCache::decode(&bytes).unwrap(), c);
        for i in 0..bytes.len() {
            let mut d = bytes.clone();
            d[i] ^= 0x10;
            assert!(LeaderEpochCache::decode(&d).is_err(), "flip at {i}");
        }
        assert!(c.truncate_from(200));
        assert_eq!(c.latest(), 3);
        assert!(!c.truncate_from(200));
    }

    #[test]
    #[should_panic(expected = "leader epochs must grow")]
    fn epochs_never_go_back() {
        let mut c = LeaderEpochCache::default();
        c.assign(4, 10);
        c.assign(2, 20);
    }
}
