//! The topic catalog: every topic's name, id, partition count and config overrides, plus
//! the producer-id allocation mark. Shard 0 (the controller) owns the durable copy; every
//! shard holds a replica it reads without locks, replaced whenever shard 0 changes it.
//!
//! File `DATA_DIR/corelog-catalog.json`, rewritten whole and atomically (temporary file,
//! fsync, rename, fsync of the directory) before any change is acknowledged:
//! ```text
//! { "format": 1,
//!   "producer_id_block_end": 1000,   // ids below this may have been handed out
//!   "topics": { "<name>": { "id": "<32 hex digits>", "partitions": 4,
//!                           "configs": { "retention.ms": "60000" } } } }
//! ```
//! A catalog that does not parse stops the broker at start-up with the file named: it
//! is never silently replaced, since that would orphan every partition log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name inside the data directory.
pub const CATALOG_FILE: &str = "corelog-catalog.json";
const FORMAT: u32 = 1;

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Topic id (Metadata v10+), 32 hex digits on disk.
    #[serde(with = "hex_id")]
    pub id: [u8; 16],
    /// Partition count (only grows).
    pub partitions: u32,
    /// Config overrides, Kafka keys and string values.
    pub configs: BTreeMap<String, String>,
}

/// All topics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    format: u32,
    /// Producer ids below this may have been handed out; a restart continues from it.
    pub producer_id_block_end: i64,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicMeta>,
}

impl Catalog {
    /// The catalog path in `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(CATALOG_FILE)
    }

    /// Reads the catalog, or an empty one if there is none yet.
    pub fn load(data_dir: &Path) -> Result<Catalog, String> {
        let path = Catalog::path(data_dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Catalog {
                    format: FORMAT,
                    ..Catalog::default()
                })
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let c: Catalog = serde_json::from_slice(&bytes)
            .map_err(|e| format!("topic catalog {} is damaged: {e}", path.display()))?;
        if c.format != FORMAT {
            return Err(format!(
                "topic catalog {} has format {}, this broker reads {FORMAT}",
                path.display(),
                c.format
            ));
        }
        Ok(c)
    }

    /// Writes the catalog durably.
    pub fn store(&self, data_dir: &Path) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(self).expect("catalog serializes");
        let path = Catalog::path(data_dir);
        corelog_engine::fsutil::write_durable(&path, &bytes)
            .map_err(|e| format!("cannot write topic catalog: {e}"))
    }
}

/// Whether `name` is a legal topic name (Kafka's rule: 1-249 of `[a-zA-Z0-9._-]`, not
/// `.` or `..`), and not the internal offsets topic.
pub fn valid_topic_name(name: &str) -> bool {
    name != crate::group::offsets::OFFSETS_TOPIC
        && !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Directory of one partition log, Kafka's layout.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: u32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

mod hex_id {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&hex)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        let s = String::deserialize(d)?;
        let mut id = [0u8; 16];
        if s.len() != 32 {
            return Err(serde::de::Error::custom("topic id must be 32 hex digits"));
        }
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                .map_err(|_| serde::de::Error::custom("topic id must be hex"))?;
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_round_trips_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::load(dir.path()).unwrap();
        c.producer_id_block_end = 2000;
        c.topics.insert(
            "t".into(),
            TopicMeta {
                id: [7; 16],
                partitions: 3,
                configs: [("retention.ms".to_string(), "5".to_string())].into(),
            },
        );
        c.store(dir.path()).unwrap();
        assert_eq!(Catalog::load(dir.path()).unwrap(), c);
        std::fs::write(Catalog::path(dir.path()), b"{ not json").unwrap();
        assert!(Catalog::load(dir.path()).unwrap_err().contains("damaged"));
    }

    #[test]
    fn topic_names_follow_kafka() {
        assert!(valid_topic_name("a.b_c-1"));
        assert!(!valid_topic_name(".."));
        assert!(!valid_topic_name("a/b"));
        assert!(!valid_topic_name(&"x".repeat(250)));
    }
}
