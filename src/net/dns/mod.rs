//! The embedded resolver: service discovery on every overlay, answered at the network's gateway.
//!
//! Tasks' `/etc/resolv.conf` points at their network's gateway, an address of the daemon's own
//! stack on that overlay. The thread that owns the stack receives each datagram sent to port 53
//! and calls [`answer`] with the network's [`Zone`] ([`answer_tcp`] for port 53 over TCP): names of the cluster are answered at once,
//! anything else is sent on to the node's own resolvers by a [`Forwarder`], whose replies (or a
//! [`servfail`] when none comes) go back to the task. No query waits on the control plane.
//!
//! What a name answers, as docker's embedded DNS does (case-insensitively):
//! - `<service>` and each of its aliases: the service's VIP, or with endpoint mode `dnsrr` every
//!   running task's address;
//! - `tasks.<service>` and `tasks.<alias>`: every running task's address;
//! - the reverse name of a VIP or task address: a name whose answer holds that address.
//!
//! No stale entries (docker's long-standing complaint): a [`Zone`] is built from one
//! [`RouteTable`](crate::net::routes::RouteTable) and replaced with it, so a task that stops
//! leaves DNS with the update that takes it out of the data plane; and task addresses go out with
//! a TTL of 0 so that no cache downstream keeps them.
//!
//! Queries are parsed with `hickory-proto`; this parse allocates only for names longer than
//! hickory's inline label storage and for the records of the additional section (an EDNS OPT).
//! Replies are written straight into the caller's buffer from records encoded when the zone was
//! built, so answering allocates nothing else.

mod answer;
mod forward;
mod zone;

#[cfg(test)]
mod tests;

pub use answer::{Outcome, answer, answer_tcp, servfail};
pub use forward::Forwarder;
pub use zone::Zone;
