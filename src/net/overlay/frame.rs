//! Where the headers of an inner Ethernet frame are, as far as TSO and GRO need to know.
//!
//! Fixed offsets rather than full smoltcp parsing: these run once per segment on the fast path
//! and need only lengths, the addresses and a few TCP fields.

/// Length of an Ethernet header without VLAN tag (the bridge strips none; the overlay has none).
pub const ETHERNET_HEADER_LEN: usize = 14;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// IP protocol number of TCP.
pub const IP_PROTOCOL_TCP: u8 = 6;
/// Offset of the checksum in a TCP header.
pub const TCP_CHECKSUM_OFFSET: usize = 16;

/// TCP flag bits (byte 13 of the header).
pub mod tcp_flags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Push buffered data to the application.
    pub const PSH: u8 = 0x08;
    /// The acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// ECN: congestion window reduced.
    pub const CWR: u8 = 0x80;
}

/// The EtherType of an Ethernet frame, if it is long enough to have one.
#[inline]
pub fn ethertype(frame: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]))
}

/// Offsets of the headers of a TCP segment in an Ethernet frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLayout {
    /// IPv6 rather than IPv4.
    pub ipv6: bool,
    /// Start of the TCP header (the IP header starts at [`ETHERNET_HEADER_LEN`]).
    pub l4: usize,
    /// Start of the TCP payload.
    pub payload: usize,
}

impl TcpLayout {
    /// Finds the headers of `frame` if it is TCP over IPv4 (unfragmented) or over IPv6 (without
    /// extension headers) and the headers fit in it. Length fields are not checked against the
    /// frame: a TSO super-frame may carry any.
    pub fn of(frame: &[u8]) -> Option<TcpLayout> {
        let l3 = ETHERNET_HEADER_LEN;
        let (ipv6, l4) = match ethertype(frame)? {
            ETHERTYPE_IPV4 => {
                let ip = frame.get(l3..l3 + 20)?;
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let flags_fragment = u16::from_be_bytes([ip[6], ip[7]]);
                if ip[0] >> 4 != 4
                    || ihl < 20
                    || ip[9] != IP_PROTOCOL_TCP
                    // More fragments, or a fragment offset.
                    || flags_fragment & 0x3fff != 0
                {
                    return None;
                }
                (false, l3 + ihl)
            }
            ETHERTYPE_IPV6 => {
                let ip = frame.get(l3..l3 + 40)?;
                if ip[0] >> 4 != 6 || ip[6] != IP_PROTOCOL_TCP {
                    return None;
                }
                (true, l3 + 40)
            }
            _ => return None,
        };
        let data_offset = usize::from(*frame.get(l4 + 12)? >> 4) * 4;
        let payload = l4 + data_offset;
        if data_offset < 20 || payload > frame.len() {
            return None;
        }
        Some(TcpLayout { ipv6, l4, payload })
    }

    /// The pseudo-header sum of this frame's TCP segment if it were `tcp_len` bytes long.
    pub fn pseudo_header(&self, frame: &[u8], tcp_len: usize) -> u64 {
        use super::checksum::{pseudo_header_v4, pseudo_header_v6};
        let l3 = ETHERNET_HEADER_LEN;
        // Headers were checked by `of`, and lengths fit 32 bits by construction.
        if self.ipv6 {
            let src = frame[l3 + 8..l3 + 24].try_into().expect("16 bytes");
            let dst = frame[l3 + 24..l3 + 40].try_into().expect("16 bytes");
            pseudo_header_v6(src, dst, IP_PROTOCOL_TCP, tcp_len as u32)
        } else {
            let src = frame[l3 + 12..l3 + 16].try_into().expect("4 bytes");
            let dst = frame[l3 + 16..l3 + 20].try_into().expect("4 bytes");
            pseudo_header_v4(src, dst, IP_PROTOCOL_TCP, tcp_len as u32)
        }
    }
}
