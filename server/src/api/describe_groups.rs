//! DescribeGroups (key 15), versions 0-5; flexible from 5.

use super::{group_call, read_array, Request};
use crate::group::coordinator::{GroupDescription, GroupOp, GroupReply};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, Response};

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let (v, flex) = (req.version(), req.flexible());
    let mut rd = Reader::new(body);
    let groups = read_array(&mut rd, flex, 1, |rd| Ok(rd.string(flex)?.to_string()))?;
    let include_ops = if v >= 3 { rd.bool()? } else { false };
    rd.tagged_fields(flex)?;

    let mut r = req.response();
    if v >= 1 {
        r.i32(0); // throttle_time_ms
    }
    r.array_len(flex, groups.len());
    for g in &groups {
        let d = match group_call(req, g, GroupOp::Describe(g.clone())).await {
            Some(GroupReply::Describe(d)) => d,
            _ => GroupDescription {
                error: ErrorCode::CoordinatorNotAvailable,
                state: "",
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            },
        };
        r.i16(d.error.code());
        r.string(flex, g);
        r.string(flex, d.state);
        r.string(flex, &d.protocol_type);
        r.string(flex, &d.protocol);
        r.array_len(flex, d.members.len());
        for m in &d.members {
            r.string(flex, &m.member_id);
            if v >= 4 {
                r.nullable_string(flex, m.instance_id.as_deref());
            }
            r.string(flex, &m.client_id);
            r.string(flex, &m.client_host);
            r.bytes(flex, &m.metadata);
            r.bytes(flex, &m.assignment);
            r.tagged_fields(flex);
        }
        if v >= 3 {
            // Every group operation is allowed (no ACLs): READ, DESCRIBE, DELETE.
            r.i32(if include_ops {
                (1 << 3) | (1 << 8) | (1 << 6)
            } else {
                i32::MIN
            });
        }
        r.tagged_fields(flex);
    }
    r.tagged_fields(flex);
    Ok(r)
}
