//! `/swarm`: creating, showing and leaving the swarm.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use bollard::models::{JoinTokens, ObjectVersion, SwarmInitRequest};
use serde::Deserialize;

use super::body::JsonBody;
use super::error::{ApiError, ApiResult};
use crate::daemon::Daemon;

/// `POST /swarm/init`: answers the new node's ID.
pub async fn init(
    State(daemon): State<Arc<Daemon>>,
    JsonBody(request): JsonBody<SwarmInitRequest>,
) -> ApiResult<Json<String>> {
    let manager = daemon.init_swarm(request).await?;
    Ok(Json(manager.node_id.clone()))
}

/// `GET /swarm`: the swarm with its join tokens (managers only).
pub async fn inspect(State(daemon): State<Arc<Daemon>>) -> ApiResult<Json<bollard::models::Swarm>> {
    let manager = daemon.manager().await.ok_or_else(ApiError::not_a_manager)?;
    let applied = manager.store.read();
    let cluster = applied
        .state
        .cluster()
        .ok_or_else(ApiError::not_a_manager)?;
    Ok(Json(bollard::models::Swarm {
        id: Some(cluster.id.clone()),
        version: Some(ObjectVersion {
            index: Some(cluster.meta.version),
        }),
        created_at: Some(cluster.meta.created_at.clone()),
        updated_at: Some(cluster.meta.updated_at.clone()),
        spec: Some(cluster.spec.clone()),
        tls_info: Some(manager.root_ca.tls_info()),
        root_rotation_in_progress: Some(false),
        data_path_port: Some(u32::from(cluster.data_path_port)),
        default_addr_pool: Some(cluster.default_addr_pool.clone()),
        subnet_size: Some(cluster.subnet_size),
        join_tokens: Some(JoinTokens {
            worker: Some(cluster.worker_token.clone()),
            manager: Some(cluster.manager_token.clone()),
        }),
    }))
}

/// The `force` query parameter of `POST /swarm/leave`.
#[derive(Deserialize)]
pub struct LeaveQuery {
    #[serde(default)]
    force: Option<String>,
}

/// `POST /swarm/leave[?force=1]`
pub async fn leave(
    State(daemon): State<Arc<Daemon>>,
    Query(query): Query<LeaveQuery>,
) -> ApiResult<()> {
    let force = matches!(query.force.as_deref(), Some("1" | "true" | "True"));
    daemon.leave_swarm(force).await?;
    Ok(())
}
