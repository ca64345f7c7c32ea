//! The clock source behind `clock_gettime`.
//!
//! glommio reads the monotonic clock for every task it polls (preemption checks) and
//! every timer; the broker reads it for request latencies. With a clock source the vDSO
//! can read (tsc, the paravirtual clocks, arm64's counter) that costs tens of
//! nanoseconds; with hpet or acpi_pm every read is a system call and a slow device read.

use super::{Finding, Fix, Status, SystemView};

const CURRENT: &str = "sys/devices/system/clocksource/clocksource0/current_clocksource";
const AVAILABLE: &str = "sys/devices/system/clocksource/clocksource0/available_clocksource";

/// Clock sources the vDSO reads without a system call; tsc is preferred where offered.
fn vdso_readable(name: &str) -> bool {
    matches!(
        name,
        "tsc"
            | "kvm-clock"
            | "hyperv_clocksource_tsc_page"
            | "arch_sys_counter"
            | "riscv_clocksource"
    )
}

/// Paravirtual clocks: correct across live migration and TSC frequency changes.
fn paravirtual(name: &str) -> bool {
    matches!(name, "kvm-clock" | "hyperv_clocksource_tsc_page")
}

/// `tsc` (or the architecture's counter) is OK; a paravirtual clock is INFO (not switched
/// automatically); anything read through a system call warns and `--apply` selects tsc
/// when the kernel offers it.
pub fn check(view: &SystemView) -> Finding {
    let why = "glommio reads the clock for every task it polls and every timer; a clock \
               source the vDSO can read (tsc, kvm-clock, arm64's counter) costs tens of \
               nanoseconds per read, while hpet or acpi_pm make every read a system call.";
    let Some(current) = view.read(CURRENT) else {
        return Finding {
            check: "clocksource",
            status: Status::Info,
            found: "current_clocksource not exposed".into(),
            why: why.into(),
            fix: None,
        };
    };
    let available = view.read(AVAILABLE).unwrap_or_default();
    let tsc_offered = available.split_whitespace().any(|c| c == "tsc");
    let found = format!("current {current}, available: {available}");
    let (status, fix) = if current == "tsc" || (vdso_readable(&current) && !paravirtual(&current)) {
        (Status::Ok, None)
    } else if paravirtual(&current) {
        let fix = tsc_offered.then(|| Fix {
            command: format!("echo tsc > /{CURRENT}"),
            persist: Some("kernel command line: clocksource=tsc".into()),
            writes: Vec::new(),
            manual_because: Some(format!(
                "{current} is a sound choice in a VM: it stays correct across live migration, \
                 which can change the TSC's frequency; switch only if the host's TSC is \
                 stable (constant_tsc and nonstop_tsc in /proc/cpuinfo)"
            )),
        });
        (Status::Info, fix)
    } else {
        let fix = Fix {
            command: if tsc_offered {
                format!("echo tsc > /{CURRENT}")
            } else {
                "no tsc offered: check the firmware/hypervisor's TSC settings".into()
            },
            persist: tsc_offered.then(|| "kernel command line: clocksource=tsc".into()),
            // Never switched automatically: a kernel that offers tsc but runs on hpet or
            // acpi_pm has usually found the TSC unstable (or an admin chose so).
            writes: Vec::new(),
            manual_because: Some(if tsc_offered {
                format!(
                    "the kernel (or an admin) chose {current} over the tsc it offers, often \
                     because the TSC was found unstable: switch only if /proc/cpuinfo shows \
                     constant_tsc and nonstop_tsc and dmesg has no 'TSC unstable'"
                )
            } else {
                "the kernel offers no faster clock source".to_string()
            }),
        };
        (Status::Warn, Some(fix))
    };
    Finding {
        check: "clocksource",
        status,
        found,
        why: why.into(),
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::FakeRoot;
    use super::super::{apply, Status};
    use super::*;

    #[test]
    fn tsc_is_ok() {
        let root = FakeRoot::new();
        root.put(CURRENT, "tsc").put(AVAILABLE, "tsc kvm-clock ");
        assert_eq!(check(&root.view()).status, Status::Ok);
    }

    #[test]
    fn kvm_clock_is_info_and_not_applied() {
        let root = FakeRoot::new();
        root.put(CURRENT, "kvm-clock")
            .put(AVAILABLE, "kvm-clock tsc acpi_pm");
        let f = check(&root.view());
        assert_eq!(f.status, Status::Info);
        assert!(f.fix.as_ref().unwrap().writes.is_empty());
        assert!(apply(&[f]).is_empty());
    }

    #[test]
    fn hpet_warns_and_is_left_to_a_person() {
        let root = FakeRoot::new();
        root.put(CURRENT, "hpet").put(AVAILABLE, "tsc hpet acpi_pm");
        let view = root.view();
        let f = check(&view);
        assert_eq!(f.status, Status::Warn);
        let fix = f.fix.clone().unwrap();
        assert_eq!(fix.command, format!("echo tsc > /{CURRENT}"));
        assert!(fix.manual_because.unwrap().contains("constant_tsc"));
        assert!(apply(&[f]).is_empty());
        assert_eq!(root.get(CURRENT), "hpet");
        // Without tsc on offer there is nothing to apply.
        root.put(CURRENT, "hpet").put(AVAILABLE, "hpet acpi_pm");
        let f = check(&view);
        assert_eq!(f.status, Status::Warn);
        assert!(f.fix.unwrap().writes.is_empty());
    }

    #[test]
    fn arm64_counter_is_ok() {
        let root = FakeRoot::new();
        root.put(CURRENT, "arch_sys_counter")
            .put(AVAILABLE, "arch_sys_counter");
        assert_eq!(check(&root.view()).status, Status::Ok);
    }
}
