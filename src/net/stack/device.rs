//! The stack's device: a non-blocking descriptor where one read yields one Ethernet frame and
//! one write sends one (a plain TAP in production, one end of a `SOCK_SEQPACKET` pair in tests).
//! With a [`DirectPath`], a frame for an endpoint on another node skips the descriptor, the
//! bridge and the overlay engine: the stack sends it to that node's data port as VXLAN itself.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use socket2::SockAddr;

use crate::net::overlay::fdb::{Destination, Fdb};

/// Frames a device could not pass on.
#[derive(Debug, Default)]
pub struct DeviceDrops {
    /// Reads that failed other than by having nothing to read, or returned a cut frame.
    pub read_failed: AtomicU64,
    /// Frames the device refused (its queue full, or it went away).
    pub write_failed: AtomicU64,
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

/// A frame-preserving descriptor as a smoltcp device, with one receive and one transmit buffer
/// (no allocation per frame).
pub struct FrameDevice {
    fd: OwnedFd,
    mtu: usize,
    rx: Box<[u8]>,
    tx: Box<[u8]>,
    drops: Arc<DeviceDrops>,
    direct: Option<DirectPath>,
}

impl FrameDevice {
    /// A device over `fd` (non-blocking), for IP packets of at most `ip_mtu` bytes.
    pub fn new(fd: OwnedFd, ip_mtu: u16) -> FrameDevice {
        let mtu = usize::from(ip_mtu) + 14;
        FrameDevice {
            fd,
            mtu,
            // One byte more than a frame can be, to tell a frame that was cut.
            rx: vec![0; mtu + 1].into_boxed_slice(),
            tx: vec![0; mtu].into_boxed_slice(),
            drops: Arc::default(),
            direct: None,
        }
    }

    /// Sends frames for remote endpoints straight to their nodes from now on (or, with `None`,
    /// everything through the descriptor).
    pub fn set_direct_path(&mut self, direct: Option<DirectPath>) {
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

    /// Reads one frame into the receive buffer: its length, or `None` when there is none.
    fn read_frame(&mut self) -> Option<usize> {
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
            if n > self.mtu {
                self.drops.read_failed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            return Some(n);
        }
    }
}

impl phy::Device for FrameDevice {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let len = self.read_frame()?;
        let rx = RxToken {
            frame: &self.rx[..len],
        };
        let tx = TxToken {
            fd: self.fd.as_raw_fd(),
            buffer: &mut self.tx,
            drops: &self.drops,
            direct: self.direct.as_ref(),
        };
        Some((rx, tx))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            fd: self.fd.as_raw_fd(),
            buffer: &mut self.tx,
            drops: &self.drops,
            direct: self.direct.as_ref(),
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu;
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
}

/// Sends `frame` to its node as VXLAN if it is unicast to an endpoint on another node; whether
/// it was taken.
fn send_direct(direct: Option<&DirectPath>, drops: &DeviceDrops, frame: &[u8]) -> bool {
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
    let parts = [IoSlice::new(&network.vxlan_header), IoSlice::new(frame)];
    if direct
        .socket
        .send_to_vectored(&parts, &SockAddr::from(peer))
        .is_err()
    {
        drops.write_failed.fetch_add(1, Ordering::Relaxed);
    }
    true
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let frame = &mut self.buffer[..len];
        let result = f(frame);
        if send_direct(self.direct, self.drops, frame) {
            return result;
        }
        // SAFETY: `frame` is valid for reads of its length; the descriptor outlives the token.
        let written = unsafe { libc::write(self.fd, frame.as_ptr().cast(), frame.len()) };
        if written < 0 {
            // TCP retransmits what is lost here; a full queue is no reason to block the stack.
            self.drops.write_failed.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}
