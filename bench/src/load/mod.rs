//! `corelog bench produce | consume | e2e | restart`: the Kafka-protocol load generator.
//!
//! A run: start (or reach) a broker; create the topic and learn each partition's leader;
//! optionally preload data; start client executor threads running the producer and
//! consumer tasks; once every task is connected and every group has a stable
//! assignment, start the load: `--warmup` seconds unrecorded, then `--duration` seconds
//! (or `--total-bytes`, or until consumers catch up) recorded. Counters are shared
//! atomics sampled by the main thread (progress line, throughput series); latencies go
//! to per-thread HDR histograms merged at the end.

pub mod args;
pub mod broker;
pub mod consumer;
pub mod plot;
pub mod producer;
pub mod report;
pub mod restart;
pub mod stats;

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};

use crate::kafka::{api, ClientError, Conn};
use args::{LoadArgs, Rate, StartAt};
use broker::EmbeddedBroker;
use report::{Flow, Report, Sample};
use stats::{now_ns, phase, process_cpu_seconds, Counters, Percentiles, Recorder, Shared};

/// What a run's tasks need to know, shared by every client thread.
#[derive(Debug)]
pub struct Plan {
    /// The options.
    pub args: LoadArgs,
    /// host:port of the bootstrap broker.
    pub bootstrap: String,
    /// The topic.
    pub topic: String,
    /// Its partitions.
    pub partitions: Vec<i32>,
    /// host:port of each partition's leader.
    pub leaders: HashMap<i32, String>,
    /// Records/s per producer at a fixed rate.
    pub rate_per_producer: Option<f64>,
    /// Producer tasks.
    pub producers: usize,
    /// Consumer tasks in all.
    pub consumers: usize,
    /// Consumer groups (0: manual assignment).
    pub groups: usize,
    /// Consumers per group (all consumers with manual assignment).
    pub consumers_per_group: usize,
    /// Group names are `<prefix>-<g>`.
    pub group_prefix: String,
    /// Each consumer's group generation, for the set-up barrier.
    pub generations: Vec<AtomicI64>,
    /// Where consumers start.
    pub start_at: StartAt,
    /// Consumers measure end-to-end latency.
    pub e2e: bool,
    /// Catch-up reads: the end offset each partition must be read to.
    pub catch_up: Option<HashMap<i32, i64>>,
}

impl Plan {
    /// One connection to each partition leader, keyed by address; made before the load
    /// starts, so connection set-up is not measured.
    pub async fn connect_leaders(&self) -> Result<HashMap<String, Conn>, ClientError> {
        let mut conns = HashMap::new();
        let busy_poll = std::time::Duration::from_micros(self.args.busy_poll_us);
        for addr in self.leaders.values() {
            if !conns.contains_key(addr) {
                conns.insert(addr.clone(), Conn::connect_polling(addr, busy_poll).await?);
            }
        }
        Ok(conns)
    }
}

/// Runs `make()` to completion on a fresh glommio executor thread.
pub fn block_on<T, F, M>(make: M) -> Result<T, String>
where
    T: Send + 'static,
    F: Future<Output = T> + 'static,
    M: FnOnce() -> F + Send + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .name("bench-admin")
        .spawn(move || async move { make().await })
        .map_err(|e| format!("starting an executor: {e}"))?
        .join()
        .map_err(|e| format!("executor: {e}"))
}

/// Waits until `addr` answers ApiVersions; the time it took.
pub fn wait_serving(addr: &str, within: Duration) -> Result<Duration, String> {
    let addr = addr.to_string();
    block_on(move || async move {
        let t = Instant::now();
        loop {
            if let Ok(c) = Conn::connect(&addr).await {
                if api::api_versions(&c).await.is_ok() {
                    return Ok(t.elapsed());
                }
            }
            if t.elapsed() > within {
                return Err(format!("{addr} did not answer within {within:?}"));
            }
            glommio::timer::sleep(Duration::from_millis(2)).await;
        }
    })?
}

