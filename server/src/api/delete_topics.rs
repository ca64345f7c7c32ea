//! DeleteTopics (key 20), versions 0-6; flexible from 4. By name (v6 also by id).
//! Each deleted topic's partitions are closed and their directories removed on their
//! shards before the answer.

use super::metadata::read_names;
use super::{control, error_parts, read_array, Request};
use crate::broker::router::ControlOp;
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, KafkaError, Response};

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let (v, flex) = (req.version(), req.flexible());
    let mut rd = Reader::new(body);
    let wanted: Vec<(Option<String>, [u8; 16])> = if v >= 6 {
        read_array(&mut rd, flex, 17, |rd| {
            let name = rd.nullable_string(flex)?.map(str::to_string);
            let id = rd.uuid()?;
            rd.tagged_fields(flex)?;
            Ok((name, id))
        })?
    } else {
        read_names(&mut rd, flex)?
            .into_iter()
            .map(|n| (Some(n), [0; 16]))
            .collect()
    };
    let _timeout_ms = rd.i32()?;
    rd.tagged_fields(flex)?;

    let catalog = req.shard.catalog();
    // Resolve ids to names; unknown ids are answered without asking the controller.
    let resolved: Vec<(Option<String>, [u8; 16])> = wanted
        .into_iter()
        .map(|(name, id)| match name {
            Some(n) => {
                let id = catalog.topics.get(&n).map_or(id, |t| t.id);
                (Some(n), id)
            }
            None => (
                catalog
                    .topics
                    .iter()
                    .find(|(_, t)| t.id == id)
                    .map(|(n, _)| n.clone()),
                id,
            ),
        })
        .collect();
    let names: Vec<String> = resolved.iter().filter_map(|(n, _)| n.clone()).collect();
    let mut results = control(req, ControlOp::DeleteTopics(names.clone()), names.len())
        .await
        .into_iter();

    let mut r = req.response();
    if v >= 1 {
        r.i32(0); // throttle_time_ms
    }
    r.array_len(flex, resolved.len());
    for (name, id) in &resolved {
        let res = match name {
            Some(_) => results.next().expect("one result per name"),
            None => Err(KafkaError::from(ErrorCode::UnknownTopicId)),
        };
        if v >= 6 {
            r.nullable_string(flex, name.as_deref());
            r.uuid(id);
        } else {
            r.string(flex, name.as_deref().unwrap_or(""));
        }
        let (code, msg) = error_parts(&res);
        r.i16(code);
        if v >= 5 {
            r.nullable_string(flex, msg);
        }
        r.tagged_fields(flex);
    }
    r.tagged_fields(flex);
    Ok(r)
}
