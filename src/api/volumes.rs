//! `/volumes`: this node's named volumes, as `docker volume ls|inspect|create|rm` show them.
//! Volumes are local to a node, as docker's are: any node answers for its own, in a swarm or not.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::body::{Filters, JsonBody, flag};
use super::error::{ApiError, ApiResult};
use crate::daemon::Daemon;
use crate::exec::{ExecError, Volume};
use crate::store::objects::timestamp;

/// The only driver: a directory in the node's data dir.
const LOCAL: &str = "local";

/// A volume as docker shows it.
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeView {
    created_at: String,
    driver: &'static str,
    labels: Option<HashMap<String, String>>,
    mountpoint: String,
    name: String,
    options: Option<HashMap<String, String>>,
    scope: &'static str,
}

fn view(volume: Volume) -> VolumeView {
    VolumeView {
        created_at: timestamp(volume.created_at),
        driver: LOCAL,
        labels: None,
        mountpoint: volume.mountpoint.display().to_string(),
        name: volume.name,
        options: None,
        scope: "local",
    }
}

/// The answer to an executor's refusal.
fn exec_error(e: ExecError) -> ApiError {
    let status = match e {
        ExecError::NoSuchVolume(_) => StatusCode::NOT_FOUND,
        ExecError::VolumeInUse { .. } => StatusCode::CONFLICT,
        ExecError::InvalidSpec(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

/// The query of `GET /volumes`.
#[derive(Deserialize)]
pub struct ListQuery {
    filters: Option<String>,
}

const VOLUME_FILTERS: &[&str] = &["dangling", "driver", "label", "name"];

/// `GET /volumes`
pub async fn list(
    State(daemon): State<Arc<Daemon>>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let filters = Filters::parse(query.filters.as_deref(), VOLUME_FILTERS)?;
    let volumes = daemon.host.executor.volumes().await.map_err(exec_error)?;
    let shown: Vec<VolumeView> = volumes
        .into_iter()
        .filter(|v| matches(v, &filters))
        .map(view)
        .collect();
    Ok(Json(
        serde_json::json!({ "Volumes": shown, "Warnings": null }),
    ))
}

/// Whether `volume` passes `filters`, as docker matches them.
fn matches(volume: &Volume, filters: &Filters) -> bool {
    filters.accepts("name", |n| volume.name.contains(n))
        && filters.accepts("driver", |d| d == LOCAL)
        && filters.accepts("dangling", |d| flag(Some(d)) == volume.used_by.is_empty())
        // Shoal's volumes carry no labels.
        && filters.accepts_labels(None)
}

/// `GET /volumes/{name}`
pub async fn inspect(
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
) -> ApiResult<Json<VolumeView>> {
    let volume = daemon.host.executor.volume(&name).await;
    Ok(Json(view(volume.map_err(exec_error)?)))
}

/// The body of `POST /volumes/create`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRequest {
    #[serde(default)]
    name: String,
    driver: Option<String>,
    driver_opts: Option<HashMap<String, String>>,
    labels: Option<HashMap<String, String>>,
}

/// `POST /volumes/create`: a directory; no driver options or labels, which it could not keep.
pub async fn create(
    State(daemon): State<Arc<Daemon>>,
    JsonBody(request): JsonBody<CreateRequest>,
) -> ApiResult<(StatusCode, Json<VolumeView>)> {
    let driver = request.driver.as_deref().unwrap_or_default();
    if !matches!(driver, "" | LOCAL) {
        return Err(ApiError::not_found(format!(
            "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
        )));
    }
    if request.driver_opts.is_some_and(|o| !o.is_empty())
        || request.labels.is_some_and(|l| !l.is_empty())
    {
        return Err(ApiError::bad_request(
            "volume options and labels are not supported by shoal's local volumes",
        ));
    }
    // Docker names a volume created without a name itself.
    let name = match request.name.as_str() {
        "" => crate::pki::new_id(),
        name => name.to_string(),
    };
    let volume = daemon.host.executor.create_volume(&name).await;
    Ok((StatusCode::CREATED, Json(view(volume.map_err(exec_error)?))))
}

/// The query of `DELETE /volumes/{name}`.
#[derive(Deserialize)]
pub struct RemoveQuery {
    force: Option<String>,
}

/// `DELETE /volumes/{name}[?force=1]`: refused while a task mounts it; `force` only makes a
/// missing volume no error, as in docker.
pub async fn remove(
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
    Query(query): Query<RemoveQuery>,
) -> ApiResult<StatusCode> {
    match daemon.host.executor.remove_volume(&name).await {
        Err(ExecError::NoSuchVolume(_)) if flag(query.force.as_deref()) => {
            Ok(StatusCode::NO_CONTENT)
        }
        done => done.map(|()| StatusCode::NO_CONTENT).map_err(exec_error),
    }
}

/// `POST /volumes/prune`: every volume no task mounts (API 1.41's meaning: named ones too).
/// A label filter matches none, as shoal's volumes carry no labels.
pub async fn prune(
    State(daemon): State<Arc<Daemon>>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let filters = Filters::parse(query.filters.as_deref(), &["label"])?;
    let (deleted, bytes) = if filters.accepts_labels(None) {
        daemon
            .host
            .executor
            .prune_volumes()
            .await
            .map_err(exec_error)?
    } else {
        (Vec::new(), 0)
    };
    Ok(Json(serde_json::json!({
        "VolumesDeleted": deleted,
        "SpaceReclaimed": bytes,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn volume(used_by: &[&str]) -> Volume {
        Volume {
            name: "demo_db".into(),
            mountpoint: "/var/lib/shoal/volumes/demo_db".into(),
            created_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000),
            used_by: used_by.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_volume_looks_like_dockers() {
        let json = serde_json::to_value(view(volume(&[]))).unwrap();
        let created = json["CreatedAt"].as_str().unwrap().to_string();
        assert!(created.starts_with("2026-"), "{created}");
        assert_eq!(
            json,
            serde_json::json!({
                "CreatedAt": created,
                "Driver": "local",
                "Labels": null,
                "Mountpoint": "/var/lib/shoal/volumes/demo_db",
                "Name": "demo_db",
                "Options": null,
                "Scope": "local"
            })
        );
    }

    #[test]
    fn filters_match_as_docker_matches() {
        let f = |raw: &str| Filters::parse(Some(raw), VOLUME_FILTERS).unwrap();
        let (free, held) = (volume(&[]), volume(&["t1"]));
        assert!(matches(&free, &f(r#"{"name":{"db":true}}"#)));
        assert!(!matches(&free, &f(r#"{"name":{"web":true}}"#)));
        assert!(matches(&free, &f(r#"{"dangling":{"true":true}}"#)));
        assert!(!matches(&held, &f(r#"{"dangling":{"true":true}}"#)));
        assert!(matches(&held, &f(r#"{"dangling":{"false":true}}"#)));
        assert!(!matches(&free, &f(r#"{"driver":{"nfs":true}}"#)));
        assert!(!matches(&free, &f(r#"{"label":{"a":true}}"#)));
        assert!(Filters::parse(Some(r#"{"colour":{"x":true}}"#), VOLUME_FILTERS).is_err());
    }
}
