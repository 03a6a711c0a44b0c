//! The local side of a network, as the engine sees it: a few queues, each a non-blocking file
//! descriptor where one read yields one frame and one write sends one. In production those are
//! the queues of the network's TAP ([`super::tap`]); a test can hand in anything that behaves
//! the same, such as one end of a `SOCK_SEQPACKET` socket pair.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::net::routes::NetworkInfo;

/// Opens the local port of a network; the engine calls it from [`super::Engine::install`].
pub trait PortOpener: Send + Sync + 'static {
    /// Opens up to `queues` queues of the port of `network`, ready for traffic (for a TAP:
    /// created, MTU set, up).
    fn open(&self, network: &NetworkInfo, queues: usize) -> io::Result<LocalPort>;
}

/// An open local port: its queues, closed when the port is dropped.
#[derive(Debug)]
pub struct LocalPort {
    queues: Vec<OwnedFd>,
    vnet_header: bool,
}

impl LocalPort {
    /// A port over `queues`, which must be non-blocking and frame-preserving. With
    /// `vnet_header`, every frame read or written starts with a virtio-net header
    /// ([`super::wire::VnetHeader`]) and super-frames may pass in both directions.
    pub fn new(queues: Vec<OwnedFd>, vnet_header: bool) -> io::Result<LocalPort> {
        if queues.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a port needs a queue",
            ));
        }
        Ok(LocalPort {
            queues,
            vnet_header,
        })
    }

    /// Number of queues.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Whether frames carry a virtio-net header.
    pub fn has_vnet_header(&self) -> bool {
        self.vnet_header
    }

    /// The descriptor of queue `queue` (modulo the queue count), for polling.
    pub fn fd(&self, queue: usize) -> RawFd {
        self.queues[queue % self.queues.len()].as_raw_fd()
    }

    /// Reads one frame from queue `queue` into `buf`.
    pub fn read(&self, queue: usize, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for writes of its length; the descriptor is owned by `self`.
        let n = unsafe { libc::read(self.fd(queue), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Writes one frame, gathered from `parts`, to queue `queue`.
    pub fn write(&self, queue: usize, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        // SAFETY: `IoSlice` is ABI-compatible with `iovec`; the slices outlive the call.
        let n = unsafe {
            libc::writev(
                self.fd(queue),
                parts.as_ptr().cast(),
                parts.len() as libc::c_int,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}
