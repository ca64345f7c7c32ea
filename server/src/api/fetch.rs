//! Fetch (key 1), versions 4-12; flexible from 12.
//!
//! Each partition is read on its owning shard (stored batches, byte for byte, from the
//! tail cache or the segment files) and the batches are attached to the response as
//! they are. Limits: `partition_max_bytes` per partition and `max_bytes` in total, but
//! the first batch of the first partition with data is returned whole whatever its
//! size (KIP-74), and a later partition whose first batch does not fit returns nothing.
//!
//! Long poll: while fewer than `min_bytes` are available and `max_wait_ms` has not
//! passed, the request waits on the partitions' append notifications (on every owning
//! shard at once) and reads again. read_committed is served with the last stable offset
//! equal to the high watermark: there are no transactions. Fetch sessions are declined
//! (session id 0), so every fetch is a full fetch.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::{read_array, Request};
use crate::broker::budget::Held;
use crate::broker::router::{first_of, Op, ReadItem, ReadResult, Reply, TopicPartition};
use crate::broker::shard::BoxFuture;
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, Response};

/// Longest wait honoured, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

/// Most bytes of records in one response, whatever the client asks (Kafka's
/// `fetch.max.bytes` default): keeps every response far below the 2 GiB a frame size
/// can express, and bounds the memory one fetch pins.
pub const FETCH_BYTES_MAX: usize = 57_671_680;

struct Topic {
    name: String,
    partitions: Vec<(i32, i64, i32)>, // (index, fetch_offset, partition_max_bytes)
}

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let (v, flex) = (req.version(), req.flexible());
    let mut rd = Reader::new(body);
    let _replica_id = rd.i32()?;
    let max_wait_ms = rd.i32()?;
    let min_bytes = rd.i32()?;
    let max_bytes = rd.i32()?;
    let _isolation_level = rd.i8()?;
    if v >= 7 {
        let _session_id = rd.i32()?;
        let _session_epoch = rd.i32()?;
    }
    let topics = read_array(&mut rd, flex, 2, |rd| {
        let name = rd.string(flex)?.to_string();
        let partitions = read_array(rd, flex, 16, |rd| {
            let index = rd.i32()?;
            if v >= 9 {
                let _current_leader_epoch = rd.i32()?;
            }
            let offset = rd.i64()?;
            if v >= 12 {
                let _last_fetched_epoch = rd.i32()?;
            }
            if v >= 5 {
                let _log_start_offset = rd.i64()?;
            }
            let max = rd.i32()?;
            rd.tagged_fields(flex)?;
            Ok((index, offset, max))
        })?;
        rd.tagged_fields(flex)?;
        Ok(Topic { name, partitions })
    })?;
    if v >= 7 {
        // Forgotten topics only matter to sessions, which are declined.
        read_array(&mut rd, flex, 2, |rd| {
            rd.string(flex)?;
            read_array(rd, flex, 4, |rd| rd.i32())?;
            rd.tagged_fields(flex)
        })?;
    }
    if v >= 11 {
        let _rack_id = rd.string(flex)?;
    }
    rd.tagged_fields(flex)?;

    let max_bytes = (max_bytes.max(0) as usize).min(FETCH_BYTES_MAX);
    let items: Vec<(TopicPartition, ReadItem)> = topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.0 >= 0)
                .map(|&(index, offset, pmax)| {
                    let tp = TopicPartition {
                        topic: t.name.clone(),
                        partition: index as u32,
                    };
                    let item = ReadItem {
                        offset,
                        max_bytes: (pmax.max(0) as usize).min(max_bytes.max(1)),
                    };
                    (tp, item)
                })
        })
        .collect();

    let deadline =
        Instant::now() + Duration::from_millis(max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let (mut results, mut allowed, mut held) = read_within_budget(req, &items, max_bytes).await;
    loop {
        let available = held.bytes();
        let errors = results.iter().any(|r| r.error != ErrorCode::None);
        let now = Instant::now();
        if available >= (min_bytes.max(1) as usize).min(allowed)
            || errors
            || items.is_empty()
            || now >= deadline
        {
            break;
        }
        wait_for_data(req, &items, &results, deadline - now).await;
        drop((results, held));
        (results, allowed, held) = read_within_budget(req, &items, max_bytes).await;
    }
    let partition_limits: Vec<usize> = items.iter().map(|(_, i)| i.max_bytes).collect();
    limit_total(&mut results, &partition_limits, allowed);
    // The connection charges the answer's bytes from here on (`connection.rs`), with no
    // wait in between.
    drop(held);

    let mut r = req.response();
    r.i32(0); // throttle_time_ms
    if v >= 7 {
        r.i16(0);
        r.i32(0); // session_id: sessions declined
    }
    r.array_len(flex, topics.len());
    let mut results = results.into_iter();
    for t in &topics {
        r.string(flex, &t.name);
        r.array_len(flex, t.partitions.len());
        for &(index, _, _) in &t.partitions {
            let res = if index < 0 {
                ReadResult::error(ErrorCode::UnknownTopicOrPartition)
            } else {
                results.next().expect("one result per partition")
            };
            r.i32(index);
            r.i16(res.error.code());
            r.i64(res.high_watermark);
            r.i64(res.high_watermark); // last_stable_offset
            if v >= 5 {
                r.i64(res.log_start_offset);
            }
            r.array_len(flex, 0); // aborted_transactions
            if v >= 11 {
                r.i32(-1); // preferred_read_replica
            }
            let total: usize = res.batches.iter().map(|b| b.len()).sum();
            if total > 0 {
                crate::metrics::fetched(&t.name, index as u32, &res.batches);
            }
            r.bytes_len(flex, total);
            for b in res.batches {
                r.attach(b);
            }
            r.tagged_fields(flex);
        }
        r.tagged_fields(flex);
    }
    r.tagged_fields(flex);
    Ok(r)
}

