//! `corelog group list|describe|delete|reset-offsets`.

use std::collections::{BTreeMap, BTreeSet};

use clap::{ArgGroup, Args, Subcommand};
use corelog_bench::kafka::admin::{self, GroupDescription};
use corelog_bench::kafka::api::code;
use corelog_bench::kafka::Conn;
use serde_json::{json, Value};

use super::cluster::{kafka_error, Cluster};
use super::output::{print_json, Table};
use super::{run_on_executor, CliError, Connect, Deadline, Format};

/// `corelog group`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  corelog group list
  corelog group describe billing --format json
  corelog group reset-offsets billing --topic orders --to-earliest
  corelog group reset-offsets billing --topic orders:0,1 --to-timestamp 1763769600000
  corelog group reset-offsets billing --to-offset 1000 --dry-run
  corelog group delete billing")]
pub struct GroupArgs {
    #[command(flatten)]
    connect: Connect,
    #[command(flatten)]
    deadline: Deadline,
    /// Output format
    #[arg(long, global = true, value_enum, default_value_t)]
    format: Format,
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List the groups of every broker
    List,
    /// Show groups' state, members and, per partition, committed offset and lag
    Describe {
        /// Group ids
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Delete groups and their committed offsets (refused while a group has members)
    Delete {
        /// Group ids
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Move a group's committed offsets (refused while the group has members)
    #[command(group(ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_timestamp", "to_offset"])))]
    ResetOffsets {
        /// Group id
        group: String,
        /// TOPIC, or TOPIC:P,P,... for some partitions (repeatable) [default: every
        /// topic the group has committed offsets for]
        #[arg(long = "topic", value_name = "TOPIC[:PARTITIONS]")]
        topics: Vec<String>,
        /// To each partition's log start offset
        #[arg(long)]
        to_earliest: bool,
        /// To each partition's high watermark (skipping everything there is)
        #[arg(long)]
        to_latest: bool,
        /// To the first offset at or after this time (ms since the epoch); the high
        /// watermark where there is none
        #[arg(long, value_name = "MS")]
        to_timestamp: Option<i64>,
        /// To this offset, kept within each partition's log start and high watermark
        #[arg(long, value_name = "OFFSET")]
        to_offset: Option<i64>,
        /// Print the new offsets without committing them
        #[arg(long)]
        dry_run: bool,
    },
}

/// Where reset-offsets moves a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Earliest,
    Latest,
    Timestamp(i64),
    Offset(i64),
}

/// Runs `corelog group ...`.
pub fn run(args: GroupArgs) -> Result<(), CliError> {
    let GroupArgs {
        connect,
        deadline,
        format,
        command,
    } = args;
    if let GroupCommand::ResetOffsets {
        to_timestamp: Some(t),
        ..
    } = &command
    {
        if *t < 0 {
            return Err(CliError::Usage(
                "--to-timestamp must not be negative".into(),
            ));
        }
    }
    if let GroupCommand::ResetOffsets {
        to_offset: Some(o), ..
    } = &command
    {
        if *o < 0 {
            return Err(CliError::Usage("--to-offset must not be negative".into()));
        }
    }
    run_on_executor(Some(deadline.total()), move || async move {
        let cluster = Cluster::connect(&connect.bootstrap).await?;
        match command {
            GroupCommand::List => list(&cluster, format).await,
            GroupCommand::Describe { groups } => describe(&cluster, format, &groups).await,
            GroupCommand::Delete { groups } => delete(&cluster, format, &groups).await,
            GroupCommand::ResetOffsets {
                group,
                topics,
                to_earliest,
                to_latest,
                to_timestamp,
                to_offset,
                dry_run,
            } => {
                let target = match (to_earliest, to_latest, to_timestamp, to_offset) {
                    (true, ..) => Target::Earliest,
                    (_, true, ..) => Target::Latest,
                    (_, _, Some(t), _) => Target::Timestamp(t),
                    (_, _, _, Some(o)) => Target::Offset(o),
                    _ => unreachable!("clap requires one of the --to options"),
                };
                let selection = topics
                    .iter()
                    .map(|t| parse_topic_selection(t))
                    .collect::<Result<Vec<_>, _>>()?;
                reset_offsets(&cluster, format, &group, &selection, target, dry_run).await
            }
        }
    })
}

/// `TOPIC` or `TOPIC:P,P,...`.
fn parse_topic_selection(s: &str) -> Result<(String, Option<Vec<i32>>), CliError> {
    let bad = || CliError::Usage(format!("--topic must be TOPIC or TOPIC:P,P,..., not {s:?}"));
    match s.rsplit_once(':') {
        None if !s.is_empty() => Ok((s.to_string(), None)),
        Some((t, ps)) if !t.is_empty() => {
            let parts = ps
                .split(',')
                .map(|p| p.trim().parse::<i32>().ok().filter(|p| *p >= 0))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad)?;
            Ok((t.to_string(), Some(parts)))
        }
        _ => Err(bad()),
    }
}

