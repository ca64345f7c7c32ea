//! What a run measures: live counters shared by every client thread (for the progress
//! line and the throughput series), per-thread latency histograms merged at the end, and
//! CPU time read from /proc.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Phases of a run, in order.
pub mod phase {
    /// Connecting, joining groups, positioning consumers.
    pub const SETUP: u8 = 0;
    /// Load runs; nothing is recorded.
    pub const WARMUP: u8 = 1;
    /// Load runs and is recorded.
    pub const MEASURE: u8 = 2;
    /// Producers stop; consumers drain until told to stop.
    pub const STOP: u8 = 3;
}

/// Wall-clock nanoseconds since the Unix epoch (what producers embed in values, so a
/// consumer in another process on the same host can measure end-to-end latency).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Counters shared by all client threads.
#[derive(Debug, Default)]
pub struct Shared {
    /// See [`phase`].
    pub phase: AtomicU8,
    /// Tasks that finished their setup.
    pub ready: AtomicUsize,
    /// Records acknowledged (sent, with acks=0).
    pub acked_records: AtomicU64,
    /// Payload (key + value) bytes of those.
    pub acked_bytes: AtomicU64,
    /// Record batch bytes of those.
    pub acked_batch_bytes: AtomicU64,
    /// Produce requests answered.
    pub requests: AtomicU64,
    /// Records consumed.
    pub consumed_records: AtomicU64,
    /// Record batch bytes consumed.
    pub consumed_bytes: AtomicU64,
    /// Consumers that reached their catch-up target.
    pub caught_up: AtomicUsize,
    /// When the last of them did (ns, [`now_ns`]).
    pub caught_up_at_ns: AtomicU64,
    /// Produce errors answered by the broker.
    pub produce_errors: AtomicU64,
    /// The first error that ended a task.
    pub failure: Mutex<Option<String>>,
}

impl Shared {
    /// The current phase.
    pub fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }

    /// Records that a task failed (the first failure is kept) and stops the run.
    pub fn fail(&self, what: String) {
        self.failure
            .lock()
            .expect("not poisoned")
            .get_or_insert(what);
        self.phase.store(phase::STOP, Ordering::Release);
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        Counters {
            acked_records: self.acked_records.load(Ordering::Relaxed),
            acked_bytes: self.acked_bytes.load(Ordering::Relaxed),
            acked_batch_bytes: self.acked_batch_bytes.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            consumed_records: self.consumed_records.load(Ordering::Relaxed),
            consumed_bytes: self.consumed_bytes.load(Ordering::Relaxed),
        }
    }
}

/// The shared counters at one moment.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Counters {
    /// See [`Shared`].
    pub acked_records: u64,
    /// See [`Shared`].
    pub acked_bytes: u64,
    /// See [`Shared`].
    pub acked_batch_bytes: u64,
    /// See [`Shared`].
    pub requests: u64,
    /// See [`Shared`].
    pub consumed_records: u64,
    /// See [`Shared`].
    pub consumed_bytes: u64,
}

impl Counters {
    /// `self - earlier`, field by field.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            acked_records: self.acked_records - earlier.acked_records,
            acked_bytes: self.acked_bytes - earlier.acked_bytes,
            acked_batch_bytes: self.acked_batch_bytes - earlier.acked_batch_bytes,
            requests: self.requests - earlier.requests,
            consumed_records: self.consumed_records - earlier.consumed_records,
            consumed_bytes: self.consumed_bytes - earlier.consumed_bytes,
        }
    }
}

/// A latency histogram in microseconds (1 µs to 1 hour, 3 significant digits).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// One client thread's latencies, recorded only while measuring.
#[derive(Debug)]
pub struct Recorder {
    /// Produce: from each record's creation (or, at a fixed rate, its intended send
    /// time) to the acknowledgement of its request.
    pub produce: Histogram<u64>,
    /// End to end: from the send time in the value to the consumer's receipt.
    pub e2e: Histogram<u64>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            produce: latency_histogram(),
            e2e: latency_histogram(),
        }
    }
}

impl Recorder {
    /// Records `n` produce latencies of `ns` nanoseconds.
    pub fn produce_ns(&mut self, ns: u64, n: u64) {
        self.produce.saturating_record_n((ns / 1000).max(1), n);
    }

    /// Records one end-to-end latency of `ns` nanoseconds.
    pub fn e2e_ns(&mut self, ns: u64) {
        self.e2e.saturating_record((ns / 1000).max(1));
    }

    /// Adds another thread's histograms.
    pub fn merge(&mut self, other: &Recorder) {
        self.produce.add(&other.produce).expect("same bounds");
        self.e2e.add(&other.e2e).expect("same bounds");
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th.
    pub p90_us: u64,
    /// 99th.
    pub p99_us: u64,
    /// 99.9th.
    pub p999_us: u64,
    /// 99.99th.
    pub p9999_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
}

impl Percentiles {
    /// The percentiles of `h` (all zero when empty).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            p9999_us: h.value_at_quantile(0.9999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

/// CPU seconds (user + system) a process has used, from /proc/PID/stat.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name (which may contain spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / hz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_is_readable_and_grows() {
        let a = process_cpu_seconds(std::process::id()).unwrap();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 50 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let b = process_cpu_seconds(std::process::id()).unwrap();
        assert!(b >= a && x > 0);
    }

    #[test]
    fn percentiles_of_a_known_histogram() {
        let mut r = Recorder::default();
        for i in 1..=1000u64 {
            r.produce_ns(i * 1000, 1);
        }
        let p = Percentiles::of(&r.produce);
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50_us, 500);
        assert_eq!(p.p99_us, 990);
        assert_eq!(p.max_us, 1000);
    }
}
