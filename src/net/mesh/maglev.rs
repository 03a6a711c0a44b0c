//! Maglev consistent hashing: which backend a flow goes to.
//!
//! Each backend walks its own permutation of the table's slots (an offset and a skip derived from
//! two hashes of its name) and the backends take turns claiming their next free slot until the
//! table is full. Every backend ends up with the same number of slots, give or take one, and
//! when one backend leaves, most slots of the others stay where they were, so most established
//! flows keep their backend.
//!
//! The table depends only on the set of names, not on their order: the backends take their turns
//! in name order, so every node that sees the same tasks builds the same table.

use std::net::SocketAddr;

use crate::net::routes::Backend;

/// Maglev consistent hashing (Eisenbud et al., NSDI 2016) over a set of named backends.
#[derive(Clone, Debug)]
pub struct Maglev {
    /// The backend index (into the names given to [`Maglev::new`]) of each slot; empty when there
    /// are no backends. u32 keeps a 65537-slot table at 256 KB with no limit on the backends.
    table: Box<[u32]>,
}

impl Maglev {
    /// Table size: a prime well over 100 x the backends a service has.
    pub const DEFAULT_SIZE: usize = 65537;

    /// Builds the table for `names` (stable identities: task IDs), `size` must be prime.
    /// No names: an empty table whose lookups return None.
    ///
    /// With more names than slots, only the first `size` names in name order get a slot.
    ///
    /// # Panics
    ///
    /// If `size` is not prime: a skip sharing a factor with the size would not visit every slot.
    pub fn new<S: AsRef<str>>(names: &[S], size: usize) -> Maglev {
        assert!(is_prime(size), "Maglev table size {size} is not prime");
        if names.is_empty() {
            return Maglev {
                table: Box::new([]),
            };
        }
        let size = size as u64;

        // Turn order: by name, so the result does not depend on the caller's order.
        let mut order: Vec<u32> = (0..names.len() as u32).collect();
        order.sort_by(|&a, &b| names[a as usize].as_ref().cmp(names[b as usize].as_ref()));

        // Per backend, in turn order: (offset, skip, how far along its permutation it is).
        let mut walks: Vec<(u64, u64, u64)> = order
            .iter()
            .map(|&i| {
                let name = names[i as usize].as_ref().as_bytes();
                let offset = hash_bytes(OFFSET_SEED, name) % size;
                let skip = hash_bytes(SKIP_SEED, name) % (size - 1) + 1;
                (offset, skip, 0)
            })
            .collect();

        let mut table = vec![u32::MAX; size as usize].into_boxed_slice();
        let mut filled = 0;
        'fill: loop {
            for (&backend, (offset, skip, next)) in order.iter().zip(walks.iter_mut()) {
                // A prime size makes every skip coprime with it, so each walk visits every slot
                // and this finds a free one while any is left.
                let slot = loop {
                    let slot = ((*offset + *next * *skip) % size) as usize;
                    *next += 1;
                    if table[slot] == u32::MAX {
                        break slot;
                    }
                };
                table[slot] = backend;
                filled += 1;
                if filled == table.len() {
                    break 'fill;
                }
            }
        }
        Maglev { table }
    }

    /// The backend index (into `names`) for a flow hash; None when there are no backends.
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        // hash * len / 2^64 maps a well-mixed hash evenly onto the slots without a division.
        let slot = ((u128::from(hash) * self.table.len() as u128) >> 64) as usize;
        Some(self.table[slot] as usize)
    }
}

/// The Maglev table of `backends`, named by their tasks (so every node builds the same one).
pub fn maglev_for(backends: &[Backend]) -> Maglev {
    let names: Vec<&str> = backends.iter().map(|b| b.task_id.as_str()).collect();
    Maglev::new(&names, Maglev::DEFAULT_SIZE)
}

/// The backend of `backends` (those `maglev` was built for) for a flow from `client`, and on the
/// `attempt`-th try (0 first) the ones after it in turn, so that a retry skips a backend that
/// failed; `None` when there is none.
pub fn pick<'a>(
    maglev: &Maglev,
    backends: &'a [Backend],
    client: SocketAddr,
    attempt: usize,
) -> Option<&'a Backend> {
    let first = maglev.lookup(flow_hash(client))?;
    backends.get((first + attempt) % backends.len())
}

/// A well-mixed 64-bit hash of a client's address and port (deterministic, no allocation).
pub fn flow_hash(client: SocketAddr) -> u64 {
    let port = u64::from(client.port());
    match client {
        SocketAddr::V4(v4) => mix(FLOW_V4_SEED ^ ((u64::from(v4.ip().to_bits()) << 16) | port)),
        SocketAddr::V6(v6) => {
            let bits = v6.ip().to_bits();
            let high = mix(FLOW_V6_SEED ^ (bits >> 64) as u64);
            mix(high ^ bits as u64 ^ port.rotate_left(48))
        }
    }
}

