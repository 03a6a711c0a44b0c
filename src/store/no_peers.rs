//! A Raft transport that reaches nobody: enough for a store of one member, as in unit tests.

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use super::raft::{RaftId, RaftPeer, TypeConfig};

/// The transport of a member alone: every RPC is unreachable.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPeers;

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<RaftId, RaftPeer, RaftError<RaftId, E>>>;

fn unreachable<T, E: std::error::Error>() -> RpcResult<T, E> {
    let reason = std::io::Error::other("a member alone has no peers to reach");
    Err(RPCError::Unreachable(Unreachable::new(&reason)))
}

impl RaftNetworkFactory<TypeConfig> for NoPeers {
    type Network = NoPeers;

    async fn new_client(&mut self, _target: RaftId, _node: &RaftPeer) -> NoPeers {
        NoPeers
    }
}

impl RaftNetwork<TypeConfig> for NoPeers {
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
