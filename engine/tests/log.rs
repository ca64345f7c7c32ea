//! Behaviour of the partition log API on real files through real io_uring.

mod common;

use std::rc::Rc;
use std::time::Duration;

use common::{batch, big_cache, no_cache, read_all, run, split};
use corelog_engine::batch::RecordBatch;
use corelog_engine::{AppendOptions, Error, LogConfig, PartitionLog};

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        write_chunk_bytes: 16 << 10,
        write_chunks_inflight_max: 4,
        max_batch_bytes: 20 << 10,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    }
}

#[test]
fn appended_batches_become_readable_only_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p0");
    run(move || async move {
        let log = PartitionLog::open(&path, LogConfig::default(), big_cache())
            .await
            .unwrap();
        let a = log
            .append(batch(1, 3, 100, 1000), AppendOptions::default())
            .await
            .unwrap();
        let b = log
            .append(batch(2, 2, 100, 1001), AppendOptions::default())
            .await
            .unwrap();
        assert_eq!((a.base_offset, a.last_offset), (0, 2));
        assert_eq!((b.base_offset, b.last_offset), (3, 4));
        assert_eq!(log.log_end_offset(), 5);
        assert_eq!(log.high_watermark(), 0, "nothing is durable before a flush");
        assert!(log.read(0, 1 << 20).await.unwrap().batches.is_empty());
        assert_eq!(log.flush().await.unwrap(), 5);
        let data = log.read(0, 1 << 20).await.unwrap();
        let got = split(&data.batches);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0, 3);
        // Reading from an offset inside a batch starts at that batch.
        let mid = split(&log.read(4, 1 << 20).await.unwrap().batches);
        assert_eq!(mid[0].0, 3);
        assert!(matches!(
            log.read(6, 100).await,
            Err(Error::OffsetOutOfRange { .. })
        ));
        log.close().await.unwrap();
    });
}

#[test]
fn disk_reads_match_cache_reads_byte_for_byte_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (dir.path().join("cached"), dir.path().join("disk"));
    run(move || async move {
        let cached = PartitionLog::open(&p1, small_segments(), big_cache())
            .await
            .unwrap();
        let disk = PartitionLog::open(&p2, small_segments(), no_cache())
            .await
            .unwrap();
        for i in 0..200u64 {
            let n = 1 + (i % 7) as usize;
            let v = 50 + (i * 37 % 900) as usize;
            cached
                .append(batch(i, n, v, 1000 + i as i64), AppendOptions::default())
                .await
                .unwrap();
            disk.append(batch(i, n, v, 1000 + i as i64), AppendOptions::default())
                .await
                .unwrap();
            if i % 13 == 0 {
                cached.flush().await.unwrap();
                disk.flush().await.unwrap();
            }
        }
        cached.flush().await.unwrap();
        disk.flush().await.unwrap();
        assert!(disk.segment_count() > 3, "small segments must roll");
        let end = disk.high_watermark();
        for offset in (0..end).step_by(17) {
            let a = cached.read(offset, 3000).await.unwrap();
            let b = disk.read(offset, 3000).await.unwrap();
            assert!(a.from_cache && !b.from_cache);
            // The cache may return more per call (it is not bounded by a segment), so
            // compare the first batch and the byte limit rule.
            let (sa, sb) = (split(&a.batches), split(&b.batches));
            assert_eq!(sa[0], sb[0], "first batch at offset {offset}");
            let first = RecordBatch::new(&sb[0].1).unwrap();
            assert!(first.base_offset() as u64 <= offset && offset <= first.last_offset() as u64);
            assert!(b.bytes <= 3000 || sb.len() == 1);
        }
        // Walk the whole log from disk and compare with the cache, batch by batch.
        let all_b = read_all(&disk, 10_000).await;
        let all_a = read_all(&cached, 10_000).await;
        assert_eq!(all_a.len(), 200);
        assert_eq!(all_a, all_b);
    });
}

