//! The options shared by `corelog bench produce | consume | e2e`, and the parsing of
//! sizes (`64KiB`, `1MB`), size ranges (`100..2000`) and rates (`200MB/s`, `50000`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::kafka::records::Codec;

/// How producers pick keys (and with them partitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Keys {
    /// No key: each producer fills one partition's batch, then moves to the next
    /// (Kafka's sticky partitioner).
    None,
    /// Keys drawn uniformly from `--key-space`, partitioned by murmur2 like Kafka.
    Uniform,
    /// Keys drawn from a Zipf distribution over `--key-space` (`--zipf-exponent`).
    Zipfian,
}

/// Acknowledgement level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Acks {
    /// No response.
    #[value(name = "0")]
    #[serde(rename = "0")]
    Zero,
    /// The leader appended.
    #[value(name = "1")]
    #[serde(rename = "1")]
    One,
    /// Durable (corelog: fsynced).
    #[value(name = "all")]
    #[serde(rename = "all")]
    All,
}

impl Acks {
    /// The wire value.
    pub fn wire(self) -> i16 {
        match self {
            Acks::Zero => 0,
            Acks::One => 1,
            Acks::All => -1,
        }
    }
}

/// Where consumers start when their group has no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// The log start.
    Earliest,
    /// The log end (only what is produced from now on).
    Latest,
}

/// A size in bytes: a number with an optional unit (`B`, `KB`, `MB`, `GB` are powers of
/// ten; `KiB`, `MiB`, `GiB` powers of two).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let mult = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1048576.0,
        "GiB" => 1073741824.0,
        u => return Err(format!("unknown size unit {u:?} in {s:?}")),
    };
    Ok((n * mult).round() as u64)
}

/// Record value sizes: fixed, or uniform in an inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SizeRange {
    /// Smallest.
    pub min: usize,
    /// Largest.
    pub max: usize,
}

impl SizeRange {
    /// The mean size.
    pub fn mean(&self) -> f64 {
        (self.min + self.max) as f64 / 2.0
    }
}

/// Parses `1024`, `1KiB` or `100..2000`.
pub fn parse_size_range(s: &str) -> Result<SizeRange, String> {
    let (min, max) = match s.split_once("..") {
        Some((a, b)) => (parse_size(a)?, parse_size(b)?),
        None => {
            let n = parse_size(s)?;
            (n, n)
        }
    };
    if min > max || max > 16 << 20 {
        return Err(format!(
            "record size range {s:?} must be min..max with max <= 16 MiB"
        ));
    }
    Ok(SizeRange {
        min: min as usize,
        max: max as usize,
    })
}

/// A target rate: records/s, or payload bytes/s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rate {
    /// Records per second.
    RecordsPerSec(f64),
    /// Payload (key + value) bytes per second.
    BytesPerSec(f64),
}

/// Parses `50000` (records/s) or `200MB/s`, `1GiB/s` (payload bytes/s).
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let r = if let Some(b) = s.strip_suffix("/s") {
        Rate::BytesPerSec(parse_size(b)? as f64)
    } else {
        Rate::RecordsPerSec(
            s.parse::<f64>()
                .map_err(|_| format!("not a rate: {s:?} (records/s, or bytes like 200MB/s)"))?,
        )
    };
    match r {
        Rate::RecordsPerSec(x) | Rate::BytesPerSec(x) if x > 0.0 => Ok(r),
        _ => Err(format!("rate {s:?} must be positive")),
    }
}

