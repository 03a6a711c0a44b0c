//! The docker executor: each task is a container of a Docker engine, reached through bollard.
//!
//! A container is created with network mode `none` and labels naming its node, service and
//! task (see [`container`]); the agent attaches its namespace to the overlays once it runs.
//! The engine keeps everything: which containers a node has (found by label, so a restarted
//! daemon re-adopts its own and never starts duplicates), how they ended, and their logs.
//! Restarting is the orchestrator's decision, so no container has a restart policy. Images are
//! never pulled: no registry is assumed reachable, and a missing image fails the task with the
//! engine's "No such image" answer.

mod container;
mod logs;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerInspectResponse, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListVolumesOptions, PruneVolumesOptions,
    RemoveContainerOptions, RemoveVolumeOptions, StopContainerOptions, WaitContainerOptions,
};
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::{
    ExecError, Executor, ExitStatus, LogLine, LogOptions, TaskRunState, TaskStart, Volume,
};

/// How long a request to the engine may take to be answered (a stop takes its grace period
/// more).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the engine has to answer at start-up before `auto` settles for the process executor.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause before asking again after the engine failed to answer a wait (it may be restarting).
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Lines buffered between a log follower and its reader.
const FOLLOW_BUFFER: usize = 1024;

/// Runs tasks as containers of a Docker engine.
#[derive(Clone)]
pub struct DockerExecutor {
    docker: Docker,
    /// The engine's address, for messages.
    host: String,
    /// The node whose tasks these are; the host's executor (volumes only) has none and holds no
    /// tasks.
    node_id: Option<String>,
    /// Container IDs by task ID, as created or found: a lookup by label is a filtered list of
    /// every container on the engine, which each call on a task would otherwise make. Shared by
    /// the executors of one engine; a container found gone is forgotten.
    known: Arc<Mutex<HashMap<String, String>>>,
}

impl DockerExecutor {
    /// Connects to the engine at `host` (`unix:///path`, or `tcp://` / `http://` for one on
    /// the network) and settles the API version with it; fails if it does not answer soon.
    pub async fn connect(host: &str) -> Result<DockerExecutor, ExecError> {
        let unreachable = |e: &dyn std::fmt::Display| {
            ExecError::EngineUnreachable(format!("cannot reach {host}: {e}"))
        };
        let timeout = REQUEST_TIMEOUT.as_secs();
        let version = bollard::API_DEFAULT_VERSION;
        let docker = if host.starts_with("unix://") || host.starts_with('/') {
            Docker::connect_with_unix(host, timeout, version)
        } else {
            Docker::connect_with_http(&host.replacen("tcp://", "http://", 1), timeout, version)
        }
        .map_err(|e| unreachable(&e))?;
        let negotiated = tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| unreachable(&"no answer"))?
            .map_err(|e| unreachable(&e))?;
        let version = negotiated.client_version();
        tracing::info!(engine = host, api = %version, "Docker engine connected");
        Ok(DockerExecutor {
            docker: negotiated,
            host: host.to_string(),
            node_id: None,
            known: Arc::default(),
        })
    }

    fn node_id(&self) -> Result<&str, ExecError> {
        self.node_id.as_deref().ok_or_else(|| {
            ExecError::InvalidSpec(
                "this executor belongs to no swarm node: it runs no tasks".into(),
            )
        })
    }

    /// The engine's error, in the engine's words where it gave some.
    fn error(&self, e: DockerError) -> ExecError {
        match e {
            DockerError::DockerResponseServerError {
                status_code,
                message,
            } => ExecError::Engine {
                status: status_code,
                message,
            },
            other => ExecError::EngineUnreachable(format!("{}: {other}", self.host)),
        }
    }

    /// The containers of this node (of task `task_id` only, if given), stopped ones too.
    async fn containers(
        &self,
        task_id: Option<&str>,
    ) -> Result<Vec<bollard::models::ContainerSummary>, ExecError> {
        let Some(node_id) = &self.node_id else {
            return Ok(Vec::new());
        };
        let options = ListContainersOptions {
            all: true,
            filters: Some(container::label_filter(node_id, task_id)),
            ..Default::default()
        };
        let found = self.docker.list_containers(Some(options)).await;
        found.map_err(|e| self.error(e))
    }

    fn known(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ID of task `task_id`'s container.
    async fn container(&self, task_id: &str) -> Result<String, ExecError> {
        if let Some(id) = self.known().get(task_id) {
            return Ok(id.clone());
        }
        let found = self.containers(Some(task_id)).await?;
        let id = found
            .into_iter()
            .find_map(|c| c.id)
            .ok_or_else(|| ExecError::NotFound(task_id.into()))?;
        self.known().insert(task_id.to_string(), id.clone());
        Ok(id)
    }

    /// Task `task_id`'s container is gone: removed, or the engine said 404.
    fn forget(&self, task_id: &str) {
        self.known().remove(task_id);
    }

    /// The error for a task whose container the engine no longer has.
    fn gone(&self, task_id: &str) -> ExecError {
        self.forget(task_id);
        ExecError::NotFound(task_id.into())
    }

    async fn inspect(&self, task_id: &str) -> Result<ContainerInspectResponse, ExecError> {
        let id = self.container(task_id).await?;
        match self.docker.inspect_container(&id, None).await {
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(self.gone(task_id)),
            other => other.map_err(|e| self.error(e)),
        }
    }

    /// Task IDs by the volumes their containers mount, over every node's tasks on the engine.
    async fn volume_users(&self) -> Result<HashMap<String, Vec<String>>, ExecError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![container::TASK_LABEL.to_string()],
            )])),
            ..Default::default()
        };
        let found = self.docker.list_containers(Some(options)).await;
        let mut users: HashMap<String, Vec<String>> = HashMap::new();
        for summary in found.map_err(|e| self.error(e))? {
            let task = summary
                .labels
                .as_ref()
                .and_then(|l| l.get(container::TASK_LABEL))
                .cloned()
                .unwrap_or_default();
            for name in summary
                .mounts
                .iter()
                .flatten()
                .filter_map(|m| m.name.clone())
            {
                users.entry(name).or_default().push(task.clone());
            }
        }
        Ok(users)
    }

    /// Whether the engine speaks API 1.42 or later, where pruning takes named volumes only
    /// when asked with `all`.
    fn prunes_anonymous_only(&self) -> bool {
        let version = self.docker.client_version();
        (version.major_version, version.minor_version) >= (1, 42)
    }
}

