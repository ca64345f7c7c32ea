//! The tuning profile: the broker settings `corelog tune` chooses, kept as a TOML file
//! that `corelog serve` reads.
//!
//! # File format
//!
//! ```toml
//! # Comments carry the reason for each setting; they are not read.
//! [broker]                      # required; exactly these four keys
//! write_chunk_bytes = 1048576   # integer, multiple of 4096, 65536 ..= 4194304
//! write_depth = 4               # integer, 1 ..= 8
//! flush_interval_ms = 5         # integer, 1 ..= 50
//! ring_depth = 128              # integer, 32 ..= 1024
//!
//! [measured]                    # optional: what the settings were chosen from
//! date_utc = "2025-11-22T03:41:07Z"
//! device = "vda"
//! # ... bandwidths, IOPS, fdatasync percentiles
//! ```
//!
//! [`Profile::load`] refuses a missing `[broker]`, a missing or unknown key in it, a
//! value of the wrong type or out of range, and any top-level table other than
//! `[broker]` and `[measured]`, with a message naming the file and the key. `[measured]`
//! is free-form: it must be a table, and nothing in it is read for the settings, so a
//! profile keeps loading when later versions record more figures.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::device::BlockDevice;
use crate::figures::{fmt_bytes, DiskFigures, LatencyStats};
use crate::rules;

/// Smallest write chunk: below this the per-request cost dominates on every device.
pub const WRITE_CHUNK_BYTES_MIN: usize = 64 << 10;
/// Largest write chunk: each partition log keeps several chunks in memory.
pub const WRITE_CHUNK_BYTES_MAX: usize = 4 << 20;
/// Write chunks are whole filesystem blocks (ext4 and xfs use 4096; the engine's
/// `IO_ALIGN`).
pub const WRITE_CHUNK_ALIGN_BYTES: usize = 4096;
/// Fewest writes in flight per log.
pub const WRITE_DEPTH_MIN: usize = 1;
/// Most writes in flight per log.
pub const WRITE_DEPTH_MAX: usize = 8;
/// Shortest background flush window.
pub const FLUSH_INTERVAL_MS_MIN: u64 = 1;
/// Longest background flush window: acks=1 data older than this is not yet durable.
pub const FLUSH_INTERVAL_MS_MAX: u64 = 50;
/// Smallest io_uring ring depth per shard.
pub const RING_DEPTH_MIN: usize = 32;
/// Largest io_uring ring depth per shard.
pub const RING_DEPTH_MAX: usize = 1024;

const BROKER_KEYS: [&str; 4] = [
    "write_chunk_bytes",
    "write_depth",
    "flush_interval_ms",
    "ring_depth",
];

/// The broker settings a profile chooses (what `corelog serve` reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// Size of one direct-I/O write buffer of a partition log (engine `LogConfig`):
    /// multiple of 4096, between 64 KiB and 4 MiB.
    pub write_chunk_bytes: usize,
    /// Writes in flight per log (engine `LogConfig::write_depth`), 1..=8.
    pub write_depth: usize,
    /// acks=0/1 background flush window, 1..=50 ms.
    pub flush_interval_ms: u64,
    /// glommio io_uring ring depth per shard, 32..=1024.
    pub ring_depth: usize,
}

impl Default for Profile {
    /// The broker's settings when there is no profile: 1 MiB chunks, 4 in flight, a 5 ms
    /// flush window and glommio's default ring depth.
    fn default() -> Self {
        Profile {
            write_chunk_bytes: 1 << 20,
            write_depth: 4,
            flush_interval_ms: 5,
            ring_depth: 128,
        }
    }
}

impl Profile {
    /// Where `corelog tune` writes, and `corelog serve` looks for, the profile of a data
    /// directory.
    pub fn default_path(data_dir: &Path) -> PathBuf {
        data_dir.join("tuning.toml")
    }

