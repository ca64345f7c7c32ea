//! The memlock limit against what the broker's executors lock.
//!
//! glommio registers each executor's I/O memory (`io_memory`; corelog serve uses
//! [`SHARD_IO_MEMORY_BYTES`]) with each of its three io_uring rings (main, latency, poll).
//! Unless the process has CAP_IPC_LOCK, the kernel charges every registration to the
//! user's locked memory, which RLIMIT_MEMLOCK bounds (the sum over all of the user's
//! processes, checked against the limit of the process registering). `corelog tune`
//! measures this charge: the `VmPin` of its own measuring executor, recorded in the
//! profile as `io_uring_pinned_bytes`. Before Linux 5.12 the rings' own memory was charged
//! to the same limit.
//!
//! What glommio does with the limit: below 512 KiB it refuses to start an executor (the
//! error only shows at `join()`); when a registration does not fit it logs a warning and
//! runs that executor without registered buffers, which costs a page-pinning per I/O.

use super::{Finding, Fix, MemlockLimit, Status, SystemView};
use crate::figures::fmt_bytes;
use crate::SHARD_IO_MEMORY_BYTES;

/// glommio refuses to start an executor below this memlock limit.
pub const GLOMMIO_MEMLOCK_MIN_BYTES: u64 = 512 << 10;
/// io_uring rings per glommio executor; each registers the I/O memory.
pub const RINGS_PER_EXECUTOR: u64 = 3;
/// Ring depth assumed for the ring-memory estimate (glommio's default).
const RING_DEPTH_ASSUMED: u64 = 128;
/// CAP_IPC_LOCK's bit in the capability sets of `/proc/self/status`.
const CAP_IPC_LOCK_BIT: u32 = 14;

/// This process's RLIMIT_MEMLOCK.
pub fn current_limit() -> MemlockLimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the rlimit struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    let bytes = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    if rc != 0 {
        return MemlockLimit {
            soft_bytes: None,
            hard_bytes: None,
        };
    }
    MemlockLimit {
        soft_bytes: bytes(lim.rlim_cur),
        hard_bytes: bytes(lim.rlim_max),
    }
}

/// Bytes of one io_uring ring of `depth` entries: the SQE array (64 B each) and the
/// shared SQ/CQ ring (a 4 B index per SQE, two 16 B CQEs per SQE, headers), each
/// rounded up to pages.
pub fn ring_bytes(depth: u64) -> u64 {
    const PAGE: u64 = 4096;
    let sqes = (64 * depth).next_multiple_of(PAGE);
    let rings = (4 * depth + 2 * 16 * depth + 256).next_multiple_of(PAGE);
    sqes + rings
}

/// Locked memory one shard is charged: its I/O memory once per ring, plus the rings
/// themselves on kernels before 5.12.
pub fn charge_per_shard_bytes(kernel: Option<(u32, u32)>) -> u64 {
    let registered = RINGS_PER_EXECUTOR * SHARD_IO_MEMORY_BYTES;
    let rings_charged = kernel.is_some_and(|k| k < (5, 12));
    if rings_charged {
        registered + RINGS_PER_EXECUTOR * ring_bytes(RING_DEPTH_ASSUMED)
    } else {
        registered
    }
}

/// Whether `CapEff` in `status` (the text of `/proc/<pid>/status`) has CAP_IPC_LOCK.
pub fn has_cap_ipc_lock(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK_BIT) != 0)
}

fn fmt_limit(v: Option<u64>) -> String {
    v.map(fmt_bytes).unwrap_or_else(|| "unlimited".into())
}

