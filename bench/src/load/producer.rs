//! One producer: its own connection to each partition leader, batches per partition,
//! up to `--in-flight` produce requests unanswered.
//!
//! Max-throughput mode builds the next batch as soon as a request slot is free; each
//! record's latency runs from its batch's creation to the acknowledgement. Fixed-rate mode
//! gives record `i` the intended send time `start + i / rate` and measures from that time,
//! whatever delayed the send (a full pipeline, a slow broker, this client): the
//! coordinated-omission correction. The intended time is also what goes into the value
//! for end-to-end latency.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use glommio::sync::Semaphore;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};

use super::args::Keys;
use super::stats::{now_ns, phase, Recorder, Shared};
use super::Plan;
use crate::kafka::records::BatchWriter;
use crate::kafka::{api, partition_for_key, ClientError, Conn};

/// Bytes of random text values are cut from. Small enough to stay in the L1/L2 cache:
/// with 1 MiB, copying each 100-byte value missed the cache (the broker shares it) and
/// perf put memmove at 29% of the client; 64 KiB took the client from 230-290 to
/// 120-175 ns per 100-byte record and the small-record row from 2.9-3.8M to 4.4-5.5M
/// records/s in alternating runs.
const POOL_BYTES: usize = 64 << 10;
/// Records made in one go at a fixed rate before the producer yields.
const RATE_CHUNK: usize = 1024;
/// Batches at least this large travel as their own buffers after the request prefix.
const ZERO_COPY_FROM: usize = 16 << 10;

/// A partition's open batch and the send times of its records.
struct Open {
    writer: BatchWriter,
    /// Creation time (max throughput) or each record's intended time (fixed rate).
    times: Vec<u64>,
    payload: u64,
}

struct Producer {
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    recorder: Rc<RefCell<Recorder>>,
    conns: HashMap<String, Conn>,
    slots: Rc<Semaphore>,
    open: Vec<Open>,
    rng: ChaCha8Rng,
    zipf: Option<Zipf<f64>>,
    pool: Vec<u8>,
    pool_at: usize,
    sticky: usize,
}

