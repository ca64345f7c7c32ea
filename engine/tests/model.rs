//! Model-based randomised test of the partition log: appends, flushes, reads, clean
//! reopens and crashes (the log dropped mid-stream, then the active segment cut at a
//! random byte or a byte flipped past the durable end), checked against an in-memory
//! model.
//!
//! Invariants checked:
//! - a read returns whole batches, byte for byte as appended (after offset assignment),
//!   starting with the batch holding the offset, within the byte limit (first batch
//!   whole), never past the high watermark;
//! - after a crash every flushed batch is present and byte-exact; what survives beyond
//!   them is a prefix of the unflushed batches that ends before the first damaged byte;
//! - offsets never repeat or go backwards: new appends continue after what survived.
//!
//! Seeds: `MODEL_SEED=n` replays one seed; `MODEL_SEEDS=k` runs k seeds (default 12).
//! A failure prints the seed.

mod common;

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use common::{big_cache, no_cache, run};
use corelog_engine::batch::{self, RecordBatch};
use corelog_engine::batch_builder::BatchBuilder;
use corelog_engine::fsutil;
use corelog_engine::{AppendOptions, LogConfig, PartitionLog};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 48 << 10,
        write_chunk_bytes: 8 << 10,
        write_chunks_inflight_max: 4,
        max_batch_bytes: 12 << 10,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

/// What the model knows about one stored batch.
#[derive(Clone, Debug)]
struct Stored {
    base: u64,
    last: u64,
    bytes: Vec<u8>,
}

/// What a seed exercised, printed so a reader can see the test reaches its cases.
#[derive(Default, Debug)]
struct Coverage {
    crashes: u32,
    cuts: u32,
    flips: u32,
    unflushed_survived: usize,
    unflushed_lost: usize,
    clean_closes: u32,
}

#[derive(Default, Debug)]
struct Model {
    /// Batches at or below the high watermark, in order.
    durable: Vec<Stored>,
    /// Appended, not yet known durable.
    pending: Vec<Stored>,
    log_start: u64,
    /// Leader epoch of the next append (raised now and then).
    epoch: i32,
}

impl Model {
    fn end(&self) -> u64 {
        self.pending
            .last()
            .or(self.durable.last())
            .map_or(self.log_start, |b| b.last + 1)
    }
    /// Moves pending batches below `hw` to durable.
    fn advance(&mut self, hw: u64) {
        let n = self.pending.iter().take_while(|b| b.last < hw).count();
        let moved: Vec<Stored> = self.pending.drain(..n).collect();
        self.durable.extend(moved);
        let durable_end = self.durable.last().map_or(self.log_start, |b| b.last + 1);
        assert_eq!(
            durable_end.max(self.log_start),
            hw.max(self.log_start),
            "log high watermark {hw} is not at a batch boundary of the model"
        );
    }
}

fn random_batch(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let records = rng.gen_range(1..=12);
    let mut b = BatchBuilder::new(rng.gen_range(0..1_000_000));
    for _ in 0..records {
        let key_len = rng.gen_range(0..16);
        let value_len = if rng.gen_bool(0.1) {
            rng.gen_range(500..900)
        } else {
            rng.gen_range(0..200)
        };
        let key: Vec<u8> = (0..key_len).map(|_| rng.gen()).collect();
        let value: Vec<u8> = (0..value_len).map(|_| rng.gen()).collect();
        let key = if rng.gen_bool(0.1) {
            None
        } else {
            Some(&key[..])
        };
        b.push(key, Some(&value), &[]);
    }
    b.build()
}

/// Reads the whole log through the API and returns its batches.
async fn read_all(log: &PartitionLog) -> Vec<Stored> {
    let mut out = Vec::new();
    let mut off = log.log_start_offset();
    let hw = log.high_watermark();
    while off < hw {
        let data = log.read(off, 20_000).await.expect("read");
        assert!(
            !data.batches.is_empty(),
            "empty read at {off} below hw {hw}"
        );
        for chunk in &data.batches {
            let mut rest = &chunk[..];
            while let Some(b) = RecordBatch::from_prefix(rest) {
                out.push(Stored {
                    base: b.base_offset() as u64,
                    last: b.last_offset() as u64,
                    bytes: b.as_bytes().to_vec(),
                });
                rest = &rest[b.len()..];
            }
            assert!(rest.is_empty(), "partial batch in a read");
        }
        off = out.last().unwrap().last + 1;
    }
    out
}

enum Damage {
    None,
    Cut(u64),
    Flip(u64),
}

/// The active segment file and the file position where its durable data ends.
fn active_segment(dir: &Path, model: &Model) -> (PathBuf, u64) {
    let mut bases: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            match fsutil::parse_segment_name(&name) {
                Some((b, "log")) => Some(b),
                _ => None,
            }
        })
        .collect();
    bases.sort_unstable();
    let base = *bases.last().expect("a log has a segment");
    let durable_end: u64 = model
        .durable
        .iter()
        .filter(|b| b.base >= base)
        .map(|b| b.bytes.len() as u64)
        .sum();
    (fsutil::segment_file(dir, base, "log"), durable_end)
}

