//! The administrative requests `corelog topic|group|produce|consume` make, each at one
//! classic-encoding version that Kafka 3.x/4.x, Redpanda and corelog serve (see
//! [`VERSIONS`]). Field lists follow Kafka's message schemas
//! (clients/src/main/resources/common/message/*.json) at the version named.
//!
//! Where a request is about one broker's share of the cluster (ListGroups) or must reach
//! a particular broker (the controller, a group's coordinator, a partition's leader), the
//! caller picks the connection; these functions only encode and decode.

use bytes::Bytes;

use super::api::{call_at, code, decoded};
use super::codec::{Dec, DecodeError};
use super::conn::Conn;
use super::ClientError;

/// API keys used here and not by the bench.
pub mod key {
    pub const DESCRIBE_GROUPS: i16 = 15;
    pub const LIST_GROUPS: i16 = 16;
    pub const DELETE_TOPICS: i16 = 20;
    pub const DESCRIBE_CONFIGS: i16 = 32;
    pub const CREATE_PARTITIONS: i16 = 37;
    pub const DELETE_GROUPS: i16 = 42;
    pub const INCREMENTAL_ALTER_CONFIGS: i16 = 44;
}

/// `(api key, version)` of every request sent from this module.
pub const VERSIONS: [(i16, i16); 12] = [
    (super::api::key::CREATE_TOPICS, 4),
    (super::api::key::METADATA, 8),
    (super::api::key::OFFSET_FETCH, 5),
    (super::api::key::OFFSET_COMMIT, 7),
    (super::api::key::PRODUCE, 7),
    (key::DESCRIBE_GROUPS, 3),
    (key::LIST_GROUPS, 2),
    (key::DELETE_TOPICS, 3),
    (key::DESCRIBE_CONFIGS, 1),
    (key::CREATE_PARTITIONS, 1),
    (key::DELETE_GROUPS, 1),
    (key::INCREMENTAL_ALTER_CONFIGS, 0),
];

fn version(api: i16) -> i16 {
    VERSIONS.iter().find(|(k, _)| *k == api).expect("listed").1
}

async fn call(
    conn: &Conn,
    api: i16,
    cap: usize,
    body: impl FnOnce(&mut super::codec::Enc),
) -> Result<Dec, ClientError> {
    call_at(conn, api, version(api), cap, body).await
}

/// `Some(code)` unless it is NONE.
fn failed(code: i16) -> Option<i16> {
    (code != code::NONE).then_some(code)
}

/// A partition from Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMeta {
    pub partition: i32,
    pub error_code: i16,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// A topic from Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: String,
    pub error_code: i16,
    pub internal: bool,
    /// Sorted by partition.
    pub partitions: Vec<PartitionMeta>,
}

/// A Metadata answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMeta {
    /// `(node id, host, port)`.
    pub brokers: Vec<(i32, String, i32)>,
    pub cluster_id: Option<String>,
    pub controller: i32,
    pub topics: Vec<TopicMeta>,
}

impl ClusterMeta {
    /// `host:port` of broker `node`.
    pub fn address(&self, node: i32) -> Option<String> {
        self.brokers
            .iter()
            .find(|(id, _, _)| *id == node)
            .map(|(_, h, p)| format!("{h}:{p}"))
    }

    /// The topic called `name`, if it was answered.
    pub fn topic(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.iter().find(|t| t.name == name)
    }
}

