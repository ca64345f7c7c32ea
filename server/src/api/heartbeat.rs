//! Heartbeat (key 12), versions 0-4; flexible from 4. REBALANCE_IN_PROGRESS tells a
//! member of the old generation to rejoin.

use super::{group_call, Request};
use crate::group::coordinator::{GroupOp, GroupReply};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, Response};

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let (v, flex) = (req.version(), req.flexible());
    let mut rd = Reader::new(body);
    let group = rd.string(flex)?.to_string();
    let generation = rd.i32()?;
    let member = rd.string(flex)?.to_string();
    if v >= 3 {
        let _instance_id = rd.nullable_string(flex)?;
    }
    rd.tagged_fields(flex)?;
    let error = match group_call(
        req,
        &group.clone(),
        GroupOp::Heartbeat(group, member, generation),
    )
    .await
    {
        Some(GroupReply::Code(e)) => e,
        _ => ErrorCode::CoordinatorNotAvailable,
    };
    let mut r = req.response();
    if v >= 1 {
        r.i32(0); // throttle_time_ms
    }
    r.i16(error.code());
    r.tagged_fields(flex);
    Ok(r)
}
