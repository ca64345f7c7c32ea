//! Record batches as the bench producer writes them and the bench consumer reads them.
//!
//! The producer's encoder is on the measured hot path, so unlike the engine's
//! `BatchBuilder` it writes each record in place with no per-record allocation: a record's
//! length prefix is computed from its field sizes before the record is written. Layout
//! (RecordBatch v2, see `corelog_engine::batch` for the header byte by byte):
//! `header (61 bytes) | records`, each record
//! `length varint | attributes i8 = 0 | timestampDelta varlong | offsetDelta varint |
//!  keyLength varint | key | valueLength varint | value | headerCount varint = 0`.
//! With compression the records section is compressed as a whole (lz4 frame or zstd
//! frame, attributes bits 0-2 = 3 or 4) and the header's CRC covers the compressed bytes.
//!
//! The producer puts its send time (nanoseconds since the Unix epoch, u64 big-endian)
//! in the first 8 bytes of every value of 8 bytes or more; consumers read it back to
//! measure end-to-end latency with microsecond resolution (record timestamps are ms).

use bytes::{BufMut, Bytes, BytesMut};
use clap::ValueEnum;
use corelog_engine::batch::{
    self, RecordBatch, ATTRIBUTES_OFFSET, CRC_OFFSET, HEADER_BYTES, MAGIC_V2,
};
use corelog_engine::batch_builder::{put_varlong, varlong_len};
use serde::Serialize;

use super::ClientError;

/// Batch compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// Records as they are.
    None,
    /// lz4 frame (Kafka codec 3).
    Lz4,
    /// zstd (Kafka codec 4).
    Zstd,
}

impl Codec {
    fn attribute(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }
}

/// Builds one batch at a time. A finished batch is handed out as [`Bytes`] (sent without
/// another copy); once the request that carried it is written and dropped, the next
/// batch reuses the same allocation (`BytesMut::reserve` reclaims a buffer nobody else
/// holds).
#[derive(Debug)]
pub struct BatchWriter {
    codec: Codec,
    /// Header then records (uncompressed), or the records alone (compressed).
    buf: BytesMut,
    out: BytesMut,
    count: i32,
    base_ts: i64,
    max_ts: i64,
    /// The largest batch so far, reserved up front for the next.
    high_water: usize,
}

impl BatchWriter {
    /// A writer for `codec` batches.
    pub fn new(codec: Codec) -> BatchWriter {
        BatchWriter {
            codec,
            buf: BytesMut::new(),
            out: BytesMut::new(),
            count: 0,
            base_ts: 0,
            max_ts: 0,
            high_water: 0,
        }
    }

    /// Records so far.
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// Bytes so far (before compression), header included.
    pub fn len(&self) -> usize {
        match self.codec {
            Codec::None => self.buf.len(),
            _ => HEADER_BYTES + self.buf.len(),
        }
    }

    /// True before the first record.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds a record at `ts_ms`; with `stamp_ns`, the value's first 8 bytes (if it has
    /// them) are replaced by that send time.
    pub fn push(&mut self, ts_ms: i64, key: Option<&[u8]>, value: &[u8], stamp_ns: Option<u64>) {
        if self.count == 0 {
            self.buf.clear();
            self.buf.reserve(self.high_water.max(HEADER_BYTES + 64));
            if self.codec == Codec::None {
                self.buf.put_bytes(0, HEADER_BYTES);
            }
            self.base_ts = ts_ms;
            self.max_ts = ts_ms;
        }
        let ts_delta = ts_ms - self.base_ts;
        let key_len = key.map_or(-1, |k| k.len() as i64);
        let body = 1
            + varlong_len(ts_delta)
            + varlong_len(self.count as i64)
            + varlong_len(key_len)
            + key.map_or(0, |k| k.len())
            + varlong_len(value.len() as i64)
            + value.len()
            + 1;
        self.buf.reserve(body + 5);
        put_varlong(&mut self.buf, body as i64);
        self.buf.put_u8(0);
        put_varlong(&mut self.buf, ts_delta);
        put_varlong(&mut self.buf, self.count as i64);
        put_varlong(&mut self.buf, key_len);
        if let Some(k) = key {
            self.buf.put_slice(k);
        }
        put_varlong(&mut self.buf, value.len() as i64);
        match stamp_ns {
            Some(t) if value.len() >= 8 => {
                self.buf.put_u64(t);
                self.buf.put_slice(&value[8..]);
            }
            _ => self.buf.put_slice(value),
        }
        self.buf.put_u8(0); // no headers
        self.count += 1;
        self.max_ts = self.max_ts.max(ts_ms);
    }

