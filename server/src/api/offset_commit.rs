//! OffsetCommit (key 8), versions 0-8; flexible from 8. A committed offset is the next
//! offset to read. Members must be of the current generation; a free consumer
//! (generation -1, no member id) may commit while the group has no members. The
//! commit is durable (fsynced in `__consumer_offsets`) before the answer.

use super::{group_call, read_topics, write_topics, Request};
use crate::group::coordinator::{GroupOp, GroupReply, OffsetCommitItem};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, Response};

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let (v, flex) = (req.version(), req.flexible());
    let mut rd = Reader::new(body);
    let group = rd.string(flex)?.to_string();
    let (generation, member) = if v >= 1 {
        (rd.i32()?, rd.string(flex)?.to_string())
    } else {
        (-1, String::new())
    };
    if v >= 7 {
        let _instance_id = rd.nullable_string(flex)?;
    }
    if (2..=4).contains(&v) {
        let _retention_time_ms = rd.i64()?;
    }
    let topics = read_topics(&mut rd, flex, 14, |rd| {
        let index = rd.i32()?;
        let offset = rd.i64()?;
        let epoch = if v >= 6 { rd.i32()? } else { -1 };
        if v == 1 {
            let _commit_timestamp = rd.i64()?;
        }
        let metadata = rd.nullable_string(flex)?.map(str::to_string);
        Ok((index, (offset, epoch, metadata)))
    })?;
    rd.tagged_fields(flex)?;

    let items: Vec<OffsetCommitItem> = topics
        .iter()
        .flat_map(|(t, parts)| {
            parts
                .iter()
                .map(move |(p, (o, e, m))| (t.clone(), *p, *o, *e, m.clone()))
        })
        .collect();
    let n = items.len();
    let op = GroupOp::Commit(group.clone(), member, generation, items);
    let codes = match group_call(req, &group, op).await {
        Some(GroupReply::Commit(c)) if c.len() == n => c,
        _ => vec![ErrorCode::CoordinatorNotAvailable; n],
    };
    let mut r = req.response();
    if v >= 3 {
        r.i32(0); // throttle_time_ms
    }
    write_topics(&mut r, flex, &topics, codes, |r, index, code| {
        r.i32(index);
        r.i16(code.code());
    });
    r.tagged_fields(flex);
    Ok(r)
}
