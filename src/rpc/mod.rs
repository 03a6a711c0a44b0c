//! Node-to-node transport on the swarm port (2377): mutual TLS with the swarm's
//! root CA, then length-prefixed JSON request/response pairs.
//!
//! This layer is generic over the message types: raft, CA and dispatcher messages
//! are defined on top of it. Servers see each request's [`Peer`], whose identity
//! comes from the verified client certificate; clients see the server's identity
//! on their [`Connection`].

mod client;
mod error;
pub mod proto;
mod server;
mod tls;
mod verify;
pub mod wire;

#[cfg(test)]
mod tests;

pub use client::Connection;
pub use error::{Result, RpcError};
pub use server::{Peer, serve};
pub use tls::{
    Tls, TlsConfigs, anonymous_client_config, bootstrap_client_config, manager_server_name,
};
