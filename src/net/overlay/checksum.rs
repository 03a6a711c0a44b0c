//! The Internet checksum (RFC 1071), fast enough for the per-segment work of TSO and GRO.
//!
//! Sums are kept unfolded in a `u64` so that parts (pseudo-header, headers, payload) can be
//! added separately and folded once.

/// Adds `data` to the running sum `acc`. A part must start at an even offset of the checksummed
/// range for the parts to add up; only the last part may have an odd length.
#[inline]
pub fn add(acc: u64, data: &[u8]) -> u64 {
    // Sum 32-bit words in host order into a wide accumulator: no carries to propagate, so the
    // loop vectorises. The one's-complement sum of byte-swapped words is the byte-swapped sum
    // (RFC 1071 section 2(B)), so folding and swapping gives the network-order sum.
    let mut words = data.chunks_exact(4);
    let native: u64 = (&mut words)
        .map(|w| u64::from(u32::from_ne_bytes(w.try_into().expect("chunks of 4"))))
        .sum();
    let folded = fold(native);
    let folded = if cfg!(target_endian = "little") {
        folded.swap_bytes()
    } else {
        folded
    };
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    // Each call adds less than 2^33: a running sum cannot overflow in any realistic use.
    acc + u64::from(folded) + u64::from(u32::from_be_bytes(tail))
}

/// Folds a running sum to 16 bits (not complemented: what a `NEEDS_CSUM` field holds).
#[inline]
pub fn fold(acc: u64) -> u16 {
    let mut s = (acc >> 32) + (acc & 0xffff_ffff);
    s = (s >> 32) + (s & 0xffff_ffff);
    s = (s >> 16) + (s & 0xffff);
    s = (s >> 16) + (s & 0xffff);
    s as u16
}

/// The checksum field value for a running sum: folded and complemented.
#[inline]
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// The IPv4 pseudo-header sum for an L4 segment of `len` bytes of protocol `protocol`.
#[inline]
pub fn pseudo_header_v4(src: &[u8; 4], dst: &[u8; 4], protocol: u8, len: u32) -> u64 {
    u64::from(u32::from_be_bytes(*src))
        + u64::from(u32::from_be_bytes(*dst))
        + u64::from(protocol)
        + u64::from(len)
}

/// The IPv6 pseudo-header sum for an L4 segment of `len` bytes of protocol `protocol`.
#[inline]
pub fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], protocol: u8, len: u32) -> u64 {
    let acc = add(add(0, src), dst);
    acc + u64::from(protocol) + u64::from(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 the slow way: 16-bit words, carries folded at the end.
    fn reference(data: &[u8]) -> u16 {
        let mut sum: u64 = 0;
        for pair in data.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u64::from(word);
        }
        while sum > 0xffff {
            sum = (sum >> 16) + (sum & 0xffff);
        }
        !(sum as u16)
    }

    #[test]
    fn matches_the_reference_on_every_length() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7919 % 251) as u8 ^ 0xA5).collect();
        for len in 0..data.len() {
            assert_eq!(
                finish(add(0, &data[..len])),
                reference(&data[..len]),
                "{len}"
            );
        }
        let ones = [0xffu8; 64];
        assert_eq!(finish(add(0, &ones)), reference(&ones));
    }

    #[test]
    fn parts_add_up() {
        let data: Vec<u8> = (0..200u8).collect();
        let whole = finish(add(0, &data));
        let parts = finish(add(add(add(0, &data[..8]), &data[8..70]), &data[70..]));
        assert_eq!(whole, parts);
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        assert_eq!(
            fold(add(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])),
            0xddf2
        );
    }
}
