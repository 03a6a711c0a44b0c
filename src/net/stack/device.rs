//! The stack's device: a non-blocking descriptor where one read yields one Ethernet frame and
//! one write sends one (a plain TAP in production, one end of a `SOCK_SEQPACKET` pair in tests).
//! With a [`DirectPath`], a frame for an endpoint on another node skips the descriptor, the
//! bridge and the overlay engine: the stack sends it to that node's data port as VXLAN itself.
//! With [`Claims`], only frames for the claimed addresses get in, and frames leave from the MAC of
//! the address they come from.
//!
//! What a poll sends waits in an [`Outbox`] until [`FrameDevice::flush`] (the [`super::Stack`]
//! flushes after each poll): consecutive TCP segments of one flow for the descriptor become one
//! super-frame (with a virtio-net header: one write, the kernel segments it only if it must), and
//! consecutive equal-sized VXLAN datagrams to one node go in one UDP GSO send.

use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use socket2::SockAddr;

use super::claims::{self, Claims};
use crate::net::overlay::coalesce::{Coalescer, Push};
use crate::net::overlay::fdb::{Destination, Fdb};
use crate::net::overlay::tap::open_stack_tap;
use crate::net::overlay::udp::{self, MAX_GSO_SEGMENTS, MAX_UDP_PAYLOAD};
use crate::net::overlay::wire::VNET_HEADER_LEN;

/// The largest frame the kernel hands a TAP with TSO on: a 64 KiB IP packet and its Ethernet
/// header.
const MAX_SUPER_FRAME: usize = 65535 + 14;
/// A virtio-net header that says nothing: the frame is complete as it is.
const PLAIN: [u8; VNET_HEADER_LEN] = [0; VNET_HEADER_LEN];

/// A descriptor a stack sends and receives frames on.
pub struct FrameFd {
    /// Non-blocking; one read or one write is one frame.
    pub fd: OwnedFd,
    /// Whether each frame comes after a virtio-net header: a TAP with offloads, whose reads may
    /// be TCP super-frames (one read for up to 64 KiB; checksums left for the receiver to
    /// trust, as the kernel made or checked them).
    pub vnet_header: bool,
}

impl FrameFd {
    /// Opens the TAP `name` (which the plumbing makes a port of a network's bridge) with
    /// offloads, for IP packets of `mtu` bytes; needs `CAP_NET_ADMIN`.
    pub fn open_tap(name: &str, mtu: u16) -> io::Result<FrameFd> {
        Ok(FrameFd {
            fd: open_stack_tap(name, mtu)?,
            vnet_header: true,
        })
    }
}

/// Frames a device could not pass on.
#[derive(Debug, Default)]
pub struct DeviceDrops {
    /// Reads that failed other than by having nothing to read, or returned a cut frame.
    pub read_failed: AtomicU64,
    /// Frames dropped because the device's queue was full (TCP sends them again).
    pub write_queue_full: AtomicU64,
    /// Frames the device refused otherwise (too large for it, or it went away).
    pub write_failed: AtomicU64,
}

