//! SyncGroup (key 14), versions 0-5; flexible from 4. The leader sends the assignment;
//! every member's answer waits for it (members that never sync are removed when the
//! sync deadline passes).

use bytes::Bytes;

use super::{group_call, read_array, Request};
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
    let (mut protocol_type, mut protocol) = (None, None);
    if v >= 5 {
        protocol_type = rd.nullable_string(flex)?.map(str::to_string);
        protocol = rd.nullable_string(flex)?.map(str::to_string);
    }
    let assignments = read_array(&mut rd, flex, 3, |rd| {
        let id = rd.string(flex)?.to_string();
        let a = Bytes::copy_from_slice(rd.nullable_bytes(flex)?.unwrap_or_default());
        rd.tagged_fields(flex)?;
        Ok((id, a))
    })?;
    rd.tagged_fields(flex)?;

    let op = GroupOp::Sync(group.clone(), member, generation, assignments);
    let (error, assignment) = match group_call(req, &group, op).await {
        Some(GroupReply::Sync(e, a)) => (e, a),
        _ => (ErrorCode::CoordinatorNotAvailable, Bytes::new()),
    };
    let mut r = req.response();
    if v >= 1 {
        r.i32(0); // throttle_time_ms
    }
    r.i16(error.code());
    if v >= 5 {
        r.nullable_string(flex, protocol_type.as_deref());
        r.nullable_string(flex, protocol.as_deref());
    }
    r.bytes(flex, &assignment);
    r.tagged_fields(flex);
    Ok(r)
}
