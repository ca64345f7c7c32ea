//! `corelog produce`: records from standard input, one per line (kcat's `-P`).
//!
//! Lines are sent as they come: whatever input is already buffered goes out in one
//! request per leader (up to `--batch-records`), so a pipe of a million lines is sent in
//! large batches and an interactive terminal gets each line sent when Enter is pressed.
//! With acks 1 or all, each record's partition and offset is printed (unless --quiet).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use corelog_bench::kafka::admin::{self, ClusterMeta, TopicMeta};
use corelog_bench::kafka::api::{self, code};
use corelog_bench::kafka::partition_for_key;
use corelog_engine::batch_builder::BatchBuilder;
use serde_json::json;

use super::cluster::{kafka_error, Cluster};
use super::{key_value, run_on_executor, CliError, Connect, Format};

/// `corelog produce`.
#[derive(Debug, Args)]
#[command(
    after_help = "Each line of standard input is one record's value (the newline removed).

Examples:
  echo hello | corelog produce orders
  printf 'k1:v1\\nk2:v2\\n' | corelog produce orders -K :          # keys before the first ':'
  corelog produce orders -k user-42 -H source=cli -H trace=abc     # same key and headers for all
  seq 1000000 | corelog produce numbers --quiet --acks 1"
)]
pub struct ProduceArgs {
    /// Topic to produce to
    topic: String,
    #[command(flatten)]
    connect: Connect,
    /// Partition of every record [default: by key (Kafka's murmur2), round-robin without one]
    #[arg(short, long)]
    partition: Option<i32>,
    /// Key of every record
    #[arg(short, long, conflicts_with = "key_delimiter")]
    key: Option<String>,
    /// Each line is KEY<DELIMITER>VALUE (a line without the delimiter has no key)
    #[arg(short = 'K', long, value_name = "DELIMITER")]
    key_delimiter: Option<String>,
    /// A header of every record, KEY=VALUE (repeatable)
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Acknowledgements: -1 (all in-sync replicas, durable), 1 (the leader), 0 (none)
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    acks: i16,
    /// Most records in one request
    #[arg(long, default_value_t = 10_000)]
    batch_records: usize,
    /// Most bytes of keys and values in one request (so that each partition's batch
    /// stays under the broker's max.message.bytes, 1 MiB by default)
    #[arg(long, default_value_t = 512 << 10)]
    batch_bytes: usize,
    /// Print nothing per record
    #[arg(short, long)]
    quiet: bool,
    /// How each record's outcome is printed
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// One input line as a record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
}

/// Splits an input line (without its newline) into key and value.
fn parse_line(line: &[u8], key: Option<&[u8]>, delimiter: Option<&[u8]>) -> Line {
    if let Some(d) = delimiter.filter(|d| !d.is_empty()) {
        if let Some(at) = line.windows(d.len()).position(|w| w == d) {
            return Line {
                key: Some(line[..at].to_vec()),
                value: line[at + d.len()..].to_vec(),
            };
        }
    }
    Line {
        key: key.map(<[u8]>::to_vec),
        value: line.to_vec(),
    }
}

/// Reads the lines that are available now: at least one (blocking for it), then those
/// already in `input`'s buffer, up to `max` lines or until their keys and values reach
/// `max_bytes`. Empty at the end of input.
fn read_available<R: Read>(
    input: &mut BufReader<R>,
    max: usize,
    max_bytes: usize,
    key: Option<&[u8]>,
    delimiter: Option<&[u8]>,
) -> Result<Vec<Line>, CliError> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut bytes = 0;
    while out.len() < max && bytes < max_bytes {
        buf.clear();
        let n = input
            .read_until(b'\n', &mut buf)
            .map_err(|e| CliError::Failed(format!("reading standard input: {e}")))?;
        if n == 0 {
            break;
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        let line = parse_line(&buf, key, delimiter);
        bytes += line.value.len() + line.key.as_ref().map_or(0, Vec::len);
        out.push(line);
        if input.buffer().is_empty() {
            break; // reading on would wait for input that may not come soon
        }
    }
    Ok(out)
}

/// Runs `corelog produce`.
pub fn run(args: ProduceArgs) -> Result<(), CliError> {
    if ![-1, 0, 1].contains(&args.acks) {
        return Err(CliError::Usage("--acks must be -1, 0 or 1".into()));
    }
    if args.batch_records == 0 || args.batch_bytes == 0 {
        return Err(CliError::Usage(
            "--batch-records and --batch-bytes must be positive".into(),
        ));
    }
    let headers = args
        .headers
        .iter()
        .map(|h| key_value(h, "--header"))
        .collect::<Result<Vec<_>, _>>()?;
    run_on_executor(None, move || async move {
        let cluster = Cluster::connect(&args.connect.bootstrap).await?;
        let (meta, topic) = cluster.topic(&args.topic).await?;
        if let Some(p) = args.partition {
            if !topic.partitions.iter().any(|m| m.partition == p) {
                return Err(CliError::Failed(format!(
                    "topic {} has no partition {p}",
                    args.topic
                )));
            }
        }
        let mut input = BufReader::with_capacity(1 << 20, std::io::stdin().lock());
        let mut next_keyless = 0usize;
        let mut sent = 0u64;
        loop {
            let lines = read_available(
                &mut input,
                args.batch_records,
                args.batch_bytes,
                args.key.as_deref().map(str::as_bytes),
                args.key_delimiter.as_deref().map(str::as_bytes),
            )?;
            if lines.is_empty() {
                break;
            }
            let n = lines.len() as u64;
            let mut by_partition: BTreeMap<i32, Vec<Line>> = BTreeMap::new();
            for l in lines {
                let p = match (args.partition, &l.key) {
                    (Some(p), _) => p,
                    (None, Some(k)) => {
                        topic.partitions[partition_for_key(k, topic.partitions.len())].partition
                    }
                    (None, None) => {
                        next_keyless += 1;
                        topic.partitions[(next_keyless - 1) % topic.partitions.len()].partition
                    }
                };
                by_partition.entry(p).or_default().push(l);
            }
            send(&cluster, &meta, &topic, &args, &headers, by_partition).await?;
            sent += n;
        }
        if !args.quiet && args.format == Format::Text {
            eprintln!("corelog: produced {sent} records to {}", args.topic);
        }
        Ok(())
    })
}

