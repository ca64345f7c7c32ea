//! The broker runtime: shards, the router between them, partitions, topics.

pub mod catalog;
pub mod connection;
pub mod controller;
pub mod ownership;
pub mod partition;
pub mod producer_state;
pub mod router;
pub mod server;
pub mod shard;
pub mod topic_config;
