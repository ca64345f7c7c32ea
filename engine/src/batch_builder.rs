//! Encodes uncompressed RecordBatch v2 bytes, as a producer would send them.
//!
//! Not on the broker's hot path (the broker stores what clients send); used by tests, the
//! engine benchmark and tools that need valid batches.
//!
//! Record layout (inside a batch, zigzag varints as in Kafka):
//! `length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//!  keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value |
//!  headerCount varint | (headerKeyLength varint | key | headerValueLength varint | value)*`

use bytes::BufMut;

use crate::batch::{ATTRIBUTES_OFFSET, CRC_OFFSET, HEADER_BYTES, MAGIC_V2};

/// Builds one uncompressed batch. Offsets start at 0 (the broker assigns the real ones).
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_timestamp: i64,
    max_timestamp: i64,
    count: i32,
    records: Vec<u8>,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
}

/// Appends `v` as a zigzag varint (Kafka's `varint`).
pub fn put_varint(out: &mut impl BufMut, v: i32) {
    put_varlong(out, v as i64)
}

/// Appends `v` as a zigzag varlong (Kafka's `varlong`).
#[inline]
pub fn put_varlong(out: &mut impl BufMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    out.put_u8(z as u8);
}

/// Bytes [`put_varlong`] writes for `v`.
pub fn varlong_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - (z | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

impl BatchBuilder {
    /// A batch whose first record has timestamp `base_timestamp_ms`.
    pub fn new(base_timestamp_ms: i64) -> BatchBuilder {
        BatchBuilder {
            base_timestamp: base_timestamp_ms,
            max_timestamp: base_timestamp_ms,
            count: 0,
            records: Vec::new(),
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }

    /// Marks the batch as sent by idempotent producer `id`/`epoch` starting at `sequence`.
    pub fn idempotent(mut self, id: i64, epoch: i16, sequence: i32) -> BatchBuilder {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = sequence;
        self
    }

    /// Adds a record with the batch's base timestamp.
    pub fn push(&mut self, key: Option<&[u8]>, value: Option<&[u8]>, headers: &[(&[u8], &[u8])]) {
        self.push_at(self.base_timestamp, key, value, headers)
    }

    /// Adds a record with timestamp `ts_ms`.
    pub fn push_at(
        &mut self,
        ts_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], &[u8])],
    ) {
        let mut body = Vec::with_capacity(16 + value.map_or(0, |v| v.len()));
        body.push(0); // attributes
        put_varlong(&mut body, ts_ms - self.base_timestamp);
        put_varint(&mut body, self.count);
        put_bytes(&mut body, key);
        put_bytes(&mut body, value);
        put_varint(&mut body, headers.len() as i32);
        for (k, v) in headers {
            put_bytes(&mut body, Some(k));
            put_bytes(&mut body, Some(v));
        }
        put_varint(&mut self.records, body.len() as i32);
        self.records.extend_from_slice(&body);
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(ts_ms);
    }

    /// Number of records so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when no record was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size the batch will have.
    pub fn encoded_len(&self) -> usize {
        HEADER_BYTES + self.records.len()
    }

    /// Encodes the batch, CRC included.
    ///
    /// # Panics
    /// If no record was added (Kafka batches are never empty).
    pub fn build(&self) -> Vec<u8> {
        assert!(self.count > 0, "a record batch needs at least one record");
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&0i64.to_be_bytes()); // baseOffset
        out.extend_from_slice(&((self.encoded_len() - 12) as i32).to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&0u32.to_be_bytes()); // crc, filled below
        out.extend_from_slice(&0i16.to_be_bytes()); // attributes
        out.extend_from_slice(&(self.count - 1).to_be_bytes()); // lastOffsetDelta
        out.extend_from_slice(&self.base_timestamp.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        debug_assert_eq!(out.len(), HEADER_BYTES);
        out.extend_from_slice(&self.records);
        let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_varints_match_kafka() {
        let enc = |v: i64| {
            let mut o = Vec::new();
            put_varlong(&mut o, v);
            o
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(-1), [1]);
        assert_eq!(enc(1), [2]);
        assert_eq!(enc(63), [126]);
        assert_eq!(enc(-64), [127]);
        assert_eq!(enc(64), [0x80, 1]);
        assert_eq!(enc(i64::MIN).len(), 10);
        for v in [
            0i64,
            1,
            -1,
            63,
            64,
            -64,
            -65,
            8191,
            8192,
            i32::MAX as i64,
            i64::MIN,
        ] {
            assert_eq!(enc(v).len(), varlong_len(v), "{v}");
        }
    }
}
