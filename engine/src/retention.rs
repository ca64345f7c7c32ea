//! Which closed segments retention deletes: a pure function of their sizes and ages.
//!
//! Kafka's rules: a segment expires by age when its newest record is older than
//! `retention_age`; by size, the oldest segments go while the log would still hold at
//! least `retention_bytes` without them. Deletion is always a prefix of the closed
//! segments (oldest first), never the active segment, so the log start offset only moves
//! forward and the log stays contiguous.

use crate::config::LogConfig;

/// What retention needs to know about one closed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentStat {
    /// Bytes of data.
    pub size: u64,
    /// Newest record timestamp (ms), or negative if unknown.
    pub max_timestamp_ms: i64,
}

/// How many of the oldest `closed` segments to delete. `total_bytes` is the size of the
/// whole log, active segment included.
pub fn segments_to_delete(
    closed: &[SegmentStat],
    total_bytes: u64,
    config: &LogConfig,
    now_ms: i64,
) -> usize {
    let by_age = match config.retention_age {
        Some(age) => {
            let cutoff = now_ms.saturating_sub(age.as_millis().min(i64::MAX as u128) as i64);
            closed
                .iter()
                .take_while(|s| s.max_timestamp_ms < cutoff)
                .count()
        }
        None => 0,
    };
    let by_size = match config.retention_bytes {
        Some(limit) => {
            let mut excess = total_bytes.saturating_sub(limit);
            closed
                .iter()
                .take_while(|s| {
                    if s.size <= excess {
                        excess -= s.size;
                        true
                    } else {
                        false
                    }
                })
                .count()
        }
        None => 0,
    };
    by_age.max(by_size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(age_ms: Option<u64>, bytes: Option<u64>) -> LogConfig {
        LogConfig {
            retention_age: age_ms.map(Duration::from_millis),
            retention_bytes: bytes,
            ..LogConfig::default()
        }
    }

    fn seg(size: u64, ts: i64) -> SegmentStat {
        SegmentStat {
            size,
            max_timestamp_ms: ts,
        }
    }

    #[test]
    fn age_deletes_an_expired_prefix_only() {
        let segs = [seg(10, 100), seg(10, 5000), seg(10, 200)];
        assert_eq!(
            segments_to_delete(&segs, 40, &cfg(Some(1000), None), 2000),
            1
        );
        assert_eq!(
            segments_to_delete(&segs, 40, &cfg(Some(1000), None), 10_000),
            3
        );
        assert_eq!(segments_to_delete(&segs, 40, &cfg(None, None), 10_000), 0);
    }

    #[test]
    fn size_keeps_at_least_the_limit() {
        let segs = [seg(100, 0), seg(100, 0), seg(100, 0)];
        // 350 bytes in all, limit 150: dropping two leaves 150.
        assert_eq!(segments_to_delete(&segs, 350, &cfg(None, Some(150)), 0), 2);
        assert_eq!(segments_to_delete(&segs, 350, &cfg(None, Some(151)), 0), 1);
        assert_eq!(
            segments_to_delete(&segs, 350, &cfg(None, Some(10_000)), 0),
            0
        );
        // Never more than the closed segments, even with limit 0.
        assert_eq!(segments_to_delete(&segs, 350, &cfg(None, Some(0)), 0), 3);
    }
}
