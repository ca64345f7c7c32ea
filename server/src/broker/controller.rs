//! The controller: broker-wide changes, run on shard 0 one at a time. It keeps the
//! durable topic catalog and the producer-id blocks. A change is computed on a copy of
//! the catalog, stored (fsynced), applied by every shard (which opens, closes and
//! reconfigures the partitions it owns), and only then answered.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;

use glommio::sync::Semaphore;

use super::catalog::{valid_topic_name, Catalog, TopicMeta};
use super::router::{join_all, ConfigChange, ControlOp, NewTopic, Op, Reply};
use super::shard::{BoxFuture, Shard};
use super::topic_config::{TopicConfig, MAX_PARTITIONS};
use crate::config::BrokerConfig;
use crate::protocol::{ErrorCode, KafkaError};

/// Producer ids reserved durably at a time.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Controller state (shard 0 only).
#[derive(Debug)]
pub struct Controller {
    /// The durable catalog.
    catalog: RefCell<Catalog>,
    /// One catalog change at a time.
    changes: Semaphore,
    /// Next producer id to hand out.
    next_producer_id: Cell<i64>,
}
impl Controller {
    /// The controller of `catalog`, as loaded at start-up.
    pub fn new(catalog: Catalog) -> Controller {
        Controller {
            next_producer_id: Cell::new(catalog.producer_id_block_end),
            catalog: RefCell::new(catalog),
            changes: Semaphore::new(1),
        }
    }

    /// Sends the controller's catalog to every shard and waits for all of them.
    async fn broadcast_catalog(shard: &Rc<Shard>, catalog: &Catalog) -> Result<(), String> {
        let calls: Vec<BoxFuture<'_, Reply>> = (0..shard.shards)
            .map(|s| -> BoxFuture<'_, Reply> {
                Box::pin(shard.call(s, Op::ApplyCatalog(Box::new(catalog.clone()))))
            })
            .collect();
        for reply in join_all(calls).await {
            match reply {
                Reply::Applied(Ok(())) => {}
                Reply::Applied(Err(e)) => return Err(e),
                _ => return Err("a shard did not apply the catalog".into()),
            }
        }
        Ok(())
    }

    /// Runs a broker-wide change: computes the next catalog, stores it, has every shard
    /// apply it, then answers.
    pub async fn control(&self, shard: &Rc<Shard>, op: ControlOp) -> Reply {
        let Ok(_one_at_a_time) = self.changes.acquire_permit(1).await else {
            return Reply::Unreachable;
        };
        if let ControlOp::AllocateProducerId = op {
            return Reply::ProducerId(self.allocate_producer_id(&shard.config.data_dir).await);
        }
        let mut next = self.catalog.borrow().clone();
        let (results, validate_only) = match op {
            ControlOp::CreateTopics(topics, v) => {
                (create_topics(&shard.config, &mut next, topics), v)
            }
            ControlOp::DeleteTopics(names) => (delete_topics(&mut next, names), false),
            ControlOp::CreatePartitions(items, v) => (create_partitions(&mut next, items), v),
            ControlOp::AlterConfigs(items, v) => {
                (alter_configs(&shard.config, &mut next, items), v)
            }
            ControlOp::AllocateProducerId => unreachable!("handled above"),
        };
        if validate_only || next == *self.catalog.borrow() {
            return Reply::Control(results);
        }
        if let Err(e) = store(&next, &shard.config.data_dir).await {
            tracing::error!(error = %e, "catalog change not stored");
            let err = KafkaError::new(ErrorCode::KafkaStorageError, e);
            return Reply::Control(results.into_iter().map(|_| Err(err.clone())).collect());
        }
        *self.catalog.borrow_mut() = next.clone();
        if let Err(e) = Controller::broadcast_catalog(shard, &next).await {
            tracing::error!(error = %e, "catalog change not applied everywhere");
            let err = KafkaError::new(ErrorCode::KafkaStorageError, e);
            return Reply::Control(
                results
                    .into_iter()
                    .map(|r| r.and(Err(err.clone())))
                    .collect(),
            );
        }
        Reply::Control(results)
    }

    /// Hands out the next producer id, reserving a new block durably when needed.
    async fn allocate_producer_id(&self, data_dir: &Path) -> Result<i64, KafkaError> {
        let id = self.next_producer_id.get();
        if id >= self.catalog.borrow().producer_id_block_end {
            let mut next = self.catalog.borrow().clone();
            next.producer_id_block_end = id + PRODUCER_ID_BLOCK;
            store(&next, data_dir)
                .await
                .map_err(|e| KafkaError::new(ErrorCode::KafkaStorageError, e))?;
            *self.catalog.borrow_mut() = next;
        }
        self.next_producer_id.set(id + 1);
        Ok(id)
    }
}

