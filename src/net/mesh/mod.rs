//! The ingress routing mesh: published ports answered on every node and forwarded to the
//! service's tasks, wherever they run.
//!
//! A [`Mesh`] is one thread with one event loop. It listens on every port the route table
//! publishes (kernel sockets), picks a backend per flow with [`maglev`] over the service's
//! running tasks, and reaches it from this node's own address on the ingress network: a
//! [`crate::net::stack::Stack`] whose frames go through the network's bridge, to a task here or
//! through the overlay engine to a task on another node. [`proxy_protocol`] can tell a backend
//! who the client was. The loop copies bytes straight between kernel sockets and smoltcp's
//! socket buffers; it takes no lock and allocates nothing per packet.

#![warn(missing_docs)]

mod event_loop;
pub mod host;
pub mod maglev;
pub mod proxy_protocol;
pub(crate) mod slab;
pub(crate) mod tcp;
pub(crate) mod udp;

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::net::event_thread::LoopThread;
use crate::net::routes::{IngressAddress, NetworkInfo, RouteTable};
use crate::net::stack::{DeviceDrops, FrameFd, Stack};

use event_loop::{Command, Looper};

/// Where the mesh listens, and how it reaches other nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshConfig {
    /// The address published ports are bound to on this node (all addresses by default).
    pub listen: IpAddr,
    /// Send frames for backends on other nodes straight to them as VXLAN, rather than through
    /// the bridge and the overlay engine (`None`: everything through the stack's device).
    pub direct: Option<DirectConfig>,
}

/// What the mesh needs to send VXLAN to other nodes itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectConfig {
    /// This node's ID in the route table.
    pub local_node: String,
    /// This node's underlay address, the source the other nodes' engines accept.
    pub underlay: IpAddr,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            listen: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            direct: None,
        }
    }
}

/// Opens the device of the node's stack on a network.
pub trait DeviceOpener: Send + Sync + 'static {
    /// A non-blocking descriptor on `network` where one read or write is one Ethernet frame.
    fn open(&self, network: &NetworkInfo) -> io::Result<FrameFd>;
}

/// Opens the TAP the function names for a network (the mesh's
/// [`NetworkInfo::stack_tap_name`], the balancer's [`NetworkInfo::balancer_tap_name`]; the
/// plumbing makes it a port of the network's bridge); needs `CAP_NET_ADMIN`.
pub struct TapOpener(pub fn(&NetworkInfo) -> String);

impl DeviceOpener for TapOpener {
    fn open(&self, network: &NetworkInfo) -> io::Result<FrameFd> {
        FrameFd::open_tap(&(self.0)(network), network.mtu)
    }
}

/// The routing mesh of one node (see the module documentation).
pub struct Mesh {
    /// The mesh thread; dropping it closes every published port and proxied connection.
    thread: LoopThread<Command>,
    counters: Arc<Counters>,
    opener: Box<dyn DeviceOpener>,
    /// The ingress address and network the running stack was made for.
    stack_for: Mutex<Option<(IngressAddress, NetworkInfo)>>,
    device_drops: Mutex<Option<Arc<DeviceDrops>>>,
}

impl Mesh {
    /// Starts the mesh thread with TAP devices; nothing is published yet.
    pub fn start(config: MeshConfig) -> io::Result<Mesh> {
        Mesh::start_with(config, TapOpener(NetworkInfo::stack_tap_name))
    }

    /// Starts the mesh thread with `opener` providing the stack's device.
    pub fn start_with(config: MeshConfig, opener: impl DeviceOpener) -> io::Result<Mesh> {
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let thread = LoopThread::spawn("mesh", |poll| Ok(Looper::new(config, poll, shared)))?;
        Ok(Mesh {
            thread,
            counters,
            opener: Box::new(opener),
            stack_for: Mutex::new(None),
            device_drops: Mutex::new(None),
        })
    }

