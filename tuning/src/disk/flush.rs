//! The flush points: flushes in the middle of write streams, and idle fdatasyncs.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::io::DmaFile;

use super::job::{filled_buffer, Access, Cursor, XorShift};
use super::{close, open_dma, preallocate, progress, Plan, KIB, MIB};
use crate::figures::{fmt_bytes, fmt_us, FlushFigures, LatencyStats};

/// How often a held writer of the flush test looks whether the flush is over.
const HOLD_POLL: Duration = Duration::from_micros(20);

/// Flushes in the middle of write streams, as the broker's background flush does them,
/// for `plan.flush_logs` logs at once (a shard serves several partitions, and under the
/// same load their flushes fall in the same windows and meet in the device and the
/// filesystem journal). Each log has its own freshly preallocated file, so its writes
/// meet unwritten extents like a new segment's. See [`flush_log`].
pub(super) async fn measure_flushes(
    paths: &[PathBuf],
    plan: &Plan,
    chunk: usize,
    depth: usize,
) -> Result<FlushFigures, String> {
    // Room for a few rounds of the queue in each file, whatever the scratch size.
    let per_log = (plan.file_bytes / paths.len().max(1) as u64).max(4 * (chunk * depth) as u64);
    let span = per_log / chunk as u64 * chunk as u64;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(paths.len());
    for path in paths {
        let (path, plan) = (path.clone(), plan.clone());
        tasks.push(glommio::spawn_local(async move {
            let file = Rc::new(open_dma(&path, true).await?);
            preallocate(&file, span, &path).await;
            let out = flush_log(&file, &path, &plan, span, chunk, depth).await;
            close(file, &path).await?;
            out
        }));
    }
    let (mut holds, mut drains, mut bytes) = (Vec::new(), Vec::new(), 0);
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(log) => {
                holds.extend(log.holds);
                drains.extend(log.drains);
                bytes += log.bytes;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let elapsed = started.elapsed();
    if let Some(e) = first_error {
        return Err(e);
    }
    let figures = FlushFigures {
        logs: paths.len(),
        chunk_bytes: chunk,
        write_depth: depth,
        gap_ms: plan.flush_gap_ms,
        hold: LatencyStats::from_samples(&mut holds),
        drain: LatencyStats::from_samples(&mut drains),
        mb_per_s: bytes as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6,
    };
    progress(
        &format!(
            "flush under load {} logs x{}",
            figures.logs, plan.flush_cycles
        ),
        &format!(
            "hold {}  (drain p50 {}; {} qd {depth}, {:.0} MB/s)",
            fmt_latency(&figures.hold),
            fmt_us(figures.drain.p50_us),
            fmt_bytes(chunk as u64),
            figures.mb_per_s
        ),
    );
    Ok(figures)
}

/// What one log's flush test measured.
struct LogFlushes {
    holds: Vec<Duration>,
    drains: Vec<Duration>,
    bytes: u64,
}

/// One log of the flush test: `depth` writers stream `chunk`-sized writes through the
/// file; every `plan.flush_gap_ms` a controller raises `hold` (writers issue nothing
/// new), takes all `depth` permits of a semaphore (the writes in flight hold them, so this
/// waits for them to drain), runs one fdatasync, then gives the permits back and lowers
/// `hold`. The hold (raised to fdatasync done) is what a flush costs the writer.
///
/// The `hold` flag is needed because glommio's semaphore is not fair: a waiter for one
/// unit is woken past one waiting for more, so without it the writers would keep taking
/// the units back and the controller would wait forever.
async fn flush_log(
    file: &Rc<DmaFile>,
    path: &Path,
    plan: &Plan,
    span: u64,
    chunk: usize,
    depth: usize,
) -> Result<LogFlushes, String> {
    let permits = Rc::new(glommio::sync::Semaphore::new(depth as u64));
    let hold = Rc::new(Cell::new(false));
    let stop = Rc::new(Cell::new(false));
    let written = Rc::new(Cell::new(0u64));
    let cursor = Rc::new(Cursor {
        access: Access::Sequential,
        block: chunk as u64,
        blocks: (span / chunk as u64).max(1),
        next_block: Cell::new(0),
        remaining_ops: Cell::new(None),
        rng: Cell::new(XorShift::new(1)),
    });
    let mut writers = Vec::with_capacity(depth);
    for w in 0..depth {
        let (file, permits, hold, stop, written, cursor) = (
            file.clone(),
            permits.clone(),
            hold.clone(),
            stop.clone(),
            written.clone(),
            cursor.clone(),
        );
        writers.push(glommio::spawn_local(async move {
            let buf = Rc::new(filled_buffer(&file, chunk, 200 + w as u64));
            loop {
                // Held: wait on a timer (the reactor keeps running the I/O). The check and
                // the acquire below happen in one poll, so no flush can start in between.
                while hold.get() && !stop.get() {
                    glommio::timer::sleep(HOLD_POLL).await;
                }
                let _permit = permits
                    .acquire_permit(1)
                    .await
                    .map_err(|e| format!("semaphore: {e}"))?;
                let Some(pos) = cursor.next().filter(|_| !stop.get()) else {
                    return Ok::<(), String>(());
                };
                let n = file
                    .write_rc_at(buf.clone(), pos)
                    .await
                    .map_err(|e| format!("write at {pos}: {e}"))?;
                written.set(written.get() + n as u64);
            }
        }));
    }
    let (mut holds, mut drains) = (Vec::new(), Vec::new());
    let mut result = Ok(());
    for _ in 0..plan.flush_cycles {
        glommio::timer::sleep(Duration::from_millis(plan.flush_gap_ms)).await;
        let t = Instant::now();
        hold.set(true);
        let all = permits
            .acquire_permit(depth as u64)
            .await
            .map_err(|e| format!("semaphore: {e}"))?;
        drains.push(t.elapsed());
        let synced = file.fdatasync().await;
        holds.push(t.elapsed());
        drop(all);
        hold.set(false);
        if let Err(e) = synced {
            result = Err(format!("fdatasync {}: {e}", path.display()));
            break;
        }
    }
    stop.set(true);
    for w in writers {
        w.await?;
    }
    result?;
    Ok(LogFlushes {
        holds,
        drains,
        bytes: written.get(),
    })
}

/// The idle fdatasync figures.
pub(super) struct Fsyncs {
    pub(super) append_4k: LatencyStats,
    pub(super) rewrite_4k: LatencyStats,
    pub(super) after_1m: LatencyStats,
}

/// The fdatasync points on a fresh preallocated file laid out as: 4 KiB appends from 0,
/// the rewritten block at 1 MiB, 1 MiB appends from 2 MiB.
pub(super) async fn measure_fsyncs(path: &Path, plan: &Plan) -> Result<Fsyncs, String> {
    let file = open_dma(path, true).await?;
    let append_end = (plan.fsync_append_count * 4 * KIB).next_multiple_of(MIB) as u64;
    let rewrite_at = append_end;
    let big_from = rewrite_at + MIB as u64;
    let total = big_from + (plan.fsync_1m_count * MIB) as u64;
    preallocate(&file, total, path).await;
    let ctx = |op: &str, e: glommio::GlommioError<()>| format!("{op} {}: {e}", path.display());

    let small = Rc::new(filled_buffer(&file, 4 * KIB, 1));
    let mut samples = Vec::with_capacity(plan.fsync_append_count);
    for i in 0..plan.fsync_append_count {
        file.write_rc_at(small.clone(), (i * 4 * KIB) as u64)
            .await
            .map_err(|e| ctx("write", e))?;
        let t = Instant::now();
        file.fdatasync().await.map_err(|e| ctx("fdatasync", e))?;
        samples.push(t.elapsed());
    }
    let append_4k = LatencyStats::from_samples(&mut samples);
    progress(
        &format!("fdatasync after 4 KiB append x{}", append_4k.count),
        &fmt_latency(&append_4k),
    );

    // The block's first write converts its extent; only the rewrites after it count.
    file.write_rc_at(small.clone(), rewrite_at)
        .await
        .map_err(|e| ctx("write", e))?;
    file.fdatasync().await.map_err(|e| ctx("fdatasync", e))?;
    let mut samples = Vec::with_capacity(plan.fsync_rewrite_count);
    for _ in 0..plan.fsync_rewrite_count {
        file.write_rc_at(small.clone(), rewrite_at)
            .await
            .map_err(|e| ctx("write", e))?;
        let t = Instant::now();
        file.fdatasync().await.map_err(|e| ctx("fdatasync", e))?;
        samples.push(t.elapsed());
    }
    let rewrite_4k = LatencyStats::from_samples(&mut samples);
    progress(
        &format!("fdatasync after 4 KiB rewrite x{}", rewrite_4k.count),
        &fmt_latency(&rewrite_4k),
    );

    let big = Rc::new(filled_buffer(&file, MIB, 2));
    let mut samples = Vec::with_capacity(plan.fsync_1m_count);
    for i in 0..plan.fsync_1m_count {
        file.write_rc_at(big.clone(), big_from + (i * MIB) as u64)
            .await
            .map_err(|e| ctx("write", e))?;
        let t = Instant::now();
        file.fdatasync().await.map_err(|e| ctx("fdatasync", e))?;
        samples.push(t.elapsed());
    }
    let after_1m = LatencyStats::from_samples(&mut samples);
    progress(
        &format!("fdatasync after 1 MiB append x{}", after_1m.count),
        &fmt_latency(&after_1m),
    );
    file.close().await.map_err(|e| ctx("close", e))?;
    Ok(Fsyncs {
        append_4k,
        rewrite_4k,
        after_1m,
    })
}

fn fmt_latency(l: &LatencyStats) -> String {
    format!(
        "p50 {}  p99 {}  max {}",
        fmt_us(l.p50_us),
        fmt_us(l.p99_us),
        fmt_us(l.max_us)
    )
}
