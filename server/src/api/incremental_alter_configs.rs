//! IncrementalAlterConfigs (key 44), versions 0-1; flexible from 1. SET and DELETE on
//! the supported topic settings; the change is durable in the catalog and applied to
//! every partition before the answer. APPEND/SUBTRACT are refused (no list settings
//! other than cleanup.policy, which only allows `delete`).

use super::describe_configs::RESOURCE_TOPIC;
use super::{control, error_parts, read_array, Request};
use crate::broker::router::{ConfigChange, ControlOp};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, KafkaError, Response};

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let flex = req.flexible();
    let mut rd = Reader::new(body);
    let resources = read_array(&mut rd, flex, 4, |rd| {
        let kind = rd.i8()?;
        let name = rd.string(flex)?.to_string();
        let changes = read_array(rd, flex, 4, |rd| {
            let key = rd.string(flex)?.to_string();
            let op = rd.i8()?;
            let value = rd.nullable_string(flex)?.map(str::to_string);
            rd.tagged_fields(flex)?;
            Ok(ConfigChange { key, op, value })
        })?;
        rd.tagged_fields(flex)?;
        Ok((kind, name, changes))
    })?;
    let validate_only = rd.bool()?;
    rd.tagged_fields(flex)?;

    let topics: Vec<(String, Vec<ConfigChange>)> = resources
        .iter()
        .filter(|r| r.0 == RESOURCE_TOPIC)
        .map(|r| (r.1.clone(), r.2.clone()))
        .collect();
    let n = topics.len();
    let mut results = control(req, ControlOp::AlterConfigs(topics, validate_only), n)
        .await
        .into_iter();

    let mut r = req.response();
    r.i32(0); // throttle_time_ms
    r.array_len(flex, resources.len());
    for (kind, name, _) in &resources {
        let res = if *kind == RESOURCE_TOPIC {
            results.next().expect("one result per topic")
        } else {
            Err(KafkaError::new(
                ErrorCode::InvalidRequest,
                "only topic configs can be altered",
            ))
        };
        let (code, msg) = error_parts(&res);
        r.i16(code);
        r.nullable_string(flex, msg);
        r.i8(*kind);
        r.string(flex, name);
        r.tagged_fields(flex);
    }
    r.tagged_fields(flex);
    Ok(r)
}
