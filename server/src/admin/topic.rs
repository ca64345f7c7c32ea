//! `corelog topic create|list|describe|delete|add-partitions|alter-config`.

use clap::{Args, Subcommand};
use corelog_bench::kafka::admin::{self, AlterOp, NewTopic, TopicResult};
use corelog_bench::kafka::api::code;
use serde_json::{json, Value};

use super::cluster::{kafka_error, Cluster};
use super::output::{print_json, Table};
use super::{key_value, run_on_executor, CliError, Connect, Deadline, Format};

/// `corelog topic`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  corelog topic create orders -p 12 -c retention.ms=86400000
  corelog topic list --format json
  corelog topic describe orders
  corelog topic add-partitions orders -n 4
  corelog topic alter-config orders --set retention.bytes=1073741824 --delete retention.ms
  corelog topic delete orders")]
pub struct TopicArgs {
    #[command(flatten)]
    connect: Connect,
    #[command(flatten)]
    deadline: Deadline,
    /// Output format
    #[arg(long, global = true, value_enum, default_value_t)]
    format: Format,
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create topics
    Create {
        /// Topic names
        #[arg(required = true)]
        topics: Vec<String>,
        /// Partitions of each (-1: the broker's default)
        #[arg(short, long, default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replication factor (-1: the broker's default)
        #[arg(short, long, default_value_t = -1, allow_negative_numbers = true)]
        replicas: i16,
        /// A topic config, KEY=VALUE (repeatable)
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// A topic that already exists is not a failure
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List topics
    List {
        /// Include internal topics
        #[arg(short, long)]
        internal: bool,
    },
    /// Show topics' partitions (leaders, offsets) and configs
    Describe {
        /// Topic names
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Delete topics and their data
    Delete {
        /// Topic names
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Add partitions to topics (existing keys may then map to other partitions)
    AddPartitions {
        /// Topic names
        #[arg(required = true)]
        topics: Vec<String>,
        /// How many partitions to add to each
        #[arg(short, long)]
        num: i32,
    },
    /// Set or remove topic configs
    AlterConfig {
        /// Topic names
        #[arg(required = true)]
        topics: Vec<String>,
        /// Set KEY to VALUE (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Remove KEY, back to its default (repeatable)
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
}

/// Runs `corelog topic ...`.
pub fn run(args: TopicArgs) -> Result<(), CliError> {
    let TopicArgs {
        connect,
        deadline,
        format,
        command,
    } = args;
    // Check what can be checked before connecting.
    let request = match command {
        TopicCommand::Create {
            topics,
            partitions,
            replicas,
            configs,
            if_not_exists,
        } => {
            if partitions == 0 || partitions < -1 || replicas == 0 || replicas < -1 {
                return Err(CliError::Usage(
                    "--partitions and --replicas must be positive (or -1 for the default)".into(),
                ));
            }
            let configs = configs
                .iter()
                .map(|c| key_value(c, "--config"))
                .collect::<Result<Vec<_>, _>>()?;
            let new = topics
                .into_iter()
                .map(|name| NewTopic {
                    name,
                    partitions,
                    replication_factor: replicas,
                    configs: configs.clone(),
                })
                .collect();
            Request::Create(new, if_not_exists)
        }
        TopicCommand::List { internal } => Request::List(internal),
        TopicCommand::Describe { topics } => Request::Describe(topics),
        TopicCommand::Delete { topics } => Request::Delete(topics),
        TopicCommand::AddPartitions { topics, num } => {
            if num <= 0 {
                return Err(CliError::Usage("--num must be positive".into()));
            }
            Request::AddPartitions(topics, num)
        }
        TopicCommand::AlterConfig {
            topics,
            set,
            delete,
        } => {
            let mut ops = Vec::new();
            for s in &set {
                let (k, v) = key_value(s, "--set")?;
                ops.push(AlterOp::Set(k, v));
            }
            ops.extend(delete.into_iter().map(AlterOp::Delete));
            if ops.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give --set KEY=VALUE or --delete KEY".into(),
                ));
            }
            Request::AlterConfig(topics, ops)
        }
    };
    let broker_ms = deadline.broker_ms();
    run_on_executor(Some(deadline.total()), move || async move {
        let cluster = Cluster::connect(&connect.bootstrap).await?;
        match request {
            Request::Create(new, if_not_exists) => {
                create(&cluster, format, new, if_not_exists, broker_ms).await
            }
            Request::List(internal) => list(&cluster, format, internal).await,
            Request::Describe(topics) => describe(&cluster, format, &topics).await,
            Request::Delete(topics) => delete(&cluster, format, &topics, broker_ms).await,
            Request::AddPartitions(topics, num) => {
                add_partitions(&cluster, format, &topics, num, broker_ms).await
            }
            Request::AlterConfig(topics, ops) => {
                alter_config(&cluster, format, &topics, &ops).await
            }
        }
    })
}

enum Request {
    Create(Vec<NewTopic>, bool),
    List(bool),
    Describe(Vec<String>),
    Delete(Vec<String>),
    AddPartitions(Vec<String>, i32),
    AlterConfig(Vec<String>, Vec<AlterOp>),
}

/// One topic's outcome: what was done, or why not.
type Outcome = (String, Result<String, String>);

/// Prints one outcome per topic (`TOPIC STATUS`); fails when any topic failed.
fn report(format: Format, results: &[Outcome]) -> Result<(), CliError> {
    match format {
        Format::Json => print_json(&Value::Array(
            results
                .iter()
                .map(|(t, r)| match r {
                    Ok(s) => json!({"topic": t, "ok": true, "status": s}),
                    Err(e) => json!({"topic": t, "ok": false, "error": e}),
                })
                .collect(),
        )),
        Format::Text => {
            let mut t = Table::new(&["TOPIC", "STATUS"]);
            for (name, r) in results {
                t.row(vec![name.clone(), r.clone().unwrap_or_else(|e| e)]);
            }
            t.print();
        }
    }
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    match failed {
        0 => Ok(()),
        n => Err(CliError::Failed(format!(
            "{n} of {} topics failed",
            results.len()
        ))),
    }
}

fn outcome(r: &TopicResult) -> Outcome {
    let (name, code, msg) = r;
    let status = match *code {
        code::NONE => Ok("OK".to_string()),
        c => Err(kafka_error(c, msg.as_deref())),
    };
    (name.clone(), status)
}

async fn create(
    cluster: &Cluster,
    format: Format,
    new: Vec<NewTopic>,
    if_not_exists: bool,
    broker_ms: i32,
) -> Result<(), CliError> {
    let controller = cluster.controller().await?;
    let answered = admin::create_topics(&controller, &new, broker_ms).await?;
    let results: Vec<_> = answered
        .iter()
        .map(|r| match r.1 {
            code::TOPIC_ALREADY_EXISTS if if_not_exists => {
                (r.0.clone(), Ok("OK (it existed)".to_string()))
            }
            _ => outcome(r),
        })
        .collect();
    report(format, &results)
}

async fn list(cluster: &Cluster, format: Format, internal: bool) -> Result<(), CliError> {
    let meta = cluster.metadata(None).await?;
    let topics: Vec<_> = meta
        .topics
        .iter()
        .filter(|t| internal || !t.internal)
        .collect();
    let replicas = |t: &admin::TopicMeta| t.partitions.first().map_or(0, |p| p.replicas.len());
    match format {
        Format::Json => print_json(&Value::Array(
            topics
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "partitions": t.partitions.len(),
                        "replicas": replicas(t),
                        "internal": t.internal,
                    })
                })
                .collect(),
        )),
        Format::Text => {
            let mut table = Table::new(&["NAME", "PARTITIONS", "REPLICAS"]);
            for t in &topics {
                table.row(vec![
                    t.name.clone(),
                    t.partitions.len().to_string(),
                    replicas(t).to_string(),
                ]);
            }
            table.print();
        }
    }
    Ok(())
}

