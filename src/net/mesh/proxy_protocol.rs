//! The PROXY protocol, version 2 (haproxy's proxy-protocol.txt, section 2.2): a binary header
//! the mesh can put in front of a proxied connection so the backend learns the real client's
//! address instead of the mesh's.
//!
//! Layout: the 12-byte signature, a version/command byte (0x21: version 2, PROXY), a
//! family/transport byte, the big-endian length of what follows, then the source and
//! destination addresses and the source and destination ports, all big-endian.

use std::net::{IpAddr, SocketAddr};

/// Longest PROXY protocol v2 header `encode` writes (IPv6: 16 + 36).
pub const MAX_HEADER_LEN: usize = 52;

/// The transport a header describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A TCP connection (SOCK_STREAM).
    Stream,
    /// UDP datagrams (SOCK_DGRAM).
    Datagram,
}

/// The first twelve bytes of every v2 header, chosen by the spec never to start valid v1 or HTTP.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2 in the high nibble, command PROXY (the connection was relayed) in the low one.
const VERSION_2_PROXY: u8 = 0x21;
/// Signature, version/command, family/transport and the length.
const FIXED_LEN: usize = 16;
/// Two IPv4 addresses and two ports.
const IPV4_BLOCK_LEN: usize = 12;
/// Two IPv6 addresses and two ports.
const IPV6_BLOCK_LEN: usize = 36;
/// Address family nibbles of the family/transport byte.
const FAMILY_INET: u8 = 0x10;
const FAMILY_INET6: u8 = 0x20;

/// Writes a PROXY protocol v2 header (command PROXY) for a connection from `client` to `local`
/// (the address:port the client reached on this node) into `out`; returns its length.
/// Mixed families: an IPv4 address mapped in IPv6 is written as IPv4; otherwise both as IPv6.
pub fn encode(
    client: SocketAddr,
    local: SocketAddr,
    transport: Transport,
    out: &mut [u8; MAX_HEADER_LEN],
) -> usize {
    let transport = match transport {
        Transport::Stream => 0x01,
        Transport::Datagram => 0x02,
    };
    out[..12].copy_from_slice(&SIGNATURE);
    out[12] = VERSION_2_PROXY;

    // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; unmap them first.
    let block = match (client.ip().to_canonical(), local.ip().to_canonical()) {
        (IpAddr::V4(source), IpAddr::V4(destination)) => {
            out[13] = FAMILY_INET | transport;
            out[16..20].copy_from_slice(&source.octets());
            out[20..24].copy_from_slice(&destination.octets());
            IPV4_BLOCK_LEN
        }
        (source, destination) => {
            out[13] = FAMILY_INET6 | transport;
            out[16..32].copy_from_slice(&as_ipv6(source));
            out[32..48].copy_from_slice(&as_ipv6(destination));
            IPV6_BLOCK_LEN
        }
    };
    out[14..16].copy_from_slice(&(block as u16).to_be_bytes());
    let ports = FIXED_LEN + block - 4;
    out[ports..ports + 2].copy_from_slice(&client.port().to_be_bytes());
    out[ports + 2..ports + 4].copy_from_slice(&local.port().to_be_bytes());
    FIXED_LEN + block
}

