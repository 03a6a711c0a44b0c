//! One network as the balancer serves it: its stack, its VIPs and the connections through them.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use smoltcp::iface::SocketHandle;

use super::dns;
use super::tcp::Connection;
use crate::net::dns::Zone;
use crate::net::mesh::maglev::{Maglev, maglev_for};
use crate::net::mesh::slab::Slab;
use crate::net::routes::{Backend, NetworkRoutes};
use crate::net::stack::Stack;

/// The balancer's stack on one network, and what goes through it.
pub struct Network {
    /// The stack: the node's balancer address, claiming the gateway and the VIPs.
    pub stack: Stack,
    /// The network's services that have a VIP, by VIP.
    pub vips: HashMap<Ipv4Addr, Vip>,
    /// Connections to VIPs, from the SYN on.
    pub connections: Slab<Connection>,
    /// Sockets finished this turn, removed once the next egress has sent their resets, with
    /// the local port each took (backend legs only).
    pub dying: Vec<(SocketHandle, Option<u16>)>,
    /// The device has frames to read (it reports each arrival once: edge-triggered).
    pub readable: bool,
    /// The DNS socket, at the gateway's port 53.
    pub dns: SocketHandle,
    /// The names DNS answers on the network.
    pub zone: Zone,
}

/// A service's VIP: where its connections go.
pub struct Vip {
    /// The service's running tasks.
    pub backends: Vec<Backend>,
    /// Maglev over them.
    pub maglev: Maglev,
}

impl Network {
    /// The network of `routes` served by `stack`.
    pub fn new(mut stack: Stack, routes: &NetworkRoutes) -> Network {
        let dns = stack.sockets.add(dns::socket(routes.info.gateway));
        let mut network = Network {
            stack,
            vips: HashMap::new(),
            connections: Slab::new(),
            dying: Vec::new(),
            // Whatever waits on a new device was never reported.
            readable: true,
            dns,
            zone: Zone::new(routes),
        };
        network.follow(routes);
        network
    }

    /// Takes the network's names, VIPs and backends from `routes`, and claims the VIPs and the
    /// gateway. A VIP's Maglev table is rebuilt only when its backends changed; connections
    /// already made stay with their backend.
    pub fn follow(&mut self, routes: &NetworkRoutes) {
        self.zone = Zone::new(routes);
        let mut vips = HashMap::new();
        for service in routes.services.values() {
            let Some(address) = service.vip else {
                continue;
            };
            let vip = match self.vips.remove(&address) {
                Some(old) if old.backends == service.tasks => old,
                _ => Vip {
                    backends: service.tasks.clone(),
                    maglev: maglev_for(&service.tasks),
                },
            };
            vips.insert(address, vip);
        }
        self.vips = vips;
        let claimed = self.vips.keys().copied().chain([routes.info.gateway]);
        self.stack.claim(claimed);
    }
}