/// Merges `--topic` selections: a topic named more than once gets the union of its
/// partitions, and a bare name (all partitions) wins over lists.
fn merge_selections(
    selection: &[(String, Option<Vec<i32>>)],
) -> BTreeMap<String, Option<Vec<i32>>> {
    let mut out: BTreeMap<String, Option<Vec<i32>>> = BTreeMap::new();
    for (t, ps) in selection {
        let merged = match (out.remove(t), ps) {
            (None, ps) => ps.clone(),
            (Some(None), _) | (_, None) => None,
            (Some(Some(mut a)), Some(b)) => {
                a.extend(b);
                Some(a)
            }
        };
        out.insert(
            t.clone(),
            merged.map(|mut v| {
                v.sort_unstable();
                v.dedup();
                v
            }),
        );
    }
    out
}

/// Describes `group` at its coordinator.
async fn describe_at(coordinator: &Conn, group: &str) -> Result<GroupDescription, CliError> {
    let mut d = admin::describe_groups(coordinator, &[group.to_string()]).await?;
    match d.pop() {
        Some(g) if g.error_code == code::NONE => Ok(g),
        Some(g) => Err(CliError::Failed(format!(
            "group {group}: {}",
            kafka_error(g.error_code, None)
        ))),
        None => Err(CliError::Failed(format!("group {group} was not answered"))),
    }
}

async fn list(cluster: &Cluster, format: Format) -> Result<(), CliError> {
    let meta = cluster.metadata(Some(&[])).await?;
    let mut rows = Vec::new();
    for (node, _, _) in &meta.brokers {
        let conn = cluster.node(&meta, *node).await?;
        let groups = admin::list_groups(&conn).await?;
        let ids: Vec<String> = groups.iter().map(|(g, _)| g.clone()).collect();
        let described = if ids.is_empty() {
            Vec::new()
        } else {
            admin::describe_groups(&conn, &ids).await?
        };
        for (g, protocol_type) in groups {
            let d = described.iter().find(|d| d.group == g);
            rows.push((
                g,
                *node,
                d.map(|d| d.state.clone()).unwrap_or_default(),
                protocol_type,
                d.map_or(0, |d| d.members.len()),
            ));
        }
    }
    rows.sort();
    match format {
        Format::Json => print_json(&Value::Array(
            rows.iter()
                .map(|(g, node, state, pt, members)| {
                    json!({"group": g, "coordinator": node, "state": state,
                           "protocol_type": pt, "members": members})
                })
                .collect(),
        )),
        Format::Text => {
            let mut t = Table::new(&["GROUP", "COORDINATOR", "STATE", "PROTOCOL-TYPE", "MEMBERS"]);
            for (g, node, state, pt, members) in rows {
                t.row(vec![g, node.to_string(), state, pt, members.to_string()]);
            }
            t.print();
        }
    }
    Ok(())
}

async fn describe(cluster: &Cluster, format: Format, groups: &[String]) -> Result<(), CliError> {
    let mut out = Vec::new();
    let mut failed = 0;
    for g in groups {
        match describe_one(cluster, g).await {
            Ok(v) => out.push(v),
            Err(CliError::Failed(e)) => {
                eprintln!("corelog: {e}");
                failed += 1;
            }
            Err(e) => return Err(e),
        }
    }
    match format {
        Format::Json => print_json(&Value::Array(out)),
        Format::Text => {
            for (i, d) in out.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print_group(d);
            }
        }
    }
    match failed {
        0 => Ok(()),
        n => Err(CliError::Failed(format!(
            "{n} of {} groups could not be described",
            groups.len()
        ))),
    }
}

