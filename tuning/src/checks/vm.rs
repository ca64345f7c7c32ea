//! Memory management: transparent huge pages and swappiness.

use super::{Finding, Fix, Status, SysWrite, SystemView};
use crate::device::bracketed;

const THP_ENABLED: &str = "sys/kernel/mm/transparent_hugepage/enabled";
const THP_DEFRAG: &str = "sys/kernel/mm/transparent_hugepage/defrag";
const SWAPPINESS: &str = "proc/sys/vm/swappiness";

/// Highest swappiness that counts as "swap only to avoid running out of memory".
pub const SWAPPINESS_MAX: u32 = 1;

fn not_exposed(check: &'static str, what: &str, why: &str) -> Finding {
    Finding {
        check,
        status: Status::Info,
        found: format!("{what} not exposed"),
        why: why.into(),
        fix: None,
    }
}

/// `transparent_hugepage/enabled`: `always` warns, `madvise` and `never` are fine.
pub fn transparent_hugepages(view: &SystemView) -> Finding {
    let why = "With THP 'always', any page fault of anonymous memory may stall in direct \
               compaction to assemble a 2 MiB page, and khugepaged rewrites memory in the \
               background: millisecond latency spikes and memory bloat. corelog does not ask \
               for huge pages (its buffers come from glibc malloc), so 'madvise' costs it \
               nothing. The kernel's THP admin guide describes the trade-off; latency-bound \
               servers such as Redis warn at start-up when THP is 'always'.";
    let Some(raw) = view.read(THP_ENABLED) else {
        return not_exposed("thp", "transparent_hugepage/enabled", why);
    };
    let mode = bracketed(&raw).unwrap_or_else(|| raw.clone());
    let found = format!("transparent_hugepage/enabled = {mode} ({raw})");
    if mode == "always" {
        Finding {
            check: "thp",
            status: Status::Warn,
            found,
            why: why.into(),
            fix: Some(Fix {
                command: "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled".into(),
                persist: Some("kernel command line: transparent_hugepage=madvise".into()),
                writes: vec![SysWrite {
                    path: view.path(THP_ENABLED),
                    value: "madvise".into(),
                }],
                manual_because: None,
            }),
        }
    } else {
        Finding {
            check: "thp",
            status: Status::Ok,
            found,
            why: why.into(),
            fix: None,
        }
    }
}

/// `transparent_hugepage/defrag`: `always` makes every huge-page fault compact
/// synchronously; it warns when THP is `always` (it then hits every process) and is worth
/// knowing otherwise (it hits processes that madvise).
pub fn thp_defrag(view: &SystemView) -> Finding {
    let why = "defrag 'always' makes a fault that wants a huge page stall in direct reclaim \
               and compaction until it gets one; 'madvise' limits those stalls to memory that \
               asked for huge pages, and 'defer' leaves compaction to kcompactd.";
    let Some(raw) = view.read(THP_DEFRAG) else {
        return not_exposed("thp defrag", "transparent_hugepage/defrag", why);
    };
    let mode = bracketed(&raw).unwrap_or_else(|| raw.clone());
    let enabled = view
        .read(THP_ENABLED)
        .and_then(|r| bracketed(&r))
        .unwrap_or_default();
    let found = format!("transparent_hugepage/defrag = {mode}");
    if mode != "always" {
        return Finding {
            check: "thp defrag",
            status: Status::Ok,
            found,
            why: why.into(),
            fix: None,
        };
    }
    Finding {
        check: "thp defrag",
        status: if enabled == "always" {
            Status::Warn
        } else {
            Status::Info
        },
        found: format!("{found} (THP {enabled})"),
        why: why.into(),
        fix: Some(Fix {
            command: "echo madvise > /sys/kernel/mm/transparent_hugepage/defrag".into(),
            persist: Some(
                "a boot-time unit or tuned profile that writes it (there is no sysctl)".into(),
            ),
            writes: vec![SysWrite {
                path: view.path(THP_DEFRAG),
                value: "madvise".into(),
            }],
            manual_because: None,
        }),
    }
}

/// Whether `/proc/swaps` lists an active swap area.
fn swap_active(view: &SystemView) -> Option<bool> {
    view.read("proc/swaps").map(|s| s.lines().count() > 1)
}

