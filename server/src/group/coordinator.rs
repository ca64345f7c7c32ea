//! The group coordinator of one shard: the groups whose offsets partition this shard
//! owns, their waiting JoinGroup/SyncGroup requests, and their committed offsets.
//!
//! Placement: group `g` is coordinated by the shard that owns partition
//! `fnv1a_32(g) mod OFFSETS_PARTITIONS` of `__consumer_offsets`, i.e.
//! `partition_owner("__consumer_offsets", that partition, shards)`: a pure function
//! of the group id and the shard count ([`coordinator_shard`]).
//!
//! Time: a ticker advances every group's state machine every [`TICK`] (session
//! timeouts, rebalance deadlines) and expires offsets of empty groups every
//! `offsets_retention_check_interval`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use corelog_engine::{AppendOptions, LogConfig, PartitionLog, TailCache};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::sync::Semaphore;

use super::offsets::{
    self, offsets_partition, Committed, OffsetKey, COMPACT_MIN_RECORDS, COMPACT_RATIO,
    OFFSETS_PARTITIONS, OFFSETS_TOPIC,
};
use super::state::{Group, GroupState, JoinAnswer, JoinRequest, Outcome};
use crate::broker::catalog::partition_dir;
use crate::broker::now_ms;
use crate::broker::ownership::partition_owner;
use crate::protocol::ErrorCode;

/// How often group state machines advance.
pub const TICK: Duration = Duration::from_millis(100);
/// Largest commit metadata accepted (Kafka's `offset.metadata.max.bytes`).
pub const METADATA_BYTES_MAX: usize = 4096;

/// The shard coordinating `group`.
pub fn coordinator_shard(group: &str, shards: usize) -> usize {
    partition_owner(OFFSETS_TOPIC, offsets_partition(group), shards)
}

/// Settings of the group coordinator.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Smallest session timeout accepted.
    pub min_session_timeout_ms: i64,
    /// Largest session timeout accepted.
    pub max_session_timeout_ms: i64,
    /// How long offsets of a group without members are kept.
    pub offsets_retention_ms: i64,
    /// How often expired offsets are looked for.
    pub offsets_retention_check_interval: Duration,
    /// Compaction never runs below this many records in an offsets partition.
    pub compact_min_records: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 300_000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_retention_check_interval: Duration::from_secs(600),
            compact_min_records: COMPACT_MIN_RECORDS,
        }
    }
}

/// One offset to commit: (topic, partition, offset, leader epoch, metadata).
pub type OffsetCommitItem = (String, i32, i64, i32, Option<String>);

