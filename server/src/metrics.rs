//! Metrics: what each shard counts, and `GET /metrics` in Prometheus's text format
//! (0.0.4) on a thread of its own (`metrics_listen`, `--metrics-listen`).
//!
//! Off the data path: a shard counts in thread-local cells on its own core (no atomics,
//! no locks: [`request_done`] and the like are a few adds), and once a second a task
//! on its background queue copies what it counts, with its partitions' watermarks and
//! log statistics, into a [`ShardSnapshot`] in the shared [`Registry`] (one short lock).
//! A scrape renders the latest snapshots on the HTTP thread and never waits for a
//! shard, so its figures are up to [`PUBLISH_INTERVAL`] old.
//!
//! Counters start at zero when the broker starts (a partition's when it opens); the
//! names and labels are listed by `render` and in the README.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use corelog_engine::batch::RecordBatch;
use corelog_engine::histogram::{Histogram, BOUNDS_NS};
use corelog_engine::LogStats;

use crate::broker::memory;

use crate::protocol::APIS;

/// How often a shard publishes its snapshot.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);
/// How long the HTTP thread waits for a scraper to send its request or read the answer.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest HTTP request head read; longer ones get 431.
const HTTP_HEAD_MAX: usize = 8 << 10;

/// One API's counts on one shard.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiCounts {
    /// Requests handled (answered, or being answered).
    pub requests: u64,
    /// Requests whose version is not served or whose body did not decode, which closes
    /// their connection (a header that does not decode is not counted: its API is not
    /// known for sure).
    pub failed: u64,
    /// From the request read whole to its answer ready (for an acks=all produce: to
    /// its batches being durable).
    pub latency: Histogram,
}

/// What a shard counts on its own thread.
#[derive(Debug, Default)]
struct Local {
    /// By API key.
    apis: RefCell<Vec<ApiCounts>>,
    produce_durable: RefCell<Histogram>,
    accepted: Cell<u64>,
    refused: Cell<u64>,
    mesh_sent: Cell<u64>,
    mesh_received: Cell<u64>,
    rebalances: Cell<u64>,
    /// Records and bytes sent in fetch answers, by topic and partition.
    fetched: RefCell<HashMap<String, Vec<(u64, u64)>>>,
}

thread_local! {
    static LOCAL: Local = Local::default();
}

fn bump(c: &Cell<u64>) {
    c.set(c.get().wrapping_add(1));
}

/// Counts a request of `api_key` done in `took` (`failed`: it closed its connection).
pub fn request_done(api_key: i16, took: Duration, failed: bool) {
    let Ok(i) = usize::try_from(api_key) else {
        return;
    };
    LOCAL.with(|l| {
        let mut apis = l.apis.borrow_mut();
        if apis.len() <= i {
            apis.resize(i + 1, ApiCounts::default());
        }
        let a = &mut apis[i];
        a.requests += 1;
        a.failed += u64::from(failed);
        a.latency.record(took);
    });
}

/// Counts an acks=all produce whose batches became durable `took` after it was read.
pub fn produce_durable(took: Duration) {
    LOCAL.with(|l| l.produce_durable.borrow_mut().record(took));
}

/// Counts a connection accepted.
pub fn connection_accepted() {
    LOCAL.with(|l| bump(&l.accepted));
}

/// Counts a connection refused at accept (`connections_max`, `connections_max_per_ip`).
pub fn connection_refused() {
    LOCAL.with(|l| bump(&l.refused));
}

/// Counts a message sent to another shard.
pub fn mesh_sent() {
    LOCAL.with(|l| bump(&l.mesh_sent));
}

/// Counts a message received from another shard.
pub fn mesh_received() {
    LOCAL.with(|l| bump(&l.mesh_received));
}

/// Counts a group rebalance completed into a new generation with members.
pub fn rebalance() {
    LOCAL.with(|l| bump(&l.rebalances));
}

