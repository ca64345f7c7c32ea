//! Kafka RecordBatch v2 ("magic 2"): a zero-copy view, validation and in-place assignment.
//!
//! corelog stores batches exactly as the client sent them, after the broker has written
//! the base offset and the partition leader epoch into them. A fetch returns those bytes
//! unchanged, so this module never decodes or re-encodes records on the produce or fetch
//! path.
//!
//! # Byte layout (all integers big-endian)
//!
//! ```text
//! offset size field                 covered by CRC  set by
//!  0      8   baseOffset            no              broker (append)
//!  8      4   length                no              client: bytes after this field
//! 12      4   partitionLeaderEpoch  no              broker (append)
//! 16      1   magic (= 2)           no              client
//! 17      4   crc (CRC-32C, u32)    no              client (broker for LogAppendTime)
//! 21      2   attributes            yes             client (bit 3 by broker)
//! 23      4   lastOffsetDelta       yes             client
//! 27      8   baseTimestamp         yes             client
//! 35      8   maxTimestamp          yes             client (broker for LogAppendTime)
//! 43      8   producerId            yes             client
//! 51      2   producerEpoch         yes             client
//! 53      4   baseSequence          yes             client
//! 57      4   recordsCount          yes             client
//! 61      ..  records               yes             client
//! ```
//!
//! The CRC covers `attributes` to the end of the batch, so the broker can assign
//! `baseOffset` and `partitionLeaderEpoch` without recomputing it. LogAppendTime changes
//! `attributes` and `maxTimestamp`, so that mode recomputes the CRC.
//!
//! Attributes: bits 0-2 compression (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd), bit 3
//! timestamp type (1 = LogAppendTime), bit 4 transactional, bit 5 control batch.

use std::fmt;

use zerocopy::byteorder::{BE, I16, I32, I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Bytes before the `length` field's payload: `baseOffset` (8) + `length` (4).
pub const LOG_OVERHEAD: usize = 12;
/// Offset of the `partitionLeaderEpoch` field.
pub const LEADER_EPOCH_OFFSET: usize = LOG_OVERHEAD;
/// Offset of the `magic` byte.
pub const MAGIC_OFFSET: usize = LEADER_EPOCH_OFFSET + 4;
/// Offset of the `crc` field.
pub const CRC_OFFSET: usize = MAGIC_OFFSET + 1;
/// Offset of `attributes`, where the CRC's coverage starts.
pub const ATTRIBUTES_OFFSET: usize = CRC_OFFSET + 4;
/// Offset of `maxTimestamp`.
pub const MAX_TIMESTAMP_OFFSET: usize = ATTRIBUTES_OFFSET + 2 + 4 + 8;
/// Size of the fixed header; the smallest valid batch (with no records) has this size.
pub const HEADER_BYTES: usize = MAX_TIMESTAMP_OFFSET + 8 + 8 + 2 + 4 + 4;
/// The only record batch format corelog stores.
pub const MAGIC_V2: i8 = 2;

const _: () = assert!(HEADER_BYTES == 61);
const _: () = assert!(ATTRIBUTES_OFFSET == 21);
const _: () = assert!(MAX_TIMESTAMP_OFFSET == 35);
const _: () = assert!(std::mem::size_of::<BatchHeader>() == HEADER_BYTES);

/// Attribute bits.
pub mod attributes {
    /// Mask of the compression codec (bits 0-2).
    pub const COMPRESSION_MASK: i16 = 0x07;
    /// Bit 3: timestamps are the broker's append time.
    pub const LOG_APPEND_TIME: i16 = 0x08;
    /// Bit 4: the batch belongs to a transaction.
    pub const TRANSACTIONAL: i16 = 0x10;
    /// Bit 5: a control batch (transaction markers); never accepted from clients.
    pub const CONTROL: i16 = 0x20;
}

/// The fixed 61-byte header of a RecordBatch v2, overlaid on the stored bytes.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct BatchHeader {
    /// Offset of the first record; assigned by the broker.
    pub base_offset: I64<BE>,
    /// Bytes that follow this field (so the batch is `length + 12` bytes long).
    pub length: I32<BE>,
    /// Leader epoch of the partition when the batch was appended; assigned by the broker.
    pub partition_leader_epoch: I32<BE>,
    /// Format version; 2 for every batch corelog accepts.
    pub magic: i8,
    /// CRC-32C of the bytes from `attributes` to the end.
    pub crc: U32<BE>,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: I16<BE>,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: I32<BE>,
    /// Timestamp of the first record.
    pub base_timestamp: I64<BE>,
    /// Largest timestamp in the batch (or the append time under LogAppendTime).
    pub max_timestamp: I64<BE>,
    /// Idempotent producer id, or -1.
    pub producer_id: I64<BE>,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: I16<BE>,
    /// Sequence number of the first record for idempotent producers, or -1.
    pub base_sequence: I32<BE>,
    /// Number of records in the batch.
    pub records_count: I32<BE>,
}

