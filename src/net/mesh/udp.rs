//! UDP through the mesh: each client address is a flow with its own socket in the stack (a local
//! port of its own), so replies find their way back; a flow keeps its backend while it lives and
//! ends after [`IDLE_TIMEOUT`] without a datagram either way.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::udp;

use super::count;
use super::event_loop::{Listener, Looper};
use super::tcp::POOL_LIMIT;
use crate::net::routes::PortKey;
use crate::net::stack::Stack;

/// How long a UDP flow lives without traffic (UDP has no end of its own).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Datagrams each flow's socket queues in each direction.
const QUEUE_DATAGRAMS: usize = 64;
/// Bytes each flow's socket queues in each direction.
const QUEUE_BYTES: usize = 64 << 10;

/// One client address talking to one backend through a published UDP port.
pub struct Flow {
    key: PortKey,
    client: SocketAddr,
    backend: SocketAddrV4,
    socket: SocketHandle,
    local_port: u16,
    last_seen: Instant,
}

impl Looper {
    /// Takes every datagram waiting on a published UDP port to its flow's backend.
    pub(super) fn receive_datagrams(&mut self, key: PortKey) {
        loop {
            let Some(published) = self.published.get(&key) else {
                return;
            };
            let Listener::Udp(listener) = &published.listener else {
                return;
            };
            let (len, client) = match listener.recv_from(&mut self.datagram) {
                Ok(received) => received,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => continue, // e.g. an ICMP error reported on the socket
            };
            let index = match self.flow_index.get(&(key, client)) {
                Some(&index) => index,
                None => match self.start_flow(key, client) {
                    Some(index) => index,
                    None => continue,
                },
            };
            let (Some(flow), Some(stack)) = (self.flows.get_mut(index), self.stack.as_mut()) else {
                continue;
            };
            flow.last_seen = Instant::now();
            let socket = stack.sockets.get_mut::<udp::Socket>(flow.socket);
            if socket
                .send_slice(&self.datagram[..len], flow.backend)
                .is_err()
            {
                count(&self.counters.proxy.udp_dropped);
            }
        }
    }

    fn start_flow(&mut self, key: PortKey, client: SocketAddr) -> Option<usize> {
        let backend = self.published.get(&key)?.backend(client, 0);
        let (Some(backend), Some(stack)) = (backend, self.stack.as_mut()) else {
            count(&self.counters.proxy.no_backend);
            return None;
        };
        let Some((socket, local_port)) = bind_flow(stack, &mut self.udp_pool) else {
            count(&self.counters.proxy.udp_dropped);
            return None;
        };
        count(&self.counters.proxy.udp_flows);
        let index = self.flows.insert(Flow {
            key,
            client,
            backend,
            socket,
            local_port,
            last_seen: Instant::now(),
        });
        self.flow_index.insert((key, client), index);
        Some(index)
    }

    /// Sends every backend's reply back to its client; whether any was.
    pub(super) fn relay_replies(&mut self) -> bool {
        let Some(stack) = self.stack.as_mut() else {
            return false;
        };
        let mut relayed = false;
        for index in 0..self.flows.bound() {
            let Some(flow) = self.flows.get_mut(index) else {
                continue;
            };
            let socket = stack.sockets.get_mut::<udp::Socket>(flow.socket);
            let Some(Listener::Udp(listener)) = self.published.get(&flow.key).map(|p| &p.listener)
            else {
                continue;
            };
            while let Ok((data, _)) = socket.recv() {
                // A full kernel send buffer drops the reply, as the network might.
                let _ = listener.send_to(data, flow.client);
                flow.last_seen = Instant::now();
                relayed = true;
            }
        }
        relayed
    }

    /// Ends flows idle for [`IDLE_TIMEOUT`].
    pub(super) fn expire_flows(&mut self) {
        let idle: Vec<usize> = self
            .flows
            .iter()
            .filter(|(_, f)| f.last_seen.elapsed() >= IDLE_TIMEOUT)
            .map(|(i, _)| i)
            .collect();
        for index in idle {
            self.end_flow(index);
        }
    }

    /// Ends the flows of `key` whose backend left the port's backends (new datagrams from their
    /// clients start new flows to a live backend).
    pub(super) fn forget_flows_to_gone_backends(&mut self, key: PortKey) {
        let Some(published) = self.published.get(&key) else {
            return;
        };
        let gone: Vec<usize> =
            self.flows
                .iter()
                .filter(|(_, f)| f.key == key)
                .filter(|(_, f)| {
                    !published.route.backends.iter().any(|b| {
                        SocketAddrV4::new(b.address, published.route.target_port) == f.backend
                    })
                })
                .map(|(i, _)| i)
                .collect();
        for index in gone {
            self.end_flow(index);
        }
    }

    fn end_flow(&mut self, index: usize) {
        let Some(flow) = self.flows.remove(index) else {
            return;
        };
        self.flow_index.remove(&(flow.key, flow.client));
        if let Some(stack) = self.stack.as_mut() {
            recycle(&mut stack.sockets, flow.socket, &mut self.udp_pool);
            stack.udp_ports.release(flow.local_port);
        }
    }
}

/// A flow's socket in `stack` (from `pool` if it has one), bound to a local port of its own so
/// that the backend's replies come back to it, and that port; `None` if no port is free (or,
/// never seen, the socket will not bind: its datagram is dropped all the same).
pub(crate) fn bind_flow(
    stack: &mut Stack,
    pool: &mut Vec<udp::Socket<'static>>,
) -> Option<(SocketHandle, u16)> {
    let port = stack.udp_ports.take()?;
    let mut socket = pool.pop().unwrap_or_else(new_socket);
    if socket.bind(port).is_err() {
        stack.udp_ports.release(port);
        pool.push(socket);
        return None;
    }
    Some((stack.sockets.add(socket), port))
}

/// Takes the UDP socket `handle` out of `sockets`, closed, into `pool` if there is room.
pub(crate) fn recycle(
    sockets: &mut SocketSet<'static>,
    handle: SocketHandle,
    pool: &mut Vec<udp::Socket<'static>>,
) {
    if let smoltcp::socket::Socket::Udp(mut socket) = sockets.remove(handle)
        && pool.len() < POOL_LIMIT
    {
        socket.close();
        pool.push(socket);
    }
}

/// A flow's socket, with room for [`QUEUE_DATAGRAMS`] datagrams each way.
pub(crate) fn new_socket() -> udp::Socket<'static> {
    let buffer = || {
        udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; QUEUE_DATAGRAMS],
            vec![0; QUEUE_BYTES],
        )
    };
    udp::Socket::new(buffer(), buffer())
}
