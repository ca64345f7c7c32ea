//! The figures of a load run: the progress line, the printed summary, `--json` and
//! `--plot`.
//!
//! Units: MB is 10^6 bytes. Producer MB/s counts payload (key + value) bytes
//! acknowledged; consumer MB/s counts record-batch bytes delivered (what the log holds:
//! payload plus ~61 bytes per batch and a few per record). Latencies are microseconds.

use std::time::Instant;

use serde::Serialize;

use super::args::LoadArgs;
use super::stats::{Counters, Percentiles};
use super::{flows, plot, Measured, Mode, Plan};

/// One producing or consuming flow over the recorded window.
#[derive(Debug, Clone, Serialize)]
pub struct Flow {
    /// Records per second.
    pub records_s: f64,
    /// MB/s (payload for producers, batch bytes for consumers).
    pub mb_s: f64,
    /// Record-batch MB/s.
    pub batch_mb_s: f64,
    /// Produce requests answered per second.
    pub requests_s: f64,
    /// Produce acknowledgement latency.
    pub latency: Option<Percentiles>,
}

/// Throughput over one sampling interval.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Seconds since the load started (end of the interval).
    pub t: f64,
    /// Produced payload MB/s.
    pub produce_mb_s: f64,
    /// Produced records/s.
    pub produce_records_s: f64,
    /// Consumed batch MB/s.
    pub consume_mb_s: f64,
    /// Consumed records/s.
    pub consume_records_s: f64,
    /// Part of the warm-up.
    pub warmup: bool,
}

impl Sample {
    /// The rates between two counter snapshots.
    pub fn between(
        start: Instant,
        a: &(Instant, Counters),
        b: (Instant, Counters),
        warmup: bool,
    ) -> Sample {
        let s = b.0.duration_since(a.0).as_secs_f64().max(1e-9);
        let d = b.1.since(&a.1);
        Sample {
            t: b.0.duration_since(start).as_secs_f64(),
            produce_mb_s: d.acked_bytes as f64 / s / 1e6,
            produce_records_s: d.acked_records as f64 / s,
            consume_mb_s: d.consumed_bytes as f64 / s / 1e6,
            consume_records_s: d.consumed_records as f64 / s,
            warmup,
        }
    }
}

/// Prints the live progress line.
pub fn progress(s: &Sample, elapsed: f64) {
    eprintln!(
        "[{elapsed:6.1}s{}] produce {:>11.0} rec/s {:>8.1} MB/s | consume {:>11.0} rec/s {:>8.1} MB/s",
        if s.warmup { " warm-up" } else { "        " },
        s.produce_records_s,
        s.produce_mb_s,
        s.consume_records_s,
        s.consume_mb_s
    );
}

/// Everything a run measured (`--json` writes this).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// produce, consume or e2e.
    pub mode: &'static str,
    /// The headline MB/s: produced payload (produce, e2e) or consumed batches (consume).
    pub mb_s: f64,
    /// The headline records/s, of the same flow.
    pub records_s: f64,
    /// Producers' figures.
    pub produce: Option<Flow>,
    /// Consumers' figures.
    pub consume: Option<Flow>,
    /// End-to-end latency (e2e).
    pub e2e_latency: Option<Percentiles>,
    /// Seconds recorded.
    pub seconds: f64,
    /// Seconds of warm-up as run (the window opens at the first sample after `--warmup`).
    pub warmup_seconds: f64,
    /// CPU seconds the bench client used while recording.
    pub client_cpu_s: Option<f64>,
    /// CPU seconds the broker used while recording (embedded, or --broker-pid).
    pub broker_cpu_s: Option<f64>,
    /// Broker CPU seconds per MB of the headline flow.
    pub broker_cpu_s_per_mb: Option<f64>,
    /// Client CPU over client + broker CPU.
    pub client_cpu_share: Option<f64>,
    /// Raw O_DIRECT write MB/s (--raw-baseline): the mean of the two phases below.
    pub raw_mb_s: Option<f64>,
    /// Raw MB/s just before the run and right after it, each for half its length.
    pub raw_mb_s_before_after: Option<[f64; 2]>,
    /// Produced batch MB/s over raw MB/s.
    pub ratio_to_raw: Option<f64>,
    /// CPUs this process may use.
    pub cpus: usize,
    /// Client executor threads.
    pub client_threads: usize,
    /// The broker was embedded (else --bootstrap).
    pub embedded_broker: bool,
    /// Payload bytes produced before the run by --preload.
    pub preloaded_bytes: Option<u64>,
    /// Throughput every interval, warm-up included.
    pub series: Vec<Sample>,
    /// The options.
    pub settings: LoadArgs,
    #[serde(skip)]
    latency_plot: Vec<(String, Vec<(f64, f64)>)>,
}