/// Seeds of the two independent name hashes, and of the flow hash per family (arbitrary odd
/// constants; what matters is that they differ).
const OFFSET_SEED: u64 = 0xcbf2_9ce4_8422_2325;
const SKIP_SEED: u64 = 0x84ca_a73b_3f1d_5a6b;
const FLOW_V4_SEED: u64 = 0x2545_f491_4f6c_dd1d;
const FLOW_V6_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// FNV-1a from `seed` over `bytes`, finished with [`mix`] so every output bit depends on every
/// input bit (FNV alone leaves the low bits weak, and the table reduces by modulo).
fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut hash = seed;
    for &b in bytes {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(hash)
}

/// The splitmix64 finaliser: a bijection on u64 with full avalanche.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Trial division: table sizes are built rarely and are small enough for it.
fn is_prime(n: usize) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("task-{i:03}-x7q2")).collect()
    }

    /// Slots per backend, counted over the whole table.
    fn shares(maglev: &Maglev, backends: usize) -> Vec<usize> {
        let mut counts = vec![0; backends];
        for &backend in maglev.table.iter() {
            counts[backend as usize] += 1;
        }
        counts
    }

    #[test]
    fn every_backend_gets_an_even_share() {
        for n in 2..=50 {
            let maglev = Maglev::new(&names(n), Maglev::DEFAULT_SIZE);
            let even = Maglev::DEFAULT_SIZE as f64 / n as f64;
            for (backend, count) in shares(&maglev, n).into_iter().enumerate() {
                let off = (count as f64 - even).abs() / even;
                assert!(
                    off <= 0.01,
                    "{n} backends: backend {backend} has {count} slots"
                );
            }
        }
    }

    #[test]
    fn removing_a_backend_moves_about_its_share() {
        for n in [5, 10, 20] {
            let before_names = names(n);
            let before = Maglev::new(&before_names, Maglev::DEFAULT_SIZE);
            for removed in [0, n / 2, n - 1] {
                let mut after_names = before_names.clone();
                after_names.remove(removed);
                let after = Maglev::new(&after_names, Maglev::DEFAULT_SIZE);
                let moved = before
                    .table
                    .iter()
                    .zip(after.table.iter())
                    .filter(|&(&a, &b)| before_names[a as usize] != after_names[b as usize])
                    .count();
                let fraction = moved as f64 / Maglev::DEFAULT_SIZE as f64;
                // The removed backend's share must move; of the rest, only a little.
                let bound = 1.0 / n as f64 + 0.01;
                assert!(
                    fraction <= bound,
                    "{n} backends, removed {removed}: {fraction:.4} of slots moved"
                );
            }
        }
    }

    #[test]
    fn same_names_same_table_in_any_order() {
        let forward = names(10);
        let mut backward = forward.clone();
        backward.reverse();
        let a = Maglev::new(&forward, Maglev::DEFAULT_SIZE);
        let b = Maglev::new(&forward, Maglev::DEFAULT_SIZE);
        let c = Maglev::new(&backward, Maglev::DEFAULT_SIZE);
        for hash in (0..10_000u64).map(mix) {
            let picked = a.lookup(hash).unwrap();
            assert_eq!(b.lookup(hash), Some(picked));
            assert_eq!(backward[c.lookup(hash).unwrap()], forward[picked]);
        }
    }

    #[test]
    fn no_backends_no_answer() {
        let maglev = Maglev::new::<&str>(&[], Maglev::DEFAULT_SIZE);
        assert_eq!(maglev.lookup(0), None);
        assert_eq!(maglev.lookup(u64::MAX), None);
    }

    #[test]
    fn one_backend_takes_everything() {
        let maglev = Maglev::new(&["only"], Maglev::DEFAULT_SIZE);
        assert!(maglev.table.iter().all(|&b| b == 0));
        assert_eq!(maglev.lookup(u64::MAX), Some(0));
    }

    #[test]
    fn more_names_than_slots_fills_the_table() {
        let maglev = Maglev::new(&names(20), 7);
        assert!(maglev.table.iter().all(|&b| b < 20));
    }

    #[test]
    #[should_panic(expected = "not prime")]
    fn composite_size_is_refused() {
        Maglev::new(&["a"], 65536);
    }

    #[test]
    fn flow_hash_spreads_neighbouring_clients() {
        let maglev = Maglev::new(&names(4), Maglev::DEFAULT_SIZE);
        let mut counts = [0usize; 4];
        for port in 40000..48000u16 {
            let client = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 7), port));
            counts[maglev.lookup(flow_hash(client)).unwrap()] += 1;
        }
        // 2000 each if even; consecutive ports must not clump.
        assert!(
            counts.iter().all(|&c| (1800..2200).contains(&c)),
            "{counts:?}"
        );

        let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 40000));
        assert_eq!(flow_hash(v6), flow_hash(v6));
        let v6_other = SocketAddr::from((Ipv6Addr::LOCALHOST, 40001));
        assert_ne!(flow_hash(v6), flow_hash(v6_other));
    }
}