/// One group as JSON: state, members with their assignments, and per partition the
/// committed offset, the log end and the lag.
async fn describe_one(cluster: &Cluster, group: &str) -> Result<Value, CliError> {
    let coordinator = cluster.coordinator(group).await?;
    let d = describe_at(&coordinator, group).await?;
    let committed = admin::offset_fetch_all(&coordinator, group).await?;
    if d.state == "Dead" && committed.is_empty() {
        return Err(CliError::Failed(format!("group {group} does not exist")));
    }
    // Who owns what, from the consumer-protocol assignments.
    let mut owner: BTreeMap<(String, i32), usize> = BTreeMap::new();
    let mut members = Vec::new();
    for (i, m) in d.members.iter().enumerate() {
        let assigned = if d.protocol_type == "consumer" {
            admin::consumer_assignment(&m.assignment).unwrap_or_default()
        } else {
            Vec::new()
        };
        for (t, ps) in &assigned {
            for p in ps {
                owner.insert((t.clone(), *p), i);
            }
        }
        members.push(json!({
            "member_id": m.member_id,
            "client_id": m.client_id,
            "client_host": m.client_host,
            "assignment": assigned.iter().map(|(t, ps)| json!({"topic": t, "partitions": ps}))
                .collect::<Vec<_>>(),
        }));
    }
    let mut partitions: BTreeMap<(String, i32), Option<i64>> =
        owner.keys().map(|k| (k.clone(), None)).collect();
    for (t, p, off, _) in &committed {
        partitions.insert((t.clone(), *p), Some(*off));
    }
    let topics: BTreeSet<String> = partitions.keys().map(|(t, _)| t.clone()).collect();
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for t in &topics {
        let (meta, tm) = match cluster.topic(t).await {
            Ok(found) => found,
            // A deleted topic: its offsets show without a log end.
            Err(CliError::Failed(e)) if e.contains("UNKNOWN_TOPIC_OR_PARTITION") => continue,
            Err(e) => return Err(e),
        };
        let ps: Vec<i32> = partitions
            .keys()
            .filter(|(pt, p)| pt == t && tm.partitions.iter().any(|m| m.partition == *p))
            .map(|(_, p)| *p)
            .collect();
        for (p, end) in cluster.offsets(&meta, &tm, &ps, -1).await? {
            ends.insert((t.clone(), p), end);
        }
    }
    let mut total_lag = 0i64;
    let rows: Vec<Value> = partitions
        .iter()
        .map(|((t, p), off)| {
            let end = ends.get(&(t.clone(), *p)).copied();
            let lag = match (off, end) {
                (Some(o), Some(e)) => Some((e - o).max(0)),
                _ => None,
            };
            total_lag += lag.unwrap_or(0);
            let m = owner.get(&(t.clone(), *p)).map(|i| &d.members[*i]);
            json!({
                "topic": t,
                "partition": p,
                "committed_offset": off,
                "log_end_offset": end,
                "lag": lag,
                "member_id": m.map(|m| m.member_id.clone()),
                "client_id": m.map(|m| m.client_id.clone()),
                "client_host": m.map(|m| m.client_host.clone()),
            })
        })
        .collect();
    Ok(json!({
        "group": group,
        "state": d.state,
        "protocol_type": d.protocol_type,
        "protocol": d.protocol,
        "members": members,
        "total_lag": total_lag,
        "partitions": rows,
    }))
}

fn print_group(d: &Value) {
    let text = |v: &Value| match v {
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    };
    println!("GROUP       {}", text(&d["group"]));
    println!("STATE       {}", text(&d["state"]));
    println!("PROTOCOL    {}", text(&d["protocol"]));
    println!(
        "MEMBERS     {}",
        d["members"].as_array().map_or(0, |m| m.len())
    );
    println!("TOTAL-LAG   {}", text(&d["total_lag"]));
    println!();
    let mut t = Table::new(&[
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "MEMBER-ID",
        "CLIENT-ID",
        "HOST",
    ]);
    for p in d["partitions"].as_array().into_iter().flatten() {
        t.row(
            [
                "topic",
                "partition",
                "committed_offset",
                "log_end_offset",
                "lag",
                "member_id",
                "client_id",
                "client_host",
            ]
            .iter()
            .map(|k| text(&p[*k]))
            .collect(),
        );
    }
    t.print();
}

