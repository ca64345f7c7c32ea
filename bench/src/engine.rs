//! `corelog bench engine`: the storage engine alone, against the raw disk.
//!
//! Appends to `--partitions` logs on one pinned core, each log fed by `--inflight` tasks
//! that append a batch and (with `--flush every`) wait for the flush that covers it, as
//! acks=all producers would. In the same process, on the same executor and directory, a
//! raw baseline writes the same number of files with sequential, aligned O_DIRECT writes
//! (of the engine's chunk size, or of the fdatasync cadence if that is smaller; as many in
//! flight as the engine's write depth) and an fdatasync after as many bytes as the engine
//! averaged per fdatasync. Engine and raw phases alternate (`--rounds`) so the disk's
//! drift affects both. `ratio` is engine MB/s over raw MB/s: how much of what the disk
//! gives under that cadence the engine delivers.
//!
//! Batches arrive as fresh buffers made on another core (a generator executor copies a
//! prebuilt batch and hands it over through a glommio shared channel), as a network layer
//! would hand over request buffers: the measured core does only engine work (validation,
//! offset assignment, the copy into DMA buffers, writes, fdatasync, indexes, cache). With
//! a single allowed CPU the generator shares the core, and the report says so.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::{Args, ValueEnum};
use corelog_engine::batch_builder::BatchBuilder;
use corelog_engine::{AppendOptions, LogConfig, PartitionLog, TailCache};
use glommio::channels::shared_channel::{self, ConnectedReceiver};
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::load::stats::Percentiles;

const SEGMENT_BYTES_DEFAULT: u64 = 256 << 20;
/// Batches the generator may have made ahead of the engine.
const GENERATOR_QUEUE_BATCHES: usize = 64;

/// When appenders flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlushPolicy {
    /// Each append waits for the flush that covers it (acks=all).
    Every,
    /// No flush while appending (acks=1 with write-back only); one at the end.
    None,
}

/// Options of `corelog bench engine`.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Value bytes per record.
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: usize,
    /// Bytes per batch (records are added while the batch stays within this).
    #[arg(long, default_value_t = 1 << 20)]
    pub batch_bytes: usize,
    /// Partition logs appended to concurrently.
    #[arg(long, default_value_t = 1)]
    pub partitions: usize,
    /// Appending tasks per partition (like a producer's requests in flight).
    #[arg(long, default_value_t = 4)]
    pub inflight: usize,
    /// Seconds of engine measurement in all (after the warm-up); the raw baseline gets as
    /// long again.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// The run alternates engine and raw phases this many times, so that drift in the
    /// disk's speed (large on shared virtual disks) hits both alike.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Flush policy.
    #[arg(long, value_enum, default_value_t = FlushPolicy::Every)]
    pub flush: FlushPolicy,
    /// Bytes of one direct-I/O write buffer.
    #[arg(long, default_value_t = 1 << 20)]
    pub write_chunk_bytes: usize,
    /// Writes each log (and each raw baseline file) keeps in flight.
    #[arg(long, default_value_t = 4)]
    pub write_depth: usize,
    /// Segment size (the raw baseline uses files of the same size).
    #[arg(long, default_value_t = SEGMENT_BYTES_DEFAULT)]
    pub segment_bytes: u64,
    /// Directory for the data (a temporary directory under it is used and removed).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// CPU to pin the engine's executor to (default: the first in the process affinity
    /// mask).
    #[arg(long)]
    pub cpu: Option<usize>,
    /// CPU for the batch generator (default: the next allowed CPU, or the engine's CPU
    /// when only one is allowed).
    #[arg(long)]
    pub generator_cpu: Option<usize>,
    /// glommio preempt timer in microseconds (how long the executor runs tasks before it
    /// polls io_uring again); glommio's default is 100 ms.
    #[arg(long, default_value_t = 100_000)]
    pub preempt_us: u64,
    /// Skip the raw-disk baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Results of one run.