/// Counts the batches a fetch answer sends for `topic`-`partition` (whole batches, in
/// one or more chunks).
pub fn fetched(topic: &str, partition: u32, chunks: &[Bytes]) {
    let mut records = 0u64;
    let mut bytes = 0u64;
    for chunk in chunks {
        bytes += chunk.len() as u64;
        let mut at = 0;
        while let Some(b) = RecordBatch::from_prefix(&chunk[at..]) {
            records += b.records_count().max(0) as u64;
            at += b.len();
        }
    }
    LOCAL.with(|l| {
        let mut fetched = l.fetched.borrow_mut();
        if !fetched.contains_key(topic) {
            fetched.insert(topic.to_string(), Vec::new());
        }
        let per_partition = fetched.get_mut(topic).expect("inserted above");
        let i = partition as usize;
        if per_partition.len() <= i {
            per_partition.resize(i + 1, (0, 0));
        }
        per_partition[i].0 += records;
        per_partition[i].1 += bytes;
    });
}

/// One partition's figures.
#[derive(Debug, Clone, Default)]
pub struct PartitionSnapshot {
    /// Topic.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Log start offset.
    pub log_start: u64,
    /// High watermark.
    pub high_watermark: u64,
    /// Log end offset.
    pub log_end: u64,
    /// Records and bytes appended by produces.
    pub records_in: u64,
    /// See `records_in`.
    pub bytes_in: u64,
    /// The log's counters (fdatasyncs, group commit, rolls, deletions).
    pub log: LogStats,
}

/// One shard's figures, as published.
#[derive(Debug, Clone, Default)]
pub struct ShardSnapshot {
    /// By API key, the APIs with requests.
    pub apis: Vec<(i16, ApiCounts)>,
    /// acks=all produces, from read to durable.
    pub produce_durable: Histogram,
    /// Connections open, accepted and refused.
    pub connections: usize,
    /// See `connections`.
    pub accepted: u64,
    /// See `connections`.
    pub refused: u64,
    /// Messages to and from other shards.
    pub mesh_sent: u64,
    /// See `mesh_sent`.
    pub mesh_received: u64,
    /// Groups this shard coordinates, and rebalances completed.
    pub groups: usize,
    /// See `groups`.
    pub rebalances: u64,
    /// Tail cache: bytes held, reads served, reads that went to disk.
    pub cache_bytes: usize,
    /// See `cache_bytes`.
    pub cache_hits: u64,
    /// See `cache_bytes`.
    pub cache_misses: u64,
    /// Bytes of requests and answers in flight (the shard budgets), and their limits.
    pub request_bytes: usize,
    /// See `request_bytes`.
    pub response_bytes: usize,
    /// See `request_bytes`.
    pub request_bytes_max: usize,
    /// See `request_bytes`.
    pub response_bytes_max: usize,
    /// CPU time each task queue ran, by queue name, since start.
    pub queue_runtime: Vec<(&'static str, Duration)>,
    /// Time since the shard's executor started, to compare `queue_runtime` with.
    pub uptime: Duration,
    /// Owned partitions, offsets partitions excluded.
    pub partitions: Vec<PartitionSnapshot>,
    /// The counters of the owned offsets logs (`__consumer_offsets`).
    pub offsets_logs: Vec<LogStats>,
    /// Records and bytes this shard's fetch answers sent: (topic, partition, records,
    /// bytes), sorted.
    pub fetched: Vec<(String, u32, u64, u64)>,
}

impl ShardSnapshot {
    /// Copies the thread-local counters of the calling shard into `self`.
    pub fn fill_local(&mut self) {
        LOCAL.with(|l| {
            self.apis = l
                .apis
                .borrow()
                .iter()
                .enumerate()
                .filter(|(_, a)| a.requests > 0)
                .map(|(k, a)| (k as i16, *a))
                .collect();
            self.produce_durable = *l.produce_durable.borrow();
            self.accepted = l.accepted.get();
            self.refused = l.refused.get();
            self.mesh_sent = l.mesh_sent.get();
            self.mesh_received = l.mesh_received.get();
            self.rebalances = l.rebalances.get();
            let mut fetched: Vec<(String, u32, u64, u64)> = l
                .fetched
                .borrow()
                .iter()
                .flat_map(|(t, ps)| {
                    ps.iter()
                        .enumerate()
                        .filter(|(_, c)| c.1 > 0)
                        .map(move |(p, c)| (t.clone(), p as u32, c.0, c.1))
                })
                .collect();
            fetched.sort();
            self.fetched = fetched;
        });
    }
}

/// The latest snapshot of every shard, shared with the HTTP thread.
#[derive(Debug)]
pub struct Registry {
    shards: Mutex<Vec<Option<ShardSnapshot>>>,
}

impl Registry {
    /// A registry for `shards` shards, none published yet.
    pub fn new(shards: usize) -> Arc<Registry> {
        Arc::new(Registry {
            shards: Mutex::new(vec![None; shards]),
        })
    }

