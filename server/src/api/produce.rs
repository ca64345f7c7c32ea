//! Produce (key 0), versions 0-9; flexible from 9. Versions 0-2 (message formats 0
//! and 1) are advertised for old librdkafka's feature detection and answered with
//! UNSUPPORTED_VERSION per partition, as Kafka 4 does.
//!
//! The record bytes of each partition are carved out of the request frame without a
//! copy (`BytesMut::split_to`), sent to the owning shard, validated and appended there
//! in place (offsets and epoch assigned in the client's bytes). acks=0 sends no
//! response; acks=1 answers after the append; acks=-1 after the group-commit flush.
//!
//! Two phases: the appends run while the connection waits (so the requests of one
//! connection are appended in the order they were sent), and for acks=-1 the wait for
//! the flush runs after the connection has moved on to its next request
//! ([`Handled::Later`]): pipelined requests share fdatasyncs instead of each paying
//! for one.

use std::ops::Range;

use bytes::BytesMut;

use super::{read_array, Handled, Request};
use crate::broker::partition::Appended;
use crate::broker::router::{Op, Reply, TopicPartition};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, KafkaError, Response};

/// Attribute value of zstd in a batch (compression bits 0-2).
const ZSTD: i16 = 4;
/// First Produce version that may carry zstd batches.
const ZSTD_MIN_VERSION: i16 = 7;

struct Topic {
    name: String,
    partitions: Vec<(i32, Option<Range<usize>>)>,
}

/// Appends the request's batches; the response comes now (acks 0 and 1: none for 0)
/// or after the flush (acks=-1).
pub async fn handle(req: &Request<'_>, body: BytesMut) -> DecodeResult<Handled> {
    let (v, flex) = (req.version(), req.flexible());
    let mut rd = Reader::new(&body);
    if v >= 3 {
        let _transactional_id = rd.nullable_string(flex)?;
    }
    let acks = rd.i16()?;
    let _timeout_ms = rd.i32()?;
    let topics = read_array(&mut rd, flex, 2, |rd| {
        let name = rd.string(flex)?.to_string();
        let partitions = read_array(rd, flex, 4, |rd| {
            let index = rd.i32()?;
            let records = rd.nullable_bytes_range(flex)?;
            rd.tagged_fields(flex)?;
            Ok((index, records))
        })?;
        rd.tagged_fields(flex)?;
        Ok(Topic { name, partitions })
    })?;
    rd.tagged_fields(flex)?;

    // Every partition's answer, in request order; None = still to be appended.
    let mut results: Vec<Option<Result<Appended, KafkaError>>> = Vec::new();
    let mut to_append: Vec<(TopicPartition, BytesMut)> = Vec::new();
    let mut slots: Vec<usize> = Vec::new();
    let mut tps: Vec<TopicPartition> = Vec::new();
    let mut rest = body;
    let mut consumed = 0;
    for t in &topics {
        for (index, records) in &t.partitions {
            let early = if v < 3 {
                Some(ErrorCode::UnsupportedVersion)
            } else if !matches!(acks, -1..=1) {
                Some(ErrorCode::InvalidRequiredAcks)
            } else if *index < 0 {
                Some(ErrorCode::UnknownTopicOrPartition)
            } else {
                None
            };
            let Some(range) = records.clone().filter(|_| early.is_none()) else {
                let code = early.unwrap_or(ErrorCode::InvalidRecord);
                results.push(Some(Err(code.into())));
                continue;
            };
            let _ = rest.split_to(range.start - consumed);
            let batch = rest.split_to(range.len());
            consumed = range.end;
            if v < ZSTD_MIN_VERSION && compression(&batch) == Some(ZSTD) {
                results.push(Some(Err(ErrorCode::UnsupportedCompressionType.into())));
                continue;
            }
            let tp = TopicPartition {
                topic: t.name.clone(),
                partition: *index as u32,
            };
            slots.push(results.len());
            results.push(None);
            tps.push(tp.clone());
            to_append.push((tp, batch));
        }
    }

    let replies = req
        .fan_out_data(to_append, |items| Op::Produce {
            flush_in_background: acks != -1,
            items,
        })
        .await;
    let mut appended: Vec<(usize, TopicPartition)> = Vec::new();
    for (indexes, reply) in replies {
        let answers = match reply {
            Reply::Produce(a) => a,
            _ => indexes
                .iter()
                .map(|_| Err(KafkaError::from(ErrorCode::NotLeaderOrFollower)))
                .collect(),
        };
        for (i, a) in indexes.into_iter().zip(answers) {
            if a.is_ok() {
                appended.push((slots[i], tps[i].clone()));
            }
            results[slots[i]] = Some(a);
        }
    }
    match acks {
        0 => Ok(Handled::Now(None)),
        1 => Ok(Handled::Now(Some(encode(
            req.response(),
            v,
            flex,
            &topics,
            results,
        )))),
        _ => {
            let shard = req.shard.clone();
            let response = req.response();
            Ok(Handled::Later(Box::pin(async move {
                wait_durable(&shard, appended, &mut results).await;
                Some(encode(response, v, flex, &topics, results))
            })))
        }
    }
}

