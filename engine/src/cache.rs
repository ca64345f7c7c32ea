//! Per-core tail cache of recently appended batches.
//!
//! Every batch a log appends is kept here (as the `Bytes` the producer's request arrived
//! in, after offset assignment: no copy) until the core's cache exceeds `bytes_max`, when
//! the globally oldest batches are evicted first. Consumers reading at the head of a log
//! are served from here without touching the disk.
//!
//! Each log's cached batches are contiguous and end at its log end offset, so a read
//! that starts at or after a log's oldest cached offset is answered entirely from memory.
//!
//! One instance per executor (`Rc<RefCell<TailCache>>`), shared by the logs of that core;
//! it is never touched from another thread.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

/// Identifies a log within its core's cache.
pub type LogId = u64;

#[derive(Debug)]
struct Cached {
    base_offset: u64,
    last_offset: u64,
    bytes: Bytes,
}

/// The cache of one core.
#[derive(Debug)]
pub struct TailCache {
    bytes_max: usize,
    bytes: usize,
    logs: HashMap<LogId, VecDeque<Cached>>,
    /// Insertion order across logs: (log, base offset). Entries whose batch was already
    /// dropped (by truncation or log removal) are skipped when they reach the front.
    order: VecDeque<(LogId, u64)>,
    next_log_id: LogId,
    hits: u64,
    misses: u64,
}

/// A read served from the cache.
#[derive(Debug, Default)]
pub struct CachedRead {
    /// Whole batches, in offset order.
    pub batches: Vec<Bytes>,
    /// Their total size.
    pub bytes: usize,
}

impl TailCache {
    /// A cache that holds at most `bytes_max` bytes of batches.
    pub fn new(bytes_max: usize) -> TailCache {
        TailCache {
            bytes_max,
            bytes: 0,
            logs: HashMap::new(),
            order: VecDeque::new(),
            next_log_id: 1,
            hits: 0,
            misses: 0,
        }
    }

    /// Registers a log and returns its id.
    pub fn register(&mut self) -> LogId {
        let id = self.next_log_id;
        self.next_log_id += 1;
        self.logs.insert(id, VecDeque::new());
        id
    }

    /// Forgets a log and everything cached for it.
    pub fn unregister(&mut self, log: LogId) {
        if let Some(q) = self.logs.remove(&log) {
            self.bytes -= q.iter().map(|c| c.bytes.len()).sum::<usize>();
        }
    }

    /// Caches a batch appended to `log`. It must directly follow the log's newest cached
    /// batch, if any.
    pub fn insert(&mut self, log: LogId, base_offset: u64, last_offset: u64, bytes: Bytes) {
        if bytes.len() > self.bytes_max {
            // Keeps the "contiguous up to the log end" rule: an uncached batch in the middle
            // would make later cached reads skip it.
            self.clear_log(log);
            return;
        }
        let Some(q) = self.logs.get_mut(&log) else {
            return;
        };
        if let Some(last) = q.back() {
            assert!(
                base_offset > last.last_offset,
                "cache insert out of order: {base_offset} after {}",
                last.last_offset
            );
        }
        self.bytes += bytes.len();
        q.push_back(Cached {
            base_offset,
            last_offset,
            bytes,
        });
        self.order.push_back((log, base_offset));
        self.evict();
    }

    fn evict(&mut self) {
        while self.bytes > self.bytes_max {
            let Some((log, base)) = self.order.pop_front() else {
                break;
            };
            if let Some(q) = self.logs.get_mut(&log) {
                if q.front().is_some_and(|c| c.base_offset == base) {
                    let c = q.pop_front().expect("checked");
                    self.bytes -= c.bytes.len();
                }
            }
        }
    }

    /// Drops cached batches of `log` that contain offsets `>= offset` (log truncation).
    pub fn truncate(&mut self, log: LogId, offset: u64) {
        if let Some(q) = self.logs.get_mut(&log) {
            while q.back().is_some_and(|c| c.last_offset >= offset) {
                let c = q.pop_back().expect("checked");
                self.bytes -= c.bytes.len();
            }
        }
    }

