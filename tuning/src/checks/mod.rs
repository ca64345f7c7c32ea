//! System checks: what on this machine helps or hurts a thread-per-core io_uring broker.
//!
//! Each check reads `/proc` and `/sys` under a sysroot ([`SystemView::sysroot`], `/` for
//! real runs, a temporary tree in tests) and returns a [`Finding`]: a status, what was
//! found, why it matters and, unless all is well, the command that fixes it. Fixes that
//! are safe to make at runtime (CPU governor, transparent huge pages, swappiness, clock
//! source, I/O scheduler) carry the sysfs/procfs writes that [`apply`] performs under
//! `--apply`; the others (io_uring policy, memlock limit, CPU affinity) only print.
//! Applied changes last until reboot; each fix also prints how to make it permanent.

pub mod block;
pub mod clocksource;
pub mod cpu;
pub mod io_uring;
pub mod memlock;
pub mod vm;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// How a finding bears on the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As the broker wants it.
    Ok,
    /// Worth knowing; nothing to fix (or nothing this machine exposes).
    Info,
    /// Costs performance or latency; the broker still runs.
    Warn,
    /// The broker cannot run (or cannot run as designed) until this is fixed.
    Fail,
}

impl Status {
    /// Whether `--apply` makes this finding's writes: only for something wrong now
    /// (WARN, FAIL), never for INFO (say, swappiness without swap, or THP's defrag
    /// setting while THP is madvise), whose fix is printed for a person to decide.
    pub fn applies(self) -> bool {
        matches!(self, Status::Warn | Status::Fail)
    }

    /// The label printed in the report.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Info => "INFO",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Short name of the check (`swappiness`).
    pub check: &'static str,
    /// Verdict.
    pub status: Status,
    /// What was found, with the values read.
    pub found: String,
    /// Why it matters to the broker.
    pub why: String,
    /// How to fix it; `None` when there is nothing to fix.
    pub fix: Option<Fix>,
}

/// How to fix a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fix {
    /// The command an operator runs (effective until reboot).
    pub command: String,
    /// How to make it survive a reboot.
    pub persist: Option<String>,
    /// The writes `--apply` makes; empty when the fix is not applied automatically.
    pub writes: Vec<SysWrite>,
    /// Why `--apply` leaves this one to the operator, when it does.
    pub manual_because: Option<String>,
}

/// One value written to one sysfs/procfs file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysWrite {
    /// The file (already under the sysroot).
    pub path: PathBuf,
    /// The value (a newline is appended when written).
    pub value: String,
}

/// The outcome of one write made by `--apply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// The check whose fix this was.
    pub check: &'static str,
    /// The file written.
    pub path: PathBuf,
    /// The value written.
    pub value: String,
    /// `None` when the write succeeded, else the error.
    pub error: Option<String>,
}

/// RLIMIT_MEMLOCK; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemlockLimit {
    /// Soft limit in bytes (the one the kernel enforces).
    pub soft_bytes: Option<u64>,
    /// Hard limit in bytes (how far an unprivileged process may raise the soft one).
    pub hard_bytes: Option<u64>,
}

/// What the checks look at: the tree to read and the facts about this process.
#[derive(Debug, Clone)]
pub struct SystemView {
    /// Root under which `proc/...` and `sys/...` are read and written.
    pub sysroot: PathBuf,
    /// The broker's data directory (its block device is checked).
    pub data_dir: PathBuf,
    /// Shards the broker will run.
    pub shards: usize,
    /// CPUs in this process's affinity mask.
    pub affinity_cpus: Vec<usize>,
    /// This process's memlock limit.
    pub memlock: MemlockLimit,
    /// Whether to try `io_uring_setup` for real (only on the real system).
    pub probe_io_uring: bool,
}

impl SystemView {
    /// The view of this process on the system under `sysroot`; only a real root (`/`)
    /// probes io_uring.
    pub fn real(
        sysroot: &Path,
        data_dir: &Path,
        shards: usize,
        affinity_cpus: Vec<usize>,
    ) -> SystemView {
        SystemView {
            sysroot: sysroot.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            shards,
            affinity_cpus,
            memlock: memlock::current_limit(),
            probe_io_uring: sysroot == Path::new("/"),
        }
    }

    /// `rel` (such as `proc/sys/vm/swappiness`) under the sysroot.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.sysroot.join(rel)
    }

    /// A file's trimmed content, `None` when it cannot be read.
    pub fn read(&self, rel: &str) -> Option<String> {
        crate::device::read_trimmed(&self.path(rel))
    }

    /// Kernel (major, minor) from `proc/sys/kernel/osrelease`.
    pub fn kernel_version(&self) -> Option<(u32, u32)> {
        parse_kernel_version(&self.read("proc/sys/kernel/osrelease")?)
    }
}