#[derive(Debug, Clone, Serialize)]
pub struct EngineReport {
    /// Engine throughput, MB/s (10^6 bytes).
    pub mb_s: f64,
    /// Records appended per second.
    pub records_s: f64,
    /// Batches appended per second.
    pub batches_s: f64,
    /// Raw-disk baseline throughput, MB/s (0 when skipped).
    pub raw_mb_s: f64,
    /// `mb_s / raw_mb_s` over all rounds (0 when the baseline was skipped).
    pub ratio: f64,
    /// The ratio of each round (engine phase over the raw phase right after it).
    pub round_ratios: Vec<f64>,
    /// Append-to-durable latency of each batch (append-to-appended with `--flush none`).
    pub latency: Percentiles,
    /// Raw baseline: latency of each write.
    pub raw_latency: Option<Percentiles>,
    /// Raw baseline: bytes per write (the cadence split into as many equal aligned writes
    /// as the engine needs write chunks for it).
    pub raw_write_bytes: usize,
    /// fdatasync calls made by the engine while measuring.
    pub fsyncs: u64,
    /// Average bytes made durable per fdatasync by the engine (the baseline's cadence).
    pub bytes_per_fsync: u64,
    /// Records per batch.
    pub records_per_batch: usize,
    /// Bytes per batch as built.
    pub batch_bytes: usize,
    /// Seconds measured.
    pub seconds: f64,
    /// CPU seconds the engine's executor thread used per second measured (user + system).
    pub cpu_per_s: f64,
    /// The settings used.
    pub settings: Settings,
}

/// The settings, echoed into the report.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// `--record-bytes`.
    pub record_bytes: usize,
    /// `--batch-bytes`.
    pub batch_bytes: usize,
    /// `--partitions`.
    pub partitions: usize,
    /// `--inflight`.
    pub inflight: usize,
    /// `--flush`.
    pub flush: FlushPolicy,
    /// `--write-chunk-bytes`.
    pub write_chunk_bytes: usize,
    /// `--write-depth`.
    pub write_depth: usize,
    /// `--rounds`.
    pub rounds: usize,
    /// The CPU the engine's executor ran on.
    pub cpu: usize,
    /// The CPU the batch generator ran on (the same as `cpu` means it shared the core).
    pub generator_cpu: usize,
}

/// Builds the batch every append copies: as many records of `record_bytes` as fit.
pub fn template_batch(record_bytes: usize, batch_bytes: usize) -> (Vec<u8>, usize) {
    let value: Vec<u8> = (0..record_bytes).map(|i| (i * 131 % 251) as u8).collect();
    let mut b = BatchBuilder::new(1_700_000_000_000);
    loop {
        let mut next = b.clone();
        next.push(None, Some(&value), &[]);
        if next.encoded_len() > batch_bytes && !b.is_empty() {
            break;
        }
        b = next;
        if b.encoded_len() >= batch_bytes {
            break;
        }
    }
    let n = b.len();
    (b.build(), n)
}

fn cpu_seconds() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// CPUs of the process affinity mask (glommio's own CPU list ignores it).
pub fn core_ids() -> Vec<usize> {
    core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_else(|| vec![0])
}