fn create_topics(
    config: &BrokerConfig,
    c: &mut Catalog,
    topics: Vec<NewTopic>,
) -> Vec<Result<(), KafkaError>> {
    let defaults = &config.topic_defaults;
    topics
        .into_iter()
        .map(|t| {
            if !valid_topic_name(&t.name) {
                return Err(KafkaError::new(
                    ErrorCode::InvalidTopicException,
                    format!("'{}' is not a valid topic name", t.name),
                ));
            }
            if c.topics.contains_key(&t.name) {
                return Err(KafkaError::new(
                    ErrorCode::TopicAlreadyExists,
                    format!("topic '{}' already exists", t.name),
                ));
            }
            let partitions = if t.partitions == -1 {
                defaults.partitions as i32
            } else {
                t.partitions
            };
            if partitions < 1 || partitions as u32 > MAX_PARTITIONS {
                return Err(KafkaError::new(
                    ErrorCode::InvalidPartitions,
                    format!("partitions must be between 1 and {MAX_PARTITIONS}"),
                ));
            }
            if t.replication_factor != -1 && t.replication_factor != 1 {
                return Err(KafkaError::new(
                    ErrorCode::InvalidReplicationFactor,
                    "this broker is a single node: replication factor must be 1",
                ));
            }
            TopicConfig::resolve(&defaults.config, &t.configs)
                .map_err(|e| KafkaError::new(ErrorCode::InvalidConfig, e))?;
            c.topics.insert(
                t.name,
                TopicMeta {
                    id: new_topic_id(),
                    partitions: partitions as u32,
                    configs: t.configs,
                },
            );
            Ok(())
        })
        .collect()
}

fn alter_configs(
    config: &BrokerConfig,
    c: &mut Catalog,
    items: Vec<(String, Vec<ConfigChange>)>,
) -> Vec<Result<(), KafkaError>> {
    let defaults = &config.topic_defaults.config;
    items
        .into_iter()
        .map(|(topic, changes)| {
            let Some(meta) = c.topics.get_mut(&topic) else {
                return Err(KafkaError::from(ErrorCode::UnknownTopicOrPartition));
            };
            let mut configs = meta.configs.clone();
            for ch in changes {
                let invalid = |m: String| KafkaError::new(ErrorCode::InvalidConfig, m);
                if defaults.get(&ch.key).is_none() {
                    return Err(invalid(format!(
                        "unknown or unsupported topic config '{}'",
                        ch.key
                    )));
                }
                match (ch.op, ch.value) {
                    (0, Some(v)) => {
                        configs.insert(ch.key, v);
                    }
                    (1, _) => {
                        configs.remove(&ch.key);
                    }
                    (0, None) => return Err(invalid(format!("no value for '{}'", ch.key))),
                    _ => {
                        return Err(invalid(format!(
                            "'{}' is not a list: only SET and DELETE apply",
                            ch.key
                        )))
                    }
                }
            }
            TopicConfig::resolve(defaults, &configs)
                .map_err(|e| KafkaError::new(ErrorCode::InvalidConfig, e))?;
            meta.configs = configs;
            Ok(())
        })
        .collect()
}

/// Writes the catalog durably off the executor thread (it fsyncs).
async fn store(catalog: &Catalog, data_dir: &Path) -> Result<(), String> {
    let (catalog, dir) = (catalog.clone(), data_dir.to_path_buf());
    glommio::executor()
        .spawn_blocking(move || catalog.store(&dir))
        .await
}

fn delete_topics(c: &mut Catalog, names: Vec<String>) -> Vec<Result<(), KafkaError>> {
    names
        .into_iter()
        .map(|n| match c.topics.remove(&n) {
            Some(_) => Ok(()),
            None => Err(KafkaError::from(ErrorCode::UnknownTopicOrPartition)),
        })
        .collect()
}

fn create_partitions(c: &mut Catalog, items: Vec<(String, i32)>) -> Vec<Result<(), KafkaError>> {
    items
        .into_iter()
        .map(|(name, count)| {
            let Some(meta) = c.topics.get_mut(&name) else {
                return Err(KafkaError::from(ErrorCode::UnknownTopicOrPartition));
            };
            if count < 0 || (count as u32) <= meta.partitions || count as u32 > MAX_PARTITIONS {
                return Err(KafkaError::new(
                    ErrorCode::InvalidPartitions,
                    format!(
                        "topic '{name}' has {} partitions; the new count must be larger (and at most {MAX_PARTITIONS})",
                        meta.partitions
                    ),
                ));
            }
            meta.partitions = count as u32;
            Ok(())
        })
        .collect()
}

/// A random version-4 UUID.
fn new_topic_id() -> [u8; 16] {
    let mut id: [u8; 16] = rand::random();
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}
