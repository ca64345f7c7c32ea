//! What the data directory lives on: its filesystem and its block device.
//!
//! The block device is found the way `lsblk` does: the directory's `st_dev` gives
//! `MAJOR:MINOR`, `/sys/dev/block/MAJOR:MINOR` links to the device's sysfs directory, and
//! a partition's directory (which has a `partition` file and no `queue/`) sits inside its
//! disk's. All sysfs paths are read under a sysroot so tests can use a fake tree.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A filesystem, named from `statfs`'s `f_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filesystem {
    /// Short name (`ext4`, `xfs`, `tmpfs`, ...), or `unknown`.
    pub name: &'static str,
    /// The `f_type` magic number.
    pub magic: u32,
}

impl Filesystem {
    /// Filesystems that keep files in memory: there is no device behind them to measure.
    pub fn is_memory(&self) -> bool {
        matches!(self.name, "tmpfs" | "ramfs")
    }

    /// Why O_DIRECT figures on this filesystem may not be a disk's, if they may not be:
    /// it caches below the page cache (zfs's ARC), sits on another filesystem (overlay,
    /// whose upper layer may be a tmpfs), or is remote (nfs, fuse).
    pub fn caveat(&self) -> Option<&'static str> {
        match self.name {
            "zfs" => Some("zfs serves O_DIRECT through its ARC cache"),
            "overlayfs" => Some("overlayfs measures whatever its upper layer is (maybe memory)"),
            "nfs" | "fuse" => Some("a network or FUSE filesystem measures the server, not a disk"),
            _ => None,
        }
    }
}