    /// Finishes the batch (CRC included) and starts the next one empty.
    ///
    /// # Panics
    /// Without a record (Kafka batches are never empty).
    pub fn finish(&mut self) -> Result<Bytes, ClientError> {
        assert!(self.count > 0, "a record batch needs a record");
        let out = match self.codec {
            Codec::None => &mut self.buf,
            codec => {
                self.out.clear();
                self.out.reserve(HEADER_BYTES + self.buf.len() / 2);
                self.out.put_bytes(0, HEADER_BYTES);
                compress(codec, &self.buf, &mut self.out)?;
                &mut self.out
            }
        };
        let len = out.len();
        let h = &mut out[..HEADER_BYTES];
        h[0..8].copy_from_slice(&0i64.to_be_bytes());
        h[8..12].copy_from_slice(&((len - 12) as i32).to_be_bytes());
        h[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        h[16] = MAGIC_V2 as u8;
        h[21..23].copy_from_slice(&self.codec.attribute().to_be_bytes());
        h[23..27].copy_from_slice(&(self.count - 1).to_be_bytes());
        h[27..35].copy_from_slice(&self.base_ts.to_be_bytes());
        h[35..43].copy_from_slice(&self.max_ts.to_be_bytes());
        h[43..51].copy_from_slice(&(-1i64).to_be_bytes()); // producer id
        h[51..53].copy_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        h[53..57].copy_from_slice(&(-1i32).to_be_bytes()); // base sequence
        h[57..61].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        self.count = 0;
        self.high_water = self.high_water.max(len);
        Ok(out.split().freeze())
    }
}

fn compress(codec: Codec, records: &[u8], out: &mut BytesMut) -> Result<(), ClientError> {
    use std::io::Write;
    let mut w = std::mem::take(out).writer();
    let res = match codec {
        Codec::None => w.write_all(records).map_err(|e| e.to_string()),
        Codec::Lz4 => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(w);
            let r = enc.write_all(records).map_err(|e| e.to_string());
            match (r, enc.finish()) {
                (Ok(()), Ok(inner)) => {
                    w = inner;
                    Ok(())
                }
                (Err(e), _) => return Err(ClientError::new(format!("lz4: {e}"))),
                (_, Err(e)) => return Err(ClientError::new(format!("lz4: {e}"))),
            }
        }
        Codec::Zstd => zstd::stream::copy_encode(records, &mut w, 1).map_err(|e| e.to_string()),
    };
    *out = w.into_inner();
    res.map_err(|e| ClientError::new(format!("{codec:?} compression: {e}")))
}

/// Decompresses the records section of a batch compressed with Kafka codec `codec`
/// (1 gzip, 3 lz4, 4 zstd); snappy (2) is refused.
pub fn decompress(codec: i16, records: &[u8]) -> Result<Vec<u8>, ClientError> {
    use std::io::Read;
    let mut out = Vec::with_capacity(records.len() * 2);
    match codec {
        1 => {
            flate2::read::GzDecoder::new(records)
                .read_to_end(&mut out)
                .map_err(|e| ClientError::new(format!("gzip: {e}")))?;
        }
        2 => {
            return Err(ClientError::new(
                "snappy-compressed batches cannot be read by this client (gzip, lz4 and zstd can)",
            ))
        }
        3 => {
            lz4_flex::frame::FrameDecoder::new(records)
                .read_to_end(&mut out)
                .map_err(|e| ClientError::new(format!("lz4: {e}")))?;
        }
        4 => {
            zstd::stream::copy_decode(records, &mut out)
                .map_err(|e| ClientError::new(format!("zstd: {e}")))?;
        }
        c => {
            return Err(ClientError::new(format!(
                "compression codec {c} is not supported"
            )))
        }
    }
    Ok(out)
}

