//! Raft's transport while a swarm has a single manager.
//!
//! A one-voter cluster never sends a Raft RPC, so every call is refused as unreachable. The
//! mutual-TLS transport between managers replaces this when managers can join (issue 2 of the
//! plan: control plane).

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use super::raft::{RaftId, RaftPeer, TypeConfig};

/// The transport of a swarm with one manager: there is nobody to reach.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleManager;

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<RaftId, RaftPeer, RaftError<RaftId, E>>>;

fn unreachable<T, E: std::error::Error>() -> RpcResult<T, E> {
    let reason = std::io::Error::other("this swarm has a single manager: no Raft peers to reach");
    Err(RPCError::Unreachable(Unreachable::new(&reason)))
}

impl RaftNetworkFactory<TypeConfig> for SingleManager {
    type Network = SingleManager;

    async fn new_client(&mut self, _target: RaftId, _node: &RaftPeer) -> SingleManager {
        SingleManager
    }
}

impl RaftNetwork<TypeConfig> for SingleManager {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<RaftId>> {
        unreachable()
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<RaftId>, InstallSnapshotError> {
        unreachable()
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<RaftId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<RaftId>> {
        unreachable()
    }
}
