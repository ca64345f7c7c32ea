//! A shard: one pinned core's share of the broker. It owns the partitions that
//! [`partition_owner`] gives it, a replica of the topic catalog, its tail cache and its
//! router end; shard 0 also runs the controller (catalog changes, producer ids).
//!
//! Everything here is `!Send` and lives on its core. Requests from connections call
//! [`Shard::call`], which executes locally or routes to the owning shard.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corelog_engine::TailCache;
use glommio::TaskQueueHandle;

use super::budget::Budget;
use super::catalog::{partition_dir, Catalog};
use super::controller::Controller;
use super::ownership::{partition_owner, CONTROLLER_SHARD};
use super::partition::Partition;
use super::per_ip::ConnectionsPerIp;
use super::router::{
    first_of, join_all, OffsetLookup, Op, ReadItem, ReadResult, Reply, Router, TopicPartition,
};
use super::topic_config::TopicConfig;
use crate::config::BrokerConfig;
use crate::group::coordinator::Coordinator;
use crate::metrics::{PartitionSnapshot, Registry, ShardSnapshot, PUBLISH_INTERVAL};
use crate::protocol::{ErrorCode, KafkaError};

/// Most partitions one fetch reads at once on a shard (see `Shard::read_all`): enough
/// to keep a fetch of 25 cold partitions in flight, few enough that first batches larger
/// than their limits cannot pile up.
pub const WAVE_PARTITIONS_MAX: usize = 32;

/// One shard.
#[derive(Debug)]
pub struct Shard {
    /// This shard's index.
    pub id: usize,
    /// Number of shards.
    pub shards: usize,
    /// Broker settings.
    pub config: Arc<BrokerConfig>,
    catalog: RefCell<Rc<Catalog>>,
    partitions: RefCell<HashMap<TopicPartition, Rc<Partition>>>,
    cache: Rc<RefCell<TailCache>>,
    /// The cross-core router.
    pub router: Router,
    controller: Option<Controller>,
    background: TaskQueueHandle,
    stop: Arc<AtomicBool>,
    /// The group coordinator for the groups this shard owns.
    pub groups: Rc<Coordinator>,
    /// Client connections this shard serves.
    pub connections: std::cell::Cell<usize>,
    /// Connections per client IP, shared by all shards.
    pub per_ip: Arc<ConnectionsPerIp>,
    /// Bytes of requests this shard's connections hold (`shard_request_bytes_in_flight_max`).
    pub request_budget: Rc<Budget>,
    /// Bytes of answers this shard holds while they are written
    /// (`shard_response_bytes_in_flight_max`).
    pub response_budget: Rc<Budget>,
}

/// One shard's share of a request: the items' positions in the request, and the items.
pub type ShardPart<I> = (Vec<usize>, Vec<(TopicPartition, I)>);

/// Boxed future, for fan-out.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

impl Shard {
    /// A shard with no partitions open yet; [`Shard::apply_catalog`] opens them.
    pub fn new(
        id: usize,
        config: Arc<BrokerConfig>,
        catalog: Catalog,
        router: Router,
        background: TaskQueueHandle,
        stop: Arc<AtomicBool>,
        per_ip: Arc<ConnectionsPerIp>,
    ) -> Shard {
        let controller = (id == CONTROLLER_SHARD).then(|| Controller::new(catalog));
        let cache_bytes = config.tail_cache_bytes;
        let group_config = config.groups.clone();
        Shard {
            id,
            shards: config.shards(),
            catalog: RefCell::new(Rc::new(Catalog::default())),
            partitions: RefCell::new(HashMap::new()),
            cache: Rc::new(RefCell::new(TailCache::new(cache_bytes))),
            router,
            controller,
            background,
            stop,
            groups: Rc::new(Coordinator::new(group_config)),
            connections: std::cell::Cell::new(0),
            per_ip,
            request_budget: Budget::new(config.shard_request_bytes_in_flight_max),
            response_budget: Budget::new(config.shard_response_bytes_in_flight_max),
            config,
        }
    }

