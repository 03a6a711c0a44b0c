//! The route path and the packet path: what the control plane compiles for the data plane
//! ([`routes`]), the devices between tasks and the data plane ([`plumb`]), and the data plane
//! itself: the overlay engine ([`overlay`]), the daemon's own presence on an overlay ([`stack`]),
//! the routing mesh built on it ([`mesh`]), the VIP balancer ([`balancer`]), the event-loop
//! thread both run in ([`event_thread`]) and the embedded
//! resolver it answers with on each network's gateway ([`dns`]).
//!
//! Nothing under `net` imports the control plane: the data plane works from [`routes::RouteTable`]
//! snapshots, plain data that tests can build by hand.

pub mod balancer;
pub mod dns;
pub mod event_thread;
pub mod mesh;
pub mod overlay;
pub mod plumb;
pub mod routes;
pub mod stack;
