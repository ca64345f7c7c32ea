//! The corelog broker. The `corelog` binary (`main.rs`) runs it; the coverage-guided
//! fuzz targets (`tests/fuzz`) drive its request path through [`fuzzing`]. `metrics`
//! serves what the shards count.

pub mod admin;
mod api;
mod broker;
mod config;
pub mod fuzzing;
mod group;
mod metrics;
mod protocol;

pub use broker::server::run;
pub use config::{BrokerConfig, ServeArgs};
