//! Giving freed heap memory back to the kernel, on a thread of its own.
//!
//! The binary keeps allocations up to 32 MiB in glibc's arenas (`main.rs`: mapping and
//! unmapping each large buffer cost 8% of the broker's CPU in TLB shootdowns). Memory
//! freed inside an arena stays resident, though: glibc returns only a free top of the
//! heap, and only past its trim threshold. Under a steady load the live heap is flat
//! while RSS creeps up as, one by one, the free holes between live buffers are written
//! once and kept. Measured in a 30-minute soak (2 shards, 256 MiB tail caches,
//! `tests/e2e/test_load.py`): bytes in use stayed at 601-613 MB (minutes 6, 11, 16)
//! while RSS rose from 633 to 698 MB; one `malloc_trim(0)` brought it back to 643 MB.
//!
//! So every `memory_trim_interval_ms` this thread calls `malloc_trim(0)`, which walks
//! every arena's free chunks and `madvise(MADV_DONTNEED)`s the whole pages inside
//! them. The memory stays mapped (no munmap churn); a page is faulted in again when
//! reused. An arena is locked while it is trimmed, so a shard that allocates meanwhile
//! waits that long: each trim's duration is logged (debug), to weigh the interval. In
//! the soak above, with 2 x 256 MiB of tail cache, trims took 1.4 ms (median) to 6 ms,
//! every 10 s by default: a stall of at most a few ms for 0.06% of the time, which
//! shows in latencies past p99.9 (set 0 where those matter more than RSS).
//!
//! After each trim (and at start) the thread also reads glibc's heap figures (`mallinfo2`, which walks
//! the arenas too, so a metrics scrape does not), for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Heap bytes allocated and free at the last trim (`u64::MAX`: not measured).
static HEAP_ALLOCATED: AtomicU64 = AtomicU64::new(u64::MAX);
static HEAP_FREE: AtomicU64 = AtomicU64::new(u64::MAX);

/// (allocated, free) heap bytes at the last trim, if measured.
pub fn last_heap() -> Option<(u64, u64)> {
    let allocated = HEAP_ALLOCATED.load(Ordering::Relaxed);
    let free = HEAP_FREE.load(Ordering::Relaxed);
    (allocated != u64::MAX && free != u64::MAX).then_some((allocated, free))
}

/// Starts the trimming thread (a no-op where the allocator is not glibc's, or for a
/// zero interval).
pub fn spawn_trimmer(interval: Duration) -> Result<(), String> {
    if interval.is_zero() || !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("corelog-trim".into())
        .spawn(move || loop {
            if let Some((allocated, free)) = heap_figures() {
                HEAP_ALLOCATED.store(allocated, Ordering::Relaxed);
                HEAP_FREE.store(free, Ordering::Relaxed);
            }
            std::thread::sleep(interval);
            let before = resident_bytes();
            let started = Instant::now();
            trim();
            let took = started.elapsed();
            let after = resident_bytes();
            tracing::debug!(
                took_us = took.as_micros() as u64,
                resident_before = before,
                resident_after = after,
                "heap trimmed"
            );
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the heap trimming thread: {e}"))
}

fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator to the kernel; it
    // takes each arena's lock itself.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// glibc's (allocated, free) heap bytes, from `mallinfo2` when this glibc has it
/// (2.33 and later: looked up at run time, so that the binary still starts on older
/// ones).
fn heap_figures() -> Option<(u64, u64)> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::sync::OnceLock;
        type MallInfo2 = unsafe extern "C" fn() -> libc::mallinfo2;
        static FUNCTION: OnceLock<Option<MallInfo2>> = OnceLock::new();
        let f = FUNCTION.get_or_init(|| {
            // SAFETY: dlsym with a NUL-terminated name only looks the symbol up.
            let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"mallinfo2".as_ptr()) };
            // SAFETY: glibc's mallinfo2 has exactly this signature.
            (!sym.is_null())
                .then(|| unsafe { std::mem::transmute::<*mut libc::c_void, MallInfo2>(sym) })
        });
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let m = unsafe { (*f)?() };
        Some(((m.uordblks + m.hblkhd) as u64, m.fordblks as u64))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// The process's resident bytes (`/proc/self/statm`), 0 if unreadable.
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page_bytes())
}

fn page_bytes() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).unwrap_or(4096)
}
