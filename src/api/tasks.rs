//! `/tasks`: what runs where, with docker's filters.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use bollard::models::{ObjectVersion, TaskState};
use serde::{Deserialize, Serialize};

use super::body::Filters;
use super::error::ApiResult;
use super::networks::{AttachmentView, attachment_view};
use crate::daemon::Daemon;
use crate::store::{ClusterState, Task};

/// A task as the API shows it: bollard's model lacks `NetworksAttachments`.
#[derive(Serialize)]
pub struct TaskView {
    #[serde(flatten)]
    task: bollard::models::Task,
    #[serde(rename = "NetworksAttachments", skip_serializing_if = "Vec::is_empty")]
    networks_attachments: Vec<AttachmentView>,
}

/// The `filters` query parameter.
#[derive(Deserialize)]
pub struct ListQuery {
    filters: Option<String>,
}

const TASK_FILTERS: &[&str] = &[
    "_up-to-date",
    "desired-state",
    "id",
    "label",
    "name",
    "node",
    "service",
];

/// `GET /tasks`
pub async fn list(
    State(daemon): State<Arc<Daemon>>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Vec<TaskView>>> {
    let manager = super::manager(&daemon).await?;
    let filters = Filters::parse(query.filters.as_deref(), TASK_FILTERS)?;
    let applied = manager.store.read();
    let state = &applied.state;
    let tasks = state
        .tasks
        .values()
        .filter(|t| matches(state, t, &filters))
        .map(|t| to_model(state, t))
        .collect();
    Ok(Json(tasks))
}

fn matches(state: &ClusterState, task: &Task, filters: &Filters) -> bool {
    let service = state.services.get(&task.service_id);
    let service_name = service
        .and_then(|s| s.spec.name.as_deref())
        .unwrap_or_default();
    let node = task.node_id.as_ref().and_then(|id| state.nodes.get(id));
    let hostname = node
        .and_then(|n| n.description.hostname.as_deref())
        .unwrap_or_default();
    let name = task_name(state, task);
    filters.accepts("id", |id| task.id.starts_with(id))
        && filters.accepts("service", |s| {
            task.service_id.starts_with(s) || service_name == s
        })
        && filters.accepts("node", |n| {
            task.node_id.as_deref().is_some_and(|id| id.starts_with(n)) || hostname == n
        })
        && filters.accepts("desired-state", |d| {
            d == task.desired_state.to_string()
                || (d == "accepted" && task.desired_state == TaskState::RUNNING)
        })
        && filters.accepts("name", |n| name.starts_with(n))
        && filters.accepts("_up-to-date", |_| {
            service.is_none_or(|s| task.generation == s.generation)
        })
        // A task carries its service's labels (swarmkit's `ServiceAnnotations`): `docker stack
        // ps` finds a stack's tasks by them.
        && filters.accepts_labels(service.and_then(|s| s.spec.labels.as_ref()))
}

/// Docker's task name: `<service>.<slot>` or, for a global service, `<service>.<node ID>`.
pub(super) fn task_name(state: &ClusterState, task: &Task) -> String {
    let service = state.services.get(&task.service_id);
    task.name(
        service
            .and_then(|s| s.spec.name.as_deref())
            .unwrap_or_default(),
    )
}

/// Finds a task by ID or unique ID prefix, as docker does.
pub fn find<'a>(state: &'a ClusterState, id: &str) -> ApiResult<&'a Task> {
    super::lookup::find(&state.tasks, id, "task", |_| None)
}

/// `GET /tasks/{id}`
pub async fn inspect(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskView>> {
    let manager = super::manager(&daemon).await?;
    let applied = manager.store.read();
    let state = &applied.state;
    let task = find(state, &id)?;
    Ok(Json(to_model(state, task)))
}

fn to_model(state: &ClusterState, task: &Task) -> TaskView {
    let networks_attachments = state
        .attachments(task)
        .into_iter()
        .map(|(network, attachment)| attachment_view(network, attachment))
        .collect();
    let task = bollard::models::Task {
        id: Some(task.id.clone()),
        version: Some(ObjectVersion {
            index: Some(task.meta.version),
        }),
        created_at: Some(task.meta.created_at.clone()),
        updated_at: Some(task.meta.updated_at.clone()),
        name: Some(task_name(state, task)),
        labels: Some(Default::default()),
        spec: Some(task.spec.clone()),
        service_id: Some(task.service_id.clone()),
        slot: (task.slot > 0).then_some(task.slot as i64),
        node_id: task.node_id.clone(),
        assigned_generic_resources: None,
        status: Some(task.status.clone()),
        desired_state: Some(task.desired_state),
        job_iteration: None,
    };
    TaskView {
        task,
        networks_attachments,
    }
}