#[test]
fn the_first_batch_is_whole_even_when_larger_than_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    run(move || async move {
        let log = PartitionLog::open(&path, LogConfig::default(), no_cache())
            .await
            .unwrap();
        log.append(batch(1, 10, 5000, 1), AppendOptions::default())
            .await
            .unwrap();
        log.append(batch(2, 1, 10, 1), AppendOptions::default())
            .await
            .unwrap();
        log.flush().await.unwrap();
        let r = log.read(0, 100).await.unwrap();
        let got = split(&r.batches);
        assert_eq!(got.len(), 1);
        assert!(got[0].1.len() > 50_000);
        RecordBatch::new(&got[0].1).unwrap().verify_crc().unwrap();
        // A batch larger than one read window (limit + slack) behind a small one: the
        // reader has to scan on and read again.
        log.append(batch(3, 10, 20_000, 1), AppendOptions::default())
            .await
            .unwrap();
        log.append(batch(4, 1, 10, 1), AppendOptions::default())
            .await
            .unwrap();
        log.flush().await.unwrap();
        let r = log.read(11, 100).await.unwrap();
        let got = split(&r.batches);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 11);
        assert!(got[0].1.len() > corelog_engine::reader::READ_SLACK_BYTES + 100);
        RecordBatch::new(&got[0].1).unwrap().verify_crc().unwrap();
        let r = log.read(12, 1 << 20).await.unwrap();
        assert_eq!(
            split(&r.batches)[0].0,
            11,
            "a read inside the big batch starts at it"
        );
    });
}

#[test]
fn group_commit_shares_fdatasyncs_between_concurrent_flushers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    run(move || async move {
        let log = Rc::new(
            PartitionLog::open(&path, LogConfig::default(), big_cache())
                .await
                .unwrap(),
        );
        let mut tasks = Vec::new();
        for t in 0..32u64 {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                for i in 0..20u64 {
                    let info = log
                        .append(batch(t * 100 + i, 2, 200, 5), AppendOptions::default())
                        .await
                        .unwrap();
                    let hw = log.flush().await.unwrap();
                    assert!(
                        hw > info.last_offset,
                        "flush returned before covering the append"
                    );
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        let stats = log.stats();
        assert_eq!(stats.batches_appended, 640);
        assert!(
            stats.fsyncs < 640 / 2,
            "group commit should batch: {} fsyncs for 640 flushes",
            stats.fsyncs
        );
        assert_eq!(log.high_watermark(), 1280);
    });
}

#[test]
fn clean_and_unclean_reopen_keep_every_flushed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let p = path.clone();
    let written = run(move || async move {
        let log = PartitionLog::open(&p, small_segments(), big_cache())
            .await
            .unwrap();
        for i in 0..100u64 {
            log.append(batch(i, 3, 300, 10 * i as i64), AppendOptions::default())
                .await
                .unwrap();
        }
        log.flush().await.unwrap();
        let got = read_all(&log, 1 << 20).await;
        log.close().await.unwrap();
        got
    });
    assert!(path.join("clean-shutdown").exists());
    let p = path.clone();
    let w = written.clone();
    run(move || async move {
        let log = PartitionLog::open(&p, small_segments(), no_cache())
            .await
            .unwrap();
        assert!(log.recovery_report().clean);
        assert_eq!(log.high_watermark(), 300);
        let got = read_all(&log, 1 << 20).await;
        assert_eq!(got, w);
        // Append more, flush, and "crash" (drop without close).
        for i in 100..110u64 {
            log.append(batch(i, 3, 300, 10 * i as i64), AppendOptions::default())
                .await
                .unwrap();
        }
        log.flush().await.unwrap();
        log.append(batch(999, 1, 10, 0), AppendOptions::default())
            .await
            .unwrap(); // not flushed: may or may not survive
    });
    assert!(!path.join("clean-shutdown").exists());
    run(move || async move {
        let log = PartitionLog::open(&path, small_segments(), no_cache())
            .await
            .unwrap();
        assert!(!log.recovery_report().clean);
        assert!(log.high_watermark() >= 330);
        let first = split(&log.read(0, 1 << 20).await.unwrap().batches);
        assert_eq!(first[0], written[0]);
        // New appends continue after what survived.
        let end = log.log_end_offset();
        let info = log
            .append(batch(5, 1, 10, 0), AppendOptions::default())
            .await
            .unwrap();
        assert_eq!(info.base_offset, end);
    });
}

