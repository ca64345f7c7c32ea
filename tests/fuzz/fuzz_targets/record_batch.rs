//! Record-batch validation, as a Produce request's batches go through it: it must never
//! panic, and a batch it accepts must stay valid, with the same counts, once the broker
//! assigns its offsets and leader epoch in place (fields outside the CRC).
#![no_main]

use corelog_engine::batch::{self, RecordBatch};
use libfuzzer_sys::fuzz_target;

const MAX_BATCH_BYTES: usize = 1 << 20;

/// Where the CRC-32C field sits and where the bytes it covers start.
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;

fuzz_target!(|data: &[u8]| {
    check(data);
    // The same bytes with a correct CRC: mutations then reach the record parsing behind
    // the checksum instead of stopping at it.
    if data.len() > CRC_FROM {
        let mut fixed = data.to_vec();
        let crc = crc32c::crc32c(&fixed[CRC_FROM..]);
        fixed[CRC_AT..CRC_FROM].copy_from_slice(&crc.to_be_bytes());
        check(&fixed);
    }
});

fn check(data: &[u8]) {
    let Ok(info) = batch::validate(data, MAX_BATCH_BYTES) else {
        return;
    };
    let parsed = RecordBatch::new(data).expect("a batch validate accepted parses");
    assert_eq!(parsed.len(), data.len(), "validate accepted trailing bytes");
    let mut stored = data.to_vec();
    batch::assign(&mut stored, 1 << 40, 7);
    let again = batch::validate(&stored, MAX_BATCH_BYTES).expect("still valid after assign");
    assert_eq!(again.offset_count, info.offset_count);
    let b = RecordBatch::new(&stored).expect("parses after assign");
    assert_eq!(b.base_offset(), 1 << 40);
}