/// Reads within what the shard's response budget has left ([`Budget`]): while slow
/// readers hold answers, fetches shrink, down to their first batch (KIP-74), instead of
/// memory growing. Each owning shard reads up to the limit (the total is trimmed after),
/// so the limit is reserved once per owning shard before the read starts, and fetches
/// reading at the same time do not each count on the same room; once the read is done
/// the reservation becomes a charge of the bytes read, held while the fetch waits for
/// more. Past the reservation a read may return first batches whole (KIP-74): up to
/// `WAVE_PARTITIONS_MAX` of them per shard, charged once read. Under pressure the limit
/// can fall below `min_bytes`; the fetch then answers with what it read rather than
/// waiting for bytes it may not hold.
/// Returns the results, the limit they were read with (at least 1), and the charge.
///
/// [`Budget`]: crate::broker::budget::Budget
async fn read_within_budget(
    req: &Request<'_>,
    items: &[(TopicPartition, ReadItem)],
    max_bytes: usize,
) -> (Vec<ReadResult>, usize, Held) {
    let budget = &req.shard.response_budget;
    let owners = items
        .iter()
        .map(|(tp, _)| req.shard.owner(tp))
        .collect::<BTreeSet<usize>>()
        .len()
        .max(1);
    let allowed = max_bytes.min(budget.available() / owners).max(1);
    let reserved = budget.charge(allowed * owners);
    let results = if allowed < max_bytes {
        let items: Vec<(TopicPartition, ReadItem)> = items
            .iter()
            .map(|(tp, item)| {
                let max_bytes = item.max_bytes.min(allowed);
                (tp.clone(), ReadItem { max_bytes, ..*item })
            })
            .collect();
        read_all(req, &items, allowed).await
    } else {
        read_all(req, items, allowed).await
    };
    let read = results
        .iter()
        .flat_map(|r| r.batches.iter())
        .map(|b| b.len())
        .sum();
    let held = budget.charge(read);
    drop(reserved);
    (results, allowed, held)
}

