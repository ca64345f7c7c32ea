//! Randomised disk faults under a partition log: failed and short segment writes (EIO,
//! ENOSPC), failed fdatasyncs, failed truncations at a roll, ENOSPC when a new segment
//! is preallocated, failed and torn writes of index files and the clean shutdown marker
//! (at rolls and while closing), failed segment reads (of a running log, and of recovery
//! while opening), failed small-file reads and torn small-file writes while opening, and
//! torn tails left by a crash after a short write. Faults are
//! injected through `corelog_engine::faults` into one log ("faulty") while a second log
//! on the same executor ("healthy") runs without faults.
//!
//! Rules checked:
//! - a flush that fails acknowledges nothing: the model only counts as acknowledged what
//!   lies below a high watermark the log reported;
//! - once a write or fdatasync failed (`failure()` is set) the log does not pretend later
//!   data is durable: every append and flush is refused and the high watermark stays
//!   where it was, until the log is reopened from what is really on disk (the fsyncgate
//!   rule: no blind retry of the fdatasync);
//! - a full disk at a roll (ENOSPC at preallocation) or a failed index write there fails
//!   that append only: the log is not failed, and the next append tries the roll again;
//! - an open that meets a failed read or write fails with an error (no panic), and the
//!   next open finds everything; a close that fails is a crash, and loses nothing
//!   acknowledged;
//! - reads of acknowledged data keep working on a failed log; a failed read fails only
//!   itself (the log does not fail), and the read succeeds once the disk is well;
//! - after a crash, with or without a torn tail, reopening keeps every acknowledged batch
//!   byte for byte, and what survives beyond them is a prefix of what was appended;
//! - the healthy log's appends and flushes all succeed throughout.
//!
//! Seeds: `FAULT_SEED=n` replays one; `FAULT_SEEDS=k` runs k (default 12). Each seed
//! prints what it injected, so a reader can see that the cases are reached.

mod common;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use common::{batch, no_cache, read_all, run, try_read_all};
use corelog_engine::batch::{self as batch_fmt, RecordBatch};
use corelog_engine::faults::{self, Fault, Op};
use corelog_engine::{AppendOptions, LogConfig, PartitionLog};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 32 << 10,
        write_chunk_bytes: 8 << 10,
        write_chunks_inflight_max: 4,
        max_batch_bytes: 12 << 10,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

/// What was injected, by kind.
#[derive(Default, Debug, Clone)]
struct Injected {
    write_eio: u32,
    write_enospc: u32,
    short_writes: u32,
    sync_eio: u32,
    truncate_eio: u32,
    allocate_enospc: u32,
    small_write_faults: u32,
    small_read_eio: u32,
    segment_read_eio: u32,
    read_eio: u32,
}

/// What the seed went through.
#[derive(Default, Debug, Clone)]
struct Coverage {
    lifetimes: u32,
    failed_logs: u32,
    refused_appends: u32,
    refused_flushes: u32,
    rolls_after_enospc: u32,
    crashes: u32,
    torn_tails: u32,
    clean_closes: u32,
    failed_closes: u32,
    failed_opens: u32,
    refused_reads: u32,
    unflushed_survived: usize,
}

#[derive(Default)]
struct Model {
    /// Below a reported high watermark: (base offset, bytes).
    acked: Vec<(u64, Vec<u8>)>,
    /// Appended, not yet below a reported high watermark.
    pending: Vec<(u64, Vec<u8>)>,
}

impl Model {
    fn end(&self) -> u64 {
        let last = self.pending.last().or(self.acked.last());
        last.map_or(0, |(base, bytes)| {
            let _ = base;
            RecordBatch::new(bytes).unwrap().last_offset() as u64 + 1
        })
    }
    fn advance(&mut self, hw: u64) {
        let n = self
            .pending
            .iter()
            .take_while(|(base, _)| *base < hw)
            .count();
        self.acked.extend(self.pending.drain(..n));
    }
}