/// Bytes free to an unprivileged user on the filesystem holding `path` (`statvfs`).
pub fn free_bytes(path: &Path) -> Result<u64, String> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("path {} contains a NUL byte", path.display()))?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut buf: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `buf` is a statvfs we own.
    if unsafe { libc::statvfs(c.as_ptr(), &mut buf) } != 0 {
        return Err(format!(
            "statvfs {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok((buf.f_bavail as u64).saturating_mul(buf.f_frsize as u64))
}

/// Whether a broker holds `DATA_DIR/.lock` (it takes an exclusive `flock` while it runs).
/// A directory without the file has no broker; the file is never created here.
pub fn broker_running(data_dir: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(f) = std::fs::File::open(data_dir.join(".lock")) else {
        return false;
    };
    // SAFETY: flock on a descriptor we own; a lock we get is released when `f` closes.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
}

/// Names a filesystem magic number (`f_type` of `statfs(2)`, values from
/// `linux/magic.h`).
pub fn filesystem_name(magic: u32) -> &'static str {
    match magic {
        0xEF53 => "ext4", // ext2, ext3 and ext4 share the magic; ext4 is what anyone runs
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x8584_58F6 => "ramfs",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0xF2F5_2010 => "f2fs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        _ => "unknown",
    }
}

/// The filesystem holding `path`.
pub fn filesystem_of(path: &Path) -> Result<Filesystem, String> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("path {} contains a NUL byte", path.display()))?;
    // SAFETY: an all-zero statfs is a valid value of this plain C struct.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `buf` is a statfs we own.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut buf) };
    if rc != 0 {
        return Err(format!(
            "statfs {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    // f_type's width differs between architectures; the magic numbers fit in 32 bits.
    let magic = buf.f_type as u32;
    Ok(Filesystem {
        name: filesystem_name(magic),
        magic,
    })
}

/// Splits a Linux `dev_t` into (major, minor), as glibc's `gnu_dev_major/minor` do.
pub fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// `path`, or its nearest ancestor that exists (a data dir may not exist yet).
pub fn nearest_existing(path: &Path) -> Option<PathBuf> {
    let mut p = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    loop {
        if p.exists() {
            return Some(p);
        }
        if !p.pop() {
            return None;
        }
    }
}

/// The block device under a filesystem, as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockDevice {
    /// Kernel name of the whole disk (`vda`, `nvme0n1`, `sda`, `dm-0`).
    pub name: String,
    /// The partition the filesystem is on (`sda1`), if it is on one.
    pub partition: Option<String>,
    /// `MAJOR:MINOR` of the filesystem's device.
    pub dev: String,
    /// The disk's sysfs directory (under the sysroot).
    #[serde(skip)]
    pub sys_dir: PathBuf,
    /// `device/model`, when the driver exposes one (virtio does not).
    pub model: Option<String>,
    /// `queue/rotational`. virtio disks report 1 unless the host says otherwise.
    pub rotational: Option<bool>,
    /// The active I/O scheduler (the bracketed entry of `queue/scheduler`).
    pub scheduler: Option<String>,
    /// Every scheduler `queue/scheduler` offers.
    pub schedulers: Vec<String>,
    /// `queue/nomerges`: 0 merges requests, 1 only simple merges, 2 none.
    pub nomerges: Option<u32>,
    /// `queue/write_cache`: `write back` means fdatasync also flushes the device cache.
    pub write_cache: Option<String>,
    /// `queue/logical_block_size`: the smallest O_DIRECT alignment the device accepts.
    pub logical_block_bytes: Option<u32>,
    /// `queue/physical_block_size`.
    pub physical_block_bytes: Option<u32>,
}

impl BlockDevice {
    /// The block device holding `path` (or its nearest existing ancestor), if it has one.
    pub fn of_path(sysroot: &Path, path: &Path) -> Option<BlockDevice> {
        let existing = nearest_existing(path)?;
        let dev = std::fs::metadata(existing).ok()?.dev();
        let (major, minor) = split_dev(dev);
        BlockDevice::of_dev(sysroot, major, minor)
    }

    /// The block device `major:minor`; `None` for anonymous devices (major 0: tmpfs,
    /// overlayfs, btrfs subvolumes, NFS) and when sysfs does not know it.
    pub fn of_dev(sysroot: &Path, major: u32, minor: u32) -> Option<BlockDevice> {
        if major == 0 {
            return None;
        }
        let link = sysroot.join(format!("sys/dev/block/{major}:{minor}"));
        let dir = std::fs::canonicalize(&link).ok()?;
        let (disk_dir, partition) = if dir.join("partition").exists() {
            let part = file_name(&dir);
            (dir.parent()?.to_path_buf(), part)
        } else {
            (dir, None)
        };
        let name = file_name(&disk_dir)?;
        let q = |f: &str| read_trimmed(&disk_dir.join("queue").join(f));
        let (scheduler, schedulers) = match q("scheduler") {
            Some(s) => (bracketed(&s), s.split_whitespace().map(unbracket).collect()),
            None => (None, Vec::new()),
        };
        Some(BlockDevice {
            name,
            partition,
            dev: format!("{major}:{minor}"),
            model: read_trimmed(&disk_dir.join("device/model")).filter(|m| !m.is_empty()),
            rotational: q("rotational").map(|r| r == "1"),
            scheduler,
            schedulers,
            nomerges: q("nomerges").and_then(|v| v.parse().ok()),
            write_cache: q("write_cache"),
            logical_block_bytes: q("logical_block_size").and_then(|v| v.parse().ok()),
            physical_block_bytes: q("physical_block_size").and_then(|v| v.parse().ok()),
            sys_dir: disk_dir,
        })
    }

    /// Paravirtual disks, whose `rotational` flag says nothing about the medium behind.
    pub fn is_virtual(&self) -> bool {
        self.name.starts_with("vd") || self.name.starts_with("xvd")
    }

    /// One line for the report: `vda (virtio, rotational=1, mq-deadline, write back)`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = &self.model {
            parts.push(m.clone());
        } else if self.is_virtual() {
            parts.push("virtio".to_string());
        }
        if let Some(r) = self.rotational {
            parts.push(format!("rotational={}", u8::from(r)));
        }
        if let Some(s) = &self.scheduler {
            parts.push(format!("scheduler {s}"));
        }
        if let Some(w) = &self.write_cache {
            parts.push(format!("{w} cache"));
        }
        let name = match &self.partition {
            Some(p) => format!("{p} on {}", self.name),
            None => self.name.clone(),
        };
        format!("{name} ({})", parts.join(", "))
    }
}

