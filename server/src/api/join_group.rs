//! JoinGroup (key 11), versions 0-7; flexible from 6. The answer waits until the
//! group's join phase completes (every member rejoined, or the rebalance timeout).
//! v4+: a new member first gets MEMBER_ID_REQUIRED with its id and joins again.

use bytes::Bytes;

use super::{group_call, read_array, Request};
use crate::group::coordinator::{GroupOp, GroupReply};
use crate::group::state::{JoinAnswer, JoinRequest};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, Response};

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let (v, flex) = (req.version(), req.flexible());
    let mut rd = Reader::new(body);
    let group = rd.string(flex)?.to_string();
    let session_timeout_ms = rd.i32()?;
    let rebalance_timeout_ms = if v >= 1 {
        rd.i32()?
    } else {
        session_timeout_ms
    };
    let member_id = rd.string(flex)?.to_string();
    let instance_id = if v >= 5 {
        rd.nullable_string(flex)?.map(str::to_string)
    } else {
        None
    };
    let protocol_type = rd.string(flex)?.to_string();
    let protocols = read_array(&mut rd, flex, 3, |rd| {
        let name = rd.string(flex)?.to_string();
        let meta = Bytes::copy_from_slice(rd.nullable_bytes(flex)?.unwrap_or_default());
        rd.tagged_fields(flex)?;
        Ok((name, meta))
    })?;
    rd.tagged_fields(flex)?;

    let join = JoinRequest {
        member_id: member_id.clone(),
        instance_id,
        protocol_type,
        protocols,
        session_timeout_ms: i64::from(session_timeout_ms),
        rebalance_timeout_ms: i64::from(rebalance_timeout_ms),
        client_id: req.header.client_id.clone().unwrap_or_default(),
        client_host: req.header.client_host.clone().unwrap_or_default(),
        require_known_member_id: v >= 4,
    };
    let answer = match group_call(req, &group.clone(), GroupOp::Join(group, join)).await {
        Some(GroupReply::Join(a)) => a,
        _ => JoinAnswer::error(ErrorCode::CoordinatorNotAvailable, &member_id),
    };
    let mut r = req.response();
    if v >= 2 {
        r.i32(0); // throttle_time_ms
    }
    r.i16(answer.error.code());
    r.i32(answer.generation);
    if v >= 7 {
        r.nullable_string(flex, answer.protocol_type.as_deref());
        r.nullable_string(flex, answer.protocol.as_deref());
    } else {
        r.string(flex, answer.protocol.as_deref().unwrap_or(""));
    }
    r.string(flex, &answer.leader);
    r.string(flex, &answer.member_id);
    r.array_len(flex, answer.members.len());
    for (id, instance, meta) in &answer.members {
        r.string(flex, id);
        if v >= 5 {
            r.nullable_string(flex, instance.as_deref());
        }
        r.bytes(flex, meta);
        r.tagged_fields(flex);
    }
    r.tagged_fields(flex);
    Ok(r)
}