async fn delete(cluster: &Cluster, format: Format, groups: &[String]) -> Result<(), CliError> {
    let mut results = Vec::new();
    for g in groups {
        let coordinator = cluster.coordinator(g).await?;
        for (id, c) in admin::delete_groups(&coordinator, std::slice::from_ref(g)).await? {
            let r = match c {
                code::NONE => Ok(()),
                c => Err(kafka_error(c, None)),
            };
            results.push((id, r));
        }
    }
    match format {
        Format::Json => print_json(&Value::Array(
            results
                .iter()
                .map(|(g, r)| match r {
                    Ok(()) => json!({"group": g, "ok": true}),
                    Err(e) => json!({"group": g, "ok": false, "error": e}),
                })
                .collect(),
        )),
        Format::Text => {
            let mut t = Table::new(&["GROUP", "STATUS"]);
            for (g, r) in &results {
                t.row(vec![
                    g.clone(),
                    r.clone().err().unwrap_or_else(|| "OK".into()),
                ]);
            }
            t.print();
        }
    }
    match results.iter().filter(|(_, r)| r.is_err()).count() {
        0 => Ok(()),
        n => Err(CliError::Failed(format!(
            "{n} of {} groups failed",
            results.len()
        ))),
    }
}

/// The new offset of a partition for `target`, given its log start and high watermark
/// and (for a timestamp) the offset ListOffsets found (-1: none at or after it).
fn new_offset(target: Target, start: i64, end: i64, found: Option<i64>) -> i64 {
    // `max` then `min`, not `clamp`: the two bounds come from separate requests, and a
    // log truncated in between may answer start > end (then the end wins).
    let within = |o: i64| o.max(start).min(end);
    match target {
        Target::Earliest => start.min(end),
        Target::Latest => end,
        Target::Timestamp(_) => match found {
            Some(o) if o >= 0 => within(o),
            _ => end,
        },
        Target::Offset(o) => within(o),
    }
}