/// What a fetch of one partition delivered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Records at or past the fetch offset.
    pub records: u64,
    /// Bytes of those batches as stored.
    pub bytes: u64,
    /// The offset to fetch next.
    pub next_offset: i64,
}

/// Walks the whole batches in `records` (a fetch response's records field), counting what
/// lies at or past `offset`. With `send_times` set, every value's embedded send time
/// (see the module docs) is passed to it; compressed batches are then decompressed.
pub fn deliver(
    records: &Bytes,
    offset: i64,
    mut send_times: Option<&mut dyn FnMut(u64)>,
) -> Result<Delivered, ClientError> {
    let mut d = Delivered {
        next_offset: offset,
        ..Delivered::default()
    };
    let mut pos = 0;
    while let Some(b) = records.get(pos..).and_then(RecordBatch::from_prefix) {
        pos += b.len();
        let last = b.last_offset();
        if last < d.next_offset {
            continue;
        }
        let from = b.base_offset().max(d.next_offset);
        if !b.is_control() {
            d.records += (last - from + 1) as u64;
            d.bytes += b.len() as u64;
            if let Some(f) = send_times.as_mut() {
                let codec = b.attributes() & batch::attributes::COMPRESSION_MASK;
                let plain;
                let bytes = if codec == 0 {
                    b.records_bytes()
                } else {
                    plain = decompress(codec, b.records_bytes())?;
                    &plain[..]
                };
                for r in batch::records_in(bytes, b.records_count()) {
                    if b.base_offset() + r.offset_delta < from {
                        continue;
                    }
                    if let Some(v) = r.value.filter(|v| v.len() >= 8) {
                        f(u64::from_be_bytes(v[..8].try_into().expect("8 bytes")));
                    }
                }
            }
        }
        d.next_offset = last + 1;
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(codec: Codec, n: usize) -> Vec<u8> {
        let mut w = BatchWriter::new(codec);
        for i in 0..n {
            let key = (i as u64).to_be_bytes();
            let value = vec![b'x'; 100 + i];
            w.push(1_000 + i as i64, Some(&key), &value, Some(i as u64 * 7));
        }
        w.finish().unwrap().to_vec()
    }

    #[test]
    fn batches_are_valid_kafka_batches_for_every_codec() {
        for codec in [Codec::None, Codec::Lz4, Codec::Zstd] {
            let bytes = build(codec, 50);
            let b = RecordBatch::new(&bytes).unwrap();
            b.verify_crc().unwrap();
            assert_eq!(b.records_count(), 50);
            assert_eq!(b.last_offset_delta(), 49);
            assert_eq!(b.base_timestamp(), 1_000);
            assert_eq!(b.max_timestamp(), 1_049);
            assert_eq!(b.attributes(), codec.attribute());
            let mut seen = Vec::new();
            let got =
                deliver(&Bytes::from(bytes.clone()), 10, Some(&mut |t| seen.push(t))).unwrap();
            assert_eq!(
                got,
                Delivered {
                    records: 40,
                    bytes: bytes.len() as u64,
                    next_offset: 50
                }
            );
            assert_eq!(seen, (10..50).map(|i| i * 7).collect::<Vec<u64>>());
        }
    }

    #[test]
    fn uncompressed_records_read_back_through_the_engine() {
        let bytes = build(Codec::None, 3);
        let b = RecordBatch::new(&bytes).unwrap();
        let recs: Vec<_> = batch::records(&b).collect();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[2].timestamp_delta, 2);
        assert_eq!(recs[2].key, Some(&2u64.to_be_bytes()[..]));
        assert_eq!(recs[2].value.unwrap().len(), 102);
    }

    #[test]
    fn a_cut_batch_at_the_end_is_left_for_the_next_fetch() {
        let mut bytes = build(Codec::None, 4);
        let whole = bytes.len();
        bytes.extend_from_slice(&build(Codec::None, 4)[..30]);
        let got = deliver(&Bytes::from(bytes), 0, None).unwrap();
        assert_eq!(
            got,
            Delivered {
                records: 4,
                bytes: whole as u64,
                next_offset: 4
            }
        );
    }
}
