//! ListOffsets (key 2), versions 0-7; flexible from 6. Timestamps: -2 earliest (log
//! start), -1 latest (high watermark, which is also the last stable offset), -3 the
//! record with the largest timestamp (v7), otherwise the first record whose timestamp
//! is at or after the one given (record-exact in uncompressed batches).

use super::{per_partition, read_topics, write_topics, Request};
use crate::broker::router::{Op, Reply};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::Response;

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let (v, flex) = (req.version(), req.flexible());
    let mut rd = Reader::new(body);
    let _replica_id = rd.i32()?;
    if v >= 2 {
        let _isolation_level = rd.i8()?;
    }
    let topics = read_topics(&mut rd, flex, 12, |rd| {
        let index = rd.i32()?;
        if v >= 4 {
            let _current_leader_epoch = rd.i32()?;
        }
        let ts = rd.i64()?;
        if v == 0 {
            let _max_num_offsets = rd.i32()?;
        }
        Ok((index, ts))
    })?;
    rd.tagged_fields(flex)?;

    let answers = per_partition(req, &topics, Op::ListOffsets, |r| match r {
        Reply::ListOffsets(a) => Some(a),
        _ => None,
    })
    .await;

    let mut r = req.response();
    if v >= 2 {
        r.i32(0); // throttle_time_ms
    }
    write_topics(&mut r, flex, &topics, answers, |r, index, a| {
        r.i32(index);
        r.i16(a.err().map_or(0, |e| e.code()));
        let (offset, ts) = a.unwrap_or((-1, -1));
        if v == 0 {
            let found = usize::from(offset >= 0);
            r.array_len(flex, found);
            if found == 1 {
                r.i64(offset);
            }
        } else {
            r.i64(ts);
            r.i64(offset);
            if v >= 4 {
                r.i32(if offset >= 0 { 0 } else { -1 }); // leader_epoch
            }
        }
    });
    r.tagged_fields(flex);
    Ok(r)
}