/// Checks the broker serves every API version the client uses, creates the topic if
/// missing, and waits until every partition has a leader: (partitions, leader of each).
pub fn prepare_topic(
    addr: &str,
    topic: &str,
    partitions: usize,
) -> Result<(Vec<i32>, HashMap<i32, String>), String> {
    let (addr, topic) = (addr.to_string(), topic.to_string());
    block_on(move || async move {
        let c = Conn::connect(&addr).await.map_err(|e| e.to_string())?;
        let served = api::api_versions(&c).await.map_err(|e| e.to_string())?;
        for (k, v) in api::USED {
            if !served
                .iter()
                .any(|(sk, lo, hi)| *sk == k && (*lo..=*hi).contains(&v))
            {
                return Err(format!(
                    "{addr} does not serve API {k} version {v}, which the bench client uses"
                ));
            }
        }
        api::create_topic(&c, &topic, partitions as i32, &[])
            .await
            .map_err(|e| e.to_string())?;
        let t = Instant::now();
        loop {
            let (brokers, topics) = api::metadata(&c, &[&topic])
                .await
                .map_err(|e| e.to_string())?;
            let addr_of: HashMap<i32, String> = brokers
                .iter()
                .map(|b| (b.node_id, format!("{}:{}", b.host, b.port)))
                .collect();
            if let Some(ti) = topics
                .iter()
                .find(|ti| ti.name == topic && ti.error_code == 0)
            {
                let ok = !ti.partitions.is_empty()
                    && ti
                        .partitions
                        .iter()
                        .all(|(_, e, l)| *e == 0 && addr_of.contains_key(l));
                if ok {
                    let ps = ti.partitions.iter().map(|(p, _, _)| *p).collect();
                    let leaders = ti
                        .partitions
                        .iter()
                        .map(|(p, _, l)| (*p, addr_of[l].clone()))
                        .collect();
                    return Ok((ps, leaders));
                }
            }
            if t.elapsed() > Duration::from_secs(30) {
                return Err(format!(
                    "topic {topic} has no leader for every partition after 30 s"
                ));
            }
            glommio::timer::sleep(Duration::from_millis(50)).await;
        }
    })?
}

/// The log end offset of each partition.
pub fn end_offsets(
    addr: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<HashMap<i32, i64>, String> {
    let (addr, topic, ps) = (addr.to_string(), topic.to_string(), partitions.to_vec());
    block_on(move || async move {
        let c = Conn::connect(&addr).await?;
        api::list_offsets(&c, &topic, &ps, -1).await
    })?
    .map(|v| v.into_iter().collect())
    .map_err(|e: ClientError| e.to_string())
}

/// (client, broker) CPU seconds at one moment.
type CpuPair = (Option<f64>, Option<f64>);

/// When the recorded part of a phase ends.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Seconds unrecorded.
    pub warmup: f64,
    /// Seconds recorded at most.
    pub duration: f64,
    /// Stop once this much payload was acknowledged (producers) ...
    pub acked_bytes: Option<u64>,
    /// ... or this many batch bytes consumed.
    pub consumed_bytes: Option<u64>,
    /// Note when consumers have read this many batch bytes (restart: the first fetches).
    pub mark_consumed: Option<u64>,
    /// Print a progress line.
    pub progress: bool,
}

/// What one phase measured.
#[derive(Debug)]
pub struct Measured {
    /// Latencies, all threads merged.
    pub recorder: Recorder,
    /// Counters over the recorded window.
    pub counters: Counters,
    /// Seconds recorded.
    pub seconds: f64,
    /// Seconds from the load's start to the window's: `--warmup`, plus up to a sampling
    /// interval (or a stall of the sampling thread).
    pub warmup_seconds: f64,
    /// Client CPU seconds over the window.
    pub client_cpu: Option<f64>,
    /// Broker CPU seconds over the window.
    pub broker_cpu: Option<f64>,
    /// Per-interval samples over the whole phase.
    pub series: Vec<Sample>,
    /// Seconds into the window when `mark_consumed` was reached.
    pub marked_at: Option<f64>,
}

