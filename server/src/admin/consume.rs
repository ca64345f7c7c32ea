//! `corelog consume`: records to standard output (kcat's `-C`), from chosen offsets or as
//! a member of a consumer group.
//!
//! Without `--group` it reads the partitions it is given (all by default) from
//! `--offset`. With `--group` it joins the group (classic protocol, range assignor), starts
//! each assigned partition at the group's committed offset (or `--offset` where there is
//! none) and commits what it has printed after each fetch, and on exit. Ctrl-C (or
//! SIGTERM) stops it cleanly (a group member leaves its group, so the others take over at once).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use corelog_bench::kafka::admin::{ClusterMeta, TopicMeta};
use corelog_bench::kafka::api::{self, code};
use corelog_bench::kafka::group::Member;
use corelog_bench::kafka::records::decompress;
use corelog_engine::batch::{self, attributes, RecordBatch};
use serde_json::json;

use super::cluster::{kafka_error, Cluster};
use super::{run_on_executor, CliError, Connect};

/// `corelog consume`.
#[derive(Debug, Args)]
#[command(
    after_help = "Format tokens (--format): %t topic, %p partition, %o offset, %T timestamp (ms),
%k key, %v value, %h headers (k=v,k=v), %K key length, %S value length (-1: null),
%% a percent sign, \\n newline, \\t tab. --format json prints one JSON object per record.

Examples:
  corelog consume orders -e                           # everything there is, then exit
  corelog consume orders -o end                       # only new records, until Ctrl-C
  corelog consume orders -p 0,2 -o 100 -n 10          # ten records from offset 100
  corelog consume orders -o @1763769600000 -f '%p %o %k=%v\\n'
  corelog consume orders -g billing --format json     # as a member of group billing"
)]
pub struct ConsumeArgs {
    /// Topic to consume
    topic: String,
    #[command(flatten)]
    connect: Connect,
    /// Partitions to read, e.g. 0,2 [default: all; not with --group]
    #[arg(short, long, value_delimiter = ',', conflicts_with = "group")]
    partitions: Vec<i32>,
    /// Where to start: start, end, OFFSET, -N (N before the end) or @TIMESTAMP_MS (with
    /// --group: only where the group has no committed offset)
    #[arg(short, long, default_value = "start", allow_hyphen_values = true)]
    offset: String,
    /// Exit after this many records
    #[arg(short, long)]
    num: Option<u64>,
    /// Exit once every partition is read to its end
    #[arg(short, long)]
    exit: bool,
    /// Consume as a member of this group, committing what is printed
    #[arg(short, long)]
    group: Option<String>,
    /// Output: a template (see below) or `json`
    #[arg(short, long, default_value = "%v\\n")]
    format: String,
    /// Longest a fetch waits at the broker for new records, ms
    #[arg(long, default_value_t = 500)]
    fetch_max_wait_ms: i32,
    /// Most bytes one fetch returns per partition
    #[arg(long, default_value_t = 1 << 20)]
    fetch_max_bytes: i32,
}

/// Where consumption starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Earliest,
    Latest,
    Offset(i64),
    /// N records before the end.
    Tail(i64),
    Timestamp(i64),
}

fn parse_start(s: &str) -> Result<Start, CliError> {
    let bad = || {
        CliError::Usage(format!(
            "--offset must be start, end, OFFSET, -N or @TIMESTAMP_MS, not {s:?}"
        ))
    };
    match s {
        "start" | "beginning" | "earliest" | "oldest" => Ok(Start::Earliest),
        "end" | "latest" | "newest" => Ok(Start::Latest),
        _ => {
            if let Some(ts) = s.strip_prefix('@') {
                ts.parse::<i64>()
                    .ok()
                    .filter(|t| *t >= 0)
                    .map(Start::Timestamp)
                    .ok_or_else(bad)
            } else if let Some(n) = s.strip_prefix('-') {
                n.parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Start::Tail)
                    .ok_or_else(bad)
            } else {
                s.parse::<i64>()
                    .ok()
                    .filter(|o| *o >= 0)
                    .map(Start::Offset)
                    .ok_or_else(bad)
            }
        }
    }
}

/// One piece of an output template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Topic,
    Partition,
    Offset,
    Timestamp,
    Key,
    Value,
    Headers,
    KeyLen,
    ValueLen,
}