    /// Replaces shard `id`'s snapshot.
    pub fn publish(&self, id: usize, snapshot: ShardSnapshot) {
        let mut shards = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        shards[id] = Some(snapshot);
    }

    /// The Prometheus text exposition of every published snapshot.
    pub fn render(&self) -> String {
        let shards = self
            .shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        render(&shards)
    }
}

fn api_name(key: i16) -> String {
    APIS.iter()
        .find(|s| s.key as i16 == key)
        .map_or_else(|| format!("key{key}"), |s| format!("{:?}", s.key))
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }

    fn histogram(&mut self, name: &str, labels: &str, h: &Histogram) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, n) in BOUNDS_NS.iter().zip(h.cumulative()) {
            let le = *bound as f64 / 1e9;
            let _ = writeln!(self.0, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}");
        }
        let _ = writeln!(
            self.0,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            h.count
        );
        self.sample(&format!("{name}_sum"), labels, h.sum_ns as f64 / 1e9);
        self.sample(&format!("{name}_count"), labels, h.count);
    }
}

/// Renders snapshots (a shard not yet published is left out).
fn render(shards: &[Option<ShardSnapshot>]) -> String {
    let published: Vec<(usize, &ShardSnapshot)> = shards
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
        .collect();
    let mut o = Out(String::with_capacity(64 << 10));
    type Value = fn(&ShardSnapshot) -> f64;
    let per_shard: [(&str, &str, &str, Value); 15] = [
        (
            "corelog_connections",
            "gauge",
            "Client connections open.",
            |s| s.connections as f64,
        ),
        (
            "corelog_connections_accepted_total",
            "counter",
            "Client connections accepted.",
            |s| s.accepted as f64,
        ),
        (
            "corelog_connections_refused_total",
            "counter",
            "Connections refused at accept (connections_max, connections_max_per_ip).",
            |s| s.refused as f64,
        ),
        (
            "corelog_mesh_messages_sent_total",
            "counter",
            "Messages sent to other shards (requests and replies).",
            |s| s.mesh_sent as f64,
        ),
        (
            "corelog_mesh_messages_received_total",
            "counter",
            "Messages received from other shards.",
            |s| s.mesh_received as f64,
        ),
        (
            "corelog_groups",
            "gauge",
            "Consumer groups this shard coordinates.",
            |s| s.groups as f64,
        ),
        (
            "corelog_group_rebalances_total",
            "counter",
            "Rebalances completed into a new generation with members.",
            |s| s.rebalances as f64,
        ),
        (
            "corelog_tail_cache_bytes",
            "gauge",
            "Bytes of recent batches the tail cache holds.",
            |s| s.cache_bytes as f64,
        ),
        (
            "corelog_tail_cache_hits_total",
            "counter",
            "Reads served from the tail cache.",
            |s| s.cache_hits as f64,
        ),
        (
            "corelog_tail_cache_misses_total",
            "counter",
            "Reads that went to disk.",
            |s| s.cache_misses as f64,
        ),
        (
            "corelog_request_bytes_in_flight",
            "gauge",
            "Bytes of requests being read or handled (shard_request_bytes_in_flight_max).",
            |s| s.request_bytes as f64,
        ),
        (
            "corelog_request_bytes_in_flight_max",
            "gauge",
            "shard_request_bytes_in_flight_max.",
            |s| s.request_bytes_max as f64,
        ),
        (
            "corelog_response_bytes_in_flight",
            "gauge",
            "Bytes of answers being written (shard_response_bytes_in_flight_max).",
            |s| s.response_bytes as f64,
        ),
        (
            "corelog_response_bytes_in_flight_max",
            "gauge",
            "shard_response_bytes_in_flight_max.",
            |s| s.response_bytes_max as f64,
        ),
        (
            "corelog_shard_uptime_seconds",
            "counter",
            "Seconds since the shard's executor started (for task queue utilisation).",
            |s| s.uptime.as_secs_f64(),
        ),
    ];
    for (name, kind, help, value) in per_shard {
        o.family(name, kind, help);
        for (id, s) in &published {
            o.sample(name, &format!("shard=\"{id}\""), value(s));
        }
    }

    o.family(
        "corelog_task_queue_runtime_seconds_total",
        "counter",
        "CPU time a shard's task queue ran (its rate is the queue's utilisation of the core).",
    );
    for (id, s) in &published {
        for (queue, t) in &s.queue_runtime {
            o.sample(
                "corelog_task_queue_runtime_seconds_total",
                &format!("shard=\"{id}\",queue=\"{queue}\""),
                t.as_secs_f64(),
            );
        }
    }

    type ApiValue = fn(&ApiCounts) -> u64;
    let per_api: [(&str, &str, ApiValue); 2] = [
        ("corelog_requests_total", "Requests handled, by API.", |a| a.requests),
        (
            "corelog_requests_failed_total",
            "Requests of an unserved version or whose body did not decode (their connection is closed).",
            |a| a.failed,
        ),
    ];
    for (name, help, value) in per_api {
        o.family(name, "counter", help);
        for (id, s) in &published {
            for (key, a) in &s.apis {
                let labels = format!("shard=\"{id}\",api=\"{}\"", api_name(*key));
                o.sample(name, &labels, value(a));
            }
        }
    }
    o.family(
        "corelog_request_duration_seconds",
        "histogram",
        "From a request read whole to its answer ready (acks=all produce: durable), by API.",
    );
    for (id, s) in &published {
        for (key, a) in &s.apis {
            let labels = format!("shard=\"{id}\",api=\"{}\"", api_name(*key));
            o.histogram("corelog_request_duration_seconds", &labels, &a.latency);
        }
    }
    o.family(
        "corelog_produce_durable_seconds",
        "histogram",
        "acks=all produces: from the request read whole to its batches durable.",
    );
    for (id, s) in &published {
        o.histogram(
            "corelog_produce_durable_seconds",
            &format!("shard=\"{id}\""),
            &s.produce_durable,
        );
    }

    // Storage: the shard's partitions' logs added up.
    let mut synced: Vec<(usize, LogStats)> = Vec::new();
    for (id, s) in &published {
        let mut total = LogStats::default();
        let logs = s.partitions.iter().map(|p| &p.log).chain(&s.offsets_logs);
        for log in logs {
            total.fsyncs += log.fsyncs;
            total.fsync_latency.merge(&log.fsync_latency);
            total.fsync_bytes += log.fsync_bytes;
            total.flushes_shared += log.flushes_shared;
        }
        synced.push((*id, total));
    }
    o.family(
        "corelog_fdatasync_duration_seconds",
        "histogram",
        "fdatasyncs of flushes (group commit), topic and offsets logs, by owning shard.",
    );
    for (id, t) in &synced {
        o.histogram(
            "corelog_fdatasync_duration_seconds",
            &format!("shard=\"{id}\""),
            &t.fsync_latency,
        );
    }
    type StorageValue = fn(&LogStats) -> u64;
    let storage: [(&str, &str, StorageValue); 2] = [
        (
            "corelog_fdatasync_bytes_total",
            "Bytes flushes' fdatasyncs made durable (per fdatasync: the group commit's batch).",
            |t| t.fsync_bytes,
        ),
        (
            "corelog_flushes_shared_total",
            "Flushes answered by another caller's fdatasync (group commit).",
            |t| t.flushes_shared,
        ),
    ];
    for (name, help, value) in storage {
        o.family(name, "counter", help);
        for (id, t) in &synced {
            o.sample(name, &format!("shard=\"{id}\""), value(t));
        }
    }

    type PartValue = fn(&PartitionSnapshot) -> u64;
    let per_partition: [(&str, &str, &str, PartValue); 7] = [
        (
            "corelog_partition_log_start_offset",
            "gauge",
            "First offset still in the log (retention and DeleteRecords move it).",
            |p| p.log_start,
        ),
        (
            "corelog_partition_high_watermark",
            "gauge",
            "End of the durable, readable log.",
            |p| p.high_watermark,
        ),
        (
            "corelog_partition_log_end_offset",
            "gauge",
            "Next offset to be appended.",
            |p| p.log_end,
        ),
        (
            "corelog_partition_records_in_total",
            "counter",
            "Records appended by produces.",
            |p| p.records_in,
        ),
        (
            "corelog_partition_bytes_in_total",
            "counter",
            "Bytes of batches appended by produces.",
            |p| p.bytes_in,
        ),
        (
            "corelog_partition_segments_rolled_total",
            "counter",
            "Segments rolled.",
            |p| p.log.rolls,
        ),
        (
            "corelog_partition_segments_deleted_total",
            "counter",
            "Segments deleted by retention or DeleteRecords.",
            |p| p.log.segments_deleted,
        ),
    ];
    for (name, kind, help, value) in per_partition {
        o.family(name, kind, help);
        for (id, s) in &published {
            for p in &s.partitions {
                let labels = format!(
                    "shard=\"{id}\",topic=\"{}\",partition=\"{}\"",
                    escape(&p.topic),
                    p.partition
                );
                o.sample(name, &labels, value(p));
            }
        }
    }

    type FetchedValue = fn(&(String, u32, u64, u64)) -> u64;
    let fetched: [(&str, &str, FetchedValue); 2] = [
        (
            "corelog_partition_records_out_total",
            "Records sent in fetch answers (shard: the one that answered).",
            |f| f.2,
        ),
        (
            "corelog_partition_bytes_out_total",
            "Bytes of batches sent in fetch answers (shard: the one that answered).",
            |f| f.3,
        ),
    ];
    for (name, help, value) in fetched {
        o.family(name, "counter", help);
        for (id, s) in &published {
            for f in &s.fetched {
                let labels = format!(
                    "shard=\"{id}\",topic=\"{}\",partition=\"{}\"",
                    escape(&f.0),
                    f.1
                );
                o.sample(name, &labels, value(f));
            }
        }
    }

    let process = process_memory();
    o.family(
        "corelog_process_resident_bytes",
        "gauge",
        "Resident memory of the broker process.",
    );
    o.sample("corelog_process_resident_bytes", "", process.resident);
    if let Some(heap) = process.heap {
        o.family(
            "corelog_heap_allocated_bytes",
            "gauge",
            "Bytes the allocator has handed out and not had back (glibc, at the last trim).",
        );
        o.sample("corelog_heap_allocated_bytes", "", heap.allocated);
        o.family(
            "corelog_heap_free_bytes",
            "gauge",
            "Free bytes the allocator keeps in its arenas (glibc, at the last trim).",
        );
        o.sample("corelog_heap_free_bytes", "", heap.free);
    }
    o.0
}

