//! Kills a process that appends with flushes (SIGKILL at a random moment), reopens the
//! log and checks every batch it acknowledged, over several cycles on one log.
//!
//! `CRASH_SEED=n` replays a run; `CRASH_CYCLES=k` sets the number of kills (default 6).

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use corelog_engine::batch::{self, RecordBatch};
use corelog_engine::{PartitionLog, TailCache};
use corelog_tests::{crash_config, deterministic_batch, run_on_executor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Ack {
    base: u64,
    cycle: u32,
    task: u32,
    seq: u64,
}

#[test]
fn acknowledged_batches_survive_sigkill() {
    let seed = corelog_engine::testing::seed("CRASH_SEED");
    let cycles: u32 = std::env::var("CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    eprintln!("crash seed {seed} (replay with CRASH_SEED={seed})");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    let mut acks: Vec<Ack> = Vec::new();
    for cycle in 0..cycles {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-appender"))
            .arg(&log_dir)
            .arg(cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start crash-appender");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.push(line);
            }
            lines
        });
        // Wait for it to be running, then kill it at a random moment.
        let started = Instant::now();
        while !std::fs::read_dir(&log_dir)
            .map(|d| d.count() > 0)
            .unwrap_or(false)
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "child never started"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..400)));
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        let status = child.wait().unwrap();
        assert!(!status.success(), "child should have been killed");
        let lines = reader.join().unwrap();
        let mut new = 0;
        for line in lines {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.first() == Some(&"ack") {
                acks.push(Ack {
                    base: parts[1].parse().unwrap(),
                    cycle: parts[2].parse().unwrap(),
                    task: parts[3].parse().unwrap(),
                    seq: parts[4].parse().unwrap(),
                });
                new += 1;
            }
        }
        // Reopen and check every acknowledged batch so far, and the whole log's shape.
        let p = log_dir.clone();
        let expected: Vec<(u64, Vec<u8>)> = acks
            .iter()
            .map(|a| {
                let mut b = deterministic_batch(a.cycle, a.task, a.seq);
                batch::assign(&mut b, a.base as i64, 0);
                (a.base, b)
            })
            .collect();
        let (checked, total) = run_on_executor(move || async move {
            let cache = Rc::new(RefCell::new(TailCache::new(0)));
            let log = PartitionLog::open(&p, crash_config(), cache)
                .await
                .expect("reopen");
            for (base, want) in &expected {
                let data = log.read(*base, 1).await.unwrap_or_else(|e| {
                    panic!("seed {seed}: acknowledged batch at {base} unreadable: {e}")
                });
                let got = data.batches.first().expect("a batch");
                assert_eq!(
                    &got[..],
                    &want[..],
                    "seed {seed}: acknowledged batch at {base} differs"
                );
            }
            // Every stored batch is whole, CRC-valid and offsets are contiguous.
            let mut off = log.log_start_offset();
            let mut batches = 0;
            while off < log.high_watermark() {
                let data = log.read(off, 1 << 20).await.unwrap();
                for c in &data.batches {
                    let mut rest = &c[..];
                    while let Some(b) = RecordBatch::from_prefix(rest) {
                        b.verify_crc().expect("stored batch CRC");
                        assert_eq!(
                            b.base_offset() as u64,
                            off,
                            "seed {seed}: offsets not contiguous"
                        );
                        off = b.last_offset() as u64 + 1;
                        rest = &rest[b.len()..];
                        batches += 1;
                    }
                }
            }
            (expected.len(), batches)
        });
        eprintln!(
            "cycle {cycle}: {new} new acks, {checked} acknowledged batches verified, {total} batches in the log"
        );
    }
    assert!(
        acks.len() > 10,
        "seed {seed}: the child acknowledged too little ({}) for the test to mean anything",
        acks.len()
    );
}
