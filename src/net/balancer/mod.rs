//! East-west service VIPs and the embedded DNS, as docker's per-network load balancer does with
//! IPVS, in userspace.
//!
//! A [`Balancer`] is one thread with one event loop. For every overlay network the node's table
//! gives it a balancer address on ([`RouteTable::balancers`]), it runs a
//! [`Stack`] on the network's bridge (its own TAP) that holds that address and also
//! claims the network's gateway and every service VIP there ([`Stack::claim`]): tasks on this
//! node reach their VIPs and their DNS server here, whatever node the backends run on.
//!
//! A TCP connection to `VIP:port` is accepted by a listener opened for it as its SYN arrives
//! (smoltcp cannot listen on every port at once), and proxied to the same port of one of the
//! service's running tasks, picked with [`maglev`](crate::net::mesh::maglev) on the client's
//! address and port; a backend that refuses or does not answer is skipped for the next, as the
//! routing mesh does. Both legs are sockets of the same stack: the loop copies bytes between
//! their buffers without a lock or an allocation per packet. UDP to `VIP:port` goes the same
//! way, one flow per client address and port.
//!
//! The gateway answers DNS on port 53 (UDP and TCP) from the network's names ([`crate::net::dns`]); other
//! names go to the node's own resolvers.

#![warn(missing_docs)]

mod dns;
mod dns_tcp;
mod event_loop;
mod network;
mod tcp;
mod udp;

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::net::dns::Forwarder;
use crate::net::event_thread::LoopThread;
use crate::net::mesh::{DeviceOpener, DirectConfig, ProxyCounters, TapOpener};
use crate::net::routes::{NetworkInfo, RouteTable};
use crate::net::stack::{DeviceDrops, Stack};

use event_loop::{Command, Looper};

/// The VIP balancer of one node (see the module documentation).
pub struct Balancer {
    /// The balancer thread; dropping it drops every stack and proxied connection.
    thread: LoopThread<Command>,
    counters: Arc<Counters>,
    opener: Box<dyn DeviceOpener>,
    /// The running stacks by network ID: what each was made for, and its device's drops.
    stacks: Mutex<BTreeMap<String, RunningStack>>,
}

/// What a running stack was made for.
struct RunningStack {
    address: Ipv4Addr,
    network: NetworkInfo,
    drops: Arc<DeviceDrops>,
}

impl Balancer {
    /// Starts the balancer thread with TAP devices, sending DNS queries for names outside the
    /// cluster to the nameservers of `resolv_conf` (the node's `/etc/resolv.conf`), and with
    /// `direct`, frames for tasks on other nodes straight to them as VXLAN (rather than through
    /// the bridge and the overlay engine); it serves no network yet.
    pub fn start(resolv_conf: &Path, direct: Option<DirectConfig>) -> io::Result<Balancer> {
        let forwarder = Forwarder::from_resolv_conf(resolv_conf);
        let opener = TapOpener(NetworkInfo::balancer_tap_name);
        Balancer::launch(opener, forwarder, direct)
    }

    /// Starts the balancer thread with `opener` providing each network's device, sending DNS
    /// queries for names outside the cluster to `resolvers`, and frames as with
    /// [`Balancer::start`].
    pub fn start_with(
        opener: impl DeviceOpener,
        resolvers: Vec<SocketAddr>,
        direct: Option<DirectConfig>,
    ) -> io::Result<Balancer> {
        Balancer::launch(opener, Forwarder::new(resolvers), direct)
    }

    fn launch(
        opener: impl DeviceOpener,
        forwarder: io::Result<Forwarder<dns::Key>>,
        direct: Option<DirectConfig>,
    ) -> io::Result<Balancer> {
        let forwarder = forwarder
            .inspect_err(|e| tracing::warn!("DNS answers SERVFAIL for other names: {e}"))
            .ok();
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let thread = LoopThread::spawn("balancer", |poll| {
            Looper::new(poll, shared, forwarder, direct)
        })?;
        Ok(Balancer {
            thread,
            counters,
            opener: Box::new(opener),
            stacks: Mutex::new(BTreeMap::new()),
        })
    }