async fn describe(cluster: &Cluster, format: Format, topics: &[String]) -> Result<(), CliError> {
    let mut described = Vec::new();
    let mut failures = Vec::new();
    for name in topics {
        match describe_one(cluster, name).await {
            Ok(v) => described.push(v),
            Err(CliError::Failed(e)) => {
                eprintln!("corelog: {e}");
                failures.push(e);
            }
            Err(e) => return Err(e),
        }
    }
    match format {
        Format::Json => print_json(&Value::Array(described.clone())),
        Format::Text => {
            for (i, d) in described.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print_description(d);
            }
        }
    }
    match failures.len() {
        0 => Ok(()),
        n => Err(CliError::Failed(format!(
            "{n} of {} topics could not be described",
            topics.len()
        ))),
    }
}

/// One topic as JSON: its partitions with leaders and offsets, and its configs.
async fn describe_one(cluster: &Cluster, name: &str) -> Result<Value, CliError> {
    let (meta, topic) = cluster.topic(name).await?;
    let ids: Vec<i32> = topic.partitions.iter().map(|p| p.partition).collect();
    let start = cluster.offsets(&meta, &topic, &ids, -2).await?;
    let end = cluster.offsets(&meta, &topic, &ids, -1).await?;
    let configs = match admin::describe_topic_configs(cluster.bootstrap(), name).await? {
        Ok(c) => c,
        Err((c, m)) => {
            return Err(CliError::Failed(format!(
                "configs of topic {name}: {}",
                kafka_error(c, m.as_deref())
            )))
        }
    };
    Ok(json!({
        "name": name,
        "internal": topic.internal,
        "partitions": topic.partitions.iter().map(|p| json!({
            "partition": p.partition,
            "leader": p.leader,
            "replicas": p.replicas,
            "isr": p.isr,
            "log_start_offset": start.get(&p.partition),
            "high_watermark": end.get(&p.partition),
        })).collect::<Vec<_>>(),
        "configs": configs.iter().map(|c| json!({
            "name": c.name,
            "value": if c.sensitive { None } else { c.value.clone() },
            "source": c.source_name(),
            "read_only": c.read_only,
            "sensitive": c.sensitive,
        })).collect::<Vec<_>>(),
    }))
}

