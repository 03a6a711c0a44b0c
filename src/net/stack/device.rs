//! The stack's device: a non-blocking descriptor where one read yields one Ethernet frame and
//! one write sends one (a plain TAP in production, one end of a `SOCK_SEQPACKET` pair in tests).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Frames a device could not pass on.
#[derive(Debug, Default)]
pub struct DeviceDrops {
    /// Reads that failed other than by having nothing to read, or returned a cut frame.
    pub read_failed: AtomicU64,
    /// Frames the device refused (its queue full, or it went away).
    pub write_failed: AtomicU64,
}

/// A frame-preserving descriptor as a smoltcp device, with one receive and one transmit buffer
/// (no allocation per frame).
pub struct FrameDevice {
    fd: OwnedFd,
    mtu: usize,
    rx: Box<[u8]>,
    tx: Box<[u8]>,
    drops: Arc<DeviceDrops>,
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
        }
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
        };
        Some((rx, tx))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            fd: self.fd.as_raw_fd(),
            buffer: &mut self.tx,
            drops: &self.drops,
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

/// Room for one frame, written to the device when filled.
pub struct TxToken<'a> {
    fd: RawFd,
    buffer: &'a mut [u8],
    drops: &'a DeviceDrops,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let frame = &mut self.buffer[..len];
        let result = f(frame);
        // SAFETY: `frame` is valid for reads of its length; the descriptor outlives the token.
        let written = unsafe { libc::write(self.fd, frame.as_ptr().cast(), frame.len()) };
        if written < 0 {
            // TCP retransmits what is lost here; a full queue is no reason to block the stack.
            self.drops.write_failed.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}
