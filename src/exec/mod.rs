//! Executors: what runs a node's tasks.
//!
//! [`Executor`] is the executor-neutral interface the agent drives; [`ProcessExecutor`] is the
//! embedded default, which needs no container engine: a task is a host program running in its
//! own PID, network, UTS and mount namespaces, supervised by a per-task shim process
//! (`shoal shim`, see [`shim`]) so that tasks and their exit codes outlive a daemon restart.
//! [`DockerExecutor`] runs each task as a container of a Docker engine.

pub mod docker;
pub mod launch;
pub mod logs;
pub mod mounts;
pub mod process;
pub mod resolv;
pub mod shim;
mod taskdir;
pub mod volumes;

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bollard::models::{Limit, TaskSpecContainerSpec};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use docker::DockerExecutor;
pub use launch::LaunchSpec;
pub use logs::{LogLine, LogOptions, LogStream};
pub use process::ProcessExecutor;
pub use volumes::Volume;

/// What runs tasks on this node. Every method is keyed by the task's id, which is also how a
/// restarted daemon finds the tasks that kept running without it ([`Executor::list`]).
///
/// The futures are boxed so the daemon can hold whichever executor it picked at start-up as a
/// `dyn Executor`.
pub trait Executor: Send + Sync {
    /// The executor for the tasks of the swarm node `node_id`: the tasks it starts carry that
    /// node's ID, and [`Executor::list`] gives only those, so nodes sharing one engine (lab hosts
    /// on one Docker) keep to their own.
    fn for_node(&self, node_id: &str) -> Arc<dyn Executor>;

    /// Whether the agent attaches a task to its networks only once it runs, in the namespace
    /// [`Executor::netns_path`] gives (a container engine makes the namespace itself), rather
    /// than preparing a namespace for [`TaskStart::netns`].
    fn attaches_after_start(&self) -> bool {
        false
    }

    /// Starts a task; returns once it runs (or has already failed to: see
    /// [`Executor::status`]).
    fn start<'a>(&'a self, task: &'a TaskStart<'a>) -> BoxFuture<'a, Result<(), ExecError>>;

    /// The task's container ID as its engine knows it (docker's `ContainerStatus.ContainerID`);
    /// the task's own ID where no engine runs it.
    fn container_id<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, String> {
        Box::pin(async move { task_id.to_string() })
    }

    /// Where the task is in its life, as far as this node can tell now.
    fn status<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, TaskRunState>;

    /// Waits until the task has exited and says how.
    fn wait<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Result<ExitStatus, ExecError>>;

    /// Asks the task to stop (SIGTERM), kills it (SIGKILL) if it is still running after
    /// `grace`, and returns once it has exited.
    fn stop<'a>(
        &'a self,
        task_id: &'a str,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), ExecError>>;

    /// Kills the task if it still runs and forgets it, logs included.
    fn remove<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Result<(), ExecError>>;

    /// The ids of every task this executor holds, running or not: after a daemon restart the
    /// agent re-adopts those it still wants and removes the others.
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, ExecError>>;

    /// The task's output so far.
    fn logs<'a>(
        &'a self,
        task_id: &'a str,
        options: &'a LogOptions,
    ) -> BoxFuture<'a, Result<Vec<LogLine>, ExecError>>;

    /// The task's output so far, then each new line as it is written; the channel closes once
    /// the task has exited and its last line was sent.
    fn follow_logs<'a>(
        &'a self,
        task_id: &'a str,
        options: LogOptions,
    ) -> BoxFuture<'a, Result<mpsc::Receiver<LogLine>, ExecError>>;

    /// The task's network namespace (`/proc/<pid>/ns/net`) while it runs, for attaching it to
    /// networks.
    fn netns_path<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Option<PathBuf>>;

    /// The node's named volumes, with the tasks that mount them.
    fn volumes(&self) -> BoxFuture<'_, Result<Vec<Volume>, ExecError>>;

    /// The named volume `name`.
    fn volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Volume, ExecError>>;

    /// Makes the named volume `name`, unless it exists.
    fn create_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Volume, ExecError>>;

    /// Removes the named volume `name` and its content; refused while a task mounts it.
    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ExecError>>;

    /// Removes every named volume no task mounts; returns their names and the bytes freed.
    fn prune_volumes(&self) -> BoxFuture<'_, Result<(Vec<String>, u64), ExecError>>;
}