    /// Opens the offsets partitions this shard owns (start-up).
    pub async fn open_groups(&self) -> Result<(), String> {
        self.groups
            .open(
                &self.config.data_dir,
                self.cache.clone(),
                self.id,
                self.shards,
            )
            .await
    }

    /// Whether the broker is stopping.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The catalog replica.
    pub fn catalog(&self) -> Rc<Catalog> {
        self.catalog.borrow().clone()
    }

    /// The owner of a partition.
    pub fn owner(&self, tp: &TopicPartition) -> usize {
        partition_owner(&tp.topic, tp.partition, self.shards)
    }

    /// A partition this shard owns, or why not.
    pub fn partition(&self, tp: &TopicPartition) -> Result<Rc<Partition>, ErrorCode> {
        if let Some(p) = self.partitions.borrow().get(tp) {
            return Ok(p.clone());
        }
        let known = self
            .catalog()
            .topics
            .get(&tp.topic)
            .is_some_and(|t| tp.partition < t.partitions);
        Err(if known && self.owner(tp) != self.id {
            ErrorCode::NotLeaderOrFollower
        } else {
            ErrorCode::UnknownTopicOrPartition
        })
    }

    /// Executes `op` on shard `to`: directly when it is this shard, else via the mesh.
    pub async fn call(self: &Rc<Self>, to: usize, op: Op) -> Reply {
        if to == self.id {
            self.clone().execute(op).await
        } else {
            self.router.remote(to, op).await
        }
    }

    /// Splits per-partition items by owning shard, runs each shard's part concurrently
    /// with `make_op`, and returns the replies with each shard's item indexes.
    pub async fn fan_out<I>(
        self: &Rc<Self>,
        items: Vec<(TopicPartition, I)>,
        make_op: impl Fn(Vec<(TopicPartition, I)>) -> Op,
    ) -> Vec<(Vec<usize>, Reply)> {
        self.fan_out_parts(self.split_by_owner(items), make_op)
            .await
    }

    /// [`fan_out`](Self::fan_out) of items already split by [`split_by_owner`](Self::split_by_owner).
    pub async fn fan_out_parts<I>(
        self: &Rc<Self>,
        mut parts: BTreeMap<usize, ShardPart<I>>,
        make_op: impl Fn(Vec<(TopicPartition, I)>) -> Op,
    ) -> Vec<(Vec<usize>, Reply)> {
        if parts.len() == 1 {
            // The common case (one shard's partitions) needs no boxed futures to join:
            // perf put those allocations at a tenth of the broker's CPU under
            // one-record produces.
            let (shard, (idx, part)) = parts.pop_first().expect("one part");
            return vec![(idx, self.call(shard, make_op(part)).await)];
        }
        let mut indexes = Vec::with_capacity(parts.len());
        let mut calls: Vec<BoxFuture<'_, Reply>> = Vec::with_capacity(parts.len());
        for (shard, (idx, part)) in parts {
            indexes.push(idx);
            calls.push(Box::pin(self.call(shard, make_op(part))));
        }
        indexes.into_iter().zip(join_all(calls).await).collect()
    }

    /// Per-partition items grouped by owning shard: for each shard, the items'
    /// positions in `items` and the items, in their original order.
    pub fn split_by_owner<I>(
        &self,
        items: Vec<(TopicPartition, I)>,
    ) -> BTreeMap<usize, ShardPart<I>> {
        let mut by_shard: BTreeMap<usize, ShardPart<I>> = BTreeMap::new();
        for (i, (tp, item)) in items.into_iter().enumerate() {
            let e = by_shard.entry(self.owner(&tp)).or_default();
            e.0.push(i);
            e.1.push((tp, item));
        }
        by_shard
    }

