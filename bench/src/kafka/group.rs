//! Consumer-group membership for the bench consumer: the classic protocol (JoinGroup,
//! SyncGroup, Heartbeat, OffsetCommit, LeaveGroup) with protocol type "consumer" and the
//! range assignor, so members can share a group with stock Kafka consumers.
//!
//! Subscription (ConsumerProtocolSubscription v0):
//! `version i16 = 0 | topics [string] | user_data bytes = null`.
//! Assignment (ConsumerProtocolAssignment v0):
//! `version i16 = 0 | [topic string | partitions [i32]] | user_data bytes = null`.

use std::time::Duration;

use bytes::{BufMut, Bytes};

use super::api::{self, code};
use super::codec::Dec;
use super::{ClientError, Conn};

/// How long a member may go without heartbeating before the coordinator drops it.
pub const SESSION_TIMEOUT_MS: i32 = 10_000;

/// One member of a group, subscribed to one topic.
#[derive(Debug)]
pub struct Member {
    coordinator: Conn,
    group: String,
    topic: String,
    member_id: String,
    generation: i32,
    partitions: Vec<i32>,
}

fn subscription(topic: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_i32(-1);
    b
}

fn assignment(topic: &str, partitions: &[i32]) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_i32(partitions.len() as i32);
    for p in partitions {
        b.put_i32(*p);
    }
    b.put_i32(-1);
    b
}

/// The partitions of `topic` in an assignment (an empty assignment has none).
fn read_assignment(bytes: Bytes, topic: &str) -> Result<Vec<i32>, ClientError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut d = Dec::new(bytes);
    let mut read = || -> Result<Vec<i32>, super::codec::DecodeError> {
        d.i16()?;
        let mut out = Vec::new();
        for _ in 0..d.count(6)? {
            let t = d.string()?;
            let n = d.count(4)?;
            for _ in 0..n {
                let p = d.i32()?;
                if t == topic {
                    out.push(p);
                }
            }
        }
        Ok(out)
    };
    read().map_err(|e| ClientError::new(format!("assignment: {e}")))
}

/// The range assignor: members sorted by id, partitions sorted, each member a contiguous
/// run, the first `partitions % members` members one more.
pub fn range_assign(members: &[String], partitions: &[i32]) -> Vec<(String, Vec<i32>)> {
    let mut ids: Vec<&String> = members.iter().collect();
    ids.sort();
    let mut ps = partitions.to_vec();
    ps.sort_unstable();
    let (per, extra) = (ps.len() / ids.len().max(1), ps.len() % ids.len().max(1));
    let mut at = 0;
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let n = per + usize::from(i < extra);
            let mine = ps[at..at + n].to_vec();
            at += n;
            ((*id).clone(), mine)
        })
        .collect()
}

impl Member {
    /// Finds the group's coordinator (asking `bootstrap`) and joins.
    pub async fn join(
        bootstrap: &Conn,
        group: &str,
        topic: &str,
        all: &[i32],
    ) -> Result<Member, ClientError> {
        let mut tries = 0;
        let addr = loop {
            match api::find_coordinator(bootstrap, group).await? {
                Ok(a) => break a,
                Err(c)
                    if tries < 100
                        && (c == code::COORDINATOR_NOT_AVAILABLE
                            || c == code::COORDINATOR_LOAD_IN_PROGRESS) =>
                {
                    tries += 1;
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                }
                Err(c) => return Err(ClientError::kafka("FindCoordinator", c, None)),
            }
        };
        let coordinator = if addr == bootstrap.addr() {
            bootstrap.clone()
        } else {
            Conn::connect(&addr).await?
        };
        let mut m = Member {
            coordinator,
            group: group.to_string(),
            topic: topic.to_string(),
            member_id: String::new(),
            generation: -1,
            partitions: Vec::new(),
        };
        m.rejoin(all).await?;
        Ok(m)
    }

