//! `corelog tune`: the disk and system probe that writes tuning profiles.
//!
//! Two halves, both run by [`run`]:
//!
//! - **System checks** ([`checks`]): io_uring availability, the memlock limit against the
//!   executors' registered I/O memory, CPU frequency governor, transparent huge pages,
//!   swappiness, the affinity mask against the shard count, the clock source and the data
//!   device's I/O scheduler. Each finding prints OK / INFO / WARN / FAIL, what was found,
//!   why it matters and the command that fixes it. `--apply` makes the safe changes
//!   (runtime only); the default is a dry run.
//! - **Device measurement** ([`disk`]): like Redpanda's iotune, O_DIRECT sequential write
//!   bandwidth over block sizes and queue depths, random 4 KiB IOPS, sequential read
//!   bandwidth and fdatasync latency, on a scratch file in the data directory, through
//!   glommio's `DmaFile` on a glommio executor (the same I/O path as the broker).
//!   [`rules`] turns the figures into a [`Profile`] with pure, documented functions and
//!   [`Profile::to_toml`] writes it with the measurements, which `corelog serve` reads.
//!
//! The crate's README (`tuning/README.md`) describes each rule and check for operators;
//! `tuning/profiles/` holds example profiles.

pub mod checks;
pub mod date;
pub mod device;
pub mod disk;
pub mod figures;
pub mod profile;
pub mod report;
pub mod rules;

use std::path::{Path, PathBuf};

pub use profile::{Measured, Profile};

/// I/O memory `corelog serve` gives each shard's executor (`io_memory` in
/// `server/src/broker/server.rs`); the memlock check sizes the limit from it.
pub const SHARD_IO_MEMORY_BYTES: u64 = 2 << 20;

/// Default time per measured point.
pub const POINT_MS_DEFAULT: u64 = 400;
/// Default scratch file size.
pub const FILE_MIB_DEFAULT: u64 = 256;
/// The scratch file must hold a few of the largest blocks measured (4 MiB).
pub const FILE_MIB_MIN: u64 = 8;
/// Upper bound on the scratch file (it is written in full once).
pub const FILE_MIB_MAX: u64 = 64 << 10;
/// Upper bound on the time per point (70 points are measured).
pub const POINT_MS_MAX: u64 = 60_000;

