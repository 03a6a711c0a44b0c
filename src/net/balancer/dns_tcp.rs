//! DNS over TCP on the gateway's port 53, where a client asks again after a truncated UDP reply
//! (a service with many tasks): each message goes with a two-byte length ahead of it (RFC 1035
//! 4.2.2); a client may send several queries on one connection (RFC 7766).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{IpAddress, IpListenEndpoint};

use super::Counters;
use super::dns::{Client, PORT, Resolver, forward};
use super::network::Network;
use crate::net::dns::{Outcome, answer_tcp, servfail};
use crate::net::mesh::count;

/// A session's receive buffer (queries are small) and send buffer (room for the largest reply
/// with its length).
const RECEIVE_BUFFER: usize = 4 << 10;
const SEND_BUFFER: usize = 2 + 65535;
/// How long a session may sit idle before the gateway closes it (RFC 7766 6.2.3 suggests
/// seconds; a client that needs more opens another).
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TCP sessions of one network's DNS, by serial number (never reused, so that a late reply
/// from the node's resolvers cannot reach a later session).
#[derive(Default)]
pub struct Sessions {
    sessions: HashMap<u64, Session>,
    next: u64,
}

/// One client's connection to the gateway's port 53.
struct Session {
    socket: SocketHandle,
    /// Bytes received that do not make a whole query yet.
    received: Vec<u8>,
    /// Queries sent on to the node's resolvers and not answered yet.
    waiting: usize,
    /// When the client last sent something.
    last_active: Instant,
}

impl Network {
    /// A session whose socket listens on the gateway's port 53; its serial number.
    pub(super) fn listen_dns(&mut self) -> u64 {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; RECEIVE_BUFFER]),
            tcp::SocketBuffer::new(vec![0; SEND_BUFFER]),
        );
        // A client gone mid-handshake, or not reading its replies, lets the session go.
        socket.set_timeout(Some(IDLE_TIMEOUT.into()));
        let endpoint = IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(self.gateway)),
            port: PORT,
        };
        socket
            .listen(endpoint)
            .expect("a new socket listens on a non-zero port");
        let serial = self.dns_tcp.next;
        self.dns_tcp.next += 1;
        let session = Session {
            socket: self.stack.sockets.add(socket),
            received: Vec::new(),
            waiting: 0,
            last_active: Instant::now(),
        };
        self.dns_tcp.sessions.insert(serial, session);
        serial
    }

    /// Drops session `serial` if its socket still listens: the SYN it was made for went to
    /// another socket, or nowhere.
    pub(super) fn unless_taken_dns(&mut self, serial: u64) {
        let Some(session) = self.dns_tcp.sessions.get(&serial) else {
            return;
        };
        if self
            .stack
            .sockets
            .get::<tcp::Socket>(session.socket)
            .state()
            == State::Listen
        {
            self.stack.sockets.remove(session.socket);
            self.dns_tcp.sessions.remove(&serial);
        }
    }

    /// Answers the whole queries each session has received (network `index`), sends on the
    /// others, closes the sessions whose client is done; whether anything moved.
    pub fn serve_dns_sessions(
        &mut self,
        index: usize,
        resolver: &mut Resolver,
        counters: &Counters,
    ) -> bool {
        let mut moved = false;
        let mut ended = Vec::new();
        for (&serial, session) in &mut self.dns_tcp.sessions {
            let socket = self.stack.sockets.get_mut::<tcp::Socket>(session.socket);
            while let Ok(n @ 1..) = socket.recv(|data| {
                session.received.extend_from_slice(data);
                (data.len(), data.len())
            }) {
                moved |= n > 0;
                session.last_active = Instant::now();
            }
            while let Some(query) = whole_message(&session.received) {
                count(&counters.dns_queries);
                let reply = &mut resolver.reply;
                let len = match answer_tcp(&self.zone, query, reply) {
                    Outcome::Reply(len) => Some(len),
                    Outcome::Malformed => None,
                    Outcome::Forward => {
                        let client = (index, Client::Tcp(serial));
                        if forward(&mut resolver.forwarder, query, client, counters) {
                            session.waiting += 1;
                            None
                        } else {
                            servfail(query, reply)
                        }
                    }
                };
                let taken = 2 + query.len();
                if let Some(len) = len {
                    send_message(socket, &reply[..len]);
                }
                session.received.drain(..taken);
                moved = true;
            }
            let client_done = !socket.may_recv() && !socket.can_recv();
            let idle = session.last_active.elapsed() >= IDLE_TIMEOUT;
            if (client_done || idle) && session.waiting == 0 && socket.may_send() {
                socket.close();
            }
            if matches!(socket.state(), State::Closed | State::TimeWait) {
                ended.push(serial);
            }
        }
        for serial in ended {
            if let Some(session) = self.dns_tcp.sessions.remove(&serial) {
                self.stack.sockets.remove(session.socket);
            }
        }
        moved
    }

    /// Sends a reply from the node's resolvers to session `serial`, if it is still there.
    pub(super) fn send_tcp_reply(&mut self, serial: u64, reply: &[u8]) {
        if let Some(session) = self.dns_tcp.sessions.get_mut(&serial) {
            session.waiting = session.waiting.saturating_sub(1);
            send_message(self.stack.sockets.get_mut(session.socket), reply);
        }
    }
}

/// The first message of `received` if it is whole (after its two-byte length).
fn whole_message(received: &[u8]) -> Option<&[u8]> {
    let (length, rest) = received.split_first_chunk::<2>()?;
    rest.get(..usize::from(u16::from_be_bytes(*length)))
}

/// Sends `message` with its length ahead; dropped if the send buffer has no room for it (a
/// client that reads nothing while asking more).
fn send_message(socket: &mut tcp::Socket, message: &[u8]) {
    let Ok(length) = u16::try_from(message.len()) else {
        return;
    };
    if socket.send_capacity() - socket.send_queue() >= 2 + message.len() {
        let _ = socket.send_slice(&length.to_be_bytes());
        let _ = socket.send_slice(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_whole_once_its_length_is_there() {
        assert_eq!(whole_message(&[0]), None);
        assert_eq!(whole_message(&[0, 3, 1, 2]), None);
        assert_eq!(whole_message(&[0, 3, 1, 2, 3, 9]), Some(&[1, 2, 3][..]));
        assert_eq!(whole_message(&[0, 0]), Some(&[][..]));
    }
}