/// Runs the plan's tasks on client threads through warm-up and measurement.
pub fn run_phase(
    plan: Arc<Plan>,
    schedule: Schedule,
    broker_pid: Option<u32>,
    threads: usize,
) -> Result<Measured, String> {
    let shared = Arc::new(Shared::default());
    let tasks = plan.producers + plan.consumers;
    let threads = threads.clamp(1, tasks.max(1));
    let mut handles = Vec::new();
    for t in 0..threads {
        let (plan, shared) = (plan.clone(), shared.clone());
        let h = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("bench-client-{t}"))
            .spawn(move || async move {
                let rec = Rc::new(RefCell::new(Recorder::default()));
                let mut joins = Vec::new();
                for task in (t..tasks).step_by(threads) {
                    let (plan, shared, rec) = (plan.clone(), shared.clone(), rec.clone());
                    joins.push(glommio::spawn_local(async move {
                        let (what, r) = if task < plan.producers {
                            (
                                "producer",
                                producer::run(task, plan, shared.clone(), rec).await,
                            )
                        } else {
                            (
                                "consumer",
                                consumer::run(task - plan.producers, plan, shared.clone(), rec)
                                    .await,
                            )
                        };
                        if let Err(e) = r {
                            shared.fail(format!("{what}: {e}"));
                        }
                    }));
                }
                for j in joins {
                    j.await;
                }
                Rc::try_unwrap(rec)
                    .map(RefCell::into_inner)
                    .unwrap_or_default()
            })
            .map_err(|e| format!("starting a client executor: {e}"))?;
        handles.push(h);
    }
    let failed = |shared: &Shared| shared.failure.lock().expect("not poisoned").clone();
    // Set-up barrier: every task connected, every group settled on one generation.
    let setup = Instant::now();
    loop {
        if let Some(f) = failed(&shared) {
            shared.phase.store(phase::STOP, Ordering::Release);
            for h in handles {
                let _ = h.join();
            }
            return Err(f);
        }
        let ready = shared.ready.load(Ordering::Acquire) == tasks;
        let stable = (0..plan.groups).all(|g| {
            let gens: Vec<i64> = (0..plan.consumers_per_group)
                .map(|i| plan.generations[g * plan.consumers_per_group + i].load(Ordering::Acquire))
                .collect();
            gens.iter().all(|x| *x >= 0 && *x == gens[0])
        });
        if ready && stable {
            break;
        }
        if setup.elapsed() > Duration::from_secs(120) {
            shared.fail("set-up (connections, group joins) did not finish within 120 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let cpu = || {
        (
            process_cpu_seconds(std::process::id()),
            broker_pid.and_then(process_cpu_seconds),
        )
    };
    let start = Instant::now();
    shared.phase.store(
        if schedule.warmup > 0.0 {
            phase::WARMUP
        } else {
            phase::MEASURE
        },
        Ordering::Release,
    );
    let mut window: Option<(Instant, Counters, CpuPair)> = None;
    let mut series = Vec::new();
    let mut last = (start, shared.counters());
    let mut marked_at = None;
    let mut last_progress = start;
    let end = loop {
        std::thread::sleep(Duration::from_millis(5));
        let now = Instant::now();
        let c = shared.counters();
        if window.is_none() && now.duration_since(start).as_secs_f64() >= schedule.warmup {
            shared.phase.store(phase::MEASURE, Ordering::Release);
            window = Some((now, c, cpu()));
        }
        if now.duration_since(last.0)
            >= Duration::from_millis(if schedule.mark_consumed.is_some() {
                100
            } else {
                1000
            })
        {
            let s = Sample::between(start, &last, (now, c), window.is_none());
            if schedule.progress && now.duration_since(last_progress) >= Duration::from_secs(1) {
                report::progress(&s, start.elapsed().as_secs_f64());
                last_progress = now;
            }
            series.push(s);
            last = (now, c);
        }
        if failed(&shared).is_some() {
            break (now, c, cpu());
        }
        let Some((w0, c0, _)) = window else { continue };
        let d = c.since(&c0);
        if let (Some(m), None) = (schedule.mark_consumed, marked_at) {
            if d.consumed_bytes >= m {
                marked_at = Some(now.duration_since(w0).as_secs_f64());
            }
        }
        let caught_up =
            plan.catch_up.is_some() && shared.caught_up.load(Ordering::Acquire) == plan.consumers;
        if now.duration_since(w0).as_secs_f64() >= schedule.duration
            || schedule.acked_bytes.is_some_and(|b| d.acked_bytes >= b)
            || schedule
                .consumed_bytes
                .is_some_and(|b| d.consumed_bytes >= b)
            || caught_up
        {
            break (now, c, cpu());
        }
    };
    shared.phase.store(phase::STOP, Ordering::Release);
    if schedule.progress {
        eprintln!();
    }
    let mut recorder = Recorder::default();
    for h in handles {
        let r = h.join().map_err(|e| format!("client executor: {e}"))?;
        recorder.merge(&r);
    }
    if let Some(f) = failed(&shared) {
        return Err(f);
    }
    let (w0, c0, cpu0) = window.ok_or("the run ended before its warm-up did")?;
    let (mut t1, c1, cpu1) = end;
    if plan.catch_up.is_some() && shared.caught_up.load(Ordering::Acquire) == plan.consumers {
        // The window ends when the last consumer caught up, not at the next sample.
        let behind_ns = now_ns().saturating_sub(shared.caught_up_at_ns.load(Ordering::Acquire));
        t1 = Instant::now() - Duration::from_nanos(behind_ns);
        t1 = t1.max(w0);
    }
    Ok(Measured {
        recorder,
        counters: c1.since(&c0),
        seconds: t1.duration_since(w0).as_secs_f64().max(1e-9),
        warmup_seconds: w0.duration_since(start).as_secs_f64(),
        client_cpu: cpu0.0.zip(cpu1.0).map(|(a, b)| b - a),
        broker_cpu: cpu0.1.zip(cpu1.1).map(|(a, b)| b - a),
        series,
        marked_at,
    })
}

/// Which load a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Producers only.
    Produce,
    /// Consumers only (with `--preload`, of data produced first).
    Consume,
    /// Producers and consumers; end-to-end latency.
    E2e,
}

