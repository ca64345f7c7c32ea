//! Is io_uring usable? corelog does all of its disk and network I/O through glommio's
//! io_uring rings, so without it the broker does not start.

use super::{Finding, Fix, Status, SystemView};

/// glommio 0.9 needs the io_uring features of Linux 5.8.
pub const KERNEL_MIN: (u32, u32) = (5, 8);

const WHY: &str = "corelog does all disk and network I/O through io_uring (glommio); \
                   where io_uring is unavailable the broker cannot start.";

/// Checks the kernel version, `kernel.io_uring_disabled` and, on the real system, sets up
/// (and closes) a small ring to see what this process may actually do.
pub fn check(view: &SystemView) -> Finding {
    let release = view.read("proc/sys/kernel/osrelease");
    let version = view.kernel_version();
    let disabled: Option<u32> = view
        .read("proc/sys/kernel/io_uring_disabled")
        .and_then(|v| v.parse().ok());
    let group = view.read("proc/sys/kernel/io_uring_group");
    let probe = view.probe_io_uring.then(probe_setup);

    let mut found = Vec::new();
    if let Some(r) = &release {
        found.push(format!("kernel {r}"));
    }
    match disabled {
        Some(v) => found.push(format!("kernel.io_uring_disabled = {v}")),
        None => found.push("kernel.io_uring_disabled not present (kernel before 6.6)".into()),
    }
    match &probe {
        Some(Ok(())) => found.push("a 4-entry ring was set up and closed".into()),
        Some(Err(errno)) => found.push(format!(
            "io_uring_setup failed: {} ({})",
            std::io::Error::from_raw_os_error(*errno),
            errno_hint(*errno, disabled)
        )),
        None => {}
    }
    let found = found.join("; ");

    let sysctl_fix = || Fix {
        command: "sysctl -w kernel.io_uring_disabled=0".into(),
        persist: Some("echo 'kernel.io_uring_disabled = 0' > /etc/sysctl.d/60-corelog.conf".into()),
        writes: Vec::new(),
        manual_because: Some("it changes a security policy: decide and run it yourself".into()),
    };
    let finding = |status, why: String, fix| Finding {
        check: "io_uring",
        status,
        found: found.clone(),
        why,
        fix,
    };

    if let Some(v) = version.filter(|&v| v < KERNEL_MIN) {
        return finding(
            Status::Fail,
            format!(
                "{WHY} glommio needs Linux {}.{} or later (this is {}.{}).",
                KERNEL_MIN.0, KERNEL_MIN.1, v.0, v.1
            ),
            Some(Fix {
                command: "upgrade the kernel".into(),
                persist: None,
                writes: Vec::new(),
                manual_because: Some("a kernel upgrade needs a reboot".into()),
            }),
        );
    }
    match (probe, disabled) {
        (Some(Err(errno)), d) => {
            let fix = if errno == libc::EPERM && d.unwrap_or(0) == 0 {
                Fix {
                    command: "allow io_uring_setup, io_uring_enter and io_uring_register in \
                              the seccomp profile of the container or service (Docker: \
                              --security-opt seccomp=<profile that allows them>)"
                        .into(),
                    persist: None,
                    writes: Vec::new(),
                    manual_because: Some("it changes a security policy".into()),
                }
            } else {
                sysctl_fix()
            };
            finding(Status::Fail, WHY.into(), Some(fix))
        }
        (_, Some(2)) => finding(
            Status::Fail,
            format!("{WHY} io_uring_disabled = 2 disables io_uring for every process."),
            Some(sysctl_fix()),
        ),
        (probe, Some(1)) => {
            let who = match group.as_deref() {
                Some("-1") | None => "processes with CAP_SYS_ADMIN".to_string(),
                Some(g) => {
                    format!("members of group {g} (kernel.io_uring_group) and CAP_SYS_ADMIN")
                }
            };
            let this = if probe.is_some() {
                " This process may use it; the broker's service user must be allowed too."
            } else {
                ""
            };
            finding(
                Status::Warn,
                format!("{WHY} io_uring_disabled = 1 restricts io_uring to {who}.{this}"),
                Some(sysctl_fix()),
            )
        }
        (Some(Ok(())), _) => finding(Status::Ok, WHY.into(), None),
        (None, _) if release.is_none() && disabled.is_none() => finding(
            Status::Info,
            format!("{WHY} Not exposed under this sysroot."),
            None,
        ),
        (None, _) => finding(Status::Ok, WHY.into(), None),
    }
}

/// What an `io_uring_setup` errno usually means.
fn errno_hint(errno: i32, disabled: Option<u32>) -> &'static str {
    match errno {
        libc::EPERM if disabled.unwrap_or(0) == 0 => {
            "io_uring_disabled is 0, so a seccomp filter or LSM refuses it: container \
             runtimes' default seccomp profiles block the io_uring syscalls"
        }
        libc::EPERM => "refused by kernel.io_uring_disabled",
        libc::ENOSYS => "kernel built without io_uring, or a seccomp filter answering ENOSYS",
        libc::ENOMEM => "before 5.12 ring memory counts against RLIMIT_MEMLOCK",
        _ => "unexpected",
    }
}

/// Size of `struct io_uring_params` (`linux/io_uring.h`): ten u32 fields (entries,
/// flags, features, reserved) and two 40-byte ring offset structs.
const IO_URING_PARAMS_BYTES: usize = 120;

/// Sets up a 4-entry ring and closes it; the errno when the kernel refuses.
pub fn probe_setup() -> Result<(), i32> {
    // All zero: no flags, no SQ thread; the kernel fills in the rest.
    let mut params = [0u32; IO_URING_PARAMS_BYTES / 4];
    // SAFETY: io_uring_setup reads and writes exactly IO_URING_PARAMS_BYTES at the pointer,
    // which points at a zeroed buffer of that size that we own; it returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: `fd` is the ring descriptor just returned to us, closed only here.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::FakeRoot;
    use super::*;

    #[test]
    fn reads_io_uring_disabled() {
        let root = FakeRoot::new();
        root.put("proc/sys/kernel/osrelease", "6.8.0-1-generic");
        root.put("proc/sys/kernel/io_uring_disabled", "0");
        assert_eq!(check(&root.view()).status, Status::Ok);
        root.put("proc/sys/kernel/io_uring_disabled", "1");
        root.put("proc/sys/kernel/io_uring_group", "-1");
        let f = check(&root.view());
        assert_eq!(f.status, Status::Warn);
        assert!(f.why.contains("CAP_SYS_ADMIN"), "{}", f.why);
        assert_eq!(
            f.fix.unwrap().command,
            "sysctl -w kernel.io_uring_disabled=0"
        );
        root.put("proc/sys/kernel/io_uring_disabled", "2");
        let f = check(&root.view());
        assert_eq!(f.status, Status::Fail);
        assert!(f.fix.unwrap().writes.is_empty(), "never applied");
    }

    #[test]
    fn old_kernels_fail() {
        let root = FakeRoot::new();
        root.put("proc/sys/kernel/osrelease", "5.4.0-150-generic");
        let f = check(&root.view());
        assert_eq!(f.status, Status::Fail);
        assert!(f.found.contains("not present"), "{}", f.found);
    }

    #[test]
    fn missing_tree_is_info() {
        assert_eq!(check(&FakeRoot::new().view()).status, Status::Info);
    }

    /// The real syscall: either it works here or it names an errno; never panics.
    #[test]
    fn real_probe_reports() {
        match probe_setup() {
            Ok(()) => {}
            Err(errno) => assert!(errno > 0),
        }
    }
}