/// Metadata v8 for `topics`, or for every topic with `None`. Never asks the broker to
/// create a topic.
pub async fn metadata(conn: &Conn, topics: Option<&[String]>) -> Result<ClusterMeta, ClientError> {
    let mut d = call(conn, super::api::key::METADATA, 64, |e| {
        match topics {
            None => {
                e.i32(-1);
            }
            Some(ts) => {
                e.count(ts.len());
                for t in ts {
                    e.string(t);
                }
            }
        }
        e.bool(false).bool(false).bool(false);
    })
    .await?;
    decoded(
        "Metadata",
        (|| {
            d.i32()?; // throttle
            let nb = d.count(10)?;
            let mut brokers = Vec::with_capacity(nb);
            for _ in 0..nb {
                let node = d.i32()?;
                let host = d.string()?;
                let port = d.i32()?;
                d.nullable_string()?; // rack
                brokers.push((node, host, port));
            }
            let cluster_id = d.nullable_string()?;
            let controller = d.i32()?;
            let nt = d.count(9)?;
            let mut out = Vec::with_capacity(nt);
            for _ in 0..nt {
                let error_code = d.i16()?;
                let name = d.string()?;
                let internal = d.bool()?;
                let np = d.count(26)?;
                let mut partitions = Vec::with_capacity(np);
                for _ in 0..np {
                    let error_code = d.i16()?;
                    let partition = d.i32()?;
                    let leader = d.i32()?;
                    d.i32()?; // leader epoch
                    let replicas = node_list(&mut d)?;
                    let isr = node_list(&mut d)?;
                    node_list(&mut d)?; // offline replicas
                    partitions.push(PartitionMeta {
                        partition,
                        error_code,
                        leader,
                        replicas,
                        isr,
                    });
                }
                d.i32()?; // topic authorized operations
                partitions.sort_unstable_by_key(|p| p.partition);
                out.push(TopicMeta {
                    name,
                    error_code,
                    internal,
                    partitions,
                });
            }
            d.i32()?; // cluster authorized operations
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(ClusterMeta {
                brokers,
                cluster_id,
                controller,
                topics: out,
            })
        })(),
    )
}

fn node_list(d: &mut Dec) -> Result<Vec<i32>, DecodeError> {
    let n = d.count(4)?;
    (0..n).map(|_| d.i32()).collect()
}

/// One topic's outcome of a topic-level request: its name, error code and message.
pub type TopicResult = (String, i16, Option<String>);

/// A topic to create: partitions and replication factor -1 take the broker's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// CreateTopics v4.
pub async fn create_topics(
    conn: &Conn,
    topics: &[NewTopic],
    timeout_ms: i32,
) -> Result<Vec<TopicResult>, ClientError> {
    let mut d = call(conn, super::api::key::CREATE_TOPICS, 128, |e| {
        e.count(topics.len());
        for t in topics {
            e.string(&t.name)
                .i32(t.partitions)
                .i16(t.replication_factor)
                .count(0);
            e.count(t.configs.len());
            for (k, v) in &t.configs {
                e.string(k).nullable_string(Some(v));
            }
        }
        e.i32(timeout_ms).bool(false);
    })
    .await?;
    decoded(
        "CreateTopics",
        (|| {
            d.i32()?; // throttle
            let n = d.count(6)?;
            (0..n)
                .map(|_| Ok((d.string()?, d.i16()?, d.nullable_string()?)))
                .collect()
        })(),
    )
}

/// DeleteTopics v3.
pub async fn delete_topics(
    conn: &Conn,
    topics: &[String],
    timeout_ms: i32,
) -> Result<Vec<TopicResult>, ClientError> {
    let mut d = call(conn, key::DELETE_TOPICS, 64, |e| {
        e.count(topics.len());
        for t in topics {
            e.string(t);
        }
        e.i32(timeout_ms);
    })
    .await?;
    decoded(
        "DeleteTopics",
        (|| {
            d.i32()?; // throttle
            let n = d.count(4)?;
            (0..n).map(|_| Ok((d.string()?, d.i16()?, None))).collect()
        })(),
    )
}

/// CreatePartitions v1: raises each `(topic, new total partition count)`.
pub async fn create_partitions(
    conn: &Conn,
    counts: &[(String, i32)],
    timeout_ms: i32,
) -> Result<Vec<TopicResult>, ClientError> {
    let mut d = call(conn, key::CREATE_PARTITIONS, 64, |e| {
        e.count(counts.len());
        for (t, n) in counts {
            e.string(t).i32(*n).i32(-1); // null assignments: the broker places them
        }
        e.i32(timeout_ms).bool(false);
    })
    .await?;
    decoded(
        "CreatePartitions",
        (|| {
            d.i32()?; // throttle
            let n = d.count(6)?;
            (0..n)
                .map(|_| Ok((d.string()?, d.i16()?, d.nullable_string()?)))
                .collect()
        })(),
    )
}

