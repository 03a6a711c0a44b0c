//! The route path and the packet path: what the control plane compiles for the data plane
//! ([`routes`]), the devices between tasks and the data plane ([`plumb`]), and the data plane
//! itself ([`overlay`]; later `stack`, `mesh`, `dns`).
//!
//! Nothing under `net` imports the control plane: the data plane works from [`routes::RouteTable`]
//! snapshots, plain data that tests can build by hand.

pub mod overlay;
pub mod plumb;
pub mod routes;
