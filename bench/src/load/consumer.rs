//! One consumer: its own connection to each partition leader, one fetch outstanding per
//! leader, positions kept in memory and (in a group) committed every second.
//!
//! With `--groups` the consumer is a member of a classic consumer group
//! (`corelog-bench-<run>-<g>`, range assignor) and rejoins whenever a heartbeat says the
//! group is rebalancing; otherwise it takes every partition whose index is congruent to
//! its own number modulo the consumer count. Consumers fetch only once the load starts.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::args::StartAt;
use super::stats::{now_ns, phase, Recorder, Shared};
use super::Plan;
use crate::kafka::api::{self, code};
use crate::kafka::group::Member;
use crate::kafka::records::deliver;
use crate::kafka::{ClientError, Conn};

const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);
const HEARTBEAT_EVERY_IN_SETUP: Duration = Duration::from_millis(100);
const COMMIT_EVERY: Duration = Duration::from_secs(1);
const FETCH_MAX_WAIT_MS: i32 = 500;

struct Consumer {
    id: usize,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    recorder: Rc<RefCell<Recorder>>,
    bootstrap: Conn,
    conns: HashMap<String, Conn>,
    member: Option<Member>,
    /// partition -> next offset to fetch.
    positions: HashMap<i32, i64>,
    caught_up: bool,
}

/// Runs consumer `id` until the run stops.
pub async fn run(
    id: usize,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    recorder: Rc<RefCell<Recorder>>,
) -> Result<(), ClientError> {
    let bootstrap = Conn::connect(&plan.bootstrap).await?;
    let conns = plan.connect_leaders().await?;
    let mut c = Consumer {
        id,
        plan,
        shared,
        recorder,
        bootstrap,
        conns,
        member: None,
        positions: HashMap::new(),
        caught_up: false,
    };
    if c.plan.groups > 0 {
        let group = c.group_name();
        let m = Member::join(&c.bootstrap, &group, &c.plan.topic, &c.plan.partitions).await?;
        c.member = Some(m);
    }
    c.take_assignment().await?;
    c.shared.ready.fetch_add(1, Ordering::AcqRel);
    let result = c.poll_loop().await;
    if let Some(m) = &c.member {
        let _ = c.commit().await;
        let _ = m.leave().await;
    }
    result
}

impl Consumer {
    fn group_name(&self) -> String {
        format!(
            "{}-{}",
            self.plan.group_prefix,
            self.id / self.plan.consumers_per_group
        )
    }

    /// This consumer's generation in its group (-1 without one), for the set-up barrier.
    fn publish_generation(&self) {
        let g = self.member.as_ref().map_or(-1, |m| m.generation() as i64);
        self.plan.generations[self.id].store(g, Ordering::Release);
    }

    async fn take_assignment(&mut self) -> Result<(), ClientError> {
        let mine: Vec<i32> = match &self.member {
            Some(m) => m.partitions().to_vec(),
            None => {
                let n = self.plan.consumers_per_group.max(1);
                self.plan
                    .partitions
                    .iter()
                    .copied()
                    .filter(|p| *p as usize % n == self.id % n)
                    .collect()
            }
        };
        self.positions.clear();
        let committed = match &self.member {
            Some(m) if !mine.is_empty() => m.committed(&mine).await?,
            _ => Vec::new(),
        };
        let mut missing = Vec::new();
        for p in &mine {
            match committed.iter().find(|(q, off)| q == p && *off >= 0) {
                Some((_, off)) => {
                    self.positions.insert(*p, *off);
                }
                None => missing.push(*p),
            }
        }
        if !missing.is_empty() {
            let ts = match self.plan.start_at {
                StartAt::Earliest => -2,
                StartAt::Latest => -1,
            };
            for (p, off) in
                api::list_offsets(&self.bootstrap, &self.plan.topic, &missing, ts).await?
            {
                self.positions.insert(p, off);
            }
        }
        self.publish_generation();
        Ok(())
    }