#[test]
fn timestamp_lookup_finds_the_first_batch_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    run(move || async move {
        let log = PartitionLog::open(&path, small_segments(), no_cache())
            .await
            .unwrap();
        for i in 0..300u64 {
            log.append(
                batch(i, 2, 400, 10_000 + 10 * i as i64),
                AppendOptions::default(),
            )
            .await
            .unwrap();
        }
        log.flush().await.unwrap();
        assert!(log.segment_count() > 2);
        for (ts, want) in [
            (0, 0),
            (10_000, 0),
            (10_001, 2),
            (10_010, 2),
            (12_345, 470),
            (12_990, 598),
        ] {
            let hit = log.offset_for_timestamp(ts).await.unwrap().unwrap();
            assert_eq!(hit.base_offset, want, "timestamp {ts}");
        }
        assert_eq!(log.offset_for_timestamp(20_000).await.unwrap(), None);
        assert_eq!(log.max_timestamp(), Some((599, 12_990)));
    });
}

#[test]
fn log_append_time_is_written_into_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    run(move || async move {
        let log = PartitionLog::open(&path, LogConfig::default(), no_cache())
            .await
            .unwrap();
        let opts = AppendOptions {
            leader_epoch: 3,
            log_append_time_ms: Some(777),
        };
        let info = log.append(batch(1, 2, 10, 5), opts).await.unwrap();
        assert_eq!(info.log_append_time_ms, 777);
        log.flush().await.unwrap();
        let got = split(&log.read(0, 1000).await.unwrap().batches);
        let b = RecordBatch::new(&got[0].1).unwrap();
        assert!(b.is_log_append_time());
        assert_eq!(b.max_timestamp(), 777);
        assert_eq!(b.leader_epoch(), 3);
        b.verify_crc().unwrap();
    });
}

#[test]
fn retention_and_delete_records_move_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let p = path.clone();
    run(move || async move {
        let cfg = LogConfig {
            retention_bytes: Some(150 << 10),
            retention_age: Some(Duration::from_secs(3600)),
            ..small_segments()
        };
        let log = PartitionLog::open(&p, cfg, big_cache()).await.unwrap();
        for i in 0..400u64 {
            log.append(
                batch(i, 2, 900, 1_000_000 + i as i64),
                AppendOptions::default(),
            )
            .await
            .unwrap();
        }
        log.flush().await.unwrap();
        let before = log.segment_count();
        let size_before = log.size_bytes();
        assert!(size_before > 300 << 10);
        // Size: keeps at least 150 KiB.
        let deleted = log.enforce_retention(1_000_400).await.unwrap();
        assert!(deleted > 0);
        assert_eq!(log.segment_count(), before - deleted);
        assert!(log.size_bytes() >= 150 << 10);
        let start = log.log_start_offset();
        assert_eq!(start, log.segment_bases()[0]);
        assert!(matches!(
            log.read(0, 100).await,
            Err(Error::OffsetOutOfRange { .. })
        ));
        assert_eq!(
            split(&log.read(start, 100).await.unwrap().batches)[0].0,
            start
        );
        // Age: everything closed is older than an hour at now = +2h.
        let deleted = log.enforce_retention(1_000_000 + 7_200_000).await.unwrap();
        assert!(deleted > 0);
        assert_eq!(log.segment_count(), 1, "only the active segment is left");
        // DeleteRecords inside the active segment.
        let hw = log.high_watermark();
        assert_eq!(log.delete_records_before(hw - 5).await.unwrap(), hw - 5);
        assert!(log.read(hw - 6, 10).await.is_err());
        assert!(log.delete_records_before(hw + 1).await.is_err());
        log.close().await.unwrap();
    });
    run(move || async move {
        let log = PartitionLog::open(&path, small_segments(), no_cache())
            .await
            .unwrap();
        assert_eq!(
            log.log_start_offset(),
            log.high_watermark() - 5,
            "checkpoint survives"
        );
    });
}