/// A plan that fails operations on files under `dir` with the given probabilities.
fn plan(
    dir: PathBuf,
    seed: u64,
    injected: Rc<RefCell<Injected>>,
    enabled: Rc<Cell<bool>>,
) -> faults::Plan {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Box::new(move |op: Op, path: &Path, len: usize| {
        if !enabled.get() || !path.starts_with(&dir) {
            return None;
        }
        let mut inj = injected.borrow_mut();
        match op {
            Op::Write if rng.gen_bool(0.01) => Some(match rng.gen_range(0..3) {
                0 => {
                    inj.write_eio += 1;
                    Fault::Fail(libc::EIO)
                }
                1 => {
                    inj.write_enospc += 1;
                    Fault::Fail(libc::ENOSPC)
                }
                _ => {
                    inj.short_writes += 1;
                    Fault::Short(rng.gen_range(0..=len))
                }
            }),
            Op::Sync if rng.gen_bool(0.03) => {
                inj.sync_eio += 1;
                Some(Fault::Fail(libc::EIO))
            }
            Op::Truncate if rng.gen_bool(0.05) => {
                inj.truncate_eio += 1;
                Some(Fault::Fail(libc::EIO))
            }
            Op::Allocate if rng.gen_bool(0.2) => {
                inj.allocate_enospc += 1;
                Some(Fault::Fail(libc::ENOSPC))
            }
            Op::Read if rng.gen_bool(0.02) => {
                inj.read_eio += 1;
                Some(Fault::Fail(libc::EIO))
            }
            Op::SmallWrite if rng.gen_bool(0.1) => {
                inj.small_write_faults += 1;
                Some(match rng.gen_range(0..3) {
                    0 => Fault::Fail(libc::EIO),
                    1 => Fault::Fail(libc::ENOSPC),
                    _ => Fault::Short(rng.gen_range(0..=len)),
                })
            }
            _ => None,
        }
    })
}

/// A plan for one open of the log in `dir`: each small file read, and each segment read
/// of recovery (index checks, scans), fails with EIO with a probability that makes about
/// one failure per open; each small file write (the epoch checkpoint after a crash) is
/// torn one time in five.
fn open_plan(dir: PathBuf, seed: u64, injected: Rc<RefCell<Injected>>) -> faults::Plan {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Two index files per segment, the epoch and log start checkpoints.
    let segments = std::fs::read_dir(&dir).map_or(0, |d| {
        d.filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .count()
    });
    let p_read = 1.0 / (2 * segments + 2) as f64;
    Box::new(move |op: Op, path: &Path, len: usize| {
        if !path.starts_with(&dir) {
            return None;
        }
        let mut inj = injected.borrow_mut();
        match op {
            Op::SmallRead if rng.gen_bool(p_read) => {
                inj.small_read_eio += 1;
                Some(Fault::Fail(libc::EIO))
            }
            Op::Read if rng.gen_bool(p_read) => {
                inj.segment_read_eio += 1;
                Some(Fault::Fail(libc::EIO))
            }
            Op::SmallWrite if rng.gen_bool(0.2) => {
                inj.small_write_faults += 1;
                Some(Fault::Short(rng.gen_range(0..=len)))
            }
            _ => None,
        }
    })
}

/// Appends a batch to `log`; `Some(stored bytes)` if it was accepted.
async fn append(log: &PartitionLog, tag: u64, rng: &mut ChaCha8Rng) -> Option<(u64, Vec<u8>)> {
    let b = batch(
        tag,
        rng.gen_range(1..6),
        rng.gen_range(10..1500),
        1_700_000_000_000,
    );
    let mut stored = b.to_vec();
    let info = log.append(b, AppendOptions::default()).await.ok()?;
    batch_fmt::assign(&mut stored, info.base_offset as i64, 0);
    Some((info.base_offset, stored))
}

/// Cuts the active segment at a random point past `keep` bytes of it, or flips a byte
/// there: the torn tail a crash leaves.
fn tear(dir: &Path, model: &Model, rng: &mut ChaCha8Rng) -> bool {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let Some(active) = logs.last() else {
        return false;
    };
    let base: u64 = active
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let keep: u64 = model
        .acked
        .iter()
        .filter(|(b, _)| *b >= base)
        .map(|(_, bytes)| bytes.len() as u64)
        .sum();
    let len = std::fs::metadata(active).unwrap().len();
    if len <= keep || rng.gen_bool(0.3) {
        return false;
    }
    let at = keep + rng.gen_range(0..(len - keep).min(64 << 10));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(active)
        .unwrap();
    if rng.gen_bool(0.5) {
        f.set_len(at).unwrap();
    } else {
        use std::os::unix::fs::FileExt;
        let mut b = [0u8];
        f.read_exact_at(&mut b, at).unwrap();
        b[0] ^= 0x40;
        f.write_all_at(&b, at).unwrap();
    }
    true
}

