//! Connections per client IP address, across all shards (`connections_max_per_ip`, as
//! Kafka's `max.connections.per.ip`): one client cannot take every connection slot.
//!
//! Each shard accepts on its own SO_REUSEPORT listener, so the count is process-wide: a
//! mutex-protected map, touched only when a connection opens or closes (never per
//! request). A connection's [`Slot`] travels with it when it moves to another shard and
//! gives its place back when dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The open connections of each client IP.
#[derive(Debug)]
pub struct ConnectionsPerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection's place in its IP's count; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    registry: Arc<ConnectionsPerIp>,
    ip: IpAddr,
}

impl ConnectionsPerIp {
    /// At most `max` connections per IP (`usize::MAX`: no limit).
    pub fn new(max: usize) -> Arc<Self> {
        assert!(max > 0, "a per-IP limit of zero would refuse everyone");
        Arc::new(ConnectionsPerIp {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more connection from `ip`, or `None` when it has `max` open.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            registry: self.clone(),
            ip,
        })
    }

    /// Open connections from `ip`.
    #[cfg(test)]
    pub fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Slot {
    /// A second place for the same IP, taken regardless of the limit: the connection
    /// keeps one while the other travels with it to another shard.
    pub fn duplicate(&self) -> Slot {
        let mut open = self.registry.open.lock().unwrap_or_else(|p| p.into_inner());
        *open.get_mut(&self.ip).expect("an admitted IP is counted") += 1;
        Slot {
            registry: self.registry.clone(),
            ip: self.ip,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.registry.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.get_mut(&self.ip).expect("an admitted IP is counted");
        assert!(*n > 0, "slot count of {} went negative", self.ip);
        *n -= 1;
        if *n == 0 {
            open.remove(&self.ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn each_ip_gets_at_most_max_and_places_come_back() {
        let r = ConnectionsPerIp::new(2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        let s1 = r.admit(a).unwrap();
        let _s2 = r.admit(a).unwrap();
        assert!(r.admit(a).is_none(), "the third from one IP is refused");
        let _t = r.admit(b).expect("another IP has its own count");
        drop(s1);
        assert_eq!(r.open(a), 1);
        assert!(r.admit(a).is_some());
    }

    /// Seeded random admits and drops from several threads (slots move between
    /// threads, as connections move between shards) never exceed the limit and end at
    /// zero.
    #[test]
    fn random_concurrent_admits_and_drops_keep_the_count() {
        let seed = 0x0009_1e55_u64;
        let r = ConnectionsPerIp::new(5);
        let ips: Vec<IpAddr> = (1..=3)
            .map(|i| format!("10.0.0.{i}").parse().unwrap())
            .collect();
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let (r, ips) = (r.clone(), ips.clone());
                std::thread::spawn(move || {
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed + t);
                    let mut held = Vec::new();
                    for _ in 0..2000 {
                        if rng.gen_bool(0.55) {
                            if let Some(s) = r.admit(ips[rng.gen_range(0..ips.len())]) {
                                held.push(s);
                            }
                        } else if !held.is_empty() {
                            held.swap_remove(rng.gen_range(0..held.len()));
                        }
                        for ip in &ips {
                            assert!(r.open(*ip) <= 5, "seed {seed:#x}");
                        }
                    }
                    held
                })
            })
            .collect();
        let held: Vec<Slot> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        for ip in &ips {
            assert_eq!(
                held.iter().filter(|s| s.ip == *ip).count(),
                r.open(*ip),
                "seed {seed:#x}"
            );
        }
        drop(held);
        assert!(ips.iter().all(|ip| r.open(*ip) == 0));
    }
}
