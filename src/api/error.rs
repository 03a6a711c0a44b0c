//! Errors as the Docker Engine API reports them: a status code and `{"message": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::daemon::swarm::SwarmError;
use crate::store::{Conflict, StoreError};

/// Docker's answer to a swarm request on a node that is not a manager.
pub const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

/// Docker's answer to a request for cluster state on a worker.
pub const WORKER_NOT_A_MANAGER: &str = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";

/// A failed API call.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

/// What every handler returns.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with a status and a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such object (or no such endpoint).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// The message docker shows for this error.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 503 with docker's message for a node that is in no swarm.
    pub fn not_a_manager() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, NOT_A_MANAGER)
    }

    /// 503 with docker's message for a worker.
    pub fn worker() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, WORKER_NOT_A_MANAGER)
    }

    /// 503 with docker's message for a manager that knows no leader.
    pub fn no_leader() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online.",
        )
    }

    /// 500: the daemon failed.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::warn!(status = %self.status, "{}", self.message);
        }
        (
            self.status,
            Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}

impl From<SwarmError> for ApiError {
    fn from(e: SwarmError) -> Self {
        let status = match e {
            SwarmError::AlreadyInSwarm | SwarmError::NotInSwarm | SwarmError::ManagerNeedsForce => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            SwarmError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            SwarmError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::Conflict(
                Conflict::Exists(_) | Conflict::NameInUse(_) | Conflict::NetworkNameInUse(_),
            ) => StatusCode::CONFLICT,
            StoreError::Conflict(Conflict::PoolOverlap(_)) => StatusCode::FORBIDDEN,
            StoreError::Conflict(Conflict::NetworkInUse(_)) => StatusCode::CONFLICT,
            StoreError::Conflict(Conflict::Missing(_)) => StatusCode::NOT_FOUND,
            StoreError::Conflict(Conflict::PortInUse { .. }) => StatusCode::BAD_REQUEST,
            // Docker reports a stale version as an internal error of the update RPC.
            StoreError::Conflict(
                Conflict::Stale { .. }
                | Conflict::VniInUse(_)
                | Conflict::AddressUnavailable { .. },
            )
            | StoreError::Raft(_) => StatusCode::INTERNAL_SERVER_ERROR,
            StoreError::NotLeader => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, e.to_string())
    }
}