fn print_description(d: &Value) {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    };
    let parts = d["partitions"].as_array().cloned().unwrap_or_default();
    println!("NAME        {}", text(&d["name"]));
    println!("PARTITIONS  {}", parts.len());
    println!(
        "REPLICAS    {}",
        parts
            .first()
            .and_then(|p| p["replicas"].as_array())
            .map_or(0, |r| r.len())
    );
    println!();
    let mut t = Table::new(&["KEY", "VALUE", "SOURCE"]);
    for c in d["configs"].as_array().into_iter().flatten() {
        t.row(vec![
            text(&c["name"]),
            text(&c["value"]),
            text(&c["source"]),
        ]);
    }
    t.print();
    println!();
    let mut t = Table::new(&[
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "LOG-START-OFFSET",
        "HIGH-WATERMARK",
    ]);
    for p in &parts {
        t.row(vec![
            text(&p["partition"]),
            text(&p["leader"]),
            text(&p["replicas"]),
            text(&p["log_start_offset"]),
            text(&p["high_watermark"]),
        ]);
    }
    t.print();
}

async fn delete(
    cluster: &Cluster,
    format: Format,
    topics: &[String],
    broker_ms: i32,
) -> Result<(), CliError> {
    let controller = cluster.controller().await?;
    let answered = admin::delete_topics(&controller, topics, broker_ms).await?;
    report(format, &answered.iter().map(outcome).collect::<Vec<_>>())
}

async fn add_partitions(
    cluster: &Cluster,
    format: Format,
    topics: &[String],
    num: i32,
    broker_ms: i32,
) -> Result<(), CliError> {
    let meta = cluster.metadata(Some(topics)).await?;
    let mut counts = Vec::new();
    let mut results = Vec::new();
    for name in topics {
        match meta.topic(name) {
            Some(t) if t.error_code == code::NONE => {
                let total = (t.partitions.len() as i32).saturating_add(num);
                counts.push((name.clone(), total));
            }
            Some(t) => results.push((name.clone(), Err(kafka_error(t.error_code, None)))),
            None => results.push((name.clone(), Err("not answered".into()))),
        }
    }
    if !counts.is_empty() {
        let controller = cluster.controller().await?;
        let answered = admin::create_partitions(&controller, &counts, broker_ms).await?;
        results.extend(answered.iter().map(outcome));
    }
    report(format, &results)
}

async fn alter_config(
    cluster: &Cluster,
    format: Format,
    topics: &[String],
    ops: &[AlterOp],
) -> Result<(), CliError> {
    let mut results = Vec::new();
    for name in topics {
        let r = admin::alter_topic_configs(cluster.bootstrap(), name, ops).await?;
        results.push((
            name.clone(),
            match r {
                None => Ok("OK".to_string()),
                Some((c, m)) => Err(kafka_error(c, m.as_deref())),
            },
        ));
    }
    report(format, &results)
}