/// Runs producer `id` until the run stops, then waits for its requests in flight.
pub async fn run(
    id: usize,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    recorder: Rc<RefCell<Recorder>>,
) -> Result<(), ClientError> {
    let mut rng = ChaCha8Rng::seed_from_u64(0xc0de_0000 + id as u64);
    let pool = (0..POOL_BYTES + plan.args.record_bytes.max)
        .map(|_| rng.gen_range(b'a'..=b'z'))
        .collect();
    let zipf = match plan.args.keys {
        Keys::Zipfian => Some(
            Zipf::new(plan.args.key_space.max(1), plan.args.zipf_exponent)
                .map_err(|e| ClientError::new(format!("--zipf-exponent: {e}")))?,
        ),
        _ => None,
    };
    let mut p = Producer {
        open: (0..plan.partitions.len())
            .map(|_| Open {
                writer: BatchWriter::new(plan.args.compression),
                times: Vec::new(),
                payload: 0,
            })
            .collect(),
        slots: Rc::new(Semaphore::new(plan.args.in_flight.max(1) as u64)),
        conns: plan.connect_leaders().await?,
        sticky: id % plan.partitions.len(),
        plan,
        shared,
        recorder,
        rng,
        zipf,
        pool,
        pool_at: 0,
    };
    p.shared.ready.fetch_add(1, Ordering::AcqRel);
    while p.shared.phase() == phase::SETUP {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    let result = match p.plan.rate_per_producer {
        None => p.max_throughput().await,
        Some(rate) => p.fixed_rate(rate).await,
    };
    // Wait (bounded) for the answers still outstanding.
    let all = p.plan.args.in_flight.max(1) as u64;
    // The semaphore is never closed, so acquiring can only wait, not fail.
    let drained = glommio::timer::timeout(Duration::from_secs(30), async {
        let _ = p.slots.acquire(all).await;
        Ok(())
    })
    .await;
    result?;
    drained.map_err(|_| ClientError::new("produce requests unanswered 30 s after the run"))?;
    Ok(())
}

impl Producer {
    async fn max_throughput(&mut self) -> Result<(), ClientError> {
        while self.shared.phase() < phase::STOP {
            let now = now_ns();
            loop {
                let i = self.next_partition();
                self.push(i, now);
                if self.full(i) {
                    self.send(&[i]).await?;
                    if self.plan.args.keys == Keys::None {
                        self.sticky = (self.sticky + 1) % self.open.len();
                    }
                    break;
                }
            }
            glommio::yield_if_needed().await;
        }
        Ok(())
    }

    async fn fixed_rate(&mut self, rate: f64) -> Result<(), ClientError> {
        let interval = 1e9 / rate;
        let linger = (self.plan.args.linger_ms * 1e6) as u64;
        let start = now_ns();
        let mut sent: u64 = 0;
        while self.shared.phase() < phase::STOP {
            let now = now_ns();
            let mut made = 0;
            loop {
                let due = start + (sent as f64 * interval) as u64;
                if due > now || made == RATE_CHUNK {
                    break;
                }
                let i = self.next_partition();
                self.push(i, due);
                sent += 1;
                made += 1;
                if self.full(i) {
                    self.send(&[i]).await?;
                    if self.plan.args.keys == Keys::None {
                        self.sticky = (self.sticky + 1) % self.open.len();
                    }
                }
            }
            if made == RATE_CHUNK {
                glommio::yield_if_needed().await;
                continue;
            }
            // Caught up: send what lingered long enough, sleep until the next record.
            let oldest = self
                .open
                .iter()
                .filter_map(|o| o.times.first())
                .min()
                .copied();
            let next_due = start + (sent as f64 * interval) as u64;
            let mut wake = next_due;
            if let Some(t) = oldest {
                if t + linger <= now_ns() {
                    let ready: Vec<usize> = (0..self.open.len())
                        .filter(|&i| !self.open[i].times.is_empty())
                        .collect();
                    self.send(&ready).await?;
                } else {
                    wake = wake.min(t + linger);
                }
            }
            let now = now_ns();
            if wake > now {
                glommio::timer::sleep(Duration::from_nanos(wake - now)).await;
            }
        }
        Ok(())
    }

    /// True when partition index `i`'s batch has no room for another record of the
    /// largest size: `--batch-bytes` bounds a batch (as Kafka's batch.size does), so
    /// that batches stay within the broker's max.message.bytes.
    fn full(&self, i: usize) -> bool {
        let largest = self.plan.args.record_bytes.max + 8 + 24;
        self.open[i].writer.len() + largest > self.plan.args.batch_bytes as usize
    }

    fn next_partition(&mut self) -> usize {
        let n = self.open.len();
        match self.plan.args.keys {
            Keys::None => self.sticky,
            Keys::Uniform => {
                let k = self.rng.gen_range(0..self.plan.args.key_space.max(1));
                partition_for_key(&k.to_be_bytes(), n)
            }
            Keys::Zipfian => {
                let k = self
                    .zipf
                    .as_ref()
                    .expect("made for zipfian")
                    .sample(&mut self.rng) as u64
                    - 1;
                partition_for_key(&k.to_be_bytes(), n)
            }
        }
    }

    /// Adds one record to partition index `i`'s batch, sent at `t_ns`.
    fn push(&mut self, i: usize, t_ns: u64) {
        let range = self.plan.args.record_bytes;
        let len = if range.min == range.max {
            range.min
        } else {
            self.rng.gen_range(range.min..=range.max)
        };
        let key = match self.plan.args.keys {
            Keys::None => None,
            // The key that chose the partition is not kept: any key of the partition
            // serves (one is derived from the partition for determinism).
            _ => Some((i as u64).to_be_bytes()),
        };
        let at = self.pool_at;
        self.pool_at = (self.pool_at + 4099) % POOL_BYTES;
        let pool = &self.pool[at..at + len];
        let o = &mut self.open[i];
        o.writer.push(
            (t_ns / 1_000_000) as i64,
            key.as_ref().map(|k| &k[..]),
            pool,
            Some(t_ns),
        );
        o.payload += (len + key.map_or(0, |k| k.len())) as u64;
        if o.times.is_empty() || self.plan.rate_per_producer.is_some() {
            o.times.push(t_ns);
        }
    }

    /// Sends the open batches of partition indexes `which`, one request per leader.
    async fn send(&mut self, which: &[usize]) -> Result<(), ClientError> {
        let mut by_leader: HashMap<&str, Vec<usize>> = HashMap::new();
        for &i in which {
            if !self.open[i].writer.is_empty() {
                let p = self.plan.partitions[i];
                by_leader
                    .entry(self.plan.leaders[&p].as_str())
                    .or_default()
                    .push(i);
            }
        }
        let acks = self.plan.args.acks.wire();
        for (addr, idx) in by_leader {
            let conn = self.conns[addr].clone();
            let capacity: usize = idx
                .iter()
                .map(|&i| self.open[i].writer.len().min(ZERO_COPY_FROM) + 16)
                .sum();
            let (mut e, correlation) =
                api::produce_request(&conn, &self.plan.topic, acks, idx.len(), capacity);
            let (mut records, mut payload, mut batch_bytes) = (0u64, 0u64, 0u64);
            let mut times = Vec::new();
            let mut parts = Vec::new();
            for &i in &idx {
                let o = &mut self.open[i];
                let counted = o.writer.count() as u64;
                records += counted;
                payload += std::mem::take(&mut o.payload);
                let t = std::mem::take(&mut o.times);
                if self.plan.rate_per_producer.is_some() {
                    times.extend(t);
                } else {
                    times.push(t[0]);
                    times.push(counted);
                }
                let b = o.writer.finish()?;
                batch_bytes += b.len() as u64;
                e.i32(self.plan.partitions[i]);
                // Small batches are copied into the frame (one write); large ones follow
                // it as their own buffers, uncopied.
                if b.len() < ZERO_COPY_FROM {
                    e.bytes(Some(&b));
                } else {
                    e.i32(b.len() as i32);
                    parts.push((e.split(), b));
                }
            }
            let frame = e.finish_parts(parts);
            let permit = self
                .slots
                .acquire_static_permit(1)
                .await
                .expect("never closed");
            let fixed_rate = self.plan.rate_per_producer.is_some();
            let shared = self.shared.clone();
            let recorder = self.recorder.clone();
            let done = move |now: u64| {
                shared.acked_records.fetch_add(records, Ordering::Relaxed);
                shared.acked_bytes.fetch_add(payload, Ordering::Relaxed);
                shared
                    .acked_batch_bytes
                    .fetch_add(batch_bytes, Ordering::Relaxed);
                shared.requests.fetch_add(1, Ordering::Relaxed);
                if shared.phase() == phase::MEASURE {
                    let mut r = recorder.borrow_mut();
                    if fixed_rate {
                        for t in &times {
                            r.produce_ns(now.saturating_sub(*t), 1);
                        }
                    } else {
                        for pair in times.chunks_exact(2) {
                            r.produce_ns(now.saturating_sub(pair[0]), pair[1]);
                        }
                    }
                }
            };
            if acks == 0 {
                conn.send_only(&frame).await?;
                done(now_ns());
                drop(permit);
                continue;
            }
            let pending = conn.send_parts(&frame, correlation).await?;
            let shared = self.shared.clone();
            glommio::spawn_local(async move {
                let _permit = permit;
                match pending.wait().await.and_then(api::produce_response) {
                    Ok(None) => done(now_ns()),
                    Ok(Some(code)) => {
                        shared.produce_errors.fetch_add(1, Ordering::Relaxed);
                        shared.fail(format!("produce: the broker answered error code {code}"));
                    }
                    Err(e) => shared.fail(format!("produce: {e}")),
                }
            })
            .detach();
        }
        Ok(())
    }
}
