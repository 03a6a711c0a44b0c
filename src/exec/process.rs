//! The process executor: each task is a host program run by its own shim (see [`super::shim`])
//! in its own namespaces. All of a task's state is in its directory under the executor's root,
//! so a restarted daemon picks up where the last one left off: a running task is recognised by
//! its recorded process identities (PID plus start time, so a recycled PID is not mistaken for
//! it), an exited one by its `exit.json`.
//!
//! The shims run outside the daemon's process tree, and must outlive it: under systemd the
//! daemon's unit needs `KillMode=process` (as containerd's has), or stopping the daemon kills
//! every task; and a daemon running as PID 1 of a container needs an init that reaps orphans
//! (`docker run --init`), or exited shims stay zombies.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use nix::sys::signal::Signal;
use tokio::sync::mpsc;

use super::logs::{self, LogLine, LogOptions};
use super::mounts::{self, Source, TaskMount};
use super::resolv;
use super::taskdir::{ProcessId, Started, TaskDir, write_json};
use super::volumes::{self, Volume};
use super::{ExecError, Executor, ExitStatus, LaunchSpec, TaskRunState, TaskStart};
use crate::fsutil::write_atomic;

/// A task with no `started.json` this long after its directory was made never got a shim
/// (the daemon died mid-start, or the shim did before recording itself). A shim records itself
/// within milliseconds.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How often to look again at a task whose shim has not recorded itself yet (no process to
/// wait on exists then).
const STARTING_POLL: Duration = Duration::from_millis(50);
/// How long a SIGKILLed task may take to be gone before `stop` gives up.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines buffered between a log follower and its reader.
const FOLLOW_BUFFER: usize = 1024;

/// Runs tasks as host programs in their own namespaces, each supervised by a shim process.
#[derive(Debug, Clone)]
pub struct ProcessExecutor {
    root: PathBuf,
    /// Named volumes' directories: `volumes` next to `root` (`<data-dir>/volumes`).
    volumes: PathBuf,
    shim: PathBuf,
}

impl ProcessExecutor {
    /// An executor keeping its tasks under `root` (the daemon's `<data-dir>/tasks`) and named
    /// volumes next to it (`<data-dir>/volumes`), whose shim is this very binary (`shoal shim`).
    pub fn new(root: PathBuf) -> Result<Self, ExecError> {
        let shim = std::env::current_exe()
            .map_err(|e| ExecError::io("finding the shoal binary to run shims with", e))?;
        Self::with_shim(root, shim)
    }

    /// An executor whose shim is the `shoal` binary at `shim` (tests point it at the binary
    /// cargo built, as the test binary itself cannot be one).
    pub fn with_shim(root: PathBuf, shim: PathBuf) -> Result<Self, ExecError> {
        // Shims run in "/": a relative root would name another directory for them.
        let root = std::path::absolute(&root)
            .map_err(|e| ExecError::io(format!("resolving {}", root.display()), e))?;
        let volumes = root.with_file_name("volumes");
        Ok(ProcessExecutor {
            root,
            volumes,
            shim,
        })
    }

    /// Starts a task from a launch spec, whose `/etc/resolv.conf` names `nameservers` (none
    /// keeps the host's); returns once its program runs (or its failure to run, such as a
    /// program not found, is recorded as its exit).
    pub async fn launch(
        &self,
        task_id: &str,
        spec: &LaunchSpec,
        nameservers: &[IpAddr],
    ) -> Result<(), ExecError> {
        let dir = self.task_dir(task_id)?;
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| ExecError::io(format!("creating {}", self.root.display()), e))?;
        match DirBuilder::new().mode(0o700).create(dir.path()) {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(ExecError::AlreadyExists(task_id.into()));
            }
            other => {
                other.map_err(|e| ExecError::io(format!("creating {}", dir.path().display()), e))?
            }
        }
        let spec = match provide(&dir, spec, nameservers) {
            Ok(spec) => spec,
            Err(e) => {
                // Nothing runs for this task: forget it, so that a retry can use the same id.
                let _ = fs::remove_dir_all(dir.path());
                return Err(e);
            }
        };
        write_json(&dir.spec(), &spec)
            .map_err(|e| ExecError::io(format!("writing {}", dir.spec().display()), e))?;
        let shim_log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(dir.shim_log())
            .and_then(|log| Ok((log.try_clone()?, log)))
            .map_err(|e| ExecError::io(format!("creating {}", dir.shim_log().display()), e))?;

        // The launching half of the shim exits once the task has started; the supervising half
        // lives on in a session of its own, not a child of the daemon.
        let status = tokio::process::Command::new(&self.shim)
            .arg("shim")
            .arg("--dir")
            .arg(dir.path())
            // Not the daemon's working directory, which the shim would otherwise keep busy.
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(shim_log.0)
            .stderr(shim_log.1)
            .status()
            .await;
        let message = match status {
            Ok(status) if status.success() => return Ok(()),
            Ok(status) => match fs::read_to_string(dir.shim_log()) {
                Ok(said) if !said.trim().is_empty() => said.trim().to_owned(),
                _ => format!("it exited with {status}"),
            },
            Err(e) => format!("running {}: {e}", self.shim.display()),
        };
        // Nothing runs for this task: forget it, so that a retry can use the same id.
        let _ = fs::remove_dir_all(dir.path());
        Err(ExecError::Shim {
            task: task_id.into(),
            message,
        })
    }

    fn task_dir(&self, task_id: &str) -> Result<TaskDir, ExecError> {
        if !valid_task_id(task_id) {
            return Err(ExecError::InvalidTaskId(task_id.into()));
        }
        Ok(TaskDir::new(self.root.join(task_id)))
    }
}

