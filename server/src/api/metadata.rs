//! Metadata (key 3), versions 0-12; flexible from 9.
//!
//! One broker (this node) leads every partition with epoch 0 and is the controller.
//! Unknown topics are created with the broker defaults when `auto_create_topics` is on
//! and the request allows it (always before v4, `allow_auto_topic_creation` after).

use std::collections::BTreeMap;

use super::{read_array, Request};
use crate::broker::catalog::valid_topic_name;
use crate::broker::ownership::CONTROLLER_SHARD;
use crate::broker::router::{ControlOp, NewTopic, Op, Reply};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, Response};

/// The cluster id clients see (one node, one cluster).
pub const CLUSTER_ID: &str = "corelog-single-node";
/// `*_authorized_operations` when the client did not ask for them.
pub const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
/// Everything is allowed on a topic (no ACLs): READ, WRITE, CREATE, DELETE, ALTER,
/// DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS (Kafka's AclOperation codes as bits).
pub const ALL_TOPIC_OPERATIONS: i32 = bits(&[3, 4, 5, 6, 7, 8, 10, 11]);
/// Everything on the cluster: CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS,
/// ALTER_CONFIGS, IDEMPOTENT_WRITE.
pub const ALL_CLUSTER_OPERATIONS: i32 = bits(&[5, 7, 8, 9, 10, 11, 12]);

const fn bits(ops: &[u32]) -> i32 {
    let mut v = 0;
    let mut i = 0;
    while i < ops.len() {
        v |= 1 << ops[i];
        i += 1;
    }
    v
}

/// A topic asked for: by name, or (v10+) by id.
enum Wanted {
    Name(String),
    Id([u8; 16]),
}

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let (v, flex) = (req.version(), req.flexible());
    let mut rd = Reader::new(body);
    let n = rd.array_len(flex, if v >= 10 { 17 } else { 2 })?;
    // v0: an empty array means all topics; v1+: null means all.
    let mut wanted = None;
    if let Some(n) = n.filter(|&n| v >= 1 || n > 0) {
        let mut list = Vec::with_capacity(n.min(rd.remaining()));
        for _ in 0..n {
            let id = if v >= 10 { Some(rd.uuid()?) } else { None };
            let name = rd.nullable_string(flex)?;
            rd.tagged_fields(flex)?;
            list.push(match (name, id) {
                (Some(n), _) => Wanted::Name(n.to_string()),
                (None, Some(id)) => Wanted::Id(id),
                (None, None) => Wanted::Id([0; 16]),
            });
        }
        wanted = Some(list);
    }
    let allow_auto = if v >= 4 { rd.bool()? } else { true };
    let include_cluster_ops = if (8..=10).contains(&v) {
        rd.bool()?
    } else {
        false
    };
    let include_topic_ops = if v >= 8 { rd.bool()? } else { false };
    rd.tagged_fields(flex)?;

    let shard = req.shard;
    let mut create_errors = BTreeMap::new();
    if let Some(list) = &wanted {
        if shard.config.auto_create_topics && allow_auto {
            let catalog = shard.catalog();
            let missing: Vec<NewTopic> = list
                .iter()
                .filter_map(|w| match w {
                    Wanted::Name(n) if !catalog.topics.contains_key(n) && valid_topic_name(n) => {
                        Some(NewTopic {
                            name: n.clone(),
                            partitions: -1,
                            replication_factor: -1,
                            configs: BTreeMap::new(),
                        })
                    }
                    _ => None,
                })
                .collect();
            if !missing.is_empty() {
                let names: Vec<String> = missing.iter().map(|t| t.name.clone()).collect();
                let op = Op::Control(ControlOp::CreateTopics(missing, false));
                if let Reply::Control(results) = shard.call(CONTROLLER_SHARD, op).await {
                    for (name, r) in names.into_iter().zip(results) {
                        if let Err(e) = r {
                            if e.code != ErrorCode::TopicAlreadyExists {
                                create_errors.insert(name, e.code);
                            }
                        }
                    }
                }
            }
        }
    }

    let catalog = shard.catalog();
    let cfg = &shard.config;
    let mut r = req.response();
    if v >= 3 {
        r.i32(0); // throttle_time_ms
    }
    r.array_len(flex, 1);
    r.i32(cfg.node_id);
    r.string(flex, &cfg.advertised_host);
    r.i32(i32::from(cfg.listen.port()));
    if v >= 1 {
        r.nullable_string(flex, None); // rack
    }
    r.tagged_fields(flex);
    if v >= 2 {
        r.nullable_string(flex, Some(CLUSTER_ID));
    }
    if v >= 1 {
        r.i32(cfg.node_id); // controller_id
    }
    // (name, id, error, partitions)
    let rows: Vec<(Option<String>, [u8; 16], ErrorCode, u32)> = match &wanted {
        None => catalog
            .topics
            .iter()
            .map(|(n, t)| (Some(n.clone()), t.id, ErrorCode::None, t.partitions))
            .collect(),
        Some(list) => list
            .iter()
            .map(|w| match w {
                Wanted::Name(n) => match catalog.topics.get(n) {
                    Some(t) => (Some(n.clone()), t.id, ErrorCode::None, t.partitions),
                    None => {
                        let err = if !valid_topic_name(n) {
                            ErrorCode::InvalidTopicException
                        } else {
                            create_errors
                                .get(n)
                                .copied()
                                .unwrap_or(ErrorCode::UnknownTopicOrPartition)
                        };
                        (Some(n.clone()), [0; 16], err, 0)
                    }
                },
                Wanted::Id(id) => match catalog.topics.iter().find(|(_, t)| t.id == *id) {
                    Some((n, t)) => (Some(n.clone()), t.id, ErrorCode::None, t.partitions),
                    None => (None, *id, ErrorCode::UnknownTopicId, 0),
                },
            })
            .collect(),
    };
    r.array_len(flex, rows.len());
    for (name, id, err, partitions) in rows {
        r.i16(err.code());
        if v >= 12 {
            r.nullable_string(flex, name.as_deref());
        } else {
            r.string(flex, name.as_deref().unwrap_or(""));
        }
        if v >= 10 {
            r.uuid(&id);
        }
        if v >= 1 {
            r.bool(false); // is_internal
        }
        r.array_len(flex, partitions as usize);
        for p in 0..partitions {
            r.i16(0);
            r.i32(p as i32);
            r.i32(cfg.node_id);
            if v >= 7 {
                r.i32(0); // leader_epoch
            }
            for _ in 0..2 {
                // replica_nodes, isr_nodes
                r.array_len(flex, 1);
                r.i32(cfg.node_id);
            }
            if v >= 5 {
                r.array_len(flex, 0); // offline_replicas
            }
            r.tagged_fields(flex);
        }
        if v >= 8 {
            r.i32(if include_topic_ops {
                ALL_TOPIC_OPERATIONS
            } else {
                OPERATIONS_NOT_REQUESTED
            });
        }
        r.tagged_fields(flex);
    }
    if (8..=10).contains(&v) {
        r.i32(if include_cluster_ops {
            ALL_CLUSTER_OPERATIONS
        } else {
            OPERATIONS_NOT_REQUESTED
        });
    }
    r.tagged_fields(flex);
    Ok(r)
}

/// Reads a list of topic names (used by several admin APIs).
pub fn read_names(rd: &mut Reader<'_>, flex: bool) -> DecodeResult<Vec<String>> {
    read_array(rd, flex, 1, |rd| Ok(rd.string(flex)?.to_string()))
}
