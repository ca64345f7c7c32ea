//! The cluster as the admin commands see it: a bootstrap connection, and one connection
//! per broker that a request must reach (the controller, a group's coordinator, a
//! partition's leader), opened on first use and kept for the command's life.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use corelog_bench::kafka::admin::{self, ClusterMeta, TopicMeta};
use corelog_bench::kafka::api::{self, code};
use corelog_bench::kafka::{error_name, ClientError, Conn};

use super::CliError;

/// How long connecting to one broker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a coordinator may be unavailable (loading, electing) before we give up.
const COORDINATOR_WAIT: Duration = Duration::from_secs(10);

/// Connections to a cluster.
#[derive(Debug)]
pub struct Cluster {
    bootstrap: Conn,
    conns: RefCell<HashMap<String, Conn>>,
}

async fn connect(addr: &str) -> Result<Conn, CliError> {
    let attempt = async { Ok(Conn::connect(addr).await) };
    match glommio::timer::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(CliError::Unreachable(format!(
            "cannot connect to {addr}: {e}"
        ))),
        Err(_) => Err(CliError::Unreachable(format!(
            "cannot connect to {addr}: no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// A failure answered by the cluster, in words: `NAME (code): message`.
pub fn kafka_error(code: i16, msg: Option<&str>) -> String {
    match msg {
        Some(m) if !m.is_empty() => format!("{} ({code}): {m}", error_name(code)),
        _ => format!("{} ({code})", error_name(code)),
    }
}

impl Cluster {
    /// Connects to the bootstrap broker.
    pub async fn connect(bootstrap: &str) -> Result<Cluster, CliError> {
        let conn = connect(bootstrap).await?;
        // A first request proves it is a Kafka broker, not just an open port.
        api::api_versions(&conn).await.map_err(|e| {
            CliError::Unreachable(format!(
                "{bootstrap} does not answer as a Kafka broker: {e}"
            ))
        })?;
        Ok(Cluster {
            bootstrap: conn,
            conns: RefCell::new(HashMap::new()),
        })
    }

    /// The bootstrap connection.
    pub fn bootstrap(&self) -> &Conn {
        &self.bootstrap
    }

    /// Metadata of `topics` (every topic with `None`).
    pub async fn metadata(&self, topics: Option<&[String]>) -> Result<ClusterMeta, CliError> {
        Ok(admin::metadata(&self.bootstrap, topics).await?)
    }

    /// A connection to `addr`, opened once.
    pub async fn conn(&self, addr: &str) -> Result<Conn, CliError> {
        if addr == self.bootstrap.addr() {
            return Ok(self.bootstrap.clone());
        }
        if let Some(c) = self.conns.borrow().get(addr) {
            return Ok(c.clone());
        }
        let c = connect(addr).await?;
        self.conns.borrow_mut().insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// A connection to broker `node` of `meta`.
    pub async fn node(&self, meta: &ClusterMeta, node: i32) -> Result<Conn, CliError> {
        match meta.address(node) {
            Some(a) => self.conn(&a).await,
            None => Err(CliError::Failed(format!(
                "broker {node} is not in the cluster's metadata"
            ))),
        }
    }

    /// The controller, to which topic changes go (the bootstrap broker when the cluster
    /// names none).
    pub async fn controller(&self) -> Result<Conn, CliError> {
        let meta = self.metadata(Some(&[])).await?;
        if meta.controller < 0 || meta.address(meta.controller).is_none() {
            return Ok(self.bootstrap.clone());
        }
        self.node(&meta, meta.controller).await
    }

    /// The coordinator of `group`, waiting while it is being elected or loaded.
    pub async fn coordinator(&self, group: &str) -> Result<Conn, CliError> {
        let started = std::time::Instant::now();
        loop {
            match api::find_coordinator(&self.bootstrap, group).await? {
                Ok(addr) => return self.conn(&addr).await,
                Err(c)
                    if (c == code::COORDINATOR_NOT_AVAILABLE
                        || c == code::COORDINATOR_LOAD_IN_PROGRESS)
                        && started.elapsed() < COORDINATOR_WAIT =>
                {
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                }
                Err(c) => {
                    return Err(CliError::Failed(format!(
                        "finding the coordinator of group {group}: {}",
                        kafka_error(c, None)
                    )))
                }
            }
        }
    }

    /// `topic`'s metadata, refusing a topic the cluster does not know or answers
    /// without partitions.
    pub async fn topic(&self, topic: &str) -> Result<(ClusterMeta, TopicMeta), CliError> {
        let meta = self.metadata(Some(&[topic.to_string()])).await?;
        let t = meta
            .topic(topic)
            .cloned()
            .ok_or_else(|| CliError::Failed(format!("topic {topic} was not answered")))?;
        if t.error_code != code::NONE {
            return Err(CliError::Failed(format!(
                "topic {topic}: {}",
                kafka_error(t.error_code, None)
            )));
        }
        if t.partitions.is_empty() {
            return Err(CliError::Failed(format!(
                "topic {topic} was answered without partitions"
            )));
        }
        Ok((meta, t))
    }

    /// ListOffsets of `partitions` of `topic` for `timestamp` (-2 earliest, -1 latest,
    /// else the first offset at or after that time, -1 when there is none), each asked of
    /// its leader: partition -> offset, with an entry for every partition asked (an
    /// answer that leaves one out is a failure), so callers may index it.
    pub async fn offsets(
        &self,
        meta: &ClusterMeta,
        topic: &TopicMeta,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<BTreeMap<i32, i64>, CliError> {
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in partitions {
            let leader = topic
                .partitions
                .iter()
                .find(|m| m.partition == *p)
                .map(|m| m.leader)
                .ok_or_else(|| {
                    CliError::Failed(format!("topic {} has no partition {p}", topic.name))
                })?;
            by_leader.entry(leader).or_default().push(*p);
        }
        let mut out = BTreeMap::new();
        for (leader, ps) in by_leader {
            let conn = self.node(meta, leader).await?;
            let rows = api::list_offsets(&conn, &topic.name, &ps, timestamp)
                .await
                .map_err(|e: ClientError| {
                    CliError::Failed(format!("offsets of topic {}: {e}", topic.name))
                })?;
            out.extend(rows);
        }
        if let Some(p) = partitions.iter().find(|p| !out.contains_key(p)) {
            return Err(CliError::Failed(format!(
                "offsets of topic {}: partition {p} was not answered",
                topic.name
            )));
        }
        Ok(out)
    }
}
