//! Sparse offset and time indexes of one segment.
//!
//! Both indexes live in memory while the segment is open and are written to disk when the
//! segment closes (roll, clean shutdown). They carry no checksum: a missing index, or one
//! that disagrees with its segment, is rebuilt from the segment by recovery, which is
//! cheap because an index is a pure function of the segment's bytes.
//!
//! # Offset index file (`<base offset>.index`)
//!
//! A sequence of 8-byte entries, big-endian, no header:
//!
//! ```text
//! offset size field
//!  0      4   relative offset (u32): a batch's base offset minus the segment's base offset
//!  4      4   position (u32): byte position of that batch in the segment file
//! ```
//!
//! One entry is added for the first batch that starts after at least
//! `index_interval_bytes` of batches since the previous entry (so the index is sparse).
//! Relative offsets and positions both strictly increase. A lookup returns the last entry
//! at or before the wanted offset; the reader scans forward from its position.
//!
//! # Time index file (`<base offset>.timeindex`)
//!
//! A sequence of 12-byte entries, big-endian, no header:
//!
//! ```text
//! offset size field
//!  0      8   timestamp (i64, ms): largest batch max-timestamp seen up to this batch
//!  8      4   relative offset (u32) of the batch at which that maximum was reached
//! ```
//!
//! Entries are added at the same points as offset index entries, but only when the running
//! maximum timestamp grew, so timestamps and offsets both strictly increase. When a segment
//! closes a final entry records its maximum timestamp. An entry `(t, r)` says every batch at
//! or before relative offset `r` has timestamps `<= t`.

/// Bytes of one offset index entry.
pub const OFFSET_ENTRY_BYTES: usize = 8;
/// Bytes of one time index entry.
pub const TIME_ENTRY_BYTES: usize = 12;

/// One offset index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Base offset of a batch minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the segment.
    pub position: u32,
}

/// One time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest max-timestamp of the batches up to this one.
    pub timestamp: i64,
    /// Relative offset of the batch.
    pub relative_offset: u32,
}

/// The sparse offset index of a segment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    /// Adds an entry; it must come after every existing one.
    pub fn push(&mut self, e: OffsetEntry) {
        if let Some(last) = self.entries.last() {
            assert!(
                e.relative_offset > last.relative_offset && e.position > last.position,
                "offset index entries must strictly increase: {last:?} then {e:?}"
            );
        }
        self.entries.push(e);
    }

    /// The last entry whose relative offset is `<= relative_offset`, or the start of the
    /// segment.
    pub fn lookup(&self, relative_offset: u32) -> OffsetEntry {
        let i = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        if i == 0 {
            OffsetEntry {
                relative_offset: 0,
                position: 0,
            }
        } else {
            self.entries[i - 1]
        }
    }

    /// Drops entries for batches at or after byte `position`.
    pub fn truncate_to_position(&mut self, position: u32) {
        let keep = self.entries.partition_point(|e| e.position < position);
        self.entries.truncate(keep);
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The newest entry.
    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    /// The file bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// Parses file bytes, checking the shape (whole entries, strictly increasing, positions
    /// inside `segment_bytes`). Whether entries point at real batches is checked by the
    /// caller against the segment.
    pub fn decode(bytes: &[u8], segment_bytes: u64) -> Result<OffsetIndex, String> {
        if !bytes.len().is_multiple_of(OFFSET_ENTRY_BYTES) {
            return Err(format!(
                "{} bytes is not a whole number of entries",
                bytes.len()
            ));
        }
        let mut idx = OffsetIndex::default();
        for chunk in bytes.chunks_exact(OFFSET_ENTRY_BYTES) {
            let e = OffsetEntry {
                relative_offset: u32::from_be_bytes(chunk[0..4].try_into().unwrap()),
                position: u32::from_be_bytes(chunk[4..8].try_into().unwrap()),
            };
            if e.position as u64 >= segment_bytes {
                return Err(format!("entry {e:?} points past the segment end"));
            }
            if let Some(last) = idx.entries.last() {
                if e.relative_offset <= last.relative_offset || e.position <= last.position {
                    return Err(format!("entries out of order: {last:?} then {e:?}"));
                }
            }
            idx.entries.push(e);
        }
        Ok(idx)
    }
}