/// A group request for the coordinating shard.
#[derive(Debug)]
pub enum GroupOp {
    /// JoinGroup.
    Join(String, JoinRequest),
    /// SyncGroup: group, member, generation, the leader's assignments.
    Sync(String, String, i32, Vec<(String, Bytes)>),
    /// Heartbeat: group, member, generation.
    Heartbeat(String, String, i32),
    /// LeaveGroup: group, members (member id, instance id).
    Leave(String, Vec<(String, Option<String>)>),
    /// OffsetCommit: group, member, generation, offsets.
    Commit(String, String, i32, Vec<OffsetCommitItem>),
    /// OffsetFetch: group, partitions (None: all).
    Fetch(String, Option<Vec<(String, i32)>>),
    /// DescribeGroups.
    Describe(String),
    /// ListGroups (every group this shard coordinates).
    List,
    /// DeleteGroups.
    Delete(String),
    /// OffsetDelete: group, partitions.
    DeleteOffsets(String, Vec<(String, i32)>),
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Metadata of the selected protocol.
    pub metadata: Bytes,
    /// Assignment.
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    /// Error (GROUP_ID_NOT_FOUND is not used: an unknown group is "Dead").
    pub error: ErrorCode,
    /// State name.
    pub state: &'static str,
    /// Protocol type.
    pub protocol_type: String,
    /// Selected protocol.
    pub protocol: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// The coordinator's answer.
#[derive(Debug)]
pub enum GroupReply {
    /// JoinGroup.
    Join(JoinAnswer),
    /// SyncGroup: error and assignment.
    Sync(ErrorCode, Bytes),
    /// Heartbeat, DeleteGroups: an error code.
    Code(ErrorCode),
    /// LeaveGroup: group-level error and per-member errors.
    Leave(ErrorCode, Vec<ErrorCode>),
    /// OffsetCommit: one error for every partition.
    Commit(Vec<ErrorCode>),
    /// OffsetFetch: group error, and (topic, partition, committed or None).
    Fetch(ErrorCode, Vec<(String, i32, Option<Committed>)>),
    /// DescribeGroups.
    Describe(GroupDescription),
    /// ListGroups: (group id, protocol type, state).
    List(Vec<(String, String, &'static str)>),
    /// OffsetDelete: group error and per-partition errors.
    DeleteOffsets(ErrorCode, Vec<ErrorCode>),
}

struct OffsetsPart {
    log: Rc<PartitionLog>,
    map: BTreeMap<OffsetKey, Committed>,
    /// Records in the log since its start (for the compaction trigger).
    records: u64,
    /// Orders appends with compaction snapshots.
    order: Rc<Semaphore>,
    /// A compaction is running.
    compacting: bool,
}

/// A request waiting for its group's phase to complete: (group, member).
type Waiter = (String, String);

/// A shard's group coordinator.
pub struct Coordinator {
    config: GroupConfig,
    parts: RefCell<HashMap<u32, OffsetsPart>>,
    groups: RefCell<HashMap<String, Group>>,
    joins: RefCell<HashMap<Waiter, LocalSender<JoinAnswer>>>,
    syncs: RefCell<HashMap<Waiter, LocalSender<(ErrorCode, Bytes)>>>,
}

impl Coordinator {
    /// Groups this coordinator holds (metrics).
    pub fn group_count(&self) -> usize {
        self.groups.borrow().len()
    }

    /// The counters of the offsets logs this shard owns (metrics).
    pub fn log_stats(&self) -> Vec<corelog_engine::LogStats> {
        self.parts
            .borrow()
            .values()
            .map(|p| p.log.stats())
            .collect()
    }
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("groups", &self.groups.borrow().len())
            .finish()
    }
}

/// Settings of an offsets partition log: small segments so that compaction frees
/// space soon; no time or size retention (expiry is per key).
fn offsets_log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4 << 20,
        segment_age: None,
        retention_age: None,
        retention_bytes: None,
        ..LogConfig::default()
    }
}

impl Coordinator {
    /// A coordinator with no offsets partitions open yet.
    pub fn new(config: GroupConfig) -> Coordinator {
        Coordinator {
            config,
            parts: RefCell::new(HashMap::new()),
            groups: RefCell::new(HashMap::new()),
            joins: RefCell::new(HashMap::new()),
            syncs: RefCell::new(HashMap::new()),
        }
    }

    /// Opens the offsets partitions shard `shard` owns and loads their offsets.
    pub async fn open(
        &self,
        data_dir: &std::path::Path,
        cache: Rc<RefCell<TailCache>>,
        shard: usize,
        shards: usize,
    ) -> Result<(), String> {
        for p in 0..OFFSETS_PARTITIONS {
            if partition_owner(OFFSETS_TOPIC, p, shards) != shard {
                continue;
            }
            let dir: PathBuf = partition_dir(data_dir, OFFSETS_TOPIC, p);
            let log = PartitionLog::open(&dir, offsets_log_config(), cache.clone())
                .await
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            let mut map = BTreeMap::new();
            let mut records = 0;
            let mut offset = log.log_start_offset();
            while offset < log.high_watermark() {
                let data = log.read(offset, 1 << 20).await.map_err(|e| e.to_string())?;
                let before = offset;
                for chunk in &data.batches {
                    records += offsets::replay(chunk, &mut map);
                    for (_, b) in corelog_engine::batch::BatchScan::new(chunk, false) {
                        offset = b.last_offset() as u64 + 1;
                    }
                }
                if offset == before {
                    break;
                }
            }
            tracing::info!(
                partition = p,
                offsets = map.len(),
                records,
                "committed offsets loaded"
            );
            self.parts.borrow_mut().insert(
                p,
                OffsetsPart {
                    log: Rc::new(log),
                    map,
                    records,
                    order: Rc::new(Semaphore::new(1)),
                    compacting: false,
                },
            );
        }
        Ok(())
    }

    /// Flushes and closes the offsets logs (shutdown).
    pub async fn close(&self) {
        let parts: Vec<_> = self
            .parts
            .borrow_mut()
            .drain()
            .map(|(_, p)| p.log)
            .collect();
        for log in parts {
            if let Err(e) = log.close().await {
                tracing::error!(error = %e, "closing an offsets partition failed");
            }
        }
    }

