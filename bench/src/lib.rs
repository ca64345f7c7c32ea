//! corelog's benchmarks, exposed by the `corelog` binary as `corelog bench ...`.
//!
//! Benchmarks are programs that print figures (and write them as JSON), never timed unit
//! tests. Each compares against a baseline measured in the same run where one exists.

pub mod engine;
pub mod kafka;
pub mod load;
pub mod loopback;
pub mod pingpong;

use clap::Subcommand;

/// `corelog bench <what>`.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// The storage engine alone on one core, against raw O_DIRECT writes of the same
    /// disk with the same fdatasync cadence.
    Engine(engine::EngineArgs),
    /// Producers against a Kafka-compatible broker (--bootstrap), or an embedded corelog
    /// broker in a temporary directory: throughput and produce latency.
    Produce(load::args::LoadArgs),
    /// Consumers reading a topic (with --preload, data produced first): throughput.
    Consume(load::args::LoadArgs),
    /// Producers and consumers together: throughput, produce and end-to-end latency.
    E2e(load::args::LoadArgs),
    /// Restart of an embedded broker holding data: time until it serves, speed of the
    /// first fetches.
    Restart(load::restart::RestartArgs),
    /// TCP over 127.0.0.1 between two threads doing nothing else: the machine's ceiling
    /// for any figure that crosses a local socket.
    Loopback(loopback::LoopbackArgs),
    /// One small request and its answer at a time over 127.0.0.1 between two threads,
    /// sleeping in recv and busy-polling: the machine's floor for request latency.
    Pingpong(pingpong::PingPongArgs),
}

/// Runs a benchmark command.
pub fn run(cmd: BenchCommand) -> Result<(), String> {
    match cmd {
        BenchCommand::Engine(args) => engine::run(args).map(|_| ()),
        BenchCommand::Produce(args) => load_run(load::Mode::Produce, args),
        BenchCommand::Consume(args) => load_run(load::Mode::Consume, args),
        BenchCommand::E2e(args) => load_run(load::Mode::E2e, args),
        BenchCommand::Restart(args) => {
            let json = args.load.json.clone();
            let r = load::restart::run(args)?;
            r.print();
            json.map_or(Ok(()), |path| write_json(&path, &r))
        }
        BenchCommand::Loopback(args) => {
            let r = loopback::run(&args)?;
            println!(
                "corelog bench loopback: {:.2} GB/s ({} bytes in {:.2} s, {} bytes per write)",
                r.gb_s, r.bytes, r.seconds, r.buffer_bytes
            );
            args.json.map_or(Ok(()), |path| write_json(&path, &r))
        }
        BenchCommand::Pingpong(args) => {
            let r = pingpong::run(&args)?;
            for (mode, m) in [("blocking", &r.blocking), ("busy-poll", &r.busy_poll)] {
                println!(
                    "corelog bench pingpong, {mode}: p50 {:.1} p99 {:.1} p99.9 {:.1} us ({} round trips of {} + {} bytes)",
                    m.p50_us, m.p99_us, m.p99_9_us, m.count, r.request_bytes, r.response_bytes
                );
            }
            args.json.map_or(Ok(()), |path| write_json(&path, &r))
        }
    }
}

/// Writes a report as pretty JSON.
fn write_json(path: &std::path::Path, report: &impl serde::Serialize) -> Result<(), String> {
    let s = serde_json::to_string_pretty(report).map_err(|e| format!("JSON: {e}"))?;
    std::fs::write(path, s + "\n").map_err(|e| format!("writing {}: {e}", path.display()))
}

fn load_run(mode: load::Mode, args: load::args::LoadArgs) -> Result<(), String> {
    let report = load::run(mode, args)?;
    report.print();
    report.write_files()
}