/// The sparse time index of a segment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// Adds an entry if its timestamp is larger than the last one's (the index records only
    /// growth of the running maximum).
    pub fn maybe_push(&mut self, e: TimeEntry) {
        match self.entries.last() {
            Some(last) if e.timestamp <= last.timestamp => {}
            Some(last) => {
                assert!(
                    e.relative_offset >= last.relative_offset,
                    "time index offsets must not go back: {last:?} then {e:?}"
                );
                if e.relative_offset == last.relative_offset {
                    self.entries.pop();
                }
                self.entries.push(e);
            }
            None => self.entries.push(e),
        }
    }

    /// Relative offset from which a forward scan for the first batch with max timestamp
    /// `>= timestamp` must start: the last entry whose timestamp is below it (every batch up
    /// to that entry is older), or the segment start.
    pub fn scan_start(&self, timestamp: i64) -> u32 {
        let i = self.entries.partition_point(|e| e.timestamp < timestamp);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].relative_offset
        }
    }

    /// Drops entries for relative offsets `>= relative_offset`.
    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(keep);
    }

    /// The newest entry.
    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The file bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out
    }

    /// Parses file bytes, checking the shape.
    pub fn decode(bytes: &[u8]) -> Result<TimeIndex, String> {
        if !bytes.len().is_multiple_of(TIME_ENTRY_BYTES) {
            return Err(format!(
                "{} bytes is not a whole number of entries",
                bytes.len()
            ));
        }
        let mut idx = TimeIndex::default();
        for chunk in bytes.chunks_exact(TIME_ENTRY_BYTES) {
            let e = TimeEntry {
                timestamp: i64::from_be_bytes(chunk[0..8].try_into().unwrap()),
                relative_offset: u32::from_be_bytes(chunk[8..12].try_into().unwrap()),
            };
            if let Some(last) = idx.entries.last() {
                if e.timestamp <= last.timestamp || e.relative_offset < last.relative_offset {
                    return Err(format!("entries out of order: {last:?} then {e:?}"));
                }
            }
            idx.entries.push(e);
        }
        Ok(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oe(r: u32, p: u32) -> OffsetEntry {
        OffsetEntry {
            relative_offset: r,
            position: p,
        }
    }

    #[test]
    fn offset_lookup_finds_the_floor_entry() {
        let mut idx = OffsetIndex::default();
        assert_eq!(idx.lookup(5), oe(0, 0));
        idx.push(oe(10, 4100));
        idx.push(oe(20, 8300));
        assert_eq!(idx.lookup(0), oe(0, 0));
        assert_eq!(idx.lookup(10), oe(10, 4100));
        assert_eq!(idx.lookup(19), oe(10, 4100));
        assert_eq!(idx.lookup(1000), oe(20, 8300));
        idx.truncate_to_position(8300);
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn offset_index_round_trips_and_rejects_bad_files() {
        let mut idx = OffsetIndex::default();
        idx.push(oe(3, 4096));
        idx.push(oe(9, 9000));
        let bytes = idx.encode();
        assert_eq!(bytes.len(), 16);
        assert_eq!(OffsetIndex::decode(&bytes, 1 << 20).unwrap(), idx);
        assert!(OffsetIndex::decode(&bytes[..7], 1 << 20).is_err());
        assert!(OffsetIndex::decode(&bytes, 5000).is_err());
        let mut swapped = bytes[8..].to_vec();
        swapped.extend_from_slice(&bytes[..8]);
        assert!(OffsetIndex::decode(&swapped, 1 << 20).is_err());
    }

    #[test]
    #[should_panic(expected = "strictly increase")]
    fn offset_index_asserts_order() {
        let mut idx = OffsetIndex::default();
        idx.push(oe(3, 4096));
        idx.push(oe(3, 5000));
    }

    #[test]
    fn time_index_keeps_only_growth_and_finds_scan_start() {
        let mut t = TimeIndex::default();
        let te = |ts, r| TimeEntry {
            timestamp: ts,
            relative_offset: r,
        };
        t.maybe_push(te(100, 0));
        t.maybe_push(te(90, 5)); // older: ignored
        t.maybe_push(te(200, 10));
        t.maybe_push(te(300, 20));
        assert_eq!(t.len(), 3);
        assert_eq!(t.scan_start(50), 0);
        assert_eq!(t.scan_start(100), 0);
        assert_eq!(t.scan_start(150), 0);
        assert_eq!(t.scan_start(201), 10);
        assert_eq!(t.scan_start(1000), 20);
        let bytes = t.encode();
        assert_eq!(TimeIndex::decode(&bytes).unwrap(), t);
        t.truncate_to_offset(10);
        assert_eq!(t.len(), 1);
    }
}
