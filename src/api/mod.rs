//! The Docker Engine API (the swarm subset) on the daemon's unix socket.
//!
//! Paths work bare (`/info`) and version-prefixed (`/v1.41/info`); every error is docker's
//! `{"message": ...}` with docker's status code, including 404 for unknown endpoints.

mod body;
mod error;
mod logs;
mod lookup;
mod networks;
mod nodes;
mod secrets;
mod services;
mod swarm;
mod system;
mod tasks;
mod volumes;

use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, ServiceExt};
use tower::Layer;

pub use error::{ApiError, ApiResult};

use crate::daemon::Daemon;
use crate::manager::Manager;
use secrets::{Configs, Secrets};

/// The API version shoal speaks: the one the reference wire trace was recorded at.
pub const API_VERSION: &str = "1.41";
/// The oldest API version the docker CLI may negotiate down to.
pub const MIN_API_VERSION: &str = "1.24";

/// Every endpoint, at its bare path.
fn routes(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/swarm", get(swarm::inspect))
        .route("/swarm/init", post(swarm::init))
        .route("/swarm/join", post(swarm::join))
        .route("/swarm/leave", post(swarm::leave))
        .route("/swarm/update", post(swarm::update))
        .route("/nodes", get(nodes::list))
        .route("/nodes/{id}", get(nodes::inspect).delete(nodes::remove))
        .route("/nodes/{id}/update", post(nodes::update))
        .route("/services", get(services::list))
        .route("/services/create", post(services::create))
        .route(
            "/services/{id}",
            get(services::inspect).delete(services::remove),
        )
        .route("/services/{id}/update", post(services::update))
        .route("/services/{id}/logs", get(logs::service))
        .route("/tasks/{id}/logs", get(logs::task))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/tasks", get(tasks::list))
        .route("/secrets", get(secrets::list::<Secrets>))
        .route("/secrets/create", post(secrets::create::<Secrets>))
        .route(
            "/secrets/{id}",
            get(secrets::missing::<Secrets>).delete(secrets::missing::<Secrets>),
        )
        .route("/secrets/{id}/update", post(secrets::missing::<Secrets>))
        .route("/configs", get(secrets::list::<Configs>))
        .route("/configs/create", post(secrets::create::<Configs>))
        .route(
            "/configs/{id}",
            get(secrets::missing::<Configs>).delete(secrets::missing::<Configs>),
        )
        .route("/configs/{id}/update", post(secrets::missing::<Configs>))
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .route("/tasks/{id}", get(tasks::inspect))
        .fallback(page_not_found)
        .method_not_allowed_fallback(page_not_found)
        .with_state(daemon)
}

/// The manager this node runs, or docker's error for a worker, a node in no swarm, or a
/// manager that knows no leader (its view of the cluster may be stale, so it serves none).
async fn manager(daemon: &Daemon) -> ApiResult<Arc<Manager>> {
    let manager = match daemon.swarm().await {
        None => return Err(ApiError::not_a_manager()),
        Some(node) => node.manager().ok_or_else(ApiError::worker)?,
    };
    if manager.store.leader().is_none() {
        return Err(ApiError::no_leader());
    }
    Ok(manager)
}

async fn page_not_found() -> ApiError {
    ApiError::not_found("page not found")
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::UnixListener,
    daemon: Arc<Daemon>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The version prefix is stripped before routing, so the layer wraps the whole router.
    let app = middleware::from_fn(strip_api_version).layer(routes(daemon));
    axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Removes a `/v1.NN` prefix, refusing versions outside what shoal speaks, as docker does.
async fn strip_api_version(mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if let Some((version, rest)) = split_version(path) {
        if let Err(e) = check_version(version) {
            return e.into_response();
        }
        let rest = match request.uri().query() {
            Some(query) => format!("{rest}?{query}"),
            None => rest.to_string(),
        };
        match rest.parse() {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => return ApiError::bad_request("malformed request path").into_response(),
        }
    }
    tracing::debug!(method = %request.method(), uri = %request.uri(), "request");
    next.run(request).await
}

/// `/v1.41/info` -> `("1.41", "/info")`.
fn split_version(path: &str) -> Option<(&str, &str)> {
    let after_v = path.strip_prefix("/v")?;
    let slash = after_v.find('/')?;
    let (version, rest) = after_v.split_at(slash);
    let (major, minor) = version.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(major) && digits(minor)).then_some((version, rest))
}

fn check_version(version: &str) -> ApiResult<()> {
    let parse = |v: &str| -> (u32, u32) {
        let (major, minor) = v.split_once('.').unwrap_or((v, "0"));
        (major.parse().unwrap_or(0), minor.parse().unwrap_or(0))
    };
    if parse(version) < parse(MIN_API_VERSION) {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    if parse(version) > parse(API_VERSION) {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix_is_recognised() {
        assert_eq!(split_version("/v1.41/info"), Some(("1.41", "/info")));
        assert_eq!(
            split_version("/v1.41/nodes/abc"),
            Some(("1.41", "/nodes/abc"))
        );
        assert_eq!(split_version("/info"), None);
        assert_eq!(split_version("/version"), None);
        assert_eq!(split_version("/v1/info"), None);
    }

    #[test]
    fn versions_outside_the_range_are_refused() {
        assert!(check_version("1.41").is_ok());
        assert!(check_version("1.24").is_ok());
        assert!(check_version("1.12").is_err());
        assert!(check_version("1.50").is_err());
    }
}
