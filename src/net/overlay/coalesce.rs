//! GRO in userspace: merging consecutive in-order TCP/IPv4 segments of one flow, as they come
//! out of the VXLAN datagrams, into one super-frame that a single TAP write hands to the kernel
//! (which segments it again only if it has to).
//!
//! Every segment's checksums are verified before it is merged, because the super-frame goes to
//! the kernel with `NEEDS_CSUM` (the kernel treats the data as checksummed) and a corrupt
//! segment must not hide in it. A segment that cannot be merged is left to the caller, who
//! writes it on its own and lets the kernel judge it.

use super::checksum;
use super::frame::{ETHERNET_HEADER_LEN, TCP_CHECKSUM_OFFSET, TcpLayout, tcp_flags};
use super::wire::{
    VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_HEADER_LEN,
    VnetHeader,
};

/// The largest frame an IPv4 super-frame can be: the IP total length is 16 bits.
pub const MAX_SUPER_FRAME: usize = ETHERNET_HEADER_LEN + 65535;

/// The only IPv4 header length merged: 20 bytes, no options.
const IPV4_HEADER_LEN: usize = 20;

/// What [`Coalescer::push`] did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    /// The frame is part of the pending super-frame now.
    Absorbed,
    /// The frame does not continue the pending super-frame (or, with none pending, cannot start
    /// one): [`Coalescer::take`] what is pending, then push the frame again or write it alone.
    Refused,
}

/// One pending super-frame, built in place behind room for its virtio-net header.
pub struct Coalescer {
    buffer: Box<[u8]>,
    /// Frame bytes pending after the virtio-net header; zero when none.
    len: usize,
    /// Start of the TCP header and of the payload.
    layout: TcpLayout,
    /// Payload length of the first segment: the GSO size of the super-frame.
    mss: usize,
    /// The sequence number the next segment must have.
    next_seq: u32,
    /// Segments merged.
    segments: usize,
    /// A short or PSH segment ended the run: nothing more may follow it.
    closed: bool,
}

impl Default for Coalescer {
    fn default() -> Self {
        Self::new()
    }
}

impl Coalescer {
    /// An empty coalescer with its (only) buffer allocated.
    pub fn new() -> Coalescer {
        Coalescer {
            buffer: vec![0; VNET_HEADER_LEN + MAX_SUPER_FRAME].into_boxed_slice(),
            len: 0,
            layout: TcpLayout {
                ipv6: false,
                l4: 0,
                payload: 0,
            },
            mss: 0,
            next_seq: 0,
            segments: 0,
            closed: false,
        }
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Offers the next frame in arrival order.
    pub fn push(&mut self, frame: &[u8]) -> Push {
        let Some((layout, frame)) = mergeable(frame) else {
            return Push::Refused;
        };
        let payload_len = frame.len() - layout.payload;
        let seq = read_u32(frame, layout.l4 + 4);
        let psh = frame[layout.l4 + 13] & tcp_flags::PSH != 0;
        if self.len == 0 {
            let end = VNET_HEADER_LEN + frame.len();
            self.buffer[VNET_HEADER_LEN..end].copy_from_slice(frame);
            self.len = frame.len();
            self.layout = layout;
            self.mss = payload_len;
            self.next_seq = seq.wrapping_add(payload_len as u32);
            self.segments = 1;
            self.closed = psh;
            return Push::Absorbed;
        }
        if self.closed
            || seq != self.next_seq
            || layout != self.layout
            || payload_len > self.mss
            || self.len + payload_len > MAX_SUPER_FRAME
            || !self.same_flow(frame)
        {
            return Push::Refused;
        }
        let at = VNET_HEADER_LEN + self.len;
        self.buffer[at..at + payload_len].copy_from_slice(&frame[layout.payload..]);
        self.len += payload_len;
        self.next_seq = seq.wrapping_add(payload_len as u32);
        self.segments += 1;
        if psh {
            self.buffer[VNET_HEADER_LEN + layout.l4 + 13] |= tcp_flags::PSH;
        }
        self.closed = psh || payload_len < self.mss;
        Push::Absorbed
    }

    /// Takes the pending super-frame, virtio-net header first, ready for one TAP write; `None`
    /// if nothing is pending.
    pub fn take(&mut self) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let len = std::mem::take(&mut self.len);
        let (header, frame) = self.buffer[..VNET_HEADER_LEN + len].split_at_mut(VNET_HEADER_LEN);
        let vnet = if self.segments == 1 {
            // Untouched and verified: spare the kernel a second look.
            VnetHeader {
                flags: VNET_F_DATA_VALID,
                gso_type: VNET_GSO_NONE,
                ..VnetHeader::default()
            }
        } else {
            let l3 = ETHERNET_HEADER_LEN;
            let l4 = self.layout.l4;
            let total_len = (len - l3) as u16;
            frame[l3 + 2..l3 + 4].copy_from_slice(&total_len.to_be_bytes());
            frame[l3 + 10..l3 + 12].fill(0);
            let ip_sum = checksum::finish(checksum::add(0, &frame[l3..l4]));
            frame[l3 + 10..l3 + 12].copy_from_slice(&ip_sum.to_be_bytes());
            // The kernel completes the TCP checksum from the pseudo-header sum, if it needs it
            // at all (a local socket or a veth peer with offloads takes it as it is).
            let partial = checksum::fold(self.layout.pseudo_header(frame, len - l4));
            let field = l4 + TCP_CHECKSUM_OFFSET;
            frame[field..field + 2].copy_from_slice(&partial.to_be_bytes());
            VnetHeader {
                flags: VNET_F_NEEDS_CSUM,
                gso_type: VNET_GSO_TCPV4,
                hdr_len: self.layout.payload as u16,
                gso_size: self.mss as u16,
                csum_start: l4 as u16,
                csum_offset: TCP_CHECKSUM_OFFSET as u16,
            }
        };
        vnet.emit(header);
        Some(&self.buffer[..VNET_HEADER_LEN + len])
    }