/// Runs the benchmark and returns the report (also printed, and written as JSON if asked).
pub fn run(args: EngineArgs) -> Result<EngineReport, String> {
    if args.partitions == 0 || args.inflight == 0 {
        return Err("--partitions and --inflight must be at least 1".into());
    }
    if args.duration <= 0.0 {
        return Err("--duration must be positive".into());
    }
    let allowed = core_ids();
    let cpu = args
        .cpu
        .unwrap_or_else(|| allowed.first().copied().unwrap_or(0));
    let generator_cpu = args
        .generator_cpu
        .unwrap_or_else(|| allowed.iter().copied().find(|&c| c != cpu).unwrap_or(cpu));
    let base = tempfile::Builder::new()
        .prefix("corelog-bench-engine-")
        .tempdir_in(&args.dir)
        .map_err(|e| format!("cannot create a directory in {}: {e}", args.dir.display()))?;
    let data_dir = base.path().to_path_buf();
    let (template, records_per_batch) = template_batch(args.record_bytes, args.batch_bytes);
    let (tx, rx) = shared_channel::new_bounded::<BytesMut>(GENERATOR_QUEUE_BATCHES);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_generator = stop.clone();
    let generator = LocalExecutorBuilder::new(Placement::Fixed(generator_cpu))
        .name("bench-generator")
        .spawn(move || async move {
            let tx = tx.connect().await;
            // Until told to stop; the engine side drains the channel so a blocked send
            // always completes, then sees the channel close when `tx` is dropped here.
            while !stop_generator.load(Ordering::Relaxed) {
                if tx.send(BytesMut::from(&template[..])).await.is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("cannot start the generator on CPU {generator_cpu}: {e}"))?;
    let a = args.clone();
    let report = LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .io_memory(4 << 20)
        .preempt_timer(Duration::from_micros(args.preempt_us))
        .name("bench-engine")
        .spawn(move || async move {
            let rx = Rc::new(rx.connect().await);
            let result = run_on_executor(
                a,
                data_dir,
                cpu,
                generator_cpu,
                rx.clone(),
                records_per_batch,
            )
            .await;
            stop.store(true, Ordering::Relaxed);
            while rx.recv().await.is_some() {}
            result
        })
        .map_err(|e| format!("cannot start the executor on CPU {cpu}: {e}"))?
        .join()
        .map_err(|e| format!("executor failed: {e}"));
    let report = report??;
    generator
        .join()
        .map_err(|e| format!("generator failed: {e}"))?;
    print_report(&report);
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).expect("report serialises");
        std::fs::write(path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(report)
}

async fn run_on_executor(
    args: EngineArgs,
    dir: PathBuf,
    cpu: usize,
    generator_cpu: usize,
    batches_in: Rc<ConnectedReceiver<BytesMut>>,
    records_per_batch: usize,
) -> Result<EngineReport, String> {
    let template = template_batch(args.record_bytes, args.batch_bytes).0;
    let config = LogConfig {
        segment_bytes: args.segment_bytes,
        write_chunk_bytes: args.write_chunk_bytes,
        write_chunks_inflight_max: (template.len().div_ceil(args.write_chunk_bytes) + 2)
            .max(args.write_depth)
            .max(4),
        write_depth: args.write_depth,
        max_batch_bytes: template.len().max(1_048_588),
        retention_age: None,
        ..LogConfig::default()
    };
    config.validate().map_err(|e| e.to_string())?;
    let cache = Rc::new(RefCell::new(TailCache::new(64 << 20)));
    let mut logs = Vec::new();
    for p in 0..args.partitions {
        let log = PartitionLog::open(
            dir.join(format!("engine-{p}")),
            config.clone(),
            cache.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        logs.push(Rc::new(log));
    }

    let rounds = args.rounds.max(1);
    let phase = Duration::from_secs_f64(args.duration / rounds as f64);
    // Raw phases skip their first fifth (at most 250 ms) as warm-up.
    let raw_warmup = (phase / 5).min(Duration::from_millis(250));
    let hist = Rc::new(RefCell::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap(),
    ));
    let mut engine_total = Phase::default();
    let (mut raw_bytes, mut raw_secs) = (0u64, 0f64);
    let mut raw_hist: Option<Histogram<u64>> = None;
    let mut round_ratios = Vec::new();
    let mut raw_write_bytes = 0;
    for round in 0..rounds {
        let warmup = if round == 0 {
            Duration::from_secs_f64(args.warmup)
        } else {
            Duration::ZERO
        };
        let e = engine_phase(&logs, &batches_in, &args, warmup, phase, &hist).await?;
        engine_total.add(&e);
        if args.no_baseline {
            continue;
        }
        let cadence = if args.flush == FlushPolicy::Every {
            e.bytes_per_fsync().max(4096)
        } else {
            u64::MAX
        };
        // Each raw cycle writes the cadence in as many equal aligned writes as the engine
        // needs chunks for it, then syncs: same bytes per fdatasync, same write count.
        let (raw_write, writes_per_sync) = if cadence == u64::MAX {
            (
                args.write_chunk_bytes,
                u64::MAX / args.write_chunk_bytes as u64,
            )
        } else {
            let n = cadence.div_ceil(args.write_chunk_bytes as u64).max(1);
            ((cadence / n).next_multiple_of(4096) as usize, n)
        };
        raw_write_bytes = raw_write;
        let params = RawParams {
            files: args.partitions,
            chunk: raw_write,
            depth: args.write_depth,
            file_bytes: args.segment_bytes,
            cadence: raw_write as u64 * writes_per_sync,
            warmup: raw_warmup,
            measure: phase,
        };
        let (bytes, secs, lat) = raw_baseline(&dir, params).await?;
        raw_bytes += bytes;
        raw_secs += secs;
        round_ratios.push(e.mb_s() / (bytes as f64 / secs / 1e6));
        match &mut raw_hist {
            Some(h) => h.add(&lat).expect("same bounds"),
            None => raw_hist = Some(lat),
        }
    }
    for log in &logs {
        log.flush().await.map_err(|e| e.to_string())?;
    }
    drop(logs);
    let _ = std::fs::remove_dir_all(&dir);

    let secs = engine_total.secs;
    let mb_s = engine_total.mb_s();
    let raw_mb_s = if raw_secs > 0.0 {
        raw_bytes as f64 / raw_secs / 1e6
    } else {
        0.0
    };
    let h = hist.borrow();
    Ok(EngineReport {
        mb_s,
        records_s: (engine_total.batches * records_per_batch as u64) as f64 / secs,
        batches_s: engine_total.batches as f64 / secs,
        raw_mb_s,
        ratio: if raw_mb_s > 0.0 { mb_s / raw_mb_s } else { 0.0 },
        round_ratios,
        latency: Percentiles::of(&h),
        raw_latency: raw_hist.as_ref().map(Percentiles::of),
        raw_write_bytes,
        fsyncs: engine_total.fsyncs,
        bytes_per_fsync: engine_total.bytes_per_fsync(),
        records_per_batch,
        batch_bytes: template.len(),
        seconds: secs,
        cpu_per_s: engine_total.cpu_secs / secs,
        settings: Settings {
            record_bytes: args.record_bytes,
            batch_bytes: args.batch_bytes,
            partitions: args.partitions,
            inflight: args.inflight,
            flush: args.flush,
            write_chunk_bytes: args.write_chunk_bytes,
            write_depth: args.write_depth,
            rounds,
            cpu,
            generator_cpu,
        },
    })
}

/// What one engine phase measured.
#[derive(Debug, Default, Clone, Copy)]
struct Phase {
    batches: u64,
    bytes: u64,
    fsyncs: u64,
    cpu_secs: f64,
    secs: f64,
}

impl Phase {
    fn add(&mut self, o: &Phase) {
        self.batches += o.batches;
        self.bytes += o.bytes;
        self.fsyncs += o.fsyncs;
        self.cpu_secs += o.cpu_secs;
        self.secs += o.secs;
    }
    fn mb_s(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }
    fn bytes_per_fsync(&self) -> u64 {
        self.bytes / self.fsyncs.max(1)
    }
}

/// Appends for `warmup + measure`, counting what completes inside the measured window.
async fn engine_phase(
    logs: &[Rc<PartitionLog>],
    batches_in: &Rc<ConnectedReceiver<BytesMut>>,
    args: &EngineArgs,
    warmup: Duration,
    measure: Duration,
    hist: &Rc<RefCell<Histogram<u64>>>,
) -> Result<Phase, String> {
    let measure_from = Instant::now() + warmup;
    let stop_at = measure_from + measure;
    let counted = Rc::new(RefCell::new((0u64, 0u64))); // (batches, bytes) while measuring
    let mut tasks = Vec::new();
    for log in logs {
        for _ in 0..args.inflight {
            let (log, hist, counted, batches_in) = (
                log.clone(),
                hist.clone(),
                counted.clone(),
                batches_in.clone(),
            );
            let flush = args.flush;
            tasks.push(glommio::spawn_local(async move {
                loop {
                    if Instant::now() >= stop_at {
                        return Ok::<(), String>(());
                    }
                    let Some(batch) = batches_in.recv().await else {
                        return Err("the batch generator stopped".to_string());
                    };
                    let now = Instant::now();
                    let len = batch.len() as u64;
                    log.append(batch, AppendOptions::default())
                        .await
                        .map_err(|e| e.to_string())?;
                    if flush == FlushPolicy::Every {
                        log.flush().await.map_err(|e| e.to_string())?;
                    }
                    let done = Instant::now();
                    if now >= measure_from && done <= stop_at {
                        let us = (done - now).as_micros().max(1) as u64;
                        hist.borrow_mut().saturating_record(us);
                        let mut c = counted.borrow_mut();
                        c.0 += 1;
                        c.1 += len;
                    }
                }
            }));
        }
    }
    let fsyncs_at = || logs.iter().map(|l| l.stats().fsyncs).sum::<u64>();
    glommio::timer::sleep(warmup).await;
    let fsyncs_before = fsyncs_at();
    let cpu_before = cpu_seconds();
    glommio::timer::sleep(stop_at.saturating_duration_since(Instant::now())).await;
    let fsyncs = fsyncs_at() - fsyncs_before;
    let cpu_secs = cpu_seconds() - cpu_before;
    for t in tasks {
        t.await?;
    }
    let (batches, bytes) = *counted.borrow();
    Ok(Phase {
        batches,
        bytes,
        fsyncs,
        cpu_secs,
        secs: measure.as_secs_f64(),
    })
}

/// What the raw baseline does.
#[derive(Debug, Clone, Copy)]
struct RawParams {
    /// Files written at once (one per engine partition).
    files: usize,
    /// Bytes per write.
    chunk: usize,
    /// Writes in flight per file.
    depth: usize,
    /// Size of each preallocated file before moving to a new one.
    file_bytes: u64,
    /// Bytes between fdatasyncs.
    cadence: u64,
    warmup: Duration,
    measure: Duration,
}

/// Sequential aligned O_DIRECT writes of `chunk` bytes to `files` preallocated files at
/// once, each with an fdatasync after every `cadence` bytes. Returns bytes written in the
/// measured window, its length in seconds and the per-write latencies.
async fn raw_baseline(dir: &Path, p: RawParams) -> Result<(u64, f64, Histogram<u64>), String> {
    let RawParams {
        files,
        chunk,
        depth,
        file_bytes,
        cadence,
        warmup,
        measure,
    } = p;
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop_at = measure_from + measure;
    let hist = Rc::new(RefCell::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap(),
    ));
    let mut tasks = Vec::new();
    for f in 0..files {
        let path = dir.join(format!("raw-{f}.dat"));
        let hist = hist.clone();
        tasks.push(glommio::spawn_local(async move {
            // Files of the engine's segment size, preallocated and replaced when full, as
            // the engine rolls segments.
            let open = |k: u32| {
                let path = path.with_extension(format!("{k}"));
                async move {
                    let file = glommio::io::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .dma_open(&path)
                        .await
                        .map_err(|e| format!("open {}: {e}", path.display()))?;
                    file.pre_allocate(file_bytes, false)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok::<_, String>((Rc::new(file), path))
                }
            };
            let mut k = 0;
            let (mut file, mut file_path) = open(k).await?;
            let mut buf = file.alloc_dma_buffer(chunk);
            buf.as_bytes_mut().fill(0x5a);
            let buf = Rc::new(buf);
            let (mut pos, mut since_sync, mut measured) = (0u64, 0u64, 0u64);
            let mut inflight: VecDeque<(glommio::Task<Result<(), String>>, Instant)> =
                VecDeque::new();
            // Waits for the oldest write and counts it if it lies in the measured window.
            let finish_oldest =
                |inflight: &mut VecDeque<(glommio::Task<Result<(), String>>, Instant)>| {
                    let (task, began) = inflight.pop_front().expect("a write in flight");
                    let hist = hist.clone();
                    async move {
                        task.await?;
                        let done = Instant::now();
                        let counted = began >= measure_from && done <= stop_at;
                        if counted {
                            hist.borrow_mut()
                                .saturating_record((done - began).as_micros().max(1) as u64);
                        }
                        Ok::<bool, String>(counted)
                    }
                };
            loop {
                if Instant::now() >= stop_at {
                    break;
                }
                if pos + chunk as u64 > file_bytes {
                    while !inflight.is_empty() {
                        measured += chunk as u64 * u64::from(finish_oldest(&mut inflight).await?);
                    }
                    file.fdatasync().await.map_err(|e| e.to_string())?;
                    file.close_rc().await.map_err(|e| e.to_string())?;
                    let _ = std::fs::remove_file(&file_path);
                    k += 1;
                    (file, file_path) = open(k).await?;
                    pos = 0;
                }
                let f = file.clone();
                let b = buf.clone();
                let at = pos;
                inflight.push_back((
                    glommio::spawn_local(async move {
                        f.write_rc_at(b, at)
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    }),
                    Instant::now(),
                ));
                while inflight.len() >= depth {
                    measured += chunk as u64 * u64::from(finish_oldest(&mut inflight).await?);
                }
                pos += chunk as u64;
                since_sync += chunk as u64;
                if since_sync >= cadence {
                    while !inflight.is_empty() {
                        measured += chunk as u64 * u64::from(finish_oldest(&mut inflight).await?);
                    }
                    file.fdatasync().await.map_err(|e| e.to_string())?;
                    since_sync = 0;
                }
            }
            while !inflight.is_empty() {
                measured += chunk as u64 * u64::from(finish_oldest(&mut inflight).await?);
            }
            file.close_rc().await.map_err(|e| e.to_string())?;
            let _ = std::fs::remove_file(&file_path);
            Ok::<u64, String>(measured)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await?;
    }
    let hist = Rc::try_unwrap(hist)
        .expect("raw tasks finished")
        .into_inner();
    Ok((total, measure.as_secs_f64(), hist))
}

/// The raw baseline alone, for the broker benchmarks: MB/s of sequential aligned
/// O_DIRECT writes of `chunk` bytes to `files` files at once (`depth` in flight each, an
/// fdatasync every `cadence` bytes) for `seconds` after a one-second warm-up, in a
/// temporary directory under `dir`.
pub fn raw_disk_mb_s(
    dir: &Path,
    files: usize,
    chunk: usize,
    depth: usize,
    cadence: u64,
    seconds: f64,
) -> Result<f64, String> {
    let tmp = tempfile::Builder::new()
        .prefix("corelog-raw-")
        .tempdir_in(dir)
        .map_err(|e| format!("temporary directory in {}: {e}", dir.display()))?;
    let path = tmp.path().to_path_buf();
    let p = RawParams {
        files: files.max(1),
        chunk,
        depth: depth.max(1),
        file_bytes: SEGMENT_BYTES_DEFAULT,
        cadence,
        warmup: Duration::from_secs(1),
        measure: Duration::from_secs_f64(seconds),
    };
    let (bytes, secs, _) = LocalExecutorBuilder::new(Placement::Unbound)
        .spawn(move || async move { raw_baseline(&path, p).await })
        .map_err(|e| format!("starting an executor: {e}"))?
        .join()
        .map_err(|e| format!("executor: {e}"))??;
    Ok(bytes as f64 / secs / 1e6)
}

fn print_report(r: &EngineReport) {
    let s = &r.settings;
    println!(
        "engine: {} partition(s) x {} in flight, {} B records, {} records/batch ({} B), flush {:?}, chunk {} B, cpu {} (generator cpu {})",
        s.partitions, s.inflight, s.record_bytes, r.records_per_batch, r.batch_bytes, s.flush, s.write_chunk_bytes, s.cpu, s.generator_cpu
    );
    println!(
        "  engine   {:>9.1} MB/s  {:>12.0} records/s  {:>9.0} batches/s  cpu {:.2} core",
        r.mb_s, r.records_s, r.batches_s, r.cpu_per_s
    );
    println!(
        "  latency  append->durable us: p50 {} p90 {} p99 {} p99.9 {} p99.99 {} max {}",
        r.latency.p50_us,
        r.latency.p90_us,
        r.latency.p99_us,
        r.latency.p999_us,
        r.latency.p9999_us,
        r.latency.max_us
    );
    println!(
        "  fsyncs   {} ({} bytes per fdatasync)",
        r.fsyncs, r.bytes_per_fsync
    );
    if r.raw_mb_s > 0.0 {
        println!(
            "  raw      {:>9.1} MB/s  (O_DIRECT {} B writes, {} in flight, fdatasync every {} B)",
            r.raw_mb_s, r.raw_write_bytes, s.write_depth, r.bytes_per_fsync
        );
        let rounds: Vec<String> = r.round_ratios.iter().map(|x| format!("{x:.2}")).collect();
        println!(
            "  ratio    {:.3} (engine / raw; by round: {})",
            r.ratio,
            rounds.join(" ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_fills_the_batch_without_exceeding_it() {
        let (b, n) = template_batch(1024, 1 << 20);
        assert!(b.len() <= 1 << 20 && b.len() > (1 << 20) - 1100);
        assert_eq!(
            n,
            corelog_engine::batch::RecordBatch::new(&b)
                .unwrap()
                .records_count() as usize
        );
        let (b, n) = template_batch(100, 64 << 10);
        assert!(b.len() <= 64 << 10);
        assert!(n > 500);
        corelog_engine::batch::validate(&b, 1 << 20).unwrap();
    }
}
