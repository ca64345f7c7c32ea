//! The device measurement: O_DIRECT bandwidth, IOPS and fdatasync latency on the data
//! directory's device, through glommio the way the broker does its I/O.
//!
//! One glommio executor runs every point on scratch files in the data directory
//! (`.corelog-tune-<pid>.scratch`, `.sync` and `.flush<i>`; removed at the end, also on
//! error, and by the next run if this one was killed):
//!
//! 1. **Fill**: the scratch file is preallocated (`fallocate`, as the engine preallocates
//!    segments) and written once in full, 1 MiB at a time with 4 in flight. This is the
//!    first write into unwritten extents, what a new segment costs; it also gives the
//!    read points real data (reads of unwritten extents never reach the device).
//! 2. **Sequential writes** over block sizes x queue depths, each for `point_ms`:
//!    overwrites that walk the file and wrap around. Queue depth `qd` means `qd` tasks,
//!    each keeping one write in flight (the engine's `write_depth` works the same way).
//! 3. **Random 4 KiB writes and reads** at several queue depths, positions from a fixed
//!    seed.
//! 4. **Sequential reads**, 1 MiB, 4 in flight.
//! 5. **Flushes under load**: several logs (one file each, freshly preallocated) stream
//!    writes at the chunk size and depth the rules pick from step 2; every few
//!    milliseconds each log holds its writer, lets its writes drain and runs one
//!    fdatasync, as the broker's background flush does. The hold is timed.
//! 6. **Idle fdatasync latency** on another fresh preallocated file: after each 4 KiB
//!    append, after each rewrite of one 4 KiB block, and after each 1 MiB append. Only
//!    the fdatasync is timed, with nothing else in flight (the engine holds new writes
//!    back during an fdatasync for the same reason).
//!
//! Steps 2 and 3 (the points the rules read) run in several passes in alternating order
//! and keep the median of each point: a virtual disk's figures move by 20-30% from one
//! half second to the next.
//!
//! glommio quirks handled here (see the design notes): `DmaFile::create` opens
//! write-only, so files are opened read+write; and glommio decides per thread and device
//! whether the device supports polled I/O by reading the first `DmaFile` opened, which
//! must not be empty, so the scratch file gets 4 KiB of data before glommio opens it.

mod flush;
mod job;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use glommio::io::{DmaFile, OpenOptions};
use glommio::{LocalExecutorBuilder, Placement};

use crate::figures::{
    fmt_bytes, median, spread_pct, DiskFigures, IopsPoint, ReadPoint, SeqWriteGrid,
};

use flush::{measure_flushes, measure_fsyncs};
use job::{run_job, Access, Dir, Job, Limit};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// What to measure and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Time per timed point.
    pub point_ms: u64,
    /// Passes over the sequential write grid and the random reads (the points the rules
    /// read); each figure is the median of its passes.
    pub passes: usize,
    /// Scratch file size.
    pub file_bytes: u64,
    /// Sequential write block sizes, ascending.
    pub write_blocks: Vec<usize>,
    /// Sequential write queue depths, ascending.
    pub write_depths: Vec<usize>,
    /// Random 4 KiB write queue depths.
    pub rand_write_depths: Vec<usize>,
    /// Random 4 KiB read queue depths (the ring-depth rule reads these).
    pub rand_read_depths: Vec<usize>,
    /// Sequential read block sizes.
    pub read_blocks: Vec<usize>,
    /// Sequential read queue depths.
    pub read_depths: Vec<usize>,
    /// fdatasync samples after a 4 KiB append.
    pub fsync_append_count: usize,
    /// fdatasync samples after a rewrite of the same 4 KiB block.
    pub fsync_rewrite_count: usize,
    /// fdatasync samples after a 1 MiB append.
    pub fsync_1m_count: usize,
    /// Logs flushed at once in the flush test.
    pub flush_logs: usize,
    /// Flushes measured under load, per log.
    pub flush_cycles: usize,
    /// Streaming time between two flushes under load (the broker's default window).
    pub flush_gap_ms: u64,
    /// The measuring executor's registered I/O memory (the broker's per shard).
    pub io_memory_bytes: usize,
    /// The measuring executor's ring depth: must hold the deepest queue measured.
    pub ring_depth: usize,
}

