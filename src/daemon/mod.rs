//! `shoal daemon`: one per host. It serves the Docker Engine API on a unix socket and, once the
//! node is in a swarm, runs its part of the cluster.

pub mod host;
pub mod node;
pub mod settings;
pub mod swarm;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use tokio::sync::RwLock;

use crate::exec::{DockerExecutor, Executor, ProcessExecutor};
use crate::manager::Manager;
use node::{Host, SwarmNode};
use swarm::SwarmError;

/// How tasks are run on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExecutorChoice {
    /// Docker when its socket answers, else `process`.
    Auto,
    /// Programs in their own namespaces; needs no container engine.
    Process,
    /// Containers of a Docker engine.
    Docker,
}

/// The flags of `shoal daemon`.
#[derive(Args, Debug, Clone)]
pub struct DaemonArgs {
    /// Unix socket serving the Docker Engine API (swarm subset).
    #[arg(long, default_value = "/run/shoal/shoal.sock")]
    pub socket: PathBuf,
    /// Where the node keeps everything that must survive a restart.
    #[arg(long, default_value = "/var/lib/shoal")]
    pub data_dir: PathBuf,
    /// The node's name in `node ls` and `node.hostname` constraints [default: the kernel's hostname].
    #[arg(long)]
    pub hostname: Option<String>,
    /// How tasks run.
    #[arg(long, value_enum, default_value_t = ExecutorChoice::Auto)]
    pub executor: ExecutorChoice,
    /// The Docker engine used by the docker executor.
    #[arg(long, default_value = "unix:///var/run/docker.sock")]
    pub docker_host: String,
    /// The binary whose `shim` subcommand runs each task [default: this one]. Tests that run
    /// daemons inside a test binary point it at the real `shoal`.
    #[arg(long, hide = true)]
    pub shim: Option<PathBuf>,
    /// Follow route tables but build no devices and run no overlay engine: for tests that run
    /// several nodes in one network namespace.
    #[arg(long, hide = true)]
    pub no_data_plane: bool,
}

/// What every API handler shares: this node's configuration and its swarm membership.
pub struct Daemon {
    /// This host: its name, its data, its executor.
    pub host: Host,
    /// The membership: `None` while the node is in no swarm. Init, join and leave hold the
    /// write lock, so two of them never interleave.
    swarm: RwLock<Option<Arc<SwarmNode>>>,
}

impl Daemon {
    /// This node's membership, if it is in a swarm.
    pub async fn swarm(&self) -> Option<Arc<SwarmNode>> {
        self.swarm.read().await.clone()
    }

    /// The manager this node runs, if it is one.
    pub async fn manager(&self) -> Option<Arc<Manager>> {
        self.swarm().await.and_then(|node| node.manager())
    }

    /// Creates a swarm with this node as its first manager.
    pub async fn init_swarm(
        &self,
        request: bollard::models::SwarmInitRequest,
    ) -> Result<Arc<SwarmNode>, SwarmError> {
        let mut membership = self.swarm.write().await;
        if membership.is_some() {
            return Err(SwarmError::AlreadyInSwarm);
        }
        let node = swarm::init(&self.host, request).await?;
        tracing::info!(node = %node.node_id, "swarm initialised; this node is its manager");
        *membership = Some(node.clone());
        Ok(node)
    }

    /// Joins a swarm through one of its managers.
    pub async fn join_swarm(
        &self,
        request: bollard::models::SwarmJoinRequest,
        availability: Option<bollard::models::NodeSpecAvailabilityEnum>,
    ) -> Result<Arc<SwarmNode>, SwarmError> {
        let mut membership = self.swarm.write().await;
        if membership.is_some() {
            return Err(SwarmError::AlreadyInSwarm);
        }
        let node = swarm::join(&self.host, request, availability).await?;
        *membership = Some(node.clone());
        Ok(node)
    }

