//! TCP through the mesh: each accepted client connection is joined to a smoltcp socket that
//! connects to a backend, and bytes are copied between the kernel socket and smoltcp's buffers.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4};

use mio::event::Event;
use mio::{Interest, Token};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, CongestionControl, State};
use smoltcp::time::Duration;

use super::count;
use super::event_loop::Looper;
use super::proxy_protocol::{self, MAX_HEADER_LEN, Transport};
use crate::net::routes::PortKey;
use crate::net::stack::Stack;

/// The stack's receive buffer per connection, which is the window the backend may fill: a
/// download crosses nodes at up to its size per round trip (256 KiB gave 2.2 Gbit/s in the lab,
/// 1 MiB 5.8). Pages are touched only as data flows through.
const RECEIVE_BUFFER: usize = 1 << 20;
/// The stack's send buffer per connection (uploads are mostly smaller).
const SEND_BUFFER: usize = 256 << 10;
/// Closed sockets kept for new connections and flows (their buffers are the costly part to
/// make); more are freed.
pub(crate) const POOL_LIMIT: usize = 128;
/// How long a backend may take to answer a connection attempt before the next one is tried.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the backend's data waits for an ACK to ride on once the connection has shown it
/// goes back and forth (smoltcp's default; Linux waits 40 ms and more).
const ACK_DELAY: Duration = Duration::from_millis(10);

/// One client connection and its leg to a backend.
pub struct Connection {
    client: mio::net::TcpStream,
    client_addr: SocketAddr,
    key: PortKey,
    socket: SocketHandle,
    local_port: u16,
    /// Backends tried so far, the current one included.
    attempts: usize,
    open: bool,
    /// The client socket may have data (or an end) to read.
    readable: bool,
    /// The client socket may take data.
    writable: bool,
    /// The client has sent its last byte; the backend was sent a FIN.
    client_done: bool,
    /// The backend has sent its last byte; the client was sent a FIN.
    backend_done: bool,
    /// The backend's data was passed to the client since the client last spoke.
    answered: bool,
}

/// What pumping did to a proxied connection (here and in the balancer).
pub(crate) enum Pumped {
    /// Nothing moved.
    Idle,
    /// Data or an end moved.
    Moved,
    /// The connection is over.
    Finished,
    /// The backend refused or did not answer.
    Failed,
}