/// Makes what the task's mounts need on the host (its volumes' directories, its resolv.conf
/// naming `nameservers`); returns `spec` with the resolv.conf's mount added.
fn provide(
    dir: &TaskDir,
    spec: &LaunchSpec,
    nameservers: &[IpAddr],
) -> Result<LaunchSpec, ExecError> {
    mounts::make_volumes(&spec.mounts)?;
    let mut spec = spec.clone();
    if let Some(contents) = resolv::contents(nameservers) {
        let path = dir.resolv_conf();
        write_atomic(&path, contents.as_bytes(), 0o644)
            .map_err(|e| ExecError::io(format!("writing {}", path.display()), e))?;
        spec.mounts.push(TaskMount {
            source: Source::Host(path),
            target: PathBuf::from(resolv::TARGET),
            read_only: false,
        });
    }
    Ok(spec)
}

/// SIGTERM, SIGKILL after `grace`, until the task in `dir` has exited.
async fn stop_dir(task_id: &str, dir: &TaskDir, grace: Duration) -> Result<(), ExecError> {
    let program = loop {
        match observe(dir, task_id)? {
            Observed::Missing => return Err(ExecError::NotFound(task_id.into())),
            Observed::Exited(_) => return Ok(()),
            Observed::Starting => tokio::time::sleep(STARTING_POLL).await,
            Observed::Live(Started {
                program: Some(program),
                ..
            }) => break program,
            // The shim is alive but has not forked the program yet: killing the shim
            // stops the task before it runs (a program forked meanwhile dies with it).
            Observed::Live(Started {
                shim,
                program: None,
            }) => {
                signal(&shim, Signal::SIGKILL, task_id)?;
                return kill_wait(dir, task_id).await;
            }
        }
    };
    signal(&program, Signal::SIGTERM, task_id)?;
    if let Ok(waited) = tokio::time::timeout(grace, wait_dir(dir, task_id)).await {
        return waited.map(drop);
    }
    tracing::debug!(
        task = task_id,
        ?grace,
        "task ignored SIGTERM; sending SIGKILL"
    );
    signal(&program, Signal::SIGKILL, task_id)?;
    kill_wait(dir, task_id).await
}

/// Signals `process` if it is still the one recorded.
fn signal(process: &ProcessId, signal: Signal, task_id: &str) -> Result<(), ExecError> {
    match process.pidfd() {
        Some(fd) => fd
            .signal(signal)
            .map_err(|e| ExecError::io(format!("sending {signal} to task {task_id}"), e)),
        None => Ok(()),
    }
}

/// Waits for a SIGKILLed task to be gone.
async fn kill_wait(dir: &TaskDir, task_id: &str) -> Result<(), ExecError> {
    match tokio::time::timeout(KILL_TIMEOUT, wait_dir(dir, task_id)).await {
        Ok(result) => result.map(drop),
        Err(_) => Err(ExecError::StopTimeout {
            task: task_id.into(),
            waited: KILL_TIMEOUT,
        }),
    }
}

/// Task ids become directory names: keep them to a safe alphabet.
fn valid_task_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// What a task's directory says, checked against the live processes.
enum Observed {
    Missing,
    /// No shim has recorded itself yet (and it is not too late for one to).
    Starting,
    /// The shim or the program (or both) still run.
    Live(Started),
    Exited(ExitStatus),
}

