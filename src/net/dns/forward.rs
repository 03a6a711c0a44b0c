//! Queries for names outside the cluster, sent on to the node's own resolvers.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;

/// How long a resolver has to answer before the client gets SERVFAIL: well inside the 5 s a
/// glibc or musl client waits before it asks again.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The most queries waiting for an answer at once; beyond it a query fails at once rather than
/// let a flood of them take the daemon's memory.
const MAX_PENDING: usize = 1024;

/// Queries for names outside the cluster, sent to the node's own resolvers from a kernel UDP
/// socket and matched to their clients by a rewritten query ID.
///
/// Each query goes out with a fresh random ID (clients on different networks may well use the
/// same one), from the socket's random port, to one resolver; only a reply from that resolver
/// with that ID is taken, which is what makes a forged reply hard to slip in (RFC 5452).
/// Queries go to the resolvers in turn, so a dead one fails only its share, and the client's
/// own retry goes to the next. `K` is the caller's key for the client (say the network and the
/// client's address).
pub struct Forwarder<K> {
    /// The socket all queries go out of and all replies come back to.
    socket: UdpSocket,
    /// The node's resolvers, all of the socket's address family.
    resolvers: Vec<SocketAddr>,
    /// How many queries have been sent: the next one goes to the resolver this picks.
    sent: usize,
    /// Queries waiting for a reply, by the ID they went out with.
    pending: HashMap<u16, Pending<K>>,
    /// When each pending query gives up, with its ID, in the order sent (so by deadline). It may
    /// also hold queries answered since, except at the front.
    deadlines: VecDeque<(Instant, u16)>,
}

/// A query waiting for its resolver's reply.
struct Pending<K> {
    /// Whom to give the reply to.
    client: K,
    /// The ID the client gave the query, put back in the reply.
    client_id: u16,
    /// The query as sent (with our ID), kept for the SERVFAIL if no reply comes.
    query: Box<[u8]>,
    /// The resolver asked: no one else's reply is taken.
    resolver: SocketAddr,
    /// When the query gives up.
    deadline: Instant,
}

impl<K: Copy> Forwarder<K> {
    /// A forwarder to `resolvers`, with its socket bound to a random port. The socket has the
    /// first resolver's address family and resolvers of the other family are left out; with no
    /// resolver every forward fails at once (the caller answers SERVFAIL).
    pub fn new(resolvers: Vec<SocketAddr>) -> io::Result<Forwarder<K>> {
        let local = match resolvers.first() {
            Some(SocketAddr::V6(_)) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
            _ => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        };
        let resolvers = resolvers
            .into_iter()
            .filter(|resolver| resolver.is_ipv4() == local.is_ipv4())
            .collect();
        Ok(Forwarder {
            socket: UdpSocket::bind(local)?,
            resolvers,
            sent: 0,
            pending: HashMap::new(),
            deadlines: VecDeque::new(),
        })
    }

    /// A forwarder to the `nameserver`s of the resolv.conf-formatted file at `path` (the node's
    /// `/etc/resolv.conf`): the daemon runs in the node's network namespace, so it can reach
    /// them all, a local stub like systemd-resolved's 127.0.0.53 included.
    pub fn from_resolv_conf(path: &Path) -> io::Result<Forwarder<K>> {
        Forwarder::new(nameservers(&std::fs::read_to_string(path)?))
    }

    /// The socket replies arrive on, to register (readable) with the caller's `Poll`.
    pub fn socket(&mut self) -> &mut UdpSocket {
        &mut self.socket
    }

