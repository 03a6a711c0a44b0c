//! `/secrets` and `/configs`: shoal stores neither yet, so a list is truly empty and a named
//! one is not found. The endpoints exist because `docker stack deploy` and `docker stack rm`
//! list both (by the stack's label) on every run: without them no stack could be removed.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::body::Filters;
use super::error::{ApiError, ApiResult};
use crate::daemon::Daemon;

/// Secrets or configs: what differs between the two sets of endpoints.
pub trait Unstored: Send + Sync + 'static {
    /// The object's name in messages: `secret`, `config`.
    const KIND: &'static str;
}

/// The `/secrets` endpoints.
pub struct Secrets;
/// The `/configs` endpoints.
pub struct Configs;

impl Unstored for Secrets {
    const KIND: &'static str = "secret";
}

impl Unstored for Configs {
    const KIND: &'static str = "config";
}

/// The filters docker accepts for both (moby's `newListSecretsFilters`, `newListConfigsFilters`).
const FILTERS: &[&str] = &["id", "label", "name", "names"];

/// The query of `GET /secrets` and `GET /configs`.
#[derive(Deserialize)]
pub struct ListQuery {
    filters: Option<String>,
}

/// `GET /secrets`, `GET /configs`: always empty, but on a manager only and with docker's
/// checks of the filters, so that a bad request fails here as it fails against docker.
pub async fn list<K: Unstored>(
    State(daemon): State<Arc<Daemon>>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    super::manager(&daemon).await?;
    Filters::parse(query.filters.as_deref(), FILTERS)?;
    Ok(Json(Vec::new()))
}

/// `GET`/`DELETE /secrets/{id}`, `POST /secrets/{id}/update` (and the configs' likewise):
/// there is none to find.
pub async fn missing<K: Unstored>(
    State(daemon): State<Arc<Daemon>>,
    Path(reference): Path<String>,
) -> ApiResult<()> {
    super::manager(&daemon).await?;
    Err(ApiError::not_found(format!(
        "{} {reference} not found",
        K::KIND
    )))
}

/// `POST /secrets/create`, `POST /configs/create`: refused, as swarmkit refuses what it does
/// not implement.
pub async fn create<K: Unstored>(State(daemon): State<Arc<Daemon>>) -> ApiResult<()> {
    super::manager(&daemon).await?;
    Err(unsupported::<K>())
}

/// The answer to creating a secret or a config.
fn unsupported<K: Unstored>() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        format!(
            "rpc error: code = Unimplemented desc = {}s are not supported by shoal",
            K::KIND
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_filters_parse_and_others_are_refused() {
        let stack = r#"{"label":{"com.docker.stack.namespace=wordpress":true}}"#;
        assert!(Filters::parse(Some(stack), FILTERS).is_ok());
        let err = Filters::parse(Some(r#"{"driver":{"x":true}}"#), FILTERS).unwrap_err();
        assert_eq!(err.message(), "invalid filter 'driver'");
    }

    #[test]
    fn creating_is_refused_in_swarmkit_words() {
        let err = unsupported::<Configs>();
        assert_eq!(
            err.message(),
            "rpc error: code = Unimplemented desc = configs are not supported by shoal"
        );
    }
}