fn run_seed(seed: u64) -> (Injected, Coverage) {
    run(move || async move {
        let root = tempfile::tempdir().unwrap();
        let faulty_dir = root.path().join("faulty");
        let healthy_dir = root.path().join("healthy");
        let injected = Rc::new(RefCell::new(Injected::default()));
        let mut cov = Coverage::default();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut model = Model::default();
        let healthy = PartitionLog::open(&healthy_dir, config(), no_cache())
            .await
            .unwrap();
        let mut healthy_batches = 0usize;
        let mut tag = 0u64;
        for lifetime in 0..12 {
            cov.lifetimes += 1;
            if rng.gen_bool(0.4) {
                let _plan =
                    faults::install(open_plan(faulty_dir.clone(), rng.gen(), injected.clone()));
                match PartitionLog::open(&faulty_dir, config(), no_cache()).await {
                    // Checked below, after the next open, as any other lifetime's end.
                    Ok(log) => drop(log),
                    Err(e) => {
                        cov.failed_opens += 1;
                        let e = e.to_string();
                        assert!(
                            e.contains(&*faulty_dir.to_string_lossy()),
                            "seed {seed}: an open's error does not name the file: {e}"
                        );
                    }
                }
            }
            let log = PartitionLog::open(&faulty_dir, config(), no_cache())
                .await
                .unwrap_or_else(|e| panic!("seed {seed}: reopen {lifetime}: {e}"));
            let survivors = read_all(&log, 20_000).await;
            assert!(
                survivors.len() >= model.acked.len(),
                "seed {seed}: {} acknowledged batches, {} after reopening",
                model.acked.len(),
                survivors.len()
            );
            for (i, (want, got)) in model.acked.iter().zip(&survivors).enumerate() {
                assert!(
                    want == got,
                    "seed {seed}: acknowledged batch {i} (offset {}) lost or changed",
                    want.0
                );
            }
            let extra = &survivors[model.acked.len()..];
            assert!(
                extra.len() <= model.pending.len(),
                "seed {seed}: batches nobody appended"
            );
            for (want, got) in model.pending.iter().zip(extra) {
                assert!(
                    want == got,
                    "seed {seed}: unacknowledged survivor at {} changed",
                    got.0
                );
            }
            cov.unflushed_survived += extra.len();
            model.acked.extend(extra.iter().cloned());
            model.pending.clear();
            assert_eq!(
                log.log_end_offset(),
                model.end(),
                "seed {seed}: log end after reopening"
            );

            let enabled = Rc::new(Cell::new(true));
            let _plan = faults::install(plan(
                faulty_dir.clone(),
                rng.gen(),
                injected.clone(),
                enabled.clone(),
            ));
            let mut failed_at_hw = None;
            for _ in 0..rng.gen_range(20..120) {
                if let Some(hw) = failed_at_hw {
                    assert_eq!(
                        log.high_watermark(),
                        hw,
                        "seed {seed}: a failed log's watermark moved"
                    );
                } else if log.failure().is_some() {
                    cov.failed_logs += 1;
                    failed_at_hw = Some(log.high_watermark());
                }
                match rng.gen_range(0..100) {
                    0..=59 => {
                        tag += 1;
                        let was_refusing = log.failure().is_some();
                        match append(&log, tag, &mut rng).await {
                            Some(b) => {
                                assert!(!was_refusing, "seed {seed}: a failed log took an append");
                                assert_eq!(b.0, model.end(), "seed {seed}: offsets must follow");
                                model.pending.push(b);
                            }
                            None => {
                                cov.refused_appends += 1;
                                if log.failure().is_none() {
                                    // Refused without failing the log: only a roll that
                                    // could not preallocate or write the sealed segment's
                                    // indexes does that. With the disk well again, the
                                    // next append goes through, rolling first (unless a
                                    // write faulted earlier fails the log now).
                                    enabled.set(false);
                                    tag += 1;
                                    let rolls = log.stats().rolls;
                                    match append(&log, tag, &mut rng).await {
                                        Some(b) => {
                                            assert!(
                                                log.stats().rolls > rolls,
                                                "seed {seed}: the refused roll was not retried"
                                            );
                                            assert_eq!(b.0, model.end(), "seed {seed}: offsets");
                                            model.pending.push(b);
                                            cov.rolls_after_enospc += 1;
                                        }
                                        None => assert!(
                                            log.failure().is_some(),
                                            "seed {seed}: a log refused appends without failing"
                                        ),
                                    }
                                    enabled.set(true);
                                }
                            }
                        }
                    }
                    60..=84 => match log.flush().await {
                        Ok(hw) => {
                            // A failed log may only report what was durable before it
                            // failed (a flush with nothing new to cover).
                            assert!(
                                failed_at_hw.is_none_or(|f| f == hw),
                                "seed {seed}: a failed log flushed past its failure"
                            );
                            assert_eq!(hw, model.end(), "seed {seed}: a flush covers every append");
                        }
                        Err(_) => cov.refused_flushes += 1,
                    },
                    85..=94 => {
                        let max_bytes = rng.gen_range(100..40_000);
                        let failed_before = log.failure().is_some();
                        let got = match try_read_all(&log, max_bytes).await {
                            Ok(got) => got,
                            Err(e) => {
                                // A failed read fails that read only: the log neither
                                // fails nor refuses appends for it, and the same read
                                // with the disk well again returns everything.
                                cov.refused_reads += 1;
                                assert_eq!(
                                    log.failure().is_some(),
                                    failed_before,
                                    "seed {seed}: a failed read failed the log: {e}"
                                );
                                enabled.set(false);
                                let got = read_all(&log, max_bytes).await;
                                enabled.set(true);
                                got
                            }
                        };
                        let hw = log.high_watermark();
                        model.advance(hw);
                        if got != model.acked {
                            let first = got.iter().zip(&model.acked).position(|(a, b)| a != b);
                            panic!(
                                "seed {seed}: reads differ from what was acknowledged: {} read, {} acknowledged, first difference at {first:?}; read offsets {:?}, acknowledged {:?}, hw {hw}, failure {:?}",
                                got.len(),
                                model.acked.len(),
                                got.iter().map(|b| b.0).collect::<Vec<_>>(),
                                model.acked.iter().map(|b| b.0).collect::<Vec<_>>(),
                                log.failure()
                            );
                        }
                    }
                    _ => {
                        tag += 1;
                        let b = batch(tag, 2, 300, 1_700_000_000_000);
                        healthy
                            .append(b, AppendOptions::default())
                            .await
                            .expect("healthy append");
                        healthy.flush().await.expect("healthy flush");
                        healthy_batches += 1;
                    }
                }
                model.advance(log.high_watermark());
            }
            model.advance(log.high_watermark());
            // Closing with the plan still on: a close that fails (a write, an fdatasync,
            // an index or the marker) is a crash.
            let closed = if log.failure().is_none() && rng.gen_bool(0.5) {
                let ok = log.close().await.is_ok();
                if !ok {
                    cov.failed_closes += 1;
                }
                ok
            } else {
                false
            };
            drop(_plan);
            if closed {
                cov.clean_closes += 1;
                model.advance(model.end());
            } else {
                drop(log); // a crash: what was written stays, nothing else
                glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
                cov.crashes += 1;
                if tear(&faulty_dir, &model, &mut rng) {
                    cov.torn_tails += 1;
                }
            }
        }
        let healthy_read = read_all(&healthy, 1 << 20).await;
        assert_eq!(
            healthy_read.len(),
            healthy_batches,
            "seed {seed}: the healthy log"
        );
        healthy.close().await.unwrap();
        eprintln!(
            "fault seed {seed}: {:?} {cov:?}, {} acknowledged batches",
            injected.borrow(),
            model.acked.len()
        );
        let injected = injected.borrow().clone();
        (injected, cov)
    })
}