    /// Sends `query` on for `client`; `Err(())` when it cannot be (no resolver, too many
    /// queries waiting, not a query, a send error): the caller answers SERVFAIL.
    #[expect(
        clippy::result_unit_err,
        reason = "the caller answers every failure alike, with SERVFAIL"
    )]
    pub fn forward(&mut self, query: &[u8], client: K, now: Instant) -> Result<(), ()> {
        if self.resolvers.is_empty() || self.pending.len() >= MAX_PENDING || query.len() < 12 {
            return Err(());
        }
        let id = loop {
            let id = rand::random();
            if !self.pending.contains_key(&id) {
                break id;
            }
        };
        let resolver = self.resolvers[self.sent % self.resolvers.len()];
        self.sent = self.sent.wrapping_add(1);
        let mut sent: Box<[u8]> = query.into();
        sent[..2].copy_from_slice(&u16::to_be_bytes(id));
        self.socket.send_to(&sent, resolver).map_err(|_| ())?;
        let deadline = now + TIMEOUT;
        let client_id = u16::from_be_bytes([query[0], query[1]]);
        self.pending.insert(
            id,
            Pending {
                client,
                client_id,
                query: sent,
                resolver,
                deadline,
            },
        );
        self.deadlines.push_back((deadline, id));
        Ok(())
    }

    /// Reads replies from the socket into `buf` until one answers a pending query; returns its
    /// client and length, the client's query ID restored. `None` when nothing is waiting.
    /// Datagrams that answer nothing waiting (late, stray or forged) are dropped. `buf` should
    /// hold the largest reply a client may take (4096 bytes covers nearly every EDNS offer);
    /// a longer one is cut short.
    pub fn receive(&mut self, buf: &mut [u8]) -> Option<(K, usize)> {
        loop {
            let (len, from) = match self.socket.recv_from(buf) {
                Ok(received) => received,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            };
            // A reply is at least an ID and flags with the response bit set.
            if len < 3 || buf[2] & 0x80 == 0 {
                continue;
            }
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            let Entry::Occupied(entry) = self.pending.entry(id) else {
                continue;
            };
            if entry.get().resolver != from {
                continue;
            }
            let pending = entry.remove();
            buf[..2].copy_from_slice(&pending.client_id.to_be_bytes());
            self.forget_answered();
            return Some((pending.client, len));
        }
    }

    /// Gives up the queries unanswered for 2 s by `now`, giving each back with the query as
    /// its client sent it, for the caller to answer SERVFAIL ([`servfail`](super::servfail)).
    pub fn expire(&mut self, now: Instant, mut on_expired: impl FnMut(K, &[u8])) {
        while let Some(&(deadline, id)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            match self.pending.entry(id) {
                Entry::Occupied(entry) if entry.get().deadline == deadline => {
                    let mut pending = entry.remove();
                    pending.query[..2].copy_from_slice(&pending.client_id.to_be_bytes());
                    on_expired(pending.client, &pending.query);
                }
                // Answered already (and the ID perhaps reused by a later query).
                _ => {}
            }
        }
        self.forget_answered();
    }

    /// When [`expire`](Forwarder::expire) next has something to do; `None` while no query waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.front().map(|&(deadline, _)| deadline)
    }

    /// Drops the deadlines of answered queries from the front, so that the front is a query
    /// still waiting and [`next_deadline`](Forwarder::next_deadline) does not wake the caller
    /// for nothing.
    fn forget_answered(&mut self) {
        while let Some(&(deadline, id)) = self.deadlines.front() {
            if self
                .pending
                .get(&id)
                .is_some_and(|p| p.deadline == deadline)
            {
                break;
            }
            self.deadlines.pop_front();
        }
    }
}

