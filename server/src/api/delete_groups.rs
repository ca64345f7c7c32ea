//! DeleteGroups (key 42), versions 0-2; flexible from 2. Only groups without members
//! can be deleted (NON_EMPTY_GROUP otherwise); their committed offsets are deleted
//! durably (tombstones in `__consumer_offsets`).

use super::{group_call, read_array, Request};
use crate::group::coordinator::{GroupOp, GroupReply};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, Response};

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let flex = req.flexible();
    let mut rd = Reader::new(body);
    let groups = read_array(&mut rd, flex, 1, |rd| Ok(rd.string(flex)?.to_string()))?;
    rd.tagged_fields(flex)?;
    let mut r = req.response();
    r.i32(0); // throttle_time_ms
    r.array_len(flex, groups.len());
    for g in &groups {
        let error = match group_call(req, g, GroupOp::Delete(g.clone())).await {
            Some(GroupReply::Code(e)) => e,
            _ => ErrorCode::CoordinatorNotAvailable,
        };
        r.string(flex, g);
        r.i16(error.code());
        r.tagged_fields(flex);
    }
    r.tagged_fields(flex);
    Ok(r)
}