/// How records are printed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Output {
    Json,
    Template(Vec<Piece>),
}

fn parse_format(f: &str) -> Result<Output, CliError> {
    if f == "json" {
        return Ok(Output::Json);
    }
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        let piece = match c {
            '%' => match chars.next() {
                Some('t') => Piece::Topic,
                Some('p') => Piece::Partition,
                Some('o') => Piece::Offset,
                Some('T') => Piece::Timestamp,
                Some('k') => Piece::Key,
                Some('v') => Piece::Value,
                Some('h') => Piece::Headers,
                Some('K') => Piece::KeyLen,
                Some('S') => Piece::ValueLen,
                Some('%') => {
                    text.push('%');
                    continue;
                }
                other => {
                    return Err(CliError::Usage(format!(
                        "--format: unknown token %{}",
                        other.map(String::from).unwrap_or_default()
                    )))
                }
            },
            '\\' => {
                match chars.next() {
                    Some('n') => text.push('\n'),
                    Some('t') => text.push('\t'),
                    Some('\\') => text.push('\\'),
                    Some(o) => {
                        text.push('\\');
                        text.push(o);
                    }
                    None => text.push('\\'),
                }
                continue;
            }
            c => {
                text.push(c);
                continue;
            }
        };
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(piece);
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(Output::Template(pieces))
}

/// One record as read.
#[derive(Debug)]
struct Record<'a> {
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

fn render(out: &mut Vec<u8>, format: &Output, topic: &str, r: &Record<'_>) {
    match format {
        Output::Json => {
            let v = json!({
                "topic": topic,
                "partition": r.partition,
                "offset": r.offset,
                "timestamp": r.timestamp,
                "key": r.key.map(lossy),
                "value": r.value.map(lossy),
                "headers": r.headers.iter().map(|(k, v)| json!({"key": lossy(k), "value": v.map(lossy)}))
                    .collect::<Vec<_>>(),
            });
            out.extend_from_slice(v.to_string().as_bytes());
            out.push(b'\n');
        }
        Output::Template(pieces) => {
            for p in pieces {
                match p {
                    Piece::Text(t) => out.extend_from_slice(t.as_bytes()),
                    Piece::Topic => out.extend_from_slice(topic.as_bytes()),
                    Piece::Partition => out.extend_from_slice(r.partition.to_string().as_bytes()),
                    Piece::Offset => out.extend_from_slice(r.offset.to_string().as_bytes()),
                    Piece::Timestamp => out.extend_from_slice(r.timestamp.to_string().as_bytes()),
                    Piece::Key => out.extend_from_slice(r.key.unwrap_or_default()),
                    Piece::Value => out.extend_from_slice(r.value.unwrap_or_default()),
                    Piece::Headers => {
                        for (i, (k, v)) in r.headers.iter().enumerate() {
                            if i > 0 {
                                out.push(b',');
                            }
                            out.extend_from_slice(k);
                            out.push(b'=');
                            out.extend_from_slice(v.unwrap_or_default());
                        }
                    }
                    Piece::KeyLen => out.extend_from_slice(
                        r.key.map_or(-1, |k| k.len() as i64).to_string().as_bytes(),
                    ),
                    Piece::ValueLen => out.extend_from_slice(
                        r.value
                            .map_or(-1, |v| v.len() as i64)
                            .to_string()
                            .as_bytes(),
                    ),
                }
            }
        }
    }
}