/// Flags of `corelog tune`.
#[derive(Debug, Clone, clap::Args)]
pub struct TuneArgs {
    /// Data directory whose device is measured (a scratch file is created in it and
    /// removed) [default: ./data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where the profile is written [default: DATA_DIR/tuning.toml]
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Shards the broker will run (for the affinity and memlock checks) [default: CPUs in
    /// the affinity mask]
    #[arg(long)]
    pub shards: Option<usize>,
    /// Time per measured point, in milliseconds (70 points: the default run takes about
    /// 30 s)
    #[arg(long, default_value_t = POINT_MS_DEFAULT)]
    pub point_ms: u64,
    /// Scratch file size in MiB (written once in full, then overwritten and read)
    #[arg(long, default_value_t = FILE_MIB_DEFAULT)]
    pub file_mib: u64,
    /// Make the safe system changes (default: dry run, only print)
    #[arg(long)]
    pub apply: bool,
    /// Skip the device measurement, only check the system
    #[arg(long)]
    pub skip_disk: bool,
    /// Also write the full report as JSON here
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Root of /proc and /sys, for tests
    #[arg(long, hide = true, default_value = "/")]
    pub sysroot: PathBuf,
}

impl Default for TuneArgs {
    fn default() -> Self {
        TuneArgs {
            data_dir: None,
            output: None,
            shards: None,
            point_ms: POINT_MS_DEFAULT,
            file_mib: FILE_MIB_DEFAULT,
            apply: false,
            skip_disk: false,
            json: None,
            sysroot: PathBuf::from("/"),
        }
    }
}

/// Runs `corelog tune`; returns the process exit code (0 ok, 1 error; findings are not
/// errors). Prints a human report to stdout.
///
/// Errors (the data directory cannot be created, the device cannot be measured, the
/// profile cannot be written) are returned as `Err` after everything that could be
/// reported has been printed (and written to `--json`); the caller prints the message and
/// exits with 1.
pub fn run(args: &TuneArgs) -> Result<i32, String> {
    validate_args(args)?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("data"));
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| Profile::default_path(&data_dir));
    let affinity_cpus = checks::affinity_cpus()?;
    let shards = args.shards.unwrap_or(affinity_cpus.len().max(1));
    if shards == 0 {
        return Err("--shards must be at least 1".into());
    }
    let view = checks::SystemView::real(&args.sysroot, &data_dir, shards, affinity_cpus);

    let mut report = report::Report::new(args, &data_dir, shards);
    println!(
        "corelog tune: data dir {}, {} shard{}, {}",
        data_dir.display(),
        shards,
        if shards == 1 { "" } else { "s" },
        if args.apply {
            "--apply (safe changes are made)"
        } else {
            "dry run (nothing is changed; --apply makes the safe changes)"
        }
    );

    let findings = checks::run_all(&view);
    report::print_findings("System checks", &findings, args.apply);
    report.findings = findings;
    if args.apply {
        let applied = checks::apply(&report.findings);
        report::print_applied(&applied);
        let after = checks::run_all(&view);
        report::print_changes(&report.findings, &after);
        report.applied = applied;
        report.findings_after_apply = Some(after);
    }

    if !args.skip_disk {
        match measure_and_write(args, &data_dir, &output, &mut report) {
            Ok(()) => {}
            Err(e) => {
                report.disk_error = Some(e.clone());
                write_json(args, &report)?;
                return Err(e);
            }
        }
    } else {
        println!("\nDevice measurement skipped (--skip-disk): no profile written.");
    }
    write_json(args, &report)?;
    Ok(0)
}

fn validate_args(args: &TuneArgs) -> Result<(), String> {
    if args.point_ms == 0 || args.point_ms > POINT_MS_MAX {
        return Err(format!(
            "--point-ms must be between 1 and {POINT_MS_MAX} (got {})",
            args.point_ms
        ));
    }
    if !(FILE_MIB_MIN..=FILE_MIB_MAX).contains(&args.file_mib) {
        return Err(format!(
            "--file-mib must be between {FILE_MIB_MIN} and {FILE_MIB_MAX} (got {})",
            args.file_mib
        ));
    }
    Ok(())
}