struct Heap {
    allocated: u64,
    free: u64,
}

struct ProcessMemory {
    resident: u64,
    heap: Option<Heap>,
}

fn process_memory() -> ProcessMemory {
    ProcessMemory {
        resident: memory::resident_bytes(),
        // Measured by the trimming thread after each trim (walking the arenas locks
        // them, which a scrape should not do).
        heap: memory::last_heap().map(|(allocated, free)| Heap { allocated, free }),
    }
}

/// Binds `addr` and serves `GET /metrics` from `registry` on a thread of its own, one
/// scrape at a time (each has [`HTTP_TIMEOUT`] to send its request and read the
/// answer). Returns once the address is bound.
pub fn serve(addr: SocketAddr, registry: Arc<Registry>) -> Result<(), String> {
    let listener =
        TcpListener::bind(addr).map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    std::thread::Builder::new()
        .name("corelog-metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(s) => {
                        if let Err(e) = answer(s, &registry) {
                            tracing::debug!(error = %e, "metrics request failed");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics accept failed");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
    tracing::info!(listen = %bound, "serving metrics");
    Ok(())
}

/// Reads one HTTP request head and answers it; the connection is then closed. The
/// head must arrive whole within [`HTTP_TIMEOUT`] (a client trickling bytes cannot hold
/// the thread longer), and each write of the answer may take as long.
fn answer(mut s: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let deadline = Instant::now() + HTTP_TIMEOUT;
    s.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > HTTP_HEAD_MAX {
            return reply(&mut s, "431 Request Header Fields Too Large", "");
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        s.set_read_timeout(Some(left))?;
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next());
    let path = target.map(|t| t.split(|&b| b == b'?').next().unwrap_or_default());
    match (method, path) {
        (b"GET", Some(b"/metrics")) => reply(&mut s, "200 OK", &registry.render()),
        (b"GET", _) => reply(&mut s, "404 Not Found", "only /metrics is served\n"),
        _ => reply(&mut s, "405 Method Not Allowed", "only GET is served\n"),
    }
}

fn reply(s: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;
    s.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_once_with_every_shard_under_them() {
        let mut a = ShardSnapshot {
            connections: 3,
            ..Default::default()
        };
        let mut h = Histogram::default();
        h.record(Duration::from_micros(300));
        a.apis.push((
            0,
            ApiCounts {
                requests: 2,
                failed: 0,
                latency: h,
            },
        ));
        a.partitions.push(PartitionSnapshot {
            topic: "t".into(),
            partition: 1,
            high_watermark: 7,
            ..Default::default()
        });
        let b = ShardSnapshot::default();
        let text = render(&[Some(a), None, Some(b)]);
        assert_eq!(text.matches("# TYPE corelog_connections gauge").count(), 1);
        assert!(text.contains("corelog_connections{shard=\"0\"} 3\n"));
        assert!(text.contains("corelog_connections{shard=\"2\"} 0\n"));
        assert!(
            !text.contains("shard=\"1\""),
            "an unpublished shard is left out"
        );
        assert!(text.contains("corelog_requests_total{shard=\"0\",api=\"Produce\"} 2\n"));
        assert!(text.contains(
            "corelog_request_duration_seconds_bucket{shard=\"0\",api=\"Produce\",le=\"0.00025\"} 0\n"
        ));
        assert!(text.contains(
            "corelog_request_duration_seconds_bucket{shard=\"0\",api=\"Produce\",le=\"0.0005\"} 1\n"
        ));
        assert!(text.contains(
            "corelog_partition_high_watermark{shard=\"0\",topic=\"t\",partition=\"1\"} 7\n"
        ));
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