    fn deliver(&self, group: &str, c: super::state::Completions) {
        if let Some((generation, members, protocol)) = &c.rebalanced {
            tracing::info!(%group, generation, members, protocol = protocol.as_deref().unwrap_or(""),
                "group rebalanced");
        }
        for (member, answer) in c.joins {
            if let Some(tx) = self.joins.borrow_mut().remove(&(group.to_string(), member)) {
                let _ = tx.try_send(answer);
            }
        }
        for (member, error, assignment) in c.syncs {
            if let Some(tx) = self.syncs.borrow_mut().remove(&(group.to_string(), member)) {
                let _ = tx.try_send((error, assignment));
            }
        }
    }

    /// Runs a group request on this (the coordinating) shard.
    pub async fn execute(&self, op: GroupOp) -> GroupReply {
        let now = now_ms();
        match op {
            GroupOp::Join(group, req) => GroupReply::Join(self.join(group, req, now).await),
            GroupOp::Sync(group, member, generation, assignments) => {
                let (outcome, c) = match self.groups.borrow_mut().get_mut(&group) {
                    Some(g) => g.sync(&member, generation, assignments, now),
                    None => return GroupReply::Sync(ErrorCode::UnknownMemberId, Bytes::new()),
                };
                self.deliver(&group, c);
                match outcome {
                    Outcome::Now((e, a)) => GroupReply::Sync(e, a),
                    Outcome::Wait(id) => {
                        let (tx, rx) = local_channel::new_bounded(1);
                        self.syncs.borrow_mut().insert((group, id), tx);
                        let (e, a) = rx
                            .recv()
                            .await
                            .unwrap_or((ErrorCode::RebalanceInProgress, Bytes::new()));
                        GroupReply::Sync(e, a)
                    }
                }
            }
            GroupOp::Heartbeat(group, member, generation) => {
                GroupReply::Code(match self.groups.borrow_mut().get_mut(&group) {
                    Some(g) => g.heartbeat(&member, generation, now),
                    None => ErrorCode::UnknownMemberId,
                })
            }
            GroupOp::Leave(group, members) => {
                let mut errors = Vec::with_capacity(members.len());
                let mut all = super::state::Completions::default();
                {
                    let mut groups = self.groups.borrow_mut();
                    let Some(g) = groups.get_mut(&group) else {
                        return GroupReply::Leave(
                            ErrorCode::UnknownMemberId,
                            vec![ErrorCode::UnknownMemberId; members.len()],
                        );
                    };
                    for (member, instance) in &members {
                        let (e, c) = g.leave(member, instance.as_deref(), now);
                        errors.push(e);
                        all.joins.extend(c.joins);
                        all.syncs.extend(c.syncs);
                    }
                }
                self.deliver(&group, all);
                GroupReply::Leave(ErrorCode::None, errors)
            }
            GroupOp::Commit(group, member, generation, items) => {
                GroupReply::Commit(self.commit(&group, &member, generation, items, now).await)
            }
            GroupOp::Fetch(group, partitions) => self.fetch(&group, partitions),
            GroupOp::Describe(group) => GroupReply::Describe(self.describe(&group)),
            GroupOp::List => GroupReply::List(self.list()),
            GroupOp::Delete(group) => GroupReply::Code(self.delete_group(&group, now).await),
            GroupOp::DeleteOffsets(group, partitions) => {
                self.delete_offsets(&group, partitions, now).await
            }
        }
    }