    /// Executes an op on this shard.
    pub fn execute(self: Rc<Self>, op: Op) -> BoxFuture<'static, Reply> {
        Box::pin(async move {
            match op {
                Op::Produce {
                    flush_in_background,
                    items,
                } => {
                    // One at a time, in request order: offsets follow the request.
                    let mut out = Vec::with_capacity(items.len());
                    for (tp, batch) in items {
                        out.push(match self.partition(&tp) {
                            Ok(p) => p.produce(batch, flush_in_background).await,
                            Err(e) => Err(KafkaError::from(e)),
                        });
                    }
                    Reply::Produce(out)
                }
                Op::Flush(tps) => {
                    // Flushes of different partitions overlap.
                    let flushes: Vec<BoxFuture<'_, Result<(), KafkaError>>> = tps
                        .iter()
                        .map(|tp| -> BoxFuture<'_, _> {
                            let p = self.partition(tp);
                            Box::pin(async move {
                                p?.log.flush().await?;
                                Ok(())
                            })
                        })
                        .collect();
                    Reply::Flushed(join_all(flushes).await)
                }
                Op::Read { items, budget } => Reply::Read(self.read_all(items, budget).await),
                Op::Wait(items, timeout) => {
                    let parts: Vec<_> = items
                        .iter()
                        .filter_map(|(tp, off)| {
                            Some((self.partition(tp).ok()?, (*off).max(0) as u64))
                        })
                        .collect();
                    let mut waits: Vec<BoxFuture<'_, ()>> = parts
                        .iter()
                        .map(|(p, off)| -> BoxFuture<'_, ()> {
                            Box::pin(p.log.wait_for_data_after(*off))
                        })
                        .collect();
                    waits.push(Box::pin(glommio::timer::sleep(timeout)));
                    first_of(waits).await;
                    Reply::Waited
                }
                Op::ListOffsets(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for (tp, ts) in items {
                        out.push(self.list_offset(&tp, ts).await);
                    }
                    Reply::ListOffsets(out)
                }
                Op::DeleteRecords(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for (tp, offset) in items {
                        out.push(self.delete_records(&tp, offset).await);
                    }
                    Reply::DeleteRecords(out)
                }
                Op::EpochEndOffset(items) => Reply::EpochEndOffset(
                    items
                        .iter()
                        .map(|(tp, epoch)| self.epoch_end_offset(tp, *epoch))
                        .collect(),
                ),
                Op::Control(op) => match &self.controller {
                    Some(c) => c.control(&self, op).await,
                    None => Reply::Unreachable,
                },
                Op::ApplyCatalog(catalog) => Reply::Applied(self.apply_catalog(*catalog).await),
                Op::Group(op) => Reply::Group(self.groups.execute(op).await),
            }
        })
    }

    /// Reads `items` in order until their batches reach `budget` bytes; the partitions
    /// after that get their watermarks only.
    ///
    /// Reads overlap in waves: a wave takes the next partitions whose limits, added up,
    /// fit in what is left of the budget (at least one, at most [`WAVE_PARTITIONS_MAX`]),
    /// and the next wave starts when it has been read, with what the wave actually
    /// returned counted. A fetch of 25 partitions that all miss the tail cache (the first
    /// fetch after a restart) so keeps 25 disk reads in flight instead of one.
    ///
    /// Memory: a partition returns its first batch whole even when the batch is larger
    /// than its limit (KIP-74), so a wave can read more than its limits add up to, by at
    /// most one batch per partition; the batches read stay within the budget plus
    /// `WAVE_PARTITIONS_MAX` batches (one by one, it was the budget plus one batch). The
    /// fetch handler trims the response to its limits either way.
    async fn read_all(
        &self,
        items: Vec<(TopicPartition, ReadItem)>,
        budget: usize,
    ) -> Vec<ReadResult> {
        let mut out = Vec::with_capacity(items.len());
        let mut used = 0usize;
        let mut next = 0;
        while next < items.len() {
            if used >= budget {
                out.extend(items[next..].iter().map(|(tp, _)| self.watermarks_only(tp)));
                break;
            }
            let start = next;
            let mut planned = items[next].1.max_bytes;
            next += 1;
            while next < items.len()
                && next - start < WAVE_PARTITIONS_MAX
                && used + planned + items[next].1.max_bytes <= budget
            {
                planned += items[next].1.max_bytes;
                next += 1;
            }
            let wave = &items[start..next];
            let results = if let [(tp, item)] = wave {
                vec![self.read(tp, *item).await]
            } else {
                join_all(
                    wave.iter()
                        .map(|(tp, item)| -> BoxFuture<'_, ReadResult> {
                            Box::pin(self.read(tp, *item))
                        })
                        .collect(),
                )
                .await
            };
            used += results
                .iter()
                .flat_map(|r| &r.batches)
                .map(|b| b.len())
                .sum::<usize>();
            out.extend(results);
        }
        debug_assert_eq!(out.len(), items.len());
        out
    }

    /// A read result with the partition's watermarks and no data.
    fn watermarks_only(&self, tp: &TopicPartition) -> ReadResult {
        match self.partition(tp) {
            Ok(p) => ReadResult {
                error: ErrorCode::None,
                high_watermark: p.log.high_watermark() as i64,
                log_start_offset: p.log.log_start_offset() as i64,
                batches: Vec::new(),
            },
            Err(e) => ReadResult::error(e),
        }
    }

    async fn read(&self, tp: &TopicPartition, item: ReadItem) -> ReadResult {
        let p = match self.partition(tp) {
            Ok(p) => p,
            Err(e) => return ReadResult::error(e),
        };
        let (start, hw) = (p.log.log_start_offset(), p.log.high_watermark());
        if item.offset < 0 {
            return ReadResult {
                error: ErrorCode::OffsetOutOfRange,
                high_watermark: hw as i64,
                log_start_offset: start as i64,
                batches: Vec::new(),
            };
        }
        match p.log.read(item.offset as u64, item.max_bytes.max(1)).await {
            Ok(d) => ReadResult {
                error: ErrorCode::None,
                high_watermark: d.high_watermark as i64,
                log_start_offset: d.log_start_offset as i64,
                batches: d.batches,
            },
            Err(e) => ReadResult {
                error: ErrorCode::from_engine(&e),
                high_watermark: p.log.high_watermark() as i64,
                log_start_offset: p.log.log_start_offset() as i64,
                batches: Vec::new(),
            },
        }
    }

    async fn list_offset(&self, tp: &TopicPartition, ts: i64) -> OffsetLookup {
        let p = self.partition(tp)?;
        match ts {
            -2 => Ok((p.log.log_start_offset() as i64, -1)),
            -1 => Ok((p.log.high_watermark() as i64, -1)),
            -3 => Ok(match p.log.max_timestamp() {
                Some((offset, ts)) => (offset as i64, ts),
                None => (-1, -1),
            }),
            ts if ts < 0 => Err(ErrorCode::InvalidRequest),
            ts => match p.offset_for_timestamp(ts).await {
                Ok(Some((offset, t))) => Ok((offset as i64, t)),
                Ok(None) => Ok((-1, -1)),
                Err(e) => Err(ErrorCode::from_engine(&e)),
            },
        }
    }

    async fn delete_records(&self, tp: &TopicPartition, offset: i64) -> Result<i64, ErrorCode> {
        let p = self.partition(tp)?;
        let target = if offset == -1 {
            p.log.high_watermark()
        } else if offset < 0 {
            return Err(ErrorCode::OffsetOutOfRange);
        } else {
            offset as u64
        };
        match p.log.delete_records_before(target).await {
            Ok(start) => Ok(start as i64),
            Err(e) => Err(ErrorCode::from_engine(&e)),
        }
    }

    fn epoch_end_offset(&self, tp: &TopicPartition, epoch: i32) -> Result<(i32, i64), ErrorCode> {
        let p = self.partition(tp)?;
        let epochs = p.log.leader_epochs();
        let end = p.log.log_end_offset() as i64;
        // The largest epoch <= the one asked for, and where the next one starts.
        let Some(i) = epochs.iter().rposition(|e| e.epoch <= epoch) else {
            return Ok(match epochs.first() {
                // Older than anything in the log: Kafka answers UNDEFINED.
                Some(_) => (-1, -1),
                // Empty log, only the current epoch exists.
                None => (0, end),
            });
        };
        let end_offset = epochs
            .get(i + 1)
            .map_or(end, |next| next.start_offset as i64);
        Ok((epochs[i].epoch, end_offset))
    }

    /// Adopts a new catalog: opens the partitions this shard owns that are new, closes
    /// and deletes those of deleted topics, applies changed configs.
    pub async fn apply_catalog(&self, catalog: Catalog) -> Result<(), String> {
        let defaults = &self.config.topic_defaults.config;
        // Close and delete partitions whose topic is gone or has a new id.
        let gone: Vec<(TopicPartition, Rc<Partition>)> = self
            .partitions
            .borrow()
            .iter()
            .filter(|(tp, p)| {
                catalog
                    .topics
                    .get(&tp.topic)
                    .is_none_or(|t| t.id != p.topic_id)
            })
            .map(|(tp, p)| (tp.clone(), p.clone()))
            .collect();
        for (tp, p) in gone {
            self.partitions.borrow_mut().remove(&tp);
            if let Err(e) = p.log.close().await {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "close failed");
            }
            let dir = p.log.dir().to_path_buf();
            let removed = glommio::executor()
                .spawn_blocking(move || std::fs::remove_dir_all(&dir))
                .await;
            if let Err(e) = removed {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e,
                    "cannot remove the deleted partition's directory");
            }
        }
        let mut first_error = None;
        for (name, meta) in &catalog.topics {
            let config = match TopicConfig::resolve(defaults, &meta.configs) {
                Ok(c) => c,
                Err(e) => {
                    first_error.get_or_insert(format!("topic {name}: {e}"));
                    continue;
                }
            };
            for partition in 0..meta.partitions {
                let tp = TopicPartition {
                    topic: name.clone(),
                    partition,
                };
                if self.owner(&tp) != self.id {
                    continue;
                }
                if self.stopping() {
                    // Recovery of the rest can wait for the next start.
                    first_error.get_or_insert("stopping: not every partition was opened".into());
                    break;
                }
                let existing = self.partitions.borrow().get(&tp).cloned();
                if let Some(p) = existing {
                    if p.config() != config {
                        if let Err(e) = p.set_config(config.clone()) {
                            first_error.get_or_insert(format!("{name}-{partition}: {e}"));
                        }
                    }
                    continue;
                }
                let dir = partition_dir(&self.config.data_dir, name, partition);
                match Partition::open(
                    dir,
                    name,
                    partition,
                    meta.id,
                    config.clone(),
                    self.cache.clone(),
                    self.background,
                    self.config.background_flush,
                    self.config.log_writes,
                )
                .await
                {
                    Ok(p) => {
                        let scan = p.producer_scan();
                        tracing::debug!(topic = %name, partition, log_end = p.log.log_end_offset(),
                            producers_from_snapshot = scan.from_snapshot,
                            producer_batches_scanned = scan.scanned_batches, "partition opened");
                        self.partitions.borrow_mut().insert(tp, Rc::new(p));
                    }
                    Err(e) => {
                        tracing::error!(topic = %name, partition, error = %e, "cannot open partition");
                        first_error.get_or_insert(format!("{name}-{partition}: {e}"));
                    }
                }
            }
        }
        *self.catalog.borrow_mut() = Rc::new(catalog);
        match first_error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Publishes this shard's metrics to `registry` every
    /// [`PUBLISH_INTERVAL`](crate::metrics::PUBLISH_INTERVAL), forever (run it on the
    /// background queue). `queues` are the task queues whose CPU time is reported.
    pub async fn publish_metrics(
        self: Rc<Self>,
        registry: Arc<Registry>,
        queues: Vec<(&'static str, TaskQueueHandle)>,
    ) {
        let started = Instant::now();
        // glommio hands out each queue's runtime since it was last asked.
        let mut runtimes = vec![Duration::ZERO; queues.len()];
        loop {
            for ((_, q), total) in queues.iter().zip(runtimes.iter_mut()) {
                if let Ok(stats) = glommio::executor().task_queue_stats(*q) {
                    *total += stats.runtime();
                }
            }
            let mut snap = ShardSnapshot::default();
            snap.fill_local();
            snap.connections = self.connections.get();
            snap.groups = self.groups.group_count();
            {
                let cache = self.cache.borrow();
                snap.cache_bytes = cache.bytes();
                (snap.cache_hits, snap.cache_misses) = cache.hit_miss();
            }
            snap.request_bytes = self.request_budget.used();
            snap.response_bytes = self.response_budget.used();
            snap.request_bytes_max = self.config.shard_request_bytes_in_flight_max;
            snap.response_bytes_max = self.config.shard_response_bytes_in_flight_max;
            snap.queue_runtime = queues
                .iter()
                .zip(runtimes.iter())
                .map(|((name, _), t)| (*name, *t))
                .collect();
            snap.uptime = started.elapsed();
            snap.partitions = self
                .owned_partitions()
                .iter()
                .map(|p| PartitionSnapshot {
                    topic: p.topic.clone(),
                    partition: p.index,
                    log_start: p.log.log_start_offset(),
                    high_watermark: p.log.high_watermark(),
                    log_end: p.log.log_end_offset(),
                    records_in: p.traffic.records_in.get(),
                    bytes_in: p.traffic.bytes_in.get(),
                    log: p.log.stats(),
                })
                .collect();
            snap.partitions
                .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            snap.offsets_logs = self.groups.log_stats();
            registry.publish(self.id, snap);
            glommio::timer::sleep(PUBLISH_INTERVAL).await;
        }
    }

    /// Every partition this shard owns.
    pub fn owned_partitions(&self) -> Vec<Rc<Partition>> {
        self.partitions.borrow().values().cloned().collect()
    }

    /// Retention, forever: every interval, each owned partition deletes what its
    /// settings expire.
    pub async fn retention_loop(self: Rc<Self>, interval: Duration) {
        loop {
            glommio::timer::sleep(interval).await;
            let now = super::now_ms();
            for p in self.owned_partitions() {
                match p.log.enforce_retention(now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(topic = %p.topic, partition = p.index, segments = n,
                        "retention deleted segments"),
                    Err(e) => tracing::warn!(topic = %p.topic, partition = p.index, error = %e,
                        "retention failed"),
                }
            }
        }
    }

    /// Flushes and closes every owned partition (shutdown).
    pub async fn close_all(&self) {
        let parts: Vec<_> = self.partitions.borrow_mut().drain().collect();
        for (tp, p) in parts {
            if let Err(e) = p.close().await {
                tracing::error!(topic = %tp.topic, partition = tp.partition, error = %e, "close failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::BytesMut;
    use corelog_engine::batch_builder::BatchBuilder;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::broker::router::{ControlOp, NewTopic};

    /// More than `WAVE_PARTITIONS_MAX`, so that waves are cut by the cap too.
    const PARTITIONS: u32 = 40;

    /// What `read_all` did before it read in waves: one partition after another.
    async fn read_in_turn(
        shard: &Shard,
        items: Vec<(TopicPartition, ReadItem)>,
        budget: usize,
    ) -> Vec<ReadResult> {
        let mut out = Vec::new();
        let mut used = 0;
        for (tp, item) in items {
            let res = if used >= budget {
                shard.watermarks_only(&tp)
            } else {
                shard.read(&tp, item).await
            };
            used += res.batches.iter().map(|b| b.len()).sum::<usize>();
            out.push(res);
        }
        out
    }

    fn shape(results: &[ReadResult]) -> Vec<(i64, Vec<usize>)> {
        results
            .iter()
            .map(|r| {
                (
                    r.high_watermark,
                    r.batches.iter().map(|b| b.len()).collect(),
                )
            })
            .collect()
    }

    /// Reads in waves return what reads in turn return when no first batch is larger than
    /// its partition's limit (with one that is, waves may read partitions that reads in
    /// turn leave out; the fetch handler trims the response either way), and never hold
    /// more than the budget plus `WAVE_PARTITIONS_MAX` batches.
    #[test]
    fn reads_in_waves_answer_as_reads_in_turn() {
        let seed = corelog_engine::testing::seed("WAVES_SEED");
        println!("WAVES_SEED={seed}");
        let dir = tempfile::tempdir().unwrap();
        let config = Arc::new(crate::api::testkit::config(dir.path()));
        corelog_engine::testing::run_on_executor(move || async move {
            let shard = crate::api::testkit::shard(config).await;
            let create = Op::Control(ControlOp::CreateTopics(
                vec![NewTopic {
                    name: "w".into(),
                    partitions: PARTITIONS as i32,
                    replication_factor: 1,
                    configs: Default::default(),
                }],
                false,
            ));
            assert!(
                matches!(shard.call(CONTROLLER_SHARD, create).await, Reply::Control(r) if r[0].is_ok())
            );
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let tp = |p: u32| TopicPartition {
                topic: "w".into(),
                partition: p,
            };
            let mut ends = Vec::new();
            let mut largest = 0usize;
            for p in 0..PARTITIONS {
                let batches = rng.gen_range(0..12usize);
                for _ in 0..batches {
                    let mut b = BatchBuilder::new(1_700_000_000_000);
                    for _ in 0..rng.gen_range(1..4) {
                        b.push(None, Some(&vec![7u8; rng.gen_range(1..300)]), &[]);
                    }
                    let built = b.build();
                    largest = largest.max(built.len());
                    let items = vec![(tp(p), BytesMut::from(&built[..]))];
                    let op = Op::Produce {
                        flush_in_background: true,
                        items,
                    };
                    assert!(matches!(shard.call(0, op).await, Reply::Produce(r) if r[0].is_ok()));
                }
            }
            let all = (0..PARTITIONS).map(tp).collect();
            assert!(
                matches!(shard.call(0, Op::Flush(all)).await, Reply::Flushed(r) if r.iter().all(|f| f.is_ok()))
            );
            for p in 0..PARTITIONS {
                ends.push(shard.partition(&tp(p)).unwrap().log.high_watermark() as i64);
            }
            assert!(ends.iter().sum::<i64>() > 0, "seed {seed}: nothing to read");
            for case in 0..200 {
                let n = rng.gen_range(1..=PARTITIONS as usize);
                let mut order: Vec<u32> = (0..PARTITIONS).collect();
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.gen_range(0..=i));
                }
                // Roomy limits: none below the largest batch. Tight ones: first batches
                // often larger than their partition's limit.
                let roomy = rng.gen_bool(0.5);
                let items: Vec<_> = order[..n]
                    .iter()
                    .map(|&p| {
                        let item = ReadItem {
                            offset: rng.gen_range(0..=ends[p as usize]),
                            max_bytes: if roomy {
                                rng.gen_range(largest..4 * largest)
                            } else {
                                rng.gen_range(1..largest)
                            },
                        };
                        (tp(p), item)
                    })
                    .collect();
                let budget = rng.gen_range(1..12_000);
                let waves = shard.read_all(items.clone(), budget).await;
                if roomy {
                    let in_turn = read_in_turn(&shard, items.clone(), budget).await;
                    assert_eq!(shape(&waves), shape(&in_turn), "case {case}, seed {seed}");
                }
                let held: usize = waves.iter().flat_map(|r| &r.batches).map(|b| b.len()).sum();
                let bound = budget + WAVE_PARTITIONS_MAX * largest;
                assert!(
                    held <= bound,
                    "case {case}, seed {seed}: {held} bytes read, more than {bound}"
                );
            }
        });
    }
}