/// An address as the 16 bytes of IPv6, IPv4 mapped (::ffff:a.b.c.d).
fn as_ipv6(address: IpAddr) -> [u8; 16] {
    match address {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Reads a header back as a backend would, independently of `encode`'s offsets:
    /// (transport, client, local, header length).
    fn decode(bytes: &[u8]) -> (Transport, SocketAddr, SocketAddr, usize) {
        assert_eq!(
            &bytes[..12],
            b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"
        );
        assert_eq!(bytes[12] >> 4, 2, "version");
        assert_eq!(bytes[12] & 0x0f, 1, "command PROXY");
        let transport = match bytes[13] & 0x0f {
            1 => Transport::Stream,
            2 => Transport::Datagram,
            other => panic!("transport {other}"),
        };
        let len = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
        let body = &bytes[16..16 + len];
        let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
        let (client, local) = match bytes[13] >> 4 {
            1 => {
                assert_eq!(len, 12);
                let ip = |at: usize| IpAddr::from(<[u8; 4]>::try_from(&body[at..at + 4]).unwrap());
                (
                    SocketAddr::new(ip(0), port(8)),
                    SocketAddr::new(ip(4), port(10)),
                )
            }
            2 => {
                assert_eq!(len, 36);
                let ip =
                    |at: usize| IpAddr::from(<[u8; 16]>::try_from(&body[at..at + 16]).unwrap());
                (
                    SocketAddr::new(ip(0), port(32)),
                    SocketAddr::new(ip(16), port(34)),
                )
            }
            other => panic!("family {other}"),
        };
        (transport, client, local, 16 + len)
    }

    #[test]
    fn ipv4_tcp_exact_bytes() {
        let client = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 10), 51234));
        let local = SocketAddr::from((Ipv4Addr::new(198, 51, 100, 1), 8080));
        let mut out = [0u8; MAX_HEADER_LEN];
        let len = encode(client, local, Transport::Stream, &mut out);
        let expected: [u8; 28] = [
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54,
            0x0a, // signature
            0x21, 0x11, 0x00, 0x0c, // v2 PROXY, TCP over IPv4, 12 bytes
            192, 0, 2, 10, // source
            198, 51, 100, 1, // destination
            0xc8, 0x22, // 51234
            0x1f, 0x90, // 8080
        ];
        assert_eq!(&out[..len], &expected);
        assert_eq!(decode(&out[..len]), (Transport::Stream, client, local, 28));
    }

    #[test]
    fn ipv6_udp_exact_bytes() {
        let client: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
        let local: SocketAddr = "[2001:db8::ff]:53".parse().unwrap();
        let mut out = [0u8; MAX_HEADER_LEN];
        let len = encode(client, local, Transport::Datagram, &mut out);
        let mut expected = Vec::from(*b"\r\n\r\n\0\r\nQUIT\n");
        expected.extend_from_slice(&[0x21, 0x22, 0x00, 0x24]);
        expected.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&[
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
        ]);
        expected.extend_from_slice(&[0x9c, 0x40, 0x00, 0x35]);
        assert_eq!(len, MAX_HEADER_LEN);
        assert_eq!(&out[..len], &expected[..]);
        assert_eq!(
            decode(&out[..len]),
            (Transport::Datagram, client, local, MAX_HEADER_LEN)
        );
    }

    #[test]
    fn mapped_ipv4_is_written_as_ipv4() {
        let mapped = Ipv4Addr::new(203, 0, 113, 5).to_ipv6_mapped();
        let client = SocketAddr::from((mapped, 1000));
        let local = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 80));
        let mut out = [0u8; MAX_HEADER_LEN];
        let len = encode(client, local, Transport::Stream, &mut out);
        let (_, decoded_client, decoded_local, _) = decode(&out[..len]);
        assert_eq!(len, 28);
        assert_eq!(
            decoded_client,
            SocketAddr::from((Ipv4Addr::new(203, 0, 113, 5), 1000))
        );
        assert_eq!(decoded_local, local);
    }

    #[test]
    fn mixed_families_are_written_as_ipv6() {
        let client = SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7), 1000));
        let local = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 80));
        let mut out = [0u8; MAX_HEADER_LEN];
        let len = encode(client, local, Transport::Stream, &mut out);
        let (transport, decoded_client, decoded_local, decoded_len) = decode(&out[..len]);
        assert_eq!((transport, decoded_len), (Transport::Stream, 52));
        assert_eq!(out[13], 0x21);
        assert_eq!(decoded_client, client);
        assert_eq!(
            decoded_local,
            SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped(), 80))
        );
    }
}