impl Looper {
    /// Accepts every waiting client of a published TCP port.
    pub(super) fn accept_all(&mut self, key: PortKey) {
        loop {
            let Some(published) = self.published.get(&key) else {
                return;
            };
            let super::event_loop::Listener::Tcp(listener) = &published.listener else {
                return;
            };
            let (client, client_addr) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!("accept on {key}: {e}");
                    return;
                }
            };
            count(&self.counters.proxy.connections);
            let backend = published.backend(client_addr, 0);
            let (Some(backend), Some(stack)) = (backend, self.stack.as_mut()) else {
                count(&self.counters.proxy.no_backend);
                continue; // dropping the stream closes it
            };
            let Some((socket, local_port)) = connect(stack, &mut self.tcp_pool, backend) else {
                count(&self.counters.proxy.connect_failures);
                continue;
            };
            let index = self.connections.insert(Connection {
                client,
                client_addr,
                key,
                socket,
                local_port,
                attempts: 1,
                open: false,
                readable: false,
                writable: false,
                client_done: false,
                backend_done: false,
                answered: false,
            });
            let connection = self.connections.get_mut(index).expect("just inserted");
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut connection.client, Token(index), interest)
            {
                tracing::warn!("cannot poll a client connection: {e}");
                self.close(index);
            }
        }
    }

    /// Notes what the kernel said about a client socket; the data moves in the next turn.
    pub(super) fn on_client(&mut self, index: usize, event: &Event) {
        let Some(connection) = self.connections.get_mut(index) else {
            return;
        };
        // An end or an error shows up as a read or write that says so.
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            connection.readable = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            connection.writable = true;
        }
    }

    /// Moves what can move on every connection; whether anything did.
    pub(super) fn pump_connections(&mut self) -> bool {
        let mut moved = false;
        for index in 0..self.connections.bound() {
            match self.pump(index) {
                Pumped::Idle => {}
                Pumped::Moved => moved = true,
                Pumped::Finished => {
                    self.close(index);
                    moved = true;
                }
                Pumped::Failed => {
                    moved = true;
                    self.retry(index);
                }
            }
        }
        moved
    }

    fn pump(&mut self, index: usize) -> Pumped {
        let (Some(connection), Some(stack)) =
            (self.connections.get_mut(index), self.stack.as_mut())
        else {
            return Pumped::Idle;
        };
        let socket = stack.sockets.get_mut::<tcp::Socket>(connection.socket);
        let mut moved = false;
        if !connection.open {
            if let Err(pumped) = connected(socket) {
                return pumped;
            }
            connection.open = true;
            let proxied = self.published.get(&connection.key);
            if proxied.is_some_and(|p| p.route.proxy_protocol) {
                let mut header = [0u8; MAX_HEADER_LEN];
                let local = connection.client.local_addr();
                if let Ok(local) = local {
                    let len = proxy_protocol::encode(
                        connection.client_addr,
                        local,
                        Transport::Stream,
                        &mut header,
                    );
                    // The send buffer is empty and far larger than a header.
                    let _ = socket.send_slice(&header[..len]);
                }
            }
            moved = true;
        }
        // Client to backend. A read shorter than the room offered emptied the kernel socket:
        // the next data is reported afresh (edge-triggered), so no read need find it empty.
        while connection.readable && !connection.client_done && socket.can_send() {
            let client = &mut connection.client;
            let read = socket.send(|buffer| match client.read(buffer) {
                Ok(n) => (n, Ok((n, n < buffer.len()))),
                Err(e) => (0, Err(e)),
            });
            match read {
                Ok(Ok((0, _))) => {
                    connection.client_done = true;
                    socket.close();
                }
                Ok(Ok((_, drained))) => {
                    if std::mem::take(&mut connection.answered) {
                        // A request after a response: the connection goes back and forth, so
                        // the backend's next answer can wait a little for an ACK to carry
                        // (like Linux, which ACKs at once only until it sees that).
                        socket.set_ack_delay(Some(ACK_DELAY));
                    }
                    connection.readable = !drained;
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => connection.readable = false,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                // The client reset or the socket broke: reset the backend's side too.
                Ok(Err(_)) | Err(_) => {
                    socket.abort();
                    return Pumped::Finished;
                }
            }
            moved = true;
        }
        // Backend to client; a short write means the kernel socket is full.
        while connection.writable && socket.can_recv() {
            let client = &mut connection.client;
            let written = socket.recv(|data| match client.write(data) {
                Ok(n) => (n, Ok(n < data.len())),
                Err(e) => (0, Err(e)),
            });
            match written {
                Ok(Ok(full)) => {
                    connection.answered = true;
                    connection.writable = !full;
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => connection.writable = false,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(_)) | Err(_) => {
                    socket.abort();
                    return Pumped::Finished;
                }
            }
            moved = true;
        }
        if !connection.backend_done && !socket.may_recv() && !socket.can_recv() {
            // The backend finished (FIN, or a reset): pass the end on.
            connection.backend_done = true;
            let _ = connection.client.shutdown(Shutdown::Write);
            moved = true;
        }
        // Closed: both ends finished, or the backend reset. Time-wait: both ends finished, ours
        // first; the stack need not linger, the local port is not reused for a long while.
        let finished = matches!(socket.state(), State::Closed | State::TimeWait);
        if finished && !socket.can_recv() {
            return Pumped::Finished;
        }
        if moved { Pumped::Moved } else { Pumped::Idle }
    }

    /// Tries the connection's next backend, or gives up once each was tried.
    fn retry(&mut self, index: usize) {
        let (Some(connection), Some(stack)) =
            (self.connections.get_mut(index), self.stack.as_mut())
        else {
            return;
        };
        let next = self
            .published
            .get(&connection.key)
            .filter(|p| connection.attempts < p.route.backends.len())
            .and_then(|p| p.backend(connection.client_addr, connection.attempts));
        let Some(backend) = next else {
            count(&self.counters.proxy.connect_failures);
            return self.close(index);
        };
        count(&self.counters.proxy.connect_retries);
        connection.attempts += 1;
        if !reconnect(
            stack,
            connection.socket,
            &mut connection.local_port,
            backend,
        ) {
            count(&self.counters.proxy.connect_failures);
            self.close(index);
        }
    }

    /// Ends a connection: the client socket closes, the stack's socket is reset if still open
    /// and kept for reuse once the reset is sent.
    pub(super) fn close(&mut self, index: usize) {
        // Closing the client socket (dropping it) also takes it out of the poll set.
        let Some(connection) = self.connections.remove(index) else {
            return;
        };
        if let Some(stack) = self.stack.as_mut() {
            reset_unless_over(stack.sockets.get_mut::<tcp::Socket>(connection.socket));
            self.dying.push((connection.socket, connection.local_port));
        }
    }
}

