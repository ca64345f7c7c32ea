//! `corelog serve` settings: command-line flags over an optional TOML file over defaults,
//! validated once at start-up.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use corelog_tuning::profile::{
    RING_DEPTH_MAX, RING_DEPTH_MIN, WRITE_CHUNK_ALIGN_BYTES, WRITE_CHUNK_BYTES_MAX,
    WRITE_CHUNK_BYTES_MIN, WRITE_DEPTH_MAX, WRITE_DEPTH_MIN,
};
use corelog_tuning::Profile;

use crate::broker::partition::BackgroundFlush;
use crate::broker::topic_config::{LogWrites, TopicDefaults};
use crate::group::coordinator::GroupConfig;

/// Flags of `corelog serve`. Each overrides the same key of `--config`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (every shard binds it with SO_REUSEPORT) [default: 127.0.0.1:9092]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Directory of topic metadata and partition logs [default: ./data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Number of shards (pinned cores) [default: the CPUs in the process affinity mask]
    #[arg(long)]
    pub shards: Option<usize>,
    /// Host advertised to clients in Metadata [default: the listen address's IP]
    #[arg(long)]
    pub advertised_host: Option<String>,
    /// TOML file with any of the settings below (keys as documented in the README)
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Partitions of auto-created topics and of CreateTopics asking for the default
    #[arg(long)]
    pub num_partitions: Option<u32>,
    /// Create unknown topics on Metadata (when the client allows it) and Produce
    #[arg(long)]
    pub auto_create_topics: Option<bool>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics [default: not served]
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_listen: Option<SocketAddr>,
    /// Tuning profile written by `corelog tune` [default: DATA_DIR/tuning.toml if present]
    #[arg(long, value_name = "PATH")]
    pub tuning_profile: Option<PathBuf>,
}

/// The TOML file. Unknown keys are refused, so a typo is an error, not a silent default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    shards: Option<usize>,
    advertised_host: Option<String>,
    node_id: Option<i32>,
    auto_create_topics: Option<bool>,
    num_partitions: Option<u32>,
    log_retention_ms: Option<i64>,
    log_retention_bytes: Option<i64>,
    log_segment_bytes: Option<u64>,
    log_segment_ms: Option<i64>,
    log_retention_check_interval_ms: Option<u64>,
    message_max_bytes: Option<usize>,
    request_max_bytes: Option<usize>,
    connections_max: Option<usize>,
    tail_cache_bytes: Option<usize>,
    log_flush_interval_ms: Option<u64>,
    log_flush_interval_bytes: Option<usize>,
    busy_poll_us: Option<u64>,
    memory_trim_interval_ms: Option<u64>,
    tuning_profile: Option<PathBuf>,
    write_chunk_bytes: Option<usize>,
    write_depth: Option<usize>,
    io_ring_depth: Option<usize>,
    connections_max_per_ip: Option<usize>,
    connections_max_idle_ms: Option<u64>,
    request_read_timeout_ms: Option<u64>,
    request_read_min_bytes_per_sec: Option<u64>,
    connection_bytes_in_flight_max: Option<usize>,
    shard_request_bytes_in_flight_max: Option<usize>,
    shard_response_bytes_in_flight_max: Option<usize>,
    group_min_session_timeout_ms: Option<i64>,
    group_max_session_timeout_ms: Option<i64>,
    offsets_retention_ms: Option<i64>,
    offsets_retention_check_interval_ms: Option<u64>,
}

