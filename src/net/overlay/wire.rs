//! Typed views over the two headers the overlay itself reads and writes: the VXLAN header
//! (RFC 7348) in front of every inner frame on the underlay, and the virtio-net header a TAP
//! opened with `IFF_VNET_HDR` puts in front of every frame it carries.
//!
//! Like smoltcp's `wire` module, a view wraps a byte buffer and reads or writes fields in place;
//! `new_checked` is the only way in from untrusted bytes.

use std::fmt;

/// Why bytes were refused as a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than the header.
    Truncated,
    /// Flags this implementation does not accept.
    BadFlags,
    /// A field out of its range (a GSO type this engine cannot segment, ...).
    Unsupported,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "truncated header",
            WireError::BadFlags => "bad flags",
            WireError::Unsupported => "unsupported field value",
        })
    }
}

impl std::error::Error for WireError {}

/// Length of the VXLAN header.
pub const VXLAN_HEADER_LEN: usize = 8;
/// The only flags byte accepted: the I bit ("VNI valid"), every reserved bit clear, as Linux
/// requires unless VXLAN extensions are on.
pub const VXLAN_FLAGS: u8 = 0x08;

/// The 8 bytes in front of every inner frame of the network with VXLAN network identifier `vni`
/// (only its low 24 bits are used).
pub fn vxlan_header(vni: u32) -> [u8; VXLAN_HEADER_LEN] {
    let v = vni.to_be_bytes();
    [VXLAN_FLAGS, 0, 0, 0, v[1], v[2], v[3], 0]
}

/// A VXLAN datagram: header and inner Ethernet frame.
#[derive(Debug, Clone, Copy)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        VxlanPacket { buffer }
    }

    /// Wraps `buffer` after checking that it holds a header with acceptable flags.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        let bytes = packet.buffer.as_ref();
        if bytes.len() < VXLAN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if bytes[0] != VXLAN_FLAGS {
            return Err(WireError::BadFlags);
        }
        Ok(packet)
    }

    /// The flags byte.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// The 24-bit VXLAN network identifier.
    pub fn vni(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([0, b[4], b[5], b[6]])
    }

    /// The inner Ethernet frame.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[VXLAN_HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanPacket<T> {
    /// Writes the header for `vni` (reserved fields zero).
    pub fn emit_header(&mut self, vni: u32) {
        self.buffer.as_mut()[..VXLAN_HEADER_LEN].copy_from_slice(&vxlan_header(vni));
    }

    /// The inner Ethernet frame, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[VXLAN_HEADER_LEN..]
    }
}

/// Length of the virtio-net header the TAP is configured with (`struct virtio_net_hdr`, without
/// the `num_buffers` field of mergeable receive buffers).
pub const VNET_HEADER_LEN: usize = 10;

/// `flags`: the checksum from `csum_start` to the end is to be completed and stored at
/// `csum_start + csum_offset`; the field holds the pseudo-header sum.
pub const VNET_F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksums were verified already.
pub const VNET_F_DATA_VALID: u8 = 2;
/// `gso_type`: a single frame, no segmentation.
pub const VNET_GSO_NONE: u8 = 0;
/// `gso_type`: a TCP/IPv4 super-frame to cut into `gso_size` segments.
pub const VNET_GSO_TCPV4: u8 = 1;
/// `gso_type`: a TCP/IPv6 super-frame to cut into `gso_size` segments.
pub const VNET_GSO_TCPV6: u8 = 4;
/// `gso_type` bit: the super-frame carries ECN CWR, to be kept on the first segment only.
pub const VNET_GSO_ECN: u8 = 0x80;