    /// Joins again (after a rebalance was announced) and takes the new assignment.
    pub async fn rejoin(&mut self, all: &[i32]) -> Result<(), ClientError> {
        let sub = subscription(&self.topic);
        for _ in 0..100 {
            let j = api::join_group(
                &self.coordinator,
                &self.group,
                &self.member_id,
                SESSION_TIMEOUT_MS,
                &sub,
            )
            .await?;
            match j.error_code {
                code::NONE => {}
                code::MEMBER_ID_REQUIRED => {
                    self.member_id = j.member_id;
                    continue;
                }
                code::UNKNOWN_MEMBER_ID => {
                    self.member_id.clear();
                    continue;
                }
                code::REBALANCE_IN_PROGRESS => continue,
                c => return Err(ClientError::kafka("JoinGroup", c, None)),
            }
            self.member_id = j.member_id;
            self.generation = j.generation;
            let plan = if j.leader == self.member_id {
                let ids: Vec<String> = j.members.into_iter().map(|(id, _)| id).collect();
                range_assign(&ids, all)
                    .into_iter()
                    .map(|(id, ps)| (id, assignment(&self.topic, &ps)))
                    .collect()
            } else {
                Vec::new()
            };
            let (err, mine) = api::sync_group(
                &self.coordinator,
                &self.group,
                self.generation,
                &self.member_id,
                &plan,
            )
            .await?;
            match err {
                code::NONE => {
                    self.partitions = read_assignment(mine, &self.topic)?;
                    return Ok(());
                }
                code::REBALANCE_IN_PROGRESS | code::ILLEGAL_GENERATION => continue,
                code::UNKNOWN_MEMBER_ID => {
                    self.member_id.clear();
                    continue;
                }
                c => return Err(ClientError::kafka("SyncGroup", c, None)),
            }
        }
        Err(ClientError::new(format!(
            "group {}: no stable assignment after 100 joins",
            self.group
        )))
    }

    /// The partitions assigned in the current generation.
    pub fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    /// The current generation.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// Heartbeats; `true` when the group is rebalancing and the member must rejoin.
    pub async fn heartbeat(&self) -> Result<bool, ClientError> {
        match api::heartbeat(
            &self.coordinator,
            &self.group,
            self.generation,
            &self.member_id,
        )
        .await?
        {
            code::NONE => Ok(false),
            code::REBALANCE_IN_PROGRESS | code::ILLEGAL_GENERATION | code::UNKNOWN_MEMBER_ID => {
                Ok(true)
            }
            c => Err(ClientError::kafka("Heartbeat", c, None)),
        }
    }

    /// The committed offsets of `partitions` (-1 where none).
    pub async fn committed(&self, partitions: &[i32]) -> Result<Vec<(i32, i64)>, ClientError> {
        api::offset_fetch(&self.coordinator, &self.group, &self.topic, partitions).await
    }

    /// Commits `(partition, next offset)` pairs; a commit refused because the group is
    /// rebalancing is not an error (the positions are committed again after the rejoin).
    pub async fn commit(&self, offsets: &[(i32, i64)]) -> Result<(), ClientError> {
        match api::offset_commit(
            &self.coordinator,
            &self.group,
            self.generation,
            &self.member_id,
            &self.topic,
            offsets,
        )
        .await?
        {
            None
            | Some(code::REBALANCE_IN_PROGRESS)
            | Some(code::ILLEGAL_GENERATION)
            | Some(code::UNKNOWN_MEMBER_ID) => Ok(()),
            Some(c) => Err(ClientError::kafka("OffsetCommit", c, None)),
        }
    }

    /// Leaves the group, so the others rebalance at once instead of after the session
    /// timeout.
    pub async fn leave(&self) -> Result<(), ClientError> {
        api::leave_group(&self.coordinator, &self.group, &self.member_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_assignment_is_contiguous_and_complete() {
        let members = vec!["c".to_string(), "a".to_string(), "b".to_string()];
        let got = range_assign(&members, &[7, 0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(
            got,
            vec![
                ("a".to_string(), vec![0, 1, 2]),
                ("b".to_string(), vec![3, 4, 5]),
                ("c".to_string(), vec![6, 7]),
            ]
        );
    }

    #[test]
    fn assignments_round_trip() {
        let b = assignment("t", &[3, 1]);
        assert_eq!(read_assignment(Bytes::from(b), "t").unwrap(), vec![3, 1]);
        assert_eq!(
            read_assignment(Bytes::new(), "t").unwrap(),
            Vec::<i32>::new()
        );
        assert!(read_assignment(Bytes::from_static(&[0, 0, 0, 0, 0, 9]), "t").is_err());
    }
}
