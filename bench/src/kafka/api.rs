//! The requests the bench client makes, each at one classic-encoding version that Kafka
//! 3.x/4.x, Redpanda and corelog all serve. Field lists follow Kafka's message schemas
//! (clients/src/main/resources/common/message/*.json) at the version named.

use bytes::{Bytes, BytesMut};

use super::codec::{Dec, DecodeError, Enc};
use super::conn::Conn;
use super::ClientError;

/// API keys used.
pub mod key {
    pub const PRODUCE: i16 = 0;
    pub const FETCH: i16 = 1;
    pub const LIST_OFFSETS: i16 = 2;
    pub const METADATA: i16 = 3;
    pub const OFFSET_COMMIT: i16 = 8;
    pub const OFFSET_FETCH: i16 = 9;
    pub const FIND_COORDINATOR: i16 = 10;
    pub const JOIN_GROUP: i16 = 11;
    pub const HEARTBEAT: i16 = 12;
    pub const LEAVE_GROUP: i16 = 13;
    pub const SYNC_GROUP: i16 = 14;
    pub const API_VERSIONS: i16 = 18;
    pub const CREATE_TOPICS: i16 = 19;
}

/// `(api key, version)` of every request the client sends.
pub const USED: [(i16, i16); 13] = [
    (key::PRODUCE, 7),
    (key::FETCH, 11),
    (key::LIST_OFFSETS, 5),
    (key::METADATA, 8),
    (key::OFFSET_COMMIT, 7),
    (key::OFFSET_FETCH, 5),
    (key::FIND_COORDINATOR, 2),
    (key::JOIN_GROUP, 5),
    (key::HEARTBEAT, 3),
    (key::LEAVE_GROUP, 3),
    (key::SYNC_GROUP, 3),
    (key::API_VERSIONS, 0),
    (key::CREATE_TOPICS, 4),
];

fn version(api: i16) -> i16 {
    USED.iter().find(|(k, _)| *k == api).expect("listed").1
}

/// Kafka error codes the client acts on.
pub mod code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
}

async fn call(
    conn: &Conn,
    api: i16,
    cap: usize,
    body: impl FnOnce(&mut Enc),
) -> Result<Dec, ClientError> {
    call_at(conn, api, version(api), cap, body).await
}

/// Sends one request of `api` at `version` (its body written by `body`) and waits for the
/// answer's body.
pub(super) async fn call_at(
    conn: &Conn,
    api: i16,
    version: i16,
    cap: usize,
    body: impl FnOnce(&mut Enc),
) -> Result<Dec, ClientError> {
    let (mut e, c) = conn.request(api, version, cap);
    body(&mut e);
    Ok(Dec::new(conn.call(e.finish(), c).await?))
}

pub(super) fn decoded<T>(api: &str, r: Result<T, DecodeError>) -> Result<T, ClientError> {
    r.map_err(|e| ClientError::new(format!("{api}: {e}")))
}

/// ApiVersions v0: the version range the broker serves for each API key.
pub async fn api_versions(conn: &Conn) -> Result<Vec<(i16, i16, i16)>, ClientError> {
    let mut d = call(conn, key::API_VERSIONS, 0, |_| {}).await?;
    decoded(
        "ApiVersions",
        (|| {
            let err = d.i16()?;
            if err != code::NONE {
                return Err(DecodeError(format!("error code {err}")));
            }
            let n = d.count(6)?;
            (0..n).map(|_| Ok((d.i16()?, d.i16()?, d.i16()?))).collect()
        })(),
    )
}

/// A broker from Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// A topic from Metadata: its error code and the leader of each partition.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub error_code: i16,
    pub name: String,
    /// (partition, error code, leader node id).
    pub partitions: Vec<(i32, i16, i32)>,
}