/// Why a batch was refused. Each variant corresponds to one Kafka error code (mapped by the
/// server): `Corrupt` is CORRUPT_MESSAGE (2), `TooLarge` is MESSAGE_TOO_LARGE (10), the
/// rest are INVALID_RECORD (87) except `UnsupportedCompression` (76).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// The stored CRC does not match the bytes it covers.
    Corrupt {
        /// CRC in the header.
        stored: u32,
        /// CRC computed over the bytes.
        computed: u32,
    },
    /// Larger than the topic's maximum message size.
    TooLarge {
        /// Size of the batch.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The batch breaks a structural rule; the message says which.
    InvalidRecord(&'static str),
    /// A compression codec outside 0..=4.
    UnsupportedCompression(u8),
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Corrupt { stored, computed } => write!(
                f,
                "CRC mismatch: header says {stored:#010x}, bytes give {computed:#010x}"
            ),
            BatchError::TooLarge { size, max } => {
                write!(f, "batch of {size} bytes is larger than the limit of {max}")
            }
            BatchError::InvalidRecord(why) => f.write_str(why),
            BatchError::UnsupportedCompression(c) => write!(f, "unknown compression codec {c}"),
        }
    }
}

impl std::error::Error for BatchError {}

/// Compression codec of a batch (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Records stored as they are.
    None,
    /// gzip.
    Gzip,
    /// snappy (xerial framing).
    Snappy,
    /// lz4 frame.
    Lz4,
    /// zstd.
    Zstd,
}

impl Compression {
    fn from_bits(bits: u8) -> Result<Compression, BatchError> {
        Ok(match bits {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(BatchError::UnsupportedCompression(other)),
        })
    }
}

/// Reads the total length of the batch that starts at `bytes[0]` (`length + 12`), if at
/// least the first 12 bytes are present. The value is not validated.
#[inline]
pub fn framed_len(bytes: &[u8]) -> Option<i64> {
    let length = bytes.get(8..LOG_OVERHEAD)?;
    Some(i32::from_be_bytes(length.try_into().ok()?) as i64 + LOG_OVERHEAD as i64)
}

/// A read-only view of one complete RecordBatch v2. Constructing it checks the framing
/// (`length` agrees with the slice, magic is 2); [`RecordBatch::verify_crc`] checks the CRC.
#[derive(Clone, Copy)]
pub struct RecordBatch<'a> {
    bytes: &'a [u8],
}

