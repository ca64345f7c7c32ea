//! One handler per Kafka API. Each module decodes its request (bounded, see
//! `protocol::wire`), does the work through the shard (locally or via the router) and
//! encodes the response for the requested version. The version table is
//! `protocol::APIS`.

mod api_versions;
#[cfg(test)]
mod compat_tests;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod fetch;
mod find_coordinator;
#[cfg(test)]
mod fuzz_tests;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sync_group;
pub(crate) mod testkit;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use crate::broker::affinity::ShardsTouched;
use crate::broker::shard::Shard;
use crate::protocol::wire::{DecodeError, DecodeResult, Reader};
use crate::protocol::{ApiKey, ApiSpec, ErrorCode, RequestHeader, Response};

/// What a handler gets.
#[derive(Debug)]
pub struct Request<'a> {
    /// The shard the connection is on.
    pub shard: &'a Rc<Shard>,
    /// The decoded header.
    pub header: &'a RequestHeader,
    /// Where the request's partitions live, for the connection's affinity.
    pub touched: &'a ShardsTouched,
}

impl Request<'_> {
    /// The request's version.
    pub fn version(&self) -> i16 {
        self.header.api_version
    }
    /// Whether the body uses the flexible encoding.
    pub fn flexible(&self) -> bool {
        self.header.flexible
    }
    /// A response with the header for this request.
    pub fn response(&self) -> Response {
        Response::new(self.header.correlation_id, self.header.flexible)
    }

    /// [`Shard::fan_out`] for a data request (Produce, Fetch): also records the shards
    /// it went to, which may move the connection there (`broker::affinity`).
    pub async fn fan_out_data<I>(
        &self,
        items: Vec<(crate::broker::router::TopicPartition, I)>,
        make_op: impl Fn(Vec<(crate::broker::router::TopicPartition, I)>) -> crate::broker::router::Op,
    ) -> Vec<(Vec<usize>, crate::broker::router::Reply)> {
        let parts = self.shard.split_by_owner(items);
        for &owner in parts.keys() {
            self.touched.note(owner);
        }
        self.shard.fan_out_parts(parts, make_op).await
    }
}

/// What a handler did: answered (`None`: no response, acks=0), or started work whose
/// response comes later, which the connection writes in request order.
pub enum Handled {
    /// The response (or none).
    Now(Option<Response>),
    /// The response, once this resolves.
    Later(Pin<Box<dyn Future<Output = Option<Response>>>>),
}

impl std::fmt::Debug for Handled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Handled::Now(_) => "Handled::Now",
            Handled::Later(_) => "Handled::Later",
        })
    }
}

/// A response's pieces, now or later.
pub enum Answer {
    /// Framed pieces (or nothing to send).
    Now(Option<Vec<Bytes>>),
    /// Framed pieces once this resolves.
    Later(Pin<Box<dyn Future<Output = Option<Vec<Bytes>>>>>),
}

impl Answer {
    /// Waits for the response, whenever it comes.
    pub async fn wait(self) -> Option<Vec<Bytes>> {
        match self {
            Answer::Now(r) => r,
            Answer::Later(f) => f.await,
        }
    }
}