async fn read_all(
    req: &Request<'_>,
    items: &[(TopicPartition, ReadItem)],
    max_bytes: usize,
) -> Vec<ReadResult> {
    let mut out: Vec<Option<ReadResult>> = vec![None; items.len()];
    let replies = req.fan_out_data(items.to_vec(), |part| Op::Read {
        items: part,
        budget: max_bytes,
    });
    for (indexes, reply) in replies.await {
        let results = match reply {
            Reply::Read(r) => r,
            _ => indexes
                .iter()
                .map(|_| ReadResult::error(ErrorCode::NotLeaderOrFollower))
                .collect(),
        };
        for (i, res) in indexes.into_iter().zip(results) {
            out[i] = Some(res);
        }
    }
    out.into_iter()
        .map(|r| r.expect("every item answered"))
        .collect()
}

/// Waits until any partition gets data past what was read, or `timeout`.
async fn wait_for_data(
    req: &Request<'_>,
    items: &[(TopicPartition, ReadItem)],
    results: &[ReadResult],
    timeout: Duration,
) {
    // Wait for the high watermark to pass what was readable (or the fetch offset, if
    // it is beyond): `Op::Wait` resolves when a watermark exceeds its offset.
    let waits: Vec<(TopicPartition, i64)> = items
        .iter()
        .zip(results)
        .map(|((tp, item), res)| (tp.clone(), item.offset.max(res.high_watermark)))
        .collect();
    let mut calls: Vec<BoxFuture<'_, ()>> = Vec::new();
    for (owner, (_, part)) in req.shard.split_by_owner(waits) {
        calls.push(Box::pin(async move {
            req.shard.call(owner, Op::Wait(part, timeout)).await;
        }));
    }
    calls.push(Box::pin(glommio::timer::sleep(timeout)));
    first_of(calls).await;
}

/// Applies the byte limits in request order, as Kafka does (KIP-74): the first batch
/// of the response is returned whole whatever its size; after it, a batch is returned
/// only if it fits both its partition's limit and what is left of `max_bytes`.
fn limit_total(results: &mut [ReadResult], partition_limits: &[usize], max_bytes: usize) {
    let mut used = 0usize;
    for (res, &limit) in results.iter_mut().zip(partition_limits) {
        let mut keep = 0;
        let mut in_partition = 0;
        for b in &res.batches {
            let fits = used + b.len() <= max_bytes && in_partition + b.len() <= limit;
            if (used == 0 && keep == 0) || fits {
                used += b.len();
                in_partition += b.len();
            } else {
                break;
            }
            keep += 1;
        }
        res.batches.truncate(keep);
        if used >= max_bytes && keep == 0 {
            res.batches.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn res(sizes: &[usize]) -> ReadResult {
        ReadResult {
            error: ErrorCode::None,
            high_watermark: 0,
            log_start_offset: 0,
            batches: sizes.iter().map(|&n| Bytes::from(vec![0u8; n])).collect(),
        }
    }

    #[test]
    fn first_batch_whole_then_total_limit() {
        let mut r = vec![res(&[]), res(&[500, 10]), res(&[20]), res(&[5])];
        limit_total(&mut r, &[1000; 4], 100);
        let kept: Vec<usize> = r.iter().map(|x| x.batches.len()).collect();
        assert_eq!(kept, vec![0, 1, 0, 0]);
        let mut r = vec![res(&[30, 30]), res(&[30, 30])];
        limit_total(&mut r, &[1000; 2], 100);
        let kept: Vec<usize> = r.iter().map(|x| x.batches.len()).collect();
        assert_eq!(kept, vec![2, 1]);
        // A later partition whose first batch exceeds its own limit returns nothing.
        let mut r = vec![res(&[10]), res(&[50]), res(&[20, 20])];
        limit_total(&mut r, &[100, 40, 30], 1000);
        let kept: Vec<usize> = r.iter().map(|x| x.batches.len()).collect();
        assert_eq!(kept, vec![1, 0, 1]);
    }
}