fn default_threads(tasks: usize) -> usize {
    let cpus = core_affinity::get_core_ids().map_or(1, |c| c.len());
    cpus.min(tasks).max(1)
}

/// The plan for `args` against `bootstrap`.
pub fn plan(
    mode: Mode,
    args: &LoadArgs,
    bootstrap: &str,
    partitions: Vec<i32>,
    leaders: HashMap<i32, String>,
) -> Result<Plan, String> {
    let producers = args
        .producers
        .unwrap_or(if mode == Mode::Consume { 0 } else { 1 });
    let per_group = args
        .consumers
        .unwrap_or(if mode == Mode::Produce { 0 } else { 1 });
    let groups = args.groups;
    let consumers = if groups > 0 {
        groups * per_group
    } else {
        per_group
    };
    if mode != Mode::Consume && producers == 0 {
        return Err("--producers must be at least 1".into());
    }
    if mode != Mode::Produce && consumers == 0 {
        return Err("--consumers must be at least 1".into());
    }
    let record_payload = args.record_bytes.mean()
        + if args.keys == args::Keys::None {
            0.0
        } else {
            8.0
        };
    let rate_per_producer = args.rate.map(|r| match r {
        Rate::RecordsPerSec(x) => x / producers.max(1) as f64,
        Rate::BytesPerSec(b) => b / record_payload.max(1.0) / producers.max(1) as f64,
    });
    Ok(Plan {
        args: args.clone(),
        bootstrap: bootstrap.to_string(),
        topic: args.topic.clone(),
        partitions,
        leaders,
        rate_per_producer,
        producers,
        consumers,
        groups,
        consumers_per_group: per_group.max(1),
        group_prefix: format!(
            "corelog-bench-{}-{}",
            std::process::id(),
            now_ns() / 1_000_000
        ),
        generations: (0..consumers).map(|_| AtomicI64::new(-1)).collect(),
        start_at: args.start_at.unwrap_or(if mode == Mode::E2e {
            StartAt::Latest
        } else {
            StartAt::Earliest
        }),
        e2e: mode == Mode::E2e,
        catch_up: None,
    })
}

/// Produces `bytes` of payload as fast as the options allow (not measured).
pub fn preload(
    args: &LoadArgs,
    bootstrap: &str,
    partitions: &[i32],
    leaders: &HashMap<i32, String>,
    bytes: u64,
    producers: usize,
    progress: bool,
) -> Result<Measured, String> {
    let mut a = args.clone();
    a.rate = None;
    a.producers = Some(producers);
    a.consumers = Some(0);
    a.groups = 0;
    let p = plan(
        Mode::Produce,
        &a,
        bootstrap,
        partitions.to_vec(),
        leaders.clone(),
    )?;
    let schedule = Schedule {
        warmup: 0.0,
        duration: f64::INFINITY,
        acked_bytes: Some(bytes),
        consumed_bytes: None,
        mark_consumed: None,
        progress,
    };
    run_phase(Arc::new(p), schedule, None, default_threads(producers))
}