/// Whether the stack's `socket`, connecting to a backend, has connected; if not, whether to
/// wait ([`Pumped::Idle`]) or try the next backend ([`Pumped::Failed`]). A connected socket is
/// never cut for being idle: its timeout was only for the attempt.
pub(crate) fn connected(socket: &mut tcp::Socket) -> Result<(), Pumped> {
    match socket.state() {
        State::SynSent | State::SynReceived => Err(Pumped::Idle),
        State::Closed | State::TimeWait => Err(Pumped::Failed),
        _ => {
            socket.set_timeout(None);
            Ok(())
        }
    }
}

/// Resets the stack's `socket` unless it is closed or in time-wait (both ends finished: nothing
/// to tell the peer).
pub(crate) fn reset_unless_over(socket: &mut tcp::Socket) {
    if socket.is_open() && socket.state() != State::TimeWait {
        socket.abort();
    }
}

/// Takes the TCP socket `handle` out of `sockets`, into `pool` if there is room (its buffers
/// are the costly part to make).
pub(crate) fn recycle(
    sockets: &mut SocketSet<'static>,
    handle: SocketHandle,
    pool: &mut Vec<tcp::Socket<'static>>,
) {
    if let smoltcp::socket::Socket::Tcp(socket) = sockets.remove(handle)
        && pool.len() < POOL_LIMIT
    {
        pool.push(socket);
    }
}

/// Points the stack's connecting `socket` at `backend` instead, from a new local port (the old
/// one's attempt may still be known to the old backend), which replaces `local_port`; false if
/// no local port is free or the connection cannot start.
pub(crate) fn reconnect(
    stack: &mut Stack,
    socket: SocketHandle,
    local_port: &mut u16,
    backend: SocketAddrV4,
) -> bool {
    let Some(port) = stack.tcp_ports.take() else {
        return false;
    };
    stack.tcp_ports.release(*local_port);
    *local_port = port;
    let socket = stack.sockets.get_mut::<tcp::Socket>(socket);
    socket.abort();
    socket.set_timeout(Some(CONNECT_TIMEOUT));
    socket.connect(stack.iface.context(), backend, port).is_ok()
}

/// A socket of the stack connecting to `backend` from a fresh local port; `None` if no local
/// port is free.
pub(crate) fn connect(
    stack: &mut Stack,
    pool: &mut Vec<tcp::Socket<'static>>,
    backend: SocketAddrV4,
) -> Option<(SocketHandle, u16)> {
    let port = stack.tcp_ports.take()?;
    let mut socket = pool.pop().unwrap_or_else(new_socket);
    socket.set_timeout(Some(CONNECT_TIMEOUT));
    socket.set_ack_delay(None);
    if socket
        .connect(stack.iface.context(), backend, port)
        .is_err()
    {
        stack.tcp_ports.release(port);
        pool.push(socket);
        return None;
    }
    Some((stack.sockets.add(socket), port))
}

/// A socket tuned for proxying: no Nagle (the client already chose its segment sizes), CUBIC
/// congestion control, timestamps; ACKs at once until the connection shows it is interactive
/// (a backend that writes a response in two pieces under Nagle waits for that ACK).
pub(crate) fn new_socket() -> tcp::Socket<'static> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; RECEIVE_BUFFER]),
        tcp::SocketBuffer::new(vec![0; SEND_BUFFER]),
    );
    socket.set_nagle_enabled(false);
    socket.set_ack_delay(None);
    socket.set_congestion_control(CongestionControl::Cubic);
    socket.set_tsval_generator(Some(Stack::tcp_timestamp));
    socket
}
