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
//! After a restart the state is rebuilt by scanning the tail of the log (see
//! `partition.rs`), so a producer's retry after a crash is still recognised.

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
}
