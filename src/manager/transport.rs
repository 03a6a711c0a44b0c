//! Raft between managers, over the mutual-TLS control connections.
//!
//! Each Raft client keeps one connection to its peer and checks, on connecting, that the peer's
//! certificate names the node the membership says lives at that address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::rpc::proto::{Request, Response};
use crate::rpc::{Connection, Tls};
use crate::store::raft::{RaftId, RaftPeer, TypeConfig};

/// How long to wait for a peer to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// When each Raft peer last answered: the leader's view of which managers are reachable.
#[derive(Default)]
pub struct PeerHealth {
    last_answer: Mutex<HashMap<RaftId, Instant>>,
}

impl PeerHealth {
    fn answered(&self, peer: RaftId) {
        self.lock().insert(peer, Instant::now());
    }

    /// Whether `peer` answered a Raft RPC within `window`.
    pub fn answered_within(&self, peer: RaftId, window: Duration) -> bool {
        self.lock()
            .get(&peer)
            .is_some_and(|at| at.elapsed() <= window)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RaftId, Instant>> {
        self.last_answer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Makes Raft clients for openraft.
#[derive(Clone)]
pub struct RaftTransport {
    tls: Arc<Tls>,
    health: Arc<PeerHealth>,
}

impl RaftTransport {
    /// A transport using this node's TLS identity, recording answers in `health`.
    pub fn new(tls: Arc<Tls>, health: Arc<PeerHealth>) -> Self {
        RaftTransport { tls, health }
    }
}

impl RaftNetworkFactory<TypeConfig> for RaftTransport {
    type Network = RaftClient;

    async fn new_client(&mut self, target: RaftId, node: &RaftPeer) -> RaftClient {
        RaftClient {
            target,
            peer: node.clone(),
            transport: self.clone(),
            connection: None,
        }
    }
}

/// One peer's Raft client.
pub struct RaftClient {
    target: RaftId,
    peer: RaftPeer,
    transport: RaftTransport,
    connection: Option<Connection>,
}

type RpcError<E = openraft::error::Infallible> = RPCError<RaftId, RaftPeer, RaftError<RaftId, E>>;

impl RaftClient {
    async fn call<E: std::error::Error>(
        &mut self,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, RpcError<E>> {
        let unreachable = |e: &dyn std::error::Error| {
            RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e.to_string())))
        };
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => {
                let config = self.transport.tls.client_config();
                let connection = Connection::connect(&self.peer.addr, config, CONNECT_TIMEOUT)
                    .await
                    .map_err(|e| unreachable(&e))?;
                let identity = connection.peer_identity().map(|id| id.node_id.clone());
                if identity.as_deref() != Some(self.peer.node_id.as_str()) {
                    let found = identity.unwrap_or_else(|| "no certificate".into());
                    let e = std::io::Error::other(format!(
                        "{} is now {found}, not {}",
                        self.peer.addr, self.peer.node_id
                    ));
                    return Err(unreachable(&e));
                }
                connection
            }
        };
        let response = connection
            .call::<Request, Response>(&request, timeout)
            .await
            .map_err(|e| unreachable(&e))?;
        self.connection = Some(connection);
        self.transport.health.answered(self.target);
        Ok(response)
    }

    fn unexpected<E: std::error::Error>(&self, response: Response) -> RpcError<E> {
        let reason = match response {
            Response::Failed(failure) => failure.to_string(),
            other => format!("unexpected answer {other:?}"),
        };
        RPCError::Network(NetworkError::new(&std::io::Error::other(reason)))
    }

    fn remote<E: std::error::Error>(&self, error: RaftError<RaftId, E>) -> RpcError<E> {
        RPCError::RemoteError(RemoteError::new_with_node(
            self.target,
            self.peer.clone(),
            error,
        ))
    }
}

impl RaftNetwork<TypeConfig> for RaftClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<RaftId>, RpcError> {
        match self
            .call(Request::AppendEntries(rpc), option.hard_ttl())
            .await?
        {
            Response::AppendEntries(result) => result.map_err(|e| self.remote(e)),
            other => Err(self.unexpected(other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<RaftId>, RpcError<InstallSnapshotError>> {
        match self
            .call(Request::InstallSnapshot(rpc), option.hard_ttl())
            .await?
        {
            Response::InstallSnapshot(result) => result.map_err(|e| self.remote(e)),
            other => Err(self.unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<RaftId>,
        option: RPCOption,
    ) -> Result<VoteResponse<RaftId>, RpcError> {
        match self.call(Request::Vote(rpc), option.hard_ttl()).await? {
            Response::Vote(result) => result.map_err(|e| self.remote(e)),
            other => Err(self.unexpected(other)),
        }
    }
}