impl Plan {
    /// The standard plan: 70 timed points (16 write cells and 4 random read depths three
    /// times, 2 random write depths, 8 sequential read points), the fill, 320 idle fdatasyncs and 4 logs x 40 flushes under
    /// load.
    pub fn new(point_ms: u64, file_mib: u64) -> Plan {
        let plan = Plan {
            point_ms,
            passes: 3,
            file_bytes: file_mib << 20,
            write_blocks: vec![64 * KIB, 256 * KIB, MIB, 4 * MIB],
            write_depths: vec![1, 2, 4, 8],
            rand_write_depths: vec![1, 32],
            rand_read_depths: vec![1, 8, 32, 128],
            read_blocks: vec![64 * KIB, 256 * KIB, MIB, 4 * MIB],
            read_depths: vec![1, 4],
            fsync_append_count: 200,
            fsync_rewrite_count: 100,
            fsync_1m_count: 20,
            flush_logs: 4,
            flush_cycles: 40,
            flush_gap_ms: 5,
            io_memory_bytes: crate::SHARD_IO_MEMORY_BYTES as usize,
            ring_depth: 256,
        };
        debug_assert!(plan.rand_read_depths.iter().all(|&d| d <= plan.ring_depth));
        plan
    }

    /// The most disk space the flush test's files take (they exist only after the scratch
    /// file is gone).
    pub fn flush_bytes(&self) -> u64 {
        let logs = self.flush_logs.max(1) as u64;
        let biggest = self.write_blocks.iter().max().copied().unwrap_or(0) as u64
            * self.write_depths.iter().max().copied().unwrap_or(0) as u64;
        logs * (self.file_bytes / logs).max(4 * biggest)
    }

    /// Points that each run for `point_ms`.
    pub fn timed_points(&self) -> usize {
        (self.write_blocks.len() * self.write_depths.len() + self.rand_read_depths.len())
            * self.passes
            + self.rand_write_depths.len()
            + self.read_blocks.len() * self.read_depths.len()
    }

    /// Seconds the timed points take (the fill and the fdatasync runs come on top).
    pub fn timed_secs(&self) -> f64 {
        self.timed_points() as f64 * self.point_ms as f64 / 1000.0
    }
}

/// A measurement's results.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The figures.
    pub figures: DiskFigures,
    /// `VmPin` of this process while the measuring executor ran: what io_uring pinned for
    /// one executor with the plan's I/O memory.
    pub pinned_bytes: Option<u64>,
}

/// A scratch file that is removed when dropped (on success, error or panic).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Measures the device holding `data_dir` (which must exist), printing one line per
/// point as it goes.
pub fn measure(data_dir: &Path, plan: &Plan) -> Result<Outcome, String> {
    // Unique names (process id and start time: two runs in containers sharing the
    // directory may have the same pid), created exclusively, so an existing file or a
    // planted symlink is never opened; each name is removed as soon as its file is open.
    let run = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let name = |kind: &str| data_dir.join(format!("{SCRATCH_PREFIX}{run}.{kind}"));
    let scratch = Scratch(name("scratch"));
    let sync = Scratch(name("sync"));
    let logs: Vec<Scratch> = (0..plan.flush_logs)
        .map(|i| Scratch(name(&format!("flush{i}"))))
        .collect();
    write_probe_block(&scratch.0)?;
    let files = Files {
        scratch: scratch.0.clone(),
        sync: sync.0.clone(),
        logs: logs.iter().map(|l| l.0.clone()).collect(),
    };
    let plan = plan.clone();
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .name("corelog-tune")
        .io_memory(plan.io_memory_bytes)
        .ring_depth(plan.ring_depth)
        .spawn(move || async move {
            let out = run_plan(&files, &plan).await;
            // glommio closes files dropped without close() (error paths) on its next I/O
            // cycle: give it one before the executor ends.
            glommio::timer::sleep(Duration::from_millis(2)).await;
            out
        })
        .map_err(|e| format!("cannot start a glommio executor: {e}"))?;
    let out = handle.join().map_err(|e| {
        format!(
            "the measuring glommio executor failed: {e} (see the io_uring and memlock checks \
             above)"
        )
    })?;
    drop((scratch, sync, logs));
    out
}

