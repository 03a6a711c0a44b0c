//! The manager's control-port service: who may ask what, and the answers.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{Manager, ca, roles};
use crate::background::stopped;
use crate::pki::Role;
use crate::rpc::Peer;
use crate::rpc::proto::{Failure, Request, Response};
use crate::store::StoreError;

/// Serves the control port until `stopping` turns true.
pub async fn serve(manager: Arc<Manager>, listener: TcpListener, stopping: watch::Receiver<bool>) {
    let tls = manager.tls.clone();
    let handler = move |peer: Peer, request: Request| {
        let manager = manager.clone();
        async move { handle(&manager, peer, request).await }
    };
    crate::rpc::serve(listener, tls, handler, stopped(stopping)).await;
}

async fn handle(manager: &Manager, peer: Peer, request: Request) -> Response {
    match answer(manager, &peer, request).await {
        Ok(response) => response,
        Err(failure) => {
            tracing::debug!(peer = %peer.addr, "control request failed: {failure}");
            Response::Failed(failure)
        }
    }
}

async fn answer(manager: &Manager, peer: &Peer, request: Request) -> Result<Response, Failure> {
    let raft = manager.store.raft();
    Ok(match request {
        Request::RootCa => {
            let ca = manager.root_ca().map_err(internal)?;
            Response::RootCa {
                cert_pem: ca.cert_pem().into(),
            }
        }
        Request::Join(join) => Response::Joined(ca::join(manager, join).await?),
        Request::AppendEntries(rpc) => {
            require_manager(manager, peer)?;
            Response::AppendEntries(raft.append_entries(rpc).await)
        }
        Request::Vote(rpc) => {
            require_manager(manager, peer)?;
            Response::Vote(raft.vote(rpc).await)
        }
        Request::InstallSnapshot(rpc) => {
            require_manager(manager, peer)?;
            Response::InstallSnapshot(raft.install_snapshot(rpc).await)
        }
        Request::Propose(proposal) => {
            require_manager(manager, peer)?;
            match manager.store.propose(proposal).await {
                Ok(()) => Response::Done,
                Err(StoreError::Conflict(conflict)) => return Err(conflict.into()),
                Err(StoreError::NotLeader) => return Err(not_leader(manager)),
                Err(e @ StoreError::Raft(_)) => return Err(internal(e)),
            }
        }
        Request::AddVoter { raft_id, addr } => {
            let node_id = require_manager(manager, peer)?;
            roles::add_voter(manager, &node_id, raft_id, addr).await?;
            Response::Done
        }
        Request::Heartbeat => {
            let node_id = require_member(manager, peer)?;
            if !manager.is_leader() {
                return Err(not_leader(manager));
            }
            Response::Session(manager.dispatcher.heartbeat(manager, &node_id))
        }
        Request::Assignments { known } => {
            let node_id = require_member(manager, peer)?;
            if !manager.is_leader() {
                return Err(not_leader(manager));
            }
            let (tag, tasks) = manager
                .dispatcher
                .assignments(manager, &node_id, known)
                .await;
            Response::Assignments { tag, tasks }
        }
        Request::Routes { known } => {
            let node_id = require_member(manager, peer)?;
            if !manager.is_leader() {
                return Err(not_leader(manager));
            }
            Response::Routes(manager.dispatcher.routes(manager, &node_id, known).await)
        }
        Request::TaskStatuses(reports) => {
            let node_id = require_member(manager, peer)?;
            manager
                .dispatcher
                .report(manager, &node_id, reports)
                .await?;
            Response::Done
        }
        Request::LogSubscriptions => {
            let node_id = require_member(manager, peer)?;
            Response::LogSubscriptions(manager.logs.take(&node_id).await)
        }
        Request::PublishLogs {
            subscription,
            lines,
            done,
        } => {
            let node_id = require_member(manager, peer)?;
            let published = crate::manager::logs::Published {
                node_id,
                lines,
                done,
            };
            if !manager.logs.publish(subscription, published).await {
                return Err(Failure::Invalid(format!(
                    "log subscription {subscription} is closed"
                )));
            }
            Response::Done
        }
        Request::Renew { csr_pem } => {
            let node_id = require_member(manager, peer)?;
            Response::Certificate {
                cert_pem: ca::renew(manager, &node_id, &csr_pem)?,
            }
        }
    })
}

/// The failure that sends a caller to the leader.
pub fn not_leader(manager: &Manager) -> Failure {
    Failure::NotLeader {
        leader: manager.leader_addr(),
    }
}

fn internal(e: impl std::fmt::Display) -> Failure {
    Failure::Internal(e.to_string())
}

/// The caller's node ID, if its certificate belongs to a node that is still in the swarm.
fn require_member(manager: &Manager, peer: &Peer) -> Result<String, Failure> {
    let identity = peer
        .identity
        .as_ref()
        .ok_or_else(|| Failure::Denied("a node certificate is required".into()))?;
    let applied = manager.store.read();
    if applied.state.cluster().is_some() && !applied.state.nodes.contains_key(&identity.node_id) {
        return Err(Failure::Denied(format!(
            "node {} has been removed from the swarm",
            identity.node_id
        )));
    }
    Ok(identity.node_id.clone())
}

/// The caller's node ID, if it is a manager: by certificate and, once this manager has the
/// swarm's state, by the store (a demoted manager's old certificate no longer counts).
fn require_manager(manager: &Manager, peer: &Peer) -> Result<String, Failure> {
    let node_id = require_member(manager, peer)?;
    let by_certificate = peer
        .identity
        .as_ref()
        .is_some_and(|id| id.role == Role::Manager);
    let applied = manager.store.read();
    let by_store = applied.state.cluster().is_none()
        || applied
            .state
            .nodes
            .get(&node_id)
            .is_some_and(|n| n.is_manager());
    if !(by_certificate && by_store) {
        return Err(Failure::Denied(format!(
            "node {node_id} is not a manager: permission denied"
        )));
    }
    Ok(node_id)
}