/// Waits for the flushes covering the appended batches; a failed flush turns the
/// partition's answer into its error.
async fn wait_durable(
    shard: &std::rc::Rc<crate::broker::shard::Shard>,
    appended: Vec<(usize, TopicPartition)>,
    results: &mut [Option<Result<Appended, KafkaError>>],
) {
    let (slots, tps): (Vec<usize>, Vec<(TopicPartition, ())>) = appended
        .into_iter()
        .map(|(slot, tp)| (slot, (tp, ())))
        .unzip();
    let replies = shard
        .fan_out(tps, |items| {
            Op::Flush(items.into_iter().map(|(tp, ())| tp).collect())
        })
        .await;
    for (indexes, reply) in replies {
        let flushed = match reply {
            Reply::Flushed(f) => f,
            _ => indexes
                .iter()
                .map(|_| Err(KafkaError::from(ErrorCode::NotLeaderOrFollower)))
                .collect(),
        };
        for (i, f) in indexes.into_iter().zip(flushed) {
            if let Err(e) = f {
                results[slots[i]] = Some(Err(e));
            }
        }
    }
}

fn encode(
    mut r: Response,
    v: i16,
    flex: bool,
    topics: &[Topic],
    results: Vec<Option<Result<Appended, KafkaError>>>,
) -> Response {
    r.array_len(flex, topics.len());
    let mut results = results.into_iter();
    for t in topics {
        r.string(flex, &t.name);
        r.array_len(flex, t.partitions.len());
        for (index, _) in &t.partitions {
            let res = results.next().flatten().expect("one result per partition");
            encode_partition(&mut r, v, flex, *index, &res);
        }
        r.tagged_fields(flex);
    }
    if v >= 1 {
        r.i32(0); // throttle_time_ms
    }
    r.tagged_fields(flex);
    r
}

fn encode_partition(
    r: &mut Response,
    v: i16,
    flex: bool,
    index: i32,
    res: &Result<Appended, KafkaError>,
) {
    r.i32(index);
    match res {
        Ok(a) => {
            r.i16(0);
            r.i64(a.base_offset as i64);
            if v >= 2 {
                r.i64(a.log_append_time_ms);
            }
            if v >= 5 {
                r.i64(a.log_start_offset as i64);
            }
        }
        Err(e) => {
            r.i16(e.code.code());
            r.i64(-1);
            if v >= 2 {
                r.i64(-1);
            }
            if v >= 5 {
                r.i64(-1);
            }
        }
    }
    if v >= 8 {
        r.array_len(flex, 0); // record_errors
        let msg = res.as_ref().err().and_then(|e| e.message.as_deref());
        r.nullable_string(flex, msg);
    }
    r.tagged_fields(flex);
}

/// The compression codec of a v2 batch, if it is long enough to have one.
fn compression(batch: &[u8]) -> Option<i16> {
    let at = corelog_engine::batch::ATTRIBUTES_OFFSET;
    let b = batch.get(at..at + 2)?;
    Some(i16::from_be_bytes([b[0], b[1]]) & corelog_engine::batch::attributes::COMPRESSION_MASK)
}
