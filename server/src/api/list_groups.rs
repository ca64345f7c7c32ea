//! ListGroups (key 16), versions 0-4; flexible from 3; v4 filters by state. Every
//! shard lists the groups it coordinates (including groups that only have committed
//! offsets, as "Empty").

use super::{read_array, Request};
use crate::broker::router::{join_all, Op, Reply};
use crate::broker::shard::BoxFuture;
use crate::group::coordinator::{GroupOp, GroupReply};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::Response;

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let (v, flex) = (req.version(), req.flexible());
    let mut rd = Reader::new(body);
    let states = if v >= 4 {
        read_array(&mut rd, flex, 1, |rd| Ok(rd.string(flex)?.to_string()))?
    } else {
        Vec::new()
    };
    rd.tagged_fields(flex)?;

    let calls: Vec<BoxFuture<'_, Reply>> = (0..req.shard.shards)
        .map(|s| -> BoxFuture<'_, Reply> { Box::pin(req.shard.call(s, Op::Group(GroupOp::List))) })
        .collect();
    let mut groups = Vec::new();
    for reply in join_all(calls).await {
        if let Reply::Group(GroupReply::List(l)) = reply {
            groups.extend(l);
        }
    }
    groups.retain(|(_, _, state)| {
        states.is_empty() || states.iter().any(|s| s.eq_ignore_ascii_case(state))
    });
    groups.sort();

    let mut r = req.response();
    if v >= 1 {
        r.i32(0); // throttle_time_ms
    }
    r.i16(0);
    r.array_len(flex, groups.len());
    for (id, protocol_type, state) in &groups {
        r.string(flex, id);
        r.string(flex, protocol_type);
        if v >= 4 {
            r.string(flex, state);
        }
        r.tagged_fields(flex);
    }
    r.tagged_fields(flex);
    Ok(r)
}
