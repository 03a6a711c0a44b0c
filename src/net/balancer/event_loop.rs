//! The balancer thread: one mio event loop over the devices of its stacks, one per network.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::unix::SourceFd;
use mio::{Interest, Poll, Token};
use smoltcp::socket::{tcp, udp};

use super::Counters;
use super::dns::{Key, Resolver};
use super::network::Network;
use crate::net::dns::Forwarder;
use crate::net::event_thread::EventLoop;
use crate::net::mesh::DirectConfig;
use crate::net::mesh::slab::Slab;
use crate::net::overlay::fdb::Fdb;
use crate::net::routes::RouteTable;
use crate::net::stack::{DirectPath, Stack, underlay_socket};

/// Token of the socket the node's resolvers answer on, next to the waker's
/// ([`WAKER`](crate::net::event_thread::WAKER)); a network's device has its index's.
const FORWARDER: Token = Token(usize::MAX - 1);
/// Rounds of moving data and polling a stack before the loop looks at the kernel again.
const MAX_ROUNDS: usize = 64;
/// The longest wait for events when no stack has a timer running.
const IDLE_WAIT: Duration = Duration::from_secs(5);
/// How often idle UDP flows are looked for.
const SWEEP_PERIOD: Duration = Duration::from_secs(5);
/// Bytes moved from one socket to the other at a time (and the largest datagram).
const SCRATCH: usize = 64 << 10;

/// What the [`super::Balancer`] handle tells the loop.
pub enum Command {
    /// Follow a new table; `stacks` are new stacks by network ID (replacing any of the same
    /// network); other nodes take VXLAN on `data_port`.
    Install {
        table: Arc<RouteTable>,
        stacks: Vec<(String, Stack)>,
        data_port: u16,
    },
}

/// What every network's connections share.
pub struct Shared {
    /// The counters.
    pub counters: Arc<Counters>,
    /// Closed sockets kept for new connections (their buffers are the costly part to make).
    pub pool: Vec<tcp::Socket<'static>>,
    /// Closed sockets kept for new UDP flows and VIPs.
    pub udp_pool: Vec<udp::Socket<'static>>,
    /// Where bytes pass from one socket to the other: smoltcp lends one socket of a set at a
    /// time.
    pub scratch: Box<[u8]>,
}

/// The loop's state.
pub struct Looper {
    poll: Poll,
    /// The networks served; each one's index is its device's token.
    networks: Slab<Network>,
    /// Network indices by network ID.
    ids: BTreeMap<String, usize>,
    shared: Shared,
    resolver: Resolver,
    last_sweep: Instant,
    /// This node in the route table, and the socket the stacks send VXLAN from, to send
    /// frames for tasks on other nodes straight to them.
    direct: Option<(DirectConfig, Arc<socket2::Socket>)>,
}

impl Looper {
    /// The loop's state, polling the forwarder's socket (if any) in `poll`.
    pub fn new(
        poll: Poll,
        counters: Arc<Counters>,
        mut forwarder: Option<Forwarder<Key>>,
        direct: Option<DirectConfig>,
    ) -> io::Result<Looper> {
        let direct = direct.and_then(|config| {
            let socket = underlay_socket(config.underlay)
                .inspect_err(|e| tracing::warn!("the balancer sends through the engine: {e}"))
                .ok()?;
            Some((config, Arc::new(socket)))
        });
        if let Some(forwarder) = forwarder.as_mut() {
            poll.registry()
                .register(forwarder.socket(), FORWARDER, Interest::READABLE)?;
        }
        Ok(Looper {
            poll,
            networks: Slab::new(),
            ids: BTreeMap::new(),
            shared: Shared {
                counters,
                pool: Vec::new(),
                udp_pool: Vec::new(),
                scratch: vec![0; SCRATCH].into_boxed_slice(),
            },
            resolver: Resolver::new(forwarder),
            last_sweep: Instant::now(),
            direct,
        })
    }

    /// Takes in a network's frames, moves data between its sockets and sends what that
    /// queued, until nothing more moves.
    fn move_data(&mut self, index: usize) {
        let Some(network) = self.networks.get_mut(index) else {
            return;
        };
        let mut changed = if std::mem::take(&mut network.readable) {
            network.take_frames(&mut self.shared)
        } else {
            true // timers may have fired: pump once
        };
        for _ in 0..MAX_ROUNDS {
            let moved = network.pump_connections(&mut self.shared)
                | network.relay_datagrams(&mut self.shared)
                | network.answer_queries(index, &mut self.resolver, &self.shared.counters)
                | network.serve_dns_sessions(index, &mut self.resolver, &self.shared.counters);
            let sent = network.stack.egress();
            network.bury(&mut self.shared.pool);
            if !changed && !moved && !sent {
                return;
            }
            changed = false;
        }
    }