/// Resource type of a topic in the config APIs.
pub const RESOURCE_TOPIC: i8 = 2;

/// One config entry from DescribeConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    /// Kafka's ConfigSource: 1 topic, 4 static broker, 5 default, ...
    pub source: i8,
    pub sensitive: bool,
}

impl ConfigEntry {
    /// Kafka's name for `source` (as kafka-configs.sh prints it).
    pub fn source_name(&self) -> &'static str {
        match self.source {
            1 => "DYNAMIC_TOPIC_CONFIG",
            2 => "DYNAMIC_BROKER_CONFIG",
            3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            4 => "STATIC_BROKER_CONFIG",
            5 => "DEFAULT_CONFIG",
            6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
            7 => "CLIENT_METRICS_CONFIG",
            8 => "GROUP_CONFIG",
            _ => "UNKNOWN",
        }
    }
}

/// DescribeConfigs v1 of one topic: its error and entries.
pub async fn describe_topic_configs(
    conn: &Conn,
    topic: &str,
) -> Result<Result<Vec<ConfigEntry>, (i16, Option<String>)>, ClientError> {
    let mut d = call(conn, key::DESCRIBE_CONFIGS, 64, |e| {
        e.count(1).i8(RESOURCE_TOPIC).string(topic).i32(-1);
        e.bool(false);
    })
    .await?;
    decoded(
        "DescribeConfigs",
        (|| {
            let (err, msg) = one_resource(&mut d, 8)?;
            d.i8()?; // resource type
            d.string()?; // resource name
            let n = d.count(9)?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let name = d.string()?;
                let value = d.nullable_string()?;
                let read_only = d.bool()?;
                let source = d.i8()?;
                let sensitive = d.bool()?;
                for _ in 0..d.count(5)? {
                    d.string()?;
                    d.nullable_string()?;
                    d.i8()?;
                }
                entries.push(ConfigEntry {
                    name,
                    value,
                    read_only,
                    source,
                    sensitive,
                });
            }
            Ok(match failed(err) {
                None => Ok(entries),
                Some(e) => Err((e, msg)),
            })
        })(),
    )
}

/// An IncrementalAlterConfigs operation on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterOp {
    /// Sets the key to the value.
    Set(String, String),
    /// Removes the key (back to its default).
    Delete(String),
}

/// IncrementalAlterConfigs v0 on one topic: its error, if any.
pub async fn alter_topic_configs(
    conn: &Conn,
    topic: &str,
    ops: &[AlterOp],
) -> Result<Option<(i16, Option<String>)>, ClientError> {
    let mut d = call(conn, key::INCREMENTAL_ALTER_CONFIGS, 128, |e| {
        e.count(1).i8(RESOURCE_TOPIC).string(topic).count(ops.len());
        for op in ops {
            match op {
                AlterOp::Set(k, v) => e.string(k).i8(0).nullable_string(Some(v)),
                AlterOp::Delete(k) => e.string(k).i8(1).nullable_string(None),
            };
        }
        e.bool(false);
    })
    .await?;
    decoded(
        "IncrementalAlterConfigs",
        (|| {
            let (err, msg) = one_resource(&mut d, 7)?;
            Ok(failed(err).map(|e| (e, msg)))
        })(),
    )
}

/// The start of a configs answer about the one resource asked for (DescribeConfigs,
/// IncrementalAlterConfigs): throttle, the resource count (entries of at least
/// `min_entry_bytes`), and its error code and message.
fn one_resource(d: &mut Dec, min_entry_bytes: usize) -> Result<(i16, Option<String>), DecodeError> {
    d.i32()?; // throttle
    if d.count(min_entry_bytes)? != 1 {
        return Err(DecodeError(
            "one resource asked, another count answered".into(),
        ));
    }
    let err = d.i16()?;
    Ok((err, d.nullable_string()?))
}