#[test]
fn truncate_to_cuts_whole_batches_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let p = path.clone();
    run(move || async move {
        let log = PartitionLog::open(&p, small_segments(), big_cache())
            .await
            .unwrap();
        for i in 0..200u64 {
            log.append(batch(i, 2, 500, i as i64), AppendOptions::default())
                .await
                .unwrap();
        }
        log.flush().await.unwrap();
        let segs = log.segment_count();
        // Offset 151 is inside the batch 150..=151: the whole batch goes.
        assert_eq!(log.truncate_to(151).await.unwrap(), 150);
        assert_eq!(log.log_end_offset(), 150);
        assert_eq!(log.high_watermark(), 150);
        assert!(log.segment_count() <= segs);
        let info = log
            .append(batch(7, 1, 10, 0), AppendOptions::default())
            .await
            .unwrap();
        assert_eq!(info.base_offset, 150);
        log.flush().await.unwrap();
        let got = split(&log.read(148, 1 << 20).await.unwrap().batches);
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![148, 150]);
        // Truncating at a segment boundary.
        let bases = log.segment_bases();
        let cut = bases[1];
        assert_eq!(log.truncate_to(cut).await.unwrap(), cut);
        assert_eq!(log.segment_count(), 1);
    });
    run(move || async move {
        let log = PartitionLog::open(&path, small_segments(), no_cache())
            .await
            .unwrap();
        let end = log.log_end_offset();
        assert_eq!(log.segment_bases(), vec![0]);
        assert_eq!(
            split(&log.read(end - 2, 1 << 20).await.unwrap().batches)[0].0,
            end - 2
        );
    });
}

#[test]
fn invalid_batches_are_refused_without_side_effects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    run(move || async move {
        let log = PartitionLog::open(&path, LogConfig::default(), big_cache())
            .await
            .unwrap();
        let mut bad = batch(1, 2, 10, 0);
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(matches!(
            log.append(bad, AppendOptions::default()).await,
            Err(Error::InvalidBatch(_))
        ));
        let huge = batch(1, 1, 2 << 20, 0);
        assert!(matches!(
            log.append(huge, AppendOptions::default()).await,
            Err(Error::InvalidBatch(_))
        ));
        assert_eq!(log.log_end_offset(), 0);
        let ok = log
            .append(batch(1, 1, 10, 0), AppendOptions::default())
            .await
            .unwrap();
        assert_eq!(ok.base_offset, 0);
    });
}

#[test]
fn long_poll_wakes_when_data_becomes_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    run(move || async move {
        let log = Rc::new(
            PartitionLog::open(&path, LogConfig::default(), big_cache())
                .await
                .unwrap(),
        );
        let waiter = {
            let log = log.clone();
            glommio::spawn_local(async move {
                log.wait_for_data_after(0).await;
                log.high_watermark()
            })
        };
        glommio::timer::sleep(Duration::from_millis(5)).await;
        log.append(batch(1, 3, 10, 0), AppendOptions::default())
            .await
            .unwrap();
        log.flush().await.unwrap();
        assert_eq!(waiter.await, 3);
    });
}