fn damage(path: &Path, durable_end: u64, rng: &mut ChaCha8Rng) -> Damage {
    let len = std::fs::metadata(path).unwrap().len();
    let room = len.saturating_sub(durable_end).min(64 << 10);
    if room == 0 {
        return Damage::None;
    }
    match rng.gen_range(0..3) {
        0 => Damage::None,
        1 => {
            let at = durable_end + rng.gen_range(0..room);
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            f.set_len(at).unwrap();
            Damage::Cut(at)
        }
        _ => {
            use std::os::unix::fs::FileExt;
            let at = durable_end + rng.gen_range(0..room);
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .unwrap();
            let mut b = [0u8];
            f.read_exact_at(&mut b, at).unwrap();
            b[0] ^= 1 << rng.gen_range(0..8);
            f.write_all_at(&b, at).unwrap();
            Damage::Flip(at)
        }
    }
}

/// Checks the log after a crash against the model and folds the survivors into it.
fn check_recovered(
    seed: u64,
    model: &mut Model,
    got: Vec<Stored>,
    segment_base_pos: Option<(u64, u64)>,
    dmg: &Damage,
    cov: &mut Coverage,
) {
    let d = model.durable.len();
    assert!(
        got.len() >= d,
        "seed {seed}: {} flushed batches, {} recovered",
        d,
        got.len()
    );
    for (i, (a, b)) in model.durable.iter().zip(&got).enumerate() {
        assert!(
            a.base == b.base && a.bytes == b.bytes,
            "seed {seed}: flushed batch {i} (offset {}) differs after recovery",
            a.base
        );
    }
    let extra = &got[d..];
    assert!(
        extra.len() <= model.pending.len(),
        "seed {seed}: more batches than were appended"
    );
    for (a, b) in model.pending.iter().zip(extra) {
        let first_diff = a.bytes.iter().zip(&b.bytes).position(|(x, y)| x != y);
        assert!(
            a.base == b.base && a.bytes == b.bytes,
            "seed {seed}: unflushed survivor at {} (recovered as {}) is not what was appended: \
             first differing byte {first_diff:?} of {}",
            a.base,
            b.base,
            a.bytes.len()
        );
    }
    // Nothing at or after the damage survives: compute each survivor's file position in
    // the active segment.
    if let (Some((seg_base, _)), Damage::Cut(at) | Damage::Flip(at)) = (segment_base_pos, dmg) {
        let mut pos = 0u64;
        for b in got.iter().filter(|b| b.base >= seg_base) {
            let end = pos + b.bytes.len() as u64;
            assert!(
                end <= *at,
                "seed {seed}: batch at {} spans damaged byte {at} but survived",
                b.base
            );
            pos = end;
        }
    }
    let survivors = extra.len();
    cov.unflushed_survived += survivors;
    cov.unflushed_lost += model.pending.len() - survivors;
    let moved: Vec<Stored> = model.pending.drain(..survivors).collect();
    model.durable.extend(moved);
    model.pending.clear();
}

