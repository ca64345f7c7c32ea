//! Works around glommio 0.9.0's per-device I/O-poll probe.
//!
//! glommio decides once per thread and device whether the device supports polled I/O, by
//! reading the first `DmaFile` the thread opens on it. When that file is empty the probe
//! wrongly marks a virtio disk as pollable and every later read fails with EOPNOTSUPP.
//! So before a thread opens any segment on a device, it opens and reads one non-empty
//! file there: [`prime`] does that, once per (thread, device).

use std::cell::RefCell;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use glommio::io::DmaFile;

use crate::error::{IoContext, Result};

/// Name of the probe file written in a data directory.
pub const PROBE_FILE: &str = ".corelog-device-probe";
const PROBE_BYTES: usize = 4096;

thread_local! {
    static PRIMED: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// Ensures this executor thread has probed the device holding `dir` with a non-empty file.
pub async fn prime(dir: &Path) -> Result<()> {
    let dev = std::fs::metadata(dir).ctx("stat", dir)?.dev();
    if PRIMED.with(|p| p.borrow().contains(&dev)) {
        return Ok(());
    }
    let probe = dir.join(PROBE_FILE);
    let needs_write = std::fs::metadata(&probe)
        .map(|m| m.len() < PROBE_BYTES as u64)
        .unwrap_or(true);
    if needs_write {
        std::fs::write(&probe, [0xC0u8; PROBE_BYTES]).ctx("write probe", &probe)?;
    }
    let f = DmaFile::open(&probe).await.ctx("open probe", &probe)?;
    let _ = f.read_at(0, PROBE_BYTES).await.ctx("read probe", &probe)?;
    f.close().await.ctx("close probe", &probe)?;
    PRIMED.with(|p| p.borrow_mut().insert(dev));
    Ok(())
}