impl fmt::Debug for RecordBatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordBatch")
            .field("base_offset", &self.base_offset())
            .field("last_offset_delta", &self.last_offset_delta())
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl<'a> RecordBatch<'a> {
    /// Views `bytes` as exactly one batch.
    pub fn new(bytes: &'a [u8]) -> Result<RecordBatch<'a>, BatchError> {
        if bytes.len() < HEADER_BYTES {
            return Err(BatchError::InvalidRecord(
                "record batch is shorter than the 61-byte header",
            ));
        }
        let framed = framed_len(bytes).expect("length checked above");
        if framed != bytes.len() as i64 {
            return Err(BatchError::InvalidRecord(
                "record batch length field disagrees with the bytes sent (exactly one batch per partition is allowed)",
            ));
        }
        if bytes[MAGIC_OFFSET] as i8 != MAGIC_V2 {
            return Err(BatchError::InvalidRecord(
                "only record batch format v2 (magic 2) is supported",
            ));
        }
        Ok(RecordBatch { bytes })
    }

    /// Views the batch at the start of `bytes` (which may hold more batches after it) and
    /// returns it with its length, or `None` if the bytes do not start with a complete,
    /// well-framed batch. Used when scanning stored segments.
    pub fn from_prefix(bytes: &'a [u8]) -> Option<RecordBatch<'a>> {
        let len = framed_len(bytes)?;
        if len < HEADER_BYTES as i64 || len > bytes.len() as i64 {
            return None;
        }
        RecordBatch::new(&bytes[..len as usize]).ok()
    }

    fn header(&self) -> &'a BatchHeader {
        BatchHeader::ref_from_prefix(self.bytes)
            .expect("length checked at construction")
            .0
    }

    /// The batch's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    /// Never true: a batch has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// Offset of the first record.
    pub fn base_offset(&self) -> i64 {
        self.header().base_offset.get()
    }
    /// Offset of the last record relative to the base offset.
    pub fn last_offset_delta(&self) -> i32 {
        self.header().last_offset_delta.get()
    }
    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + self.last_offset_delta() as i64
    }
    /// Partition leader epoch.
    pub fn leader_epoch(&self) -> i32 {
        self.header().partition_leader_epoch.get()
    }
    /// Attribute bits.
    pub fn attributes(&self) -> i16 {
        self.header().attributes.get()
    }
    /// Compression codec.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_bits((self.attributes() & attributes::COMPRESSION_MASK) as u8)
    }
    /// True for a control batch.
    pub fn is_control(&self) -> bool {
        self.attributes() & attributes::CONTROL != 0
    }
    /// True for a transactional batch.
    pub fn is_transactional(&self) -> bool {
        self.attributes() & attributes::TRANSACTIONAL != 0
    }
    /// True when the timestamps are the broker's append time.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & attributes::LOG_APPEND_TIME != 0
    }
    /// Timestamp of the first record.
    pub fn base_timestamp(&self) -> i64 {
        self.header().base_timestamp.get()
    }
    /// Largest timestamp in the batch.
    pub fn max_timestamp(&self) -> i64 {
        self.header().max_timestamp.get()
    }
    /// Producer id (-1 when not idempotent).
    pub fn producer_id(&self) -> i64 {
        self.header().producer_id.get()
    }
    /// Producer epoch.
    pub fn producer_epoch(&self) -> i16 {
        self.header().producer_epoch.get()
    }
    /// First sequence number.
    pub fn base_sequence(&self) -> i32 {
        self.header().base_sequence.get()
    }
    /// Number of records.
    pub fn records_count(&self) -> i32 {
        self.header().records_count.get()
    }
    /// The CRC stored in the header.
    pub fn stored_crc(&self) -> u32 {
        self.header().crc.get()
    }
    /// CRC-32C of the bytes the header's CRC covers.
    pub fn computed_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[ATTRIBUTES_OFFSET..])
    }
    /// Checks the CRC.
    pub fn verify_crc(&self) -> Result<(), BatchError> {
        let (stored, computed) = (self.stored_crc(), self.computed_crc());
        if stored != computed {
            return Err(BatchError::Corrupt { stored, computed });
        }
        Ok(())
    }
    /// The record bytes after the header (compressed as one block when compression is on).
    pub fn records_bytes(&self) -> &'a [u8] {
        &self.bytes[HEADER_BYTES..]
    }
}

/// What the engine needs to know about a validated batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    /// Number of offsets the batch takes (`lastOffsetDelta + 1`).
    pub offset_count: u32,
    /// Largest timestamp claimed by the producer.
    pub max_timestamp: i64,
    /// Compression codec.
    pub compression: Compression,
    /// Producer id, epoch and base sequence (id -1 when not idempotent).
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// First sequence number.
    pub base_sequence: i32,
    /// Transactional bit.
    pub transactional: bool,
}

/// Validates a batch a client sent, the way Kafka's `LogValidator` does for magic 2:
/// exactly one batch, magic 2, size within `max_bytes`, CRC-32C matching, records count
/// positive and equal to `lastOffsetDelta + 1`, no control batches, a known codec, and a
/// non-negative base sequence when a producer id is set.
pub fn validate(bytes: &[u8], max_bytes: usize) -> Result<BatchInfo, BatchError> {
    if bytes.len() > max_bytes {
        return Err(BatchError::TooLarge {
            size: bytes.len(),
            max: max_bytes,
        });
    }
    let batch = RecordBatch::new(bytes)?;
    batch.verify_crc()?;
    let count = batch.records_count();
    let delta = batch.last_offset_delta();
    if count <= 0 {
        return Err(BatchError::InvalidRecord("record batch holds no records"));
    }
    if delta < 0 || delta as i64 + 1 != count as i64 {
        return Err(BatchError::InvalidRecord(
            "lastOffsetDelta + 1 does not equal the record count",
        ));
    }
    if batch.is_control() {
        return Err(BatchError::InvalidRecord(
            "clients may not send control batches",
        ));
    }
    let compression = batch.compression()?;
    if batch.producer_id() >= 0 && batch.base_sequence() < 0 {
        return Err(BatchError::InvalidRecord(
            "idempotent batch has a negative base sequence",
        ));
    }
    Ok(BatchInfo {
        offset_count: count as u32,
        max_timestamp: batch.max_timestamp(),
        compression,
        producer_id: batch.producer_id(),
        producer_epoch: batch.producer_epoch(),
        base_sequence: batch.base_sequence(),
        transactional: batch.is_transactional(),
    })
}

