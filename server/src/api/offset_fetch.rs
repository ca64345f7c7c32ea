//! OffsetFetch (key 9), versions 0-8; flexible from 6; v8 asks for several groups.
//! A partition without a committed offset answers offset -1 and no error; a null topic
//! list (v2+) asks for every committed offset of the group.

use std::collections::BTreeMap;

use super::{group_call, read_array, Request};
use crate::group::coordinator::{GroupOp, GroupReply};
use crate::group::offsets::Committed;
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, Response};

type Wanted = Option<Vec<(String, Vec<i32>)>>;

fn read_wanted(rd: &mut Reader<'_>, flex: bool) -> DecodeResult<Wanted> {
    let Some(n) = rd.array_len(flex, 2)? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for _ in 0..n {
        let name = rd.string(flex)?.to_string();
        let parts = read_array(rd, flex, 4, |rd| rd.i32())?;
        rd.tagged_fields(flex)?;
        out.push((name, parts));
    }
    Ok(Some(out))
}

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let (v, flex) = (req.version(), req.flexible());
    let mut rd = Reader::new(body);
    let groups: Vec<(String, Wanted)> = if v >= 8 {
        read_array(&mut rd, flex, 2, |rd| {
            let g = rd.string(flex)?.to_string();
            let w = read_wanted(rd, flex)?;
            rd.tagged_fields(flex)?;
            Ok((g, w))
        })?
    } else {
        let g = rd.string(flex)?.to_string();
        vec![(g, read_wanted(&mut rd, flex)?)]
    };
    if v >= 7 {
        let _require_stable = rd.bool()?;
    }
    rd.tagged_fields(flex)?;

    let mut answers = Vec::with_capacity(groups.len());
    for (group, wanted) in &groups {
        let list = wanted.as_ref().map(|w| {
            w.iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                .collect()
        });
        let reply = group_call(req, group, GroupOp::Fetch(group.clone(), list)).await;
        answers.push(match reply {
            Some(GroupReply::Fetch(e, found)) => (e, found),
            _ => (ErrorCode::CoordinatorNotAvailable, Vec::new()),
        });
    }

    let mut r = req.response();
    if v >= 3 {
        r.i32(0); // throttle_time_ms
    }
    if v >= 8 {
        r.array_len(flex, groups.len());
        for ((group, _), (error, found)) in groups.iter().zip(&answers) {
            r.string(flex, group);
            write_found(&mut r, v, flex, found);
            r.i16(error.code());
            r.tagged_fields(flex);
        }
    } else {
        let (error, found) = &answers[0];
        write_found(&mut r, v, flex, found);
        if v >= 2 {
            r.i16(error.code());
        }
    }
    r.tagged_fields(flex);
    Ok(r)
}

fn write_found(r: &mut Response, v: i16, flex: bool, found: &[(String, i32, Option<Committed>)]) {
    let mut by_topic: BTreeMap<&str, Vec<(i32, Option<&Committed>)>> = BTreeMap::new();
    for (t, p, c) in found {
        by_topic.entry(t).or_default().push((*p, c.as_ref()));
    }
    r.array_len(flex, by_topic.len());
    for (t, parts) in by_topic {
        r.string(flex, t);
        r.array_len(flex, parts.len());
        for (p, c) in parts {
            r.i32(p);
            r.i64(c.map_or(-1, |c| c.offset));
            if v >= 5 {
                r.i32(c.map_or(-1, |c| c.leader_epoch));
            }
            r.nullable_string(
                flex,
                Some(c.and_then(|c| c.metadata.as_deref()).unwrap_or("")),
            );
            r.i16(0);
            r.tagged_fields(flex);
        }
        r.tagged_fields(flex);
    }
}