/// The scratch files of one measurement.
#[derive(Debug, Clone)]
struct Files {
    /// The file of the bandwidth and IOPS points.
    scratch: PathBuf,
    /// The file of the idle fdatasync points.
    sync: PathBuf,
    /// One file per log of the flush test.
    logs: Vec<PathBuf>,
}

/// Scratch files are named `<prefix><pid>.scratch`, `.sync` and `.flush<i>`.
const SCRATCH_PREFIX: &str = ".corelog-tune-";

/// Removes scratch files left in `dir` by runs that were killed (their process is gone):
/// a killed run cannot remove its own.
/// Gives the scratch file 4 KiB of data on disk before glommio opens it (see the module
/// docs: glommio's iopoll probe must read real data).
fn write_probe_block(path: &Path) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("cannot create scratch file {}: {e}", path.display()))?;
    f.write_all(&[0xA5; 4096])
        .and_then(|()| f.sync_data())
        .map_err(|e| format!("cannot write scratch file {}: {e}", path.display()))
}

/// Opens a scratch file with O_DIRECT (`create`: a new one, never an existing file or a
/// symlink) and removes its name at once: the file lives while it is open, and nothing
/// is left in the data directory however the run ends (even by SIGKILL).
async fn open_dma(path: &Path, create: bool) -> Result<DmaFile, String> {
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(create)
        .dma_open(path)
        .await;
    if opened.is_ok() {
        let _ = std::fs::remove_file(path);
    }
    opened.map_err(|e| {
        let io: std::io::Error = e.into();
        if io.raw_os_error() == Some(libc::EINVAL) {
            format!(
                "the filesystem of {} refuses O_DIRECT ({io}); corelog needs direct I/O",
                path.display()
            )
        } else {
            format!("cannot open {} with O_DIRECT: {io}", path.display())
        }
    })
}

/// `fallocate` without keeping the size; a filesystem without it (some network and FUSE
/// filesystems) only makes the fill pass extend the file instead, so it is not fatal.
async fn preallocate(file: &DmaFile, bytes: u64, path: &Path) {
    if let Err(e) = file.pre_allocate(bytes, false).await {
        println!(
            "  (fallocate of {} on {} failed: {e}; writes extend the file instead)",
            fmt_bytes(bytes),
            path.display()
        );
    }
}

fn progress(label: &str, value: &str) {
    println!("  {label:<34} {value}");
    let _ = std::io::stdout().flush();
}