/// `vm.swappiness`: above 1 warns when swap is active (and is worth knowing otherwise).
pub fn swappiness(view: &SystemView) -> Finding {
    let why = "With the default swappiness (60) the kernel pages out idle-looking anonymous \
               memory to keep page cache; a broker's caches and connection state then page \
               back in on the request path at disk latency. 1 keeps swap as a last resort \
               against running out of memory (Confluent's Kafka production guide gives the \
               same value).";
    let Some(raw) = view.read(SWAPPINESS) else {
        return not_exposed("swappiness", "vm.swappiness", why);
    };
    let Ok(value) = raw.parse::<u32>() else {
        return Finding {
            check: "swappiness",
            status: Status::Info,
            found: format!("vm.swappiness = {raw:?} (not a number)"),
            why: why.into(),
            fix: None,
        };
    };
    let swap = swap_active(view);
    let found = format!(
        "vm.swappiness = {value}{}",
        match swap {
            Some(true) => " (swap active)",
            Some(false) => " (no swap active: no effect until swap is added)",
            None => "",
        }
    );
    if value <= SWAPPINESS_MAX {
        return Finding {
            check: "swappiness",
            status: Status::Ok,
            found,
            why: why.into(),
            fix: None,
        };
    }
    Finding {
        check: "swappiness",
        status: if swap == Some(false) {
            Status::Info
        } else {
            Status::Warn
        },
        found,
        why: why.into(),
        fix: Some(Fix {
            command: "sysctl -w vm.swappiness=1".into(),
            persist: Some("echo 'vm.swappiness = 1' > /etc/sysctl.d/60-corelog.conf".into()),
            writes: vec![SysWrite {
                path: view.path(SWAPPINESS),
                value: SWAPPINESS_MAX.to_string(),
            }],
            manual_because: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::FakeRoot;
    use super::super::{apply, Status};
    use super::*;

    #[test]
    fn thp_always_warns_and_apply_writes_madvise() {
        let root = FakeRoot::new();
        root.put(THP_ENABLED, "[always] madvise never");
        let view = root.view();
        let f = transparent_hugepages(&view);
        assert_eq!(f.status, Status::Warn);
        assert!(f.found.starts_with("transparent_hugepage/enabled = always"));
        assert_eq!(apply(&[f])[0].error, None);
        assert_eq!(root.get(THP_ENABLED), "madvise");
        root.put(THP_ENABLED, "always [madvise] never");
        assert_eq!(transparent_hugepages(&view).status, Status::Ok);
        root.put(THP_ENABLED, "always madvise [never]");
        assert_eq!(transparent_hugepages(&view).status, Status::Ok);
    }

    #[test]
    fn thp_defrag_depends_on_enabled() {
        let root = FakeRoot::new();
        root.put(THP_ENABLED, "[always] madvise never");
        root.put(THP_DEFRAG, "[always] defer defer+madvise madvise never");
        let view = root.view();
        assert_eq!(thp_defrag(&view).status, Status::Warn);
        root.put(THP_ENABLED, "always [madvise] never");
        assert_eq!(thp_defrag(&view).status, Status::Info);
        root.put(THP_DEFRAG, "always defer defer+madvise [madvise] never");
        assert_eq!(thp_defrag(&view).status, Status::Ok);
    }

    #[test]
    fn swappiness_60_warns_with_swap_and_apply_writes_1() {
        let root = FakeRoot::new();
        root.put(SWAPPINESS, "60");
        root.put(
            "proc/swaps",
            "Filename\tType\tSize\tUsed\tPriority\n/dev/vdb partition 1 0 -2",
        );
        let view = root.view();
        let f = swappiness(&view);
        assert_eq!(f.status, Status::Warn);
        assert_eq!(f.found, "vm.swappiness = 60 (swap active)");
        assert_eq!(f.fix.as_ref().unwrap().command, "sysctl -w vm.swappiness=1");
        assert_eq!(apply(&[f])[0].error, None);
        assert_eq!(root.get(SWAPPINESS), "1");
        assert_eq!(swappiness(&view).status, Status::Ok);
    }

    #[test]
    fn swappiness_without_swap_is_info() {
        let root = FakeRoot::new();
        root.put(SWAPPINESS, "60");
        root.put("proc/swaps", "Filename\tType\tSize\tUsed\tPriority");
        let f = swappiness(&root.view());
        assert_eq!(f.status, Status::Info);
        assert!(f.fix.is_some());
    }

    #[test]
    fn missing_files_are_not_exposed() {
        let view = FakeRoot::new().view();
        for f in [
            transparent_hugepages(&view),
            thp_defrag(&view),
            swappiness(&view),
        ] {
            assert_eq!(f.status, Status::Info);
            assert!(f.found.ends_with("not exposed"), "{}", f.found);
        }
    }
}
