//! The embedded DNS on each network's gateway: a UDP socket of the network's stack at
//! `gateway:53` (and TCP sessions there, see [`super::dns_tcp`]), answered from the network's
//! [`Zone`](crate::net::dns::Zone); names outside the cluster go to the node's resolvers through
//! one [`Forwarder`] shared by every network, and its replies (or a SERVFAIL when none comes) go
//! back the way the query came.

use std::time::Instant;

use smoltcp::socket::udp;
use smoltcp::wire::IpEndpoint;

use super::Counters;
use super::network::Network;
use crate::net::dns::{Forwarder, Outcome, answer, servfail};
use crate::net::mesh::count;
use crate::net::mesh::slab::Slab;

/// The DNS port.
pub const PORT: u16 = 53;
/// Queries and replies each network's DNS socket queues in each direction.
const QUEUE_DATAGRAMS: usize = 64;
/// The largest query taken over UDP (what nearly every EDNS client offers).
const MAX_QUERY: usize = 4096;
/// The largest reply given: what a TCP length prefix can count.
const MAX_REPLY: usize = 65535;

/// Who asked a query.
#[derive(Clone, Copy, Debug)]
pub enum Client {
    /// A client over UDP, at this address and port.
    Udp(IpEndpoint),
    /// The TCP session with this serial number.
    Tcp(u64),
}

/// Whom a forwarded query is for: the network's index and the client.
pub type Key = (usize, Client);

/// What every network's DNS shares: the forwarder and the buffers a message is built in.
pub struct Resolver {
    /// Sends queries for other names on; `None` when the node's resolvers are unknown (every
    /// such query fails at once).
    pub forwarder: Option<Forwarder<Key>>,
    /// Where a query received over UDP is copied.
    query: Box<[u8]>,
    /// Where a reply is written.
    pub reply: Box<[u8]>,
}

impl Resolver {
    /// A resolver forwarding with `forwarder`.
    pub fn new(forwarder: Option<Forwarder<Key>>) -> Resolver {
        Resolver {
            forwarder,
            query: vec![0; MAX_QUERY].into_boxed_slice(),
            reply: vec![0; MAX_REPLY].into_boxed_slice(),
        }
    }

    /// Sends every reply the node's resolvers gave to its client.
    pub fn relay_replies(&mut self, networks: &mut Slab<Network>) {
        let Some(forwarder) = self.forwarder.as_mut() else {
            return;
        };
        while let Some(((index, client), len)) = forwarder.receive(&mut self.reply) {
            if let Some(network) = networks.get_mut(index) {
                network.send_reply(client, &self.reply[..len]);
            }
        }
    }

    /// Answers SERVFAIL to the queries the node's resolvers left unanswered too long.
    pub fn expire(&mut self, networks: &mut Slab<Network>, counters: &Counters) {
        let Some(forwarder) = self.forwarder.as_mut() else {
            return;
        };
        let reply = &mut self.reply;
        forwarder.expire(Instant::now(), |(index, client), query| {
            count(&counters.dns_failed);
            if let (Some(network), Some(len)) = (networks.get_mut(index), servfail(query, reply)) {
                network.send_reply(client, &reply[..len]);
            }
        });
    }
}

/// A UDP socket for DNS at `gateway`'s port 53.
pub fn socket(gateway: std::net::Ipv4Addr) -> udp::Socket<'static> {
    let buffer = || {
        udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; QUEUE_DATAGRAMS],
            vec![0; QUEUE_DATAGRAMS * 512],
        )
    };
    let mut socket = udp::Socket::new(buffer(), buffer());
    socket
        .bind((gateway, PORT))
        .expect("an unbound socket binds to a non-zero port");
    socket
}

impl Network {
    /// Answers every query waiting on the network's DNS socket (network `index`), or sends it
    /// on; whether any was taken.
    pub fn answer_queries(
        &mut self,
        index: usize,
        resolver: &mut Resolver,
        counters: &Counters,
    ) -> bool {
        let mut answered = false;
        loop {
            let socket = self.stack.sockets.get_mut::<udp::Socket>(self.dns);
            let (len, meta) = match socket.recv_slice(&mut resolver.query) {
                Ok(received) => received,
                // Longer than any query: dropped.
                Err(udp::RecvError::Truncated) => continue,
                Err(udp::RecvError::Exhausted) => return answered,
            };
            answered = true;
            count(&counters.dns_queries);
            let query = &resolver.query[..len];
            let len = match answer(&self.zone, query, &mut resolver.reply) {
                Outcome::Reply(len) => len,
                Outcome::Malformed => continue,
                Outcome::Forward => {
                    let client = (index, Client::Udp(meta.endpoint));
                    if forward(&mut resolver.forwarder, query, client, counters) {
                        continue;
                    }
                    match servfail(query, &mut resolver.reply) {
                        Some(len) => len,
                        None => continue,
                    }
                }
            };
            self.send_reply(Client::Udp(meta.endpoint), &resolver.reply[..len]);
        }
    }

    /// Sends a DNS reply to `client` from the gateway; dropped if the socket's queue is full
    /// (the client asks again).
    pub fn send_reply(&mut self, client: Client, reply: &[u8]) {
        match client {
            Client::Udp(endpoint) => {
                let socket = self.stack.sockets.get_mut::<udp::Socket>(self.dns);
                let _ = socket.send_slice(reply, endpoint);
            }
            Client::Tcp(serial) => self.send_tcp_reply(serial, reply),
        }
    }
}

/// Sends `query` on to the node's resolvers for `client`, counted; false when it cannot be
/// (the caller answers SERVFAIL).
pub fn forward(
    forwarder: &mut Option<Forwarder<Key>>,
    query: &[u8],
    client: Key,
    counters: &Counters,
) -> bool {
    let forwarded = forwarder
        .as_mut()
        .is_some_and(|f| f.forward(query, client, Instant::now()).is_ok());
    let counter = if forwarded {
        &counters.dns_forwarded
    } else {
        &counters.dns_failed
    };
    count(counter);
    forwarded
}
