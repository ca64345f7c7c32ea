//! DescribeConfigs (key 32), versions 0-4; flexible from 4. Topic resources list the
//! supported topic settings with their source (set on the topic, or the broker default);
//! broker resources are answered with an empty list (no dynamic broker configs).

use super::create_topics::{SOURCE_DEFAULT, SOURCE_TOPIC};
use super::{read_array, Request};
use crate::broker::topic_config::{TopicConfig, KEYS};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, Response};

/// Kafka's resource type of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// Kafka's resource type of a broker.
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's ConfigType of each key (STRING 2, INT 3, LONG 5, LIST 7).
fn config_type(key: &str) -> i8 {
    match key {
        "cleanup.policy" => 7,
        "message.timestamp.type" => 2,
        "max.message.bytes" | "segment.bytes" => 3,
        _ => 5,
    }
}

/// Handles a request.
pub fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let (v, flex) = (req.version(), req.flexible());
    let mut rd = Reader::new(body);
    let resources = read_array(&mut rd, flex, 4, |rd| {
        let kind = rd.i8()?;
        let name = rd.string(flex)?.to_string();
        let keys = rd.array_len(flex, 1)?;
        let keys = match keys {
            None => None,
            Some(n) => {
                let mut k = Vec::new();
                for _ in 0..n {
                    k.push(rd.string(flex)?.to_string());
                }
                Some(k)
            }
        };
        rd.tagged_fields(flex)?;
        Ok((kind, name, keys))
    })?;
    let synonyms = if v >= 1 { rd.bool()? } else { false };
    if v >= 3 {
        let _include_documentation = rd.bool()?;
    }
    rd.tagged_fields(flex)?;

    let catalog = req.shard.catalog();
    let defaults = &req.shard.config.topic_defaults.config;
    let mut r = req.response();
    r.i32(0); // throttle_time_ms
    r.array_len(flex, resources.len());
    for (kind, name, keys) in &resources {
        let topic = (*kind == RESOURCE_TOPIC).then(|| catalog.topics.get(name));
        let (error, entries): (ErrorCode, Vec<(&str, String, bool)>) = match topic {
            Some(Some(meta)) => {
                let config = TopicConfig::resolve(defaults, &meta.configs)
                    .unwrap_or_else(|_| defaults.clone());
                let entries = KEYS
                    .iter()
                    .filter(|k| keys.as_ref().is_none_or(|ks| ks.iter().any(|x| x == *k)))
                    .map(|k| {
                        (
                            *k,
                            config.get(k).unwrap_or_default(),
                            meta.configs.contains_key(*k),
                        )
                    })
                    .collect();
                (ErrorCode::None, entries)
            }
            Some(None) => (ErrorCode::UnknownTopicOrPartition, Vec::new()),
            None if *kind == RESOURCE_BROKER => (ErrorCode::None, Vec::new()),
            None => (ErrorCode::InvalidRequest, Vec::new()),
        };
        r.i16(error.code());
        r.nullable_string(flex, None);
        r.i8(*kind);
        r.string(flex, name);
        r.array_len(flex, entries.len());
        for (key, value, set_on_topic) in &entries {
            let source = if *set_on_topic {
                SOURCE_TOPIC
            } else {
                SOURCE_DEFAULT
            };
            r.string(flex, key);
            r.nullable_string(flex, Some(value));
            r.bool(false); // read_only
            if v == 0 {
                r.bool(!set_on_topic); // is_default
            } else {
                r.i8(source);
            }
            r.bool(false); // is_sensitive
            if v >= 1 {
                let n = usize::from(synonyms);
                r.array_len(flex, n);
                if n == 1 {
                    r.string(flex, key);
                    r.nullable_string(flex, Some(value));
                    r.i8(source);
                    r.tagged_fields(flex);
                }
            }
            if v >= 3 {
                r.i8(config_type(key));
                r.nullable_string(flex, None); // documentation
            }
            r.tagged_fields(flex);
        }
        r.tagged_fields(flex);
    }
    r.tagged_fields(flex);
    Ok(r)
}
