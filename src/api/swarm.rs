//! `/swarm`: creating, showing and leaving the swarm.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use bollard::models::{
    JoinTokens, NodeSpecAvailabilityEnum, ObjectVersion, SwarmInitRequest, SwarmJoinRequest,
    SwarmSpec,
};
use serde::Deserialize;

use super::body::{JsonBody, VersionQuery, flag};
use super::error::{ApiError, ApiResult};
use crate::daemon::Daemon;
use crate::daemon::settings::with_defaults;
use crate::pki::{JoinToken, MIN_NODE_CERT_VALIDITY};
use crate::store::{Object, Proposal};

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
    let manager = super::manager(&daemon).await?;
    let cluster = manager.cluster().ok_or_else(ApiError::not_a_manager)?;
    let ca = manager.root_ca().map_err(ApiError::internal)?;
    Ok(Json(bollard::models::Swarm {
        id: Some(cluster.id.clone()),
        version: Some(ObjectVersion {
            index: Some(cluster.meta.version),
        }),
        created_at: Some(cluster.meta.created_at.clone()),
        updated_at: Some(cluster.meta.updated_at.clone()),
        spec: Some(cluster.spec.clone()),
        tls_info: Some(ca.tls_info()),
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
    daemon.leave_swarm(flag(query.force.as_deref())).await?;
    Ok(())
}

/// The body of `POST /swarm/join`: bollard's model lacks docker's `Availability`.
#[derive(Deserialize)]
pub struct JoinBody {
    #[serde(flatten)]
    request: SwarmJoinRequest,
    #[serde(rename = "Availability")]
    availability: Option<NodeSpecAvailabilityEnum>,
}

/// `POST /swarm/join`
pub async fn join(
    State(daemon): State<Arc<Daemon>>,
    JsonBody(body): JsonBody<JoinBody>,
) -> ApiResult<()> {
    daemon.join_swarm(body.request, body.availability).await?;
    Ok(())
}

/// The query parameters of `POST /swarm/update`.
#[derive(Deserialize)]
pub struct UpdateQuery {
    #[serde(flatten)]
    version: VersionQuery,
    #[serde(rename = "rotateWorkerToken")]
    rotate_worker_token: Option<String>,
    #[serde(rename = "rotateManagerToken")]
    rotate_manager_token: Option<String>,
}

/// `POST /swarm/update?version=N[&rotateWorkerToken=true][&rotateManagerToken=true]`
pub async fn update(
    State(daemon): State<Arc<Daemon>>,
    Query(query): Query<UpdateQuery>,
    JsonBody(spec): JsonBody<SwarmSpec>,
) -> ApiResult<()> {
    let manager = super::manager(&daemon).await?;
    let version = query.version.version()?;
    let mut cluster = manager.cluster().ok_or_else(ApiError::not_a_manager)?;
    let spec = with_defaults(spec);
    let expiry = spec
        .ca_config
        .as_ref()
        .and_then(|ca| ca.node_cert_expiry)
        .unwrap_or_default();
    if (expiry as u128) < MIN_NODE_CERT_VALIDITY.as_nanos() {
        return Err(ApiError::bad_request(
            "minimum certificate expiry time is 1h0m0s",
        ));
    }
    let digest = manager.root_ca().map_err(ApiError::internal)?.digest();
    if flag(query.rotate_worker_token.as_deref()) {
        cluster.worker_token = JoinToken::generate(&digest).to_string();
    }
    if flag(query.rotate_manager_token.as_deref()) {
        cluster.manager_token = JoinToken::generate(&digest).to_string();
    }
    cluster.spec = spec;
    cluster.meta.touch();
    manager
        .propose(Proposal::update(Object::Cluster(cluster), version))
        .await?;
    Ok(())
}
