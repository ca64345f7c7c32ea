//! LeaveGroup (key 13), versions 0-5; flexible from 4; v3+ leaves several members at
//! once (by member id or, for static members, instance id).

use super::{group_call, read_array, Request};
use crate::group::coordinator::{GroupOp, GroupReply};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, Response};

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let (v, flex) = (req.version(), req.flexible());
    let mut rd = Reader::new(body);
    let group = rd.string(flex)?.to_string();
    let members: Vec<(String, Option<String>)> = if v <= 2 {
        vec![(rd.string(flex)?.to_string(), None)]
    } else {
        read_array(&mut rd, flex, 3, |rd| {
            let id = rd.string(flex)?.to_string();
            let instance = rd.nullable_string(flex)?.map(str::to_string);
            if v >= 5 {
                let _reason = rd.nullable_string(flex)?;
            }
            rd.tagged_fields(flex)?;
            Ok((id, instance))
        })?
    };
    rd.tagged_fields(flex)?;

    let (error, errors) =
        match group_call(req, &group.clone(), GroupOp::Leave(group, members.clone())).await {
            Some(GroupReply::Leave(e, each)) => (e, each),
            _ => (
                ErrorCode::CoordinatorNotAvailable,
                vec![ErrorCode::CoordinatorNotAvailable; members.len()],
            ),
        };
    let mut r = req.response();
    if v >= 1 {
        r.i32(0); // throttle_time_ms
    }
    if v <= 2 {
        // One member: its error is the request's.
        r.i16(errors.first().copied().unwrap_or(error).code());
    } else {
        r.i16(error.code());
        r.array_len(flex, members.len());
        for ((id, instance), e) in members.iter().zip(&errors) {
            r.string(flex, id);
            r.nullable_string(flex, instance.as_deref());
            r.i16(e.code());
            r.tagged_fields(flex);
        }
    }
    r.tagged_fields(flex);
    Ok(r)
}
