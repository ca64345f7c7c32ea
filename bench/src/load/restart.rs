//! `corelog bench restart`: how soon a broker holding data serves again, and how fast
//! its first fetches read.
//!
//! With the embedded broker: preload `--preload` bytes into `--partitions` partitions,
//! stop the broker (SIGTERM, or SIGKILL with `--kill` so recovery has to validate the
//! active segments), start it again and time (a) until it answers ApiVersions and (b)
//! until Metadata shows a leader for every partition; then `--consumers` read everything
//! from the start, and the read speed of the first `--first-bytes` is compared with the
//! speed of the rest of the same read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use super::args::{parse_size, LoadArgs, StartAt};
use super::broker::EmbeddedBroker;
use super::report::Sample;
use super::{end_offsets, plan, preload, prepare_topic, run_phase, wait_serving, Mode, Schedule};

/// Options of `corelog bench restart`.
#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Stop the broker with SIGKILL instead of SIGTERM.
    #[arg(long)]
    pub kill: bool,
    /// The read speed of this many first bytes is reported apart.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub first_bytes: u64,
}

/// What `corelog bench restart` measured.
#[derive(Debug, Clone, Serialize)]
pub struct RestartReport {
    /// Payload bytes held by the broker when it was stopped.
    pub data_bytes: u64,
    /// Partitions holding them.
    pub partitions: usize,
    /// Stopped with SIGKILL.
    pub killed: bool,
    /// Milliseconds from starting the process to its first ApiVersions answer.
    pub serving_ms: f64,
    /// Milliseconds from starting the process until Metadata lists a leader for every
    /// partition.
    pub metadata_ms: f64,
    /// MB/s (batch bytes) of the first `first_bytes` read after the restart.
    pub first_mb_s: f64,
    /// MB/s of the rest of the read.
    pub rest_mb_s: f64,
    /// MB/s of the whole read.
    pub mb_s: f64,
    /// Records/s of the whole read.
    pub records_s: f64,
    /// The `--first-bytes` setting.
    pub first_bytes: u64,
    /// Read speed over the read, sampled every 100 ms: where the first bytes' time went.
    pub series: Vec<Sample>,
}

/// Runs `corelog bench restart`.
pub fn run(args: RestartArgs) -> Result<RestartReport, String> {
    let mut a = args.load.clone();
    if a.bootstrap.is_some() {
        return Err("bench restart starts and restarts its own broker: drop --bootstrap".into());
    }
    let bytes = a.preload.unwrap_or(1 << 30);
    a.start_at = Some(StartAt::Earliest);
    let mut broker = EmbeddedBroker::start(a.shards, a.data_dir.as_deref(), &a.broker_args)?;
    wait_serving(broker.addr(), Duration::from_secs(60))?;
    let addr = broker.addr().to_string();
    let (partitions, leaders) = prepare_topic(&addr, &a.topic, a.partitions)?;
    let producers = a.producers.filter(|p| *p > 0).unwrap_or(4);
    let loaded = preload(&a, &addr, &partitions, &leaders, bytes, producers, !a.quiet)?;
    broker.stop(args.kill)?;
    let t = Instant::now();
    broker.restart(false)?;
    let serving = wait_serving(&addr, Duration::from_secs(600))?;
    let (partitions, leaders) = prepare_topic(&addr, &a.topic, a.partitions)?;
    let metadata = t.elapsed();
    a.producers = Some(0);
    let mut p = plan(Mode::Consume, &a, &addr, partitions.clone(), leaders)?;
    p.catch_up = Some(end_offsets(&addr, &a.topic, &partitions)?);
    let consumers = p.consumers;
    let schedule = Schedule {
        warmup: 0.0,
        duration: f64::INFINITY,
        acked_bytes: None,
        consumed_bytes: None,
        mark_consumed: Some(args.first_bytes),
        progress: !a.quiet,
    };
    let m = run_phase(Arc::new(p), schedule, broker.pid(), consumers)?;
    broker.stop(false)?;
    let total = m.counters.consumed_bytes as f64;
    let first_s = m.marked_at.unwrap_or(m.seconds);
    let first = (args.first_bytes as f64).min(total);
    Ok(RestartReport {
        data_bytes: loaded.counters.acked_bytes,
        partitions: partitions.len(),
        killed: args.kill,
        serving_ms: serving.as_secs_f64() * 1e3,
        metadata_ms: metadata.as_secs_f64() * 1e3,
        first_mb_s: first / first_s.max(1e-9) / 1e6,
        rest_mb_s: (total - first) / (m.seconds - first_s).max(1e-9) / 1e6,
        mb_s: total / m.seconds / 1e6,
        records_s: m.counters.consumed_records as f64 / m.seconds,
        first_bytes: args.first_bytes,
        series: m.series,
    })
}

impl RestartReport {
    /// The human-readable summary.
    pub fn print(&self) {
        println!(
            "corelog bench restart: {:.2} GB in {} partitions, stopped with {}",
            self.data_bytes as f64 / 1e9,
            self.partitions,
            if self.killed { "SIGKILL" } else { "SIGTERM" }
        );
        println!("  serving (ApiVersions answered) {:.0} ms after start; every partition led {:.0} ms after start", self.serving_ms, self.metadata_ms);
        println!(
            "  read after restart: first {:.2} GB at {:.0} MB/s, the rest at {:.0} MB/s ({:.0} MB/s, {:.0} records/s overall)",
            self.first_bytes as f64 / 1e9,
            self.first_mb_s,
            self.rest_mb_s,
            self.mb_s,
            self.records_s
        );
    }
}
