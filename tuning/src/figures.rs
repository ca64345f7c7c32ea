//! The figures a device measurement produces: plain data, shared by the measurement
//! ([`crate::disk`]) that fills them, the rules ([`crate::rules`]) that read them and the
//! profile writer that records them.
//!
//! Units are in the names: bandwidth in MB/s (10^6 bytes per second, as fio and iotune
//! print it), rates in operations per second, latencies in microseconds.

use std::time::Duration;

use serde::Serialize;

/// Everything one device measurement found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskFigures {
    /// Time spent on each timed point.
    pub point_ms: u64,
    /// Times each point of the sequential write grid and of the random reads was measured
    /// (in alternating order); their figures are the medians.
    pub passes: usize,
    /// How much the passes of a point disagree: the median, over the write grid's cells
    /// and the random read depths, of (largest - smallest) / median of a point's passes,
    /// in percent. Above [`NOISY_SPREAD_PCT`] the device is shared, throttled or cached by
    /// a host, and the settings chosen from the figures may change from run to run.
    pub pass_spread_pct: f64,
    /// Size of the scratch file the points ran on.
    pub file_bytes: u64,
    /// The first pass over the freshly preallocated scratch file (1 MiB writes, 4 in
    /// flight): writing into unwritten extents, as a new segment does, costs extent
    /// conversions that overwrites do not.
    pub fill_write_mb_per_s: f64,
    /// Sequential O_DIRECT overwrites over block sizes and queue depths.
    pub seq_write: SeqWriteGrid,
    /// Random 4 KiB O_DIRECT writes at each queue depth measured.
    pub rand_write_4k: Vec<IopsPoint>,
    /// Random 4 KiB O_DIRECT reads at each queue depth measured.
    pub rand_read_4k: Vec<IopsPoint>,
    /// Sequential O_DIRECT reads over block sizes and queue depths (one pass each:
    /// recorded, no rule reads them).
    pub seq_read: Vec<ReadPoint>,
    /// fdatasync after each 4 KiB write into fresh preallocated space (what a flush
    /// costs at a segment's growing end).
    pub fsync_append_4k: LatencyStats,
    /// fdatasync after rewriting the same 4 KiB block (a log's partly filled tail block
    /// is rewritten by every small flush until it is full).
    pub fsync_rewrite_4k: LatencyStats,
    /// fdatasync after each 1 MiB write into fresh preallocated space (a background flush
    /// under load covers a chunk or more).
    pub fsync_after_1m: LatencyStats,
    /// Flushes in the middle of a stream of writes, as the broker's background flush does.
    pub flush_under_load: FlushFigures,
}

/// Background flushes measured the way the broker does them: `logs` logs stream writes
/// into fresh preallocated files at the chosen chunk size and depth; every `gap_ms` each
/// log's writer is held, its writes in flight drain, one fdatasync runs, and the writer
/// goes on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlushFigures {
    /// Logs streaming and flushing at once, each on its own file.
    pub logs: usize,
    /// Chunk size of the streamed writes.
    pub chunk_bytes: usize,
    /// Writes kept in flight.
    pub write_depth: usize,
    /// Time between flushes.
    pub gap_ms: u64,
    /// Hold start to fdatasync end: how long each flush keeps the writer from the disk.
    pub hold: LatencyStats,
    /// Hold start until the writes in flight completed (the first part of `hold`).
    pub drain: LatencyStats,
    /// Bandwidth of all the streams together, flushes included.
    pub mb_per_s: f64,
}

/// Sequential write bandwidth: one row per block size, one column per queue depth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeqWriteGrid {
    /// Block sizes, ascending.
    pub block_bytes: Vec<usize>,
    /// Queue depths, ascending.
    pub queue_depths: Vec<usize>,
    /// `mb_per_s[row][column]`: block size `row`, queue depth `column`.
    pub mb_per_s: Vec<Vec<f64>>,
    /// CPU time of the measuring executor thread per MiB written, in microseconds, same
    /// layout: the cost of submitting and completing the writes. Empty when not measured.
    pub cpu_us_per_mib: Vec<Vec<f64>>,
}

impl SeqWriteGrid {
    /// The best cell of row `row`: (queue depth, MB/s).
    pub fn row_best(&self, row: usize) -> Option<(usize, f64)> {
        let cells = self.mb_per_s.get(row)?;
        cells
            .iter()
            .zip(&self.queue_depths)
            .map(|(&v, &qd)| (qd, v))
            .fold(None, |best: Option<(usize, f64)>, c| match best {
                Some(b) if b.1 >= c.1 => Some(b),
                _ => Some(c),
            })
    }

