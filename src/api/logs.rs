//! `GET /services/{id}/logs` and `GET /tasks/{id}/logs`: task output gathered from the nodes
//! that ran the tasks, in docker's multiplexed stream format.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::Response;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::body::flag;
use super::error::{ApiError, ApiResult};
use crate::daemon::Daemon;
use crate::manager::Manager;
use crate::manager::logs::Published;
use crate::rpc::proto::{LogLine, LogSubscription};
use crate::store::{ClusterState, Task};

/// The query of the logs endpoints.
#[derive(Deserialize)]
pub struct LogsQuery {
    stdout: Option<String>,
    stderr: Option<String>,
    follow: Option<String>,
    tail: Option<String>,
    timestamps: Option<String>,
    since: Option<String>,
    details: Option<String>,
}

/// `GET /services/{id}/logs`
pub async fn service(
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
    Query(query): Query<LogsQuery>,
) -> ApiResult<Response> {
    let manager = super::manager(&daemon).await?;
    let tasks = {
        let applied = manager.store.read();
        let service = super::services::find(&applied.state, &name)?;
        let tasks: Vec<Task> = applied
            .state
            .tasks
            .values()
            .filter(|t| t.service_id == service.id)
            .cloned()
            .collect();
        reachable(&applied.state, tasks)
    };
    stream(manager, tasks, query)
}

/// `GET /tasks/{id}/logs`
pub async fn task(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(query): Query<LogsQuery>,
) -> ApiResult<Response> {
    let manager = super::manager(&daemon).await?;
    let tasks = {
        let applied = manager.store.read();
        let task = super::tasks::find(&applied.state, &id)?.clone();
        reachable(&applied.state, vec![task])
    };
    stream(manager, tasks, query)
}

/// The tasks whose node can answer: assigned, and the node up.
fn reachable(state: &ClusterState, tasks: Vec<Task>) -> Vec<Task> {
    tasks
        .into_iter()
        .filter(|t| {
            t.node_id
                .as_ref()
                .and_then(|id| state.nodes.get(id))
                .is_some_and(crate::manager::orchestrator::is_up)
        })
        .collect()
}

fn stream(manager: Arc<Manager>, tasks: Vec<Task>, query: LogsQuery) -> ApiResult<Response> {
    if !manager.is_leader() {
        let leader = manager.leader_addr().unwrap_or_else(|| "unknown".into());
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("service logs are gathered by the swarm's leader; ask the manager at {leader}"),
        ));
    }
    let tail = match query.tail.as_deref() {
        None | Some("" | "all") => None,
        Some(n) => Some(
            n.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid tail value {n:?}")))?,
        ),
    };
    let template = LogSubscription {
        id: 0,
        task_ids: Vec::new(),
        follow: flag(query.follow.as_deref()),
        tail,
        since: query.since.as_deref().and_then(docker_time),
    };
    let mut by_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut service_of = BTreeMap::new();
    for task in &tasks {
        if let Some(node) = &task.node_id {
            by_node
                .entry(node.clone())
                .or_default()
                .push(task.id.clone());
            service_of.insert(task.id.clone(), task.service_id.clone());
        }
    }
    let format = Format {
        stdout: flag(query.stdout.as_deref()),
        stderr: flag(query.stderr.as_deref()),
        timestamps: flag(query.timestamps.as_deref()),
        details: flag(query.details.as_deref()),
        service_of,
    };
    let waiting: BTreeSet<String> = by_node.keys().cloned().collect();
    let (id, received) = manager.logs.subscribe(by_node, template);
    let subscription = Subscription {
        manager,
        id,
        received,
        waiting,
        format,
    };
    let body = Body::from_stream(futures::stream::unfold(subscription, |mut s| async move {
        let frames = s.next_frames().await?;
        Some((Ok::<Bytes, std::io::Error>(frames), s))
    }));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/vnd.docker.raw-stream")
        .body(body)
        .map_err(ApiError::internal)
}

/// `since` as docker sends it (Unix seconds, possibly fractional) or RFC 3339.
fn docker_time(since: &str) -> Option<String> {
    if since.is_empty() || since == "0" {
        return None;
    }
    let at = match since.parse::<f64>() {
        Ok(seconds) => std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(seconds.max(0.0)),
        Err(_) => humantime::parse_rfc3339_weak(since).ok()?,
    };
    Some(crate::store::objects::timestamp(at))
}

/// How lines become docker's stream.
struct Format {
    stdout: bool,
    stderr: bool,
    timestamps: bool,
    details: bool,
    service_of: BTreeMap<String, String>,
}

impl Format {
    /// One frame: an 8-byte header (stream, 0, 0, 0, length) and the line.
    fn frame(&self, node_id: &str, line: &LogLine, out: &mut Vec<u8>) {
        if (line.stderr && !self.stderr) || (!line.stderr && !self.stdout) {
            return;
        }
        let mut payload = String::new();
        if self.timestamps {
            payload.push_str(&line.time);
            payload.push(' ');
        }
        if self.details {
            let service = self
                .service_of
                .get(&line.task_id)
                .map(String::as_str)
                .unwrap_or_default();
            payload.push_str(&format!(
                "com.docker.swarm.node.id={node_id},com.docker.swarm.service.id={service},com.docker.swarm.task.id={} ",
                line.task_id
            ));
        }
        payload.push_str(&line.line);
        payload.push('\n');
        out.push(if line.stderr { 2 } else { 1 });
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload.as_bytes());
    }
}

/// An open subscription feeding one response; closing it (when the client leaves) tells the
/// nodes to stop.
struct Subscription {
    manager: Arc<Manager>,
    id: u64,
    received: mpsc::Receiver<Published>,
    waiting: BTreeSet<String>,
    format: Format,
}

impl Subscription {
    /// The next frames, or None once every node is done.
    async fn next_frames(&mut self) -> Option<Bytes> {
        loop {
            if self.waiting.is_empty() {
                return None;
            }
            let published = self.received.recv().await?;
            if published.done {
                self.waiting.remove(&published.node_id);
            }
            let mut out = Vec::new();
            for line in &published.lines {
                self.format.frame(&published.node_id, line, &mut out);
            }
            if !out.is_empty() {
                return Some(Bytes::from(out));
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.manager.logs.close(self.id);
    }
}