/// `corelog bench produce | consume | e2e`.
pub fn run(mode: Mode, args: LoadArgs) -> Result<Report, String> {
    let mut embedded = match &args.bootstrap {
        Some(_) => None,
        None => Some(EmbeddedBroker::start(
            args.shards,
            args.data_dir.as_deref(),
            &args.broker_args,
        )?),
    };
    let bootstrap = match (&args.bootstrap, &embedded) {
        (Some(b), _) => b.clone(),
        (None, Some(e)) => e.addr().to_string(),
        (None, None) => unreachable!("one of the two is set"),
    };
    if let Some(e) = &embedded {
        wait_serving(e.addr(), Duration::from_secs(60))?;
    }
    let (mut partitions, mut leaders) = prepare_topic(&bootstrap, &args.topic, args.partitions)?;
    let mut preloaded = None;
    if let Some(bytes) = args.preload {
        let producers = args.producers.filter(|p| *p > 0).unwrap_or(4);
        let m = preload(
            &args,
            &bootstrap,
            &partitions,
            &leaders,
            bytes,
            producers,
            !args.quiet,
        )?;
        preloaded = Some(m.counters.acked_bytes);
    }
    if args.restart {
        let e = embedded
            .as_mut()
            .ok_or("--restart needs the embedded broker (no --bootstrap)")?;
        e.restart(false)?;
        wait_serving(e.addr(), Duration::from_secs(60))?;
        (partitions, leaders) = prepare_topic(&bootstrap, &args.topic, args.partitions)?;
    }
    let mut p = plan(mode, &args, &bootstrap, partitions.clone(), leaders)?;
    if mode == Mode::Consume {
        p.catch_up = Some(end_offsets(&bootstrap, &args.topic, &partitions)?);
    }
    let broker_pid = args.broker_pid.or(embedded.as_ref().and_then(|e| e.pid()));
    let schedule = Schedule {
        warmup: args.warmup,
        duration: if args.total_bytes.is_some() {
            f64::INFINITY
        } else {
            args.duration
        },
        acked_bytes: args.total_bytes.filter(|_| mode != Mode::Consume),
        consumed_bytes: args.total_bytes.filter(|_| mode == Mode::Consume),
        mark_consumed: None,
        progress: !args.quiet,
    };
    let threads = args
        .client_threads
        .unwrap_or_else(|| default_threads(p.producers + p.consumers));
    // The raw baseline brackets the run, half just before it and half right after, so
    // that a disk drifting during the run moves both sides of the ratio alike.
    let raw_dir = match (&args.raw_dir, &embedded) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(e)) => e.data_dir().parent().map(|d| d.to_path_buf()),
        (None, None) => None,
    };
    let raw_dir = match raw_dir {
        Some(d) if args.raw_baseline => Some(d),
        None if args.raw_baseline => {
            return Err(
                "--raw-baseline with --bootstrap needs --raw-dir on the broker's disk".into(),
            )
        }
        _ => None,
    };
    let raw = |dir: &std::path::Path, seconds: f64| {
        crate::engine::raw_disk_mb_s(dir, partitions.len(), 1 << 20, 4, args.raw_cadence, seconds)
    };
    let raw_before = raw_dir
        .as_deref()
        .map(|d| raw(d, args.duration / 2.0))
        .transpose()?;
    let p = Arc::new(p);
    let m = run_phase(p.clone(), schedule, broker_pid, threads)?;
    if let Some(e) = embedded.as_mut() {
        e.check_alive()?;
        e.stop(false)?;
    }
    let mut r = Report::new(mode, &p, &m, threads, embedded.is_some(), preloaded);
    if let (Some(dir), Some(before)) = (raw_dir.as_deref(), raw_before) {
        let after = raw(dir, m.seconds / 2.0)?;
        let mean = (before + after) / 2.0;
        r.raw_mb_s = Some(mean);
        r.raw_mb_s_before_after = Some([before, after]);
        r.ratio_to_raw = r.produce.as_ref().map(|f| f.batch_mb_s / mean);
    }
    Ok(r)
}

/// Flows and latencies of a measured phase.
pub fn flows(p: &Plan, m: &Measured) -> (Option<Flow>, Option<Flow>) {
    let s = m.seconds;
    let c = &m.counters;
    let produce = (p.producers > 0).then(|| Flow {
        records_s: c.acked_records as f64 / s,
        mb_s: c.acked_bytes as f64 / s / 1e6,
        batch_mb_s: c.acked_batch_bytes as f64 / s / 1e6,
        requests_s: c.requests as f64 / s,
        latency: Some(Percentiles::of(&m.recorder.produce)),
    });
    let consume = (p.consumers > 0).then(|| Flow {
        records_s: c.consumed_records as f64 / s,
        mb_s: c.consumed_bytes as f64 / s / 1e6,
        batch_mb_s: c.consumed_bytes as f64 / s / 1e6,
        requests_s: 0.0,
        latency: None,
    });
    (produce, consume)
}
