//! Which shard owns a partition, and which owns a group: pure functions of the name and
//! the shard count, so every shard computes the same answer without asking anyone.
//!
//! `owner(topic, p, n) = (fnv1a_32(topic) + p) mod n`: consecutive partitions of a topic
//! land on consecutive shards (an even spread for any partition count), and different
//! topics start at different shards. Adding partitions never moves existing ones.
//! Changing the shard count between runs moves partitions, which is fine: ownership is
//! decided at start-up and every partition log is a directory any shard can open.

/// FNV-1a, 32 bits: small, stable across versions and platforms (std's hasher is not).
pub fn fnv1a_32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The shard that owns partition `partition` of `topic` among `shards` shards.
pub fn partition_owner(topic: &str, partition: u32, shards: usize) -> usize {
    assert!(shards > 0);
    ((u64::from(fnv1a_32(topic.as_bytes())) + u64::from(partition)) % shards as u64) as usize
}

/// The shard that coordinates everything broker-wide (topic catalog, producer ids).
pub const CONTROLLER_SHARD: usize = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_and_partitions_spread() {
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        let mut counts = [0; 3];
        for p in 0..9 {
            counts[partition_owner("orders", p, 3)] += 1;
        }
        assert_eq!(counts, [3, 3, 3]);
        assert!((0..50).all(|p| partition_owner("x", p, 1) == 0));
    }
}
