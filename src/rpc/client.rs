//! The dialing side of the swarm port: one TLS connection to a manager carrying
//! one request at a time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::tls::{manager_server_name, peer_identity};
use super::wire::{self, Transport};
use super::{Result, RpcError};
use crate::pki::NodeIdentity;

/// An open connection to a manager. Calls are sequential (`&mut self`); open more
/// connections for concurrency.
///
/// A failed, timed-out or cancelled call leaves the connection broken, because a
/// late response would otherwise be taken as the answer to the next request: every
/// later call returns [`RpcError::Broken`] and the caller must reconnect.
#[derive(Debug)]
pub struct Connection {
    transport: Transport<TlsStream<TcpStream>>,
    identity: Option<NodeIdentity>,
    broken: bool,
}

impl Connection {
    /// Connects to `addr` (a socket address or `host:port`) and completes the TLS
    /// handshake with `config`, all within `timeout`. The server must present a
    /// certificate valid for `swarm-manager` (unless `config` is the bootstrap one).
    ///
    /// With TLS 1.3, a server that rejects our client certificate does so only after
    /// the client considers the handshake done, so that rejection surfaces as an
    /// error of the first call rather than here.
    pub async fn connect<A>(addr: A, config: Arc<ClientConfig>, timeout: Duration) -> Result<Self>
    where
        A: ToSocketAddrs + fmt::Display,
    {
        let target = addr.to_string();
        let timed_out = |_| RpcError::ConnectTimeout {
            addr: target.clone(),
            timeout,
        };
        let deadline = Instant::now() + timeout;
        let tcp = timeout_at(deadline, TcpStream::connect(addr))
            .await
            .map_err(timed_out)?
            .map_err(|source| RpcError::Connect {
                addr: target.clone(),
                source,
            })?;
        // Best effort: Nagle's algorithm only delays small requests.
        let _ = tcp.set_nodelay(true);
        let stream = timeout_at(
            deadline,
            TlsConnector::from(config).connect(manager_server_name(), tcp),
        )
        .await
        .map_err(timed_out)?
        .map_err(|source| RpcError::Handshake {
            addr: target.clone(),
            source,
        })?;
        let identity = peer_identity(stream.get_ref().1.peer_certificates())?;
        Ok(Connection {
            transport: wire::framed(stream),
            identity,
            broken: false,
        })
    }

    /// The node the server's certificate names, so callers can check they reached
    /// the node they meant (raft compares it with the expected node ID). Verified
    /// by every configuration except the bootstrap one.
    pub fn peer_identity(&self) -> Option<&NodeIdentity> {
        self.identity.as_ref()
    }

    /// Whether an earlier call failed and the connection must be replaced.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Sends `request` and waits up to `timeout` for its response.
    pub async fn call<Req, Resp>(&mut self, request: &Req, timeout: Duration) -> Result<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        if self.broken {
            return Err(RpcError::Broken);
        }
        // Marked broken until the exchange completes, so that dropping this future
        // midway (a caller's select or timeout) also retires the connection.
        self.broken = true;
        let exchange = async {
            wire::send(&mut self.transport, request).await?;
            wire::recv(&mut self.transport)
                .await?
                .ok_or(RpcError::PeerClosed)
        };
        let response = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| RpcError::CallTimeout(timeout))??;
        self.broken = false;
        Ok(response)
    }
}
