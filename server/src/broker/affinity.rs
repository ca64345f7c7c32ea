//! Connection affinity: a connection whose data requests keep going to partitions of one
//! other shard moves to that shard.
//!
//! SO_REUSEPORT spreads connections over the shards without knowing what they will ask
//! for, so with two shards half of all connections land on a shard that owns none of
//! their partitions. Every Produce or Fetch of such a connection then crosses the mesh
//! and back, which costs two executor wake-ups: about 150 us of a one-record produce on
//! the development VM, several times the request's own cost. A producer writing to one
//! partition, or a consumer whose partitions share a shard, is served better where its
//! partitions live.
//!
//! The rule: after [`MOVE_AFTER`] Produce/Fetch requests in a row that each touched only
//! partitions of the same other shard (requests of other APIs neither count nor break
//! the run), the connection stops reading, lets its outstanding responses go out, and
//! hands a duplicate of its socket to that shard, which serves it from the next request
//! on. The client sees one TCP connection throughout and responses in request order. A
//! connection whose requests touch this shard, or several shards, stays. A client whose
//! traffic changes may be moved again after another run, so a move costs at most one
//! hand-over per `MOVE_AFTER` requests.

use std::cell::Cell;

/// Produce/Fetch requests in a row that must touch only one other shard's partitions
/// before the connection moves there.
pub const MOVE_AFTER: u32 = 32;

/// Which shards one request's partitions live on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Touched {
    /// None (not a data request, or no partition in it).
    #[default]
    Nothing,
    /// All on this shard.
    One(usize),
    /// On more than one shard.
    Several,
}

impl Touched {
    /// `self` plus partitions on `shard`.
    pub fn with(self, shard: usize) -> Touched {
        match self {
            Touched::Nothing => Touched::One(shard),
            Touched::One(s) if s == shard => self,
            _ => Touched::Several,
        }
    }
}

/// What one request's handler records: the shards its partitions live on. Handlers of
/// data APIs note every owner they send work to.
#[derive(Debug, Default)]
pub struct ShardsTouched(Cell<Touched>);

impl ShardsTouched {
    /// Records work sent to `shard`.
    pub fn note(&self, shard: usize) {
        self.0.set(self.0.get().with(shard));
    }

    /// What was recorded.
    pub fn get(&self) -> Touched {
        self.0.get()
    }
}

/// One connection's run of requests that went to a single other shard.
#[derive(Debug)]
pub struct Affinity {
    me: usize,
    target: Option<usize>,
    run: u32,
}

impl Affinity {
    /// A connection served by shard `me`.
    pub fn new(me: usize) -> Self {
        Affinity {
            me,
            target: None,
            run: 0,
        }
    }

    /// Takes one request's record; returns the shard to move to once the run is long
    /// enough.
    pub fn observe(&mut self, touched: Touched) -> Option<usize> {
        match touched {
            Touched::Nothing => {}
            Touched::One(s) if s != self.me => {
                if self.target == Some(s) {
                    self.run += 1;
                } else {
                    self.target = Some(s);
                    self.run = 1;
                }
            }
            Touched::One(_) | Touched::Several => {
                self.target = None;
                self.run = 0;
            }
        }
        (self.run >= MOVE_AFTER).then(|| self.target.expect("a run has a target"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn touched_accumulates() {
        let t = ShardsTouched::default();
        assert_eq!(t.get(), Touched::Nothing);
        t.note(3);
        t.note(3);
        assert_eq!(t.get(), Touched::One(3));
        t.note(1);
        assert_eq!(t.get(), Touched::Several);
        t.note(3);
        assert_eq!(t.get(), Touched::Several);
    }

    #[test]
    fn moves_after_a_run_to_one_other_shard_only() {
        let mut a = Affinity::new(0);
        for _ in 1..MOVE_AFTER {
            assert_eq!(a.observe(Touched::One(1)), None);
            // Metadata, heartbeats and commits in between do not break the run.
            assert_eq!(a.observe(Touched::Nothing), None);
        }
        assert_eq!(a.observe(Touched::One(1)), Some(1));

        let mut home = Affinity::new(0);
        for _ in 0..10 * MOVE_AFTER {
            assert_eq!(home.observe(Touched::One(0)), None);
            assert_eq!(home.observe(Touched::Several), None);
        }
    }

    /// Seeded random request streams: a move is proposed exactly when the last
    /// MOVE_AFTER data requests all went to the same other shard.
    #[test]
    fn random_streams_move_exactly_after_a_full_run() {
        let seed = 0x05ee_da77_u64;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        for _ in 0..200 {
            let me = rng.gen_range(0..3);
            let mut a = Affinity::new(me);
            let mut data: Vec<Touched> = Vec::new();
            for _ in 0..500 {
                let t = match rng.gen_range(0..10) {
                    0 => Touched::Nothing,
                    1 => Touched::Several,
                    // Long runs are likely: mostly one shard.
                    _ => Touched::One(if rng.gen_bool(0.9) {
                        2
                    } else {
                        rng.gen_range(0..3)
                    }),
                };
                let proposed = a.observe(t);
                if t != Touched::Nothing {
                    data.push(t);
                }
                let tail = data
                    .len()
                    .checked_sub(MOVE_AFTER as usize)
                    .map(|s| &data[s..]);
                let expected = tail.and_then(|tail| match tail[0] {
                    Touched::One(s) if s != me && tail.iter().all(|t| *t == tail[0]) => Some(s),
                    _ => None,
                });
                assert_eq!(proposed, expected, "seed {seed:#x}");
            }
        }
    }
}