/// Handles one request. `Err`: the request is malformed or of an unsupported version,
/// and the connection is closed.
pub async fn handle(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    body: BytesMut,
    touched: &ShardsTouched,
) -> DecodeResult<Answer> {
    let spec = ApiSpec::find(header.api_key).expect("header decode checked the key");
    let req = Request {
        shard,
        header,
        touched,
    };
    if !spec.supports(header.api_version) {
        if spec.key == ApiKey::ApiVersions {
            return Ok(Answer::Now(Some(api_versions::unsupported(&req).finish())));
        }
        return Err(DecodeError {
            at: 0,
            what: "unsupported API version",
        });
    }
    let response = match spec.key {
        ApiKey::ApiVersions => Some(api_versions::handle(&req)),
        ApiKey::Metadata => Some(metadata::handle(&req, &body).await?),
        ApiKey::Produce => match produce::handle(&req, body).await? {
            Handled::Now(r) => r,
            Handled::Later(f) => {
                return Ok(Answer::Later(Box::pin(async move {
                    f.await.map(Response::finish)
                })))
            }
        },
        ApiKey::Fetch => Some(fetch::handle(&req, &body).await?),
        ApiKey::ListOffsets => Some(list_offsets::handle(&req, &body).await?),
        ApiKey::CreateTopics => Some(create_topics::handle(&req, &body).await?),
        ApiKey::DeleteTopics => Some(delete_topics::handle(&req, &body).await?),
        ApiKey::CreatePartitions => Some(create_partitions::handle(&req, &body).await?),
        ApiKey::DescribeConfigs => Some(describe_configs::handle(&req, &body)?),
        ApiKey::IncrementalAlterConfigs => {
            Some(incremental_alter_configs::handle(&req, &body).await?)
        }
        ApiKey::DeleteRecords => Some(delete_records::handle(&req, &body).await?),
        ApiKey::OffsetForLeaderEpoch => Some(offset_for_leader_epoch::handle(&req, &body).await?),
        ApiKey::DescribeCluster => Some(describe_cluster::handle(&req, &body)?),
        ApiKey::InitProducerId => Some(init_producer_id::handle(&req, &body).await?),
        ApiKey::FindCoordinator => Some(find_coordinator::handle(&req, &body)?),
        ApiKey::JoinGroup => Some(join_group::handle(&req, &body).await?),
        ApiKey::SyncGroup => Some(sync_group::handle(&req, &body).await?),
        ApiKey::Heartbeat => Some(heartbeat::handle(&req, &body).await?),
        ApiKey::LeaveGroup => Some(leave_group::handle(&req, &body).await?),
        ApiKey::OffsetCommit => Some(offset_commit::handle(&req, &body).await?),
        ApiKey::OffsetFetch => Some(offset_fetch::handle(&req, &body).await?),
        ApiKey::DescribeGroups => Some(describe_groups::handle(&req, &body).await?),
        ApiKey::ListGroups => Some(list_groups::handle(&req, &body).await?),
        ApiKey::DeleteGroups => Some(delete_groups::handle(&req, &body).await?),
        ApiKey::OffsetDelete => Some(offset_delete::handle(&req, &body).await?),
    };
    Ok(Answer::Now(response.map(Response::finish)))
}

/// Reads `n` items with `item`, refusing counts the body cannot hold.
pub fn read_array<'a, T>(
    r: &mut Reader<'a>,
    flexible: bool,
    min_item_bytes: usize,
    mut item: impl FnMut(&mut Reader<'a>) -> DecodeResult<T>,
) -> DecodeResult<Vec<T>> {
    let n = r.count(flexible, min_item_bytes)?;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(item(r)?);
    }
    Ok(out)
}

/// The error code and message of a per-item result.
pub fn error_parts<T>(r: &Result<T, crate::protocol::KafkaError>) -> (i16, Option<&str>) {
    match r {
        Ok(_) => (0, None),
        Err(e) => (e.code.code(), e.message.as_deref()),
    }
}

/// Turns a shard reply that is not the expected variant into per-item errors.
pub fn unreachable_items<T>(n: usize, make: impl Fn() -> T) -> Vec<T> {
    (0..n).map(|_| make()).collect()
}

/// A request's `topics[name, partitions[...]]` section.
pub type Topics<P> = Vec<(String, Vec<P>)>;

/// Reads `topics[name, partitions[...]]`, the shape of most per-partition requests;
/// `partition` reads one partition entry (without its tagged fields).
pub fn read_topics<'a, P>(
    rd: &mut Reader<'a>,
    flex: bool,
    min_partition_bytes: usize,
    mut partition: impl FnMut(&mut Reader<'a>) -> DecodeResult<P>,
) -> DecodeResult<Topics<P>> {
    read_array(rd, flex, 2, |rd| {
        let name = rd.string(flex)?.to_string();
        let parts = read_array(rd, flex, min_partition_bytes, |rd| {
            let p = partition(rd)?;
            rd.tagged_fields(flex)?;
            Ok(p)
        })?;
        rd.tagged_fields(flex)?;
        Ok((name, parts))
    })
}

