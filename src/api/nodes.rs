//! `/nodes`: the swarm's members as docker shows them.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use bollard::models::{
    ManagerStatus, NodeSpec, NodeSpecRoleEnum, NodeState, ObjectVersion, Reachability,
};
use serde::Deserialize;

use super::body::{Filters, JsonBody, VersionQuery, flag};
use super::error::{ApiError, ApiResult};
use crate::daemon::Daemon;
use crate::manager::Manager;
use crate::store::{ClusterState, Kind, Node, Object, ObjectKey, Proposal};

/// The `filters` query parameter.
#[derive(Deserialize)]
pub struct ListQuery {
    filters: Option<String>,
}

const NODE_FILTERS: &[&str] = &["id", "label", "membership", "name", "node.label", "role"];

/// `GET /nodes`
pub async fn list(
    State(daemon): State<Arc<Daemon>>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Vec<bollard::models::Node>>> {
    let manager = super::manager(&daemon).await?;
    let filters = Filters::parse(query.filters.as_deref(), NODE_FILTERS)?;
    let applied = manager.store.read();
    let nodes = applied
        .state
        .nodes
        .values()
        .filter(|node| matches_filters(node, &filters))
        .map(|node| to_model(node, &manager))
        .collect();
    Ok(Json(nodes))
}

/// `GET /nodes/{id}`: by ID, hostname, or unique ID prefix.
pub async fn inspect(
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
) -> ApiResult<Json<bollard::models::Node>> {
    let manager = super::manager(&daemon).await?;
    let applied = manager.store.read();
    let node = find(&applied.state, &name)?;
    Ok(Json(to_model(node, &manager)))
}

/// Finds a node as docker does: exact ID, then hostname, then ID prefix; ambiguity is an error.
pub fn find<'a>(state: &'a ClusterState, name: &str) -> ApiResult<&'a Node> {
    super::lookup::find(&state.nodes, name, "node", |n| {
        n.description.hostname.as_deref()
    })
}

fn hostname(node: &Node) -> &str {
    node.description.hostname.as_deref().unwrap_or_default()
}

fn role(node: &Node) -> &'static str {
    match node.spec.role {
        Some(NodeSpecRoleEnum::MANAGER) => "manager",
        _ => "worker",
    }
}

fn matches_filters(node: &Node, filters: &Filters) -> bool {
    let labels = node.spec.labels.clone().unwrap_or_default();
    let has_label = |filter: &str| match filter.split_once('=') {
        Some((key, value)) => labels.get(key).is_some_and(|v| v == value),
        None => labels.contains_key(filter),
    };
    filters.accepts("id", |id| node.id.starts_with(id))
        && filters.accepts("name", |name| hostname(node).starts_with(name))
        && filters.accepts("role", |r| r == role(node))
        && filters.accepts("membership", |m| m == "accepted")
        && filters.accepts("node.label", has_label)
        && filters.accepts("label", has_label)
}

/// A stored node in the API's shape; leadership is read from Raft as it is now.
pub fn to_model(node: &Node, manager: &Manager) -> bollard::models::Node {
    let leader = manager.store.leader();
    let manager_status = node.manager.as_ref().map(|m| {
        let is_leader = leader == Some(m.raft_id);
        ManagerStatus {
            leader: Some(is_leader),
            reachability: Some(if is_leader || m.reachable {
                Reachability::REACHABLE
            } else {
                Reachability::UNREACHABLE
            }),
            addr: Some(m.addr.clone()),
        }
    });
    bollard::models::Node {
        id: Some(node.id.clone()),
        version: Some(ObjectVersion {
            index: Some(node.meta.version),
        }),
        created_at: Some(node.meta.created_at.clone()),
        updated_at: Some(node.meta.updated_at.clone()),
        spec: Some(node.spec.clone()),
        description: Some(node.description.clone()),
        status: Some(node.status.clone()),
        manager_status,
    }
}

/// `POST /nodes/{id}/update?version=N`: role, availability, labels. Demotions that would leave
/// the swarm without a manager, or Raft without a quorum, are refused.
pub async fn update(
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
    Query(query): Query<VersionQuery>,
    JsonBody(spec): JsonBody<NodeSpec>,
) -> ApiResult<()> {
    let manager = super::manager(&daemon).await?;
    let version = query.version()?;
    let updated = {
        let applied = manager.store.read();
        let node = find(&applied.state, &name)?;
        if node.is_manager() && spec.role == Some(NodeSpecRoleEnum::WORKER) {
            check_demotion(&applied.state, node)?;
        }
        let mut updated = node.clone();
        updated.spec = spec;
        updated.meta.touch();
        updated
    };
    manager
        .propose(Proposal::update(Object::Node(updated), version))
        .await?;
    Ok(())
}

fn check_demotion(state: &ClusterState, node: &Node) -> ApiResult<()> {
    let voters: Vec<&Node> = state
        .nodes
        .values()
        .filter(|n| n.manager.is_some())
        .collect();
    let managers = state.nodes.values().filter(|n| n.is_manager()).count();
    if managers <= 1 {
        return Err(ApiError::bad_request(
            "attempting to demote the last manager of the swarm",
        ));
    }
    let remaining: Vec<&&Node> = voters.iter().filter(|n| n.id != node.id).collect();
    let reachable = remaining
        .iter()
        .filter(|n| n.manager.as_ref().is_some_and(|m| m.reachable))
        .count();
    if reachable < remaining.len() / 2 + 1 {
        return Err(ApiError::bad_request(
            "can't remove member from the raft: this would result in a loss of quorum",
        ));
    }
    Ok(())
}

/// `DELETE /nodes/{id}[?force=1]`: a node must be down (or forced) and not a manager.
pub async fn remove(
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
    Query(query): Query<ForceQuery>,
) -> ApiResult<()> {
    let manager = super::manager(&daemon).await?;
    let id = {
        let applied = manager.store.read();
        let node = find(&applied.state, &name)?;
        if node.is_manager() || node.manager.is_some() {
            return Err(ApiError::bad_request(format!(
                "rpc error: code = FailedPrecondition desc = node {} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal",
                node.id
            )));
        }
        if node.status.state == Some(NodeState::READY) && !flag(query.force.as_deref()) {
            return Err(ApiError::bad_request(format!(
                "rpc error: code = FailedPrecondition desc = node {} is not down and can't be removed",
                node.id
            )));
        }
        node.id.clone()
    };
    let key = ObjectKey {
        kind: Kind::Node,
        id,
    };
    manager.propose(Proposal::delete(key)).await?;
    Ok(())
}

/// The `force` query parameter.
#[derive(Deserialize)]
pub struct ForceQuery {
    force: Option<String>,
}
