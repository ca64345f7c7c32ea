//! Helpers for corelog's integration tests: deterministic batches that a checker can
//! regenerate, and a glommio runner.

use corelog_engine::batch_builder::BatchBuilder;
use corelog_engine::LogConfig;

/// The batch a writer identified by (`cycle`, `task`, `seq`) appends: its content is a
/// pure function of those numbers, so a checker can rebuild it byte for byte.
pub fn deterministic_batch(cycle: u32, task: u32, seq: u64) -> Vec<u8> {
    let mut h = (cycle as u64) << 48 ^ (task as u64) << 40 ^ seq;
    let mut next = || {
        // splitmix64: fixed, so the bytes never change between runs or versions.
        h = h.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    };
    let records = 1 + (next() % 8) as usize;
    let mut b = BatchBuilder::new(1_700_000_000_000 + seq as i64);
    for _ in 0..records {
        let len = (next() % 1500) as usize;
        let value: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let key = format!("{cycle}-{task}-{seq}");
        b.push(Some(key.as_bytes()), Some(&value), &[]);
    }
    b.build()
}

pub use corelog_engine::testing::run_on_executor;

/// Log settings of the SIGKILL test (small segments and chunks, so kills land in rolls
/// and chunk boundaries too).
pub fn crash_config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 << 10,
        write_chunk_bytes: 32 << 10,
        max_batch_bytes: 64 << 10,
        ..LogConfig::default()
    }
}
