//! Consumer groups: the classic group protocol and committed offsets.
//!
//! - [`state`]: the pure group state machine.
//! - [`offsets`]: committed offsets and their records in `__consumer_offsets`.
//! - [`coordinator`]: a shard's coordinator: groups, waiting requests, offsets.

pub mod coordinator;
pub mod offsets;
pub mod state;
