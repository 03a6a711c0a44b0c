//! TCP through a VIP: the SYN that opens a connection finds a listener made for it
//! ([`Network::take_frames`]), the accepted socket is joined to one that connects to a backend, and bytes pass between the two.

use std::net::{SocketAddr, SocketAddrV4};

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{IpAddress, IpListenEndpoint};

use super::Counters;
use super::event_loop::Shared;
use super::network::Network;
use crate::net::mesh::count;
use crate::net::mesh::maglev::pick;
use crate::net::mesh::tcp::{
    CONNECT_TIMEOUT, Pumped, connect, connected, new_socket, reconnect, recycle, reset_unless_over,
};

/// One connection to a VIP and its leg to a backend.
pub struct Connection {
    /// The socket the client's connection was accepted on.
    client: SocketHandle,
    /// The socket connecting to a backend, with its local port; `None` until the client's
    /// connection is established.
    backend: Option<(SocketHandle, u16)>,
    /// Backends tried so far, the current one included.
    attempts: usize,
    /// The backend's connection is established.
    open: bool,
    /// The client has sent its last byte; the backend was sent a FIN.
    client_done: bool,
    /// The backend has sent its last byte; the client was sent a FIN.
    backend_done: bool,
}

impl Network {
    /// A connection whose socket listens on `vip`; its index.
    pub(super) fn listen(
        &mut self,
        vip: SocketAddrV4,
        pool: &mut Vec<tcp::Socket<'static>>,
    ) -> usize {
        let mut socket = pool.pop().unwrap_or_else(new_socket);
        // Until established: a client that never completes the handshake lets it go.
        socket.set_timeout(Some(CONNECT_TIMEOUT));
        socket.set_ack_delay(None);
        let endpoint = IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(*vip.ip())),
            port: vip.port(),
        };
        socket
            .listen(endpoint)
            .expect("a closed socket listens on a non-zero port");
        self.connections.insert(Connection {
            client: self.stack.sockets.add(socket),
            backend: None,
            attempts: 0,
            open: false,
            client_done: false,
            backend_done: false,
        })
    }

    /// Takes back the listener of connection `index` if its SYN went elsewhere (a socket of the
    /// same connection had it: a retransmission) or nowhere (it was malformed).
    pub(super) fn unless_taken(&mut self, index: usize, pool: &mut Vec<tcp::Socket<'static>>) {
        let Some(connection) = self.connections.get_mut(index) else {
            return;
        };
        let socket = self.stack.sockets.get_mut::<tcp::Socket>(connection.client);
        if socket.state() == State::Listen {
            socket.abort();
            let handle = connection.client;
            self.connections.remove(index);
            recycle(&mut self.stack.sockets, handle, pool);
        }
    }

    /// Moves what can move on every connection; whether anything did.
    pub fn pump_connections(&mut self, shared: &mut Shared) -> bool {
        let mut moved = false;
        for index in 0..self.connections.bound() {
            match self.pump(index, shared) {
                Pumped::Idle => {}
                Pumped::Moved => moved = true,
                Pumped::Finished => {
                    self.finish(index);
                    moved = true;
                }
                Pumped::Failed => {
                    self.retry(index, &shared.counters);
                    moved = true;
                }
            }
        }
        moved
    }

    fn pump(&mut self, index: usize, shared: &mut Shared) -> Pumped {
        let Some(connection) = self.connections.get_mut(index) else {
            return Pumped::Idle;
        };
        let Some((backend, _)) = connection.backend else {
            return self.accept(index, shared);
        };
        let sockets = &mut self.stack.sockets;
        let client = connection.client;
        // A leg closed without our FIN was reset (or timed out): so is the other. (A client
        // that gives up while its backend is still being tried ends the attempts.)
        let reset = |socket: SocketHandle, closed_by_us: bool, sockets: &mut SocketSet| {
            !closed_by_us && sockets.get::<tcp::Socket>(socket).state() == State::Closed
        };
        if reset(client, connection.backend_done, sockets) {
            return Pumped::Finished;
        }
        if !connection.open {
            if let Err(pumped) = connected(sockets.get_mut::<tcp::Socket>(backend)) {
                return pumped;
            }
            connection.open = true;
        }
        if reset(backend, connection.client_done, sockets) {
            return Pumped::Finished;
        }
        let scratch = &mut shared.scratch;
        let mut moved = relay(sockets, client, backend, scratch);
        moved |= relay(sockets, backend, client, scratch);
        if !connection.client_done && finished_receiving(sockets, client) {
            connection.client_done = true;
            sockets.get_mut::<tcp::Socket>(backend).close();
            moved = true;
        }
        if !connection.backend_done && finished_receiving(sockets, backend) {
            connection.backend_done = true;
            sockets.get_mut::<tcp::Socket>(client).close();
            moved = true;
        }
        // Both legs closed, or in time-wait: both ends finished, ours first; the stack need
        // not linger, the local port is not reused for a long while.
        let over = |socket| {
            let state = sockets.get::<tcp::Socket>(socket).state();
            matches!(state, State::Closed | State::TimeWait)
        };
        if over(client) && over(backend) {
            return Pumped::Finished;
        }
        if moved { Pumped::Moved } else { Pumped::Idle }
    }

    /// A connection whose client socket is not joined to a backend yet: once established, it is
    /// joined to the VIP's backend for the client.
    fn accept(&mut self, index: usize, shared: &mut Shared) -> Pumped {
        let Some(connection) = self.connections.get_mut(index) else {
            return Pumped::Idle;
        };
        let socket = self.stack.sockets.get_mut::<tcp::Socket>(connection.client);
        match socket.state() {
            State::Listen | State::SynReceived => return Pumped::Idle,
            State::Closed | State::TimeWait => return Pumped::Finished,
            _ => {}
        }
        count(&shared.counters.proxy.connections);
        socket.set_timeout(None);
        let (Some(local), Some(remote)) = (socket.local_endpoint(), socket.remote_endpoint())
        else {
            return Pumped::Finished;
        };
        let (IpAddress::Ipv4(vip), IpAddress::Ipv4(client)) = (local.addr, remote.addr);
        let client = SocketAddr::from((client, remote.port));
        let backend = self
            .vips
            .get(&vip)
            .and_then(|v| pick(&v.maglev, &v.backends, client, 0));
        let Some(backend) = backend else {
            count(&shared.counters.proxy.no_backend);
            socket.abort();
            return Pumped::Finished;
        };
        let target = SocketAddrV4::new(backend.address, local.port);
        let Some(leg) = connect(&mut self.stack, &mut shared.pool, target) else {
            count(&shared.counters.proxy.connect_failures);
            self.stack
                .sockets
                .get_mut::<tcp::Socket>(connection.client)
                .abort();
            return Pumped::Finished;
        };
        connection.backend = Some(leg);
        connection.attempts = 1;
        Pumped::Moved
    }

    /// Tries the connection's next backend, or gives up once each was tried.
    fn retry(&mut self, index: usize, counters: &Counters) {
        let Some(connection) = self.connections.get_mut(index) else {
            return;
        };
        let client = self.stack.sockets.get::<tcp::Socket>(connection.client);
        let next = client
            .local_endpoint()
            .zip(client.remote_endpoint())
            .and_then(|(local, remote)| {
                let IpAddress::Ipv4(vip) = local.addr;
                let IpAddress::Ipv4(address) = remote.addr;
                let vip = self.vips.get(&vip)?;
                let from = SocketAddr::from((address, remote.port));
                let backend = pick(&vip.maglev, &vip.backends, from, connection.attempts)
                    .filter(|_| connection.attempts < vip.backends.len())?;
                Some(SocketAddrV4::new(backend.address, local.port))
            });
        let (Some(next), Some((socket, port))) = (next, connection.backend.as_mut()) else {
            count(&counters.proxy.connect_failures);
            return self.finish(index);
        };
        count(&counters.proxy.connect_retries);
        connection.attempts += 1;
        if !reconnect(&mut self.stack, *socket, port, next) {
            count(&counters.proxy.connect_failures);
            self.finish(index);
        }
    }

    /// Ends a connection: each leg still open is reset, and its socket kept for reuse once the
    /// reset is sent.
    fn finish(&mut self, index: usize) {
        let Some(connection) = self.connections.remove(index) else {
            return;
        };
        let legs = [(connection.client, None)].into_iter().chain(
            connection
                .backend
                .map(|(socket, port)| (socket, Some(port))),
        );
        for (handle, port) in legs {
            reset_unless_over(self.stack.sockets.get_mut::<tcp::Socket>(handle));
            self.dying.push((handle, port));
        }
    }

    /// Removes the sockets finished since the last egress (which sent their resets) and keeps
    /// them for reuse.
    pub fn bury(&mut self, pool: &mut Vec<tcp::Socket<'static>>) {
        for (handle, port) in self.dying.drain(..) {
            recycle(&mut self.stack.sockets, handle, pool);
            if let Some(port) = port {
                self.stack.tcp_ports.release(port);
            }
        }
    }
}

/// Moves what `from` has received into `to`'s send buffer, through `scratch`; whether anything
/// moved.
fn relay(
    sockets: &mut SocketSet,
    from: SocketHandle,
    to: SocketHandle,
    scratch: &mut [u8],
) -> bool {
    let mut moved = false;
    loop {
        let receiver = sockets.get_mut::<tcp::Socket>(to);
        if !receiver.can_send() {
            return moved;
        }
        let room = (receiver.send_capacity() - receiver.send_queue()).min(scratch.len());
        let sender = sockets.get_mut::<tcp::Socket>(from);
        let Ok(n @ 1..) = sender.recv_slice(&mut scratch[..room]) else {
            return moved;
        };
        // Fits: `room` was free.
        let _ = sockets.get_mut::<tcp::Socket>(to).send_slice(&scratch[..n]);
        moved = true;
    }
}

/// Whether `socket` has received its peer's last byte (a FIN) and passed everything on.
fn finished_receiving(sockets: &SocketSet, socket: SocketHandle) -> bool {
    let socket = sockets.get::<tcp::Socket>(socket);
    !socket.may_recv() && !socket.can_recv()
}
