//! Topic settings: the Kafka config keys this broker supports, their defaults, parsing
//! and validation, and how they become an engine [`LogConfig`].

use std::collections::BTreeMap;
use std::time::Duration;

use corelog_engine::LogConfig;

/// Kafka's `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// The producer's timestamps are kept.
    CreateTime,
    /// The broker stamps each batch on append.
    LogAppendTime,
}

/// Resolved settings of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// `retention.ms`; -1 keeps data forever.
    pub retention_ms: i64,
    /// `retention.bytes`; -1 is unlimited.
    pub retention_bytes: i64,
    /// `segment.bytes`.
    pub segment_bytes: u64,
    /// `segment.ms`.
    pub segment_ms: i64,
    /// `max.message.bytes`: the largest batch.
    pub max_message_bytes: usize,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
}

/// Broker-wide defaults of new topics.
#[derive(Debug, Clone)]
pub struct TopicDefaults {
    /// Partitions of auto-created topics.
    pub partitions: u32,
    /// Settings a topic has unless it overrides them.
    pub config: TopicConfig,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults {
            partitions: 4,
            config: TopicConfig {
                retention_ms: 7 * 24 * 3600 * 1000,
                retention_bytes: -1,
                segment_bytes: 128 << 20,
                segment_ms: 7 * 24 * 3600 * 1000,
                max_message_bytes: 1_048_588,
                timestamp_type: TimestampType::CreateTime,
            },
        }
    }
}

impl TopicDefaults {
    /// Checks the defaults as a topic would be checked.
    pub fn validate(&self) -> Result<(), String> {
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(format!(
                "num_partitions must be between 1 and {MAX_PARTITIONS}"
            ));
        }
        self.config
            .log_config()
            .validate()
            .map_err(|e| e.to_string())
    }
}

/// Largest `max.message.bytes` a topic may set. Every partition log's write path is
/// sized for it at open, so that raising a topic's limit later never needs a reopen.
pub const MAX_MESSAGE_BYTES_LIMIT: usize = 16 << 20;

/// Most partitions one topic may have.
pub const MAX_PARTITIONS: u32 = 10_000;

