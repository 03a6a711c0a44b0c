//! The route path and the packet path: what the control plane compiles for the data plane
//! ([`routes`]), and the data plane itself ([`overlay`]; later `plumb`, `stack`, `mesh`, `dns`).
//!
//! Nothing under `net` imports the control plane: the data plane works from [`routes::RouteTable`]
//! snapshots, plain data that tests can build by hand.

pub mod overlay;
pub mod routes;
