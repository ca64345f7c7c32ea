//! A real shard for handler tests: one executor, a temporary data directory, topic `t`
//! with two partitions, and the group coordinator with its offsets partitions.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::{Latency, Shares};

use crate::broker::catalog::Catalog;
use crate::broker::ownership::CONTROLLER_SHARD;
use crate::broker::router::{ControlOp, NewTopic, Op, Reply, Router};
use crate::broker::shard::Shard;
use crate::broker::topic_config::TopicDefaults;
use crate::config::BrokerConfig;

/// Settings of a one-shard test broker in `dir` (small segments, no auto-creation).
pub fn config(dir: &std::path::Path) -> BrokerConfig {
    let mut defaults = TopicDefaults::default();
    defaults.config.segment_bytes = 1 << 16;
    BrokerConfig {
        listen: "127.0.0.1:9".parse().unwrap(),
        metrics_listen: None,
        data_dir: dir.to_path_buf(),
        cpus: vec![0],
        advertised_host: "127.0.0.1".into(),
        node_id: 1,
        auto_create_topics: false,
        topic_defaults: defaults,
        retention_check_interval: Duration::from_secs(3600),
        request_max_bytes: 1 << 20,
        connections_max: 10,
        connections_max_per_ip: usize::MAX,
        connections_max_idle: Duration::from_secs(600),
        request_read_timeout: Duration::from_secs(20),
        request_read_min_bytes_per_sec: 1 << 20,
        connection_bytes_in_flight_max: 128 << 20,
        shard_request_bytes_in_flight_max: 512 << 20,
        shard_response_bytes_in_flight_max: 512 << 20,
        tail_cache_bytes: 1 << 20,
        background_flush: crate::broker::partition::BackgroundFlush::default(),
        log_writes: Default::default(),
        io_ring_depth: crate::config::DEFAULT_IO_RING_DEPTH,
        tuning_profile: None,
        busy_poll: Duration::ZERO,
        memory_trim_interval: Duration::ZERO,
        groups: Default::default(),
    }
}

/// A shard (call on its executor) owning topic `t` with two partitions.
pub async fn shard(config: Arc<BrokerConfig>) -> Rc<Shard> {
    let bg =
        glommio::executor().create_task_queue(Shares::Static(100), Latency::NotImportant, "bg");
    let shard = Rc::new(Shard::new(
        0,
        config,
        Catalog::default(),
        Router::new(0, None),
        bg,
        Default::default(),
        crate::broker::per_ip::ConnectionsPerIp::new(usize::MAX),
    ));
    let create = Op::Control(ControlOp::CreateTopics(
        vec![NewTopic {
            name: "t".into(),
            partitions: 2,
            replication_factor: 1,
            configs: Default::default(),
        }],
        false,
    ));
    let reply = shard.call(CONTROLLER_SHARD, create).await;
    assert!(matches!(reply, Reply::Control(r) if r[0].is_ok()));
    shard.open_groups().await.unwrap();
    shard
}