async fn run_plan(files: &Files, plan: &Plan) -> Result<Outcome, String> {
    let scratch = files.scratch.as_path();
    let file = Rc::new(open_dma(scratch, false).await?);
    preallocate(&file, plan.file_bytes, scratch).await;
    let pinned_bytes = vm_pin_bytes();
    let point = Duration::from_millis(plan.point_ms);
    let span = plan.file_bytes;

    let fill = run_job(&file, Job::seq_write(MIB, 4, span, 0), Limit::Bytes(span)).await?;
    progress(
        "fill (first write) 1 MiB qd 4",
        &format!(
            "{:.1} MB/s ({} in {:.2} s)",
            fill.mb_per_s(),
            fmt_bytes(fill.bytes),
            fill.elapsed.as_secs_f64()
        ),
    );

    let (grid, mut spreads) = measure_write_grid(&file, plan, point).await?;
    print_grid(&grid);

    let mut rand_write_4k = Vec::new();
    for &qd in &plan.rand_write_depths {
        let r = run_job(&file, Job::random(Dir::Write, qd, span), Limit::Time(point)).await?;
        progress(
            &format!("rand write 4 KiB qd {qd}"),
            &format!("{:.0} IOPS", r.iops()),
        );
        rand_write_4k.push(IopsPoint {
            queue_depth: qd,
            iops: r.iops(),
        });
    }
    let (rand_read_4k, read_spreads) = measure_rand_reads(&file, plan, point).await?;
    spreads.extend(read_spreads);
    let pass_spread_pct = median(&spreads);
    if plan.passes > 1 {
        progress(
            "passes differ by (median)",
            &format!("{pass_spread_pct:.0}% of a point's median"),
        );
    }
    let mut seq_read = Vec::new();
    for &block in &plan.read_blocks {
        let mut row = Vec::new();
        for &qd in &plan.read_depths {
            let job = Job {
                dir: Dir::Read,
                access: Access::Sequential,
                block,
                qd,
                span,
                start: 0,
            };
            let r = run_job(&file, job, Limit::Time(point)).await?;
            row.push(format!("qd{qd} {:.0}", r.mb_per_s()));
            seq_read.push(ReadPoint {
                block_bytes: block,
                queue_depth: qd,
                mb_per_s: r.mb_per_s(),
            });
        }
        progress(
            &format!("seq read {:>7}", fmt_bytes(block as u64)),
            &format!("{} MB/s", row.join("  ")),
        );
    }

    // The flush test streams at the settings the rules pick from the grid.
    let (chunk, _) = crate::rules::write_chunk(&grid);
    let (depth, _) = crate::rules::write_depth(&grid, chunk);
    close(file, scratch).await?;
    let flush_under_load = measure_flushes(&files.logs, plan, chunk, depth).await?;

    let fsyncs = measure_fsyncs(&files.sync, plan).await?;
    Ok(Outcome {
        figures: DiskFigures {
            point_ms: plan.point_ms,
            passes: plan.passes,
            pass_spread_pct,
            file_bytes: plan.file_bytes,
            fill_write_mb_per_s: fill.mb_per_s(),
            seq_write: grid,
            rand_write_4k,
            rand_read_4k,
            seq_read,
            fsync_append_4k: fsyncs.append_4k,
            fsync_rewrite_4k: fsyncs.rewrite_4k,
            fsync_after_1m: fsyncs.after_1m,
            flush_under_load,
        },
        pinned_bytes,
    })
}

/// The order a pass visits the items of a grid: forward on even passes, backward on odd
/// ones, so a drift during the run (a host cache filling, a device warming up) does not
/// always favour the same end.
fn pass_order(len: usize, pass: usize) -> Vec<usize> {
    if pass.is_multiple_of(2) {
        (0..len).collect()
    } else {
        (0..len).rev().collect()
    }
}

/// The sequential write grid: every (block size, queue depth) cell `plan.passes` times,
/// medians kept. One progress line per block size and pass.
async fn measure_write_grid(
    file: &Rc<DmaFile>,
    plan: &Plan,
    point: Duration,
) -> Result<(SeqWriteGrid, Vec<f64>), String> {
    let (rows, cols) = (plan.write_blocks.len(), plan.write_depths.len());
    // samples[row][col] = [(MB/s, CPU us per MiB)] over passes
    let mut samples = vec![vec![Vec::new(); cols]; rows];
    let mut pos = 0;
    for pass in 0..plan.passes {
        for r in pass_order(rows, pass) {
            let block = plan.write_blocks[r];
            let mut line = Vec::new();
            for c in pass_order(cols, pass) {
                let qd = plan.write_depths[c];
                let job = Job::seq_write(block, qd, plan.file_bytes, pos);
                let res = run_job(file, job, Limit::Time(point)).await?;
                pos = res.next_pos;
                samples[r][c].push((res.mb_per_s(), res.cpu_us_per_mib()));
                line.push((qd, res.mb_per_s()));
            }
            progress(
                &format!(
                    "seq write {:>7} pass {}/{}",
                    fmt_bytes(block as u64),
                    pass + 1,
                    plan.passes
                ),
                &format!("{} MB/s", by_depth(line)),
            );
        }
    }
    let med = |f: fn(&(f64, f64)) -> f64| -> Vec<Vec<f64>> {
        samples
            .iter()
            .map(|row| {
                row.iter()
                    .map(|cell| median(&cell.iter().map(f).collect::<Vec<_>>()))
                    .collect()
            })
            .collect()
    };
    let spreads = samples
        .iter()
        .flatten()
        .filter_map(|cell| spread_pct(&cell.iter().map(|s| s.0).collect::<Vec<_>>()))
        .collect();
    let grid = SeqWriteGrid {
        block_bytes: plan.write_blocks.clone(),
        queue_depths: plan.write_depths.clone(),
        mb_per_s: med(|s| s.0),
        cpu_us_per_mib: med(|s| s.1),
    };
    Ok((grid, spreads))
}

