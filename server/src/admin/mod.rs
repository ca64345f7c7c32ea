//! The administration CLI, in the style of Redpanda's rpk: `corelog topic`, `corelog
//! group`, `corelog produce` and `corelog consume`. Each speaks the Kafka protocol (the
//! bench crate's client, at versions every Kafka-compatible broker serves) to
//! `--bootstrap`, so it works against Kafka and Redpanda as well as corelog.
//!
//! Exit codes, for scripts: 0 done; 1 the cluster refused or failed some of the work
//! (each failure is printed); 2 bad usage; 3 the cluster could not be reached.

mod cluster;
mod consume;
mod group;
mod output;
mod produce;
mod topic;

use std::future::Future;
use std::time::Duration;

use clap::{Args, ValueEnum};
use corelog_bench::kafka::ClientError;
use glommio::{LocalExecutorBuilder, Placement};

pub use consume::{run as consume, ConsumeArgs};
pub use group::{run as group, GroupArgs};
pub use produce::{run as produce, ProduceArgs};
pub use topic::{run as topic, TopicArgs};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Text,
    /// JSON for scripts.
    Json,
}

/// Where the cluster is and how to print; shared by the admin commands.
#[derive(Debug, Clone, Args)]
pub struct Connect {
    /// A broker of the cluster, HOST:PORT
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:9092",
        env = "CORELOG_BOOTSTRAP"
    )]
    pub bootstrap: String,
}

/// How long a one-shot command (topic, group) may wait for the cluster.
#[derive(Debug, Clone, Copy, Args)]
pub struct Deadline {
    /// Give up on a command the cluster has not answered within this many milliseconds
    #[arg(long, global = true, default_value_t = 30_000)]
    pub timeout_ms: u64,
}

impl Deadline {
    /// The whole command's time limit.
    pub fn total(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// What a broker is given to finish a change before it answers: the command's time
    /// less a margin for the round trip, so that a slow change is reported by the broker
    /// (REQUEST_TIMED_OUT) rather than by our own deadline.
    pub fn broker_ms(&self) -> i32 {
        let ms = self.timeout_ms.saturating_sub(2_000).max(1_000);
        i32::try_from(ms).unwrap_or(i32::MAX)
    }
}

/// Why a command failed; decides the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// The cluster answered, and refused or failed (exit 1).
    Failed(String),
    /// The command line asks for something impossible (exit 2).
    Usage(String),
    /// No broker could be reached (exit 3).
    Unreachable(String),
}

impl CliError {
    /// The process exit code of this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Failed(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Unreachable(_) => 3,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Failed(m) | CliError::Usage(m) | CliError::Unreachable(m) => f.write_str(m),
        }
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        CliError::Failed(e.0)
    }
}

/// Runs `make()` on a glommio executor of its own (the client is glommio's), within
/// `timeout` when one is given. Every command returns whether all of its work succeeded
/// (it printed each failure).
fn run_on_executor<F, M>(timeout: Option<Duration>, make: M) -> Result<(), CliError>
where
    F: Future<Output = Result<(), CliError>> + 'static,
    M: FnOnce() -> F + Send + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .name("corelog-cli")
        // The client's sockets need no registered buffers; stay far below memlock.
        .io_memory(256 << 10)
        .spawn(move || async move {
            match timeout {
                None => make().await,
                Some(t) => glommio::timer::timeout(t, async { Ok(make().await) })
                    .await
                    .unwrap_or_else(|_| {
                        Err(CliError::Failed(format!(
                            "no answer within {} ms (--timeout-ms)",
                            t.as_millis()
                        )))
                    }),
            }
        })
        .map_err(|e| CliError::Failed(format!("cannot start an executor: {e}")))?
        .join()
        .map_err(|e| CliError::Failed(format!("executor: {e}")))?
}

/// Lets a closed standard output end the process quietly, as it ends `cat` or `grep`
/// (`corelog topic list | head -1`). Rust ignores SIGPIPE, which turns every later print
/// into a panic; the broker keeps that (a client hanging up must not kill it), the CLI
/// does not.
pub fn default_sigpipe() {
    // SAFETY: restores the default disposition of one signal; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The process exit code of an admin command's result (its error printed).
pub fn exit_code(result: Result<(), CliError>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("corelog: {e}");
            e.exit_code()
        }
    }
}

/// Splits `KEY=VALUE`.
fn key_value(s: &str, what: &str) -> Result<(String, String), CliError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(CliError::Usage(format!(
            "{what} must be KEY=VALUE, not {s:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_split_at_the_first_equals() {
        assert_eq!(
            key_value("a=b=c", "x"),
            Ok(("a".to_string(), "b=c".to_string()))
        );
        assert_eq!(key_value("a=", "x"), Ok(("a".to_string(), String::new())));
        assert!(matches!(key_value("=b", "x"), Err(CliError::Usage(_))));
        assert!(matches!(key_value("ab", "x"), Err(CliError::Usage(_))));
    }
}