    async fn commit(&self) -> Result<(), ClientError> {
        if let Some(m) = &self.member {
            let mut offsets: Vec<(i32, i64)> =
                self.positions.iter().map(|(p, o)| (*p, *o)).collect();
            offsets.sort_unstable();
            if !offsets.is_empty() {
                m.commit(&offsets).await?;
            }
        }
        Ok(())
    }

    async fn poll_loop(&mut self) -> Result<(), ClientError> {
        let mut last_heartbeat = Instant::now();
        let mut last_commit = Instant::now();
        loop {
            let ph = self.shared.phase();
            if ph == phase::STOP {
                return Ok(());
            }
            let every = if ph == phase::SETUP {
                HEARTBEAT_EVERY_IN_SETUP
            } else {
                HEARTBEAT_EVERY
            };
            if self.member.is_some() && last_heartbeat.elapsed() >= every {
                last_heartbeat = Instant::now();
                let rejoin = self.member.as_ref().expect("checked").heartbeat().await?;
                if rejoin {
                    self.commit().await?;
                    let all = self.plan.partitions.clone();
                    self.member.as_mut().expect("checked").rejoin(&all).await?;
                    self.take_assignment().await?;
                }
            }
            if ph == phase::SETUP || self.caught_up || self.positions.is_empty() {
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
            if last_commit.elapsed() >= COMMIT_EVERY {
                last_commit = Instant::now();
                self.commit().await?;
            }
            self.fetch_once().await?;
        }
    }

    async fn fetch_once(&mut self) -> Result<(), ClientError> {
        let mut by_leader: HashMap<&str, Vec<(i32, i64)>> = HashMap::new();
        for (p, off) in &self.positions {
            by_leader
                .entry(self.plan.leaders[p].as_str())
                .or_default()
                .push((*p, *off));
        }
        let mut waits = Vec::new();
        for (addr, mut positions) in by_leader {
            positions.sort_unstable();
            let conn = &self.conns[addr];
            let (frame, c) = api::fetch_request(
                conn,
                &self.plan.topic,
                &positions,
                FETCH_MAX_WAIT_MS,
                self.plan.args.partition_fetch_bytes.min(i32::MAX as u64) as i32,
                self.plan.args.fetch_bytes.min(i32::MAX as u64) as i32,
            );
            waits.push(conn.send(frame, c).await?);
        }
        for w in waits {
            let body = w.wait().await?;
            let received = now_ns();
            let measuring = self.shared.phase() == phase::MEASURE;
            for part in api::fetch_response(body)? {
                match part.error_code {
                    code::NONE => {}
                    code::OFFSET_OUT_OF_RANGE => {
                        let p = [part.partition];
                        for (p, off) in
                            api::list_offsets(&self.bootstrap, &self.plan.topic, &p, -2).await?
                        {
                            self.positions.insert(p, off);
                        }
                        continue;
                    }
                    e => {
                        return Err(ClientError::kafka(
                            "Fetch",
                            e,
                            Some(format!("partition {}", part.partition)),
                        ))
                    }
                }
                let Some(pos) = self.positions.get_mut(&part.partition) else {
                    continue;
                };
                let got = if self.plan.e2e && measuring {
                    let mut r = self.recorder.borrow_mut();
                    deliver(
                        &part.records,
                        *pos,
                        Some(&mut |sent| r.e2e_ns(received.saturating_sub(sent))),
                    )?
                } else {
                    deliver(&part.records, *pos, None)?
                };
                *pos = got.next_offset;
                self.shared
                    .consumed_records
                    .fetch_add(got.records, Ordering::Relaxed);
                self.shared
                    .consumed_bytes
                    .fetch_add(got.bytes, Ordering::Relaxed);
            }
        }
        if let Some(targets) = &self.plan.catch_up {
            let done = self
                .positions
                .iter()
                .all(|(p, off)| *off >= targets.get(p).copied().unwrap_or(0));
            if done {
                self.caught_up = true;
                self.shared
                    .caught_up_at_ns
                    .fetch_max(now_ns(), Ordering::AcqRel);
                self.shared.caught_up.fetch_add(1, Ordering::AcqRel);
            }
        }
        Ok(())
    }
}