/// The `nameserver` addresses of a resolv.conf text, at port 53. Lines that are not one, and
/// addresses that do not parse (an IPv6 one with a zone, say), are skipped.
fn nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            let address: IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(address, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket as StdUdpSocket;

    use mio::{Events, Interest, Poll, Token};

    use super::*;
    use crate::net::dns::servfail;

    /// A query with ID `id` for example.com (A), as a stub resolver sends it.
    fn query(id: u16) -> Vec<u8> {
        let mut query = id.to_be_bytes().to_vec();
        query.extend([0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        query.extend(b"\x07example\x03com\x00\x00\x01\x00\x01");
        query
    }

    /// A resolver on 127.0.0.1 that the test drives by hand.
    fn upstream() -> StdUdpSocket {
        let socket = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let timeout = Some(Duration::from_secs(5));
        socket.set_read_timeout(timeout).unwrap();
        socket
    }

    /// A forwarder to `upstreams`, its socket registered with a poll to wait for replies.
    fn forwarder(upstreams: &[&StdUdpSocket]) -> (Forwarder<u32>, Poll) {
        let resolvers = upstreams.iter().map(|u| u.local_addr().unwrap()).collect();
        let mut forwarder = Forwarder::new(resolvers).unwrap();
        let poll = Poll::new().unwrap();
        poll.registry()
            .register(forwarder.socket(), Token(0), Interest::READABLE)
            .unwrap();
        (forwarder, poll)
    }

    /// The next reply for a client, waiting for it up to `wait`.
    fn next_reply(
        (forwarder, poll): &mut (Forwarder<u32>, Poll),
        wait: Duration,
    ) -> Option<(u32, Vec<u8>)> {
        let mut events = Events::with_capacity(4);
        let mut buf = [0; 4096];
        let give_up = Instant::now() + wait;
        loop {
            if let Some((client, len)) = forwarder.receive(&mut buf) {
                return Some((client, buf[..len].to_vec()));
            }
            let left = give_up.checked_duration_since(Instant::now())?;
            poll.poll(&mut events, Some(left)).unwrap();
        }
    }

    /// The next query at `upstream`, and where it came from.
    fn receive_query(upstream: &StdUdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = [0; 512];
        let (len, from) = upstream.recv_from(&mut buf).unwrap();
        (buf[..len].to_vec(), from)
    }

    /// `query` turned into its reply, with response code `rcode`.
    fn reply(query: &[u8], rcode: u8) -> Vec<u8> {
        let mut reply = query.to_vec();
        reply[2] |= 0x80;
        reply[3] |= rcode;
        reply
    }

    #[test]
    fn replies_go_back_to_their_clients_with_their_own_ids() {
        let upstream = upstream();
        let mut forwarder = forwarder(&[&upstream]);
        let now = Instant::now();
        // Two clients that chose the same ID.
        forwarder.0.forward(&query(0x1234), 1, now).unwrap();
        forwarder.0.forward(&query(0x1234), 2, now).unwrap();
        let (first, from) = receive_query(&upstream);
        let (second, _) = receive_query(&upstream);
        assert_ne!(
            first[..2],
            second[..2],
            "each query goes out with its own ID"
        );
        assert_eq!(
            (&first[2..], &second[2..]),
            (&query(0)[2..], &query(0)[2..])
        );
        // A reply from anyone but the resolver asked is not taken, even with the right ID.
        let stranger = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        stranger.send_to(&reply(&second, 3), from).unwrap();
        upstream.send_to(&reply(&second, 0), from).unwrap();
        upstream.send_to(&reply(&first, 0), from).unwrap();
        let wait = Duration::from_secs(5);
        let answer = reply(&query(0x1234), 0);
        assert_eq!(next_reply(&mut forwarder, wait), Some((2, answer.clone())));
        assert_eq!(next_reply(&mut forwarder, wait), Some((1, answer)));
        assert_eq!(forwarder.0.next_deadline(), None);
    }

    #[test]
    fn queries_go_to_the_resolvers_in_turn() {
        let (one, two) = (upstream(), upstream());
        let (mut forwarder, _) = forwarder(&[&one, &two]);
        let now = Instant::now();
        forwarder.forward(&query(1), 1, now).unwrap();
        forwarder.forward(&query(2), 2, now).unwrap();
        assert_eq!(receive_query(&one).0[2..], query(1)[2..]);
        assert_eq!(receive_query(&two).0[2..], query(2)[2..]);
    }

    #[test]
    fn an_unanswered_query_expires_into_a_servfail() {
        let upstream = upstream();
        let mut forwarder = forwarder(&[&upstream]);
        let start = Instant::now();
        forwarder.0.forward(&query(0x1234), 7, start).unwrap();
        let (sent, from) = receive_query(&upstream);
        let deadline = start + Duration::from_secs(2);
        assert_eq!(forwarder.0.next_deadline(), Some(deadline));
        let mut expired = Vec::new();
        forwarder
            .0
            .expire(deadline - Duration::from_millis(1), |client, query| {
                expired.push((client, query.to_vec()))
            });
        assert!(expired.is_empty());
        forwarder.0.expire(deadline, |client, query| {
            expired.push((client, query.to_vec()))
        });
        assert_eq!(expired, [(7, query(0x1234))]);
        assert_eq!(forwarder.0.next_deadline(), None);
        let mut out = [0; 512];
        let len = servfail(&expired[0].1, &mut out).unwrap();
        assert_eq!((out[..2].to_vec(), out[3] & 0x0F), (vec![0x12, 0x34], 2));
        assert_eq!(out[12..len], query(0)[12..]);
        // The reply that comes too late goes nowhere.
        upstream.send_to(&reply(&sent, 0), from).unwrap();
        assert_eq!(next_reply(&mut forwarder, Duration::from_millis(300)), None);
    }

    #[test]
    fn a_forward_fails_at_once_without_a_resolver_or_beyond_the_limit() {
        let now = Instant::now();
        let mut alone = Forwarder::<u32>::new(Vec::new()).unwrap();
        assert_eq!(alone.forward(&query(1), 1, now), Err(()));
        let upstream = upstream();
        let (mut forwarder, _) = forwarder(&[&upstream]);
        assert_eq!(forwarder.forward(&query(1)[..11], 1, now), Err(()));
        for client in 0..MAX_PENDING as u32 {
            forwarder.forward(&query(1), client, now).unwrap();
        }
        assert_eq!(forwarder.forward(&query(1), 0, now), Err(()));
        let mut expired = 0;
        forwarder.expire(now + TIMEOUT, |_, _| expired += 1);
        assert_eq!(expired, MAX_PENDING);
    }

    #[test]
    fn resolvers_are_the_nameservers_of_resolv_conf() {
        let text = "# generated\nnameserver 127.0.0.53\nsearch example.com\n\
                    nameserver ::1\nnameserver fe80::1%eth0\nnameserver\noptions edns0\n";
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        let forwarder = Forwarder::<u32>::from_resolv_conf(file.path()).unwrap();
        // The socket is IPv4, as the first resolver: the IPv6 one is left out.
        let stub = SocketAddr::from(([127, 0, 0, 53], 53));
        assert_eq!(forwarder.resolvers, [stub]);
        let ipv6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 53));
        assert_eq!(nameservers(text), [stub, ipv6]);
    }
}