    /// The best cell overall: (block bytes, queue depth, MB/s).
    pub fn best(&self) -> Option<(usize, usize, f64)> {
        (0..self.block_bytes.len())
            .filter_map(|r| self.row_best(r).map(|(qd, v)| (self.block_bytes[r], qd, v)))
            .fold(None, |best: Option<(usize, usize, f64)>, c| match best {
                Some(b) if b.2 >= c.2 => Some(b),
                _ => Some(c),
            })
    }
}

/// Sequential read bandwidth at one block size and queue depth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReadPoint {
    /// Bytes per read.
    pub block_bytes: usize,
    /// Reads kept in flight.
    pub queue_depth: usize,
    /// MB/s (10^6 bytes/s).
    pub mb_per_s: f64,
}

/// Operations per second at one queue depth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IopsPoint {
    /// Operations kept in flight.
    pub queue_depth: usize,
    /// Completed operations per second.
    pub iops: f64,
}

/// A latency distribution, summarised by nearest-rank percentiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LatencyStats {
    /// Samples taken.
    pub count: usize,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest sample.
    pub max_us: u64,
}

impl LatencyStats {
    /// Summarises `samples` (sorted in place). Empty input gives all zeros.
    pub fn from_samples(samples: &mut [Duration]) -> LatencyStats {
        samples.sort_unstable();
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        LatencyStats {
            count: samples.len(),
            p50_us: percentile(samples, 50.0).map(us).unwrap_or(0),
            p99_us: percentile(samples, 99.0).map(us).unwrap_or(0),
            max_us: samples.last().copied().map(us).unwrap_or(0),
        }
    }
}

/// Pass spreads above this many percent are reported as noisy.
pub const NOISY_SPREAD_PCT: f64 = 25.0;

/// (largest - smallest) / median of `values`, in percent; `None` for fewer than two
/// values or a zero median.
pub fn spread_pct(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let m = median(values);
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    (m > 0.0).then(|| (hi - lo) / m * 100.0)
}

/// Median of `values` (the mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Nearest-rank percentile of sorted samples: the smallest sample with at least `p`% of
/// the samples at or below it.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A byte count in binary units as an operator reads it: `64 KiB`, `1 MiB`, `1.5 MiB`.
pub fn fmt_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A latency in microseconds, printed in ms above one millisecond: `850 us`, `1.52 ms`.
pub fn fmt_us(us: u64) -> String {
    if us < 1000 {
        format!("{us} us")
    } else {
        format!("{:.2} ms", us as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=200).collect();
        assert_eq!(percentile(&v, 50.0), Some(100));
        assert_eq!(percentile(&v, 99.0), Some(198));
        assert_eq!(percentile(&v, 100.0), Some(200));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7u32], 99.0), Some(7));
        assert_eq!(percentile::<u32>(&[], 50.0), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
    }

    #[test]
    fn spreads() {
        assert_eq!(spread_pct(&[90.0, 100.0, 110.0]), Some(20.0));
        assert_eq!(spread_pct(&[100.0]), None);
        assert_eq!(spread_pct(&[0.0, 0.0]), None);
    }

    #[test]
    fn latency_stats_sort_and_summarise() {
        let mut s: Vec<Duration> = [5u64, 1, 3, 2, 4]
            .iter()
            .map(|&ms| Duration::from_millis(ms))
            .collect();
        let st = LatencyStats::from_samples(&mut s);
        assert_eq!(st.count, 5);
        assert_eq!(st.p50_us, 3000);
        assert_eq!(st.p99_us, 5000);
        assert_eq!(st.max_us, 5000);
        assert_eq!(LatencyStats::from_samples(&mut []).p50_us, 0);
    }

    #[test]
    fn formats_units() {
        assert_eq!(fmt_bytes(65536), "64 KiB");
        assert_eq!(fmt_bytes(1 << 20), "1 MiB");
        assert_eq!(fmt_bytes(3 << 19), "1.5 MiB");
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_us(850), "850 us");
        assert_eq!(fmt_us(1520), "1.52 ms");
    }

    #[test]
    fn grid_best_cells() {
        let g = SeqWriteGrid {
            block_bytes: vec![65536, 1 << 20],
            queue_depths: vec![1, 2],
            mb_per_s: vec![vec![100.0, 150.0], vec![300.0, 290.0]],
            cpu_us_per_mib: vec![],
        };
        assert_eq!(g.row_best(0), Some((2, 150.0)));
        assert_eq!(g.row_best(1), Some((1, 300.0)));
        assert_eq!(g.best(), Some((1 << 20, 1, 300.0)));
        assert_eq!(g.row_best(2), None);
    }
}