    /// Reads and validates a profile file.
    pub fn load(path: &Path) -> Result<Profile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read tuning profile {}: {e}", path.display()))?;
        Profile::from_toml_str(&text).map_err(|e| format!("tuning profile {}: {e}", path.display()))
    }

    /// Parses and validates a profile's text (see the module docs for the format).
    pub fn from_toml_str(text: &str) -> Result<Profile, String> {
        let table: toml::Table = text.parse().map_err(|e| format!("not valid TOML: {e}"))?;
        if let Some(unknown) = table.keys().find(|k| *k != "broker" && *k != "measured") {
            return Err(format!(
                "unknown table or key `{unknown}` (a profile has [broker] and optionally \
                 [measured])"
            ));
        }
        if let Some(m) = table.get("measured") {
            if !m.is_table() {
                return Err(format!(
                    "`measured` must be a table, found {}",
                    m.type_str()
                ));
            }
        }
        let broker = match table.get("broker") {
            None => return Err("missing table [broker]".into()),
            Some(toml::Value::Table(t)) => t,
            Some(other) => {
                return Err(format!(
                    "`broker` must be a table, found {}",
                    other.type_str()
                ))
            }
        };
        if let Some(unknown) = broker.keys().find(|k| !BROKER_KEYS.contains(&k.as_str())) {
            return Err(format!(
                "unknown key broker.{unknown} (known keys: {})",
                BROKER_KEYS.join(", ")
            ));
        }
        let int = |key: &str| -> Result<i64, String> {
            match broker.get(key) {
                None => Err(format!("missing key broker.{key}")),
                Some(toml::Value::Integer(i)) => Ok(*i),
                Some(other) => Err(format!(
                    "broker.{key} must be an integer, found {} ({other})",
                    other.type_str()
                )),
            }
        };
        let size = |key: &str| -> Result<usize, String> {
            let v = int(key)?;
            usize::try_from(v).map_err(|_| format!("broker.{key} = {v} must not be negative"))
        };
        let write_chunk_bytes = size("write_chunk_bytes")?;
        let write_depth = size("write_depth")?;
        let flush = int("flush_interval_ms")?;
        let flush_interval_ms = u64::try_from(flush)
            .map_err(|_| format!("broker.flush_interval_ms = {flush} must not be negative"))?;
        let ring_depth = size("ring_depth")?;
        let p = Profile {
            write_chunk_bytes,
            write_depth,
            flush_interval_ms,
            ring_depth,
        };
        p.validate()?;
        Ok(p)
    }

    /// Checks every range; the message lists every value that is out of range.
    pub fn validate(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        if !(WRITE_CHUNK_BYTES_MIN..=WRITE_CHUNK_BYTES_MAX).contains(&self.write_chunk_bytes)
            || !self
                .write_chunk_bytes
                .is_multiple_of(WRITE_CHUNK_ALIGN_BYTES)
        {
            errors.push(format!(
                "broker.write_chunk_bytes = {} must be a multiple of {WRITE_CHUNK_ALIGN_BYTES} \
                 between {WRITE_CHUNK_BYTES_MIN} and {WRITE_CHUNK_BYTES_MAX}",
                self.write_chunk_bytes
            ));
        }
        if !(WRITE_DEPTH_MIN..=WRITE_DEPTH_MAX).contains(&self.write_depth) {
            errors.push(format!(
                "broker.write_depth = {} is out of range {WRITE_DEPTH_MIN}..={WRITE_DEPTH_MAX}",
                self.write_depth
            ));
        }
        if !(FLUSH_INTERVAL_MS_MIN..=FLUSH_INTERVAL_MS_MAX).contains(&self.flush_interval_ms) {
            errors.push(format!(
                "broker.flush_interval_ms = {} is out of range \
                 {FLUSH_INTERVAL_MS_MIN}..={FLUSH_INTERVAL_MS_MAX}",
                self.flush_interval_ms
            ));
        }
        if !(RING_DEPTH_MIN..=RING_DEPTH_MAX).contains(&self.ring_depth) {
            errors.push(format!(
                "broker.ring_depth = {} is out of range {RING_DEPTH_MIN}..={RING_DEPTH_MAX}",
                self.ring_depth
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The profile as TOML: a header naming the date, host, device and kernel, the
    /// `[broker]` settings each with its reason as a comment, and a `[measured]` table
    /// with the figures. The reasons are recomputed from `measured` with
    /// [`rules::choose`]; a setting that differs from what the rules give is marked as
    /// set by hand.
    pub fn to_toml(&self, measured: &Measured) -> String {
        let choice = rules::choose(&measured.disk);
        let reason = |same: bool, why: &str| {
            if same {
                why.to_string()
            } else {
                format!("set by hand; the measurement suggested {why}")
            }
        };
        let c = &choice.profile;
        let r = &choice.reasons;
        let mut s = String::new();
        let device = measured
            .device
            .as_ref()
            .map(|d| d.describe())
            .unwrap_or_else(|| "no block device found".into());
        s += "# corelog tuning profile, written by `corelog tune`.\n";
        s += &format!(
            "# Measured {} on host {}, kernel {}:\n",
            measured.date_utc, measured.host, measured.kernel
        );
        s += &format!(
            "# {} ({}), device {device}.\n",
            measured.data_dir, measured.filesystem
        );
        s += "# `corelog serve` reads [broker] (settings given explicitly in its config win);\n";
        s += "# [measured] records what the settings were chosen from and is not read.\n";
        s += "# See tuning/README.md for the rules.\n\n";
        s += "[broker]\n";
        s += &format!(
            "# {}\n",
            reason(
                c.write_chunk_bytes == self.write_chunk_bytes,
                &r.write_chunk_bytes
            )
        );
        s += &format!("write_chunk_bytes = {}\n", self.write_chunk_bytes);
        s += &format!(
            "# {}\n",
            reason(c.write_depth == self.write_depth, &r.write_depth)
        );
        s += &format!("write_depth = {}\n", self.write_depth);
        s += &format!(
            "# {}\n",
            reason(
                c.flush_interval_ms == self.flush_interval_ms,
                &r.flush_interval_ms
            )
        );
        s += &format!("flush_interval_ms = {}\n", self.flush_interval_ms);
        s += &format!(
            "# {}\n",
            reason(c.ring_depth == self.ring_depth, &r.ring_depth)
        );
        s += &format!("ring_depth = {}\n\n", self.ring_depth);
        s += &measured.to_toml_table();
        s
    }
}

/// What a profile was chosen from: where and when it was measured, and the figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measured {
    /// When, RFC 3339 UTC.
    pub date_utc: String,
    /// Host name.
    pub host: String,
    /// Kernel release.
    pub kernel: String,
    /// The measured data directory (absolute).
    pub data_dir: String,
    /// Its filesystem.
    pub filesystem: String,
    /// Its block device, when it has one.
    pub device: Option<BlockDevice>,
    /// Memory io_uring pinned for the measuring executor (`VmPin` in
    /// `/proc/self/status`, read while it ran): glommio registers its I/O memory with
    /// each of its three rings, so this is what one shard costs against the memlock limit.
    pub io_uring_pinned_bytes: Option<u64>,
    /// The device figures.
    pub disk: DiskFigures,
}

impl Measured {
    fn to_toml_table(&self) -> String {
        let f = &self.disk;
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let mut s = String::from("[measured]\n");
        s += &format!("date_utc = {}\n", q(&self.date_utc));
        s += &format!("host = {}\n", q(&self.host));
        s += &format!("kernel = {}\n", q(&self.kernel));
        s += &format!("data_dir = {}\n", q(&self.data_dir));
        s += &format!("filesystem = {}\n", q(&self.filesystem));
        if let Some(d) = &self.device {
            s += &format!("device = {}\n", q(&d.name));
            if let Some(p) = &d.partition {
                s += &format!("partition = {}\n", q(p));
            }
            if let Some(m) = &d.model {
                s += &format!("device_model = {}\n", q(m));
            }
            if let Some(r) = d.rotational {
                s += &format!("rotational = {r}\n");
            }
            if let Some(v) = &d.scheduler {
                s += &format!("scheduler = {}\n", q(v));
            }
            if let Some(v) = &d.write_cache {
                s += &format!("write_cache = {}\n", q(v));
            }
            if let Some(v) = d.logical_block_bytes {
                s += &format!("logical_block_bytes = {v}\n");
            }
            if let Some(v) = d.physical_block_bytes {
                s += &format!("physical_block_bytes = {v}\n");
            }
        }
        if let Some(p) = self.io_uring_pinned_bytes {
            s += "# pinned by io_uring for one executor with 2 MiB io_memory (VmPin)\n";
            s += &format!("io_uring_pinned_bytes = {p}\n");
        }
        s += &format!("point_ms = {}\n", f.point_ms);
        s += &format!("passes = {}\n", f.passes);
        s += "# median disagreement between the passes of a point, percent of its median\n";
        s += &format!("pass_spread_pct = {:.1}\n", f.pass_spread_pct);
        s += &format!("file_bytes = {}\n", f.file_bytes);
        s += "\n# Bandwidth in MB/s (10^6 bytes/s), rates in operations/s, latency in us.\n";
        s += "# First pass over the preallocated scratch file, 1 MiB writes, 4 in flight.\n";
        s += &format!("fill_write_mb_per_s = {:.1}\n", f.fill_write_mb_per_s);
        s += "# Sequential O_DIRECT overwrites, medians of the passes: one row per block size,\n";
        s += "# one column per queue depth; CPU is the measuring executor's per MiB written.\n";
        s += &format!("seq_write_block_bytes = {:?}\n", f.seq_write.block_bytes);
        s += &format!("seq_write_queue_depths = {:?}\n", f.seq_write.queue_depths);
        let grid = |name: &str, rows: &[Vec<f64>], digits: usize| {
            let mut t = format!("{name} = [\n");
            for (row, block) in rows.iter().zip(&f.seq_write.block_bytes) {
                let cells: Vec<String> = row.iter().map(|v| format!("{v:.digits$}")).collect();
                t += &format!("  [{}], # {}\n", cells.join(", "), fmt_bytes(*block as u64));
            }
            t + "]\n"
        };
        s += &grid("seq_write_mb_per_s", &f.seq_write.mb_per_s, 1);
        if !f.seq_write.cpu_us_per_mib.is_empty() {
            s += &grid("seq_write_cpu_us_per_mib", &f.seq_write.cpu_us_per_mib, 1);
        }
        let points = |name: &str, pts: &[crate::figures::IopsPoint]| {
            let qds: Vec<String> = pts.iter().map(|p| p.queue_depth.to_string()).collect();
            let iops: Vec<String> = pts
                .iter()
                .map(|p| format!("{:.0}.0", p.iops.round()))
                .collect();
            format!(
                "{name}_queue_depths = [{}]\n{name}_iops = [{}]\n",
                qds.join(", "),
                iops.join(", ")
            )
        };
        s += &points("rand_write_4k", &f.rand_write_4k);
        s += &points("rand_read_4k", &f.rand_read_4k);
        // Sequential reads: one row per block size, one column per queue depth.
        let mut blocks: Vec<usize> = f.seq_read.iter().map(|r| r.block_bytes).collect();
        blocks.dedup();
        let mut depths: Vec<usize> = f.seq_read.iter().map(|r| r.queue_depth).collect();
        depths.sort_unstable();
        depths.dedup();
        let list = |v: &[usize]| {
            v.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        s += &format!(
            "seq_read_block_bytes = [{}]\nseq_read_queue_depths = [{}]\nseq_read_mb_per_s = [\n",
            list(&blocks),
            list(&depths)
        );
        for b in &blocks {
            let row: Vec<String> = depths
                .iter()
                .map(|d| {
                    f.seq_read
                        .iter()
                        .find(|r| r.block_bytes == *b && r.queue_depth == *d)
                        .map_or("nan".to_string(), |r| format!("{:.1}", r.mb_per_s))
                })
                .collect();
            s += &format!("  [{}], # {}\n", row.join(", "), fmt_bytes(*b as u64));
        }
        s += "]\n";
        let lat = |name: &str, l: &LatencyStats| {
            format!(
                "{name} = {{ count = {}, p50_us = {}, p99_us = {}, max_us = {} }}\n",
                l.count, l.p50_us, l.p99_us, l.max_us
            )
        };
        s += "# fdatasync after a 4 KiB write into fresh preallocated space.\n";
        s += &lat("fsync_append_4k", &f.fsync_append_4k);
        s += "# fdatasync after rewriting the same 4 KiB block.\n";
        s += &lat("fsync_rewrite_4k", &f.fsync_rewrite_4k);
        s += "# fdatasync after a 1 MiB write into fresh preallocated space.\n";
        s += &lat("fsync_after_1m", &f.fsync_after_1m);
        let fl = &f.flush_under_load;
        s += &format!(
            "# Flushes under load: {} logs, each writing {} chunks with {} in flight into fresh\n\
             # preallocated space; every {} ms each holds its writer, drains, runs one fdatasync.\n",
            fl.logs,
            fmt_bytes(fl.chunk_bytes as u64),
            fl.write_depth,
            fl.gap_ms
        );
        s += &format!("flush_logs = {}\n", fl.logs);
        s += &format!("flush_chunk_bytes = {}\n", fl.chunk_bytes);
        s += &format!("flush_write_depth = {}\n", fl.write_depth);
        s += &format!("flush_gap_ms = {}\n", fl.gap_ms);
        s += &lat("flush_hold", &fl.hold);
        s += &lat("flush_drain", &fl.drain);
        s += &format!("flush_stream_mb_per_s = {:.1}\n", fl.mb_per_s);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::{FlushFigures, IopsPoint, ReadPoint, SeqWriteGrid};

    fn measured() -> Measured {
        let lat = |p50_us| LatencyStats {
            count: 200,
            p50_us,
            p99_us: 3 * p50_us,
            max_us: 5 * p50_us,
        };
        Measured {
            date_utc: "2025-11-22T03:41:07Z".into(),
            host: "test \"host\"".into(),
            kernel: "6.18.0".into(),
            data_dir: "/data/corelog".into(),
            filesystem: "ext4".into(),
            device: None,
            io_uring_pinned_bytes: Some(6 << 20),
            disk: DiskFigures {
                point_ms: 500,
                passes: 3,
                pass_spread_pct: 12.0,
                file_bytes: 256 << 20,
                fill_write_mb_per_s: 321.0,
                seq_write: SeqWriteGrid {
                    block_bytes: vec![64 << 10, 1 << 20],
                    queue_depths: vec![1, 4],
                    mb_per_s: vec![vec![100.0, 200.0], vec![300.0, 400.0]],
                    cpu_us_per_mib: vec![vec![900.0, 800.0], vec![120.0, 110.0]],
                },
                rand_write_4k: vec![IopsPoint {
                    queue_depth: 1,
                    iops: 1234.4,
                }],
                rand_read_4k: vec![
                    IopsPoint {
                        queue_depth: 1,
                        iops: 2000.0,
                    },
                    IopsPoint {
                        queue_depth: 32,
                        iops: 30000.0,
                    },
                ],
                seq_read: vec![
                    ReadPoint {
                        block_bytes: 1 << 20,
                        queue_depth: 1,
                        mb_per_s: 400.0,
                    },
                    ReadPoint {
                        block_bytes: 1 << 20,
                        queue_depth: 4,
                        mb_per_s: 500.0,
                    },
                ],
                fsync_append_4k: lat(1100),
                fsync_rewrite_4k: lat(900),
                fsync_after_1m: lat(1500),
                flush_under_load: FlushFigures {
                    logs: 4,
                    chunk_bytes: 1 << 20,
                    write_depth: 4,
                    gap_ms: 5,
                    hold: lat(1400),
                    drain: lat(900),
                    mb_per_s: 800.0,
                },
            },
        }
    }

    #[test]
    fn default_path_is_in_the_data_dir() {
        assert_eq!(
            Profile::default_path(Path::new("/d")),
            PathBuf::from("/d/tuning.toml")
        );
    }

    #[test]
    fn default_is_valid() {
        Profile::default().validate().unwrap();
    }

    #[test]
    fn round_trips_through_toml() {
        let m = measured();
        let chosen = rules::choose(&m.disk).profile;
        assert_eq!(chosen.write_chunk_bytes, 1 << 20);
        for p in [
            chosen,
            Profile::default(),
            Profile {
                write_chunk_bytes: 4 << 20,
                write_depth: 8,
                flush_interval_ms: 50,
                ring_depth: 1024,
            },
        ] {
            let text = p.to_toml(&m);
            assert_eq!(Profile::from_toml_str(&text).unwrap(), p, "{text}");
        }
        let text = Profile::default().to_toml(&m);
        assert!(
            text.contains("fsync_after_1m = { count = 200, p50_us = 1500"),
            "{text}"
        );
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table["measured"]["host"].as_str(), Some("test \"host\""));
        assert!(
            text.contains("# 5 ms: 3 x the slower idle fdatasync median (1.50 ms"),
            "{text}"
        );
        assert!(
            text.contains("flush_hold = { count = 200, p50_us = 1400"),
            "{text}"
        );
    }

    #[test]
    fn hand_set_values_are_marked() {
        let m = measured();
        let mut p = rules::choose(&m.disk).profile;
        p.ring_depth = 64;
        let text = p.to_toml(&m);
        assert!(
            text.contains("# set by hand; the measurement suggested 128"),
            "{text}"
        );
    }

    const GOOD: &str = "[broker]\nwrite_chunk_bytes = 262144\nwrite_depth = 2\n\
                        flush_interval_ms = 3\nring_depth = 256\n";

    #[test]
    fn loads_minimal_profile_and_ignores_measured() {
        let p = Profile::from_toml_str(GOOD).unwrap();
        assert_eq!(p.write_chunk_bytes, 262144);
        let with = format!("{GOOD}\n[measured]\nanything = [1, 2]\nnested = {{ a = 1 }}\n");
        assert_eq!(Profile::from_toml_str(&with).unwrap(), p);
    }

    fn err(text: &str) -> String {
        Profile::from_toml_str(text).unwrap_err()
    }

    #[test]
    fn refuses_bad_profiles_with_clear_errors() {
        let e = err(&GOOD.replace("ring_depth = 256\n", ""));
        assert_eq!(e, "missing key broker.ring_depth");
        let e = err(&format!("{GOOD}write_chunk = 1\n"));
        assert!(
            e.starts_with("unknown key broker.write_chunk (known keys:"),
            "{e}"
        );
        let e = err(&format!("{GOOD}[extra]\n"));
        assert!(e.starts_with("unknown table or key `extra`"), "{e}");
        let e = err(&GOOD.replace("ring_depth = 256", "ring_depth = 4096"));
        assert_eq!(e, "broker.ring_depth = 4096 is out of range 32..=1024");
        let e = err(&GOOD.replace("262144", "100000"));
        assert!(
            e.contains("write_chunk_bytes = 100000 must be a multiple of 4096"),
            "{e}"
        );
        let e = err(&GOOD.replace("write_depth = 2", "write_depth = 0"));
        assert!(e.contains("write_depth = 0 is out of range 1..=8"), "{e}");
        let e = err(&GOOD.replace("flush_interval_ms = 3", "flush_interval_ms = -3"));
        assert!(e.contains("must not be negative"), "{e}");
        let e = err(&GOOD.replace("write_depth = 2", "write_depth = \"2\""));
        assert!(
            e.contains("broker.write_depth must be an integer, found string"),
            "{e}"
        );
        let e = err(&GOOD.replace("flush_interval_ms = 3", "flush_interval_ms = 2.5"));
        assert!(e.contains("must be an integer, found float"), "{e}");
        assert_eq!(err(""), "missing table [broker]");
        assert!(err("broker = 3").contains("`broker` must be a table"));
        assert!(err(&format!("measured = 1\n{GOOD}")).contains("`measured` must be a table"));
        assert!(err("this is = not toml [").starts_with("not valid TOML"));
        // Several out-of-range values are all reported.
        let e = err(&GOOD
            .replace("write_depth = 2", "write_depth = 9")
            .replace("flush_interval_ms = 3", "flush_interval_ms = 51"));
        assert!(
            e.contains("write_depth = 9") && e.contains("flush_interval_ms = 51"),
            "{e}"
        );
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        let e = Profile::load(&path).unwrap_err();
        assert!(e.starts_with("cannot read tuning profile"), "{e}");
        std::fs::write(&path, "[broker]\n").unwrap();
        let e = Profile::load(&path).unwrap_err();
        assert!(
            e.contains("p.toml: missing key broker.write_chunk_bytes"),
            "{e}"
        );
    }

    /// Every example profile shipped in `tuning/profiles/` loads.
    #[test]
    fn example_profiles_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Profile::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(
            n >= 3,
            "expected at least 3 example profiles in {}",
            dir.display()
        );
    }
}