/// The device half: measure, choose, write the profile.
fn measure_and_write(
    args: &TuneArgs,
    data_dir: &Path,
    output: &Path,
    report: &mut report::Report,
) -> Result<(), String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
    let fs = device::filesystem_of(data_dir)?;
    if fs.is_memory() {
        return Err(format!(
            "{} is on {}, which keeps files in memory: there is no device to measure and \
             O_DIRECT is not direct there. Point --data-dir at the disk the broker will use, \
             or pass --skip-disk to only check the system.",
            data_dir.display(),
            fs.name
        ));
    }
    if device::broker_running(data_dir) {
        return Err(format!(
            "a broker is running on {} (it holds {}): the figures would include its load, \
             and the scratch files would compete with its logs for space. Stop it, or \
             measure an idle directory on the same disk.",
            data_dir.display(),
            data_dir.join(".lock").display()
        ));
    }
    if let Some(why) = fs.caveat() {
        println!(
            "\n  WARN  {} is on {}: {why}; the figures may not be the disk's.",
            data_dir.display(),
            fs.name
        );
    }
    let block = device::BlockDevice::of_path(&args.sysroot, data_dir);
    let plan = disk::Plan::new(args.point_ms, args.file_mib);
    // The scratch file, then the flush test's files (after the scratch file is gone).
    let needed = plan.file_bytes.max(plan.flush_bytes()) + (64 << 20);
    let free = device::free_bytes(data_dir)?;
    if free < needed {
        return Err(format!(
            "{} has {} free; the measurement needs {} (lower --file-mib)",
            data_dir.display(),
            figures::fmt_bytes(free),
            figures::fmt_bytes(needed)
        ));
    }
    println!(
        "\nDevice measurement: {} on {}, {}",
        data_dir.display(),
        block
            .as_ref()
            .map(|b| b.describe())
            .unwrap_or_else(|| "no block device found".into()),
        fs.name,
    );
    println!(
        "  {} MiB scratch file; {} points of {} ms ({:.1} s), plus the fill, {} x {} flushes \
         under load and {} idle fdatasyncs",
        args.file_mib,
        plan.timed_points(),
        args.point_ms,
        plan.timed_secs(),
        plan.flush_logs,
        plan.flush_cycles,
        plan.fsync_append_count + plan.fsync_rewrite_count + plan.fsync_1m_count,
    );
    let outcome = disk::measure(data_dir, &plan)?;
    let choice = rules::choose(&outcome.figures);
    report::print_choice(&choice);
    let spread = outcome.figures.pass_spread_pct;
    if spread > figures::NOISY_SPREAD_PCT {
        let note = format!(
            "NOTE: the passes of a point differed by {spread:.0}% (median), more than {:.0}%: \
             the device is shared, throttled or cached by a host, and another run may choose \
             differently. Run again on an idle machine, or with a longer --point-ms.",
            figures::NOISY_SPREAD_PCT
        );
        println!("\n  {}", report::wrap(&note, 2, 8, 100));
    }

    let measured = Measured {
        date_utc: date::utc_now(),
        host: device::hostname(),
        kernel: device::kernel_release(),
        data_dir: std::fs::canonicalize(data_dir)
            .unwrap_or_else(|_| data_dir.to_path_buf())
            .display()
            .to_string(),
        filesystem: fs.name.to_string(),
        device: block,
        io_uring_pinned_bytes: outcome.pinned_bytes,
        disk: outcome.figures,
    };
    let text = choice.profile.to_toml(&measured);
    // The profile must load back: what `corelog serve` will read is checked here.
    profile::Profile::from_toml_str(&text)
        .map_err(|e| format!("internal error: the written profile does not load: {e}"))?;
    if output.exists() {
        // A rerun must not silently lose a profile someone edited: keep the last one.
        let previous = sibling(output, ".previous");
        std::fs::copy(output, &previous).map_err(|e| {
            format!(
                "cannot keep the previous profile as {}: {e}",
                previous.display()
            )
        })?;
        println!("\nKept the previous profile as {}", previous.display());
    }
    write_atomically(output, &text)?;
    println!("\nWrote {}", output.display());
    report.profile_path = Some(output.display().to_string());
    report.choice = Some(choice);
    report.measured = Some(measured);
    Ok(())
}

fn write_json(args: &TuneArgs, report: &report::Report) -> Result<(), String> {
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(report)
            .map_err(|e| format!("cannot encode the JSON report: {e}"))?;
        write_atomically(path, &text)?;
        println!("Wrote JSON report {}", path.display());
    }
    Ok(())
}

/// Writes `text` to a sibling temporary file and renames it over `path`, so a reader
/// never sees half a profile.
fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    // A name of our own, created exclusively: never someone's file, never a symlink.
    let tmp = sibling(path, &format!(".tmp-{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
    if let Err(e) = written {
        if !matches!(e.kind(), std::io::ErrorKind::AlreadyExists) {
            let _ = std::fs::remove_file(&tmp);
        }
        return Err(format!("cannot write {}: {e}", tmp.display()));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot rename {} to {}: {e}", tmp.display(), path.display())
    })?;
    // The rename itself durable, as the broker's catalog writes are.
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