/// Runs one per-partition op for every (partition index, argument) of `topics` on the
/// owning shards. Returns the answers in request order; `unpack` takes a shard's reply
/// apart (`None` when the shard could not answer: its items get NOT_LEADER_OR_FOLLOWER,
/// which makes the client refresh its metadata and retry).
pub async fn per_partition<A: Clone, T>(
    req: &Request<'_>,
    topics: &Topics<(i32, A)>,
    make_op: impl Fn(Vec<(crate::broker::router::TopicPartition, A)>) -> crate::broker::router::Op,
    unpack: impl Fn(crate::broker::router::Reply) -> Option<Vec<Result<T, ErrorCode>>>,
) -> Vec<Result<T, ErrorCode>> {
    let lost = || Err(ErrorCode::NotLeaderOrFollower);
    use crate::broker::router::TopicPartition;
    let items: Vec<(TopicPartition, A)> = topics
        .iter()
        .flat_map(|(name, parts)| {
            parts.iter().map(move |(index, arg)| {
                let tp = TopicPartition {
                    topic: name.clone(),
                    // A negative index names no partition: u32::MAX never exists.
                    partition: u32::try_from(*index).unwrap_or(u32::MAX),
                };
                (tp, arg.clone())
            })
        })
        .collect();
    let mut out: Vec<Option<Result<T, ErrorCode>>> = (0..items.len()).map(|_| None).collect();
    for (indexes, reply) in req.shard.fan_out(items, make_op).await {
        let answers = unpack(reply).unwrap_or_else(|| unreachable_items(indexes.len(), lost));
        for (i, a) in indexes.into_iter().zip(answers) {
            out[i] = Some(a);
        }
    }
    out.into_iter().map(|a| a.unwrap_or_else(&lost)).collect()
}

/// Sends a broker-wide change to the controller shard and returns its per-item results
/// (`n` errors if it could not answer).
pub async fn control(
    req: &Request<'_>,
    op: crate::broker::router::ControlOp,
    n: usize,
) -> Vec<Result<(), crate::protocol::KafkaError>> {
    use crate::broker::router::{Op, Reply};
    use crate::protocol::{ErrorCode, KafkaError};
    let owner = crate::broker::ownership::CONTROLLER_SHARD;
    match req.shard.call(owner, Op::Control(op)).await {
        Reply::Control(r) if r.len() == n => r,
        _ => unreachable_items(n, || {
            Err(KafkaError::new(
                ErrorCode::UnknownServerError,
                "the controller did not answer",
            ))
        }),
    }
}

/// Writes `topics[name, partitions[...]]` of a per-partition response: `part` writes
/// one partition's fields from its answer; names, counts and tagged fields are written
/// here.
pub fn write_topics<P, T>(
    r: &mut Response,
    flex: bool,
    topics: &Topics<(i32, P)>,
    answers: Vec<T>,
    mut part: impl FnMut(&mut Response, i32, T),
) {
    r.array_len(flex, topics.len());
    let mut answers = answers.into_iter();
    for (name, parts) in topics {
        r.string(flex, name);
        r.array_len(flex, parts.len());
        for (index, _) in parts {
            part(r, *index, answers.next().expect("one answer per partition"));
            r.tagged_fields(flex);
        }
        r.tagged_fields(flex);
    }
}

/// Sends a group request to the group's coordinator shard; `None` if it could not
/// answer (the broker is stopping).
pub async fn group_call(
    req: &Request<'_>,
    group: &str,
    op: crate::group::coordinator::GroupOp,
) -> Option<crate::group::coordinator::GroupReply> {
    use crate::broker::router::{Op, Reply};
    let owner = crate::group::coordinator::coordinator_shard(group, req.shard.shards);
    match req.shard.call(owner, Op::Group(op)).await {
        Reply::Group(r) => Some(r),
        _ => None,
    }
}
