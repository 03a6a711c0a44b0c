//! The mesh thread: one mio event loop over the published ports' kernel sockets, the proxied
//! client connections and the stack's device.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::unix::SourceFd;
use mio::{Interest, Poll, Token};
use smoltcp::socket::{tcp, udp};

use super::maglev::{Maglev, maglev_for, pick};
use super::slab::Slab;
use super::tcp::Connection;
use super::udp::Flow;
use super::{Counters, MeshConfig, count};
use crate::net::event_thread::EventLoop;
use crate::net::overlay::fdb::Fdb;
use crate::net::routes::{PortKey, Protocol, PublishedPort, RouteTable};
use crate::net::stack::{DirectPath, Stack, underlay_socket};

/// Token of the stack's device, next to the waker's ([`WAKER`](crate::net::event_thread::WAKER)).
const DEVICE: Token = Token(usize::MAX - 1);
/// Listener tokens start here; client connections take the tokens below.
const LISTENER_BASE: usize = 1 << 40;
/// Rounds of polling the stack and moving data before the loop looks at the kernel again.
const MAX_ROUNDS: usize = 64;
/// How often idle UDP flows are looked for.
const SWEEP_PERIOD: Duration = Duration::from_secs(5);

/// What the [`super::Mesh`] handle tells the loop.
pub enum Command {
    /// Follow a new table; `stack` is `Some` when the stack is replaced (by `None`: no ingress
    /// address any more).
    Install {
        table: Arc<RouteTable>,
        stack: Option<Option<Stack>>,
        data_port: u16,
    },
}

/// A published port as the loop serves it.
pub struct Published {
    pub route: PublishedPort,
    pub maglev: Maglev,
    pub listener: Listener,
}

/// A published port's kernel socket.
pub enum Listener {
    Tcp(mio::net::TcpListener),
    Udp(mio::net::UdpSocket),
}

impl Published {
    /// The backend for a flow from `client`, and on the `attempt`-th try (0 first) the ones
    /// after it in turn; `None` when there is none.
    pub fn backend(&self, client: SocketAddr, attempt: usize) -> Option<SocketAddrV4> {
        let backend = pick(&self.maglev, &self.route.backends, client, attempt)?;
        Some(SocketAddrV4::new(backend.address, self.route.target_port))
    }
}

/// The loop's state.
pub struct Looper {
    pub config: MeshConfig,
    pub poll: Poll,
    pub counters: Arc<Counters>,
    pub stack: Option<Stack>,
    pub published: BTreeMap<PortKey, Published>,
    /// The published port of each listener token (offset by `LISTENER_BASE`).
    listeners: Slab<PortKey>,
    pub connections: Slab<Connection>,
    /// Sockets aborted this turn, removed after the next poll has sent their reset.
    pub dying: Vec<(smoltcp::iface::SocketHandle, u16)>,
    pub flows: Slab<Flow>,
    pub flow_index: HashMap<(PortKey, SocketAddr), usize>,
    pub tcp_pool: Vec<tcp::Socket<'static>>,
    /// The stack's device has frames to read (it reports each arrival once: edge-triggered).
    device_readable: bool,
    pub udp_pool: Vec<udp::Socket<'static>>,
    /// One datagram received on a published UDP port.
    pub datagram: Box<[u8]>,
    /// The socket the stack sends VXLAN from, with [`MeshConfig::direct`].
    direct_socket: Option<Arc<socket2::Socket>>,
    last_sweep: Instant,
}

impl Looper {
    pub fn new(config: MeshConfig, poll: Poll, counters: Arc<Counters>) -> Looper {
        Looper {
            poll,
            counters,
            stack: None,
            published: BTreeMap::new(),
            listeners: Slab::new(),
            connections: Slab::new(),
            dying: Vec::new(),
            flows: Slab::new(),
            flow_index: HashMap::new(),
            tcp_pool: Vec::new(),
            device_readable: false,
            udp_pool: Vec::new(),
            datagram: vec![0; 65536].into_boxed_slice(),
            last_sweep: Instant::now(),
            direct_socket: config.direct.as_ref().and_then(|d| {
                underlay_socket(d.underlay)
                    .inspect_err(|e| tracing::warn!("the mesh sends through the engine: {e}"))
                    .ok()
                    .map(Arc::new)
            }),
            config,
        }
    }