    async fn join(&self, group: String, req: JoinRequest, now: i64) -> JoinAnswer {
        let fail = |e: ErrorCode| JoinAnswer::error(e, &req.member_id);
        if group.is_empty() {
            return fail(ErrorCode::InvalidGroupId);
        }
        if !(self.config.min_session_timeout_ms..=self.config.max_session_timeout_ms)
            .contains(&req.session_timeout_ms)
        {
            return fail(ErrorCode::InvalidSessionTimeout);
        }
        let (outcome, c) = {
            let mut groups = self.groups.borrow_mut();
            let g = groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(now));
            if g.state() == GroupState::Dead {
                *g = Group::new(now);
            }
            let out = g.join(req, now);
            g.check();
            out
        };
        self.deliver(&group, c);
        match outcome {
            Outcome::Now(a) => a,
            Outcome::Wait(id) => {
                let (tx, rx) = local_channel::new_bounded(1);
                self.joins.borrow_mut().insert((group, id.clone()), tx);
                rx.recv()
                    .await
                    .unwrap_or_else(|| JoinAnswer::error(ErrorCode::RebalanceInProgress, &id))
            }
        }
    }

    async fn commit(
        &self,
        group: &str,
        member: &str,
        generation: i32,
        items: Vec<OffsetCommitItem>,
        now: i64,
    ) -> Vec<ErrorCode> {
        let n = items.len();
        let allowed = match self.groups.borrow_mut().get_mut(group) {
            Some(g) => g.may_commit(member, generation, now),
            None if generation < 0 && member.is_empty() => Ok(()),
            None if generation < 0 => Err(ErrorCode::UnknownMemberId),
            // As Kafka: a generation for a group that does not exist (any more).
            None => Err(ErrorCode::IllegalGeneration),
        };
        if let Err(e) = allowed {
            return vec![e; n];
        }
        let mut codes = Vec::with_capacity(n);
        let mut records = Vec::with_capacity(n);
        for (topic, partition, offset, epoch, metadata) in items {
            if metadata
                .as_ref()
                .is_some_and(|m| m.len() > METADATA_BYTES_MAX)
            {
                codes.push(ErrorCode::OffsetMetadataTooLarge);
                continue;
            }
            codes.push(ErrorCode::None);
            let value = Committed {
                offset,
                leader_epoch: epoch,
                metadata,
                commit_ms: now,
            };
            records.push(((group.to_string(), topic, partition), Some(value)));
        }
        if let Err(e) = self.persist(group, records, now).await {
            return vec![e; n];
        }
        codes
    }

    /// Appends offset records (tombstones for None) and applies them, then waits for
    /// them to be durable. Append and apply happen under the partition's `order`
    /// permit, so a compaction snapshot never interleaves with them: every record
    /// before a snapshot is in it, every record after it is newer.
    async fn persist(
        &self,
        group: &str,
        records: Vec<(OffsetKey, Option<Committed>)>,
        now: i64,
    ) -> Result<(), ErrorCode> {
        if records.is_empty() {
            return Ok(());
        }
        let p = offsets_partition(group);
        let (log, order) = match self.parts.borrow().get(&p) {
            Some(part) => (part.log.clone(), part.order.clone()),
            None => return Err(ErrorCode::NotCoordinator),
        };
        let batch = offsets::encode_batch(&records, now);
        let compact = {
            let _order = order
                .acquire_permit(1)
                .await
                .map_err(|_| ErrorCode::NotCoordinator)?;
            log.append(batch, AppendOptions::default())
                .await
                .map_err(|e| ErrorCode::from_engine(&e))?;
            let mut parts = self.parts.borrow_mut();
            let part = parts.get_mut(&p).expect("checked above");
            part.records += records.len() as u64;
            for (k, v) in records {
                match v {
                    Some(v) => part.map.insert(k, v),
                    None => part.map.remove(&k),
                };
            }
            let due = !part.compacting
                && part.records >= self.config.compact_min_records
                && part.records > COMPACT_RATIO * part.map.len() as u64;
            part.compacting |= due;
            due
        };
        log.flush().await.map_err(|e| ErrorCode::from_engine(&e))?;
        if compact {
            let result = self.compact(p, now).await;
            if let Some(part) = self.parts.borrow_mut().get_mut(&p) {
                part.compacting = false;
            }
            if let Err(e) = result {
                tracing::warn!(partition = p, error = %e, "offsets compaction failed");
            }
        }
        Ok(())
    }

    /// Rewrites every live offset of partition `p` and moves the log start past the
    /// older records.
    async fn compact(&self, p: u32, now: i64) -> corelog_engine::Result<()> {
        let (log, order) = {
            let parts = self.parts.borrow();
            let part = parts.get(&p).expect("owned");
            (part.log.clone(), part.order.clone())
        };
        let (start, written) = {
            let _order = order
                .acquire_permit(1)
                .await
                .map_err(|_| corelog_engine::Error::Closed)?;
            let batches =
                offsets::snapshot_batches(&self.parts.borrow().get(&p).expect("owned").map, now);
            let start = log.log_end_offset();
            let mut written = 0u64;
            for b in batches {
                let info = log.append(b, AppendOptions::default()).await?;
                written += info.last_offset - info.base_offset + 1;
            }
            if let Some(part) = self.parts.borrow_mut().get_mut(&p) {
                part.records = written;
            }
            (start, written)
        };
        log.flush().await?;
        log.delete_records_before(start).await?;
        tracing::info!(partition = p, live = written, "offsets compacted");
        Ok(())
    }

    fn group_offsets(&self, group: &str) -> Vec<(OffsetKey, Committed)> {
        let parts = self.parts.borrow();
        let Some(part) = parts.get(&offsets_partition(group)) else {
            return Vec::new();
        };
        let from = (group.to_string(), String::new(), i32::MIN);
        part.map
            .range(from..)
            .take_while(|(k, _)| k.0 == group)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn fetch(&self, group: &str, partitions: Option<Vec<(String, i32)>>) -> GroupReply {
        let all = self.group_offsets(group);
        let out = match partitions {
            None => all.into_iter().map(|(k, v)| (k.1, k.2, Some(v))).collect(),
            Some(list) => list
                .into_iter()
                .map(|(t, p)| {
                    let found = all
                        .iter()
                        .find(|(k, _)| k.1 == t && k.2 == p)
                        .map(|(_, v)| v.clone());
                    (t, p, found)
                })
                .collect(),
        };
        GroupReply::Fetch(ErrorCode::None, out)
    }

    fn describe(&self, group: &str) -> GroupDescription {
        let groups = self.groups.borrow();
        let Some(g) = groups.get(group) else {
            let state = if self.group_offsets(group).is_empty() {
                "Dead"
            } else {
                "Empty"
            };
            return GroupDescription {
                error: ErrorCode::None,
                state,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        let protocol = g.protocol().unwrap_or("").to_string();
        GroupDescription {
            error: ErrorCode::None,
            state: g.state().name(),
            protocol_type: g.protocol_type().unwrap_or("").to_string(),
            members: g
                .members()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m
                        .protocols
                        .iter()
                        .find(|(n, _)| *n == protocol)
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
            protocol,
        }
    }

    fn list(&self) -> Vec<(String, String, &'static str)> {
        let mut out: BTreeMap<String, (String, &'static str)> = BTreeMap::new();
        for part in self.parts.borrow().values() {
            for k in part.map.keys() {
                out.entry(k.0.clone())
                    .or_insert_with(|| ("consumer".to_string(), "Empty"));
            }
        }
        for (id, g) in self.groups.borrow().iter() {
            if g.state() != GroupState::Dead {
                out.insert(
                    id.clone(),
                    (
                        g.protocol_type().unwrap_or("consumer").to_string(),
                        g.state().name(),
                    ),
                );
            }
        }
        out.into_iter().map(|(id, (t, s))| (id, t, s)).collect()
    }

    async fn delete_group(&self, group: &str, now: i64) -> ErrorCode {
        let known = self
            .groups
            .borrow()
            .get(group)
            .is_some_and(|g| g.state() != GroupState::Dead);
        let offsets = self.group_offsets(group);
        if !known && offsets.is_empty() {
            return ErrorCode::GroupIdNotFound;
        }
        if let Some(g) = self.groups.borrow_mut().get_mut(group) {
            if let Err(e) = g.delete() {
                return e;
            }
        }
        let tombstones = offsets.into_iter().map(|(k, _)| (k, None)).collect();
        if let Err(e) = self.persist(group, tombstones, now).await {
            return e;
        }
        self.groups.borrow_mut().remove(group);
        ErrorCode::None
    }

    async fn delete_offsets(
        &self,
        group: &str,
        partitions: Vec<(String, i32)>,
        now: i64,
    ) -> GroupReply {
        let subscribed = self.subscribed_topics(group);
        let offsets = self.group_offsets(group);
        if offsets.is_empty() && !self.groups.borrow().contains_key(group) {
            return GroupReply::DeleteOffsets(ErrorCode::GroupIdNotFound, Vec::new());
        }
        let mut codes = Vec::with_capacity(partitions.len());
        let mut tombstones = Vec::new();
        for (t, p) in partitions {
            if subscribed.contains(&t) {
                codes.push(ErrorCode::GroupSubscribedToTopic);
            } else {
                codes.push(ErrorCode::None);
                if offsets.iter().any(|(k, _)| k.1 == t && k.2 == p) {
                    tombstones.push(((group.to_string(), t, p), None));
                }
            }
        }
        if let Err(e) = self.persist(group, tombstones, now).await {
            return GroupReply::DeleteOffsets(e, codes);
        }
        GroupReply::DeleteOffsets(ErrorCode::None, codes)
    }

    /// Topics the group's members subscribe to (from their "consumer" protocol
    /// metadata: version i16, topics ARRAY of STRING, ...).
    fn subscribed_topics(&self, group: &str) -> Vec<String> {
        let groups = self.groups.borrow();
        let Some(g) = groups.get(group) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in g.members() {
            for (_, meta) in &m.protocols {
                let mut r = crate::protocol::wire::Reader::new(meta);
                let parsed = (|| -> crate::protocol::wire::DecodeResult<Vec<String>> {
                    r.i16()?;
                    let n = r.count(false, 2)?;
                    let mut v = Vec::new();
                    for _ in 0..n {
                        v.push(r.string(false)?.to_string());
                    }
                    Ok(v)
                })();
                out.extend(parsed.unwrap_or_default());
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Advances every group's state machine, forever.
    pub async fn tick_loop(self: Rc<Self>) {
        let mut last_expiry = now_ms();
        loop {
            glommio::timer::sleep(TICK).await;
            let now = now_ms();
            let mut released = Vec::new();
            for (id, g) in self.groups.borrow_mut().iter_mut() {
                let c = g.tick(now);
                g.check();
                if !c.joins.is_empty() || !c.syncs.is_empty() {
                    released.push((id.clone(), c));
                }
            }
            for (id, c) in released {
                self.deliver(&id, c);
            }
            if now - last_expiry >= self.config.offsets_retention_check_interval.as_millis() as i64
            {
                last_expiry = now;
                self.expire_offsets(now).await;
            }
        }
    }

    /// Deletes the offsets of groups without members once they are older than the
    /// retention (counted from the later of the commit and the group becoming empty).
    async fn expire_offsets(&self, now: i64) {
        let mut by_group: BTreeMap<String, Vec<(OffsetKey, Option<Committed>)>> = BTreeMap::new();
        {
            let groups = self.groups.borrow();
            for part in self.parts.borrow().values() {
                for (k, v) in &part.map {
                    let empty_since = match groups.get(&k.0) {
                        Some(g) if !g.is_empty() => continue,
                        Some(g) => g.empty_since_ms,
                        None => 0,
                    };
                    if now - v.commit_ms.max(empty_since) > self.config.offsets_retention_ms {
                        by_group
                            .entry(k.0.clone())
                            .or_default()
                            .push((k.clone(), None));
                    }
                }
            }
        }
        for (group, tombstones) in by_group {
            let n = tombstones.len();
            match self.persist(&group, tombstones, now).await {
                Ok(()) => tracing::info!(%group, offsets = n, "expired committed offsets"),
                Err(e) => tracing::warn!(%group, error = ?e, "offset expiry failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn commit(c: &Coordinator, group: &str, offset: i64) -> GroupReply {
        let items = vec![("t".to_string(), 0, offset, -1, Some(format!("m{offset}")))];
        c.execute(GroupOp::Commit(group.to_string(), String::new(), -1, items))
            .await
    }

    /// Many commits of few keys: the log is compacted (its start moves, old segments
    /// go) and a reopened coordinator still reads the newest offset of every key.
    #[test]
    fn offsets_are_compacted_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        corelog_engine::testing::run_on_executor(move || async move {
            let cache = Rc::new(RefCell::new(TailCache::new(1 << 20)));
            let config = GroupConfig {
                compact_min_records: 50,
                ..GroupConfig::default()
            };
            let c = Coordinator::new(config.clone());
            c.open(&data, cache.clone(), 0, 1).await.unwrap();
            let groups = ["a", "b", "c"];
            for i in 0..400 {
                let g = groups[i % 3];
                let reply = commit(&c, g, i as i64).await;
                assert!(matches!(reply, GroupReply::Commit(ref e) if e == &[ErrorCode::None]));
            }
            let starts: Vec<u64> = c
                .parts
                .borrow()
                .values()
                .map(|p| p.log.log_start_offset())
                .collect();
            assert!(
                starts.iter().any(|&s| s > 0),
                "no offsets partition was compacted: {starts:?}"
            );
            let records: u64 = c.parts.borrow().values().map(|p| p.records).sum();
            assert!(records < 400, "records since the snapshots: {records}");
            c.close().await;

            let again = Coordinator::new(config);
            again.open(&data, cache, 0, 1).await.unwrap();
            for (i, g) in groups.iter().enumerate() {
                let newest = 399 - ((399 - i as i64) % 3);
                match again.execute(GroupOp::Fetch(g.to_string(), None)).await {
                    GroupReply::Fetch(ErrorCode::None, found) => {
                        assert_eq!(found.len(), 1);
                        let got = found[0].2.as_ref().unwrap();
                        assert_eq!(
                            (got.offset, got.metadata.clone()),
                            (newest, Some(format!("m{newest}")))
                        );
                    }
                    other => panic!("{other:?}"),
                }
            }
            again.close().await;
        });
    }
}