fn observe(dir: &TaskDir, task_id: &str) -> Result<Observed, ExecError> {
    let io = |what: &str, path: &Path| {
        let context = format!("task {task_id}: {what} {}", path.display());
        move |e| ExecError::io(context, e)
    };
    let meta = match fs::metadata(dir.path()) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Observed::Missing),
        other => other.map_err(io("reading", dir.path()))?,
    };
    if let Some(exit) = dir.read_exit().map_err(io("reading", &dir.exit()))? {
        return Ok(Observed::Exited(exit));
    }
    let Some(started) = dir.read_started().map_err(io("reading", &dir.started()))? else {
        // The directory last changed when the executor filled it for the shim.
        let made = meta
            .modified()
            .map_err(io("reading the time of", dir.path()))?;
        if made.elapsed().unwrap_or_default() < START_TIMEOUT {
            return Ok(Observed::Starting);
        }
        return Ok(Observed::Exited(ExitStatus {
            exit_code: super::launch::SETUP_FAILED,
            signal: None,
            finished_at: made,
            error: Some("the task's shim never started (see its shim.log)".into()),
        }));
    };
    if started.shim.is_alive() || started.program.is_some_and(|p| p.is_alive()) {
        return Ok(Observed::Live(started));
    }
    // Both gone: the shim may have written exit.json just after the first look.
    if let Some(exit) = dir.read_exit().map_err(io("reading", &dir.exit()))? {
        return Ok(Observed::Exited(exit));
    }
    // The shim died without recording the exit (it was killed, and its program with it by the
    // parent-death signal). Recorded now, so later looks agree on it.
    let lost = ExitStatus {
        exit_code: 128 + Signal::SIGKILL as i32,
        signal: Some(Signal::SIGKILL as i32),
        finished_at: SystemTime::now(),
        error: Some(
            "the task's shim died before recording how the task ended; the task was killed \
             with it (see its shim.log)"
                .into(),
        ),
    };
    dir.write_exit(&lost).map_err(io("writing", &dir.exit()))?;
    Ok(Observed::Exited(lost))
}

/// Waits until the task in `dir` has exited.
async fn wait_dir(dir: &TaskDir, task_id: &str) -> Result<ExitStatus, ExecError> {
    loop {
        match observe(dir, task_id)? {
            Observed::Missing => return Err(ExecError::NotFound(task_id.into())),
            Observed::Exited(status) => return Ok(status),
            Observed::Starting => tokio::time::sleep(STARTING_POLL).await,
            Observed::Live(started) => {
                // The shim exits last (after writing exit.json); the program alone is waited
                // on only if its shim is gone.
                let process = started
                    .shim
                    .pidfd()
                    .or_else(|| started.program.and_then(|p| p.pidfd()));
                if let Some(process) = process {
                    process
                        .exited()
                        .await
                        .map_err(|e| ExecError::io(format!("waiting for task {task_id}"), e))?;
                }
            }
        }
    }
}

impl Executor for ProcessExecutor {
    fn for_node(&self, _node_id: &str) -> Arc<dyn Executor> {
        // The executor's directory is the node's own (one daemon, one data directory).
        Arc::new(self.clone())
    }

