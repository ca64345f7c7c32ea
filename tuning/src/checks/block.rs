//! The data device's I/O scheduler.

use super::{Finding, Fix, Status, SysWrite, SystemView};
use crate::device::BlockDevice;

/// The scheduler a device wants: `none` for flash and paravirtual disks (the device or
/// the host queues and orders requests itself), `mq-deadline` for a local rotating disk
/// (bounded seek starvation). The other of the two is acceptable either way.
fn preferred(dev: &BlockDevice) -> &'static str {
    if dev.rotational == Some(true) && !dev.is_virtual() {
        "mq-deadline"
    } else {
        "none"
    }
}

/// `queue/scheduler` of the data directory's disk: `none` or `mq-deadline` is OK,
/// anything else (bfq, kyber) warns and `--apply` selects the preferred one.
pub fn scheduler(view: &SystemView) -> Finding {
    let why = "corelog issues few, large, already ordered writes and bounds its own queue \
               depth; schedulers that reorder or throttle (bfq, kyber) add CPU per request \
               and latency without helping. 'none' hands requests straight to the device \
               (NVMe and virtio disks queue them themselves; in a VM the host schedules \
               again); 'mq-deadline' is the kernel's usual default and harmless, and the \
               right choice for a local rotating disk.";
    let finding = |status, found: String, fix| Finding {
        check: "io scheduler",
        status,
        found,
        why: why.into(),
        fix,
    };
    let Some(dev) = BlockDevice::of_path(&view.sysroot, &view.data_dir) else {
        return finding(
            Status::Info,
            format!(
                "no block device found for {} (tmpfs, overlayfs, network or btrfs filesystems \
                 have none in sysfs)",
                view.data_dir.display()
            ),
            None,
        );
    };
    let Some(active) = dev.scheduler.clone() else {
        return finding(
            Status::Info,
            format!("{}: queue/scheduler not exposed", dev.name),
            None,
        );
    };
    let want = preferred(&dev);
    let mut found = format!(
        "{}: scheduler {active} (offered: {})",
        dev.describe(),
        dev.schedulers.join(" ")
    );
    if let Some(n) = dev.nomerges {
        found += &format!(", nomerges {n}");
    }
    if active == "none" || active == "mq-deadline" {
        if active != want {
            found += &format!("; {want} would also do");
        }
        return finding(Status::Ok, found, None);
    }
    let pick = if dev.schedulers.iter().any(|s| s == want) {
        Some(want)
    } else {
        ["none", "mq-deadline"]
            .into_iter()
            .find(|s| dev.schedulers.iter().any(|o| o == s))
    };
    let fix = match pick {
        Some(s) => Fix {
            command: format!("echo {s} > /sys/block/{}/queue/scheduler", dev.name),
            persist: Some(format!(
                "udev rule in /etc/udev/rules.d/60-corelog-scheduler.rules: \
                 ACTION==\"add|change\", KERNEL==\"{}\", ATTR{{queue/scheduler}}=\"{s}\"",
                dev.name
            )),
            writes: vec![SysWrite {
                path: dev.sys_dir.join("queue/scheduler"),
                value: s.into(),
            }],
            manual_because: None,
        },
        None => Fix {
            command: "load a scheduler module (modprobe mq-deadline)".into(),
            persist: None,
            writes: Vec::new(),
            manual_because: Some("neither none nor mq-deadline is offered".into()),
        },
    };
    finding(Status::Warn, found, Some(fix))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::super::testing::FakeRoot;
    use super::super::{apply, Status};
    use super::*;
    use crate::device::split_dev;

    /// A fake sysfs entry for the real device of the fake root's directory.
    fn fake_disk(root: &FakeRoot, name: &str, rotational: &str, scheduler: &str) {
        let (major, minor) = split_dev(std::fs::metadata(root.dir.path()).unwrap().dev());
        let disk = format!("sys/devices/virtual/block/{name}");
        root.put(&format!("{disk}/queue/scheduler"), scheduler)
            .put(&format!("{disk}/queue/rotational"), rotational)
            .put(&format!("{disk}/queue/nomerges"), "0");
        std::fs::create_dir_all(root.dir.path().join("sys/dev/block")).unwrap();
        std::os::unix::fs::symlink(
            format!("../../devices/virtual/block/{name}"),
            root.dir
                .path()
                .join(format!("sys/dev/block/{major}:{minor}")),
        )
        .unwrap();
    }

    #[test]
    fn none_and_mq_deadline_are_ok() {
        let root = FakeRoot::new();
        fake_disk(&root, "vda", "1", "none [mq-deadline] kyber bfq");
        let f = scheduler(&root.view());
        assert_eq!(f.status, Status::Ok, "{}", f.found);
        assert!(f.found.contains("none would also do"), "{}", f.found);
    }

    #[test]
    fn bfq_on_nvme_warns_and_apply_selects_none() {
        let root = FakeRoot::new();
        fake_disk(&root, "nvme0n1", "0", "none mq-deadline kyber [bfq]");
        let view = root.view();
        let f = scheduler(&view);
        assert_eq!(f.status, Status::Warn);
        assert_eq!(
            f.fix.as_ref().unwrap().command,
            "echo none > /sys/block/nvme0n1/queue/scheduler"
        );
        assert_eq!(apply(&[f])[0].error, None);
        assert_eq!(
            root.get("sys/devices/virtual/block/nvme0n1/queue/scheduler"),
            "none"
        );
    }

    #[test]
    fn rotating_disk_prefers_mq_deadline() {
        let root = FakeRoot::new();
        fake_disk(&root, "sda", "1", "mq-deadline kyber [bfq] none");
        let f = scheduler(&root.view());
        assert_eq!(f.status, Status::Warn);
        assert!(f.fix.unwrap().command.starts_with("echo mq-deadline"));
    }

    #[test]
    fn unknown_device_is_info() {
        let f = scheduler(&FakeRoot::new().view());
        assert_eq!(f.status, Status::Info);
    }
}