/// Sends one batch per partition, one request per leader, and prints each record's offset.
async fn send(
    cluster: &Cluster,
    meta: &ClusterMeta,
    topic: &TopicMeta,
    args: &ProduceArgs,
    headers: &[(String, String)],
    by_partition: BTreeMap<i32, Vec<Line>>,
) -> Result<(), CliError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64;
    let hdrs: Vec<(&[u8], &[u8])> = headers
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
    let mut by_leader: BTreeMap<i32, Vec<(i32, Vec<u8>, usize)>> = BTreeMap::new();
    for (p, lines) in &by_partition {
        let mut b = BatchBuilder::new(now);
        for l in lines {
            b.push(l.key.as_deref(), Some(&l.value), &hdrs);
        }
        let leader = topic
            .partitions
            .iter()
            .find(|m| m.partition == *p)
            .map_or(-1, |m| m.leader);
        by_leader
            .entry(leader)
            .or_default()
            .push((*p, b.build(), lines.len()));
    }
    for (leader, batches) in by_leader {
        let conn = cluster.node(meta, leader).await?;
        let size: usize = batches.iter().map(|(_, b, _)| b.len() + 8).sum();
        let (mut e, c) = api::produce_request(&conn, &topic.name, args.acks, batches.len(), size);
        for (p, b, _) in &batches {
            e.i32(*p).bytes(Some(b));
        }
        let frame = e.finish();
        if args.acks == 0 {
            conn.send_only(&[frame.freeze()]).await?;
            continue;
        }
        let answer = conn.call(frame, c).await?;
        let produced = admin::produce_results(answer)?;
        let mut failures = Vec::new();
        for (p, _, count) in &batches {
            let Some(r) = produced.iter().find(|r| r.partition == *p) else {
                failures.push(format!("partition {p}: not answered"));
                continue;
            };
            if r.error_code != code::NONE {
                failures.push(format!(
                    "partition {p}: {} records not produced: {}",
                    count,
                    kafka_error(r.error_code, None)
                ));
                continue;
            }
            if !args.quiet {
                for i in 0..*count as i64 {
                    let offset = r.base_offset + i;
                    match args.format {
                        Format::Text => println!(
                            "Produced to partition {p} at offset {offset} with timestamp {now}."
                        ),
                        Format::Json => println!(
                            "{}",
                            json!({"topic": topic.name, "partition": p, "offset": offset,
                                   "timestamp": now})
                        ),
                    }
                }
            }
        }
        if !failures.is_empty() {
            return Err(CliError::Failed(failures.join("; ")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_delimiter() {
        let l = parse_line(b"k:v:w", None, Some(b":"));
        assert_eq!(l.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(l.value, b"v:w".to_vec());
        let l = parse_line(b"kv", None, Some(b"::"));
        assert_eq!((l.key, l.value), (None, b"kv".to_vec()));
        let l = parse_line(b"v", Some(b"fixed"), None);
        assert_eq!(
            (l.key.as_deref(), &l.value[..]),
            (Some(&b"fixed"[..]), &b"v"[..])
        );
    }

    /// Input that arrives in pieces, as from a terminal or a slow pipe.
    struct Pieces(Vec<&'static [u8]>);

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let piece = self.0.remove(0);
            buf[..piece.len()].copy_from_slice(piece);
            Ok(piece.len())
        }
    }

    #[test]
    fn available_lines_are_read_without_waiting_for_more() {
        let mut input = BufReader::new(Pieces(vec![b"a\nb\r\n", b"c"]));
        // What arrived together goes together; the next piece is not waited for.
        let first = read_available(&mut input, 100, 1 << 20, None, None).unwrap();
        assert_eq!(
            first.iter().map(|l| l.value.clone()).collect::<Vec<_>>(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        let rest = read_available(&mut input, 100, 1 << 20, None, None).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].value, b"c".to_vec());
        assert!(read_available(&mut input, 100, 1 << 20, None, None)
            .unwrap()
            .is_empty());
        let mut input = BufReader::new(&b"1\n2\n3\n"[..]);
        assert_eq!(
            read_available(&mut input, 2, 1 << 20, None, None)
                .unwrap()
                .len(),
            2
        );
        // The byte bound: stop once the lines read reach it.
        let mut input = BufReader::new(&b"aaaa\nbbbb\ncccc\n"[..]);
        assert_eq!(
            read_available(&mut input, 100, 8, None, None)
                .unwrap()
                .len(),
            2
        );
    }
}