    /// Whether `frame` (same layout as the pending one) has the same headers but for the fields
    /// that change from segment to segment: IP length, ID and checksum; TCP sequence number,
    /// PSH and checksum.
    fn same_flow(&self, frame: &[u8]) -> bool {
        let first = &self.buffer[VNET_HEADER_LEN..VNET_HEADER_LEN + self.layout.payload];
        let l3 = ETHERNET_HEADER_LEN;
        let l4 = self.layout.l4;
        let tcp_flags_at = l4 + 13;
        first[..l3 + 2] == frame[..l3 + 2]
            && first[l3 + 6..l3 + 10] == frame[l3 + 6..l3 + 10]
            && first[l3 + 12..l4 + 4] == frame[l3 + 12..l4 + 4]
            && first[l4 + 8..tcp_flags_at] == frame[l4 + 8..tcp_flags_at]
            && first[tcp_flags_at] & !tcp_flags::PSH == frame[tcp_flags_at] & !tcp_flags::PSH
            && first[l4 + 14..l4 + 16] == frame[l4 + 14..l4 + 16]
            && first[l4 + 18..] == frame[l4 + 18..self.layout.payload]
    }
}

/// The layout of `frame` and the frame cut to its IP length (Ethernet pads short frames), if it
/// is a TCP/IPv4 data segment with only ACK (and maybe PSH) set, no IP options, and correct
/// checksums.
fn mergeable(frame: &[u8]) -> Option<(TcpLayout, &[u8])> {
    let layout = TcpLayout::of(frame)?;
    let l3 = ETHERNET_HEADER_LEN;
    if layout.ipv6 || layout.l4 != l3 + IPV4_HEADER_LEN {
        return None;
    }
    let total_len = usize::from(u16::from_be_bytes([frame[l3 + 2], frame[l3 + 3]]));
    let frame = frame.get(..l3 + total_len)?;
    if frame.len() <= layout.payload {
        return None;
    }
    let flags = frame[layout.l4 + 13];
    if flags & !tcp_flags::PSH != tcp_flags::ACK {
        return None;
    }
    if checksum::fold(checksum::add(0, &frame[l3..layout.l4])) != 0xffff {
        return None;
    }
    let tcp_len = frame.len() - layout.l4;
    let sum = checksum::add(layout.pseudo_header(frame, tcp_len), &frame[layout.l4..]);
    (checksum::fold(sum) == 0xffff).then_some((layout, frame))
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::overlay::segment::tests::{pattern, tcp_v4_frame, verified};
    use crate::net::overlay::segment::{complete_checksum, segment};

    /// Cuts `data` into frames of `mss` payload bytes starting at `seq`, PSH on the last.
    fn segments(seq: u32, data: &[u8], mss: usize) -> Vec<Vec<u8>> {
        let count = data.len().div_ceil(mss);
        data.chunks(mss)
            .enumerate()
            .map(|(i, chunk)| tcp_v4_frame(seq + (i * mss) as u32, chunk, i + 1 == count))
            .collect()
    }

    #[test]
    fn segments_coalesce_back_into_the_super_frame() {
        let data = pattern(60_000);
        let originals = segments(7, &data, 1398);
        let mut coalescer = Coalescer::new();
        for frame in &originals {
            assert_eq!(coalescer.push(frame), Push::Absorbed);
        }
        let mut merged = coalescer.take().unwrap().to_vec();
        assert!(coalescer.is_empty() && coalescer.take().is_none());
        let vnet = VnetHeader::parse(&merged).unwrap();
        assert_eq!(vnet.gso(), VNET_GSO_TCPV4);
        assert_eq!(vnet.gso_size, 1398);
        assert_eq!(vnet.flags, VNET_F_NEEDS_CSUM);

        // Segmenting it again, as the kernel would, gives the original segments back.
        let mut out = vec![0u8; 80_000];
        let run = segment(&merged[VNET_HEADER_LEN..], &vnet, &[], &mut out).unwrap();
        assert_eq!(run.count, originals.len());
        for (seg, original) in out[..run.len].chunks(run.segment_len).zip(&originals) {
            verified(seg);
            // Equal but for the IP ID (the fixture's are all zero; TSO counts up) and so the
            // IP header checksum.
            let (id, sum) = (ETHERNET_HEADER_LEN + 4, ETHERNET_HEADER_LEN + 10);
            assert!(seg[..id] == original[..id]);
            assert!(seg[id + 2..sum] == original[id + 2..sum]);
            assert!(seg[sum + 2..] == original[sum + 2..]);
        }

        // Completed as the kernel would, the super-frame's own checksums are right too.
        let frame = &mut merged[VNET_HEADER_LEN..];
        let no_gso = VnetHeader {
            gso_type: VNET_GSO_NONE,
            ..vnet
        };
        complete_checksum(frame, &no_gso).unwrap();
        let (seq, psh, payload) = verified(frame);
        assert_eq!((seq, psh), (7, true));
        assert_eq!(payload, data);
    }

    #[test]
    fn what_does_not_continue_the_run_is_refused() {
        let data = pattern(5000);
        let frames = segments(100, &data, 1000);
        let mut coalescer = Coalescer::new();
        assert_eq!(coalescer.push(&frames[0]), Push::Absorbed);
        // Out of order.
        assert_eq!(coalescer.push(&frames[2]), Push::Refused);
        // Another flow (other port).
        let mut other = frames[1].clone();
        other[ETHERNET_HEADER_LEN + 20] ^= 1;
        assert_eq!(coalescer.push(&other), Push::Refused);
        // A corrupt checksum: never merged, not even to start a run.
        let mut corrupt = frames[1].clone();
        *corrupt.last_mut().unwrap() ^= 0x55;
        assert_eq!(coalescer.push(&corrupt), Push::Refused);
        assert_eq!(coalescer.push(&frames[1]), Push::Absorbed);
        let _ = coalescer.take().unwrap();
        assert_eq!(Coalescer::new().push(&corrupt), Push::Refused);
        // A pure ACK or a SYN is not merged.
        assert_eq!(
            Coalescer::new().push(&tcp_v4_frame(1, &[], false)),
            Push::Refused
        );
        // A single segment goes out untouched, marked verified.
        let mut single = Coalescer::new();
        assert_eq!(single.push(&frames[4]), Push::Absorbed);
        // After the short last segment (PSH) nothing more joins.
        assert_eq!(single.push(&frames[4]), Push::Refused);
        let out = single.take().unwrap();
        assert_eq!(out[0], VNET_F_DATA_VALID);
        assert_eq!(&out[VNET_HEADER_LEN..], &frames[4][..]);
        // Garbage of every length is refused without panicking.
        for len in 0..frames[0].len().min(100) {
            assert_eq!(Coalescer::new().push(&frames[0][..len]), Push::Refused);
        }
    }
}