fn file_name(p: &Path) -> Option<String> {
    p.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// A sysfs/procfs file's content without the trailing newline, if it can be read.
pub fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The selected entry of a sysfs choice list such as `always [madvise] never`; a list
/// without brackets is a single value and is returned whole.
pub fn bracketed(list: &str) -> Option<String> {
    let list = list.trim();
    match (list.find('['), list.find(']')) {
        (Some(a), Some(b)) if a < b => Some(list[a + 1..b].to_string()),
        _ if list.is_empty() => None,
        _ if !list.contains(char::is_whitespace) => Some(list.to_string()),
        _ => None,
    }
}

fn unbracket(s: &str) -> String {
    s.trim_matches(|c| c == '[' || c == ']').to_string()
}

/// This machine's host name (for the profile header).
pub fn hostname() -> String {
    read_trimmed(Path::new("/proc/sys/kernel/hostname")).unwrap_or_else(|| "unknown".into())
}

/// This machine's kernel release (`uname -r`).
pub fn kernel_release() -> String {
    read_trimmed(Path::new("/proc/sys/kernel/osrelease")).unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_filesystems() {
        assert_eq!(filesystem_name(0xEF53), "ext4");
        assert_eq!(filesystem_name(0x0102_1994), "tmpfs");
        assert_eq!(filesystem_name(0x5846_5342), "xfs");
        assert_eq!(filesystem_name(1), "unknown");
        assert!(Filesystem {
            name: "tmpfs",
            magic: 0x0102_1994
        }
        .is_memory());
    }

    #[test]
    fn splits_dev_t() {
        assert_eq!(split_dev(0xfe00), (254, 0));
        assert_eq!(split_dev(0x0801), (8, 1));
        // nvme majors are dynamic and minors can exceed 255.
        assert_eq!(split_dev((259 << 8) | (0x12 << 20) | 0x34), (259, 0x1234));
    }

    #[test]
    fn picks_bracketed_choice() {
        assert_eq!(
            bracketed("always [madvise] never").as_deref(),
            Some("madvise")
        );
        assert_eq!(bracketed("[none] mq-deadline\n").as_deref(), Some("none"));
        assert_eq!(bracketed("performance").as_deref(), Some("performance"));
        assert_eq!(bracketed("a b"), None);
        assert_eq!(bracketed(""), None);
    }

    #[test]
    fn finds_disk_of_partition_in_fake_sysfs() {
        let root = tempfile::tempdir().unwrap();
        let disk = root.path().join("sys/devices/pci0/block/sda");
        std::fs::create_dir_all(disk.join("queue")).unwrap();
        std::fs::create_dir_all(disk.join("sda1")).unwrap();
        std::fs::create_dir_all(disk.join("device")).unwrap();
        std::fs::write(disk.join("sda1/partition"), "1\n").unwrap();
        std::fs::write(
            disk.join("queue/scheduler"),
            "[mq-deadline] kyber bfq none\n",
        )
        .unwrap();
        std::fs::write(disk.join("queue/rotational"), "1\n").unwrap();
        std::fs::write(disk.join("device/model"), "ST4000NM0035   \n").unwrap();
        std::fs::create_dir_all(root.path().join("sys/dev/block")).unwrap();
        std::os::unix::fs::symlink(
            "../../devices/pci0/block/sda/sda1",
            root.path().join("sys/dev/block/8:1"),
        )
        .unwrap();
        let b = BlockDevice::of_dev(root.path(), 8, 1).unwrap();
        assert_eq!(b.name, "sda");
        assert_eq!(b.partition.as_deref(), Some("sda1"));
        assert_eq!(b.scheduler.as_deref(), Some("mq-deadline"));
        assert_eq!(b.schedulers, ["mq-deadline", "kyber", "bfq", "none"]);
        assert_eq!(b.rotational, Some(true));
        assert_eq!(b.model.as_deref(), Some("ST4000NM0035"));
        assert!(BlockDevice::of_dev(root.path(), 8, 2).is_none());
        assert!(BlockDevice::of_dev(root.path(), 0, 5).is_none());
    }
}
