//! The classic consumer-group state machine (Kafka's GroupMetadata and the rebalance
//! logic of its GroupCoordinator), pure: no I/O, no clock, no tasks. The coordinator
//! feeds it requests and the time, and delivers what it returns.
//!
//! States: `Empty` (no members) -> `PreparingRebalance` (members (re)join; the join
//! phase ends when every member has rejoined, or at the rebalance deadline, when those
//! that did not are removed) -> `CompletingRebalance` (every member got its JoinGroup
//! answer; the leader computes the assignment and sends it in SyncGroup) -> `Stable`.
//! `Dead` after DeleteGroups. A member whose session times out is removed, which
//! starts a rebalance; so does a join of a new member, a leave, or a change of a
//! member's subscription. Generation ids fence stale members: every completed join
//! phase increments the generation.
//!
//! Invariants (asserted in [`Group::check`], exercised by the randomised test): the
//! leader is a member; in `CompletingRebalance`/`Stable` every member joined the
//! current generation; an assignment is only handed out for the current generation.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::protocol::ErrorCode;

/// Group state, as DescribeGroups and ListGroups name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Members are (re)joining.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Assignment delivered.
    Stable,
    /// Deleted.
    Dead,
}

impl GroupState {
    /// Kafka's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A member of the group.
#[derive(Debug, Clone)]
pub struct Member {
    /// Member id (given by the coordinator).
    pub id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// Client id and host, for DescribeGroups.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i64,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i64,
    /// Supported protocols, in preference order, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// Assignment of the current generation.
    pub assignment: Bytes,
    /// Last time the member was heard from.
    pub last_seen_ms: i64,
    /// Waiting for its JoinGroup answer.
    pub awaiting_join: bool,
    /// Waiting for its SyncGroup answer.
    pub awaiting_sync: bool,
    /// Generation it last joined.
    pub generation: i32,
}

/// A JoinGroup request, decoded.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Member id, empty for a new member.
    pub member_id: String,
    /// Static member id.
    pub instance_id: Option<String>,
    /// Protocol type ("consumer").
    pub protocol_type: String,
    /// Protocols and metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// Session timeout.
    pub session_timeout_ms: i64,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i64,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Whether the client accepts MEMBER_ID_REQUIRED (v4+).
    pub require_known_member_id: bool,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinAnswer {
    /// Error.
    pub error: ErrorCode,
    /// Generation.
    pub generation: i32,
    /// Selected protocol.
    pub protocol: Option<String>,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Leader's member id.
    pub leader: String,
    /// The member's id.
    pub member_id: String,
    /// For the leader: every member with its metadata for the selected protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinAnswer {
    /// An answer that carries only an error (and the member id, if any).
    pub fn error(error: ErrorCode, member_id: &str) -> JoinAnswer {
        JoinAnswer {
            error,
            generation: -1,
            protocol: None,
            protocol_type: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// What a join or sync request led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// Answer now.
    Now(T),
    /// The answer comes when the phase completes (see [`Completions`]), addressed to
    /// this member id.
    Wait(String),
}

/// Answers released by a state change, to deliver to waiting requests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Completions {
    /// JoinGroup answers by member id.
    pub joins: Vec<(String, JoinAnswer)>,
    /// SyncGroup answers by member id: (error, assignment).
    pub syncs: Vec<(String, ErrorCode, Bytes)>,
    /// A join phase ended in a new generation with members: (generation, members,
    /// protocol), for the coordinator's log line.
    pub rebalanced: Option<(i32, usize, Option<String>)>,
}

impl Completions {
    fn extend(&mut self, other: Completions) {
        self.joins.extend(other.joins);
        self.syncs.extend(other.syncs);
        if other.rebalanced.is_some() {
            self.rebalanced = other.rebalanced;
        }
    }
}

/// One group.
#[derive(Debug, Clone)]
pub struct Group {
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not joined yet: (id, expiry).
    pending: BTreeMap<String, i64>,
    static_members: BTreeMap<String, String>,
    rebalance_deadline_ms: i64,
    /// When the group last became empty (for offset expiry).
    pub empty_since_ms: i64,
    next_member: u64,
}

impl Group {
    /// A new, empty group.
    pub fn new(now_ms: i64) -> Group {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            static_members: BTreeMap::new(),
            rebalance_deadline_ms: 0,
            empty_since_ms: now_ms,
            next_member: 0,
        }
    }

    /// Current state.
    pub fn state(&self) -> GroupState {
        self.state
    }
    /// Current generation.
    #[cfg(test)]
    pub fn generation(&self) -> i32 {
        self.generation
    }
    /// Protocol type, if any member joined.
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }
    /// Selected protocol.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
    /// Members.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }
    /// Whether the group has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn new_member_id(&mut self, client_id: &str) -> String {
        self.next_member += 1;
        // Unique within the group's life on this broker; Kafka uses a UUID.
        let salt: u64 = rand::random();
        format!("{client_id}-{:016x}-{}", salt, self.next_member)
    }

    /// Handles JoinGroup.
    pub fn join(&mut self, req: JoinRequest, now_ms: i64) -> (Outcome<JoinAnswer>, Completions) {
        let none = Completions::default();
        if self.state == GroupState::Dead {
            return (
                Outcome::Now(JoinAnswer::error(
                    ErrorCode::CoordinatorNotAvailable,
                    &req.member_id,
                )),
                none,
            );
        }
        if req.protocols.is_empty()
            || self
                .protocol_type
                .as_deref()
                .is_some_and(|t| t != req.protocol_type)
                && !self.members.is_empty()
            || !self.members.is_empty() && self.select_protocol_with(&req.protocols).is_none()
        {
            return (
                Outcome::Now(JoinAnswer::error(
                    ErrorCode::InconsistentGroupProtocol,
                    &req.member_id,
                )),
                none,
            );
        }
        // A static member rejoining: take over its member slot under a new id.
        if let Some(instance) = &req.instance_id {
            if let Some(old_id) = self.static_members.get(instance).cloned() {
                if req.member_id.is_empty() || req.member_id != old_id {
                    return self.replace_static_member(old_id, req, now_ms);
                }
            }
        }
        let mut member_id = req.member_id.clone();
        if member_id.is_empty() {
            member_id = self.new_member_id(&req.client_id);
            if req.require_known_member_id && req.instance_id.is_none() {
                // KIP-394: the client must come back with this id.
                self.pending
                    .insert(member_id.clone(), now_ms + req.session_timeout_ms);
                return (
                    Outcome::Now(JoinAnswer::error(ErrorCode::MemberIdRequired, &member_id)),
                    none,
                );
            }
        } else if !self.members.contains_key(&member_id)
            && self.pending.remove(&member_id).is_none()
        {
            return (
                Outcome::Now(JoinAnswer::error(ErrorCode::UnknownMemberId, &member_id)),
                none,
            );
        }

        let existing = self.members.get(&member_id).cloned();
        match existing {
            Some(m)
                if self.state == GroupState::Stable
                    || self.state == GroupState::CompletingRebalance =>
            {
                let same = m.protocols == req.protocols;
                let is_leader = self.leader.as_deref() == Some(&member_id);
                if same && !is_leader && self.state == GroupState::Stable {
                    // Nothing changed: answer with the current generation.
                    let m = self.members.get_mut(&member_id).expect("exists");
                    m.last_seen_ms = now_ms;
                    return (Outcome::Now(self.join_answer(&member_id)), none);
                }
                self.add_or_update(member_id.clone(), req, now_ms);
                let c = self.prepare_rebalance(now_ms);
                let (o, c2) = self.after_join(&member_id, now_ms);
                (o, merge(c, c2))
            }
            _ => {
                self.add_or_update(member_id.clone(), req, now_ms);
                let c = if self.state != GroupState::PreparingRebalance {
                    self.prepare_rebalance(now_ms)
                } else {
                    Completions::default()
                };
                let (o, c2) = self.after_join(&member_id, now_ms);
                (o, merge(c, c2))
            }
        }
    }

    fn replace_static_member(
        &mut self,
        old_id: String,
        req: JoinRequest,
        now_ms: i64,
    ) -> (Outcome<JoinAnswer>, Completions) {
        let mut m = self
            .members
            .remove(&old_id)
            .expect("static member is a member");
        let new_id = self.new_member_id(&req.client_id);
        let mut c = Completions::default();
        if m.awaiting_join {
            c.joins.push((
                old_id.clone(),
                JoinAnswer::error(ErrorCode::FencedInstanceId, &old_id),
            ));
        }
        if m.awaiting_sync {
            c.syncs
                .push((old_id.clone(), ErrorCode::FencedInstanceId, Bytes::new()));
        }
        let protocols_changed = m.protocols != req.protocols;
        m.id = new_id.clone();
        m.protocols = req.protocols;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.last_seen_ms = now_ms;
        m.awaiting_sync = false;
        m.awaiting_join = false;
        if self.leader.as_deref() == Some(&old_id) {
            self.leader = Some(new_id.clone());
        }
        self.static_members
            .insert(req.instance_id.clone().expect("static"), new_id.clone());
        self.members.insert(new_id.clone(), m);
        if self.state == GroupState::Stable && !protocols_changed {
            // KIP-345: a known static member comes back without a rebalance.
            return (Outcome::Now(self.join_answer(&new_id)), c);
        }
        let m = self.members.get_mut(&new_id).expect("inserted");
        m.awaiting_join = true;
        if self.state != GroupState::PreparingRebalance {
            c.extend(self.prepare_rebalance(now_ms));
        }
        let (o, c2) = self.after_join(&new_id, now_ms);
        (o, merge(c, c2))
    }

    fn add_or_update(&mut self, member_id: String, req: JoinRequest, now_ms: i64) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(i) = &req.instance_id {
            self.static_members.insert(i.clone(), member_id.clone());
        }
        let generation = self.members.get(&member_id).map_or(-1, |m| m.generation);
        self.members.insert(
            member_id.clone(),
            Member {
                id: member_id.clone(),
                instance_id: req.instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                last_seen_ms: now_ms,
                awaiting_join: true,
                awaiting_sync: false,
                generation,
            },
        );
        if self.leader.is_none() {
            self.leader = Some(member_id);
        }
    }

    /// Moves to PreparingRebalance: pending syncs fail with REBALANCE_IN_PROGRESS.
    fn prepare_rebalance(&mut self, now_ms: i64) -> Completions {
        let mut c = Completions::default();
        for m in self.members.values_mut() {
            if m.awaiting_sync {
                m.awaiting_sync = false;
                c.syncs
                    .push((m.id.clone(), ErrorCode::RebalanceInProgress, Bytes::new()));
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        self.rebalance_deadline_ms = now_ms + timeout;
        self.state = GroupState::PreparingRebalance;
        c
    }

    fn after_join(&mut self, member_id: &str, now_ms: i64) -> (Outcome<JoinAnswer>, Completions) {
        let mut c = self.try_complete_join(now_ms, false);
        if let Some(i) = c.joins.iter().position(|(id, _)| id == member_id) {
            let (_, answer) = c.joins.remove(i);
            return (Outcome::Now(answer), c);
        }
        (Outcome::Wait(member_id.to_string()), c)
    }

    /// Ends the join phase if every member has rejoined, or (with `deadline_passed`)
    /// removes those that did not and ends it anyway.
    fn try_complete_join(&mut self, now_ms: i64, deadline_passed: bool) -> Completions {
        let mut c = Completions::default();
        if self.state != GroupState::PreparingRebalance {
            return c;
        }
        let all_joined = self.members.values().all(|m| m.awaiting_join);
        if !all_joined && !deadline_passed {
            return c;
        }
        let laggards: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join)
            .map(|m| m.id.clone())
            .collect();
        for id in laggards {
            self.remove_member(&id);
        }
        if self.members.is_empty() {
            self.become_empty(now_ms);
            return c;
        }
        self.generation += 1;
        crate::metrics::rebalance();
        self.protocol = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        self.rebalance_deadline_ms = now_ms
            + self
                .members
                .values()
                .map(|m| m.session_timeout_ms)
                .max()
                .unwrap_or(0);
        let generation = self.generation;
        c.rebalanced = Some((generation, self.members.len(), self.protocol.clone()));
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let m = self.members.get_mut(&id).expect("listed");
            m.awaiting_join = false;
            m.generation = generation;
            m.assignment = Bytes::new();
            m.last_seen_ms = now_ms;
            c.joins.push((id.clone(), self.join_answer(&id)));
        }
        c
    }

    fn become_empty(&mut self, now_ms: i64) {
        self.state = GroupState::Empty;
        self.generation += 1;
        self.protocol = None;
        self.protocol_type = None;
        self.leader = None;
        self.empty_since_ms = now_ms;
    }

    fn join_answer(&self, member_id: &str) -> JoinAnswer {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol.clone();
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| {
                    let meta = m
                        .protocols
                        .iter()
                        .find(|(n, _)| Some(n) == protocol.as_ref())
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default();
                    (m.id.clone(), m.instance_id.clone(), meta)
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinAnswer {
            error: ErrorCode::None,
            generation: self.generation,
            protocol,
            protocol_type: self.protocol_type.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
        }
    }

    /// The protocol every member supports that gets the most votes (each member votes
    /// for its most preferred supported candidate), as Kafka selects.
    fn select_protocol(&self) -> Option<String> {
        let candidates: BTreeSet<&String> = {
            let mut it = self.members.values();
            let first: BTreeSet<&String> = it.next()?.protocols.iter().map(|(n, _)| n).collect();
            it.fold(first, |acc, m| {
                let mine: BTreeSet<&String> = m.protocols.iter().map(|(n, _)| n).collect();
                acc.intersection(&mine).copied().collect()
            })
        };
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(n).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, v)| *v)
            .map(|(n, _)| n.clone())
    }

    fn select_protocol_with(&self, protocols: &[(String, Bytes)]) -> Option<()> {
        let ok = protocols.iter().any(|(n, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(x, _)| x == n))
        });
        ok.then_some(())
    }

    /// Checks that `member_id` of `generation` may act (heartbeat, sync, commit).
    fn check_member(&self, member_id: &str, generation: i32) -> Result<(), ErrorCode> {
        if self.state == GroupState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        if !self.members.contains_key(member_id) {
            return Err(ErrorCode::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(ErrorCode::IllegalGeneration);
        }
        Ok(())
    }

    /// Handles SyncGroup; `assignments` are the leader's.
    pub fn sync(
        &mut self,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
    ) -> (Outcome<(ErrorCode, Bytes)>, Completions) {
        let none = Completions::default();
        if let Err(e) = self.check_member(member_id, generation) {
            return (Outcome::Now((e, Bytes::new())), none);
        }
        match self.state {
            GroupState::PreparingRebalance => (
                Outcome::Now((ErrorCode::RebalanceInProgress, Bytes::new())),
                none,
            ),
            GroupState::Stable => {
                let m = self.members.get_mut(member_id).expect("checked");
                m.last_seen_ms = now_ms;
                (Outcome::Now((ErrorCode::None, m.assignment.clone())), none)
            }
            GroupState::CompletingRebalance => {
                {
                    let m = self.members.get_mut(member_id).expect("checked");
                    m.awaiting_sync = true;
                    m.last_seen_ms = now_ms;
                }
                if self.leader.as_deref() != Some(member_id) {
                    return (Outcome::Wait(member_id.to_string()), none);
                }
                for (id, a) in assignments {
                    if let Some(m) = self.members.get_mut(&id) {
                        m.assignment = a;
                    }
                }
                self.state = GroupState::Stable;
                let mut c = Completions::default();
                let mut mine = None;
                for m in self.members.values_mut() {
                    if m.awaiting_sync {
                        m.awaiting_sync = false;
                        if m.id == member_id {
                            mine = Some(m.assignment.clone());
                        } else {
                            c.syncs
                                .push((m.id.clone(), ErrorCode::None, m.assignment.clone()));
                        }
                    }
                }
                (Outcome::Now((ErrorCode::None, mine.unwrap_or_default())), c)
            }
            GroupState::Empty | GroupState::Dead => (
                Outcome::Now((ErrorCode::UnknownMemberId, Bytes::new())),
                none,
            ),
        }
    }

    /// Handles Heartbeat.
    pub fn heartbeat(&mut self, member_id: &str, generation: i32, now_ms: i64) -> ErrorCode {
        if self.state == GroupState::PreparingRebalance && self.members.contains_key(member_id) {
            // Members of the old generation learn about the rebalance here.
            self.members
                .get_mut(member_id)
                .expect("checked")
                .last_seen_ms = now_ms;
            return ErrorCode::RebalanceInProgress;
        }
        if let Err(e) = self.check_member(member_id, generation) {
            return e;
        }
        self.members
            .get_mut(member_id)
            .expect("checked")
            .last_seen_ms = now_ms;
        ErrorCode::None
    }

    /// Handles one member of LeaveGroup (by member id, or by instance id for static
    /// members).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> (ErrorCode, Completions) {
        let id = match instance_id {
            Some(i) => match self.static_members.get(i) {
                Some(id) if member_id.is_empty() || member_id == id => id.clone(),
                Some(_) => return (ErrorCode::FencedInstanceId, Completions::default()),
                None => return (ErrorCode::UnknownMemberId, Completions::default()),
            },
            None => member_id.to_string(),
        };
        if !self.members.contains_key(&id) {
            return (ErrorCode::UnknownMemberId, Completions::default());
        }
        (ErrorCode::None, self.remove_and_rebalance(&id, now_ms))
    }

    fn remove_member(&mut self, id: &str) -> Option<Member> {
        let m = self.members.remove(id)?;
        if let Some(i) = &m.instance_id {
            if self.static_members.get(i).map(String::as_str) == Some(id) {
                self.static_members.remove(i);
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.keys().next().cloned();
        }
        Some(m)
    }

    fn remove_and_rebalance(&mut self, id: &str, now_ms: i64) -> Completions {
        let mut c = Completions::default();
        if let Some(m) = self.remove_member(id) {
            if m.awaiting_join {
                c.joins.push((
                    id.to_string(),
                    JoinAnswer::error(ErrorCode::UnknownMemberId, id),
                ));
            }
            if m.awaiting_sync {
                c.syncs
                    .push((id.to_string(), ErrorCode::UnknownMemberId, Bytes::new()));
            }
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.become_empty(now_ms);
                } else {
                    c.extend(self.prepare_rebalance(now_ms));
                }
            }
            GroupState::PreparingRebalance => {
                if self.members.is_empty() {
                    self.become_empty(now_ms);
                } else {
                    c.extend(self.try_complete_join(now_ms, false));
                }
            }
            GroupState::Empty | GroupState::Dead => {}
        }
        c
    }

    /// Advances time: expires sessions and pending member ids, ends a join phase at its
    /// deadline, and removes members that missed the sync.
    pub fn tick(&mut self, now_ms: i64) -> Completions {
        let mut c = Completions::default();
        self.pending.retain(|_, expiry| *expiry > now_ms);
        match self.state {
            GroupState::PreparingRebalance if now_ms >= self.rebalance_deadline_ms => {
                c.extend(self.try_complete_join(now_ms, true));
            }
            GroupState::CompletingRebalance if now_ms >= self.rebalance_deadline_ms => {
                // Members that did not sync in time are removed (Kafka does the same
                // when the leader never sends the assignment).
                let missed: Vec<String> = self
                    .members
                    .values()
                    .filter(|m| !m.awaiting_sync)
                    .map(|m| m.id.clone())
                    .collect();
                let missed = if missed.is_empty() {
                    self.members.keys().cloned().collect()
                } else {
                    missed
                };
                for id in missed {
                    c.extend(self.remove_and_rebalance(&id, now_ms));
                }
            }
            _ => {}
        }
        // Session expiry (members waiting for a join answer are alive by definition).
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                !m.awaiting_join
                    && !m.awaiting_sync
                    && now_ms - m.last_seen_ms > m.session_timeout_ms
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            c.extend(self.remove_and_rebalance(&id, now_ms));
        }
        c
    }

    /// Whether an OffsetCommit from (`member_id`, `generation`) is accepted, in
    /// Kafka's order of checks: a member of the current generation may commit, also
    /// while the group prepares a rebalance (a consumer commits what it consumed before
    /// rejoining), but not while the new generation's assignment is pending; a free
    /// consumer (generation -1, no member id) only while the group has no members.
    pub fn may_commit(
        &mut self,
        member_id: &str,
        generation: i32,
        now_ms: i64,
    ) -> Result<(), ErrorCode> {
        if self.state == GroupState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        if generation < 0 && member_id.is_empty() {
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(ErrorCode::UnknownMemberId)
            };
        }
        self.check_member(member_id, generation)?;
        if self.state == GroupState::CompletingRebalance {
            return Err(ErrorCode::RebalanceInProgress);
        }
        self.members
            .get_mut(member_id)
            .expect("checked")
            .last_seen_ms = now_ms;
        Ok(())
    }

    /// Marks the group deleted (DeleteGroups): only an empty group can be.
    pub fn delete(&mut self) -> Result<(), ErrorCode> {
        if !self.members.is_empty() {
            return Err(ErrorCode::NonEmptyGroup);
        }
        self.state = GroupState::Dead;
        Ok(())
    }

    /// Checks the invariants (tests and debug builds).
    pub fn check(&self) {
        if let Some(l) = &self.leader {
            assert!(self.members.contains_key(l), "leader {l} is not a member");
        }
        if matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) {
            assert!(!self.members.is_empty());
            for m in self.members.values() {
                assert_eq!(
                    m.generation, self.generation,
                    "member {} of an old generation",
                    m.id
                );
            }
        }
        if self.state == GroupState::Empty {
            assert!(self.members.is_empty());
        }
    }
}

