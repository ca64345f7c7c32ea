//! corelog's benchmarks, exposed by the `corelog` binary as `corelog bench ...`.
//!
//! Benchmarks are programs that print figures (and write them as JSON), never timed unit
//! tests. Each compares against a baseline measured in the same run where one exists.

pub mod engine;

use clap::Subcommand;

/// `corelog bench <what>`.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// The storage engine alone on one core, against raw O_DIRECT writes of the same
    /// disk with the same fdatasync cadence.
    Engine(engine::EngineArgs),
}

/// Runs a benchmark command.
pub fn run(cmd: BenchCommand) -> Result<(), String> {
    match cmd {
        BenchCommand::Engine(args) => engine::run(args).map(|_| ()),
    }
}
