//! TSO in userspace: cutting a TCP super-frame read from the TAP into MSS-sized frames, and
//! finishing the checksum of a single frame the kernel left to the device.
//!
//! Each produced frame follows a caller-given prefix (the VXLAN header), all of them back to
//! back in one buffer, every one but the last the same length: exactly the layout a UDP GSO
//! `sendmsg` wants.

use super::checksum;
use super::frame::{ETHERNET_HEADER_LEN, TCP_CHECKSUM_OFFSET, TcpLayout, tcp_flags};
use super::wire::{VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_GSO_TCPV6, VnetHeader};

/// Why a frame could not be segmented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentError {
    /// The frame does not match its virtio-net header (not TCP, truncated headers, checksum
    /// position outside the frame, ...).
    Malformed,
    /// The output buffer cannot hold the segments.
    OutputTooSmall,
}

/// What [`segment`] wrote: `count` segments of `segment_len` bytes (prefix included), the last
/// possibly shorter, `len` bytes in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentRun {
    /// Length of every segment but the last.
    pub segment_len: usize,
    /// Number of segments.
    pub count: usize,
    /// Total bytes written.
    pub len: usize,
}

/// Completes the checksum of a non-GSO `frame` in place if `vnet` asks for it
/// ([`VNET_F_NEEDS_CSUM`]: the field holds the pseudo-header sum, the device adds the rest).
pub fn complete_checksum(frame: &mut [u8], vnet: &VnetHeader) -> Result<(), SegmentError> {
    if vnet.flags & VNET_F_NEEDS_CSUM == 0 {
        return Ok(());
    }
    let start = usize::from(vnet.csum_start);
    let field = start + usize::from(vnet.csum_offset);
    if field + 2 > frame.len() || start > field {
        return Err(SegmentError::Malformed);
    }
    let mut sum = checksum::finish(checksum::add(0, &frame[start..]));
    // UDP (checksum at offset 6) transmits a computed zero as all ones; zero means "none".
    if sum == 0 && vnet.csum_offset == 6 {
        sum = 0xffff;
    }
    frame[field..field + 2].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

/// Writes `frame`, cut into segments as `vnet` says, to `out`, each segment preceded by
/// `prefix`. A frame without GSO becomes one segment, its checksum completed if asked for.
pub fn segment(
    frame: &[u8],
    vnet: &VnetHeader,
    prefix: &[u8],
    out: &mut [u8],
) -> Result<SegmentRun, SegmentError> {
    if vnet.gso() == VNET_GSO_NONE {
        let len = prefix.len() + frame.len();
        let out = out.get_mut(..len).ok_or(SegmentError::OutputTooSmall)?;
        out[..prefix.len()].copy_from_slice(prefix);
        out[prefix.len()..].copy_from_slice(frame);
        complete_checksum(&mut out[prefix.len()..], vnet)?;
        return Ok(SegmentRun {
            segment_len: len,
            count: 1,
            len,
        });
    }
    let layout = TcpLayout::of(frame).ok_or(SegmentError::Malformed)?;
    if layout.ipv6 != (vnet.gso() == VNET_GSO_TCPV6) {
        return Err(SegmentError::Malformed);
    }
    let headers = &frame[..layout.payload];
    let payload = &frame[layout.payload..];
    let mss = usize::from(vnet.gso_size);
    let count = payload.len().div_ceil(mss).max(1);
    let segment_len = prefix.len() + headers.len() + mss;
    let total = count * (prefix.len() + headers.len()) + payload.len();
    if total > out.len() {
        return Err(SegmentError::OutputTooSmall);
    }

    let l3 = ETHERNET_HEADER_LEN;
    let l4 = layout.l4;
    let seq0 = u32::from_be_bytes(frame[l4 + 4..l4 + 8].try_into().expect("4 bytes"));
    let ip_id0 = u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]);
    let tcp_header_len = layout.payload - l4;

    let mut at = 0;
    for (i, chunk) in payload
        .chunks(mss)
        .chain(payload.is_empty().then_some(&[][..]))
        .enumerate()
    {
        let last = i + 1 == count;
        let seg_len = prefix.len() + headers.len() + chunk.len();
        let seg = &mut out[at..at + seg_len];
        at += seg_len;
        seg[..prefix.len()].copy_from_slice(prefix);
        let f = &mut seg[prefix.len()..];
        f[..headers.len()].copy_from_slice(headers);
        f[headers.len()..].copy_from_slice(chunk);

        if layout.ipv6 {
            let payload_len = (tcp_header_len + chunk.len()) as u16;
            f[l3 + 4..l3 + 6].copy_from_slice(&payload_len.to_be_bytes());
        } else {
            let total_len = (l4 - l3 + tcp_header_len + chunk.len()) as u16;
            f[l3 + 2..l3 + 4].copy_from_slice(&total_len.to_be_bytes());
            f[l3 + 4..l3 + 6].copy_from_slice(&ip_id0.wrapping_add(i as u16).to_be_bytes());
            f[l3 + 10..l3 + 12].fill(0);
            let ip_sum = checksum::finish(checksum::add(0, &f[l3..l4]));
            f[l3 + 10..l3 + 12].copy_from_slice(&ip_sum.to_be_bytes());
        }

        let seq = seq0.wrapping_add((i * mss) as u32);
        f[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        // FIN and PSH belong to the end of the data, CWR to its start.
        if !last {
            f[l4 + 13] &= !(tcp_flags::FIN | tcp_flags::PSH);
        }
        if i > 0 {
            f[l4 + 13] &= !tcp_flags::CWR;
        }
        let csum = l4 + TCP_CHECKSUM_OFFSET;
        f[csum..csum + 2].fill(0);
        let tcp_len = tcp_header_len + chunk.len();
        let sum = layout.pseudo_header(f, tcp_len);
        // The header has an even length, so the payload's sum continues it.
        let sum = checksum::add(checksum::add(sum, &f[l4..layout.payload]), chunk);
        f[csum..csum + 2].copy_from_slice(&checksum::finish(sum).to_be_bytes());
    }
    Ok(SegmentRun {
        segment_len: if count == 1 { total } else { segment_len },
        count,
        len: total,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::net::overlay::wire::{VNET_GSO_ECN, VNET_GSO_TCPV4};
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    pub(crate) const MAC_A: [u8; 6] = [0x02, 0x42, 10, 0, 1, 2];
    pub(crate) const MAC_B: [u8; 6] = [0x02, 0x42, 10, 0, 1, 3];

    /// A TCP/IPv4 frame from 10.0.1.2:40000 to 10.0.1.3:80 with `payload`, as etherparse builds
    /// it (checksums correct), with a timestamp option as Linux sends.
    pub(crate) fn tcp_v4_frame(seq: u32, payload: &[u8], psh: bool) -> Vec<u8> {
        let mut builder = PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([10, 0, 1, 2], [10, 0, 1, 3], 64)
            .tcp(40000, 80, seq, 502)
            .ack(77)
            .options(&[etherparse::TcpOptionElement::Timestamp(1, 2)])
            .unwrap();
        if psh {
            builder = builder.psh();
        }
        let mut frame = Vec::new();
        builder.write(&mut frame, payload).unwrap();
        frame
    }

    pub(crate) fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 256) as u8).collect()
    }

    /// Checks the IP and TCP checksums of `frame` with etherparse; returns (seq, flags byte,
    /// payload).
    pub(crate) fn verified(frame: &[u8]) -> (u32, bool, Vec<u8>) {
        let sliced = SlicedPacket::from_ethernet(frame).expect("parses");
        let Some(etherparse::NetSlice::Ipv4(ip)) = sliced.net else {
            panic!("not ipv4")
        };
        let ip_header = ip.header().to_header();
        assert_eq!(ip_header.header_checksum, ip_header.calc_header_checksum());
        let Some(TransportSlice::Tcp(tcp)) = sliced.transport else {
            panic!("not tcp")
        };
        let expected = tcp
            .to_header()
            .calc_checksum_ipv4(&ip_header, tcp.payload())
            .unwrap();
        assert_eq!(tcp.checksum(), expected, "tcp checksum");
        (tcp.sequence_number(), tcp.psh(), tcp.payload().to_vec())
    }

    #[test]
    fn a_super_frame_becomes_checksummed_mss_segments() {
        let data = pattern(65000);
        let mut frame = tcp_v4_frame(1_000_000, &data, true);
        // What the kernel hands over: header checksum and lengths are whatever it set; make
        // them wrong to show they are recomputed.
        frame[ETHERNET_HEADER_LEN + 10] ^= 0xff;
        let vnet = VnetHeader {
            flags: VNET_F_NEEDS_CSUM,
            gso_type: VNET_GSO_TCPV4 | VNET_GSO_ECN,
            hdr_len: 66,
            gso_size: 1386,
            csum_start: 34,
            csum_offset: 16,
        };
        let prefix = [0xAAu8; 8];
        let mut out = vec![0u8; 80_000];
        let run = segment(&frame, &vnet, &prefix, &mut out).unwrap();
        assert_eq!(run.count, 65000usize.div_ceil(1386));
        assert_eq!(run.segment_len, 8 + 66 + 1386);
        let mut rebuilt = Vec::new();
        for (i, seg) in out[..run.len].chunks(run.segment_len).enumerate() {
            assert_eq!(&seg[..8], &prefix);
            let (seq, psh, payload) = verified(&seg[8..]);
            assert_eq!(seq, 1_000_000 + (i * 1386) as u32);
            assert_eq!(psh, i + 1 == run.count, "PSH only on the last");
            rebuilt.extend_from_slice(&payload);
        }
        assert_eq!(rebuilt, data);
    }

    #[test]
    fn a_single_frame_gets_its_checksum_completed() {
        let mut frame = tcp_v4_frame(5, b"hello", false);
        // Put the pseudo-header sum in the field, as the kernel does with CHECKSUM_PARTIAL.
        let layout = TcpLayout::of(&frame).unwrap();
        let tcp_len = frame.len() - layout.l4;
        let partial = checksum::fold(layout.pseudo_header(&frame, tcp_len));
        frame[layout.l4 + 16..layout.l4 + 18].copy_from_slice(&partial.to_be_bytes());
        let vnet = VnetHeader {
            flags: VNET_F_NEEDS_CSUM,
            csum_start: layout.l4 as u16,
            csum_offset: 16,
            ..VnetHeader::default()
        };
        let mut out = vec![0u8; 200];
        let run = segment(&frame, &vnet, &[], &mut out).unwrap();
        assert_eq!(run.count, 1);
        verified(&out[..run.len]);
    }

    #[test]
    fn malformed_super_frames_are_refused() {
        let frame = tcp_v4_frame(5, &pattern(3000), false);
        let gso = VnetHeader {
            gso_type: VNET_GSO_TCPV4,
            gso_size: 1000,
            ..VnetHeader::default()
        };
        let mut out = vec![0u8; 10_000];
        // Truncated inside the TCP header, then not TCP at all, then IPv6 claimed.
        assert_eq!(
            segment(&frame[..40], &gso, &[], &mut out),
            Err(SegmentError::Malformed)
        );
        let mut udp = frame.clone();
        udp[ETHERNET_HEADER_LEN + 9] = 17;
        assert_eq!(
            segment(&udp, &gso, &[], &mut out),
            Err(SegmentError::Malformed)
        );
        let v6 = VnetHeader {
            gso_type: VNET_GSO_TCPV6,
            ..gso
        };
        assert_eq!(
            segment(&frame, &v6, &[], &mut out),
            Err(SegmentError::Malformed)
        );
        assert_eq!(
            segment(&frame, &gso, &[], &mut out[..100]),
            Err(SegmentError::OutputTooSmall)
        );
        let bad_csum = VnetHeader {
            flags: VNET_F_NEEDS_CSUM,
            csum_start: 5000,
            ..VnetHeader::default()
        };
        assert_eq!(
            segment(&frame, &bad_csum, &[], &mut out),
            Err(SegmentError::Malformed)
        );
        // Every length of garbage: refused or segmented, never a panic.
        for len in 0..frame.len().min(120) {
            let _ = segment(&frame[..len], &gso, &[], &mut out);
        }
    }
}