    /// Follows a new route table: opens the stack's device when the node's ingress address
    /// appears or changes (so the caller can add it to the bridge right after), then hands the
    /// table to the loop, which binds newly published ports, closes those gone and takes the new
    /// backends. Other nodes take VXLAN on `data_port`.
    pub fn install(&self, table: Arc<RouteTable>, data_port: u16) -> io::Result<()> {
        let wanted = table.ingress.as_ref().and_then(|ingress| {
            let network = table.networks.get(&ingress.network_id)?;
            Some((ingress.clone(), network.info.clone()))
        });
        let mut stack_for = self.stack_for.lock().unwrap_or_else(|e| e.into_inner());
        let stack = if *stack_for == wanted {
            None
        } else {
            let stack = match &wanted {
                Some((ingress, network)) => {
                    let fd = self.opener.open(network).map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("opening the mesh's device on {}: {e}", network.name),
                        )
                    })?;
                    let stack = Stack::new(network, ingress.address, fd);
                    *self.device_drops.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(stack.device.drops());
                    Some(stack)
                }
                None => None,
            };
            *stack_for = wanted;
            Some(stack)
        };
        self.thread.send(Command::Install {
            table,
            stack,
            data_port,
        })
    }

    /// What the mesh has counted so far.
    pub fn counters(&self) -> MeshCounters {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let drops = self.device_drops.lock().unwrap_or_else(|e| e.into_inner());
        MeshCounters {
            connections: load(&c.proxy.connections),
            no_backend: load(&c.proxy.no_backend),
            connect_retries: load(&c.proxy.connect_retries),
            connect_failures: load(&c.proxy.connect_failures),
            udp_flows: load(&c.proxy.udp_flows),
            udp_dropped: load(&c.proxy.udp_dropped),
            bind_failures: load(&c.bind_failures),
            device_read_failed: drops.as_ref().map_or(0, |d| load(&d.read_failed)),
            device_write_queue_full: drops.as_ref().map_or(0, |d| load(&d.write_queue_full)),
            device_write_failed: drops.as_ref().map_or(0, |d| load(&d.write_failed)),
        }
    }
}

/// What the loop counts, shared with [`Mesh::counters`].
#[derive(Default)]
struct Counters {
    proxy: ProxyCounters,
    bind_failures: AtomicU64,
}

/// What a proxy's TCP and UDP code counts, in the mesh and in the balancer alike (their
/// snapshots, [`MeshCounters`] and [`crate::net::balancer::BalancerCounters`], say more).
#[derive(Default)]
pub(crate) struct ProxyCounters {
    /// TCP connections accepted.
    pub connections: AtomicU64,
    /// Connections and datagrams turned away for want of a backend.
    pub no_backend: AtomicU64,
    /// Connections tried again on the next backend.
    pub connect_retries: AtomicU64,
    /// Connections closed because no backend could be reached.
    pub connect_failures: AtomicU64,
    /// UDP flows started.
    pub udp_flows: AtomicU64,
    /// Datagrams dropped.
    pub udp_dropped: AtomicU64,
}

/// Counts one in `counter`. Relaxed: a counter orders nothing, it is only read for a snapshot.
pub(crate) fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A snapshot of the mesh's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MeshCounters {
    /// TCP connections accepted on published ports.
    pub connections: u64,
    /// Connections and datagrams turned away because the port had no backend.
    pub no_backend: u64,
    /// Connections to a backend that failed and were tried on the next one.
    pub connect_retries: u64,
    /// Connections closed because no backend could be reached.
    pub connect_failures: u64,
    /// UDP flows started.
    pub udp_flows: u64,
    /// Datagrams dropped (no room in the flow's buffer, or no local port left).
    pub udp_dropped: u64,
    /// Published ports that could not be bound on this node.
    pub bind_failures: u64,
    /// Frames the stack's device could not read whole.
    pub device_read_failed: u64,
    /// Frames dropped because the device's queue was full (TCP sends them again).
    pub device_write_queue_full: u64,
    /// Frames the stack's device refused otherwise (too large, or the device went away).
    pub device_write_failed: u64,
}