/// Validated broker settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Where `/metrics` is served (Prometheus text format), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// CPUs to pin one shard each to, in shard order.
    pub cpus: Vec<usize>,
    /// Host in Metadata.
    pub advertised_host: String,
    /// This broker's node id.
    pub node_id: i32,
    /// Auto-create unknown topics.
    pub auto_create_topics: bool,
    /// Defaults of new topics.
    pub topic_defaults: TopicDefaults,
    /// How often retention runs.
    pub retention_check_interval: Duration,
    /// Largest request frame accepted; a larger size prefix closes the connection.
    pub request_max_bytes: usize,
    /// Open connections per shard; more are closed at accept.
    pub connections_max: usize,
    /// Open connections per client IP across all shards; more are closed at accept.
    pub connections_max_per_ip: usize,
    /// A connection that sends no whole request for this long, or reads nothing of an
    /// answer for this long, is closed (idle clients, and clients that trickle a
    /// request in or read their answers slowly).
    pub connections_max_idle: Duration,
    /// How a request's bytes must arrive once room has been made for them: within this
    /// time, plus a second for every `request_read_min_bytes_per_sec` of them, checked
    /// each time a 4 MiB step (or the rest of the request) is in (mod_reqtimeout's
    /// rule). A client that declares a large request and trickles it
    /// in is cut off instead of holding the shard's request budget (which other large
    /// requests wait for) until `connections_max_idle`.
    pub request_read_timeout: Duration,
    /// See `request_read_timeout`.
    pub request_read_min_bytes_per_sec: u64,
    /// Bytes one connection may have in memory: the request being read and handled
    /// plus its answers not yet written. Past it, the connection's next request is not
    /// read (the client's bytes wait in the socket) until answers are written.
    pub connection_bytes_in_flight_max: usize,
    /// Bytes of requests all of a shard's connections may have in memory at once (a
    /// request's declared size counts from when it is known until its handler is
    /// done). Past it, requests wait in the sockets, first come, first served.
    pub shard_request_bytes_in_flight_max: usize,
    /// Bytes of answers a shard may hold while they are written. A fetch asks for no
    /// more than what is left (but always gets its first batch, KIP-74), so clients
    /// that read slowly shrink other fetches instead of growing memory.
    pub shard_response_bytes_in_flight_max: usize,
    /// Bytes of recently appended batches each shard keeps in memory for fetches.
    pub tail_cache_bytes: usize,
    /// When acks=0/1 appends are flushed.
    pub background_flush: BackgroundFlush,
    /// How partition logs write.
    pub log_writes: LogWrites,
    /// Depth of each shard's io_uring rings (glommio's `ring_depth`).
    pub io_ring_depth: usize,
    /// The tuning profile whose choices were taken (settings given explicitly win).
    pub tuning_profile: Option<PathBuf>,
    /// How long a connection waiting for its next request polls its socket before its
    /// task waits for readiness (zero: not at all). While any connection polls, its
    /// shard does not sleep: for one-request-at-a-time clients this removes the
    /// executor's sleep and wake-up from every round trip, at the price of a busy CPU.
    pub busy_poll: Duration,
    /// How often freed heap memory is given back to the kernel (`malloc_trim`); zero:
    /// never. See `broker::memory`.
    pub memory_trim_interval: Duration,
    /// Group coordinator settings.
    pub groups: GroupConfig,
}

/// glommio's default ring depth, used without a profile.
pub const DEFAULT_IO_RING_DEPTH: usize = 128;

/// The CPUs this process may run on (`sched_getaffinity`), which glommio's
/// `CpuSet::online()` ignores.
pub fn affinity_cpus() -> Vec<usize> {
    core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![0])
}

