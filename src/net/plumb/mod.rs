//! Plumbing, over netlink: the kernel devices between a task and the overlay engine.
//!
//! The packet path on a node is task netns -> veth -> per-network bridge -> TAP -> overlay
//! engine. This module makes everything but the TAP, which the engine creates and opens:
//!
//! - [`Plumber::ensure_network`] / [`Plumber::remove_network`]: the network's bridge
//!   ([`NetworkInfo::bridge_name`]), with the network's TAP ([`NetworkInfo::tap_name`]) as a port
//!   once the engine has made it;
//! - [`NetnsFile`]: a task's network namespace, made before the task so that its network is
//!   ready when its program starts (docker-like), kept alive by a bind mount;
//! - [`Plumber::attach`] / [`Plumber::detach`]: a veth pair from a task's namespace to a
//!   network's bridge, with the task's address, MAC address and default route.
//!
//! Every operation is idempotent, so the agent can simply re-apply what it wants after any change
//! (or a daemon restart). Errors name the device and the operation ([`PlumbError`]).

mod attach;
mod bridge;
mod link;
mod netns;

use std::io;

use rtnetlink::Handle;

pub use attach::{Attachment, veth_name};
pub use netns::NetnsFile;

#[cfg(doc)]
use crate::net::routes::NetworkInfo;

/// Makes and removes bridges, veths and task addresses, through an rtnetlink connection to the
/// network namespace it was made in (the host's).
#[derive(Debug, Clone)]
pub struct Plumber {
    handle: Handle,
}

impl Plumber {
    /// A plumber for the current thread's network namespace, which must be that of every thread
    /// it is used from (it writes IPv6 sysctls of host-side devices from the calling thread): the
    /// daemon's. Must be called inside a tokio runtime, on which the netlink connection is
    /// spawned; the connection ends when the last clone of the plumber is dropped.
    pub fn new() -> Result<Plumber> {
        let (connection, handle, _) = rtnetlink::new_connection()
            .map_err(|e| PlumbError::new("opening an rtnetlink socket", e))?;
        tokio::spawn(connection);
        Ok(Plumber { handle })
    }
}

/// A plumbing operation that failed: what was being done, to which device, and why, e.g.
/// "creating veth shv1a2b3c4d5e for task x1y2 (eth0 in /var/lib/shoal/netns/x1y2): File exists
/// (os error 17)".
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {source}")]
pub struct PlumbError {
    /// What was being done, naming the device (and task, or namespace) concerned.
    pub operation: String,
    /// Why it failed; netlink errors carry the kernel's errno (`raw_os_error`).
    #[source]
    pub source: io::Error,
}

impl PlumbError {
    fn new(operation: impl Into<String>, source: io::Error) -> PlumbError {
        PlumbError {
            operation: operation.into(),
            source,
        }
    }
}

/// The result of a plumbing operation.
pub type Result<T> = std::result::Result<T, PlumbError>;
