//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

use bytes::BytesMut;
use corelog_engine::batch_builder::BatchBuilder;
use corelog_engine::TailCache;

pub use corelog_engine::testing::run_on_executor as run;

/// A cache that holds nothing, so every read goes to disk.
pub fn no_cache() -> Rc<RefCell<TailCache>> {
    Rc::new(RefCell::new(TailCache::new(0)))
}

/// A cache large enough for a test.
pub fn big_cache() -> Rc<RefCell<TailCache>> {
    Rc::new(RefCell::new(TailCache::new(64 << 20)))
}

/// A batch of `records` records with values of `value_bytes` bytes, deterministic in
/// `tag`, with timestamp `ts`.
pub fn batch(tag: u64, records: usize, value_bytes: usize, ts: i64) -> BytesMut {
    let mut b = BatchBuilder::new(ts);
    for r in 0..records {
        let v: Vec<u8> = (0..value_bytes)
            .map(|i| (tag as usize * 31 + r * 7 + i) as u8)
            .collect();
        b.push(Some(&tag.to_be_bytes()), Some(&v), &[]);
    }
    BytesMut::from(&b.build()[..])
}

/// Splits concatenated stored batches into (base offset, bytes).
pub fn split(data: &[bytes::Bytes]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    for chunk in data {
        let mut rest = &chunk[..];
        while let Some(b) = corelog_engine::batch::RecordBatch::from_prefix(rest) {
            out.push((b.base_offset() as u64, b.as_bytes().to_vec()));
            rest = &rest[b.len()..];
        }
        assert!(rest.is_empty(), "a read returned a partial batch");
    }
    out
}

/// Reads the whole log, from its start to the high watermark, in calls of `max_bytes`.
pub async fn read_all(log: &corelog_engine::PartitionLog, max_bytes: usize) -> Vec<(u64, Vec<u8>)> {
    try_read_all(log, max_bytes).await.expect("read")
}

/// [`read_all`], or the first read's error.
pub async fn try_read_all(
    log: &corelog_engine::PartitionLog,
    max_bytes: usize,
) -> corelog_engine::Result<Vec<(u64, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut off = log.log_start_offset();
    while off < log.high_watermark() {
        let part = split(&log.read(off, max_bytes).await?.batches);
        let last = part
            .last()
            .expect("a read below the high watermark returns a batch");
        off = corelog_engine::batch::RecordBatch::new(&last.1)
            .expect("stored batch")
            .last_offset() as u64
            + 1;
        out.extend(part);
    }
    Ok(out)
}
