//! shoal: a Docker-Swarm-compatible container cluster built around a userspace data plane.
//!
//! The module map follows the three paths of ARCHITECTURE.md: the desired-state path
//! (`api` -> `store`), the route path and the packet path (`net`).

pub mod agent;
pub mod api;
pub mod background;
pub mod cli;
pub mod compose;
pub mod daemon;
pub mod exec;
pub mod fsutil;
pub mod manager;
pub mod net;
pub mod pki;
pub mod rpc;
pub mod store;
