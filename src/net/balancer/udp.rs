//! UDP through a VIP: the first datagram to `VIP:port` binds a socket there; each client
//! address is a flow with its own socket towards one backend's same port (a local port of its
//! own, so replies find their way back), and replies go back from the VIP's socket. A flow ends
//! after [`IDLE_TIMEOUT`] without a datagram, or when its backend leaves the service.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Instant;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

use super::event_loop::Shared;
use super::network::{Network, Vip};
use crate::net::mesh::count;
use crate::net::mesh::maglev::pick;
use crate::net::mesh::slab::Slab;
use crate::net::mesh::udp::{IDLE_TIMEOUT, bind_flow, new_socket, recycle};
use crate::net::stack::Stack;

/// UDP through one network's VIPs.
#[derive(Default)]
pub struct UdpFlows {
    /// The socket at each VIP and port datagrams came to, and when the last one came.
    vips: HashMap<SocketAddrV4, (SocketHandle, Instant)>,
    flows: Flows,
}

/// The flows through one network's VIPs.
#[derive(Default)]
struct Flows {
    slab: Slab<Flow>,
    /// Flows by VIP and client.
    index: HashMap<(SocketAddrV4, SocketAddrV4), usize>,
}

/// One client talking to one backend through a VIP.
struct Flow {
    vip: SocketAddrV4,
    client: SocketAddrV4,
    backend: SocketAddrV4,
    socket: SocketHandle,
    local_port: u16,
    last_seen: Instant,
}

impl Network {
    /// Makes sure a socket at `vip` takes the datagram about to come in.
    pub(super) fn bind_vip(&mut self, vip: SocketAddrV4, pool: &mut Vec<udp::Socket<'static>>) {
        if let Some((_, last_seen)) = self.udp.vips.get_mut(&vip) {
            *last_seen = Instant::now();
            return;
        }
        let mut socket = pool.pop().unwrap_or_else(new_socket);
        let endpoint = IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(*vip.ip())),
            port: vip.port(),
        };
        if socket.bind(endpoint).is_err() {
            return; // port 0: the stack drops the datagram
        }
        let handle = self.stack.sockets.add(socket);
        self.udp.vips.insert(vip, (handle, Instant::now()));
    }

    /// Passes datagrams from clients to their flow's backend and back; whether any moved.
    pub fn relay_datagrams(&mut self, shared: &mut Shared) -> bool {
        let mut moved = false;
        let UdpFlows { vips, flows } = &mut self.udp;
        let stack = &mut self.stack;
        for (&vip, &(handle, _)) in vips.iter() {
            loop {
                let socket = stack.sockets.get_mut::<udp::Socket>(handle);
                let Ok((len, meta)) = socket.recv_slice(&mut shared.scratch) else {
                    break;
                };
                moved = true;
                let (IpAddress::Ipv4(address), port) = (meta.endpoint.addr, meta.endpoint.port);
                let client = SocketAddrV4::new(address, port);
                let Some(flow) = flows.find_or_start(stack, &self.vips, vip, client, shared) else {
                    continue;
                };
                flow.last_seen = Instant::now();
                let socket = stack.sockets.get_mut::<udp::Socket>(flow.socket);
                if socket
                    .send_slice(&shared.scratch[..len], flow.backend)
                    .is_err()
                {
                    count(&shared.counters.proxy.udp_dropped);
                }
            }
        }
        for index in 0..flows.slab.bound() {
            let Some(flow) = flows.slab.get_mut(index) else {
                continue;
            };
            let Some(&(vip, _)) = vips.get(&flow.vip) else {
                continue;
            };
            loop {
                let socket = stack.sockets.get_mut::<udp::Socket>(flow.socket);
                let Ok((len, _)) = socket.recv_slice(&mut shared.scratch) else {
                    break;
                };
                moved = true;
                flow.last_seen = Instant::now();
                let socket = stack.sockets.get_mut::<udp::Socket>(vip);
                let client = IpEndpoint::from(flow.client);
                if socket.send_slice(&shared.scratch[..len], client).is_err() {
                    count(&shared.counters.proxy.udp_dropped);
                }
            }
        }
        moved
    }

    /// Ends the flows idle for [`IDLE_TIMEOUT`] or whose backend left their service (the
    /// client's next datagram starts a flow to a live one), and closes the VIP sockets idle as
    /// long without a flow.
    pub fn expire_flows(&mut self, pool: &mut Vec<udp::Socket<'static>>) {
        let vips = &self.vips;
        let ended: Vec<usize> = self
            .udp
            .flows
            .slab
            .iter()
            .filter(|(_, f)| {
                let backend_left = vips
                    .get(f.vip.ip())
                    .is_none_or(|v| !v.backends.iter().any(|b| b.address == *f.backend.ip()));
                backend_left || f.last_seen.elapsed() >= IDLE_TIMEOUT
            })
            .map(|(i, _)| i)
            .collect();
        for index in ended {
            let Some(flow) = self.udp.flows.slab.remove(index) else {
                continue;
            };
            self.udp.flows.index.remove(&(flow.vip, flow.client));
            self.stack.udp_ports.release(flow.local_port);
            recycle(&mut self.stack.sockets, flow.socket, pool);
        }
        let flows = &self.udp.flows.slab;
        let idle: Vec<SocketAddrV4> = self
            .udp
            .vips
            .iter()
            .filter(|(vip, (_, last_seen))| {
                last_seen.elapsed() >= IDLE_TIMEOUT && !flows.iter().any(|(_, f)| f.vip == **vip)
            })
            .map(|(vip, _)| *vip)
            .collect();
        for vip in idle {
            if let Some((handle, _)) = self.udp.vips.remove(&vip) {
                recycle(&mut self.stack.sockets, handle, pool);
            }
        }
    }
}

impl Flows {
    /// The flow of `client` through `vip`, started if new; `None` if the service has no
    /// backend or no local port is free.
    fn find_or_start(
        &mut self,
        stack: &mut Stack,
        vips: &HashMap<Ipv4Addr, Vip>,
        vip: SocketAddrV4,
        client: SocketAddrV4,
        shared: &mut Shared,
    ) -> Option<&mut Flow> {
        if let Some(&index) = self.index.get(&(vip, client)) {
            return self.slab.get_mut(index);
        }
        let backend = vips
            .get(vip.ip())
            .and_then(|v| pick(&v.maglev, &v.backends, SocketAddr::V4(client), 0));
        let Some(backend) = backend else {
            count(&shared.counters.proxy.no_backend);
            return None;
        };
        let Some((socket, local_port)) = bind_flow(stack, &mut shared.udp_pool) else {
            count(&shared.counters.proxy.udp_dropped);
            return None;
        };
        count(&shared.counters.proxy.udp_flows);
        let index = self.slab.insert(Flow {
            vip,
            client,
            backend: SocketAddrV4::new(backend.address, vip.port()),
            socket,
            local_port,
            last_seen: Instant::now(),
        });
        self.index.insert((vip, client), index);
        self.slab.get_mut(index)
    }
}