impl DeviceDrops {
    /// Counts a write that failed with `error`.
    fn count_write_error(&self, error: &io::Error) {
        let counter = if error.kind() == io::ErrorKind::WouldBlock
            || error.raw_os_error() == Some(libc::ENOBUFS)
        {
            &self.write_queue_full
        } else {
            &self.write_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends frames for other nodes' endpoints straight to them as VXLAN.
pub struct DirectPath {
    /// A UDP socket on this node's underlay address (any port: peers check the source address).
    pub socket: Arc<socket2::Socket>,
    /// The compiled FDB of this node's route table.
    pub fdb: Arc<Fdb>,
    /// The stack's network in `fdb`.
    pub network: usize,
}

/// Frames sent but held back until [`FrameDevice::flush`], to leave in fewer system calls.
struct Outbox {
    /// TCP segments of one flow for the descriptor, merged into one super-frame (only for a
    /// descriptor with a virtio-net header).
    coalescer: Option<Coalescer>,
    /// VXLAN datagrams to `peer`, each of `segment_len` bytes but maybe the last: one GSO send.
    run: Box<[u8]>,
    run_len: usize,
    segment_len: usize,
    peer: SocketAddr,
    /// A shorter datagram ended the run: nothing may follow it in the same send.
    run_closed: bool,
    /// Cleared when the kernel refuses a GSO send: datagrams then go one `sendmsg` each.
    gso: bool,
}

impl Outbox {
    fn new(vnet_header: bool) -> Outbox {
        Outbox {
            coalescer: vnet_header.then(Coalescer::new),
            run: vec![0; MAX_UDP_PAYLOAD].into_boxed_slice(),
            run_len: 0,
            segment_len: 0,
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            run_closed: false,
            gso: true,
        }
    }

    /// Writes the pending super-frame (virtio-net header included) to `fd`.
    fn write_super_frame(&mut self, fd: RawFd, drops: &DeviceDrops) {
        if let Some(frame) = self.coalescer.as_mut().and_then(Coalescer::take) {
            // SAFETY: `frame` is valid for reads; the descriptor is the device's.
            let written = unsafe { libc::write(fd, frame.as_ptr().cast(), frame.len()) };
            if written < 0 {
                drops.count_write_error(&io::Error::last_os_error());
            }
        }
    }

    /// Sends the pending run of datagrams on `socket`.
    fn send_run(&mut self, socket: RawFd, drops: &DeviceDrops) {
        if self.run_len == 0 {
            return;
        }
        let len = std::mem::take(&mut self.run_len);
        let to = SockAddr::from(self.peer);
        if let Err(error) = udp::send_run(
            socket,
            &mut self.gso,
            &self.run[..len],
            self.segment_len,
            &to,
        ) {
            drops.count_write_error(&error);
        }
    }

    /// Adds a datagram of `header` and `frame` for `peer` to the run, sending the run first if
    /// the datagram cannot join it.
    fn push_datagram(
        &mut self,
        socket: RawFd,
        drops: &DeviceDrops,
        peer: SocketAddr,
        header: &[u8],
        frame: &[u8],
    ) {
        let len = header.len() + frame.len();
        if self.run_len > 0
            && (peer != self.peer
                || self.run_closed
                || len > self.segment_len
                || self.run_len + len > self.run.len()
                || self.run_len / self.segment_len >= MAX_GSO_SEGMENTS)
        {
            self.send_run(socket, drops);
        }
        if len > self.run.len() {
            drops.write_failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.run_len == 0 {
            self.peer = peer;
            self.segment_len = len;
            self.run_closed = false;
        } else if len < self.segment_len {
            self.run_closed = true;
        }
        let at = self.run_len;
        self.run[at..at + header.len()].copy_from_slice(header);
        self.run[at + header.len()..at + len].copy_from_slice(frame);
        self.run_len += len;
    }
}

/// A frame-preserving descriptor as a smoltcp device, with one receive and one transmit buffer
/// (no allocation per frame).
pub struct FrameDevice {
    fd: OwnedFd,
    vnet_header: bool,
    /// Largest frame taken or sent, Ethernet header included.
    mtu: usize,
    rx: Box<[u8]>,
    tx: Box<[u8]>,
    drops: Arc<DeviceDrops>,
    direct: Option<DirectPath>,
    claims: Option<Claims>,
    /// Where a frame read by [`FrameDevice::fetch`] lies in `rx`, until smoltcp takes it.
    fetched: Option<std::ops::Range<usize>>,
    outbox: Outbox,
}

impl FrameDevice {
    /// A device over `link`, for IP packets of at most `ip_mtu` bytes (or super-frames, with a
    /// virtio-net header).
    pub fn new(link: FrameFd, ip_mtu: u16) -> FrameDevice {
        let mtu = if link.vnet_header {
            MAX_SUPER_FRAME
        } else {
            usize::from(ip_mtu) + 14
        };
        let header = if link.vnet_header { VNET_HEADER_LEN } else { 0 };
        FrameDevice {
            fd: link.fd,
            vnet_header: link.vnet_header,
            mtu,
            // One byte more than a frame can be, to tell a frame that was cut.
            rx: vec![0; header + mtu + 1].into_boxed_slice(),
            tx: vec![0; mtu].into_boxed_slice(),
            drops: Arc::default(),
            direct: None,
            claims: None,
            fetched: None,
            outbox: Outbox::new(link.vnet_header),
        }
    }

    /// Sends what the last polls left pending (a super-frame, a run of datagrams); call it after
    /// each poll of the stack, before waiting for events.
    pub fn flush(&mut self) {
        self.outbox
            .write_super_frame(self.fd.as_raw_fd(), &self.drops);
        if let Some(direct) = &self.direct {
            self.outbox.send_run(direct.socket.as_raw_fd(), &self.drops);
        }
    }

    /// Lets in only frames for `claims` from now on, and sends frames from the MAC of their
    /// source address (see [`Claims`]); with `None`, every frame goes in and out as it is.
    pub fn set_claims(&mut self, claims: Option<Claims>) {
        self.claims = claims;
    }

    /// Reads the next frame the stack is to take and keeps it for smoltcp's next receive, so the
    /// caller can look at it first; `None` when there is none.
    pub fn fetch(&mut self) -> Option<&[u8]> {
        if self.fetched.is_none() {
            self.fetched = self.read_admitted();
        }
        let frame = self.fetched.clone()?;
        Some(&self.rx[frame])
    }

    /// Reads frames until one the claims admit (any frame, without claims).
    fn read_admitted(&mut self) -> Option<std::ops::Range<usize>> {
        loop {
            let frame = self.read_frame()?;
            match &self.claims {
                Some(claims) if !claims.admit(&mut self.rx[frame.clone()]) => {}
                _ => return Some(frame),
            }
        }
    }

    /// Sends frames for remote endpoints straight to their nodes from now on (or, with `None`,
    /// everything through the descriptor).
    pub fn set_direct_path(&mut self, direct: Option<DirectPath>) {
        self.flush();
        self.direct = direct;
    }

    /// The descriptor, for polling.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// What the device dropped so far (shared: readable from another thread).
    pub fn drops(&self) -> Arc<DeviceDrops> {
        self.drops.clone()
    }

    /// Reads one frame into the receive buffer: where it lies there, or `None` when there is
    /// none.
    fn read_frame(&mut self) -> Option<std::ops::Range<usize>> {
        let header = if self.vnet_header { VNET_HEADER_LEN } else { 0 };
        loop {
            // SAFETY: `rx` is valid for writes of its length; the descriptor is ours.
            let n = unsafe { libc::read(self.fd(), self.rx.as_mut_ptr().cast(), self.rx.len()) };
            if n < 0 {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::WouldBlock
                    && error.kind() != io::ErrorKind::Interrupted
                {
                    self.drops.read_failed.fetch_add(1, Ordering::Relaxed);
                }
                return None;
            }
            let n = n as usize;
            if n == 0 {
                return None; // the other end of a socket pair closed
            }
            if n > header + self.mtu || n < header {
                self.drops.read_failed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            return Some(header..n);
        }
    }
}

/// A non-blocking UDP socket on `underlay`, any port, for a [`DirectPath`]'s VXLAN to other
/// nodes (they check the source address, not the port).
pub fn underlay_socket(underlay: IpAddr) -> io::Result<socket2::Socket> {
    let addr = SocketAddr::new(underlay, 0);
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

impl phy::Device for FrameDevice {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let frame = match self.fetched.take() {
            Some(frame) => frame,
            None => self.read_admitted()?,
        };
        let rx = RxToken {
            frame: &self.rx[frame],
        };
        let tx = TxToken {
            fd: self.fd.as_raw_fd(),
            buffer: &mut self.tx,
            drops: &self.drops,
            direct: self.direct.as_ref(),
            vnet_header: self.vnet_header,
            disguise: self.claims.is_some(),
            outbox: &mut self.outbox,
        };
        Some((rx, tx))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            fd: self.fd.as_raw_fd(),
            buffer: &mut self.tx,
            drops: &self.drops,
            direct: self.direct.as_ref(),
            vnet_header: self.vnet_header,
            disguise: self.claims.is_some(),
            outbox: &mut self.outbox,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu;
        if self.vnet_header {
            // Super-frames carry the kernel's partial TCP checksums (checksum offload): trust
            // what arrives, as the kernel does; compute what leaves.
            caps.checksum.ipv4 = Checksum::Tx;
            caps.checksum.tcp = Checksum::Tx;
            caps.checksum.udp = Checksum::Tx;
        }
        // No burst limit: a TAP queues up to its txqueuelen (1000 frames) in each direction, and
        // smoltcp's limit would cap the advertised window below what window scaling allows.
        caps.max_burst_size = None;
        caps
    }
}

/// A frame read from the device.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

/// Room for one frame, sent when filled: straight to its node, or written to the device.
pub struct TxToken<'a> {
    fd: RawFd,
    buffer: &'a mut [u8],
    drops: &'a DeviceDrops,
    direct: Option<&'a DirectPath>,
    vnet_header: bool,
    /// Whether the frame leaves from the MAC of its source address ([`claims::disguise`]).
    disguise: bool,
    outbox: &'a mut Outbox,
}

/// Queues `frame` for its node as VXLAN if it is unicast to an endpoint on another node; whether
/// it was taken.
fn send_direct(
    direct: Option<&DirectPath>,
    drops: &DeviceDrops,
    outbox: &mut Outbox,
    frame: &[u8],
) -> bool {
    let Some(direct) = direct else {
        return false;
    };
    let Some(destination) = frame.first_chunk::<6>() else {
        return false;
    };
    let network = &direct.fdb.networks()[direct.network];
    let Destination::Remote(peer) = network.destination(destination) else {
        return false; // broadcast (ARP), local or unknown: the bridge and the engine see to it
    };
    let socket = direct.socket.as_raw_fd();
    outbox.push_datagram(socket, drops, peer, &network.vxlan_header, frame);
    true
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let frame = &mut self.buffer[..len];
        let result = f(frame);
        if self.disguise {
            claims::disguise(frame);
        }
        if send_direct(self.direct, self.drops, self.outbox, frame) {
            return result;
        }
        if let Some(coalescer) = self.outbox.coalescer.as_mut() {
            if coalescer.push(frame) == Push::Absorbed {
                return result;
            }
            self.outbox.write_super_frame(self.fd, self.drops);
            if let Some(coalescer) = self.outbox.coalescer.as_mut()
                && coalescer.push(frame) == Push::Absorbed
            {
                return result;
            }
        }
        let parts = [IoSlice::new(&PLAIN), IoSlice::new(frame)];
        let parts = if self.vnet_header {
            &parts[..]
        } else {
            &parts[1..]
        };
        // SAFETY: `IoSlice` is ABI-compatible with `iovec`; the slices are valid for reads and
        // the descriptor outlives the token.
        let written =
            unsafe { libc::writev(self.fd, parts.as_ptr().cast(), parts.len() as libc::c_int) };
        if written < 0 {
            // TCP retransmits what is lost here; a full queue is no reason to block the stack.
            self.drops.count_write_error(&io::Error::last_os_error());
        }
        result
    }
}
