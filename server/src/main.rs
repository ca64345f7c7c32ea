//! The `corelog` binary.

mod api;
mod broker;
mod config;
mod group;
mod protocol;

use clap::{Parser, Subcommand};

/// corelog: a thread-per-core, Kafka-compatible event-streaming broker.
#[derive(Debug, Parser)]
#[command(name = "corelog", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker: Kafka protocol on --listen, data in --data-dir.
    Serve(config::ServeArgs),
    /// Benchmarks that print figures against a baseline measured in the same run.
    #[command(subcommand)]
    Bench(Box<corelog_bench::BenchCommand>),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CORELOG_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => config::BrokerConfig::load(&args).and_then(broker::server::run),
        Command::Bench(cmd) => corelog_bench::run(*cmd),
    };
    if let Err(e) = result {
        eprintln!("corelog: {e}");
        std::process::exit(1);
    }
}
