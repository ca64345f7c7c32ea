//! The cross-core router: requests for partitions (and for the controller) that another
//! shard owns travel to it over a glommio channel mesh, and the replies come back the
//! same way.
//!
//! Every shard has a bounded single-producer single-consumer queue to every other shard
//! ([`MESH_QUEUE_MAX`] messages; a full queue makes the sender wait, which is the
//! back-pressure). A message is an [`Envelope`]: a request with an id and the sender's
//! shard, or a reply carrying the id back. A shard's receive loop never blocks on
//! handling: each request runs as its own task, so two shards sending to each other
//! cannot deadlock. Record bytes travel as `Bytes`/`BytesMut`, never re-encoded.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use glommio::channels::channel_mesh::Senders;
use glommio::channels::local_channel::{self, LocalSender};

use super::catalog::Catalog;
use super::partition::Appended;
use crate::protocol::{ErrorCode, KafkaError};

/// Messages one shard's queue to another holds at most.
pub const MESH_QUEUE_MAX: usize = 1024;

/// A topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
}

/// One partition's part of a fetch (the partition travels beside it).
#[derive(Debug, Clone, Copy)]
pub struct ReadItem {
    /// First offset wanted.
    pub offset: i64,
    /// Byte limit for this partition (the first batch is returned whole regardless).
    pub max_bytes: usize,
}

/// One partition's read result.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Error, or None.
    pub error: ErrorCode,
    /// High watermark (also the last stable offset: there are no transactions).
    pub high_watermark: i64,
    /// Log start offset.
    pub log_start_offset: i64,
    /// Stored batches, byte for byte, in chunks of whole batches (one chunk per disk
    /// read, one batch per chunk from the tail cache).
    pub batches: Vec<Bytes>,
}

impl ReadResult {
    /// A result with only an error.
    pub fn error(error: ErrorCode) -> Self {
        ReadResult {
            error,
            high_watermark: -1,
            log_start_offset: -1,
            batches: Vec::new(),
        }
    }
}

/// One topic of CreateTopics.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partitions, -1 for the broker default.
    pub partitions: i32,
    /// Replication factor, -1 for the default; only 1 is possible on one node.
    pub replication_factor: i16,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
}

/// One config change of IncrementalAlterConfigs.
#[derive(Debug, Clone)]
pub struct ConfigChange {
    /// Kafka key.
    pub key: String,
    /// 0 set, 1 delete (back to default), 2 append, 3 subtract.
    pub op: i8,
    /// Value for set.
    pub value: Option<String>,
}

/// Broker-wide changes, executed by the controller shard one at a time.
#[derive(Debug, Clone)]
pub enum ControlOp {
    /// Create topics (`validate_only` checks without creating).
    CreateTopics(Vec<NewTopic>, bool),
    /// Delete topics by name.
    DeleteTopics(Vec<String>),
    /// Grow topics to a new partition count.
    CreatePartitions(Vec<(String, i32)>, bool),
    /// Change topic configs.
    AlterConfigs(Vec<(String, Vec<ConfigChange>)>, bool),
    /// Hand out a producer id.
    AllocateProducerId,
}

/// A request to a shard.
#[derive(Debug)]
pub enum Op {
    /// Append batches, in order. `flush_in_background` for acks=0/1; acks=all sends
    /// [`Op::Flush`] after the appends returned.
    Produce {
        /// Schedule a background flush after appending.
        flush_in_background: bool,
        /// Batches by partition.
        items: Vec<(TopicPartition, BytesMut)>,
    },
    /// Wait until everything appended to these partitions so far is durable.
    Flush(Vec<TopicPartition>),
    /// Read stored batches, in order, until `budget` bytes were read: the partitions
    /// after that answer with their watermarks and no data (bounds the memory one
    /// fetch pins on a shard; the response-wide limit is applied after gathering).
    Read {
        /// Partitions to read.
        items: Vec<(TopicPartition, ReadItem)>,
        /// Bytes after which no more partitions are read.
        budget: usize,
    },
    /// Resolve when any partition's high watermark passes its offset, or after the
    /// timeout.
    Wait(Vec<(TopicPartition, i64)>, std::time::Duration),
    /// ListOffsets: (partition, timestamp or -1 latest / -2 earliest / -3 max timestamp).
    ListOffsets(Vec<(TopicPartition, i64)>),
    /// DeleteRecords: move the log start offset (-1 = high watermark).
    DeleteRecords(Vec<(TopicPartition, i64)>),
    /// OffsetForLeaderEpoch: (partition, epoch).
    EpochEndOffset(Vec<(TopicPartition, i32)>),
    /// To the controller.
    Control(ControlOp),
    /// From the controller: adopt this catalog (open, close, reconfigure partitions).
    ApplyCatalog(Box<Catalog>),
    /// To a group's coordinator (or, for ListGroups, to every shard).
    Group(crate::group::coordinator::GroupOp),
}

/// Result of a ListOffsets lookup: (offset, timestamp).
pub type OffsetLookup = Result<(i64, i64), ErrorCode>;