/// Writes the broker-assigned base offset and leader epoch into a batch. Neither field is
/// covered by the CRC, so the CRC stays valid.
///
/// # Panics
/// If `bytes` is shorter than the header: callers validate first.
pub fn assign(bytes: &mut [u8], base_offset: i64, leader_epoch: i32) {
    let (header, _) = BatchHeader::mut_from_prefix(bytes).expect("batch validated before assign");
    header.base_offset.set(base_offset);
    header.partition_leader_epoch.set(leader_epoch);
}

/// Switches a batch to LogAppendTime: sets the timestamp-type bit, sets `maxTimestamp` to
/// `now_ms` and recomputes the CRC (both fields are covered by it). Consumers then read
/// every record's timestamp as `now_ms`.
pub fn set_log_append_time(bytes: &mut [u8], now_ms: i64) {
    let (header, _) =
        BatchHeader::mut_from_prefix(bytes).expect("batch validated before set_log_append_time");
    let attrs = header.attributes.get() | attributes::LOG_APPEND_TIME;
    header.attributes.set(attrs);
    header.max_timestamp.set(now_ms);
    let crc = crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..]);
    let (header, _) = BatchHeader::mut_from_prefix(bytes).expect("checked above");
    header.crc.set(crc);
}

/// Walks a byte range holding whole batches back to back (a segment, or a fetch response),
/// yielding each batch with its position. It stops at the first position that does not
/// hold a complete, well-framed batch; [`BatchScan::stopped_at`] says where, so recovery can
/// truncate there. CRCs are checked only when asked for.
#[derive(Debug)]
pub struct BatchScan<'a> {
    bytes: &'a [u8],
    pos: usize,
    check_crc: bool,
    error: Option<BatchError>,
}

impl<'a> BatchScan<'a> {
    /// Scans `bytes` from the start; with `check_crc` each batch's CRC is verified too.
    pub fn new(bytes: &'a [u8], check_crc: bool) -> BatchScan<'a> {
        BatchScan {
            bytes,
            pos: 0,
            check_crc,
            error: None,
        }
    }
    /// Position just after the last good batch yielded so far.
    pub fn stopped_at(&self) -> usize {
        self.pos
    }
    /// Why the scan stopped before the end of the bytes, if it did because of a bad batch
    /// (as opposed to an incomplete one at the end of the range).
    pub fn error(&self) -> Option<&BatchError> {
        self.error.as_ref()
    }
}

impl<'a> Iterator for BatchScan<'a> {
    type Item = (usize, RecordBatch<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.error.is_some() {
            return None;
        }
        let rest = &self.bytes[self.pos..];
        let batch = RecordBatch::from_prefix(rest)?;
        if self.check_crc {
            if let Err(e) = batch.verify_crc() {
                self.error = Some(e);
                return None;
            }
        }
        let at = self.pos;
        self.pos += batch.len();
        Some((at, batch))
    }
}

/// One record of an uncompressed batch, as the broker reads it. Record layout (after
/// a varint length): attributes i8 | timestampDelta varlong | offsetDelta varint |
/// keyLength varint + key | valueLength varint + value | headerCount varint | headers,
/// each `keyLength varint | key | valueLength varint | value` (value nullable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Offset relative to the batch's base offset.
    pub offset_delta: i64,
    /// Key, `None` when null.
    pub key: Option<&'a [u8]>,
    /// Value, `None` when null.
    pub value: Option<&'a [u8]>,
    /// The headers section as encoded (count first); read it with [`headers`].
    pub headers: &'a [u8],
}