async fn reset_offsets(
    cluster: &Cluster,
    format: Format,
    group: &str,
    selection: &[(String, Option<Vec<i32>>)],
    target: Target,
    dry_run: bool,
) -> Result<(), CliError> {
    let coordinator = cluster.coordinator(group).await?;
    let d = describe_at(&coordinator, group).await?;
    if !d.members.is_empty() {
        return Err(CliError::Failed(format!(
            "group {group} has {} active member(s) (state {}): stop its consumers before \
             resetting its offsets",
            d.members.len(),
            d.state
        )));
    }
    let committed = admin::offset_fetch_all(&coordinator, group).await?;
    let previous: BTreeMap<(String, i32), i64> = committed
        .iter()
        .map(|(t, p, o, _)| ((t.clone(), *p), *o))
        .collect();
    let named = !selection.is_empty();
    let wanted = if named {
        merge_selections(selection)
    } else {
        if committed.is_empty() {
            return Err(CliError::Failed(format!(
                "group {group} has no committed offsets: name the topics with --topic"
            )));
        }
        let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (t, p, _, _) in &committed {
            by_topic.entry(t.clone()).or_default().push(*p);
        }
        by_topic.into_iter().map(|(t, ps)| (t, Some(ps))).collect()
    };
    let mut plan = Vec::new();
    for (t, ps) in wanted {
        let (meta, tm) = match cluster.topic(&t).await {
            Ok(found) => found,
            // A topic the group once read and that is gone: nothing to reset there.
            Err(CliError::Failed(e)) if !named && e.contains("UNKNOWN_TOPIC_OR_PARTITION") => {
                eprintln!("corelog: skipping {t}: {e}");
                continue;
            }
            Err(e) => return Err(e),
        };
        let all: Vec<i32> = tm.partitions.iter().map(|p| p.partition).collect();
        let ps = ps.unwrap_or_else(|| all.clone());
        if let Some(p) = ps.iter().find(|p| !all.contains(p)) {
            return Err(CliError::Failed(format!("topic {t} has no partition {p}")));
        }
        let start = cluster.offsets(&meta, &tm, &ps, -2).await?;
        let end = cluster.offsets(&meta, &tm, &ps, -1).await?;
        let found = match target {
            Target::Timestamp(ts) => Some(cluster.offsets(&meta, &tm, &ps, ts).await?),
            _ => None,
        };
        for p in ps {
            let (s, e) = (start[&p], end[&p]);
            let f = found.as_ref().and_then(|f| f.get(&p).copied());
            plan.push((t.clone(), p, new_offset(target, s, e, f)));
        }
    }
    let mut status: BTreeMap<(String, i32), Result<(), String>> = BTreeMap::new();
    if !dry_run {
        let answered = admin::offset_commit_free(&coordinator, group, &plan).await?;
        for (t, p, c) in answered {
            let r = match c {
                code::NONE => Ok(()),
                c => Err(kafka_error(c, None)),
            };
            status.insert((t, p), r);
        }
    }
    let rows: Vec<_> = plan
        .iter()
        .map(|(t, p, new)| {
            let key = (t.clone(), *p);
            let r = if dry_run {
                Ok(())
            } else {
                status
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| Err("not answered".into()))
            };
            (t, *p, previous.get(&key).copied(), *new, r)
        })
        .collect();
    match format {
        Format::Json => print_json(&json!({
            "group": group,
            "dry_run": dry_run,
            "partitions": rows.iter().map(|(t, p, prev, new, r)| json!({
                "topic": t, "partition": p, "previous_offset": prev, "new_offset": new,
                "ok": r.is_ok(), "error": r.clone().err(),
            })).collect::<Vec<_>>(),
        })),
        Format::Text => {
            let mut table = Table::new(&[
                "TOPIC",
                "PARTITION",
                "PREVIOUS-OFFSET",
                "NEW-OFFSET",
                "STATUS",
            ]);
            for (t, p, prev, new, r) in &rows {
                table.row(vec![
                    t.to_string(),
                    p.to_string(),
                    prev.map_or("-".into(), |o| o.to_string()),
                    new.to_string(),
                    match r {
                        Ok(()) if dry_run => "not committed (--dry-run)".into(),
                        Ok(()) => "OK".into(),
                        Err(e) => e.clone(),
                    },
                ]);
            }
            table.print();
        }
    }
    match rows.iter().filter(|r| r.4.is_err()).count() {
        0 => Ok(()),
        n => Err(CliError::Failed(format!(
            "{n} of {} offsets were not committed",
            rows.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_selections_parse() {
        assert_eq!(parse_topic_selection("t"), Ok(("t".into(), None)));
        assert_eq!(
            parse_topic_selection("a:b:0,2"),
            Ok(("a:b".into(), Some(vec![0, 2])))
        );
        for bad in ["", ":1", "t:", "t:x", "t:-1", "t:1,,2"] {
            assert!(parse_topic_selection(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn new_offsets_stay_within_the_log() {
        use Target::*;
        assert_eq!(new_offset(Earliest, 5, 10, None), 5);
        assert_eq!(new_offset(Latest, 5, 10, None), 10);
        assert_eq!(new_offset(Offset(7), 5, 10, None), 7);
        assert_eq!(new_offset(Offset(2), 5, 10, None), 5);
        assert_eq!(new_offset(Offset(99), 5, 10, None), 10);
        assert_eq!(new_offset(Timestamp(1), 5, 10, Some(8)), 8);
        // No record at or after the time: past everything, as Kafka's tool does.
        assert_eq!(new_offset(Timestamp(1), 5, 10, Some(-1)), 10);
        // Bounds from a log truncated between the two requests: no panic, the end wins.
        assert_eq!(new_offset(Offset(7), 12, 10, None), 10);
        assert_eq!(new_offset(Earliest, 12, 10, None), 10);
    }

    #[test]
    fn repeated_topics_merge() {
        let sel = |t: &str, ps: Option<Vec<i32>>| (t.to_string(), ps);
        let got = merge_selections(&[
            sel("a", Some(vec![1])),
            sel("a", Some(vec![0, 1])),
            sel("b", Some(vec![2])),
            sel("b", None),
        ]);
        assert_eq!(got["a"], Some(vec![0, 1]));
        assert_eq!(got["b"], None);
    }
}