/// Renders the records of `records` (a fetch answer's batches of `partition`) at or past
/// `from`, at most `limit` of them: (records rendered, the next offset to read).
fn render_batches(
    out: &mut Vec<u8>,
    format: &Output,
    topic: &str,
    partition: i32,
    records: &Bytes,
    from: i64,
    limit: u64,
) -> Result<(u64, i64), CliError> {
    let mut next = from;
    let mut n = 0u64;
    let mut pos = 0;
    let mut whole_batches = 0;
    let corrupt = |offset: i64, what: String| {
        CliError::Failed(format!(
            "partition {partition}, batch at offset {offset}: {what}"
        ))
    };
    while let Some(b) = records.get(pos..).and_then(RecordBatch::from_prefix) {
        pos += b.len();
        whole_batches += 1;
        if b.last_offset() < next {
            continue;
        }
        b.verify_crc()
            .map_err(|e| corrupt(b.base_offset(), e.to_string()))?;
        if b.is_control() {
            next = b.last_offset() + 1;
            continue;
        }
        let codec = b.attributes() & attributes::COMPRESSION_MASK;
        let plain;
        let bytes = if codec == 0 {
            b.records_bytes()
        } else {
            plain = decompress(codec, b.records_bytes())
                .map_err(|e| corrupt(b.base_offset(), e.to_string()))?;
            &plain[..]
        };
        let mut seen = 0;
        for r in batch::records_in(bytes, b.records_count()) {
            seen += 1;
            let offset = b.base_offset() + r.offset_delta;
            if offset < next {
                continue;
            }
            if n == limit {
                return Ok((n, next));
            }
            let headers = batch::headers(r.headers)
                .ok_or_else(|| corrupt(b.base_offset(), format!("record {offset}: bad headers")))?;
            let timestamp = if b.is_log_append_time() {
                b.max_timestamp()
            } else {
                b.base_timestamp() + r.timestamp_delta
            };
            render(
                out,
                format,
                topic,
                &Record {
                    partition,
                    offset,
                    timestamp,
                    key: r.key,
                    value: r.value,
                    headers,
                },
            );
            n += 1;
            next = offset + 1;
        }
        if seen != b.records_count() {
            return Err(corrupt(
                b.base_offset(),
                format!("{seen} of {} records parse", b.records_count()),
            ));
        }
        next = b.last_offset() + 1;
    }
    if whole_batches == 0 && !records.is_empty() {
        // Brokers answer at least the first whole batch (KIP-74): bytes that hold none
        // are a message format before v2 or a cut batch, and would stall the position.
        return Err(CliError::Failed(format!(
            "partition {partition} at offset {from}: the answer holds no whole record batch \
             of format v2 ({} bytes)",
            records.len()
        )));
    }
    Ok((n, next))
}

/// Set by SIGINT or SIGTERM; the fetch loop stops at its next turn.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // A second signal: the first is not being acted on (say, while connecting).
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

fn stop_on_sigint() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_sigint as *const () as libc::sighandler_t);
    }
}

/// Runs `corelog consume`.
pub fn run(args: ConsumeArgs) -> Result<(), CliError> {
    let start = parse_start(&args.offset)?;
    let format = parse_format(&args.format)?;
    if args.fetch_max_wait_ms < 0 || args.fetch_max_bytes <= 0 {
        return Err(CliError::Usage(
            "--fetch-max-wait-ms must not be negative and --fetch-max-bytes must be positive"
                .into(),
        ));
    }
    if args.partitions.iter().any(|p| *p < 0) {
        return Err(CliError::Usage("partitions must not be negative".into()));
    }
    stop_on_sigint();
    run_on_executor(None, move || async move {
        let cluster = Cluster::connect(&args.connect.bootstrap).await?;
        let (meta, topic) = cluster.topic(&args.topic).await?;
        let all: Vec<i32> = topic.partitions.iter().map(|p| p.partition).collect();
        let mut reader = Reader {
            cluster: &cluster,
            meta,
            topic,
            args: &args,
            format,
            positions: BTreeMap::new(),
            ends: BTreeMap::new(),
            printed: 0,
            start,
            rounds: 0,
            retries: 0,
        };
        match &args.group {
            None => {
                let mine = if args.partitions.is_empty() {
                    all
                } else {
                    if let Some(p) = args.partitions.iter().find(|p| !all.contains(p)) {
                        return Err(CliError::Failed(format!(
                            "topic {} has no partition {p}",
                            args.topic
                        )));
                    }
                    args.partitions.clone()
                };
                reader.positions = reader.starts(&mine, start).await?;
                while !reader.done() {
                    reader.fetch_round().await?;
                }
                Ok(())
            }
            Some(group) => {
                let mut member =
                    Member::join(cluster.bootstrap(), group, &args.topic, &all).await?;
                let result = reader.in_group(&mut member).await;
                // Leave even after a failure, so the group need not wait for the session
                // to time out; the failure is what is reported.
                let left = member.leave().await;
                result.and(left.map_err(CliError::from))
            }
        }
    })
}