/// Metadata v8 for `topics`: the brokers, and each topic's error and partition leaders
/// (the admin module's fuller answer, narrowed to what the load generator uses).
pub async fn metadata(
    conn: &Conn,
    topics: &[&str],
) -> Result<(Vec<BrokerInfo>, Vec<TopicInfo>), ClientError> {
    let names: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    let meta = super::admin::metadata(conn, Some(&names)).await?;
    let brokers = meta
        .brokers
        .into_iter()
        .map(|(node_id, host, port)| BrokerInfo {
            node_id,
            host,
            port,
        })
        .collect();
    let topics = meta
        .topics
        .into_iter()
        .map(|t| TopicInfo {
            error_code: t.error_code,
            name: t.name,
            partitions: t
                .partitions
                .into_iter()
                .map(|p| (p.partition, p.error_code, p.leader))
                .collect(),
        })
        .collect();
    Ok((brokers, topics))
}

/// CreateTopics v4 for one topic; TOPIC_ALREADY_EXISTS counts as success (`false`).
pub async fn create_topic(
    conn: &Conn,
    topic: &str,
    partitions: i32,
    configs: &[(String, String)],
) -> Result<bool, ClientError> {
    let mut d = call(conn, key::CREATE_TOPICS, 128, |e| {
        e.count(1).string(topic).i32(partitions).i16(1).count(0);
        e.count(configs.len());
        for (k, v) in configs {
            e.string(k).nullable_string(Some(v));
        }
        e.i32(30_000).bool(false);
    })
    .await?;
    let (err, msg) = decoded(
        "CreateTopics",
        (|| {
            d.i32()?;
            if d.count(8)? != 1 {
                return Err(DecodeError(
                    "one topic asked, another count answered".into(),
                ));
            }
            d.string()?;
            Ok((d.i16()?, d.nullable_string()?))
        })(),
    )?;
    match err {
        code::NONE => Ok(true),
        code::TOPIC_ALREADY_EXISTS => Ok(false),
        e => Err(ClientError::kafka("CreateTopics", e, msg)),
    }
}