    /// Takes in the stack's frames, moves data between kernel sockets and the stack's sockets,
    /// and sends what that queued, until nothing more moves. The device is read only after it
    /// said it has frames (a read that finds none is a wasted system call).
    fn move_data(&mut self) {
        let mut changed = match self.stack.as_mut() {
            Some(stack) if std::mem::take(&mut self.device_readable) => stack.ingress(),
            Some(_) => true, // timers may have fired, or clients spoken: pump once
            None => return,
        };
        for _ in 0..MAX_ROUNDS {
            let moved = self.pump_connections() | self.relay_replies();
            let Some(stack) = self.stack.as_mut() else {
                return;
            };
            let sent = stack.egress();
            self.bury();
            if !changed && !moved && !sent {
                return;
            }
            changed = false;
        }
    }

    /// Removes the sockets aborted since the last poll (which sent their resets) and keeps
    /// them for reuse.
    fn bury(&mut self) {
        let Some(stack) = self.stack.as_mut() else {
            return;
        };
        for (handle, port) in self.dying.drain(..) {
            super::tcp::recycle(&mut stack.sockets, handle, &mut self.tcp_pool);
            stack.tcp_ports.release(port);
        }
    }

    fn install(&mut self, table: &RouteTable, stack: Option<Option<Stack>>, data_port: u16) {
        if let Some(stack) = stack {
            self.replace_stack(stack);
        }
        self.follow_overlay(table, data_port);
        let gone: Vec<PortKey> = self
            .published
            .keys()
            .filter(|k| !table.published.contains_key(k))
            .copied()
            .collect();
        for key in gone {
            self.unpublish(key);
        }
        for (key, route) in &table.published {
            match self.published.get_mut(key) {
                Some(published) if published.route.backends != route.backends => {
                    published.maglev = maglev_for(&route.backends);
                    published.route = route.clone();
                    self.forget_flows_to_gone_backends(*key);
                }
                Some(published) => published.route = route.clone(),
                None => self.publish(*key, route),
            }
        }
    }

    /// Gives the stack's device the table's FDB, so that it sends frames for backends on other
    /// nodes straight to them.
    fn follow_overlay(&mut self, table: &RouteTable, data_port: u16) {
        let (Some(stack), Some(direct), Some(socket)) = (
            self.stack.as_mut(),
            self.config.direct.as_ref(),
            self.direct_socket.as_ref(),
        ) else {
            return;
        };
        let fdb = Arc::new(Fdb::compile(table, &direct.local_node, data_port));
        let ingress = table
            .ingress
            .as_ref()
            .and_then(|i| table.networks.get(&i.network_id))
            .and_then(|n| fdb.network_index(n.info.vni));
        stack
            .device
            .set_direct_path(ingress.map(|network| DirectPath {
                socket: socket.clone(),
                fdb: fdb.clone(),
                network,
            }));
    }