/// The engine's `volume`, mounted by the tasks `used_by`, as the executors show volumes.
fn volume_of(volume: bollard::models::Volume, used_by: Vec<String>) -> Volume {
    let created_at = volume
        .created_at
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Volume {
        name: volume.name,
        mountpoint: PathBuf::from(volume.mountpoint),
        created_at,
        used_by,
    }
}

impl Executor for DockerExecutor {
    fn for_node(&self, node_id: &str) -> Arc<dyn Executor> {
        Arc::new(DockerExecutor {
            node_id: Some(node_id.to_string()),
            ..self.clone()
        })
    }

    fn attaches_after_start(&self) -> bool {
        true
    }

    fn start<'a>(&'a self, task: &'a TaskStart<'a>) -> BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(async move {
            let body = container::create_body(task, self.node_id()?);
            let options = CreateContainerOptions {
                name: Some(task.name.to_string()),
                platform: String::new(),
            };
            let created = match self.docker.create_container(Some(options), body).await {
                Ok(created) => created,
                Err(DockerError::DockerResponseServerError {
                    status_code: 409, ..
                }) => return Err(ExecError::AlreadyExists(task.task_id.into())),
                Err(e) => return Err(self.error(e)),
            };
            self.known()
                .insert(task.task_id.to_string(), created.id.clone());
            if let Err(e) = self.docker.start_container(&created.id, None).await {
                // The container keeps the engine's error and exit code: `wait` reports them.
                tracing::debug!(task = task.task_id, "the container did not start: {e}");
            }
            Ok(())
        })
    }

    fn container_id<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, String> {
        Box::pin(async move {
            let found = self.container(task_id).await;
            found.unwrap_or_else(|_| task_id.to_string())
        })
    }

    fn status<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, TaskRunState> {
        Box::pin(async move {
            match self.inspect(task_id).await {
                Ok(inspected) => inspected
                    .state
                    .as_ref()
                    .map_or(TaskRunState::Unknown, container::run_state),
                Err(ExecError::NotFound(_)) => TaskRunState::Unknown,
                Err(e) => {
                    tracing::warn!(task = task_id, "cannot tell the task's state: {e}");
                    TaskRunState::Unknown
                }
            }
        })
    }

    fn wait<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Result<ExitStatus, ExecError>> {
        Box::pin(async move {
            loop {
                let id = self.container(task_id).await?;
                let options = WaitContainerOptions {
                    condition: "not-running".into(),
                };
                let mut waited = self.docker.wait_container(&id, Some(options));
                match waited.next().await {
                    // A non-zero exit comes as an error of its own.
                    Some(Ok(_) | Err(DockerError::DockerContainerWaitError { .. })) | None => {}
                    Some(Err(DockerError::DockerResponseServerError {
                        status_code: 404, ..
                    })) => return Err(self.gone(task_id)),
                    Some(Err(e)) => {
                        tracing::warn!(task = task_id, "waiting for the container: {e}");
                        tokio::time::sleep(RETRY_PAUSE).await;
                        continue;
                    }
                }
                let inspected = self.inspect(task_id).await?;
                let Some(state) = inspected.state else {
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                };
                match container::run_state(&state) {
                    // Started again behind the agent's back: wait for that run to end.
                    TaskRunState::Running { .. } => tokio::time::sleep(RETRY_PAUSE).await,
                    // Ended, or never started (the daemon died between create and start).
                    _ => return Ok(container::exit_status(&state)),
                }
            }
        })
    }

    fn stop<'a>(
        &'a self,
        task_id: &'a str,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(async move {
            let id = match self.container(task_id).await {
                Err(ExecError::NotFound(_)) => return Ok(()),
                other => other?,
            };
            // The engine counts whole seconds; round up rather than cut the grace short.
            let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
            let options = StopContainerOptions {
                signal: None,
                t: Some(i32::try_from(secs).unwrap_or(i32::MAX)),
            };
            let docker = self.docker.clone().with_timeout(REQUEST_TIMEOUT + grace);
            match docker.stop_container(&id, Some(options)).await {
                // 304: it was not running.
                Err(DockerError::DockerResponseServerError {
                    status_code: 304, ..
                })
                | Ok(()) => Ok(()),
                Err(DockerError::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    self.forget(task_id);
                    Ok(())
                }
                Err(e) => Err(self.error(e)),
            }
        })
    }

    fn remove<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(async move {
            let id = match self.container(task_id).await {
                Err(ExecError::NotFound(_)) => return Ok(()),
                other => other?,
            };
            // Like swarm's agent: forced, and the task's anonymous volumes go with it.
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                link: false,
            };
            match self.docker.remove_container(&id, Some(options)).await {
                Err(DockerError::DockerResponseServerError {
                    status_code: 404, ..
                })
                | Ok(()) => {
                    self.forget(task_id);
                    Ok(())
                }
                Err(e) => Err(self.error(e)),
            }
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, ExecError>> {
        Box::pin(async move {
            let mut ids: Vec<String> = self
                .containers(None)
                .await?
                .into_iter()
                .filter_map(|c| c.labels?.remove(container::TASK_LABEL))
                .collect();
            ids.sort();
            ids.dedup();
            Ok(ids)
        })
    }

    fn logs<'a>(
        &'a self,
        task_id: &'a str,
        options: &'a LogOptions,
    ) -> BoxFuture<'a, Result<Vec<LogLine>, ExecError>> {
        Box::pin(async move {
            let id = self.container(task_id).await?;
            let mut frames = self.docker.logs(&id, Some(logs::query(options, false)));
            let mut lines = Vec::new();
            while let Some(frame) = frames.next().await {
                let frame = match frame {
                    Ok(frame) => frame,
                    Err(DockerError::DockerResponseServerError {
                        status_code: 404, ..
                    }) => return Err(self.gone(task_id)),
                    Err(e) => return Err(self.error(e)),
                };
                lines.extend(logs::line(frame).filter(|l| logs::admits(options, l)));
            }
            Ok(lines)
        })
    }

    fn follow_logs<'a>(
        &'a self,
        task_id: &'a str,
        options: LogOptions,
    ) -> BoxFuture<'a, Result<mpsc::Receiver<LogLine>, ExecError>> {
        Box::pin(async move {
            let id = self.container(task_id).await?;
            let (tx, rx) = mpsc::channel(FOLLOW_BUFFER);
            // The engine ends the stream once the container has exited and its last line sent.
            let mut frames = self.docker.logs(&id, Some(logs::query(&options, true)));
            let task_id = task_id.to_string();
            tokio::spawn(async move {
                while let Some(frame) = frames.next().await {
                    let line = match frame {
                        Ok(frame) => logs::line(frame),
                        Err(e) => {
                            tracing::warn!(task = task_id, "following the container's logs: {e}");
                            break;
                        }
                    };
                    let Some(line) = line.filter(|l| logs::admits(&options, l)) else {
                        continue;
                    };
                    if tx.send(line).await.is_err() {
                        break; // nobody reads any more
                    }
                }
            });
            Ok(rx)
        })
    }

    fn netns_path<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Option<PathBuf>> {
        Box::pin(async move {
            let inspected = self.inspect(task_id).await.ok()?;
            match inspected.state.as_ref().map(container::run_state)? {
                TaskRunState::Running { pid } => Some(PathBuf::from(format!("/proc/{pid}/ns/net"))),
                _ => None,
            }
        })
    }

    fn volumes(&self) -> BoxFuture<'_, Result<Vec<Volume>, ExecError>> {
        Box::pin(async move {
            let listed = self
                .docker
                .list_volumes(None::<ListVolumesOptions>)
                .await
                .map_err(|e| self.error(e))?;
            let mut users = self.volume_users().await?;
            let mut volumes: Vec<Volume> = listed
                .volumes
                .into_iter()
                .flatten()
                .map(|v| {
                    let used_by = users.remove(&v.name).unwrap_or_default();
                    volume_of(v, used_by)
                })
                .collect();
            volumes.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(volumes)
        })
    }

    fn volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Volume, ExecError>> {
        Box::pin(async move {
            let volume = match self.docker.inspect_volume(name).await {
                Err(DockerError::DockerResponseServerError {
                    status_code: 404, ..
                }) => return Err(ExecError::NoSuchVolume(name.into())),
                other => other.map_err(|e| self.error(e))?,
            };
            let mut users = self.volume_users().await?;
            Ok(volume_of(volume, users.remove(name).unwrap_or_default()))
        })
    }

    fn create_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Volume, ExecError>> {
        Box::pin(async move {
            let request = VolumeCreateRequest {
                name: Some(name.to_string()),
                ..Default::default()
            };
            let created = self.docker.create_volume(request).await;
            let volume = created.map_err(|e| self.error(e))?;
            Ok(volume_of(volume, Vec::new()))
        })
    }

    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(async move {
            let options = RemoveVolumeOptions { force: false };
            match self.docker.remove_volume(name, Some(options)).await {
                Err(DockerError::DockerResponseServerError {
                    status_code: 404, ..
                }) => Err(ExecError::NoSuchVolume(name.into())),
                other => other.map_err(|e| self.error(e)),
            }
        })
    }

    fn prune_volumes(&self) -> BoxFuture<'_, Result<(Vec<String>, u64), ExecError>> {
        Box::pin(async move {
            let filters = self
                .prunes_anonymous_only()
                .then(|| HashMap::from([("all".to_string(), vec!["true".to_string()])]));
            let options = PruneVolumesOptions { filters };
            let pruned = self.docker.prune_volumes(Some(options)).await;
            let pruned = pruned.map_err(|e| self.error(e))?;
            let freed = pruned.space_reclaimed.unwrap_or(0).max(0) as u64;
            Ok((pruned.volumes_deleted.unwrap_or_default(), freed))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_engine_that_does_not_answer_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let host = format!("unix://{}/docker.sock", dir.path().display());
        let Err(e) = DockerExecutor::connect(&host).await else {
            panic!("nothing listens at {host}");
        };
        assert!(matches!(e, ExecError::EngineUnreachable(_)), "{e:?}");
        assert!(
            e.to_string().contains(&format!("cannot reach {host}")),
            "{e}"
        );
    }
}
