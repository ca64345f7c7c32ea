//! A latency histogram with fixed buckets, the shape Prometheus scrapes: a count per
//! bucket (each counts observations at most its upper bound and above the previous
//! one's), a total count and a sum. Fixed bounds make it `Copy`, cheap to record on a
//! shard's own core (a few comparisons and three adds, no allocation) and cheap to add
//! up across logs and shards.
//!
//! For benchmarks' percentiles the bench crate uses hdrhistogram; this one is for
//! metrics, where Prometheus computes quantiles from the buckets.

use std::time::Duration;

/// Upper bounds of the buckets, in nanoseconds: 50 us to 10 s, about three per decade.
/// Observations above the last bound count only in the total (Prometheus's `+Inf`).
pub const BOUNDS_NS: [u64; 17] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Counts of durations by bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative), by [`BOUNDS_NS`].
    pub buckets: [u64; BOUNDS_NS.len()],
    /// Every observation, those past the last bound included.
    pub count: u64,
    /// Their sum, in nanoseconds.
    pub sum_ns: u64,
}

impl Histogram {
    /// Records one duration.
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        if let Some(i) = BOUNDS_NS.iter().position(|&b| ns <= b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// Adds `other`'s observations to these.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }

    /// Cumulative counts per bound (Prometheus's `le` buckets, `+Inf` excluded).
    pub fn cumulative(&self) -> [u64; BOUNDS_NS.len()] {
        let mut out = self.buckets;
        for i in 1..out.len() {
            out[i] += out[i - 1];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_rise() {
        assert!(BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_duration_counts_in_the_first_bucket_that_holds_it() {
        let mut h = Histogram::default();
        h.record(Duration::from_micros(50)); // on the bound: that bucket
        h.record(Duration::from_micros(51)); // just past it: the next
        h.record(Duration::from_secs(60)); // past every bound: the total only
        assert_eq!(h.buckets[0], 1);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets.iter().sum::<u64>(), 2);
        assert_eq!(h.count, 3);
        assert_eq!(h.sum_ns, 50_000 + 51_000 + 60_000_000_000);
        let c = h.cumulative();
        assert_eq!((c[0], c[1], c[BOUNDS_NS.len() - 1]), (1, 2, 2));
        let mut twice = h;
        twice.merge(&h);
        assert_eq!(twice.count, 6);
        assert_eq!(twice.cumulative()[1], 4);
    }
}
