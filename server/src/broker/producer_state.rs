//! Idempotent-producer state of one partition (Kafka's ProducerStateManager, without
//! transactions): for each producer id, its epoch and the sequence ranges of its last
//! [`BATCHES_KEPT`] batches, so that a retried batch is recognised and answered with its
//! original offsets, and a batch that skips sequences is refused.
//!
//! Rules, as Kafka's `ProducerAppendInfo.checkSequence`:
//! - an epoch older than the producer's is fenced (INVALID_PRODUCER_EPOCH);
//! - a newer epoch must start at sequence 0;
//! - an unknown producer may start anywhere (its state may have aged out of the log);
//! - otherwise a batch equal to a remembered one is a duplicate, and any other batch
//!   must start right after the last one (sequences wrap at `i32::MAX`).
//!
//! After a restart the state is rebuilt from the snapshot written at the last clean close
//! plus a scan of the log after it (see `partition.rs`), so a producer's retry after a
//! restart or a crash is still recognised.
//!
//! # Snapshot file (`producer.snapshot`), all integers big-endian
//! ```text
//!  0  u32  magic 0x434C5053 ("CLPS")
//!  4  u16  version, 1
//!  6  u64  next_offset: the state covers every batch below this offset
//! 14  u32  producer count N, then N producers, least recently used first:
//!            i64 producer id, i16 epoch, u8 batch count M (<= BATCHES_KEPT), then M of
//!            (i32 first sequence, i32 last sequence, u64 base offset, i64 append time ms)
//! end-4    u32  CRC-32C of every byte before it
//! ```
//! A file that is short, has trailing bytes, a wrong magic, version or CRC, or breaks a
//! bound is ignored (the log is scanned instead), never trusted in part.

use std::collections::{HashMap, VecDeque};

use crate::protocol::ErrorCode;

/// Batches remembered per producer: the client keeps at most 5 requests in flight.
pub const BATCHES_KEPT: usize = 5;

/// Producers remembered per partition; the least recently used is forgotten beyond it.
pub const PRODUCERS_MAX: usize = 10_000;

/// A remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// First sequence.
    pub first_seq: i32,
    /// Last sequence.
    pub last_seq: i32,
    /// Offset given to its first record.
    pub base_offset: u64,
    /// LogAppendTime stamped on it, or -1.
    pub append_time_ms: i64,
}

#[derive(Debug, Clone)]
struct Producer {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
    last_used: u64,
}

/// What to do with an incoming idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Append it.
    Append,
    /// Already appended: answer with this.
    Duplicate(BatchMeta),
}

/// The identity and sequence range of an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming {
    /// Producer id (>= 0).
    pub producer_id: i64,
    /// Producer epoch.
    pub epoch: i16,
    /// First sequence.
    pub first_seq: i32,
    /// Last sequence.
    pub last_seq: i32,
}

/// Name of the snapshot file in a partition directory.
pub const SNAPSHOT_FILE: &str = "producer.snapshot";
const SNAPSHOT_MAGIC: u32 = 0x434C_5053;
const SNAPSHOT_VERSION: u16 = 1;
const SNAPSHOT_HEADER_BYTES: usize = 18;
const SNAPSHOT_PRODUCER_BYTES: usize = 11;
const SNAPSHOT_BATCH_BYTES: usize = 24;