    /// Drops every connection and flow of the old stack and takes the new one.
    fn replace_stack(&mut self, stack: Option<Stack>) {
        self.connections.drain().for_each(drop);
        self.flows.drain().for_each(drop);
        self.flow_index.clear();
        self.dying.clear();
        self.device_readable = true; // whatever waits on the new device was never reported
        if let Some(old) = &self.stack {
            let _ = self.poll.registry().deregister(&mut SourceFd(&old.fd()));
        }
        self.stack = stack;
        if let Some(new) = &self.stack {
            let fd: RawFd = new.fd();
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut SourceFd(&fd), DEVICE, Interest::READABLE)
            {
                tracing::error!("cannot poll the mesh's device: {e}");
            }
        }
    }

    fn publish(&mut self, key: PortKey, route: &PublishedPort) {
        let listener = match bind(SocketAddr::new(self.config.listen, key.port), key.protocol) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!("cannot publish {key} on this node: {e}");
                count(&self.counters.bind_failures);
                return;
            }
        };
        let index = self.listeners.insert(key);
        let mut published = Published {
            route: route.clone(),
            maglev: maglev_for(&route.backends),
            listener,
        };
        let token = Token(LISTENER_BASE + index);
        let registered = match &mut published.listener {
            Listener::Tcp(l) => self.poll.registry().register(l, token, Interest::READABLE),
            Listener::Udp(s) => self.poll.registry().register(s, token, Interest::READABLE),
        };
        if let Err(e) = registered {
            tracing::warn!("cannot poll published port {key}: {e}");
            self.listeners.remove(index);
            return;
        }
        tracing::info!("published {key} -> port {}", route.target_port);
        self.published.insert(key, published);
    }

    /// Closes a port no longer published; connections already made go on to their end.
    fn unpublish(&mut self, key: PortKey) {
        let Some(mut published) = self.published.remove(&key) else {
            return;
        };
        let _ = match &mut published.listener {
            Listener::Tcp(l) => self.poll.registry().deregister(l),
            Listener::Udp(s) => self.poll.registry().deregister(s),
        };
        let index = self
            .listeners
            .iter()
            .find(|(_, k)| **k == key)
            .map(|(i, _)| i);
        if let Some(index) = index {
            self.listeners.remove(index);
        }
        tracing::info!("unpublished {key}");
    }

    fn on_listener(&mut self, index: usize) {
        let Some(key) = self.listeners.get_mut(index).copied() else {
            return;
        };
        match key.protocol {
            Protocol::Tcp => self.accept_all(key),
            Protocol::Udp => self.receive_datagrams(key),
        }
    }
}

impl EventLoop for Looper {
    type Command = Command;

    const EVENTS: usize = 1024;

    fn poll(&mut self) -> &mut Poll {
        &mut self.poll
    }

    /// Until the stack's next timer, at most a sweep period.
    fn timeout(&mut self) -> Duration {
        let stack = self.stack.as_mut().and_then(|s| s.poll_delay());
        stack.map_or(SWEEP_PERIOD, |d| d.min(SWEEP_PERIOD))
    }

    fn command(&mut self, command: Command) {
        let Command::Install {
            table,
            stack,
            data_port,
        } = command;
        self.install(&table, stack, data_port);
    }

    fn event(&mut self, event: &Event) {
        match event.token() {
            DEVICE => self.device_readable = true,
            Token(t) if t >= LISTENER_BASE => self.on_listener(t - LISTENER_BASE),
            Token(t) => self.on_client(t, event),
        }
    }

    /// Moves what the events let move, then ends the idle UDP flows once a sweep period.
    fn turn(&mut self) {
        self.move_data();
        if self.last_sweep.elapsed() >= SWEEP_PERIOD {
            self.last_sweep = Instant::now();
            self.expire_flows();
        }
    }
}

/// Binds a published port: TCP with `SO_REUSEPORT` (a restarted daemon binds at once, and more
/// loops could share the port) and `TCP_NODELAY`, which accepted connections inherit (the mesh
/// passes on segments as the backend sized them); both non-blocking.
fn bind(addr: SocketAddr, protocol: Protocol) -> io::Result<Listener> {
    use socket2::{Domain, Socket, Type};
    let domain = Domain::for_address(addr);
    match protocol {
        Protocol::Tcp => {
            let socket = Socket::new(domain, Type::STREAM, Some(socket2::Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            socket.set_reuse_port(true)?;
            socket.set_tcp_nodelay(true)?;
            socket.set_nonblocking(true)?;
            socket.bind(&addr.into())?;
            socket.listen(1024)?;
            Ok(Listener::Tcp(mio::net::TcpListener::from_std(
                std::net::TcpListener::from(socket),
            )))
        }
        Protocol::Udp => {
            let socket = Socket::new(domain, Type::DGRAM, Some(socket2::Protocol::UDP))?;
            socket.set_reuse_address(true)?;
            socket.set_nonblocking(true)?;
            socket.bind(&addr.into())?;
            Ok(Listener::Udp(mio::net::UdpSocket::from_std(
                std::net::UdpSocket::from(socket),
            )))
        }
    }
}
