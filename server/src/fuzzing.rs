//! Entry points for the coverage-guided fuzz targets in `tests/fuzz`; the broker does
//! not use this module.
//!
//! [`RequestTarget::frame`] takes a request frame (without its 4-byte size) through the
//! steps a connection takes: header decoding, then the API's handler on a real shard
//! (one executor, a temporary data directory, topic `t` with two partitions, the group
//! coordinator), and checks the answer is a well-framed response with the request's
//! correlation id. A panic anywhere is the fuzzer's finding.
//!
//! CreateTopics and CreatePartitions are not driven: their random counts would create
//! thousands of logs per input, which is a quota question, not a decoding one.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use glommio::{LocalExecutor, LocalExecutorBuilder};

use crate::api;
use crate::broker::affinity::ShardsTouched;
use crate::broker::shard::Shard;
use crate::protocol::{ApiKey, RequestHeader};

/// How long a request that waits by design (a Fetch long poll, a JoinGroup or SyncGroup
/// waiting for the other members) may take; it is then dropped, as the broker drops it
/// when the connection goes away. Other requests run to completion: a handler that
/// never finishes is a finding (libFuzzer's `-timeout`).
const LONG_POLL_LIMIT: Duration = Duration::from_millis(20);

/// The APIs that wait by design.
const LONG_POLLS: [ApiKey; 3] = [ApiKey::Fetch, ApiKey::JoinGroup, ApiKey::SyncGroup];

/// A shard that requests are run against, on an executor owned by the calling thread.
pub struct RequestTarget {
    executor: LocalExecutor,
    shard: Rc<Shard>,
    dir: PathBuf,
}

impl std::fmt::Debug for RequestTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestTarget")
            .field("dir", &self.dir)
            .finish()
    }
}

impl RequestTarget {
    /// Starts an executor and a shard with its data in a new directory under the system's
    /// temporary directory (removed on drop).
    pub fn new() -> RequestTarget {
        let dir = std::env::temp_dir().join(format!(
            "corelog-fuzz-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("create the fuzz data directory");
        let executor = LocalExecutorBuilder::default()
            .make()
            .expect("start an executor");
        let config = Arc::new(api::testkit::config(&dir));
        let shard = executor.run(api::testkit::shard(config));
        RequestTarget {
            executor,
            shard,
            dir,
        }
    }

    /// Runs one request frame; panics if the broker mishandles it.
    pub fn frame(&self, frame: &[u8]) {
        let Ok(Some((header, body_at))) = RequestHeader::decode(frame) else {
            return; // the connection closes with an error: nothing more to drive
        };
        if [ApiKey::CreateTopics, ApiKey::CreatePartitions]
            .iter()
            .any(|k| *k as i16 == header.api_key)
        {
            return;
        }
        let body = BytesMut::from(&frame[body_at..]);
        let shard = &self.shard;
        self.executor.run(async {
            let call = async {
                match api::handle(shard, &header, body, &ShardsTouched::default()).await {
                    Ok(answer) => answer.wait().await,
                    Err(_) => None,
                }
            };
            let answered = if LONG_POLLS.iter().any(|k| *k as i16 == header.api_key) {
                glommio::timer::timeout(LONG_POLL_LIMIT, async { Ok(call.await) })
                    .await
                    .ok()
                    .flatten()
            } else {
                call.await
            };
            if let Some(parts) = answered {
                let all: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
                assert!(all.len() >= 8, "a response shorter than its header");
                let size = i32::from_be_bytes(all[..4].try_into().expect("4 bytes"));
                assert_eq!(size as usize, all.len() - 4, "response size field");
                assert_eq!(
                    all[4..8],
                    header.correlation_id.to_be_bytes(),
                    "correlation id"
                );
            }
        });
    }
}

impl Default for RequestTarget {
    fn default() -> Self {
        RequestTarget::new()
    }
}

impl Drop for RequestTarget {
    fn drop(&mut self) {
        let shard = self.shard.clone();
        self.executor.run(async move { shard.close_all().await });
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