/// A virtio-net header, decoded. The TAP uses the host's byte order for its fields (legacy
/// virtio on a little-endian host); every host shoal runs on is little-endian.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHeader {
    /// `VNET_F_*` bits.
    pub flags: u8,
    /// `VNET_GSO_*`, possibly with [`VNET_GSO_ECN`].
    pub gso_type: u8,
    /// Length of the headers (Ethernet to TCP) of a GSO super-frame.
    pub hdr_len: u16,
    /// Payload bytes per segment of a GSO super-frame (the MSS).
    pub gso_size: u16,
    /// Where checksumming starts (the L4 header), with [`VNET_F_NEEDS_CSUM`].
    pub csum_start: u16,
    /// Where the checksum goes, from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHeader {
    /// Decodes the header at the start of `bytes`, refusing flags and GSO types the engine does
    /// not handle (UDP fragmentation offload is never turned on, so never legitimately seen).
    pub fn parse(bytes: &[u8]) -> Result<VnetHeader, WireError> {
        let b: &[u8; VNET_HEADER_LEN] = bytes
            .get(..VNET_HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(WireError::Truncated)?;
        let header = VnetHeader {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16::from_le_bytes([b[2], b[3]]),
            gso_size: u16::from_le_bytes([b[4], b[5]]),
            csum_start: u16::from_le_bytes([b[6], b[7]]),
            csum_offset: u16::from_le_bytes([b[8], b[9]]),
        };
        if header.flags & !(VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID) != 0 {
            return Err(WireError::BadFlags);
        }
        match header.gso() {
            VNET_GSO_NONE => {}
            VNET_GSO_TCPV4 | VNET_GSO_TCPV6 if header.gso_size > 0 => {}
            _ => return Err(WireError::Unsupported),
        }
        Ok(header)
    }

    /// Encodes the header into the first [`VNET_HEADER_LEN`] bytes of `bytes`.
    pub fn emit(&self, bytes: &mut [u8]) {
        let b = &mut bytes[..VNET_HEADER_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
    }

    /// The GSO type without the ECN bit.
    pub fn gso(&self) -> u8 {
        self.gso_type & !VNET_GSO_ECN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_round_trip() {
        let mut buf = [0xffu8; 12];
        let mut packet = VxlanPacket::new_unchecked(&mut buf[..]);
        packet.emit_header(0xABCDEF);
        packet.payload_mut().copy_from_slice(&[1, 2, 3, 4]);
        let packet = VxlanPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(packet.vni(), 0xABCDEF);
        assert_eq!(packet.flags(), VXLAN_FLAGS);
        assert_eq!(packet.payload(), &[1, 2, 3, 4]);
        assert_eq!(&buf[..8], &vxlan_header(0xABCDEF));
        assert_eq!(buf[7], 0);
    }

    #[test]
    fn vxlan_rejects_bad_input() {
        assert_eq!(
            VxlanPacket::new_checked(&[0x08u8; 7][..]).err(),
            Some(WireError::Truncated)
        );
        let mut header = vxlan_header(5);
        header[0] = 0x00; // I bit clear
        assert_eq!(
            VxlanPacket::new_checked(&header[..]).err(),
            Some(WireError::BadFlags)
        );
        header[0] = 0x88; // a reserved bit (GBP) set
        assert_eq!(
            VxlanPacket::new_checked(&header[..]).err(),
            Some(WireError::BadFlags)
        );
    }

    #[test]
    fn vnet_round_trip() {
        let header = VnetHeader {
            flags: VNET_F_NEEDS_CSUM,
            gso_type: VNET_GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1398,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut buf = [0u8; VNET_HEADER_LEN];
        header.emit(&mut buf);
        assert_eq!(buf, [1, 1, 54, 0, 0x76, 0x05, 34, 0, 16, 0]);
        assert_eq!(VnetHeader::parse(&buf), Ok(header));
    }

    #[test]
    fn vnet_rejects_bad_input() {
        assert_eq!(VnetHeader::parse(&[0; 9]), Err(WireError::Truncated));
        assert_eq!(
            VnetHeader::parse(&[4, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(WireError::BadFlags)
        );
        // UDP fragmentation offload.
        assert_eq!(
            VnetHeader::parse(&[0, 3, 0, 0, 0, 5, 0, 0, 0, 0]),
            Err(WireError::Unsupported)
        );
        // TSO with a zero segment size would loop forever.
        assert_eq!(
            VnetHeader::parse(&[1, 1, 54, 0, 0, 0, 34, 0, 16, 0]),
            Err(WireError::Unsupported)
        );
        let ecn = VnetHeader::parse(&[1, 0x81, 54, 0, 100, 0, 34, 0, 16, 0]).unwrap();
        assert_eq!(ecn.gso(), VNET_GSO_TCPV4);
    }
}
