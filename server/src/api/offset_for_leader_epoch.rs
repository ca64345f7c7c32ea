//! OffsetForLeaderEpoch (key 23), versions 0-4; flexible from 4. For each partition:
//! the largest leader epoch at or below the one asked for, and the offset where the
//! next epoch starts (the log end offset for the latest). librdkafka sends v2 whenever
//! it knows an epoch, to detect log truncation.

use super::{per_partition, read_topics, write_topics, Request};
use crate::broker::router::{Op, Reply};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::Response;

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let (v, flex) = (req.version(), req.flexible());
    let mut rd = Reader::new(body);
    if v >= 3 {
        let _replica_id = rd.i32()?;
    }
    let topics = read_topics(&mut rd, flex, 8, |rd| {
        let index = rd.i32()?;
        if v >= 2 {
            let _current_leader_epoch = rd.i32()?;
        }
        Ok((index, rd.i32()?))
    })?;
    rd.tagged_fields(flex)?;

    let answers = per_partition(req, &topics, Op::EpochEndOffset, |r| match r {
        Reply::EpochEndOffset(a) => Some(a),
        _ => None,
    })
    .await;

    let mut r = req.response();
    if v >= 2 {
        r.i32(0); // throttle_time_ms
    }
    write_topics(&mut r, flex, &topics, answers, |r, index, a| {
        r.i16(a.err().map_or(0, |e| e.code()));
        r.i32(index);
        let (epoch, end) = a.unwrap_or((-1, -1));
        if v >= 1 {
            r.i32(epoch);
        }
        r.i64(end);
    });
    r.tagged_fields(flex);
    Ok(r)
}