#[test]
fn leader_epochs_are_recorded_enforced_and_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let p = path.clone();
    let epoch = |e| AppendOptions {
        leader_epoch: e,
        log_append_time_ms: None,
    };
    run(move || async move {
        let log = PartitionLog::open(&p, LogConfig::default(), big_cache())
            .await
            .unwrap();
        log.append(batch(1, 2, 10, 0), epoch(0)).await.unwrap();
        log.append(batch(2, 2, 10, 0), epoch(3)).await.unwrap();
        log.append(batch(3, 2, 10, 0), epoch(5)).await.unwrap();
        assert!(matches!(
            log.append(batch(4, 2, 10, 0), epoch(4)).await,
            Err(Error::InvalidArgument(_))
        ));
        log.flush().await.unwrap();
        let starts: Vec<(i32, u64)> = log
            .leader_epochs()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect();
        assert_eq!(starts, vec![(3, 2), (5, 4)]);
        log.truncate_to(4).await.unwrap();
        assert_eq!(log.leader_epochs().len(), 1);
        // Crash (no close): the next open checks every batch's epoch against the cache.
    });
    run(move || async move {
        let log = PartitionLog::open(&path, LogConfig::default(), no_cache())
            .await
            .unwrap();
        assert_eq!(log.log_end_offset(), 4);
        assert_eq!(log.leader_epochs().len(), 1);
        let b = split(&log.read(2, 1000).await.unwrap().batches);
        assert_eq!(RecordBatch::new(&b[0].1).unwrap().leader_epoch(), 3);
    });
}

#[test]
fn corrupt_files_are_rebuilt_truncated_or_reported_never_a_panic() {
    use corelog_engine::fsutil;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let p = path.clone();
    let bases = run(move || async move {
        let log = PartitionLog::open(&p, small_segments(), big_cache())
            .await
            .unwrap();
        for i in 0..200u64 {
            log.append(batch(i, 2, 500, i as i64), AppendOptions::default())
                .await
                .unwrap();
        }
        log.close().await.unwrap();
        log.segment_bases()
    });
    assert!(bases.len() >= 4);
    // Garbage in one offset index, a cut time index, a missing index, and junk past the
    // data of the last segment.
    std::fs::write(
        fsutil::segment_file(&path, bases[0], "index"),
        b"not an index!",
    )
    .unwrap();
    let ti = fsutil::segment_file(&path, bases[1], "timeindex");
    let len = std::fs::metadata(&ti).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&ti)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    std::fs::remove_file(fsutil::segment_file(&path, bases[2], "index")).unwrap();
    let p = path.clone();
    run(move || async move {
        let log = PartitionLog::open(&p, small_segments(), no_cache())
            .await
            .unwrap();
        assert!(log.recovery_report().indexes_rebuilt >= 3);
        assert_eq!(log.high_watermark(), 400);
        for off in (0..400).step_by(7) {
            let got = split(&log.read(off, 1).await.unwrap().batches);
            let b = RecordBatch::new(&got[0].1).unwrap();
            assert!(b.base_offset() as u64 <= off && off <= b.last_offset() as u64);
        }
        // Crash (no close) so the next open validates the active segment.
    });

    // A closed segment cut in the middle: the open logs the damage and serves the rest.
    let seg1 = fsutil::segment_file(&path, bases[1], "log");
    let len = std::fs::metadata(&seg1).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg1)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    std::fs::remove_file(fsutil::segment_file(&path, bases[1], "index")).unwrap();
    let p = path.clone();
    let b2 = bases[2];
    run(move || async move {
        let log = PartitionLog::open(&p, small_segments(), no_cache())
            .await
            .unwrap();
        assert_eq!(log.high_watermark(), 400);
        let first = split(&log.read(0, 1).await.unwrap().batches);
        assert_eq!(first[0].0, 0);
        let after = split(&log.read(b2, 1).await.unwrap().batches);
        assert_eq!(after[0].0, b2);
    });

    // Damaged checkpoints: the epoch cache is refused with a clear error (recovery cannot
    // check the tail without it); the log start checkpoint is ignored with a warning.
    std::fs::write(path.join("log-start-offset"), b"garbage").unwrap();
    std::fs::write(path.join("leader-epoch-checkpoint"), b"CLEP garbage").unwrap();
    let p = path.clone();
    let err = run(move || async move {
        PartitionLog::open(&p, small_segments(), no_cache())
            .await
            .unwrap_err()
            .to_string()
    });
    assert!(err.contains("leader-epoch-checkpoint"), "{err}");
    std::fs::remove_file(path.join("leader-epoch-checkpoint")).unwrap();
    run(move || async move {
        let log = PartitionLog::open(&path, small_segments(), no_cache())
            .await
            .unwrap();
        assert_eq!(log.log_start_offset(), 0);
    });
}