    /// Follows a new route table: opens the device of each network where the node's balancer
    /// address is new or changed (so the caller can add it to the bridge right after), then
    /// hands the table to the loop, which drops the stacks of networks gone and takes the new
    /// VIPs and backends. A device that cannot be opened is tried again with the next table;
    /// the first such error is returned once the others are installed. Other nodes take VXLAN
    /// on `data_port`.
    pub fn install(&self, table: Arc<RouteTable>, data_port: u16) -> io::Result<()> {
        let mut running = self.stacks.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|id, stack| {
            let wanted = table.balancers.get(id);
            let info = table.networks.get(id).map(|n| &n.info);
            wanted == Some(&stack.address) && info == Some(&stack.network)
        });
        let mut stacks = Vec::new();
        let mut failure = None;
        for (id, &address) in &table.balancers {
            let Some(routes) = table.networks.get(id) else {
                continue;
            };
            if running.contains_key(id) {
                continue;
            }
            let network = &routes.info;
            match self.opener.open(network) {
                Ok(fd) => {
                    let stack = Stack::new(network, address, fd);
                    let drops = stack.device.drops();
                    let network = network.clone();
                    running.insert(
                        id.clone(),
                        RunningStack {
                            address,
                            network,
                            drops,
                        },
                    );
                    stacks.push((id.clone(), stack));
                }
                Err(e) => {
                    let message = format!("opening the balancer's device on {}: {e}", network.name);
                    failure.get_or_insert(io::Error::new(e.kind(), message));
                }
            }
        }
        self.thread.send(Command::Install {
            table,
            stacks,
            data_port,
        })?;
        failure.map_or(Ok(()), Err)
    }

    /// What the balancer has counted so far.
    pub fn counters(&self) -> BalancerCounters {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let stacks = self.stacks.lock().unwrap_or_else(|e| e.into_inner());
        let drops = |field: fn(&DeviceDrops) -> &AtomicU64| {
            stacks.values().map(|s| load(field(&s.drops))).sum()
        };
        BalancerCounters {
            networks: stacks.len() as u64,
            connections: load(&c.proxy.connections),
            no_backend: load(&c.proxy.no_backend),
            connect_retries: load(&c.proxy.connect_retries),
            connect_failures: load(&c.proxy.connect_failures),
            udp_flows: load(&c.proxy.udp_flows),
            udp_dropped: load(&c.proxy.udp_dropped),
            dns_queries: load(&c.dns_queries),
            dns_forwarded: load(&c.dns_forwarded),
            dns_failed: load(&c.dns_failed),
            device_read_failed: drops(|d| &d.read_failed),
            device_write_queue_full: drops(|d| &d.write_queue_full),
            device_write_failed: drops(|d| &d.write_failed),
        }
    }
}

/// What the loop counts, shared with [`Balancer::counters`].
#[derive(Default)]
struct Counters {
    proxy: ProxyCounters,
    dns_queries: AtomicU64,
    dns_forwarded: AtomicU64,
    dns_failed: AtomicU64,
}

/// A snapshot of the balancer's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BalancerCounters {
    /// Networks the balancer serves on this node.
    pub networks: u64,
    /// TCP connections accepted on VIPs.
    pub connections: u64,
    /// Connections to a VIP reset, and datagrams dropped, because its service had no running
    /// task.
    pub no_backend: u64,
    /// Connections to a backend that failed and were tried on the next one.
    pub connect_retries: u64,
    /// Connections closed because no backend could be reached.
    pub connect_failures: u64,
    /// UDP flows started through VIPs.
    pub udp_flows: u64,
    /// Datagrams through VIPs dropped (no room in the flow's queue, or no local port left).
    pub udp_dropped: u64,
    /// DNS queries received on gateways.
    pub dns_queries: u64,
    /// Queries for names outside the cluster sent on to the node's resolvers.
    pub dns_forwarded: u64,
    /// Queries answered SERVFAIL: no resolver could be asked, or none answered in time.
    pub dns_failed: u64,
    /// Frames the stacks' devices could not read whole.
    pub device_read_failed: u64,
    /// Frames dropped because the device's queue was full (TCP sends them again).
    pub device_write_queue_full: u64,
    /// Frames the stacks' devices refused otherwise (too large, or the device went away).
    pub device_write_failed: u64,
}
