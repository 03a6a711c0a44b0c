//! Swarm object IDs: 128 random bits in base 36.

use num_bigint::BigUint;

/// Length of every swarm object ID: 128 bits need at most 25 base-36 digits.
pub const ID_LEN: usize = 25;

/// Random bytes behind an ID; 128 bits make collisions negligible without a registry.
const ID_BYTES: usize = 16;

/// A fresh node, cluster, service or task ID, shaped like swarmkit's `identity.NewID`:
/// 16 random bytes as a big-endian integer in lowercase base 36, zero-padded to 25.
pub fn new_id() -> String {
    base36(&rand::random::<[u8; ID_BYTES]>(), ID_LEN)
}

/// `bytes` read as a big-endian unsigned integer, in lowercase base 36, left-padded with
/// `'0'` to at least `width` characters (swarmkit's `%0*s` of `big.Int.Text(36)`).
pub fn base36(bytes: &[u8], width: usize) -> String {
    let digits = BigUint::from_bytes_be(bytes).to_str_radix(36);
    format!("{digits:0>width$}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_25_lowercase_base36_chars() {
        for _ in 0..200 {
            let id = new_id();
            assert_eq!(id.len(), ID_LEN, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()),
                "{id}"
            );
        }
    }

    #[test]
    fn ids_are_unique() {
        let ids: HashSet<String> = (0..1000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn base36_of_known_values() {
        assert_eq!(base36(&[0xff], 0), "73");
        assert_eq!(base36(&[0xff], 5), "00073");
        assert_eq!(base36(&[0x01, 0x00], 0), "74");
        assert_eq!(base36(&[35], 1), "z");
        assert_eq!(base36(&[0; 16], ID_LEN), "0".repeat(ID_LEN));
        assert_eq!(base36(&[], 3), "000");
    }

    #[test]
    fn base36_of_max_128_bits_fills_the_id_width() {
        assert_eq!(base36(&[0xff; 16], 0).len(), ID_LEN);
        assert_eq!(base36(&[0xff; 16], 0), "f5lxx1zz5pnorynqglhzmsp33");
    }
}