/// State of all producers of one partition.
#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, Producer>,
    clock: u64,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStates {
    /// Checks a batch against the state; does not change it.
    pub fn check(&self, b: &Incoming) -> Result<Verdict, ErrorCode> {
        let Some(p) = self.producers.get(&b.producer_id) else {
            return Ok(Verdict::Append);
        };
        if b.epoch < p.epoch {
            return Err(ErrorCode::InvalidProducerEpoch);
        }
        if b.epoch > p.epoch {
            return if b.first_seq == 0 {
                Ok(Verdict::Append)
            } else {
                Err(ErrorCode::OutOfOrderSequenceNumber)
            };
        }
        if let Some(m) = p
            .batches
            .iter()
            .find(|m| m.first_seq == b.first_seq && m.last_seq == b.last_seq)
        {
            return Ok(Verdict::Duplicate(*m));
        }
        match p.batches.back() {
            Some(last) if b.first_seq != next_seq(last.last_seq) => {
                Err(ErrorCode::OutOfOrderSequenceNumber)
            }
            _ => Ok(Verdict::Append),
        }
    }

    /// The snapshot file's bytes for this state, covering batches below `next_offset`.
    pub fn encode_snapshot(&self, next_offset: u64) -> Vec<u8> {
        let mut producers: Vec<_> = self.producers.iter().collect();
        producers.sort_by_key(|(_, p)| p.last_used);
        let mut out = Vec::with_capacity(
            SNAPSHOT_HEADER_BYTES
                + producers.len() * (SNAPSHOT_PRODUCER_BYTES + BATCHES_KEPT * SNAPSHOT_BATCH_BYTES)
                + 4,
        );
        out.extend_from_slice(&SNAPSHOT_MAGIC.to_be_bytes());
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&next_offset.to_be_bytes());
        out.extend_from_slice(&(producers.len() as u32).to_be_bytes());
        for (id, p) in producers {
            debug_assert!(p.batches.len() <= BATCHES_KEPT);
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&p.epoch.to_be_bytes());
            out.push(p.batches.len() as u8);
            for m in &p.batches {
                out.extend_from_slice(&m.first_seq.to_be_bytes());
                out.extend_from_slice(&m.last_seq.to_be_bytes());
                out.extend_from_slice(&m.base_offset.to_be_bytes());
                out.extend_from_slice(&m.append_time_ms.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads a snapshot file: the state and the offset it covers up to, or `None` if the
    /// bytes are not a valid snapshot (see the module documentation).
    pub fn decode_snapshot(bytes: &[u8]) -> Option<(u64, ProducerStates)> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut r = body;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (head, rest) = r.split_at_checked(n)?;
            r = rest;
            Some(head)
        };
        if u32::from_be_bytes(take(4)?.try_into().ok()?) != SNAPSHOT_MAGIC
            || u16::from_be_bytes(take(2)?.try_into().ok()?) != SNAPSHOT_VERSION
        {
            return None;
        }
        let next_offset = u64::from_be_bytes(take(8)?.try_into().ok()?);
        let count = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
        if count > PRODUCERS_MAX {
            return None;
        }
        let mut states = ProducerStates::default();
        for _ in 0..count {
            let id = i64::from_be_bytes(take(8)?.try_into().ok()?);
            let epoch = i16::from_be_bytes(take(2)?.try_into().ok()?);
            let batches = usize::from(take(1)?[0]);
            if id < 0 || batches > BATCHES_KEPT || states.producers.contains_key(&id) {
                return None;
            }
            let mut kept = VecDeque::with_capacity(BATCHES_KEPT);
            for _ in 0..batches {
                let b = take(SNAPSHOT_BATCH_BYTES)?;
                kept.push_back(BatchMeta {
                    first_seq: i32::from_be_bytes(b[0..4].try_into().ok()?),
                    last_seq: i32::from_be_bytes(b[4..8].try_into().ok()?),
                    base_offset: u64::from_be_bytes(b[8..16].try_into().ok()?),
                    append_time_ms: i64::from_be_bytes(b[16..24].try_into().ok()?),
                });
            }
            states.clock += 1;
            let last_used = states.clock;
            states.producers.insert(
                id,
                Producer {
                    epoch,
                    batches: kept,
                    last_used,
                },
            );
        }
        if !r.is_empty() {
            return None;
        }
        Some((next_offset, states))
    }

    /// Records an appended batch.
    pub fn record(&mut self, b: &Incoming, meta: BatchMeta) {
        self.clock += 1;
        let clock = self.clock;
        let p = self.producers.entry(b.producer_id).or_insert(Producer {
            epoch: b.epoch,
            batches: VecDeque::with_capacity(BATCHES_KEPT),
            last_used: clock,
        });
        if b.epoch != p.epoch {
            p.epoch = b.epoch;
            p.batches.clear();
        }
        if p.batches.len() == BATCHES_KEPT {
            p.batches.pop_front();
        }
        p.batches.push_back(meta);
        p.last_used = clock;
        if self.producers.len() > PRODUCERS_MAX {
            let oldest = self
                .producers
                .iter()
                .min_by_key(|(_, p)| p.last_used)
                .map(|(id, _)| *id)
                .expect("not empty");
            self.producers.remove(&oldest);
        }
    }

    /// Number of producers remembered.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is remembered.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(epoch: i16, first: i32, last: i32) -> Incoming {
        Incoming {
            producer_id: 7,
            epoch,
            first_seq: first,
            last_seq: last,
        }
    }

    fn meta(first: i32, last: i32, base: u64) -> BatchMeta {
        BatchMeta {
            first_seq: first,
            last_seq: last,
            base_offset: base,
            append_time_ms: -1,
        }
    }

    #[test]
    fn duplicates_gaps_and_epochs() {
        let mut s = ProducerStates::default();
        assert_eq!(s.check(&inc(0, 5, 9)), Ok(Verdict::Append)); // unknown: anywhere
        s.record(&inc(0, 0, 4), meta(0, 4, 100));
        assert_eq!(
            s.check(&inc(0, 0, 4)),
            Ok(Verdict::Duplicate(meta(0, 4, 100)))
        );
        assert_eq!(
            s.check(&inc(0, 6, 9)),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(s.check(&inc(0, 5, 9)), Ok(Verdict::Append));
        s.record(&inc(1, 0, 0), meta(0, 0, 200));
        assert_eq!(s.check(&inc(0, 1, 1)), Err(ErrorCode::InvalidProducerEpoch));
        assert_eq!(
            s.check(&inc(2, 3, 3)),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
        // Only the last BATCHES_KEPT are remembered.
        for i in 1..=BATCHES_KEPT as i32 {
            s.record(&inc(1, i, i), meta(i, i, 200 + i as u64));
        }
        assert_eq!(
            s.check(&inc(1, 0, 0)),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert!(matches!(s.check(&inc(1, 5, 5)), Ok(Verdict::Duplicate(_))));
        // Sequences wrap.
        s.record(
            &inc(1, i32::MAX - 1, i32::MAX),
            meta(i32::MAX - 1, i32::MAX, 300),
        );
        assert_eq!(s.check(&inc(1, 0, 3)), Ok(Verdict::Append));
    }

    #[test]
    fn snapshots_round_trip_and_refuse_damage() {
        use rand::{Rng, SeedableRng};
        let seed = corelog_engine::testing::seed("CORELOG_TEST_SEED");
        println!("seed {seed} (CORELOG_TEST_SEED to repeat)");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut s = ProducerStates::default();
        for _ in 0..200 {
            let id = rng.gen_range(0..40i64);
            let first = rng.gen_range(0..i32::MAX - 10);
            let b = Incoming {
                producer_id: id,
                epoch: rng.gen_range(0..3),
                first_seq: first,
                last_seq: first + rng.gen_range(0..10),
            };
            s.record(&b, meta(b.first_seq, b.last_seq, rng.gen()));
        }
        let bytes = s.encode_snapshot(12_345);
        let (next, back) = ProducerStates::decode_snapshot(&bytes).expect("valid snapshot");
        assert_eq!(next, 12_345);
        assert_eq!(back.len(), s.len());
        assert_eq!(
            back.encode_snapshot(12_345),
            bytes,
            "round trip changed the state"
        );
        let probe = inc(0, 3, 3);
        let probe = Incoming {
            producer_id: s.producers.keys().copied().next().unwrap(),
            ..probe
        };
        assert_eq!(back.check(&probe), s.check(&probe));

        for len in 0..bytes.len() {
            assert!(
                ProducerStates::decode_snapshot(&bytes[..len]).is_none(),
                "cut at {len}"
            );
        }
        for _ in 0..500 {
            let mut bad = bytes.clone();
            let i = rng.gen_range(0..bad.len());
            bad[i] ^= 1 << rng.gen_range(0..8);
            assert!(
                ProducerStates::decode_snapshot(&bad).is_none(),
                "flip at {i}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(ProducerStates::decode_snapshot(&longer).is_none());
        let empty = ProducerStates::default().encode_snapshot(0);
        assert_eq!(empty.len(), SNAPSHOT_HEADER_BYTES + 4);
        assert!(ProducerStates::decode_snapshot(&empty)
            .unwrap()
            .1
            .is_empty());
    }
}
