//! CreatePartitions (key 37), versions 0-3; flexible from 2. Grows a topic while it is
//! being produced to and consumed: new partitions are opened on their shards before
//! the answer; existing partitions do not move. Partitions are never removed.

use super::{control, error_parts, read_array, Request};
use crate::broker::router::ControlOp;
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, KafkaError, Response};

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let flex = req.flexible();
    let mut rd = Reader::new(body);
    let topics = read_array(&mut rd, flex, 7, |rd| {
        let name = rd.string(flex)?.to_string();
        let count = rd.i32()?;
        let assignments = rd.array_len(flex, 1)?;
        for _ in 0..assignments.unwrap_or(0) {
            read_array(rd, flex, 4, |rd| rd.i32())?;
            rd.tagged_fields(flex)?;
        }
        rd.tagged_fields(flex)?;
        Ok((name, count, assignments.is_some()))
    })?;
    let _timeout_ms = rd.i32()?;
    let validate_only = rd.bool()?;
    rd.tagged_fields(flex)?;

    let asked: Vec<(String, i32)> = topics
        .iter()
        .filter(|t| !t.2)
        .map(|t| (t.0.clone(), t.1))
        .collect();
    let n = asked.len();
    let mut results = control(req, ControlOp::CreatePartitions(asked, validate_only), n)
        .await
        .into_iter();

    let mut r = req.response();
    r.i32(0); // throttle_time_ms
    r.array_len(flex, topics.len());
    for (name, _, manual) in &topics {
        let res = if *manual {
            Err(KafkaError::new(
                ErrorCode::InvalidRequest,
                "manual replica assignment is not supported on a single node",
            ))
        } else {
            results.next().expect("one result per topic")
        };
        r.string(flex, name);
        let (code, msg) = error_parts(&res);
        r.i16(code);
        r.nullable_string(flex, msg);
        r.tagged_fields(flex);
    }
    r.tagged_fields(flex);
    Ok(r)
}
