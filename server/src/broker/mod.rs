//! The broker runtime: shards, the router between them, partitions, topics.

pub mod affinity;
pub mod budget;
pub mod catalog;
pub mod connection;
pub mod controller;
pub mod memory;
pub mod ownership;
pub mod partition;
pub mod per_ip;
pub mod producer_state;
pub mod router;
pub mod server;
pub mod shard;
pub mod topic_config;

/// Wall-clock time in milliseconds since the Unix epoch (record timestamps, retention,
/// group sessions).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
