//! Committed offsets: an in-memory map per group, made durable as records in the
//! internal log `__consumer_offsets` through the same engine as topic data.
//!
//! `__consumer_offsets` has [`OFFSETS_PARTITIONS`] partitions (directories
//! `DATA_DIR/__consumer_offsets-<n>`); group `g` lives in partition
//! `fnv1a_32(g) mod OFFSETS_PARTITIONS`, whose owning shard is the group's coordinator.
//!
//! Record layout (key and value of a Kafka record, big-endian):
//! ```text
//! key   = version:i16 (=1) | group:STR | topic:STR | partition:i32
//! value = version:i16 (=1) | offset:i64 | leader_epoch:i32 | commit_timestamp_ms:i64
//!         | metadata:NSTR
//! STR   = len:u16 | UTF-8 bytes          NSTR = len:i16 (-1 = null) | UTF-8 bytes
//! ```
//! A record with a null value (a tombstone) deletes the key. Loading replays the log
//! from its start; the last record of a key wins.
//!
//! Compaction by snapshot: once the log holds [`COMPACT_RATIO`] times more records
//! than live keys (and at least [`COMPACT_MIN_RECORDS`]), every live key is appended
//! again and the log start moves to the first of those records (DeleteRecords), which
//! deletes the older segments. The log stays within a small multiple of the live state.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use corelog_engine::batch::BatchScan;
use corelog_engine::batch_builder::BatchBuilder;

use crate::broker::ownership::fnv1a_32;

/// Partitions of the internal offsets log.
pub const OFFSETS_PARTITIONS: u32 = 8;
/// Internal topic name.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Compaction trigger: records in the log per live key.
pub const COMPACT_RATIO: u64 = 4;
/// Compaction never runs below this many records.
pub const COMPACT_MIN_RECORDS: u64 = 10_000;
/// Records per batch written by a snapshot.
const SNAPSHOT_BATCH_RECORDS: usize = 500;

/// The offsets partition of a group.
pub fn offsets_partition(group: &str) -> u32 {
    fnv1a_32(group.as_bytes()) % OFFSETS_PARTITIONS
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The next offset to read.
    pub offset: i64,
    /// Leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: Option<String>,
    /// When it was committed.
    pub commit_ms: i64,
}

/// (group, topic, partition)
pub type OffsetKey = (String, String, i32);

fn put_str(b: &mut BytesMut, s: &str) {
    let s = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    b.put_u16(s.len() as u16);
    b.put_slice(s);
}

/// Encodes a key.
pub fn encode_key(k: &OffsetKey) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + k.0.len() + k.1.len());
    b.put_i16(1);
    put_str(&mut b, &k.0);
    put_str(&mut b, &k.1);
    b.put_i32(k.2);
    b.freeze()
}

/// Encodes a value.
pub fn encode_value(v: &Committed) -> Bytes {
    let mut b = BytesMut::with_capacity(32);
    b.put_i16(1);
    b.put_i64(v.offset);
    b.put_i32(v.leader_epoch);
    b.put_i64(v.commit_ms);
    match &v.metadata {
        None => b.put_i16(-1),
        Some(m) => {
            let m = &m.as_bytes()[..m.len().min(i16::MAX as usize)];
            b.put_i16(m.len() as i16);
            b.put_slice(m);
        }
    }
    b.freeze()
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.0.get(..n)?;
        self.0 = &self.0[n..];
        Some(s)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let n = u16::from_be_bytes(self.take(2)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// Decodes a key (None if it is not one of ours).
pub fn decode_key(b: &[u8]) -> Option<OffsetKey> {
    let mut c = Cursor(b);
    (c.i16()? == 1).then_some(())?;
    Some((c.str()?, c.str()?, c.i32()?))
}

/// Decodes a value.
pub fn decode_value(b: &[u8]) -> Option<Committed> {
    let mut c = Cursor(b);
    (c.i16()? == 1).then_some(())?;
    let offset = c.i64()?;
    let leader_epoch = c.i32()?;
    let commit_ms = c.i64()?;
    let n = c.i16()?;
    let metadata = if n < 0 {
        None
    } else {
        Some(String::from_utf8(c.take(n as usize)?.to_vec()).ok()?)
    };
    Some(Committed {
        offset,
        leader_epoch,
        metadata,
        commit_ms,
    })
}

/// One batch of offset records (tombstones for `None`).
pub fn encode_batch(records: &[(OffsetKey, Option<Committed>)], now_ms: i64) -> BytesMut {
    let mut b = BatchBuilder::new(now_ms);
    for (k, v) in records {
        let key = encode_key(k);
        let value = v.as_ref().map(encode_value);
        b.push(Some(&key), value.as_deref(), &[]);
    }
    BytesMut::from(&b.build()[..])
}

/// Applies the records of stored batch bytes to `map`; returns how many were read.
pub fn replay(chunk: &[u8], map: &mut BTreeMap<OffsetKey, Committed>) -> u64 {
    let mut n = 0;
    for (_, batch) in BatchScan::new(chunk, false) {
        for r in corelog_engine::batch::records(&batch) {
            n += 1;
            let Some(k) = r.key.and_then(decode_key) else {
                continue;
            };
            match r.value.and_then(decode_value) {
                Some(v) => {
                    map.insert(k, v);
                }
                None => {
                    map.remove(&k);
                }
            }
        }
    }
    n
}

/// The batches of a snapshot of `map`.
pub fn snapshot_batches(map: &BTreeMap<OffsetKey, Committed>, now_ms: i64) -> Vec<BytesMut> {
    let all: Vec<(OffsetKey, Option<Committed>)> = map
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    all.chunks(SNAPSHOT_BATCH_RECORDS)
        .map(|c| encode_batch(c, now_ms))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_tombstones_delete() {
        let k1 = ("g".to_string(), "t".to_string(), 3);
        let k2 = ("g".to_string(), "u".to_string(), 0);
        let v = Committed {
            offset: 42,
            leader_epoch: 0,
            metadata: Some("meta ü".into()),
            commit_ms: 7,
        };
        assert_eq!(decode_key(&encode_key(&k1)), Some(k1.clone()));
        assert_eq!(decode_value(&encode_value(&v)), Some(v.clone()));
        let mut map = BTreeMap::new();
        let b1 = encode_batch(
            &[(k1.clone(), Some(v.clone())), (k2.clone(), Some(v.clone()))],
            1,
        );
        let b2 = encode_batch(&[(k1.clone(), None)], 2);
        let mut both = b1.to_vec();
        both.extend_from_slice(&b2);
        assert_eq!(replay(&both, &mut map), 3);
        assert_eq!(map.len(), 1);
        assert_eq!(map.get(&k2), Some(&v));
        // A snapshot replays to the same map.
        let mut again = BTreeMap::new();
        for b in snapshot_batches(&map, 3) {
            replay(&b, &mut again);
        }
        assert_eq!(again, map);
        assert_eq!(decode_value(&[0, 1, 0]), None);
    }
}