/// ListGroups v2 of one broker: `(group id, protocol type)` of the groups it coordinates.
pub async fn list_groups(conn: &Conn) -> Result<Vec<(String, String)>, ClientError> {
    let mut d = call(conn, key::LIST_GROUPS, 0, |_| {}).await?;
    let (err, groups) = decoded(
        "ListGroups",
        (|| {
            d.i32()?; // throttle
            let err = d.i16()?;
            let n = d.count(4)?;
            let groups = (0..n)
                .map(|_| Ok((d.string()?, d.string()?)))
                .collect::<Result<Vec<_>, DecodeError>>()?;
            Ok((err, groups))
        })(),
    )?;
    match failed(err) {
        None => Ok(groups),
        Some(e) => Err(ClientError::kafka("ListGroups", e, None)),
    }
}

/// A group member from DescribeGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group from DescribeGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub error_code: i16,
    pub group: String,
    /// Empty, PreparingRebalance, CompletingRebalance, Stable, Dead.
    pub state: String,
    pub protocol_type: String,
    /// The chosen assignor, e.g. "range".
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// DescribeGroups v3 of groups coordinated by the broker behind `conn`.
pub async fn describe_groups(
    conn: &Conn,
    groups: &[String],
) -> Result<Vec<GroupDescription>, ClientError> {
    let mut d = call(conn, key::DESCRIBE_GROUPS, 64, |e| {
        e.count(groups.len());
        for g in groups {
            e.string(g);
        }
        e.bool(false);
    })
    .await?;
    decoded(
        "DescribeGroups",
        (|| {
            d.i32()?; // throttle
            let n = d.count(18)?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let error_code = d.i16()?;
                let group = d.string()?;
                let state = d.string()?;
                let protocol_type = d.string()?;
                let protocol = d.string()?;
                let nm = d.count(14)?;
                let mut members = Vec::with_capacity(nm);
                for _ in 0..nm {
                    members.push(MemberDescription {
                        member_id: d.string()?,
                        client_id: d.string()?,
                        client_host: d.string()?,
                        metadata: d.nullable_bytes()?.unwrap_or_default(),
                        assignment: d.nullable_bytes()?.unwrap_or_default(),
                    });
                }
                d.i32()?; // authorized operations
                out.push(GroupDescription {
                    error_code,
                    group,
                    state,
                    protocol_type,
                    protocol,
                    members,
                });
            }
            Ok(out)
        })(),
    )
}

/// DeleteGroups v1: `(group, error code)` of each.
pub async fn delete_groups(
    conn: &Conn,
    groups: &[String],
) -> Result<Vec<(String, i16)>, ClientError> {
    let mut d = call(conn, key::DELETE_GROUPS, 64, |e| {
        e.count(groups.len());
        for g in groups {
            e.string(g);
        }
    })
    .await?;
    decoded(
        "DeleteGroups",
        (|| {
            d.i32()?; // throttle
            let n = d.count(4)?;
            (0..n).map(|_| Ok((d.string()?, d.i16()?))).collect()
        })(),
    )
}

/// A committed offset: `(topic, partition, next offset to read, metadata)`.
pub type Committed = (String, i32, i64, Option<String>);

/// OffsetFetch v5 of every partition `group` has committed, on any topic.
pub async fn offset_fetch_all(conn: &Conn, group: &str) -> Result<Vec<Committed>, ClientError> {
    let mut d = call(conn, super::api::key::OFFSET_FETCH, 64, |e| {
        e.string(group).i32(-1);
    })
    .await?;
    let (rows, err) = decoded(
        "OffsetFetch",
        (|| {
            d.i32()?; // throttle
            let mut rows = Vec::new();
            for _ in 0..d.count(6)? {
                let topic = d.string()?;
                for _ in 0..d.count(20)? {
                    let p = d.i32()?;
                    let off = d.i64()?;
                    d.i32()?; // leader epoch
                    let meta = d.nullable_string()?;
                    let err = d.i16()?;
                    rows.push((topic.clone(), p, off, meta, err));
                }
            }
            Ok((rows, d.i16()?))
        })(),
    )?;
    if let Some(e) = failed(err) {
        return Err(ClientError::kafka("OffsetFetch", e, None));
    }
    let mut out = Vec::with_capacity(rows.len());
    for (t, p, off, meta, err) in rows {
        if let Some(e) = failed(err) {
            return Err(ClientError::kafka("OffsetFetch", e, None));
        }
        if off >= 0 {
            out.push((t, p, off, meta));
        }
    }
    out.sort();
    Ok(out)
}