fn run_seed(seed: u64) {
    // One executor per seed: a crash drops the log, lets writes already handed to the
    // kernel land (as they would for a killed process), then damages and reopens it.
    run(move || async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut model = Model::default();
        let mut cov = Coverage::default();
        // Executor lifetimes, each ending in a clean close or a crash.
        let steps = 30;
        let mut step = 0;
        while step < steps {
            // One executor lifetime: a run of operations ending in a clean close or a crash.
            let p = path.clone();
            let cached = rng.gen_bool(0.5);
            let ops: u64 = rng.gen();
            let (m, crashed) = {
                let mut rng = ChaCha8Rng::seed_from_u64(ops);
                let mut model = model;
                let cache = if cached { big_cache() } else { no_cache() };
                let log = PartitionLog::open(&p, config(), cache).await.expect("open");
                assert_eq!(
                    log.log_end_offset(),
                    model.end(),
                    "seed {seed}: log end after open"
                );
                assert_eq!(log.high_watermark(), model.end());
                let n = rng.gen_range(5..80);
                for _ in 0..n {
                    match rng.gen_range(0..100) {
                        0..=59 => {
                            let bytes = random_batch(&mut rng);
                            if rng.gen_bool(0.03) {
                                model.epoch += rng.gen_range(1..3);
                            }
                            let opts = AppendOptions {
                                leader_epoch: model.epoch,
                                log_append_time_ms: None,
                            };
                            let info = log
                                .append(BytesMut::from(&bytes[..]), opts)
                                .await
                                .expect("append");
                            assert_eq!(
                                info.base_offset,
                                model.end(),
                                "seed {seed}: offsets must follow"
                            );
                            let mut stored = bytes.clone();
                            batch::assign(&mut stored, info.base_offset as i64, model.epoch);
                            model.pending.push(Stored {
                                base: info.base_offset,
                                last: info.last_offset,
                                bytes: stored,
                            });
                            model.advance(log.high_watermark());
                        }
                        60..=74 => {
                            let hw = log.flush().await.expect("flush");
                            assert_eq!(hw, model.end(), "seed {seed}: flush covers every append");
                            model.advance(hw);
                        }
                        75..=94 => {
                            let hw = log.high_watermark();
                            let start = log.log_start_offset();
                            let off = rng.gen_range(start..=hw);
                            let max = rng.gen_range(1..30_000);
                            let data = log.read(off, max).await.expect("read");
                            let mut got = Vec::new();
                            for c in &data.batches {
                                let mut rest = &c[..];
                                while let Some(b) = RecordBatch::from_prefix(rest) {
                                    got.push(b.as_bytes().to_vec());
                                    rest = &rest[b.len()..];
                                }
                            }
                            if off == hw {
                                assert!(got.is_empty());
                                continue;
                            }
                            let first = model
                                .durable
                                .iter()
                                .position(|b| b.last >= off)
                                .expect("offset below hw is durable");
                            assert!(
                                !got.is_empty(),
                                "seed {seed}: empty read at {off} < hw {hw}"
                            );
                            let total: usize = got.iter().map(|g| g.len()).sum();
                            assert!(
                                total <= max || got.len() == 1,
                                "seed {seed}: read over its limit"
                            );
                            for (i, g) in got.iter().enumerate() {
                                assert_eq!(
                                    g,
                                    &model.durable[first + i].bytes,
                                    "seed {seed}: read at {off} batch {i}"
                                );
                            }
                        }
                        _ => {
                            // Let queued writes progress without a flush, so a crash finds a
                            // mix of written and unwritten unflushed data.
                            glommio::timer::sleep(std::time::Duration::from_micros(
                                rng.gen_range(0..500),
                            ))
                            .await;
                            model.advance(log.high_watermark());
                        }
                    }
                }
                model.advance(log.high_watermark());
                let all = read_all(&log).await;
                assert_eq!(all.len(), model.durable.len(), "seed {seed}: full read");
                if rng.gen_bool(0.5) {
                    log.close().await.expect("close");
                    model.advance(model.end());
                    (model, false)
                } else {
                    drop(log); // crash: whatever was written by now stays, nothing else
                    glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
                    (model, true)
                }
            };
            model = m;
            step += 1;
            if !crashed {
                cov.clean_closes += 1;
            }
            if crashed {
                cov.crashes += 1;
                let (seg, durable_end) = active_segment(&path, &model);
                let seg_base =
                    fsutil::parse_segment_name(seg.file_name().unwrap().to_str().unwrap())
                        .unwrap()
                        .0;
                let dmg = damage(&seg, durable_end, &mut rng);
                match dmg {
                    Damage::Cut(_) => cov.cuts += 1,
                    Damage::Flip(_) => cov.flips += 1,
                    Damage::None => {}
                }
                let p = path.clone();
                let got = {
                    let log = PartitionLog::open(&p, config(), no_cache())
                        .await
                        .expect("reopen after crash");
                    read_all(&log).await
                };
                check_recovered(
                    seed,
                    &mut model,
                    got,
                    Some((seg_base, durable_end)),
                    &dmg,
                    &mut cov,
                );
            }
        }
        eprintln!(
            "model seed {seed}: {cov:?}, {} batches at the end",
            model.durable.len()
        );
        // The log is still sound: one final open reads back exactly the model.
        let p = path.clone();
        let want: Vec<(u64, Vec<u8>)> = model
            .durable
            .iter()
            .map(|b| (b.base, b.bytes.clone()))
            .collect();
        {
            let log = PartitionLog::open(&p, config(), no_cache()).await.unwrap();
            let got: Vec<(u64, Vec<u8>)> = read_all(&log)
                .await
                .into_iter()
                .map(|b| (b.base, b.bytes))
                .collect();
            assert_eq!(got.len(), want.len(), "seed {seed}: final batch count");
            assert!(got == want, "seed {seed}: final contents differ");
            for w in got.windows(2) {
                assert!(w[1].0 > w[0].0, "seed {seed}: offsets repeat");
            }
        }
    })
}

#[test]
fn partition_log_matches_model_through_crashes() {
    let seeds = corelog_engine::testing::seeds("MODEL_SEED", "MODEL_SEEDS", 12);
    for seed in seeds {
        eprintln!("model seed {seed} (replay with MODEL_SEED={seed})");
        let result = std::panic::catch_unwind(|| run_seed(seed));
        if let Err(e) = result {
            eprintln!("FAILED: model seed {seed}; replay with MODEL_SEED={seed}");
            std::panic::resume_unwind(e);
        }
    }
}
