//! CPUs: the affinity mask against the shard count, and the frequency governor.

use std::collections::BTreeMap;

use super::{Finding, Fix, Status, SysWrite, SystemView};

/// Parses a kernel CPU list (`0-3,8,10-11`).
pub fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if a > b {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// Formats CPUs as a kernel CPU list, collapsing runs: `[0, 1, 2, 5]` -> `0-2,5`.
pub fn fmt_cpu_list(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// Shards against the CPUs this process may run on.
pub fn affinity(view: &SystemView) -> Finding {
    let n = view.affinity_cpus.len();
    let online = view
        .read("sys/devices/system/cpu/online")
        .and_then(|l| parse_cpu_list(&l));
    let mut found = format!(
        "affinity mask: CPUs {} ({n})",
        fmt_cpu_list(&view.affinity_cpus)
    );
    if let Some(online) = &online {
        found += &format!(", online: {} ({})", fmt_cpu_list(online), online.len());
    }
    found += &format!("; shards: {}", view.shards);
    let why = "Each shard is one executor pinned to its own CPU; the broker places shards on \
               the CPUs of its affinity mask (taskset, cgroup cpuset). With more shards than \
               CPUs, executors share a CPU and take turns, so each one's latency includes \
               the other's work.";
    if view.shards > n {
        Finding {
            check: "affinity",
            status: Status::Warn,
            found,
            why: why.into(),
            fix: Some(Fix {
                command: format!(
                    "run at most {n} shards (corelog serve --shards {n}), or widen the mask \
                     (taskset -c <cpus> corelog serve ...)"
                ),
                persist: Some("systemd: CPUAffinity= in the unit".into()),
                writes: Vec::new(),
                manual_because: Some("it is a choice of deployment".into()),
            }),
        }
    } else {
        let spare = n - view.shards;
        if spare > 0 {
            found += &format!(
                " ({spare} CPU{} left for the kernel and clients)",
                plural(spare)
            );
        }
        Finding {
            check: "affinity",
            status: Status::Ok,
            found,
            why: why.into(),
            fix: None,
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The CPU frequency governor of every CPU that exposes cpufreq.
pub fn governor(view: &SystemView) -> Finding {
    let cpu_dir = view.path("sys/devices/system/cpu");
    let mut cpus: Vec<usize> = std::fs::read_dir(&cpu_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("cpu"))
                        .and_then(|n| n.parse().ok())
                })
                .collect()
        })
        .unwrap_or_default();
    cpus.sort_unstable();
    let mut by_governor: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut writes = Vec::new();
    let mut cannot = Vec::new();
    for cpu in cpus {
        let rel = format!("sys/devices/system/cpu/cpu{cpu}/cpufreq");
        let Some(g) = view.read(&format!("{rel}/scaling_governor")) else {
            continue;
        };
        if g != "performance" {
            let offers = view
                .read(&format!("{rel}/scaling_available_governors"))
                .is_none_or(|a| a.split_whitespace().any(|x| x == "performance"));
            if offers {
                writes.push(SysWrite {
                    path: view.path(&format!("{rel}/scaling_governor")),
                    value: "performance".into(),
                });
            } else {
                cannot.push(cpu);
            }
        }
        by_governor.entry(g).or_default().push(cpu);
    }
    let why = "Governors other than performance lower a core's clock while it idles; a \
               thread-per-core broker alternates short bursts with idle waits, so bursts \
               start slow and request latency rises.";
    if by_governor.is_empty() {
        return Finding {
            check: "cpu governor",
            status: Status::Info,
            found: "cpufreq not exposed (no frequency driver: usual in VMs, where the host \
                    sets the frequency)"
                .into(),
            why: why.into(),
            fix: None,
        };
    }
    let found = by_governor
        .iter()
        .map(|(g, cpus)| format!("{g} on CPUs {}", fmt_cpu_list(cpus)))
        .collect::<Vec<_>>()
        .join(", ");
    if by_governor.keys().all(|g| g == "performance") {
        return Finding {
            check: "cpu governor",
            status: Status::Ok,
            found,
            why: why.into(),
            fix: None,
        };
    }
    let found = if cannot.is_empty() {
        found
    } else {
        format!(
            "{found}; CPUs {} do not offer performance",
            fmt_cpu_list(&cannot)
        )
    };
    Finding {
        check: "cpu governor",
        status: Status::Warn,
        found,
        why: why.into(),
        fix: Some(Fix {
            command: "cpupower frequency-set -g performance (or: echo performance | tee \
                      /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)"
                .into(),
            persist: Some(
                "a tuned profile (tuned-adm profile latency-performance) or a boot-time \
                 cpupower service"
                    .into(),
            ),
            writes,
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
    fn cpu_lists() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(fmt_cpu_list(&[5, 0, 1, 2, 7, 8]), "0-2,5,7-8");
        assert_eq!(fmt_cpu_list(&[]), "");
    }

    #[test]
    fn more_shards_than_cpus_warns() {
        let root = FakeRoot::new();
        root.put("sys/devices/system/cpu/online", "0-3");
        let mut view = root.view();
        let f = affinity(&view);
        assert_eq!(f.status, Status::Ok, "{}", f.found);
        assert!(
            f.found.contains("CPUs 0-1 (2), online: 0-3 (4)"),
            "{}",
            f.found
        );
        view.shards = 3;
        let f = affinity(&view);
        assert_eq!(f.status, Status::Warn);
        assert!(f.fix.unwrap().writes.is_empty(), "never applied");
        view.shards = 1;
        assert!(affinity(&view).found.contains("1 CPU left"));
    }

    #[test]
    fn governor_powersave_warns_and_apply_fixes_it() {
        let root = FakeRoot::new();
        for cpu in 0..2 {
            let d = format!("sys/devices/system/cpu/cpu{cpu}/cpufreq");
            root.put(&format!("{d}/scaling_governor"), "performance");
            root.put(
                &format!("{d}/scaling_available_governors"),
                "performance powersave",
            );
        }
        let view = root.view();
        let f = governor(&view);
        assert_eq!(f.status, Status::Ok, "{}", f.found);
        root.put(
            "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor",
            "powersave",
        );
        let f = governor(&view);
        assert_eq!(f.status, Status::Warn);
        assert_eq!(f.found, "performance on CPUs 0, powersave on CPUs 1");
        assert_eq!(f.fix.as_ref().unwrap().writes.len(), 1);
        let applied = apply(&[f]);
        assert_eq!(applied[0].error, None);
        assert_eq!(
            root.get("sys/devices/system/cpu/cpu1/cpufreq/scaling_governor"),
            "performance"
        );
        assert_eq!(governor(&view).status, Status::Ok);
    }

    #[test]
    fn governor_not_exposed_is_info() {
        let root = FakeRoot::new();
        std::fs::create_dir_all(root.dir.path().join("sys/devices/system/cpu/cpu0")).unwrap();
        let f = governor(&root.view());
        assert_eq!(f.status, Status::Info);
        assert!(f.found.contains("not exposed"));
    }
}