    fn start<'a>(&'a self, task: &'a TaskStart<'a>) -> BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(async move {
            let dir = self.task_dir(task.task_id)?;
            let mounts = task.spec.mounts.as_deref().unwrap_or_default();
            let launch = LaunchSpec {
                netns: task.netns.map(Path::to_path_buf),
                mounts: mounts::plan(mounts, &self.volumes, dir.path())?,
                ..LaunchSpec::from_container_spec(task.spec, task.default_hostname)?
            };
            self.launch(task.task_id, &launch, task.nameservers).await
        })
    }

    fn status<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, TaskRunState> {
        Box::pin(async move {
            let observed = self
                .task_dir(task_id)
                .and_then(|dir| observe(&dir, task_id));
            match observed {
                Ok(Observed::Missing) => TaskRunState::Unknown,
                Ok(Observed::Starting | Observed::Live(Started { program: None, .. })) => {
                    TaskRunState::Starting
                }
                Ok(Observed::Live(Started {
                    program: Some(program),
                    ..
                })) => TaskRunState::Running { pid: program.pid },
                Ok(Observed::Exited(status)) => TaskRunState::Exited(status),
                Err(e) => {
                    tracing::warn!(task = task_id, "cannot tell the task's state: {e}");
                    TaskRunState::Unknown
                }
            }
        })
    }

    fn wait<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Result<ExitStatus, ExecError>> {
        Box::pin(async move { wait_dir(&self.task_dir(task_id)?, task_id).await })
    }

    fn stop<'a>(
        &'a self,
        task_id: &'a str,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(async move {
            let dir = self.task_dir(task_id)?;
            stop_dir(task_id, &dir, grace).await
        })
    }

    fn remove<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(async move {
            let dir = self.task_dir(task_id)?;
            // Like `docker rm -f`: whoever wanted a graceful stop has asked for one already.
            stop_dir(task_id, &dir, Duration::ZERO).await?;
            tokio::fs::remove_dir_all(dir.path())
                .await
                .map_err(|e| ExecError::io(format!("removing {}", dir.path().display()), e))
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, ExecError>> {
        Box::pin(async move {
            let entries = match fs::read_dir(&self.root) {
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
                other => other
                    .map_err(|e| ExecError::io(format!("listing {}", self.root.display()), e))?,
            };
            let mut ids: Vec<String> = entries
                .filter_map(Result::ok)
                .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|entry| entry.file_name().into_string().ok())
                .filter(|name| valid_task_id(name))
                .collect();
            ids.sort();
            Ok(ids)
        })
    }

    fn logs<'a>(
        &'a self,
        task_id: &'a str,
        options: &'a LogOptions,
    ) -> BoxFuture<'a, Result<Vec<LogLine>, ExecError>> {
        Box::pin(async move {
            let dir = self.task_dir(task_id)?;
            if !dir.path().is_dir() {
                return Err(ExecError::NotFound(task_id.into()));
            }
            let (path, options) = (dir.log(), options.clone());
            tokio::task::spawn_blocking(move || {
                logs::read(&path, &options)
                    .map_err(|e| ExecError::io(format!("reading {}", path.display()), e))
            })
            .await
            .map_err(|e| ExecError::io("reading logs", std::io::Error::other(e)))?
        })
    }

    fn follow_logs<'a>(
        &'a self,
        task_id: &'a str,
        options: LogOptions,
    ) -> BoxFuture<'a, Result<mpsc::Receiver<LogLine>, ExecError>> {
        Box::pin(async move {
            let dir = self.task_dir(task_id)?;
            if !dir.path().is_dir() {
                return Err(ExecError::NotFound(task_id.into()));
            }
            let (tx, rx) = mpsc::channel(FOLLOW_BUFFER);
            let task_id = task_id.to_owned();
            tokio::spawn(async move {
                let exited = async {
                    // Ends the stream whether the task exited or its directory went away.
                    let _ = wait_dir(&dir, &task_id).await;
                };
                if let Err(e) = logs::follow(dir.path(), &dir.log(), options, exited, tx).await {
                    tracing::warn!(task = task_id, "following the task's logs: {e}");
                }
            });
            Ok(rx)
        })
    }

    fn volumes(&self) -> BoxFuture<'_, Result<Vec<Volume>, ExecError>> {
        Box::pin(async move { volumes::list(&self.volumes, &self.root) })
    }

    fn volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Volume, ExecError>> {
        Box::pin(async move { volumes::get(&self.volumes, &self.root, name) })
    }

    fn create_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Volume, ExecError>> {
        Box::pin(async move { volumes::create(&self.volumes, &self.root, name) })
    }

    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(async move { volumes::remove(&self.volumes, &self.root, name) })
    }

    fn prune_volumes(&self) -> BoxFuture<'_, Result<(Vec<String>, u64), ExecError>> {
        Box::pin(async move { volumes::prune(&self.volumes, &self.root) })
    }

    fn netns_path<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Option<PathBuf>> {
        Box::pin(async move {
            let dir = self.task_dir(task_id).ok()?;
            match observe(&dir, task_id).ok()? {
                Observed::Live(Started {
                    program: Some(program),
                    ..
                }) if program.is_alive() => {
                    Some(PathBuf::from(format!("/proc/{}/ns/net", program.pid)))
                }
                _ => None,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_are_safe_directory_names() {
        assert!(valid_task_id("x1y2z3abcdefghijklmnopqrs"));
        assert!(valid_task_id("web.1.abc-def_0"));
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", &"x".repeat(129)] {
            assert!(!valid_task_id(bad), "{bad:?}");
        }
    }
}