/// A shard's answer.
#[derive(Debug)]
pub enum Reply {
    /// Per produced batch.
    Produce(Vec<Result<Appended, KafkaError>>),
    /// Per flushed partition.
    Flushed(Vec<Result<(), KafkaError>>),
    /// Per read item.
    Read(Vec<ReadResult>),
    /// The wait ended.
    Waited,
    /// Per ListOffsets item.
    ListOffsets(Vec<OffsetLookup>),
    /// Per DeleteRecords item: the new low watermark.
    DeleteRecords(Vec<Result<i64, ErrorCode>>),
    /// Per OffsetForLeaderEpoch item: (epoch, end offset).
    EpochEndOffset(Vec<Result<(i32, i64), ErrorCode>>),
    /// Per controller item (topic create/delete/partitions/configs).
    Control(Vec<Result<(), KafkaError>>),
    /// A producer id.
    ProducerId(Result<i64, KafkaError>),
    /// The catalog was applied (or why not).
    Applied(Result<(), String>),
    /// The group coordinator's answer.
    Group(crate::group::coordinator::GroupReply),
    /// The shard could not be reached (shutting down).
    Unreachable,
}

/// A message between shards.
#[derive(Debug)]
pub enum Envelope {
    /// A request; the reply goes to `from` with the same id.
    Request {
        /// Matches the reply.
        id: u64,
        /// Sending shard.
        from: usize,
        /// The request.
        op: Op,
    },
    /// A reply to request `id`.
    Reply {
        /// The request's id.
        id: u64,
        /// The answer.
        reply: Reply,
    },
    /// A client connection for the receiving shard to serve from its next request on
    /// (`broker::affinity`).
    Connection(Handoff),
}

/// A client connection moving between shards: its socket and its per-IP place.
#[derive(Debug)]
pub struct Handoff {
    /// A descriptor of the connected socket.
    pub socket: std::os::fd::OwnedFd,
    /// The connection's place in its IP's count.
    pub slot: super::per_ip::Slot,
}

/// The sending half of a shard's mesh, and the replies it waits for.
#[derive(Debug)]
pub struct Router {
    me: usize,
    senders: Option<Senders<Envelope>>,
    pending: RefCell<HashMap<u64, LocalSender<Reply>>>,
    next_id: Cell<u64>,
}

impl Router {
    /// A router for shard `me`; `senders` is `None` with one shard.
    pub fn new(me: usize, senders: Option<Senders<Envelope>>) -> Self {
        Router {
            me,
            senders,
            pending: RefCell::new(HashMap::new()),
            next_id: Cell::new(1),
        }
    }

    /// Sends `op` to shard `to` and waits for its reply.
    pub async fn remote(&self, to: usize, op: Op) -> Reply {
        debug_assert_ne!(to, self.me, "local ops are executed directly");
        let Some(senders) = &self.senders else {
            return Reply::Unreachable;
        };
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (tx, rx) = local_channel::new_bounded(1);
        self.pending.borrow_mut().insert(id, tx);
        crate::metrics::mesh_sent();
        let sent = senders
            .send_to(
                to,
                Envelope::Request {
                    id,
                    from: self.me,
                    op,
                },
            )
            .await;
        if sent.is_err() {
            self.pending.borrow_mut().remove(&id);
            return Reply::Unreachable;
        }
        let reply = rx.recv().await.unwrap_or(Reply::Unreachable);
        self.pending.borrow_mut().remove(&id);
        reply
    }

    /// Gives a client connection's socket to shard `to`.
    pub async fn hand_over(&self, to: usize, connection: Handoff) -> Result<(), String> {
        let Some(senders) = &self.senders else {
            return Err("there is no other shard".into());
        };
        crate::metrics::mesh_sent();
        senders
            .send_to(to, Envelope::Connection(connection))
            .await
            .map_err(|e| format!("shard {to} does not take it: {e}"))
    }

    /// Sends a reply back to shard `to`.
    pub async fn reply(&self, to: usize, id: u64, reply: Reply) {
        if let Some(senders) = &self.senders {
            crate::metrics::mesh_sent();
            if senders
                .send_to(to, Envelope::Reply { id, reply })
                .await
                .is_err()
            {
                tracing::debug!(to, "reply dropped: peer shard gone");
            }
        }
    }

    /// Hands a reply that arrived to the request waiting for it.
    pub fn deliver(&self, id: u64, reply: Reply) {
        if let Some(tx) = self.pending.borrow_mut().remove(&id) {
            let _ = tx.try_send(reply);
        }
    }

    /// Closes the outgoing queues (at shutdown).
    pub fn close(&self) {
        if let Some(s) = &self.senders {
            s.close();
        }
    }
}

/// Runs futures concurrently and returns their outputs in order.
pub async fn join_all<T>(futures: Vec<Pin<Box<dyn Future<Output = T> + '_>>>) -> Vec<T> {
    let mut futures: Vec<_> = futures.into_iter().map(Some).collect();
    let mut out: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futures.iter_mut().zip(out.iter_mut()) {
            if let Some(fut) = f {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *o = Some(v);
                        *f = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.expect("all ready")).collect()
}

/// Resolves when the first of `futures` does (or never, if there are none).
pub async fn first_of(mut futures: Vec<Pin<Box<dyn Future<Output = ()> + '_>>>) {
    std::future::poll_fn(|cx| {
        for f in futures.iter_mut() {
            if f.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await
}