fn print_grid(g: &SeqWriteGrid) {
    println!("  sequential write, medians: MB/s (executor CPU us per MiB)");
    for (r, block) in g.block_bytes.iter().enumerate() {
        let cells: Vec<String> = g
            .queue_depths
            .iter()
            .enumerate()
            .map(|(c, qd)| {
                format!(
                    "qd{qd} {:.0} ({:.0})",
                    g.mb_per_s[r][c],
                    g.cpu_us_per_mib
                        .get(r)
                        .and_then(|row| row.get(c))
                        .unwrap_or(&0.0)
                )
            })
            .collect();
        println!("  {:>11}  {}", fmt_bytes(*block as u64), cells.join("  "));
    }
}

/// Random 4 KiB reads at each queue depth, `plan.passes` times, medians kept.
async fn measure_rand_reads(
    file: &Rc<DmaFile>,
    plan: &Plan,
    point: Duration,
) -> Result<(Vec<IopsPoint>, Vec<f64>), String> {
    let n = plan.rand_read_depths.len();
    let mut samples = vec![Vec::new(); n];
    for pass in 0..plan.passes {
        let mut line = Vec::new();
        for i in pass_order(n, pass) {
            let qd = plan.rand_read_depths[i];
            let job = Job::random(Dir::Read, qd, plan.file_bytes);
            let r = run_job(file, job, Limit::Time(point)).await?;
            samples[i].push(r.iops());
            line.push((qd, r.iops()));
        }
        progress(
            &format!("rand read 4 KiB pass {}/{}", pass + 1, plan.passes),
            &format!("{} IOPS", by_depth(line)),
        );
    }
    let points = plan
        .rand_read_depths
        .iter()
        .zip(&samples)
        .map(|(&queue_depth, s)| IopsPoint {
            queue_depth,
            iops: median(s),
        })
        .collect();
    Ok((
        points,
        samples.iter().filter_map(|s| spread_pct(s)).collect(),
    ))
}

async fn close(file: Rc<DmaFile>, path: &Path) -> Result<(), String> {
    match Rc::try_unwrap(file) {
        Ok(f) => f
            .close()
            .await
            .map_err(|e| format!("close {}: {e}", path.display())),
        // A worker still holds it (cannot happen: all were awaited); glommio closes it on
        // drop.
        Err(_) => Ok(()),
    }
}

/// `VmPin` of this process in bytes: memory pinned by io_uring buffer registrations.
fn vm_pin_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmPin:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// One pass's figures, `(queue depth, value)` measured in pass order, as
/// `qd1 123  qd2 456 ...` in depth order for the progress line.
fn by_depth(mut line: Vec<(usize, f64)>) -> String {
    line.sort_by_key(|&(qd, _)| qd);
    let cells: Vec<String> = line
        .iter()
        .map(|(qd, v)| format!("qd{qd} {v:.0}"))
        .collect();
    cells.join("  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_plan_has_70_points() {
        let p = Plan::new(400, 256);
        assert_eq!(p.timed_points(), 70);
        assert!((p.timed_secs() - 28.0).abs() < 1e-9);
        assert!(p.rand_read_depths.iter().all(|&d| d <= p.ring_depth));
        assert_eq!(p.file_bytes, 256 << 20);
    }

    #[test]
    fn passes_alternate_direction() {
        assert_eq!(pass_order(3, 0), [0, 1, 2]);
        assert_eq!(pass_order(3, 1), [2, 1, 0]);
        assert_eq!(pass_order(3, 2), [0, 1, 2]);
    }

    #[test]
    fn reads_vm_pin() {
        // Present on every Linux since 3.2; zero outside io_uring registrations.
        assert!(vm_pin_bytes().is_some());
    }
}