#[test]
fn a_cancelled_flush_does_not_wedge_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    run(move || async move {
        let log = Rc::new(
            PartitionLog::open(&path, LogConfig::default(), big_cache())
                .await
                .unwrap(),
        );
        for round in 0..40u64 {
            log.append(batch(round, 4, 20_000, 0), AppendOptions::default())
                .await
                .unwrap();
            let l = log.clone();
            let flushing = glommio::spawn_local(async move { l.flush().await });
            // Let it get somewhere (sealing, waiting for writes, or in fdatasync), then
            // drop it: dropping a glommio task cancels it wherever it is.
            glommio::timer::sleep(Duration::from_micros(37 * round)).await;
            drop(flushing);
            let hw =
                glommio::timer::timeout(Duration::from_secs(10), async { Ok(log.flush().await) })
                    .await
                    .expect("a flush after a cancelled one never finished")
                    .unwrap();
            assert_eq!(hw, log.log_end_offset(), "round {round}");
        }
    });
}

#[test]
fn sequential_disk_reads_use_the_read_ahead_and_return_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (dir.path().join("cached"), dir.path().join("disk"));
    run(move || async move {
        let config = LogConfig {
            segment_bytes: 256 << 10,
            ..small_segments()
        };
        let cached = PartitionLog::open(&p1, config.clone(), big_cache())
            .await
            .unwrap();
        let disk = PartitionLog::open(&p2, config, no_cache()).await.unwrap();
        for i in 0..300u64 {
            let (n, v) = (1 + (i % 5) as usize, 100 + (i * 53 % 1500) as usize);
            for log in [&cached, &disk] {
                log.append(batch(i, n, v, 1000 + i as i64), AppendOptions::default())
                    .await
                    .unwrap();
            }
        }
        cached.flush().await.unwrap();
        disk.flush().await.unwrap();
        assert!(disk.segment_count() > 2, "segments must roll");
        let expected = read_all(&cached, 100_000).await;

        // One reader walking the log: after its first read of each segment, every read
        // should be the read-ahead of the one before.
        assert_eq!(read_all(&disk, 8_000).await, expected);
        let hits = disk.stats().readahead_hits;
        assert!(hits > 20, "read-ahead hits: {hits}");

        // Two readers alternating drop each other's read-ahead; nothing changes in what
        // they get. A read far below the limit starts none.
        let at = |off: u64| expected.iter().position(|(b, _)| *b == off).unwrap();
        let end = disk.high_watermark();
        let (mut a, mut b) = (0u64, expected[expected.len() / 2].0);
        while a < end || b < end {
            for off in [&mut a, &mut b] {
                if *off >= end {
                    continue;
                }
                let got = split(&disk.read(*off, 6_000).await.unwrap().batches);
                let i = at(*off);
                assert_eq!(got[..], expected[i..i + got.len()], "read at {off}");
                *off = RecordBatch::new(&got.last().unwrap().1)
                    .unwrap()
                    .last_offset() as u64
                    + 1;
            }
        }
        let before = disk.stats().readahead_hits;
        let small = disk.read(expected[3].0, 10).await.unwrap();
        assert_eq!(split(&small.batches)[0], expected[3]);
        disk.read(expected[4].0, 10).await.unwrap();
        assert_eq!(disk.stats().readahead_hits, before);
        disk.close().await.unwrap();
        cached.close().await.unwrap();
    });
}