fn merge(mut a: Completions, b: Completions) -> Completions {
    a.extend(b);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::collections::HashMap;

    const PARTITIONS: u8 = 6;

    fn join_req(member_id: &str, instance: Option<&str>, session: i64) -> JoinRequest {
        JoinRequest {
            member_id: member_id.to_string(),
            instance_id: instance.map(str::to_string),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            session_timeout_ms: session,
            rebalance_timeout_ms: 2 * session,
            client_id: "c".into(),
            client_host: "h".into(),
            require_known_member_id: true,
        }
    }

    /// The leader's assignment: partitions round-robin over the members.
    fn assign(members: &[(String, Option<String>, Bytes)]) -> Vec<(String, Bytes)> {
        let mut out: Vec<(String, Vec<u8>)> =
            members.iter().map(|m| (m.0.clone(), Vec::new())).collect();
        for p in 0..PARTITIONS {
            let n = out.len();
            out[p as usize % n].1.push(p);
        }
        out.into_iter()
            .map(|(id, v)| (id, Bytes::from(v)))
            .collect()
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Phase {
        Out,
        Joining,
        Syncing(i32),
        Stable(i32),
        Dead,
    }

    #[derive(Debug)]
    struct Client {
        id: String,
        instance: Option<String>,
        phase: Phase,
        session: i64,
    }

    /// Seeded simulation of clients against one group: joins, syncs, heartbeats,
    /// leaves, crashes (silence) and commits, with time advancing. Checks that no
    /// partition is held by two members in one generation and that only current
    /// members of the current generation (or free consumers of an empty group) commit.
    #[test]
    fn random_membership_never_double_assigns_and_fences_stale_commits() {
        let seeds = corelog_engine::testing::seeds("GROUP_SEED", "GROUP_SEEDS", 200);
        let runs = seeds.len();
        println!("GROUP_SEED={} (+{runs} seeds)", seeds[0]);
        let mut generations_checked = 0;
        for seed in seeds {
            generations_checked += simulate(seed);
        }
        println!("{generations_checked} generations checked");
        assert!(
            generations_checked > runs,
            "the simulation made little progress"
        );
    }

    fn simulate(seed: u64) -> usize {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut g = Group::new(0);
        let mut now = 0i64;
        let mut clients: Vec<Client> = Vec::new();
        // generation -> partition -> member
        let mut owners: HashMap<i32, HashMap<u8, String>> = HashMap::new();
        let deliver = |c: &Completions,
                       clients: &mut Vec<Client>,
                       owners: &mut HashMap<i32, HashMap<u8, String>>,
                       g: &Group| {
            for (id, a) in &c.joins {
                if let Some(cl) = clients.iter_mut().find(|cl| &cl.id == id) {
                    cl.phase = if a.error == ErrorCode::None {
                        Phase::Syncing(a.generation)
                    } else {
                        cl.id.clear();
                        Phase::Out
                    };
                }
            }
            for (id, e, a) in &c.syncs {
                if let Some(cl) = clients.iter_mut().find(|cl| &cl.id == id) {
                    if let (ErrorCode::None, Phase::Syncing(gen)) = (e, cl.phase.clone()) {
                        record(owners, gen, id, a, seed);
                        cl.phase = Phase::Stable(gen);
                    } else {
                        cl.phase = Phase::Out;
                    }
                }
            }
            g.check();
        };
        for _ in 0..400 {
            now += rng.gen_range(0..400);
            let c = g.tick(now);
            deliver(&c, &mut clients, &mut owners, &g);
            if clients.len() < 6 && rng.gen_bool(0.1) {
                let instance = rng.gen_bool(0.3).then(|| format!("i{}", clients.len()));
                clients.push(Client {
                    id: String::new(),
                    instance,
                    phase: Phase::Out,
                    session: 3000,
                });
            }
            if clients.is_empty() {
                continue;
            }
            let i = rng.gen_range(0..clients.len());
            let action = rng.gen_range(0..10);
            let cl = &mut clients[i];
            match (&cl.phase, action) {
                (Phase::Dead, _) => {}
                (_, 0) if rng.gen_bool(0.2) => cl.phase = Phase::Dead, // crash: silence
                (Phase::Stable(_) | Phase::Syncing(_), 1) => {
                    let (e, c) = g.leave(&cl.id.clone(), None, now);
                    assert!(matches!(e, ErrorCode::None | ErrorCode::UnknownMemberId));
                    cl.phase = Phase::Out;
                    cl.id.clear();
                    deliver(&c, &mut clients, &mut owners, &g);
                }
                (Phase::Out, _) | (Phase::Joining, _) => {
                    let (o, c) = g.join(
                        join_req(&cl.id.clone(), cl.instance.clone().as_deref(), cl.session),
                        now,
                    );
                    let cl = &mut clients[i];
                    match o {
                        Outcome::Now(a) if a.error == ErrorCode::MemberIdRequired => {
                            cl.id = a.member_id;
                            cl.phase = Phase::Out;
                        }
                        Outcome::Now(a) if a.error == ErrorCode::None => {
                            cl.id = a.member_id.clone();
                            cl.phase = Phase::Syncing(a.generation);
                            if a.leader == a.member_id && !a.members.is_empty() {
                                // Leader with a fresh member list: sync right away.
                                let (so, sc) =
                                    g.sync(&cl.id.clone(), a.generation, assign(&a.members), now);
                                if let Outcome::Now((ErrorCode::None, asg)) = so {
                                    record(&mut owners, a.generation, &cl.id, &asg, seed);
                                    cl.phase = Phase::Stable(a.generation);
                                }
                                deliver(&sc, &mut clients, &mut owners, &g);
                            }
                        }
                        Outcome::Now(_) => {
                            cl.id.clear();
                            cl.phase = Phase::Out;
                        }
                        Outcome::Wait(id) => {
                            clients[i].id = id;
                            clients[i].phase = Phase::Joining;
                        }
                    }
                    deliver(&c, &mut clients, &mut owners, &g);
                }
                (Phase::Syncing(gen), _) => {
                    let gen = *gen;
                    let id = cl.id.clone();
                    let (o, c) = g.sync(&id, gen, Vec::new(), now);
                    match o {
                        Outcome::Now((ErrorCode::None, a)) => {
                            record(&mut owners, gen, &id, &a, seed);
                            clients[i].phase = Phase::Stable(gen);
                        }
                        Outcome::Now(_) => clients[i].phase = Phase::Out,
                        Outcome::Wait(_) => {}
                    }
                    deliver(&c, &mut clients, &mut owners, &g);
                }
                (Phase::Stable(gen), a) => {
                    let (gen, id) = (*gen, cl.id.clone());
                    if a < 5 {
                        let e = g.heartbeat(&id, gen, now);
                        if e != ErrorCode::None {
                            clients[i].phase = Phase::Out;
                            if e != ErrorCode::RebalanceInProgress {
                                clients[i].id.clear();
                            }
                        }
                    } else {
                        // A commit: accepted only for the current generation's members.
                        let current = g.generation();
                        let member = g.members().any(|m| m.id == id);
                        let accepted = g.may_commit(&id, gen, now).is_ok();
                        assert!(
                            !accepted || (gen == current && member),
                            "seed {seed}: stale commit accepted"
                        );
                    }
                }
            }
            g.check();
        }
        owners.len()
    }

    fn record(
        owners: &mut HashMap<i32, HashMap<u8, String>>,
        gen: i32,
        id: &str,
        a: &Bytes,
        seed: u64,
    ) {
        let owners = owners.entry(gen).or_default();
        for p in a.iter() {
            if let Some(prev) = owners.insert(*p, id.to_string()) {
                assert_eq!(
                    prev, id,
                    "seed {seed}: partition {p} held by {prev} and {id} in generation {gen}"
                );
            }
        }
    }

    #[test]
    fn two_members_share_and_a_free_consumer_commits_only_when_empty() {
        let mut g = Group::new(0);
        assert_eq!(g.may_commit("", -1, 0), Ok(()));
        let (o, _) = g.join(join_req("", None, 3000), 0);
        let Outcome::Now(a) = o else { panic!() };
        assert_eq!(a.error, ErrorCode::MemberIdRequired);
        let (o, _) = g.join(join_req(&a.member_id, None, 3000), 0);
        let Outcome::Now(a1) = o else { panic!() };
        assert_eq!(
            (a1.error, a1.generation, a1.members.len()),
            (ErrorCode::None, 1, 1)
        );
        let (o, _) = g.sync(&a1.member_id, 1, assign(&a1.members), 1);
        assert_eq!(
            o,
            Outcome::Now((ErrorCode::None, Bytes::from(vec![0, 1, 2, 3, 4, 5])))
        );
        assert_eq!(g.may_commit("", -1, 1), Err(ErrorCode::UnknownMemberId));
        // A second member: the first learns of the rebalance through its heartbeat.
        let (Outcome::Now(b), _) = g.join(join_req("", None, 3000), 2) else {
            panic!()
        };
        let (o, _) = g.join(join_req(&b.member_id, None, 3000), 2);
        assert!(matches!(o, Outcome::Wait(_)));
        assert_eq!(
            g.heartbeat(&a1.member_id, 1, 3),
            ErrorCode::RebalanceInProgress
        );
        // Committing what was consumed before rejoining is allowed.
        assert_eq!(g.may_commit(&a1.member_id, 1, 3), Ok(()));
        let (o, c) = g.join(join_req(&a1.member_id, None, 3000), 4);
        let Outcome::Now(a2) = o else { panic!() };
        assert_eq!(a2.generation, 2);
        assert_eq!(c.joins.len(), 1);
        assert_eq!(
            g.may_commit(&a1.member_id, 1, 5),
            Err(ErrorCode::IllegalGeneration)
        );
        assert_eq!(
            g.may_commit("nobody", 2, 5),
            Err(ErrorCode::UnknownMemberId)
        );
        // The second member goes silent: removed after its session timeout.
        let leader_members = if a2.members.is_empty() {
            &c.joins[0].1.members
        } else {
            &a2.members
        };
        let leader = if a2.members.is_empty() {
            c.joins[0].0.clone()
        } else {
            a2.member_id.clone()
        };
        g.sync(&leader, 2, assign(leader_members), 5);
        assert_eq!(g.heartbeat(&leader, 2, 3000), ErrorCode::None);
        let _ = g.tick(5 + 3001);
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        g.check();
    }
}