    /// Leaves the swarm and forgets its state.
    pub async fn leave_swarm(&self, force: bool) -> Result<(), SwarmError> {
        let mut membership = self.swarm.write().await;
        let node = membership.as_ref().ok_or(SwarmError::NotInSwarm)?;
        swarm::leave(node, force).await?;
        tracing::info!("left the swarm");
        *membership = None;
        Ok(())
    }

    async fn shutdown(&self) {
        if let Some(node) = self.swarm.write().await.take() {
            node.shutdown().await;
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(args: DaemonArgs) -> anyhow::Result<()> {
    run_until(args, shutdown_signal()).await
}

/// Runs the daemon until `shutdown` completes (tests run several in one process this way).
pub async fn run_until(
    args: DaemonArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)?;
    let hostname = match args.hostname.clone() {
        Some(name) => name,
        None => nix::unistd::gethostname()?.to_string_lossy().into_owned(),
    };
    let executor = choose_executor(&args).await?;
    let host = Host {
        data_dir: args.data_dir,
        hostname,
        executor,
        data_plane: !args.no_data_plane,
    };
    let membership = swarm::restore(&host).await?;
    if let Some(node) = &membership {
        tracing::info!(node = %node.node_id, manager = node.manager().is_some(), "back in the swarm");
    }
    tracing::info!(socket = %args.socket.display(), hostname = %host.hostname, "shoal daemon starting");
    let daemon = Arc::new(Daemon {
        host,
        swarm: RwLock::new(membership),
    });

    let listener = bind_socket(&args.socket)?;
    let served = crate::api::serve(listener, daemon.clone(), shutdown).await;
    daemon.shutdown().await;
    let _ = std::fs::remove_file(&args.socket);
    tracing::info!("shoal daemon stopped");
    served
}

/// The executor tasks run with: docker's when asked for (it must answer) or, with `auto`, when
/// it answers at `--docker-host`; else the process executor.
async fn choose_executor(args: &DaemonArgs) -> anyhow::Result<Arc<dyn Executor>> {
    if args.executor != ExecutorChoice::Process {
        match DockerExecutor::connect(&args.docker_host).await {
            Ok(docker) => return Ok(Arc::new(docker)),
            Err(e) if args.executor == ExecutorChoice::Docker => {
                anyhow::bail!("--executor docker: {e}")
            }
            Err(e) => tracing::info!("no Docker engine ({e}): tasks run as processes"),
        }
    }
    let root = args.data_dir.join("tasks");
    let executor = match &args.shim {
        Some(shim) => ProcessExecutor::with_shim(root, shim.clone())?,
        None => ProcessExecutor::new(root)?,
    };
    Ok(Arc::new(executor))
}

/// Binds the API socket, replacing a stale socket file but never a live daemon's.
fn bind_socket(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("another daemon is already serving {}", path.display());
        }
        std::fs::remove_file(path)?;
    }
    tokio::net::UnixListener::bind(path)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", path.display()))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the daemon with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        daemon: DaemonArgs,
    }

    fn args(extra: &[&str], data_dir: &Path) -> DaemonArgs {
        let dead = data_dir.join("no-engine.sock");
        let mut argv = vec![
            "shoal".to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--docker-host".into(),
            format!("unix://{}", dead.display()),
        ];
        argv.extend(extra.iter().map(|a| a.to_string()));
        Command::parse_from(argv).daemon
    }

    #[tokio::test]
    async fn auto_settles_for_processes_without_an_engine_and_docker_insists_on_one() {
        let dir = tempfile::tempdir().unwrap();
        let auto = choose_executor(&args(&[], dir.path())).await.unwrap();
        assert!(
            !auto.attaches_after_start(),
            "the process executor prepares namespaces"
        );
        let Err(e) = choose_executor(&args(&["--executor", "docker"], dir.path())).await else {
            panic!("no engine answers, so no docker executor");
        };
        assert!(
            e.to_string()
                .starts_with("--executor docker: the Docker engine: cannot reach"),
            "{e}"
        );
    }
}