impl Report {
    /// Builds the report of a measured phase.
    pub fn new(
        mode: Mode,
        p: &Plan,
        m: &Measured,
        threads: usize,
        embedded: bool,
        preloaded: Option<u64>,
    ) -> Report {
        let (produce, consume) = flows(p, m);
        let head = match mode {
            Mode::Consume => consume.clone(),
            _ => produce.clone(),
        }
        .expect("the headline flow ran");
        let e2e = (mode == Mode::E2e).then(|| Percentiles::of(&m.recorder.e2e));
        let total_mb = head.mb_s * m.seconds;
        let mut latency_plot = Vec::new();
        if p.producers > 0 {
            latency_plot.push((
                "produce ack".to_string(),
                plot::percentile_curve(&m.recorder.produce),
            ));
        }
        if mode == Mode::E2e {
            latency_plot.push((
                "end to end".to_string(),
                plot::percentile_curve(&m.recorder.e2e),
            ));
        }
        Report {
            mode: match mode {
                Mode::Produce => "produce",
                Mode::Consume => "consume",
                Mode::E2e => "e2e",
            },
            mb_s: head.mb_s,
            records_s: head.records_s,
            produce,
            consume,
            e2e_latency: e2e,
            seconds: m.seconds,
            warmup_seconds: m.warmup_seconds,
            client_cpu_s: m.client_cpu,
            broker_cpu_s: m.broker_cpu,
            broker_cpu_s_per_mb: m
                .broker_cpu
                .filter(|_| total_mb > 0.0)
                .map(|c| c / total_mb),
            client_cpu_share: m
                .client_cpu
                .zip(m.broker_cpu)
                .map(|(c, b)| c / (c + b).max(1e-9)),
            raw_mb_s: None,
            raw_mb_s_before_after: None,
            ratio_to_raw: None,
            cpus: core_affinity::get_core_ids().map_or(1, |c| c.len()),
            client_threads: threads,
            embedded_broker: embedded,
            preloaded_bytes: preloaded,
            series: m.series.clone(),
            settings: p.args.clone(),
            latency_plot,
        }
    }

    /// The human-readable summary.
    pub fn print(&self) {
        let lat = |p: &Percentiles| {
            format!(
                "p50 {} p90 {} p99 {} p99.9 {} p99.99 {} max {} us ({} samples)",
                p.p50_us, p.p90_us, p.p99_us, p.p999_us, p.p9999_us, p.max_us, p.count
            )
        };
        println!(
            "corelog bench {} ({:.1} s measured, {} client threads, {} CPUs)",
            self.mode, self.seconds, self.client_threads, self.cpus
        );
        if let Some(f) = &self.produce {
            println!(
                "  produce: {:.0} records/s, {:.1} MB/s payload ({:.1} MB/s batches), {:.0} requests/s",
                f.records_s, f.mb_s, f.batch_mb_s, f.requests_s
            );
            if let Some(l) = &f.latency {
                println!("  produce ack latency: {}", lat(l));
            }
        }
        if let (Some(raw), Some(ratio)) = (self.raw_mb_s, self.ratio_to_raw) {
            let [before, after] = self.raw_mb_s_before_after.unwrap_or([raw, raw]);
            println!(
                "  raw O_DIRECT baseline: {raw:.1} MB/s ({before:.1} just before, {after:.1} right after; {} MiB per fdatasync per file); produced batches / raw = {ratio:.3}",
                self.settings.raw_cadence >> 20
            );
        }
        if let Some(f) = &self.consume {
            println!(
                "  consume: {:.0} records/s, {:.1} MB/s (batch bytes)",
                f.records_s, f.mb_s
            );
        }
        if let Some(l) = &self.e2e_latency {
            println!("  end-to-end latency: {}", lat(l));
        }
        if let (Some(c), Some(b)) = (self.client_cpu_s, self.broker_cpu_s) {
            println!(
                "  CPU: broker {:.2} s ({:.4} s per MB), client {:.2} s ({:.0}% of client + broker; {:.0}% of the machine)",
                b,
                self.broker_cpu_s_per_mb.unwrap_or(0.0),
                c,
                100.0 * self.client_cpu_share.unwrap_or(0.0),
                100.0 * c / (self.seconds * self.cpus as f64)
            );
        } else if let Some(c) = self.client_cpu_s {
            println!(
                "  CPU: client {:.2} s ({:.0}% of the machine); pass --broker-pid for the broker's",
                c,
                100.0 * c / (self.seconds * self.cpus as f64)
            );
        }
    }

    /// Writes `--json` and `--plot` if asked for.
    pub fn write_files(&self) -> Result<(), String> {
        if let Some(path) = &self.settings.json {
            let s = serde_json::to_string_pretty(self).map_err(|e| format!("JSON: {e}"))?;
            std::fs::write(path, s + "\n")
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        if let Some(path) = &self.settings.plot {
            if path.extension().and_then(|e| e.to_str()) != Some("svg") {
                return Err(format!(
                    "--plot {}: only SVG is drawn (name the file .svg)",
                    path.display()
                ));
            }
            let colors = ["#1f77b4", "#d62728"];
            let lat: Vec<plot::Series> = self
                .latency_plot
                .iter()
                .zip(colors)
                .map(|((n, pts), c)| plot::Series {
                    name: n,
                    color: c,
                    points: pts.clone(),
                })
                .collect();
            let mut thr = Vec::new();
            if self.produce.is_some() {
                thr.push(plot::Series {
                    name: "produced MB/s",
                    color: colors[0],
                    points: self.series.iter().map(|s| (s.t, s.produce_mb_s)).collect(),
                });
            }
            if self.consume.is_some() {
                thr.push(plot::Series {
                    name: "consumed MB/s",
                    color: colors[1],
                    points: self.series.iter().map(|s| (s.t, s.consume_mb_s)).collect(),
                });
            }
            let warm_end = self
                .series
                .iter()
                .filter(|s| s.warmup)
                .map(|s| s.t)
                .fold(0.0, f64::max);
            let title = format!(
                "corelog bench {}: {:.0} records/s, {:.1} MB/s over {:.1} s",
                self.mode, self.records_s, self.mb_s, self.seconds
            );
            let svg = plot::render(&title, &lat, &thr, (0.0, warm_end));
            std::fs::write(path, svg).map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        Ok(())
    }
}