/// Compares the soft limit with what `view.shards` executors need.
pub fn check(view: &SystemView) -> Finding {
    let lim = view.memlock;
    let need = view.shards as u64 * charge_per_shard_bytes(view.kernel_version());
    let cap = view
        .read("proc/self/status")
        .is_some_and(|s| has_cap_ipc_lock(&s));
    let found = format!(
        "RLIMIT_MEMLOCK soft {} (hard {}); {} shards x {} I/O memory x {} rings = {} if \
         charged{}",
        fmt_limit(lim.soft_bytes),
        fmt_limit(lim.hard_bytes),
        view.shards,
        fmt_bytes(SHARD_IO_MEMORY_BYTES),
        RINGS_PER_EXECUTOR,
        fmt_bytes(need),
        if cap {
            "; this process has CAP_IPC_LOCK, so io_uring charges nothing"
        } else {
            ""
        }
    );
    let why = "glommio registers each executor's I/O memory with each of its 3 io_uring \
               rings, and without CAP_IPC_LOCK the kernel charges every registration \
               against RLIMIT_MEMLOCK (summed over all of the user's processes). When it \
               does not fit, glommio runs without registered buffers (slower I/O); below \
               512 KiB it does not start executors at all."
        .to_string();
    let fix = || Fix {
        command: format!(
            "ulimit -l unlimited (or at least {} KiB) in the shell or script that starts \
             corelog; the hard limit must allow it (ulimit -Hl)",
            need.div_ceil(1024)
        ),
        persist: Some(
            "systemd: LimitMEMLOCK=infinity in the unit; otherwise '<user> - memlock \
             unlimited' in /etc/security/limits.conf; Docker: --ulimit memlock=-1"
                .into(),
        ),
        writes: Vec::new(),
        manual_because: Some(
            "a limit raised by this command would only apply to this process".into(),
        ),
    };
    let soft = lim.soft_bytes.unwrap_or(u64::MAX);
    let (status, fix) = if soft < GLOMMIO_MEMLOCK_MIN_BYTES {
        (Status::Fail, Some(fix()))
    } else if cap || soft >= need {
        (Status::Ok, None)
    } else {
        (Status::Warn, Some(fix()))
    };
    Finding {
        check: "memlock",
        status,
        found,
        why,
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::FakeRoot;
    use super::*;

    const STATUS_ROOT: &str = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n";
    const STATUS_USER: &str = "Name:\tx\nCapEff:\t0000000000000000\n";

    #[test]
    fn reads_cap_ipc_lock() {
        assert!(has_cap_ipc_lock(STATUS_ROOT));
        assert!(!has_cap_ipc_lock(STATUS_USER));
        assert!(!has_cap_ipc_lock("garbage"));
        assert!(has_cap_ipc_lock("CapEff:\t0000000000004000\n"));
    }

    #[test]
    fn charge_counts_each_ring() {
        assert_eq!(charge_per_shard_bytes(Some((6, 8))), 6 << 20);
        assert_eq!(ring_bytes(128), 8192 + 8192);
        assert_eq!(charge_per_shard_bytes(Some((5, 10))), (6 << 20) + 3 * 16384);
    }

    #[test]
    fn compares_limit_with_shards() {
        let root = FakeRoot::new();
        root.put("proc/sys/kernel/osrelease", "6.8.0");
        root.put("proc/self/status", STATUS_USER);
        let mut view = root.view();
        // 2 shards x 6 MiB = 12 MiB > 8 MiB.
        let f = check(&view);
        assert_eq!(f.status, Status::Warn, "{}", f.found);
        assert!(f.found.contains("= 12 MiB if charged"), "{}", f.found);
        assert!(f.fix.unwrap().writes.is_empty());
        view.shards = 1;
        assert_eq!(check(&view).status, Status::Ok);
        view.shards = 2;
        view.memlock.soft_bytes = None;
        assert_eq!(check(&view).status, Status::Ok);
        view.memlock.soft_bytes = Some(64 << 10);
        assert_eq!(check(&view).status, Status::Fail);
        // CAP_IPC_LOCK: nothing is charged, but glommio's own floor still applies.
        root.put("proc/self/status", STATUS_ROOT);
        assert_eq!(check(&view).status, Status::Fail);
        view.memlock.soft_bytes = Some(8 << 20);
        let f = check(&view);
        assert_eq!(f.status, Status::Ok);
        assert!(f.found.contains("CAP_IPC_LOCK"), "{}", f.found);
    }

    #[test]
    fn reads_this_process_limit() {
        let lim = current_limit();
        if let (Some(s), Some(h)) = (lim.soft_bytes, lim.hard_bytes) {
            assert!(s <= h);
        }
    }
}
