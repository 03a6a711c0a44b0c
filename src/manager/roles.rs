//! Raft membership follows the nodes' roles: a manager joins as a learner, then becomes a voter;
//! a node demoted to worker leaves the voters. Runs on the leader.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::Manager;
use super::service::not_leader;
use crate::rpc::proto::Failure;
use crate::store::raft::RaftId;
use crate::store::{ManagerRecord, Node, Object, Proposal, RaftPeer};

/// How often the leader looks for demoted managers still in Raft.
const TICK: Duration = Duration::from_millis(500);

/// Makes the calling manager a voter: learner first (it catches up without counting toward the
/// quorum), then voter, then records its place in its node object.
pub async fn add_voter(
    manager: &Manager,
    node_id: &str,
    raft_id: RaftId,
    addr: String,
) -> Result<(), Failure> {
    if !manager.is_leader() {
        return Err(not_leader(manager));
    }
    let raft = manager.store.raft();
    let peer = RaftPeer {
        addr: addr.clone(),
        node_id: node_id.to_string(),
    };
    raft.add_learner(raft_id, peer, true)
        .await
        .map_err(internal)?;
    let mut voters = voter_ids(manager);
    voters.insert(raft_id);
    raft.change_membership(voters, false)
        .await
        .map_err(internal)?;
    let record = ManagerRecord {
        raft_id,
        addr,
        reachable: true,
    };
    update_node(manager, node_id, |node| node.manager = Some(record.clone())).await?;
    tracing::info!(node = %node_id, raft_id, "manager added to Raft");
    Ok(())
}

fn voter_ids(manager: &Manager) -> BTreeSet<RaftId> {
    let metrics = manager.store.raft().metrics().borrow().clone();
    metrics.membership_config.membership().voter_ids().collect()
}

/// Applies `edit` to the stored node, retrying if it changed under us.
async fn update_node(
    manager: &Manager,
    node_id: &str,
    edit: impl Fn(&mut Node),
) -> Result<(), Failure> {
    for _ in 0..10 {
        let Some(mut node) = manager.store.read().state.nodes.get(node_id).cloned() else {
            return Err(Failure::Invalid(format!("node {node_id} not found")));
        };
        let version = node.meta.version;
        edit(&mut node);
        node.meta.touch();
        match manager
            .propose(Proposal::update(Object::Node(node), version))
            .await
        {
            Ok(()) => return Ok(()),
            Err(crate::store::StoreError::Conflict(_)) => continue,
            Err(e) => return Err(internal(e)),
        }
    }
    Err(Failure::Internal(format!(
        "node {node_id} keeps changing; try again"
    )))
}

/// Runs until aborted: on the leader, takes demoted managers out of Raft.
pub async fn run(manager: Arc<Manager>) {
    loop {
        tokio::time::sleep(TICK).await;
        if !manager.is_leader() {
            continue;
        }
        let demoted: Vec<(String, RaftId)> = {
            let applied = manager.store.read();
            applied
                .state
                .nodes
                .values()
                .filter(|n| !n.is_manager())
                .filter_map(|n| n.manager.as_ref().map(|m| (n.id.clone(), m.raft_id)))
                .collect()
        };
        for (node_id, raft_id) in demoted {
            if let Err(e) = remove_voter(&manager, &node_id, raft_id).await {
                tracing::warn!(node = %node_id, "cannot take the demoted manager out of Raft yet: {e}");
            }
        }
    }
}

async fn remove_voter(manager: &Manager, node_id: &str, raft_id: RaftId) -> Result<(), Failure> {
    let mut voters = voter_ids(manager);
    if voters.remove(&raft_id) {
        manager
            .store
            .raft()
            .change_membership(voters, false)
            .await
            .map_err(internal)?;
    }
    update_node(manager, node_id, |node| node.manager = None).await?;
    tracing::info!(node = %node_id, raft_id, "demoted manager left Raft");
    Ok(())
}

fn internal(e: impl std::fmt::Display) -> Failure {
    Failure::Internal(e.to_string())
}