/// The supported keys, in the order DescribeConfigs lists them.
pub const KEYS: &[&str] = &[
    "cleanup.policy",
    "max.message.bytes",
    "message.timestamp.type",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

impl TopicConfig {
    /// The value of a supported key, as Kafka prints it.
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "cleanup.policy" => "delete".into(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "message.timestamp.type" => match self.timestamp_type {
                TimestampType::CreateTime => "CreateTime".into(),
                TimestampType::LogAppendTime => "LogAppendTime".into(),
            },
            "retention.bytes" => self.retention_bytes.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            _ => return None,
        })
    }

    /// Sets one key from its string form, checking it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let int = |v: &str| -> Result<i64, String> {
            v.trim()
                .parse::<i64>()
                .map_err(|_| format!("{key}: '{value}' is not an integer"))
        };
        match key {
            "cleanup.policy" if value == "delete" => {}
            "cleanup.policy" => {
                return Err(format!(
                    "cleanup.policy '{value}' is not supported (only delete)"
                ))
            }
            "max.message.bytes" => {
                let v = int(value)?;
                if v < corelog_engine::batch::HEADER_BYTES as i64
                    || v > MAX_MESSAGE_BYTES_LIMIT as i64
                {
                    return Err(format!(
                        "max.message.bytes {v} is out of range (61..={MAX_MESSAGE_BYTES_LIMIT})"
                    ));
                }
                self.max_message_bytes = v as usize;
            }
            "message.timestamp.type" => {
                self.timestamp_type = match value {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(format!("message.timestamp.type '{value}' is not valid")),
                }
            }
            "retention.bytes" => self.retention_bytes = int(value)?.max(-1),
            "retention.ms" => self.retention_ms = int(value)?.max(-1),
            "segment.bytes" => {
                let v = int(value)?;
                if !(4096..=1 << 30).contains(&v) {
                    return Err(format!("segment.bytes {v} is out of range (4096..=1 GiB)"));
                }
                self.segment_bytes = v as u64;
            }
            "segment.ms" => {
                let v = int(value)?;
                if v < 1 {
                    return Err(format!("segment.ms {v} must be positive"));
                }
                self.segment_ms = v;
            }
            _ => return Err(format!("unknown or unsupported topic config '{key}'")),
        }
        Ok(())
    }

    /// Defaults with `overrides` applied.
    pub fn resolve(
        defaults: &TopicConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, String> {
        let mut c = defaults.clone();
        for (k, v) in overrides {
            c.set(k, v)?;
        }
        c.log_config().validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    /// The engine settings of a partition log of this topic, with the default writes.
    pub fn log_config(&self) -> LogConfig {
        self.log_config_with(LogWrites::default())
    }

    /// The engine settings of a partition log of this topic, written as `writes` says.
    pub fn log_config_with(&self, writes: LogWrites) -> LogConfig {
        let ms = |v: i64| (v >= 0).then(|| Duration::from_millis(v as u64));
        let mut c = LogConfig {
            segment_bytes: self.segment_bytes,
            segment_age: ms(self.segment_ms),
            retention_age: ms(self.retention_ms),
            retention_bytes: (self.retention_bytes >= 0).then_some(self.retention_bytes as u64),
            max_batch_bytes: self.max_message_bytes,
            write_chunk_bytes: writes.chunk_bytes,
            write_depth: writes.depth,
            ..LogConfig::default()
        };
        // The engine needs room for a batch that spans its chunks plus one; size it for
        // the largest batch any topic may allow (a bound on write-back under a slow
        // disk, not an allocation), so set_config never has to refuse a raise.
        let chunks = MAX_MESSAGE_BYTES_LIMIT.div_ceil(c.write_chunk_bytes) + 1;
        c.write_chunks_inflight_max = c.write_chunks_inflight_max.max(chunks).max(c.write_depth);
        c
    }
}

/// How partition logs write (broker settings `write_chunk_bytes` and `write_depth`, or
/// the tuning profile's): the size of each direct-I/O write buffer, and how many writes
/// a log keeps in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogWrites {
    /// Bytes of one write buffer: a non-zero multiple of 4096.
    pub chunk_bytes: usize,
    /// Writes in flight per log, at least 1.
    pub depth: usize,
}

impl Default for LogWrites {
    fn default() -> Self {
        let d = LogConfig::default();
        LogWrites {
            chunk_bytes: d.write_chunk_bytes,
            depth: d.write_depth,
        }
    }
}

impl LogWrites {
    /// Checks the settings the way the engine will.
    pub fn validate(&self) -> Result<(), String> {
        TopicDefaults::default()
            .config
            .log_config_with(*self)
            .validate()
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_bad_values_are_named() {
        let mut c = TopicDefaults::default().config;
        for k in KEYS {
            let v = c.get(k).unwrap();
            c.set(k, &v).unwrap();
        }
        assert_eq!(c, TopicDefaults::default().config);
        assert!(c
            .set("segment.bytes", "12")
            .unwrap_err()
            .contains("segment.bytes"));
        assert!(c.set("cleanup.policy", "compact").is_err());
        assert!(c.set("no.such.key", "1").is_err());
        // A log opened with the default limit can take the largest one later.
        let opened = c.log_config();
        c.set("max.message.bytes", &MAX_MESSAGE_BYTES_LIMIT.to_string())
            .unwrap();
        let raised = c.log_config();
        assert_eq!(
            raised.write_chunks_inflight_max,
            opened.write_chunks_inflight_max
        );
        raised.validate().unwrap();
        assert!(c
            .set(
                "max.message.bytes",
                &(MAX_MESSAGE_BYTES_LIMIT + 1).to_string()
            )
            .is_err());
    }
}