/// A record header: its key and (nullable) value.
pub type Header<'a> = (&'a [u8], Option<&'a [u8]>);

/// The headers of a record (`RecordView::headers`) in order, or `None` when the section
/// does not parse.
pub fn headers(section: &[u8]) -> Option<Vec<Header<'_>>> {
    let (count, n) = varlong(section)?;
    let mut r = &section[n..];
    // Each header takes at least two bytes (its two lengths): a larger count is corrupt.
    if count < 0 || count as usize > r.len() / 2 {
        return None;
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (key, rest) = nullable_bytes(r)?;
        let (value, rest) = nullable_bytes(rest)?;
        out.push((key?, value));
        r = rest;
    }
    Some(out)
}

/// The records of an uncompressed batch, in order. Stops at the first record that does
/// not parse (a compressed batch yields nothing useful: check its codec first).
pub fn records<'a>(batch: &RecordBatch<'a>) -> impl Iterator<Item = RecordView<'a>> {
    records_in(batch.records_bytes(), batch.records_count())
}

/// The first `count` records encoded in `bytes` (a batch's records section, decompressed
/// when the batch is compressed), in order; stops at the first that does not parse.
pub fn records_in(bytes: &[u8], count: i32) -> impl Iterator<Item = RecordView<'_>> {
    let mut rest = bytes;
    let mut left = count.max(0);
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        left -= 1;
        let (len, n) = varlong(rest)?;
        let body = rest.get(n..n.checked_add(usize::try_from(len).ok()?)?)?;
        rest = &rest[n + body.len()..];
        let mut r = body.get(1..)?; // attributes
        let (timestamp_delta, n) = varlong(r)?;
        r = &r[n..];
        let (offset_delta, n) = varlong(r)?;
        r = &r[n..];
        let (key, r) = nullable_bytes(r)?;
        let (value, headers) = nullable_bytes(r)?;
        Some(RecordView {
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers,
        })
    })
}

/// A zigzag varint / varlong and the bytes it took.
pub fn varlong(buf: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), i + 1));
        }
    }
    None
}