    fn install(&mut self, table: &RouteTable, stacks: Vec<(String, Stack)>, data_port: u16) {
        let gone: Vec<String> = self
            .ids
            .keys()
            .filter(|id| {
                !table.balancers.contains_key(*id) || stacks.iter().any(|(new, _)| new == *id)
            })
            .cloned()
            .collect();
        for id in gone {
            self.remove(&id);
        }
        let mut new = BTreeMap::new();
        for (id, stack) in stacks {
            if let Some(routes) = table.networks.get(&id) {
                new.insert(id, Network::new(stack, routes));
            }
        }
        for (id, &index) in &self.ids {
            if let (Some(network), Some(routes)) =
                (self.networks.get_mut(index), table.networks.get(id))
            {
                network.follow(routes);
            }
        }
        for (id, network) in new {
            self.add(id, network);
        }
        self.follow_overlay(table, data_port);
    }

    /// Gives each stack's device the table's FDB, so that it sends frames for tasks on other
    /// nodes straight to them (other nodes take VXLAN on `data_port`).
    fn follow_overlay(&mut self, table: &RouteTable, data_port: u16) {
        let Some((config, socket)) = &self.direct else {
            return;
        };
        let fdb = Arc::new(Fdb::compile(table, &config.local_node, data_port));
        for (id, &index) in &self.ids {
            let (Some(network), Some(routes)) =
                (self.networks.get_mut(index), table.networks.get(id))
            else {
                continue;
            };
            let path = fdb
                .network_index(routes.info.vni)
                .map(|network| DirectPath {
                    socket: socket.clone(),
                    fdb: fdb.clone(),
                    network,
                });
            network.stack.device.set_direct_path(path);
        }
    }

    /// Serves `network`.
    fn add(&mut self, id: String, network: Network) {
        let fd: RawFd = network.stack.fd();
        let index = self.networks.insert(network);
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), Token(index), Interest::READABLE)
        {
            tracing::error!("cannot poll the balancer's device on network {id}: {e}");
            self.networks.remove(index);
            return;
        }
        tracing::info!("VIP balancer serving network {id}");
        self.ids.insert(id, index);
    }

    /// Stops serving a network: its connections are dropped with its stack.
    fn remove(&mut self, id: &str) {
        let Some(index) = self.ids.remove(id) else {
            return;
        };
        if let Some(network) = self.networks.remove(index) {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&network.stack.fd()));
        }
        tracing::info!("VIP balancer left network {id}");
    }
}

impl EventLoop for Looper {
    type Command = Command;

    const EVENTS: usize = 256;

    fn poll(&mut self) -> &mut Poll {
        &mut self.poll
    }

    /// Until the first stack timer or forwarded query's deadline, at most [`IDLE_WAIT`].
    fn timeout(&mut self) -> Duration {
        let forwarded = self.resolver.forwarder.as_ref().and_then(|f| {
            let deadline = f.next_deadline()?;
            Some(deadline.saturating_duration_since(Instant::now()))
        });
        (0..self.networks.bound())
            .filter_map(|index| self.networks.get_mut(index)?.stack.poll_delay())
            .chain(forwarded)
            .fold(IDLE_WAIT, Duration::min)
    }

    fn command(&mut self, command: Command) {
        let Command::Install {
            table,
            stacks,
            data_port,
        } = command;
        self.install(&table, stacks, data_port);
    }

    fn event(&mut self, event: &Event) {
        match event.token() {
            FORWARDER => self.resolver.relay_replies(&mut self.networks),
            Token(index) => {
                if let Some(network) = self.networks.get_mut(index) {
                    network.readable = true;
                }
            }
        }
    }

    /// Ends the forwarded queries out of time, moves what the events let move on every
    /// network, then ends the idle UDP flows once a sweep period.
    fn turn(&mut self) {
        let counters = &self.shared.counters;
        self.resolver.expire(&mut self.networks, counters);
        for index in 0..self.networks.bound() {
            self.move_data(index);
        }
        if self.last_sweep.elapsed() >= SWEEP_PERIOD {
            self.last_sweep = Instant::now();
            for index in 0..self.networks.bound() {
                if let Some(network) = self.networks.get_mut(index) {
                    network.expire_flows(&mut self.shared.udp_pool);
                }
            }
        }
    }
}