#[test]
fn acknowledged_data_survives_disk_faults_and_failed_logs_refuse() {
    let seeds = corelog_engine::testing::seeds("FAULT_SEED", "FAULT_SEEDS", 12);
    let mut total = (Injected::default(), Coverage::default());
    for &seed in &seeds {
        eprintln!("FAULT_SEED={seed}");
        let (i, c) = run_seed(seed);
        total.0.write_eio += i.write_eio;
        total.0.write_enospc += i.write_enospc;
        total.0.short_writes += i.short_writes;
        total.0.sync_eio += i.sync_eio;
        total.0.truncate_eio += i.truncate_eio;
        total.0.allocate_enospc += i.allocate_enospc;
        total.0.small_write_faults += i.small_write_faults;
        total.0.small_read_eio += i.small_read_eio;
        total.0.segment_read_eio += i.segment_read_eio;
        total.0.read_eio += i.read_eio;
        total.1.refused_reads += c.refused_reads;
        total.1.failed_opens += c.failed_opens;
        total.1.failed_closes += c.failed_closes;
        total.1.failed_logs += c.failed_logs;
        total.1.rolls_after_enospc += c.rolls_after_enospc;
        total.1.torn_tails += c.torn_tails;
    }
    eprintln!(
        "faults over {} seeds: {:?} {:?}",
        seeds.len(),
        total.0,
        total.1
    );
    // Enough seeds reach every case; the test checks nothing if they do not.
    if seeds.len() >= 8 {
        let (i, c) = &total;
        for (what, n) in [
            ("failed writes", i.write_eio + i.write_enospc),
            ("short writes", i.short_writes),
            ("failed fdatasyncs", i.sync_eio),
            ("failed truncations", i.truncate_eio),
            ("ENOSPC preallocations", i.allocate_enospc),
            ("failed small-file writes", i.small_write_faults),
            ("failed small-file reads", i.small_read_eio),
            ("failed segment reads at open", i.segment_read_eio),
            ("refused reads", c.refused_reads),
            ("failed opens", c.failed_opens),
            ("failed closes", c.failed_closes),
            ("failed logs", c.failed_logs),
            ("rolls retried after ENOSPC", c.rolls_after_enospc),
            ("torn tails", c.torn_tails),
        ] {
            assert!(n > 0, "no {what} in {} seeds", seeds.len());
        }
    }
}
