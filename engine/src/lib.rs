//! corelog's storage engine: partition logs of Kafka record batches on direct-I/O
//! segment files, with group commit, sparse indexes, a per-core tail cache, crash
//! recovery and retention.
//!
//! Everything here runs inside a glommio executor and is `!Send`: a partition log is
//! owned by one core for its whole life (see `architecture.md`).
//!
//! Modules, one noun each:
//! - [`batch`]: the RecordBatch v2 format, validation, in-place offset assignment.
//! - [`batch_builder`]: encoding batches (tests, benchmarks, tools).
//! - [`config`]: per-log settings.
//! - [`index`]: sparse offset and time indexes and their file formats.
//! - [`segment`]: one segment file and its metadata.
//! - [`appender`]: aligned direct-I/O writes in order, and the durability contract.
//! - [`reader`]: scanning and reading stored batches.
//! - `readahead`: reading on after a bulk disk read, for the next fetch.
//! - [`cache`]: the per-core tail cache.
//! - [`recovery`]: opening a log directory after a clean or unclean shutdown.
//! - [`retention`]: which segments retention deletes.
//! - [`checkpoint`]: small state files (log start offset, clean shutdown marker).
//! - [`epoch`]: the leader epoch cache and its checkpoint file.
//! - [`log`]: the partition log API that ties them together.
//! - [`testing`]: running the engine on an executor from tests and tools.
//! - [`faults`]: fault injection into segment writes, fdatasyncs and allocations (tests).
//! - [`histogram`]: fixed-bucket latency histograms for metrics.
//! - [`socket`]: reading TCP frames into unzeroed buffer space (broker and bench client).

pub mod appender;
pub mod batch;
pub mod batch_builder;
pub mod cache;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod epoch;
pub mod error;
pub mod faults;
pub mod fsutil;
pub mod histogram;
pub mod index;
pub mod log;
pub(crate) mod readahead;
pub mod reader;
pub mod recovery;
pub mod retention;
pub mod segment;
pub mod socket;
pub mod testing;

pub use cache::TailCache;
pub use config::LogConfig;
pub use error::{Error, Result};
pub use log::{AppendInfo, AppendOptions, LogStats, PartitionLog, ReadData, TimestampHit};