/// Options of the Kafka-protocol load generator.
#[derive(Debug, Clone, Args, Serialize)]
pub struct LoadArgs {
    /// host:port of a Kafka-compatible broker. Without it, an embedded corelog broker is
    /// started in a temporary directory (this binary's `serve`) and stopped at the end.
    #[arg(long)]
    pub bootstrap: Option<String>,
    /// Process id of the broker at --bootstrap, to report its CPU time per MB.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Shards of the embedded broker (default: its own, one per allowed CPU).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Data directory of the embedded broker (kept; default: a temporary directory that
    /// is removed at the end).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Extra argument for the embedded broker's `serve` (repeat for several).
    #[arg(long = "broker-arg", allow_hyphen_values = true)]
    pub broker_args: Vec<String>,
    /// Topic (created with --partitions if missing).
    #[arg(long, default_value = "corelog-bench")]
    pub topic: String,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 8)]
    pub partitions: usize,
    /// Value bytes per record: fixed (1024, 1KiB) or a uniform range (100..2000). Values of
    /// 8 bytes or more carry the producer's send time for end-to-end latency.
    #[arg(long, default_value = "1024", value_parser = parse_size_range)]
    pub record_bytes: SizeRange,
    /// Keys.
    #[arg(long, value_enum, default_value_t = Keys::None)]
    pub keys: Keys,
    /// Distinct keys for --keys uniform|zipfian (keys are 8-byte big-endian numbers).
    #[arg(long, default_value_t = 1_000_000)]
    pub key_space: u64,
    /// Exponent of the Zipf distribution for --keys zipfian.
    #[arg(long, default_value_t = 0.99)]
    pub zipf_exponent: f64,
    /// Producers, each on its own connection (default: 1, or 0 for `consume`).
    #[arg(long)]
    pub producers: Option<usize>,
    /// Consumers, each on its own connection; per group with --groups (default: 0 for
    /// `produce`, else 1).
    #[arg(long)]
    pub consumers: Option<usize>,
    /// Consumer groups, each with --consumers members sharing the partitions (range
    /// assignor, offsets committed every second). 0: consumers split the partitions
    /// among themselves by manual assignment.
    #[arg(long, default_value_t = 0)]
    pub groups: usize,
    /// A batch is sent when it reaches this many bytes (0: one record per batch).
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub batch_bytes: u64,
    /// ... or when its first record has waited this long.
    #[arg(long, default_value_t = 0.0)]
    pub linger_ms: f64,
    /// Produce requests each producer may have unanswered.
    #[arg(long, default_value_t = 5)]
    pub in_flight: usize,
    /// Microseconds a connection to a partition leader polls its empty socket before
    /// its executor sleeps (0: never). It trades the client thread's CPU for latency,
    /// so it suits latency runs with few requests in flight (the one-record row).
    #[arg(long, default_value_t = 0)]
    pub busy_poll_us: u64,
    /// Acknowledgements.
    #[arg(long, value_enum, default_value_t = Acks::All)]
    pub acks: Acks,
    /// Batch compression.
    #[arg(long, value_enum, default_value_t = Codec::None)]
    pub compression: Codec,
    /// Fixed total rate, split evenly among producers: records/s (50000) or payload
    /// bytes/s (200MB/s). Latency is measured from each record's intended send time, so
    /// stalls are not hidden (coordinated omission). Without it: as fast as possible.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<Rate>,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Stop measuring once producers have had this much payload acknowledged, or (for
    /// `consume`) consumers have read this much (overrides --duration).
    #[arg(long, value_parser = parse_size)]
    pub total_bytes: Option<u64>,
    /// Seconds of warm-up, excluded from every figure.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Where consumers start when their group has no committed offset (default: latest
    /// for `e2e`, earliest for `consume`).
    #[arg(long, value_enum)]
    pub start_at: Option<StartAt>,
    /// `consume`: first produce this much payload (not measured), then read it.
    #[arg(long, value_parser = parse_size)]
    pub preload: Option<u64>,
    /// `consume` with an embedded broker: restart it between the preload and the read,
    /// so the read is cold (no tail cache).
    #[arg(long)]
    pub restart: bool,
    /// Bytes a fetch may return per partition (Kafka's max.partition.fetch.bytes).
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    pub partition_fetch_bytes: u64,
    /// Bytes a fetch may return in all (Kafka's fetch.max.bytes).
    #[arg(long, default_value = "50MiB", value_parser = parse_size)]
    pub fetch_bytes: u64,
    /// Client executor threads (default: one per allowed CPU, at most one per task).
    #[arg(long)]
    pub client_threads: Option<usize>,
    /// Measure the disk's raw O_DIRECT write bandwidth (in the embedded broker's
    /// directory's parent, or --raw-dir) for half the duration just before the run and
    /// half right after it, and report the ratio to their mean.
    #[arg(long)]
    pub raw_baseline: bool,
    /// Directory for --raw-baseline with --bootstrap (the broker's disk).
    #[arg(long)]
    pub raw_dir: Option<PathBuf>,
    /// Bytes between the raw baseline's fdatasyncs (per file; one file per partition,
    /// 1 MiB writes, 4 in flight each).
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    pub raw_cadence: u64,
    /// Write everything measured to this file as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw latency percentiles and throughput over time to this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_rates_and_ranges_parse() {
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("1XB").is_err());
        assert_eq!(
            parse_size_range("100..2000"),
            Ok(SizeRange {
                min: 100,
                max: 2000
            })
        );
        assert_eq!(
            parse_size_range("1KiB"),
            Ok(SizeRange {
                min: 1024,
                max: 1024
            })
        );
        assert!(parse_size_range("9..3").is_err());
        assert_eq!(parse_rate("200MB/s"), Ok(Rate::BytesPerSec(200e6)));
        assert_eq!(parse_rate("5000"), Ok(Rate::RecordsPerSec(5000.0)));
        assert!(parse_rate("-1").is_err());
    }
}
