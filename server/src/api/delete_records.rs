//! DeleteRecords (key 21), versions 0-2; flexible from 2. Moves each partition's log
//! start offset (the low watermark) to the offset given (-1: the high watermark);
//! durable before the answer. Offsets beyond the high watermark are OFFSET_OUT_OF_RANGE.

use super::{per_partition, read_topics, write_topics, Request};
use crate::broker::router::{Op, Reply};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::Response;

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let flex = req.flexible();
    let mut rd = Reader::new(body);
    let topics = read_topics(&mut rd, flex, 12, |rd| Ok((rd.i32()?, rd.i64()?)))?;
    let _timeout_ms = rd.i32()?;
    rd.tagged_fields(flex)?;

    let answers = per_partition(req, &topics, Op::DeleteRecords, |r| match r {
        Reply::DeleteRecords(a) => Some(a),
        _ => None,
    })
    .await;

    let mut r = req.response();
    r.i32(0); // throttle_time_ms
    write_topics(&mut r, flex, &topics, answers, |r, index, a| {
        r.i32(index);
        r.i64(*a.as_ref().unwrap_or(&-1));
        r.i16(a.err().map_or(0, |e| e.code()));
    });
    r.tagged_fields(flex);
    Ok(r)
}