/// A task to start, as the agent describes it.
#[derive(Debug, Clone, Copy)]
pub struct TaskStart<'a> {
    /// The task's ID, by which every other call names it.
    pub task_id: &'a str,
    /// Docker's name for the task: `<service>.<slot>.<task id>` (the node's ID in place of the
    /// slot for a global service's).
    pub name: &'a str,
    /// Its service's ID.
    pub service_id: &'a str,
    /// Its service's name.
    pub service_name: &'a str,
    /// What to run.
    pub spec: &'a TaskSpecContainerSpec,
    /// The resource limits of the task's spec.
    pub limits: Option<&'a Limit>,
    /// The hostname when the spec names none (a container engine's default, the container's
    /// ID, is kept instead).
    pub default_hostname: &'a str,
    /// A prepared network namespace to run the task in (a bind mounted namespace file, see
    /// [`crate::net::plumb::NetnsFile`], already attached to the task's networks, so the
    /// network is ready before the program starts); `None` gives the task a fresh one with only
    /// `lo`. Always `None` for an executor that [attaches after start](Executor::attaches_after_start).
    pub netns: Option<&'a Path>,
    /// The embedded DNS addresses the task's `/etc/resolv.conf` names (see [`resolv`]); none
    /// keeps the host's file.
    pub nameservers: &'a [IpAddr],
}

impl<'a> TaskStart<'a> {
    /// A task of no service in particular, named by its ID, with no limits, namespace or
    /// nameservers, whose hostname defaults to its ID.
    pub fn new(task_id: &'a str, spec: &'a TaskSpecContainerSpec) -> TaskStart<'a> {
        TaskStart {
            task_id,
            name: task_id,
            service_id: "",
            service_name: "",
            spec,
            limits: None,
            default_hostname: task_id,
            netns: None,
            nameservers: &[],
        }
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskRunState {
    /// The task exists but its program has not been started yet.
    Starting,
    /// The program runs (or has just exited and its exit is being recorded).
    Running {
        /// The program's process id in the host's PID namespace.
        pid: u32,
    },
    /// The program has exited.
    Exited(ExitStatus),
    /// No such task, or its state could not be read (the reason is logged).
    Unknown,
}

/// How a task's program ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code, shell-style: the program's own code, or 128 + the signal that killed it;
    /// 126 or 127 when the program could not be executed, 125 when the task could not be set up.
    pub exit_code: i32,
    /// The signal that killed the program, if one did.
    pub signal: Option<i32>,
    /// When the exit was recorded.
    #[serde(with = "taskdir::rfc3339")]
    pub finished_at: SystemTime,
    /// Why the task failed without its program ever running, or why its exit is not known
    /// exactly (its supervisor died); `None` for an ordinary exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ExitStatus {
    /// Whether the task completed successfully (docker's `complete`, else `failed`).
    pub fn success(&self) -> bool {
        self.exit_code == 0 && self.signal.is_none() && self.error.is_none()
    }
}

/// Why an executor operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The spec cannot describe a task this executor can run.
    #[error("invalid ContainerSpec: {0}")]
    InvalidSpec(String),
    /// Task ids name directories, so only a safe alphabet is accepted.
    #[error(
        "invalid task id {0:?}: use 1 to 128 letters, digits, '_', '-' or '.', not starting with '.'"
    )]
    InvalidTaskId(String),
    /// `start` was called twice for one task.
    #[error("task {0} already exists")]
    AlreadyExists(String),
    /// The executor holds no such task.
    #[error("no such task: {0}")]
    NotFound(String),
    /// No volume has that name.
    #[error("get {0}: no such volume")]
    NoSuchVolume(String),
    /// A volume to remove is mounted by tasks.
    #[error("remove {name}: volume is in use - [{}]", tasks.join(", "))]
    VolumeInUse {
        /// The volume.
        name: String,
        /// The tasks mounting it.
        tasks: Vec<String>,
    },
    /// The shim could not be started or died before starting the task.
    #[error("task {task}: the shim failed: {message}")]
    Shim {
        /// The task being started.
        task: String,
        /// What the shim said (its diagnostics), or how it ended.
        message: String,
    },
    /// The task survived SIGKILL for a while: it is stuck in the kernel (e.g. on a dead mount).
    #[error("task {task} has not exited {waited:?} after SIGKILL")]
    StopTimeout {
        /// The task being stopped.
        task: String,
        /// How long was waited after SIGKILL.
        waited: Duration,
    },
    /// The container engine refused, in its own words (docker's "No such image: ...").
    #[error("{message}")]
    Engine {
        /// The engine's HTTP status (404 for something missing, 409 for a conflict).
        status: u16,
        /// What the engine said.
        message: String,
    },
    /// The container engine could not be reached or answered nonsense.
    #[error("the Docker engine: {0}")]
    EngineUnreachable(String),
    /// A file operation on the task's state failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and on which path.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
}

impl ExecError {
    /// Wraps an I/O error with what was being done.
    fn io(context: impl Into<String>, source: io::Error) -> ExecError {
        ExecError::Io {
            context: context.into(),
            source,
        }
    }
}
