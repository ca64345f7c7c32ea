//! CreateTopics (key 19), versions 0-7; flexible from 5. Manual replica assignments are
//! refused (one node); replication factor must be -1 or 1.

use std::collections::BTreeMap;

use super::{control, error_parts, read_array, Request};
use crate::broker::router::{ControlOp, NewTopic};
use crate::broker::topic_config::{TopicConfig, KEYS};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, KafkaError, Response};

/// `config_source` of a value set on the topic.
pub const SOURCE_TOPIC: i8 = 1;
/// `config_source` of a broker default.
pub const SOURCE_DEFAULT: i8 = 5;

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let (v, flex) = (req.version(), req.flexible());
    let mut rd = Reader::new(body);
    let mut refused = Vec::new();
    let topics = read_array(&mut rd, flex, 10, |rd| {
        let name = rd.string(flex)?.to_string();
        let partitions = rd.i32()?;
        let replication_factor = rd.i16()?;
        let assignments = read_array(rd, flex, 4, |rd| {
            rd.i32()?;
            read_array(rd, flex, 4, |rd| rd.i32())?;
            rd.tagged_fields(flex)
        })?;
        let configs = read_array(rd, flex, 2, |rd| {
            let k = rd.string(flex)?.to_string();
            let v = rd.nullable_string(flex)?.map(str::to_string);
            rd.tagged_fields(flex)?;
            Ok((k, v))
        })?;
        rd.tagged_fields(flex)?;
        refused.push(!assignments.is_empty());
        Ok(NewTopic {
            name,
            partitions,
            replication_factor,
            configs: configs
                .into_iter()
                .filter_map(|(k, v)| Some((k, v?)))
                .collect::<BTreeMap<_, _>>(),
        })
    })?;
    let _timeout_ms = rd.i32()?;
    let validate_only = if v >= 1 { rd.bool()? } else { false };
    rd.tagged_fields(flex)?;

    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let allowed: Vec<NewTopic> = topics
        .into_iter()
        .zip(&refused)
        .filter(|(_, manual)| !**manual)
        .map(|(t, _)| t)
        .collect();
    let n = allowed.len();
    let mut results = control(req, ControlOp::CreateTopics(allowed, validate_only), n)
        .await
        .into_iter();
    let results: Vec<Result<(), KafkaError>> = refused
        .iter()
        .map(|&r| {
            if r {
                Err(KafkaError::new(
                    ErrorCode::InvalidReplicationFactor,
                    "manual replica assignment is not supported on a single node",
                ))
            } else {
                results.next().expect("one result per allowed topic")
            }
        })
        .collect();

    let catalog = req.shard.catalog();
    let defaults = &req.shard.config.topic_defaults.config;
    let mut r = req.response();
    if v >= 2 {
        r.i32(0); // throttle_time_ms
    }
    r.array_len(flex, names.len());
    for (name, res) in names.iter().zip(&results) {
        r.string(flex, name);
        let meta = catalog.topics.get(name).filter(|_| res.is_ok());
        if v >= 7 {
            r.uuid(&meta.map_or([0; 16], |m| m.id));
        }
        let (code, msg) = error_parts(res);
        r.i16(code);
        if v >= 1 {
            r.nullable_string(flex, msg);
        }
        if v >= 5 {
            match meta {
                Some(m) => {
                    r.i32(m.partitions as i32);
                    r.i16(1);
                    let config = TopicConfig::resolve(defaults, &m.configs)
                        .unwrap_or_else(|_| defaults.clone());
                    r.array_len(flex, KEYS.len());
                    for k in KEYS {
                        r.string(flex, k);
                        r.nullable_string(flex, config.get(k).as_deref());
                        r.bool(false); // read_only
                        r.i8(if m.configs.contains_key(*k) {
                            SOURCE_TOPIC
                        } else {
                            SOURCE_DEFAULT
                        });
                        r.bool(false); // is_sensitive
                        r.tagged_fields(flex);
                    }
                }
                None => {
                    r.i32(-1);
                    r.i16(-1);
                    r.null_array(flex);
                }
            }
        }
        r.tagged_fields(flex);
    }
    r.tagged_fields(flex);
    Ok(r)
}