/// `6.18.44-fc-v657` -> `(6, 18)`.
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Runs every check, in report order.
pub fn run_all(view: &SystemView) -> Vec<Finding> {
    vec![
        io_uring::check(view),
        memlock::check(view),
        cpu::affinity(view),
        cpu::governor(view),
        vm::transparent_hugepages(view),
        vm::thp_defrag(view),
        vm::swappiness(view),
        clocksource::check(view),
        block::scheduler(view),
    ]
}

/// Makes the writes of every finding that is not OK. A failed write (permission denied,
/// a value the kernel refuses) is reported in its [`Applied`], never fatal.
pub fn apply(findings: &[Finding]) -> Vec<Applied> {
    findings
        .iter()
        .filter(|f| f.status.applies())
        .filter_map(|f| f.fix.as_ref().map(|fix| (f.check, fix)))
        .flat_map(|(check, fix)| {
            fix.writes.iter().map(move |w| Applied {
                check,
                path: w.path.clone(),
                value: w.value.clone(),
                error: write_value(&w.path, &w.value).err(),
            })
        })
        .collect()
}

/// Writes `value` and a newline to an existing sysfs/procfs file, as `echo value > path`
/// does (the file is never created: a missing file means the kernel lacks the knob).
fn write_value(path: &Path, value: &str) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    f.write_all(format!("{value}\n").as_bytes())
        .map_err(|e| format!("write {value:?} to {}: {e}", path.display()))
}

/// CPUs in this process's affinity mask (`sched_getaffinity`), ascending.
pub fn affinity_cpus() -> Result<Vec<usize>, String> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes at most size_of::<cpu_set_t>() bytes into `set`.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(format!(
            "sched_getaffinity: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the number of bits in `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

#[cfg(test)]
pub(crate) mod testing {
    //! A fake sysroot for the checks' tests.

    use super::*;

    /// A temporary tree standing in for `/`.
    pub struct FakeRoot {
        pub dir: tempfile::TempDir,
    }

    impl FakeRoot {
        pub fn new() -> FakeRoot {
            FakeRoot {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        /// Writes `content` (plus a newline) to `rel`, creating directories.
        pub fn put(&self, rel: &str, content: &str) -> &FakeRoot {
            let p = self.dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, format!("{content}\n")).unwrap();
            self
        }

        pub fn get(&self, rel: &str) -> String {
            std::fs::read_to_string(self.dir.path().join(rel))
                .unwrap()
                .trim()
                .to_string()
        }

        /// A view of this tree: 2 shards on CPUs 0-1, 8 MiB memlock, no io_uring probe.
        pub fn view(&self) -> SystemView {
            SystemView {
                sysroot: self.dir.path().to_path_buf(),
                data_dir: self.dir.path().to_path_buf(),
                shards: 2,
                affinity_cpus: vec![0, 1],
                memlock: MemlockLimit {
                    soft_bytes: Some(8 << 20),
                    hard_bytes: Some(8 << 20),
                },
                probe_io_uring: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::FakeRoot;
    use super::*;

    #[test]
    fn parses_kernel_versions() {
        assert_eq!(parse_kernel_version("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_kernel_version("5.4.0-150-generic"), Some((5, 4)));
        assert_eq!(parse_kernel_version("garbage"), None);
    }

    #[test]
    fn apply_writes_only_non_ok_fixes_and_reports_failures() {
        let root = FakeRoot::new();
        root.put("proc/sys/vm/swappiness", "60")
            .put(
                "proc/swaps",
                "Filename Type Size Used Priority\n/swap file 1 0 -2",
            )
            .put(
                "sys/kernel/mm/transparent_hugepage/enabled",
                "always madvise [never]",
            );
        let view = root.view();
        let findings = vec![vm::swappiness(&view), vm::transparent_hugepages(&view)];
        assert_eq!(findings[0].status, Status::Warn);
        assert_eq!(findings[1].status, Status::Ok);
        let applied = apply(&findings);
        assert_eq!(applied.len(), 1);
        assert_eq!(applied[0].error, None);
        assert_eq!(root.get("proc/sys/vm/swappiness"), "1");
        assert_eq!(vm::swappiness(&view).status, Status::Ok);

        // A write that fails (here: the file vanished) is reported, not fatal.
        std::fs::remove_file(root.dir.path().join("proc/sys/vm/swappiness")).unwrap();
        let applied = apply(&findings[..1]);
        assert!(
            applied[0].error.as_deref().unwrap().contains("open"),
            "{applied:?}"
        );
    }

    #[test]
    fn affinity_mask_is_not_empty() {
        let cpus = affinity_cpus().unwrap();
        assert!(!cpus.is_empty());
        assert!(cpus.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn every_check_runs_on_an_empty_tree() {
        let root = FakeRoot::new();
        let findings = run_all(&root.view());
        assert_eq!(findings.len(), 9);
        for f in &findings {
            assert!(f.status != Status::Fail || f.check == "memlock", "{f:?}");
        }
    }
}