    /// Drops every cached batch of `log`.
    pub fn clear_log(&mut self, log: LogId) {
        if let Some(q) = self.logs.get_mut(&log) {
            self.bytes -= q.iter().map(|c| c.bytes.len()).sum::<usize>();
            q.clear();
        }
    }

    /// Batches of `log` starting with the one that holds `offset`, ending before
    /// `end_offset` (exclusive, a batch boundary such as the high watermark), at most
    /// `max_bytes` except that the first batch is always whole. `None` when `offset` is
    /// older than what the cache holds.
    pub fn read(
        &mut self,
        log: LogId,
        offset: u64,
        end_offset: u64,
        max_bytes: usize,
    ) -> Option<CachedRead> {
        let q = self.logs.get(&log)?;
        let hit = q.front().is_some_and(|c| c.base_offset <= offset);
        if !hit {
            self.misses += 1;
            return None;
        }
        self.hits += 1;
        let start = q.partition_point(|c| c.last_offset < offset);
        let mut out = CachedRead::default();
        for c in q.range(start..) {
            if c.last_offset >= end_offset {
                break;
            }
            if !out.batches.is_empty() && out.bytes + c.bytes.len() > max_bytes {
                break;
            }
            out.bytes += c.bytes.len();
            out.batches.push(c.bytes.clone());
        }
        Some(out)
    }

    /// Bytes currently cached.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Reads served from memory and reads that had to go to disk.
    pub fn hit_miss(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(n: usize) -> Bytes {
        Bytes::from(vec![7u8; n])
    }

    #[test]
    fn reads_follow_offsets_limits_and_watermark() {
        let mut c = TailCache::new(1000);
        let log = c.register();
        c.insert(log, 0, 9, b(100));
        c.insert(log, 10, 19, b(100));
        c.insert(log, 20, 29, b(100));
        let r = c.read(log, 15, 30, 150).unwrap();
        assert_eq!(
            r.batches.len(),
            1,
            "limit stops after the first whole batch"
        );
        let r = c.read(log, 15, 30, 10_000).unwrap();
        assert_eq!(r.batches.len(), 2);
        let r = c.read(log, 0, 20, 10_000).unwrap();
        assert_eq!(r.batches.len(), 2, "nothing at or past the watermark");
        let r = c.read(log, 0, 30, 1).unwrap();
        assert_eq!(
            r.batches.len(),
            1,
            "first batch is whole even over the limit"
        );
    }

    #[test]
    fn eviction_is_oldest_first_across_logs_and_bounded() {
        let mut c = TailCache::new(250);
        let a = c.register();
        let z = c.register();
        c.insert(a, 0, 0, b(100));
        c.insert(z, 0, 0, b(100));
        c.insert(a, 1, 1, b(100));
        assert!(c.bytes() <= 250);
        assert!(
            c.read(a, 0, 10, 1000).is_none(),
            "a's first batch was oldest"
        );
        assert!(c.read(z, 0, 10, 1000).is_some());
        assert!(c.read(a, 1, 10, 1000).is_some());
    }

    #[test]
    fn truncation_and_reinsert_keep_accounting_right() {
        let mut c = TailCache::new(10_000);
        let a = c.register();
        c.insert(a, 0, 4, b(100));
        c.insert(a, 5, 9, b(100));
        c.truncate(a, 5);
        assert_eq!(c.bytes(), 100);
        c.insert(a, 5, 7, b(50));
        assert_eq!(c.bytes(), 150);
        c.unregister(a);
        assert_eq!(c.bytes(), 0);
        // Stale order entries are skipped without corrupting the count.
        let mut small = TailCache::new(100);
        let x = small.register();
        small.insert(x, 0, 0, b(60));
        small.truncate(x, 0);
        small.insert(x, 0, 0, b(60));
        small.insert(x, 1, 1, b(30));
        assert_eq!(small.bytes(), 90);
    }
}