/// OffsetCommit v7 outside any generation (generation -1, no member), which brokers
/// accept only while the group has no members: `(topic, partition, error code)` of each.
pub async fn offset_commit_free(
    conn: &Conn,
    group: &str,
    offsets: &[(String, i32, i64)],
) -> Result<Vec<(String, i32, i16)>, ClientError> {
    let mut d = call(
        conn,
        super::api::key::OFFSET_COMMIT,
        64 + offsets.len() * 40,
        |e| {
            e.string(group).i32(-1).string("").nullable_string(None);
            let mut topics: Vec<&str> = offsets.iter().map(|(t, _, _)| t.as_str()).collect();
            topics.sort_unstable();
            topics.dedup();
            e.count(topics.len());
            for t in topics {
                let rows: Vec<_> = offsets.iter().filter(|(ot, _, _)| ot == t).collect();
                e.string(t).count(rows.len());
                for (_, p, off) in rows {
                    e.i32(*p).i64(*off).i32(-1).nullable_string(None);
                }
            }
        },
    )
    .await?;
    decoded(
        "OffsetCommit",
        (|| {
            d.i32()?; // throttle
            let mut out = Vec::new();
            for _ in 0..d.count(6)? {
                let topic = d.string()?;
                for _ in 0..d.count(6)? {
                    out.push((topic.clone(), d.i32()?, d.i16()?));
                }
            }
            Ok(out)
        })(),
    )
}

/// One partition of a Produce v7 answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    pub partition: i32,
    pub error_code: i16,
    /// Offset of the first record of the batch.
    pub base_offset: i64,
}

/// Reads a Produce v7 answer (of one topic) partition by partition.
pub fn produce_results(body: Bytes) -> Result<Vec<Produced>, ClientError> {
    let mut d = Dec::new(body);
    decoded(
        "Produce",
        d.per_partition(30, |d| {
            let partition = d.i32()?;
            let error_code = d.i16()?;
            let base_offset = d.i64()?;
            d.skip(16)?; // log append time, log start offset
            Ok(Produced {
                partition,
                error_code,
                base_offset,
            })
        }),
    )
}

/// A consumer protocol assignment (ConsumerProtocolAssignment v0-3): `(topic, partitions)`.
/// Bytes that do not parse give `None`.
pub fn consumer_assignment(bytes: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let mut d = Dec::new(Bytes::copy_from_slice(bytes));
    (|| {
        d.i16()?; // version
        let n = d.count(6)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let topic = d.string()?;
            let np = d.count(4)?;
            let parts = (0..np).map(|_| d.i32()).collect::<Result<Vec<_>, _>>()?;
            out.push((topic, parts));
        }
        Ok::<_, DecodeError>(out)
    })()
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_assignments_are_read_and_bad_ones_refused() {
        let mut b = vec![0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2];
        b.extend_from_slice(&3i32.to_be_bytes());
        b.extend_from_slice(&5i32.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 0]); // user data (ignored)
        assert_eq!(
            consumer_assignment(&b),
            Some(vec![("t".to_string(), vec![3, 5])])
        );
        assert_eq!(consumer_assignment(&[]), Some(vec![]));
        assert_eq!(consumer_assignment(&b[..10]), None);
        assert_eq!(consumer_assignment(&[0, 0, 0x7f, 0, 0, 0]), None);
    }

    #[test]
    fn every_version_is_classic() {
        // The codec speaks only non-flexible encodings: each version must be below the
        // first flexible version of its API (from Kafka's message schemas).
        let first_flexible = |k: i16| match k {
            3 => 9,
            8 => 8,
            9 => 6,
            0 => 9,
            19 => 5,
            15 => 5,
            16 => 3,
            20 => 4,
            32 => 4,
            37 => 2,
            42 => 2,
            44 => 1,
            _ => unreachable!("every key is listed"),
        };
        for (k, v) in VERSIONS {
            assert!(v < first_flexible(k), "api {k} v{v}");
        }
    }
}