struct Reader<'a> {
    cluster: &'a Cluster,
    meta: ClusterMeta,
    topic: TopicMeta,
    args: &'a ConsumeArgs,
    format: Output,
    /// Next offset to print, per partition read.
    positions: BTreeMap<i32, i64>,
    /// High watermark last seen, per partition.
    ends: BTreeMap<i32, i64>,
    printed: u64,
    /// Where a partition without a position starts (`--offset`).
    start: Start,
    /// Fetch rounds so far.
    rounds: u64,
    /// Rounds in a row that found a partition without a usable leader.
    retries: u32,
}

/// Rounds in a row a partition may lack a leader (100 ms apart) before consume gives up.
const MAX_LEADER_RETRIES: u32 = 100;
/// A group member's longest fetch wait: a third of its session timeout, so that its
/// heartbeats (sent between fetches) keep it in the group.
const GROUP_FETCH_WAIT_MAX_MS: i32 = corelog_bench::kafka::group::SESSION_TIMEOUT_MS / 3;

impl Reader<'_> {
    /// The first offset to read of each of `partitions` for `start`.
    async fn starts(
        &self,
        partitions: &[i32],
        start: Start,
    ) -> Result<BTreeMap<i32, i64>, CliError> {
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let (c, m, t) = (self.cluster, &self.meta, &self.topic);
        Ok(match start {
            Start::Earliest => c.offsets(m, t, partitions, -2).await?,
            Start::Latest => c.offsets(m, t, partitions, -1).await?,
            Start::Offset(o) => {
                // Kept within each log, as kafka-console-consumer's --offset is not: an
                // offset past the end waits at the end, one before the start starts there.
                let first = c.offsets(m, t, partitions, -2).await?;
                let end = c.offsets(m, t, partitions, -1).await?;
                end.iter()
                    .map(|(p, e)| (*p, o.max(first[p]).min(*e)))
                    .collect()
            }
            Start::Tail(n) => {
                let first = c.offsets(m, t, partitions, -2).await?;
                let end = c.offsets(m, t, partitions, -1).await?;
                end.iter()
                    .map(|(p, e)| (*p, (e - n).max(first[p])))
                    .collect()
            }
            Start::Timestamp(ts) => {
                let found = c.offsets(m, t, partitions, ts).await?;
                let end = c.offsets(m, t, partitions, -1).await?;
                found
                    .iter()
                    .map(|(p, o)| (*p, if *o < 0 { end[p] } else { *o }))
                    .collect()
            }
        })
    }

    /// Whether to stop: interrupted, the record budget spent, or (with --exit) every
    /// partition read to the end seen in its last fetch.
    fn done(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
            || self.args.num.is_some_and(|n| self.printed >= n)
            || (self.args.exit
                && self
                    .positions
                    .iter()
                    .all(|(p, pos)| self.ends.get(p).is_some_and(|e| pos >= e)))
    }

    /// One fetch of every partition read (one request per leader); prints what came.
    async fn fetch_round(&mut self) -> Result<(), CliError> {
        self.rounds += 1;
        // Rotate the partitions' order each round: a broker fills an answer in request
        // order (KIP-74), so a busy first partition would otherwise starve the others.
        let mut positions: Vec<(i32, i64)> = self.positions.iter().map(|(p, o)| (*p, *o)).collect();
        if !positions.is_empty() {
            let k = (self.rounds as usize) % positions.len();
            positions.rotate_left(k);
        }
        let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
        for (p, pos) in positions {
            let leader = self
                .topic
                .partitions
                .iter()
                .find(|m| m.partition == p)
                .map_or(-1, |m| m.leader);
            by_leader.entry(leader).or_default().push((p, pos));
        }
        let full_wait = Duration::from_millis(self.wait_ms() as u64);
        if by_leader.is_empty() {
            // Nothing assigned (a group member without partitions): wait like a fetch.
            glommio::timer::sleep(full_wait).await;
            return Ok(());
        }
        // One leader may hold the fetch open; with several, one at a time, none may (the
        // round sleeps instead when nothing came).
        let wait = if by_leader.len() > 1 {
            0
        } else {
            self.wait_ms()
        };
        let mut out = Vec::new();
        let mut retry = false;
        for (leader, positions) in by_leader {
            if leader < 0 {
                retry = true; // no leader now: metadata again, then retry
                continue;
            }
            let conn = self.cluster.node(&self.meta, leader).await?;
            let (frame, c) = api::fetch_request(
                &conn,
                &self.topic.name,
                &positions,
                wait,
                self.args.fetch_max_bytes,
                self.args.fetch_max_bytes.saturating_mul(4),
            );
            let answer = api::fetch_response(conn.call(frame, c).await?)?;
            for part in answer {
                let p = part.partition;
                let Some(&pos) = self.positions.get(&p) else {
                    continue;
                };
                match part.error_code {
                    code::NONE => {}
                    code::OFFSET_OUT_OF_RANGE => {
                        // Retention passed it, or the log is shorter than asked: start
                        // again where --offset says (as auto.offset.reset does).
                        let again = self.starts(&[p], self.start).await?;
                        let to = again.get(&p).copied().unwrap_or(pos);
                        eprintln!(
                            "corelog: partition {p}: offset {pos} is out of range; \
                             continuing from {to}"
                        );
                        self.positions.insert(p, to);
                        continue;
                    }
                    code::NOT_LEADER_OR_FOLLOWER
                    | code::LEADER_NOT_AVAILABLE
                    | code::UNKNOWN_TOPIC_OR_PARTITION => {
                        retry = true;
                        continue;
                    }
                    c => {
                        return Err(CliError::Failed(format!(
                            "fetching partition {p} at offset {pos}: {}",
                            kafka_error(c, None)
                        )))
                    }
                }
                self.ends.insert(p, part.high_watermark);
                let limit = self.args.num.map_or(u64::MAX, |n| n - self.printed);
                let (n, next) = render_batches(
                    &mut out,
                    &self.format,
                    &self.topic.name,
                    p,
                    &part.records,
                    pos,
                    limit,
                )?;
                self.printed += n;
                self.positions.insert(p, next);
            }
        }
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&out)
            .and_then(|()| stdout.flush())
            .map_err(|e| CliError::Failed(format!("writing standard output: {e}")))?;
        drop(stdout);
        if retry {
            self.retries += 1;
            if self.retries > MAX_LEADER_RETRIES {
                return Err(CliError::Failed(format!(
                    "topic {}: no usable leader after {MAX_LEADER_RETRIES} tries",
                    self.topic.name
                )));
            }
            glommio::timer::sleep(Duration::from_millis(100)).await;
            let (meta, topic) = self.cluster.topic(&self.args.topic).await?;
            (self.meta, self.topic) = (meta, topic);
        } else {
            self.retries = 0;
        }
        if wait == 0 && out.is_empty() {
            glommio::timer::sleep(full_wait.min(Duration::from_millis(100))).await;
        }
        Ok(())
    }

    /// How long a fetch may wait at the broker: in a group, short enough that the
    /// member heartbeats well within its session.
    fn wait_ms(&self) -> i32 {
        if self.args.group.is_some() {
            self.args.fetch_max_wait_ms.min(GROUP_FETCH_WAIT_MAX_MS)
        } else {
            self.args.fetch_max_wait_ms
        }
    }

    /// Consumes as `member`: positions from the group's commits, committed after each
    /// round and before returning; rejoins when the group rebalances.
    async fn in_group(&mut self, member: &mut Member) -> Result<(), CliError> {
        let all: Vec<i32> = self.topic.partitions.iter().map(|p| p.partition).collect();
        let mut assigned: Option<i32> = None; // generation the positions belong to
        let mut last_heartbeat = Instant::now();
        loop {
            if assigned != Some(member.generation()) {
                let mine = member.partitions().to_vec();
                let committed: BTreeMap<i32, i64> =
                    member.committed(&mine).await?.into_iter().collect();
                let fresh: Vec<i32> = mine
                    .iter()
                    .copied()
                    .filter(|p| !matches!(committed.get(p), Some(o) if *o >= 0))
                    .collect();
                let mut positions = self.starts(&fresh, self.start).await?;
                for p in &mine {
                    if let Some(o) = committed.get(p).filter(|o| **o >= 0) {
                        positions.insert(*p, *o);
                    }
                }
                self.positions = positions;
                self.ends.clear();
                assigned = Some(member.generation());
            }
            if self.done() {
                break;
            }
            self.fetch_round().await?;
            let offsets: Vec<(i32, i64)> = self.positions.iter().map(|(p, o)| (*p, *o)).collect();
            member.commit(&offsets).await?;
            if last_heartbeat.elapsed() >= Duration::from_secs(3) {
                last_heartbeat = Instant::now();
                if member.heartbeat().await? {
                    member.rejoin(&all).await?;
                }
            }
        }
        let offsets: Vec<(i32, i64)> = self.positions.iter().map(|(p, o)| (*p, *o)).collect();
        member.commit(&offsets).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corelog_engine::batch_builder::BatchBuilder;

    #[test]
    fn starts_parse() {
        assert_eq!(parse_start("start"), Ok(Start::Earliest));
        assert_eq!(parse_start("end"), Ok(Start::Latest));
        assert_eq!(parse_start("42"), Ok(Start::Offset(42)));
        assert_eq!(parse_start("-5"), Ok(Start::Tail(5)));
        assert_eq!(parse_start("@1700"), Ok(Start::Timestamp(1700)));
        for bad in ["", "-0", "@", "@-1", "x", "-x"] {
            assert!(parse_start(bad).is_err(), "{bad:?}");
        }
    }

    fn sample() -> Bytes {
        let mut b = BatchBuilder::new(1_000);
        b.push_at(1_000, Some(b"k0"), Some(b"v0"), &[(b"h", b"1")]);
        b.push_at(1_007, None, None, &[]);
        b.push_at(
            1_009,
            Some(b"k2"),
            Some(b"v2"),
            &[(b"a", b"x"), (b"b", b"")],
        );
        let mut bytes = b.build();
        batch::assign(&mut bytes, 10, 0);
        Bytes::from(bytes)
    }

    fn rendered(format: &str, from: i64, limit: u64) -> (String, u64, i64) {
        let mut out = Vec::new();
        let f = parse_format(format).unwrap();
        let (n, next) = render_batches(&mut out, &f, "t", 3, &sample(), from, limit).unwrap();
        (String::from_utf8(out).unwrap(), n, next)
    }

    #[test]
    fn templates_render_every_field() {
        let (s, n, next) = rendered("%t/%p/%o/%T %k=%v [%h] %K %S%%\\n", 0, u64::MAX);
        assert_eq!(
            s,
            "t/3/10/1000 k0=v0 [h=1] 2 2%\n\
             t/3/11/1007 = [] -1 -1%\n\
             t/3/12/1009 k2=v2 [a=x,b=] 2 2%\n"
        );
        assert_eq!((n, next), (3, 13));
        // From the middle of the batch, and a limit that stops inside it.
        assert_eq!(rendered("%o ", 11, u64::MAX).0, "11 12 ");
        assert_eq!(rendered("%o ", 10, 2), ("10 11 ".to_string(), 2, 12));
        assert!(parse_format("%x").is_err());
    }

    #[test]
    fn json_keeps_nulls_and_headers() {
        let (s, _, _) = rendered("json", 11, 2);
        let lines: Vec<serde_json::Value> = s
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["key"], serde_json::Value::Null);
        assert_eq!(lines[0]["offset"], 11);
        assert_eq!(lines[1]["headers"][1]["key"], "b");
        assert_eq!(lines[1]["timestamp"], 1009);
    }

    #[test]
    fn a_corrupt_batch_is_an_error_not_output() {
        let mut bytes = sample().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let mut out = Vec::new();
        let f = parse_format("%v").unwrap();
        let err = render_batches(&mut out, &f, "t", 0, &Bytes::from(bytes), 0, u64::MAX);
        assert!(matches!(err, Err(CliError::Failed(m)) if m.contains("offset 10")));
        assert!(out.is_empty());
    }

    #[test]
    fn an_answer_without_a_whole_batch_is_an_error_not_a_stall() {
        let cut = sample().slice(..40);
        let mut out = Vec::new();
        let f = parse_format("%v").unwrap();
        let err = render_batches(&mut out, &f, "t", 0, &cut, 10, u64::MAX);
        assert!(matches!(err, Err(CliError::Failed(m)) if m.contains("no whole record batch")));
        // An empty answer is just nothing new.
        let none = render_batches(&mut out, &f, "t", 0, &Bytes::new(), 10, u64::MAX);
        assert_eq!(none, Ok((0, 10)));
    }
}