fn nullable_bytes(r: &[u8]) -> Option<(Option<&[u8]>, &[u8])> {
    let (len, n) = varlong(r)?;
    let r = &r[n..];
    if len < 0 {
        return Some((None, r));
    }
    let len = usize::try_from(len).ok()?;
    Some((Some(r.get(..len)?), &r[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch_builder::BatchBuilder;

    fn sample(records: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(1_700_000_000_000);
        for i in 0..records {
            b.push(Some(format!("k{i}").as_bytes()), Some(&[i as u8; 10]), &[]);
        }
        b.build()
    }

    #[test]
    fn valid_batch_passes_and_reports_its_fields() {
        let bytes = sample(3);
        let info = validate(&bytes, 1 << 20).unwrap();
        assert_eq!(info.offset_count, 3);
        assert_eq!(info.compression, Compression::None);
        assert_eq!(info.producer_id, -1);
        let b = RecordBatch::new(&bytes).unwrap();
        assert_eq!(b.records_count(), 3);
        assert_eq!(b.last_offset_delta(), 2);
    }

    #[test]
    fn assign_keeps_the_crc_valid() {
        let mut bytes = sample(2);
        assign(&mut bytes, 1234, 7);
        let b = RecordBatch::new(&bytes).unwrap();
        assert_eq!(b.base_offset(), 1234);
        assert_eq!(b.last_offset(), 1235);
        assert_eq!(b.leader_epoch(), 7);
        b.verify_crc().unwrap();
    }

    #[test]
    fn log_append_time_recomputes_the_crc() {
        let mut bytes = sample(2);
        set_log_append_time(&mut bytes, 42);
        let b = RecordBatch::new(&bytes).unwrap();
        assert!(b.is_log_append_time());
        assert_eq!(b.max_timestamp(), 42);
        b.verify_crc().unwrap();
    }

    #[test]
    fn every_single_bit_flip_in_the_crc_range_is_caught() {
        let bytes = sample(2);
        for i in ATTRIBUTES_OFFSET..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(
                    validate(&b, 1 << 20).is_err(),
                    "flip at byte {i} bit {bit} passed"
                );
            }
        }
    }

    #[test]
    fn structural_rules_are_enforced() {
        let bytes = sample(2);
        assert!(matches!(
            validate(&bytes, 10),
            Err(BatchError::TooLarge { .. })
        ));
        assert!(matches!(
            validate(&bytes[..60], 1 << 20),
            Err(BatchError::InvalidRecord(_))
        ));
        let mut two = bytes.clone();
        two.extend_from_slice(&bytes);
        assert!(matches!(
            validate(&two, 1 << 20),
            Err(BatchError::InvalidRecord(_))
        ));
        let mut bad_magic = bytes.clone();
        bad_magic[MAGIC_OFFSET] = 1;
        assert!(validate(&bad_magic, 1 << 20).is_err());

        // Fields inside the CRC range: fix the CRC up so only the rule can refuse it.
        let refresh = |b: &mut Vec<u8>| {
            let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
            b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        };
        let mut control = bytes.clone();
        control[ATTRIBUTES_OFFSET + 1] |= attributes::CONTROL as u8;
        refresh(&mut control);
        assert!(matches!(
            validate(&control, 1 << 20),
            Err(BatchError::InvalidRecord(_))
        ));
        let mut delta = bytes.clone();
        delta[ATTRIBUTES_OFFSET + 2..ATTRIBUTES_OFFSET + 6].copy_from_slice(&5i32.to_be_bytes());
        refresh(&mut delta);
        assert!(matches!(
            validate(&delta, 1 << 20),
            Err(BatchError::InvalidRecord(_))
        ));
        let mut codec = bytes.clone();
        codec[ATTRIBUTES_OFFSET + 1] |= 6;
        refresh(&mut codec);
        assert!(matches!(
            validate(&codec, 1 << 20),
            Err(BatchError::UnsupportedCompression(6))
        ));
    }

    #[test]
    fn scan_stops_at_the_first_bad_batch() {
        let a = sample(1);
        let mut all = a.clone();
        all.extend_from_slice(&a);
        let good_end = all.len();
        all.extend_from_slice(&a);
        let last = all.len() - 1;
        all[last] ^= 0xff;
        let mut scan = BatchScan::new(&all, true);
        assert_eq!(scan.by_ref().count(), 2);
        assert_eq!(scan.stopped_at(), good_end);
        assert!(scan.error().is_some());

        let mut scan = BatchScan::new(&all[..good_end + 30], true);
        assert_eq!(scan.by_ref().count(), 2);
        assert_eq!(scan.stopped_at(), good_end);
        assert!(scan.error().is_none());

        // Zeros (preallocated, never written) do not parse as a batch.
        let zeros = vec![0u8; 4096];
        assert_eq!(BatchScan::new(&zeros, false).count(), 0);
    }

    #[test]
    fn records_of_a_batch_are_read_back() {
        let mut b = crate::batch_builder::BatchBuilder::new(1000);
        b.push_at(1000, Some(b"k1"), Some(b"v1"), &[(b"h", b"x")]);
        b.push_at(1005, None, None, &[]);
        b.push_at(1010, Some(b""), Some(b"v3"), &[]);
        let bytes = b.build();
        let batch = RecordBatch::new(&bytes).unwrap();
        let got: Vec<_> = records(&batch).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].key, got[0].value),
            (Some(&b"k1"[..]), Some(&b"v1"[..]))
        );
        assert_eq!(
            (got[1].key, got[1].value, got[1].timestamp_delta),
            (None, None, 5)
        );
        assert_eq!((got[2].key, got[2].offset_delta), (Some(&b""[..]), 2));
        assert_eq!(
            headers(got[0].headers),
            Some(vec![(&b"h"[..], Some(&b"x"[..]))])
        );
        assert_eq!(headers(got[1].headers), Some(vec![]));
        // Corrupt header sections are refused, not read past.
        assert_eq!(headers(&[4, 2, b'h']), None); // count 2 in 2 bytes
        assert_eq!(headers(&[2, 2, b'h', 4]), None); // value length past the end
        assert_eq!(headers(&[2, 1, 0]), None); // null key
        assert_eq!(headers(&[1]), None); // negative count

        // A cut record ends the iteration instead of panicking.
        let mut cut = bytes.clone();
        cut.truncate(cut.len() - 3);
        let len = (cut.len() - 12) as i32;
        cut[8..12].copy_from_slice(&len.to_be_bytes());
        let batch = RecordBatch::new(&cut).unwrap();
        assert_eq!(records(&batch).count(), 2);
    }
}
