//! OffsetDelete (key 47), version 0 (never flexible). Deletes committed offsets of
//! partitions whose topic no member of the group subscribes to
//! (GROUP_SUBSCRIBED_TO_TOPIC otherwise).

use super::{group_call, read_topics, write_topics, Request};
use crate::group::coordinator::{GroupOp, GroupReply};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, Response};

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let flex = req.flexible();
    let mut rd = Reader::new(body);
    let group = rd.string(flex)?.to_string();
    let topics = read_topics(&mut rd, flex, 4, |rd| Ok((rd.i32()?, ())))?;
    let partitions: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |(p, ())| (t.clone(), *p)))
        .collect();
    let n = partitions.len();
    let (error, codes) = match group_call(
        req,
        &group,
        GroupOp::DeleteOffsets(group.clone(), partitions),
    )
    .await
    {
        Some(GroupReply::DeleteOffsets(e, c)) if c.len() == n => (e, c),
        Some(GroupReply::DeleteOffsets(e, _)) => (e, vec![ErrorCode::None; n]),
        _ => (ErrorCode::CoordinatorNotAvailable, vec![ErrorCode::None; n]),
    };
    let mut r = req.response();
    r.i16(error.code());
    r.i32(0); // throttle_time_ms
    write_topics(&mut r, flex, &topics, codes, |r, index, code| {
        r.i32(index);
        r.i16(code.code());
    });
    Ok(r)
}