/// ListOffsets v5: the offset for `timestamp` (-1 latest, -2 earliest) of each partition.
pub async fn list_offsets(
    conn: &Conn,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<Vec<(i32, i64)>, ClientError> {
    let mut d = call(conn, key::LIST_OFFSETS, 64 + partitions.len() * 16, |e| {
        e.i32(-1)
            .i8(0)
            .count(1)
            .string(topic)
            .count(partitions.len());
        for p in partitions {
            e.i32(*p).i32(-1).i64(timestamp);
        }
    })
    .await?;
    let rows = decoded(
        "ListOffsets",
        d.i32().and_then(|_throttle| {
            d.per_partition(26, |d| {
                let (p, err) = (d.i32()?, d.i16()?);
                d.i64()?; // timestamp
                let off = d.i64()?;
                d.i32()?; // leader epoch
                Ok((p, err, off))
            })
        }),
    )?;
    rows.into_iter()
        .map(|(p, err, off)| match err {
            code::NONE => Ok((p, off)),
            e => Err(ClientError::kafka("ListOffsets", e, None)),
        })
        .collect()
}

/// Starts a Produce v7 request for one topic with `partitions` partitions; the caller
/// adds `partition_index i32 | records bytes` for each and finishes the frame.
pub fn produce_request(
    conn: &Conn,
    topic: &str,
    acks: i16,
    partitions: usize,
    capacity: usize,
) -> (Enc, i32) {
    let (mut e, c) = conn.request(
        key::PRODUCE,
        version(key::PRODUCE),
        capacity + topic.len() + 32,
    );
    e.nullable_string(None).i16(acks).i32(30_000);
    e.count(1).string(topic).count(partitions);
    (e, c)
}

/// Reads a Produce v7 response: the first error code that is not NONE, if any.
pub fn produce_response(body: Bytes) -> Result<Option<i16>, ClientError> {
    let mut d = Dec::new(body);
    let codes = decoded(
        "Produce",
        d.per_partition(30, |d| {
            d.i32()?;
            let err = d.i16()?;
            d.skip(24)?; // base offset, log append time, log start offset
            Ok(err)
        }),
    )?;
    Ok(first_error(&codes))
}

/// The first error code that is not NONE.
fn first_error(codes: &[i16]) -> Option<i16> {
    codes.iter().copied().find(|c| *c != code::NONE)
}

/// One partition of a Fetch response.
#[derive(Debug)]
pub struct FetchedPartition {
    pub partition: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    /// The record batches as stored (the last one may be cut short).
    pub records: Bytes,
}

/// Encodes a Fetch v11 request for one topic: `(partition, offset)` pairs.
pub fn fetch_request(
    conn: &Conn,
    topic: &str,
    positions: &[(i32, i64)],
    max_wait_ms: i32,
    partition_max_bytes: i32,
    max_bytes: i32,
) -> (BytesMut, i32) {
    let (mut e, c) = conn.request(key::FETCH, version(key::FETCH), 64 + positions.len() * 28);
    e.i32(-1)
        .i32(max_wait_ms)
        .i32(1)
        .i32(max_bytes)
        .i8(0)
        .i32(0)
        .i32(-1);
    e.count(1).string(topic).count(positions.len());
    for (p, off) in positions {
        e.i32(*p).i32(-1).i64(*off).i64(-1).i32(partition_max_bytes);
    }
    e.count(0).string("");
    (e.finish(), c)
}

/// Reads a Fetch v11 response.
pub fn fetch_response(body: Bytes) -> Result<Vec<FetchedPartition>, ClientError> {
    let mut d = Dec::new(body);
    let (err, parts) = decoded(
        "Fetch",
        (|| {
            d.i32()?; // throttle
            let err = d.i16()?;
            d.i32()?; // session id
            let out = d.per_partition(42, |d| {
                let partition = d.i32()?;
                let error_code = d.i16()?;
                let high_watermark = d.i64()?;
                d.i64()?; // last stable offset
                d.i64()?; // log start offset
                let aborted = d.count(16)?;
                d.skip(aborted * 16)?;
                d.i32()?; // preferred read replica
                let records = d.nullable_bytes()?.unwrap_or_default();
                Ok(FetchedPartition {
                    partition,
                    error_code,
                    high_watermark,
                    records,
                })
            })?;
            Ok((err, out))
        })(),
    )?;
    if err != code::NONE {
        return Err(ClientError::kafka("Fetch", err, None));
    }
    Ok(parts)
}

/// FindCoordinator v2 for a group: the coordinator's address.
pub async fn find_coordinator(
    conn: &Conn,
    group: &str,
) -> Result<Result<String, i16>, ClientError> {
    let mut d = call(conn, key::FIND_COORDINATOR, 32, |e| {
        e.string(group).i8(0);
    })
    .await?;
    decoded(
        "FindCoordinator",
        (|| {
            d.i32()?;
            let err = d.i16()?;
            d.nullable_string()?;
            d.i32()?;
            let host = d.string()?;
            let port = d.i32()?;
            Ok(if err == code::NONE {
                Ok(format!("{host}:{port}"))
            } else {
                Err(err)
            })
        })(),
    )
}

/// A JoinGroup v5 answer.
#[derive(Debug)]
pub struct Joined {
    pub error_code: i16,
    pub generation: i32,
    pub leader: String,
    pub member_id: String,
    /// (member id, subscription metadata); filled for the leader only.
    pub members: Vec<(String, Bytes)>,
}

/// JoinGroup v5 with the "consumer" protocol type and one "range" protocol.
pub async fn join_group(
    conn: &Conn,
    group: &str,
    member_id: &str,
    session_timeout_ms: i32,
    subscription: &[u8],
) -> Result<Joined, ClientError> {
    let mut d = call(conn, key::JOIN_GROUP, 128 + subscription.len(), |e| {
        e.string(group)
            .i32(session_timeout_ms)
            .i32(session_timeout_ms);
        e.string(member_id).nullable_string(None).string("consumer");
        e.count(1).string("range").bytes(Some(subscription));
    })
    .await?;
    decoded(
        "JoinGroup",
        (|| {
            d.i32()?;
            let error_code = d.i16()?;
            let generation = d.i32()?;
            d.string()?; // protocol name
            let leader = d.string()?;
            let member_id = d.string()?;
            let n = d.count(8)?;
            let mut members = Vec::with_capacity(n);
            for _ in 0..n {
                let id = d.string()?;
                d.nullable_string()?;
                members.push((id, d.nullable_bytes()?.unwrap_or_default()));
            }
            Ok(Joined {
                error_code,
                generation,
                leader,
                member_id,
                members,
            })
        })(),
    )
}

/// SyncGroup v3: the leader passes every member's assignment; everyone gets their own.
pub async fn sync_group(
    conn: &Conn,
    group: &str,
    generation: i32,
    member_id: &str,
    assignments: &[(String, Vec<u8>)],
) -> Result<(i16, Bytes), ClientError> {
    let mut d = call(conn, key::SYNC_GROUP, 128, |e| {
        e.string(group)
            .i32(generation)
            .string(member_id)
            .nullable_string(None);
        e.count(assignments.len());
        for (m, a) in assignments {
            e.string(m).bytes(Some(a));
        }
    })
    .await?;
    decoded(
        "SyncGroup",
        (|| {
            d.i32()?;
            Ok((d.i16()?, d.nullable_bytes()?.unwrap_or_default()))
        })(),
    )
}

/// Heartbeat v3: the error code.
pub async fn heartbeat(
    conn: &Conn,
    group: &str,
    generation: i32,
    member_id: &str,
) -> Result<i16, ClientError> {
    let mut d = call(conn, key::HEARTBEAT, 64, |e| {
        e.string(group)
            .i32(generation)
            .string(member_id)
            .nullable_string(None);
    })
    .await?;
    decoded(
        "Heartbeat",
        (|| {
            d.i32()?;
            d.i16()
        })(),
    )
}

/// LeaveGroup v3 for one member.
pub async fn leave_group(conn: &Conn, group: &str, member_id: &str) -> Result<(), ClientError> {
    call(conn, key::LEAVE_GROUP, 64, |e| {
        e.string(group)
            .count(1)
            .string(member_id)
            .nullable_string(None);
    })
    .await
    .map(|_| ())
}

/// OffsetCommit v7 of `(partition, next offset)` pairs: the first error code, if any.
pub async fn offset_commit(
    conn: &Conn,
    group: &str,
    generation: i32,
    member_id: &str,
    topic: &str,
    offsets: &[(i32, i64)],
) -> Result<Option<i16>, ClientError> {
    let mut d = call(conn, key::OFFSET_COMMIT, 64 + offsets.len() * 20, |e| {
        e.string(group)
            .i32(generation)
            .string(member_id)
            .nullable_string(None);
        e.count(1).string(topic).count(offsets.len());
        for (p, off) in offsets {
            e.i32(*p).i64(*off).i32(-1).nullable_string(None);
        }
    })
    .await?;
    let codes = decoded(
        "OffsetCommit",
        d.i32().and_then(|_throttle| {
            d.per_partition(6, |d| {
                d.i32()?;
                d.i16()
            })
        }),
    )?;
    Ok(first_error(&codes))
}

/// OffsetFetch v5: the committed offset of each partition (-1 when none).
pub async fn offset_fetch(
    conn: &Conn,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, i64)>, ClientError> {
    let mut d = call(conn, key::OFFSET_FETCH, 64 + partitions.len() * 4, |e| {
        e.string(group)
            .count(1)
            .string(topic)
            .count(partitions.len());
        for p in partitions {
            e.i32(*p);
        }
    })
    .await?;
    let (rows, err) = decoded(
        "OffsetFetch",
        (|| {
            d.i32()?; // throttle
            let out = d.per_partition(20, |d| {
                let p = d.i32()?;
                let off = d.i64()?;
                d.i32()?; // leader epoch
                d.nullable_string()?; // metadata
                Ok((p, off, d.i16()?))
            })?;
            Ok((out, d.i16()?))
        })(),
    )?;
    if err != code::NONE {
        return Err(ClientError::kafka("OffsetFetch", err, None));
    }
    rows.into_iter()
        .map(|(p, off, err)| match err {
            code::NONE => Ok((p, off)),
            e => Err(ClientError::kafka("OffsetFetch", e, None)),
        })
        .collect()
}