impl BrokerConfig {
    /// Merges flags, file and defaults, and checks the result.
    pub fn load(args: &ServeArgs) -> Result<BrokerConfig, String> {
        let file = match &args.config {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:9092".parse().expect("literal"));
        let cpus_allowed = affinity_cpus();
        let shards = args.shards.or(file.shards).unwrap_or(cpus_allowed.len());
        if shards == 0 || shards > 256 {
            return Err(format!("shards must be between 1 and 256, not {shards}"));
        }
        // More shards than CPUs share CPUs round-robin (useful for tests on small hosts).
        let cpus = (0..shards)
            .map(|i| cpus_allowed[i % cpus_allowed.len()])
            .collect();
        let advertised_host = args
            .advertised_host
            .clone()
            .or(file.advertised_host)
            .unwrap_or_else(|| match listen.ip() {
                ip if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]).to_string(),
                ip => ip.to_string(),
            });
        let mut defaults = TopicDefaults::default();
        if let Some(n) = args.num_partitions.or(file.num_partitions) {
            defaults.partitions = n;
        }
        let d = &mut defaults.config;
        if let Some(v) = file.log_retention_ms {
            d.retention_ms = v;
        }
        if let Some(v) = file.log_retention_bytes {
            d.retention_bytes = v;
        }
        if let Some(v) = file.log_segment_bytes {
            d.segment_bytes = v;
        }
        if let Some(v) = file.log_segment_ms {
            d.segment_ms = v;
        }
        if let Some(v) = file.message_max_bytes {
            d.max_message_bytes = v;
        }
        defaults.validate()?;
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("./data"));
        // The profile `corelog tune` wrote: named, or found in the data directory. It
        // only supplies defaults; a setting given in the file wins.
        let profile_path = args
            .tuning_profile
            .clone()
            .or(file.tuning_profile.clone())
            .or_else(|| Some(Profile::default_path(&data_dir)).filter(|p| p.exists()));
        let profile = match &profile_path {
            Some(p) => Some(Profile::load(p)?),
            None => None,
        };
        let request_max_bytes = file.request_max_bytes.unwrap_or(100 << 20);
        let config = BrokerConfig {
            listen,
            metrics_listen: args.metrics_listen.or(file.metrics_listen),
            data_dir,
            cpus,
            advertised_host,
            node_id: file.node_id.unwrap_or(1),
            auto_create_topics: args
                .auto_create_topics
                .or(file.auto_create_topics)
                .unwrap_or(true),
            topic_defaults: defaults,
            retention_check_interval: Duration::from_millis(
                file.log_retention_check_interval_ms.unwrap_or(300_000),
            ),
            request_max_bytes,
            connections_max: file.connections_max.unwrap_or(10_000),
            connections_max_per_ip: file.connections_max_per_ip.unwrap_or(usize::MAX),
            connections_max_idle: Duration::from_millis(
                file.connections_max_idle_ms.unwrap_or(600_000),
            ),
            request_read_timeout: Duration::from_millis(
                file.request_read_timeout_ms.unwrap_or(20_000),
            ),
            request_read_min_bytes_per_sec: file.request_read_min_bytes_per_sec.unwrap_or(1 << 20),
            connection_bytes_in_flight_max: file
                .connection_bytes_in_flight_max
                .unwrap_or_else(|| request_max_bytes.max(128 << 20)),
            shard_request_bytes_in_flight_max: file
                .shard_request_bytes_in_flight_max
                .unwrap_or_else(|| request_max_bytes.max(512 << 20)),
            shard_response_bytes_in_flight_max: file
                .shard_response_bytes_in_flight_max
                .unwrap_or(512 << 20),
            tail_cache_bytes: file.tail_cache_bytes.unwrap_or(256 << 20),
            background_flush: {
                let d = BackgroundFlush::default();
                BackgroundFlush {
                    interval: file
                        .log_flush_interval_ms
                        .or(profile.as_ref().map(|p| p.flush_interval_ms))
                        .map(Duration::from_millis)
                        .unwrap_or(d.interval),
                    bytes: file.log_flush_interval_bytes.unwrap_or(d.bytes),
                }
            },
            log_writes: {
                let d = LogWrites::default();
                LogWrites {
                    chunk_bytes: file
                        .write_chunk_bytes
                        .or(profile.as_ref().map(|p| p.write_chunk_bytes))
                        .unwrap_or(d.chunk_bytes),
                    depth: file
                        .write_depth
                        .or(profile.as_ref().map(|p| p.write_depth))
                        .unwrap_or(d.depth),
                }
            },
            io_ring_depth: file
                .io_ring_depth
                .or(profile.as_ref().map(|p| p.ring_depth))
                .unwrap_or(DEFAULT_IO_RING_DEPTH),
            tuning_profile: profile_path,
            busy_poll: Duration::from_micros(file.busy_poll_us.unwrap_or(0)),
            memory_trim_interval: Duration::from_millis(
                file.memory_trim_interval_ms.unwrap_or(10_000),
            ),
            groups: {
                let d = GroupConfig::default();
                GroupConfig {
                    min_session_timeout_ms: file
                        .group_min_session_timeout_ms
                        .unwrap_or(d.min_session_timeout_ms),
                    max_session_timeout_ms: file
                        .group_max_session_timeout_ms
                        .unwrap_or(d.max_session_timeout_ms),
                    offsets_retention_ms: file
                        .offsets_retention_ms
                        .unwrap_or(d.offsets_retention_ms),
                    offsets_retention_check_interval: file
                        .offsets_retention_check_interval_ms
                        .map(Duration::from_millis)
                        .unwrap_or(d.offsets_retention_check_interval),
                    compact_min_records: d.compact_min_records,
                }
            },
        };
        let g = &config.groups;
        if g.min_session_timeout_ms <= 0 || g.min_session_timeout_ms > g.max_session_timeout_ms {
            return Err("group_min_session_timeout_ms must be positive and at most group_max_session_timeout_ms".into());
        }
        if g.offsets_retention_ms <= 0 || g.offsets_retention_check_interval.is_zero() {
            return Err(
                "offsets_retention_ms and offsets_retention_check_interval_ms must be positive"
                    .into(),
            );
        }
        if config.connections_max_per_ip == 0 || config.connections_max_idle.is_zero() {
            return Err(
                "connections_max_per_ip and connections_max_idle_ms must be positive".into(),
            );
        }
        if config.request_read_timeout.is_zero() || config.request_read_min_bytes_per_sec == 0 {
            return Err(
                "request_read_timeout_ms and request_read_min_bytes_per_sec must be positive"
                    .into(),
            );
        }
        // The same ranges a profile is held to: a 1 TiB chunk would fail only when the
        // first partition opens, and a deep write queue would lift the write-back bound.
        let w = &config.log_writes;
        if !(WRITE_CHUNK_BYTES_MIN..=WRITE_CHUNK_BYTES_MAX).contains(&w.chunk_bytes)
            || !w.chunk_bytes.is_multiple_of(WRITE_CHUNK_ALIGN_BYTES)
        {
            return Err(format!(
                "write_chunk_bytes must be a multiple of {WRITE_CHUNK_ALIGN_BYTES} between \
                 {WRITE_CHUNK_BYTES_MIN} and {WRITE_CHUNK_BYTES_MAX}, not {}",
                w.chunk_bytes
            ));
        }
        if !(WRITE_DEPTH_MIN..=WRITE_DEPTH_MAX).contains(&w.depth) {
            return Err(format!(
                "write_depth must be between {WRITE_DEPTH_MIN} and {WRITE_DEPTH_MAX}, not {}",
                w.depth
            ));
        }
        w.validate()
            .map_err(|e| format!("write_chunk_bytes / write_depth: {e}"))?;
        if !(RING_DEPTH_MIN..=RING_DEPTH_MAX).contains(&config.io_ring_depth) {
            return Err(format!(
                "io_ring_depth must be between {RING_DEPTH_MIN} and {RING_DEPTH_MAX}, not {}",
                config.io_ring_depth
            ));
        }
        if config.listen.port() == 0 {
            // Every shard binds the address itself: port 0 would give each its own port.
            return Err("the listen port must not be 0".into());
        }
        if config.node_id < 0 {
            return Err("node_id must not be negative".into());
        }
        if config.retention_check_interval.is_zero() {
            return Err("log_retention_check_interval_ms must be positive".into());
        }
        if !(1024..=1 << 30).contains(&config.request_max_bytes) {
            return Err("request_max_bytes must be between 1 KiB and 1 GiB".into());
        }
        if config.connection_bytes_in_flight_max < config.request_max_bytes
            || config.shard_request_bytes_in_flight_max < config.request_max_bytes
        {
            return Err(
                "connection_bytes_in_flight_max and shard_request_bytes_in_flight_max \
                 must be at least request_max_bytes"
                    .into(),
            );
        }
        if config.shard_response_bytes_in_flight_max == 0 {
            return Err("shard_response_bytes_in_flight_max must be positive".into());
        }
        if config.request_max_bytes < config.topic_defaults.config.max_message_bytes {
            return Err("request_max_bytes must be at least message_max_bytes".into());
        }
        Ok(config)
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.cpus.len()
    }
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(data_dir: &Path, config: Option<PathBuf>) -> ServeArgs {
        ServeArgs {
            listen: None,
            data_dir: Some(data_dir.to_path_buf()),
            shards: Some(1),
            advertised_host: None,
            config,
            num_partitions: None,
            auto_create_topics: None,
            metrics_listen: None,
            tuning_profile: None,
        }
    }

    const PROFILE: &str = "[broker]\nwrite_chunk_bytes = 262144\nwrite_depth = 2\n\
                           flush_interval_ms = 3\nring_depth = 256\n";

    #[test]
    fn without_a_profile_the_built_in_defaults_hold() {
        let dir = tempfile::tempdir().unwrap();
        let c = BrokerConfig::load(&args(dir.path(), None)).unwrap();
        assert_eq!(c.log_writes, LogWrites::default());
        assert_eq!(c.io_ring_depth, DEFAULT_IO_RING_DEPTH);
        assert_eq!(c.background_flush, BackgroundFlush::default());
        assert_eq!(c.tuning_profile, None);
    }

    #[test]
    fn the_data_dirs_profile_is_taken_and_explicit_settings_win() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tuning.toml"), PROFILE).unwrap();
        let c = BrokerConfig::load(&args(dir.path(), None)).unwrap();
        assert_eq!(
            c.log_writes,
            LogWrites {
                chunk_bytes: 256 << 10,
                depth: 2
            }
        );
        assert_eq!(c.io_ring_depth, 256);
        assert_eq!(c.background_flush.interval, Duration::from_millis(3));
        assert_eq!(c.tuning_profile, Some(dir.path().join("tuning.toml")));

        let file = dir.path().join("corelog.toml");
        std::fs::write(&file, "write_depth = 4\nlog_flush_interval_ms = 9\n").unwrap();
        let c = BrokerConfig::load(&args(dir.path(), Some(file))).unwrap();
        assert_eq!(c.log_writes.depth, 4);
        assert_eq!(c.log_writes.chunk_bytes, 256 << 10);
        assert_eq!(c.background_flush.interval, Duration::from_millis(9));
    }

    #[test]
    fn a_profile_of_defaults_is_the_broker_without_one() {
        // corelog tune's idea of the defaults and the broker's must not drift apart.
        let p = Profile::default();
        let d = LogWrites::default();
        assert_eq!(
            (p.write_chunk_bytes, p.write_depth),
            (d.chunk_bytes, d.depth)
        );
        assert_eq!(p.ring_depth, DEFAULT_IO_RING_DEPTH);
        assert_eq!(
            Duration::from_millis(p.flush_interval_ms),
            BackgroundFlush::default().interval
        );
    }

    #[test]
    fn a_named_profile_replaces_the_data_dirs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tuning.toml"), PROFILE).unwrap();
        let other = dir.path().join("other.toml");
        std::fs::write(
            &other,
            PROFILE.replace("ring_depth = 256", "ring_depth = 64"),
        )
        .unwrap();
        let mut a = args(dir.path(), None);
        a.tuning_profile = Some(other.clone());
        let c = BrokerConfig::load(&a).unwrap();
        assert_eq!(
            (c.io_ring_depth, c.tuning_profile),
            (64, Some(other.clone()))
        );
        // The same by the config file's key.
        let file = dir.path().join("corelog.toml");
        std::fs::write(
            &file,
            format!("tuning_profile = {:?}\n", other.display().to_string()),
        )
        .unwrap();
        let c = BrokerConfig::load(&args(dir.path(), Some(file))).unwrap();
        assert_eq!(c.io_ring_depth, 64);
    }

    #[test]
    fn explicit_write_settings_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("corelog.toml");
        for bad in [
            "write_chunk_bytes = 1099511627776",
            "write_chunk_bytes = 4096",
            "write_depth = 0",
            "write_depth = 64",
            "io_ring_depth = 8",
            "io_ring_depth = 4096",
        ] {
            std::fs::write(&file, format!("{bad}\n")).unwrap();
            let e = BrokerConfig::load(&args(dir.path(), Some(file.clone()))).unwrap_err();
            let key = bad.split(' ').next().unwrap();
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn a_bad_or_missing_profile_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("tuning.toml"),
            "[broker]\nwrite_depth = 2\n",
        )
        .unwrap();
        let e = BrokerConfig::load(&args(dir.path(), None)).unwrap_err();
        assert!(
            e.contains("tuning.toml") && e.contains("write_chunk_bytes"),
            "{e}"
        );

        let mut a = args(dir.path(), None);
        a.tuning_profile = Some(dir.path().join("absent.toml"));
        let e = BrokerConfig::load(&a).unwrap_err();
        assert!(e.contains("absent.toml"), "{e}");

        let file = dir.path().join("corelog.toml");
        std::fs::write(dir.path().join("tuning.toml"), PROFILE).unwrap();
        std::fs::write(&file, "write_chunk_bytes = 1000\n").unwrap();
        let e = BrokerConfig::load(&args(dir.path(), Some(file))).unwrap_err();
        assert!(e.contains("write_chunk_bytes"), "{e}");
    }
}
