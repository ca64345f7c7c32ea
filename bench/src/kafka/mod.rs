//! A lean async Kafka client for the load generator: just what producing, fetching and
//! consumer-group membership need, on glommio, at classic-encoding API versions that
//! Kafka, Redpanda and corelog all serve (see [`api::USED`]).

pub mod api;
pub mod codec;
pub mod conn;
pub mod group;
pub mod records;

pub use conn::Conn;

/// A client failure, said in words (what was asked, of whom, and what came back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError(pub String);

impl ClientError {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> ClientError {
        ClientError(msg.into())
    }

    /// A Kafka error code answered to `api`.
    pub fn kafka(api: &str, code: i16, msg: Option<String>) -> ClientError {
        match msg {
            Some(m) => ClientError(format!("{api}: error code {code}: {m}")),
            None => ClientError(format!("{api}: error code {code}")),
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClientError {}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), which the default
/// partitioner applies to keys: `partition = (murmur2(key) & 0x7fffffff) % partitions`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h = SEED ^ len as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes(c.try_into().expect("4 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key`.
pub fn partition_for_key(key: &[u8], partitions: usize) -> usize {
    (murmur2(key) & 0x7fff_ffff) as usize % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // The vectors of Kafka's UtilsTest.testMurmur2.
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (s, want) in cases {
            assert_eq!(murmur2(s.as_bytes()), want, "{s}");
        }
    }
}
