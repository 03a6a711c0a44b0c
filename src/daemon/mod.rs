//! `shoal daemon`: one per host. It serves the Docker Engine API on a unix socket and, once the
//! node is in a swarm, runs its part of the cluster.

pub mod host;
pub mod settings;
pub mod swarm;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::sync::RwLock;

use crate::manager::Manager;
use swarm::{SwarmError, SwarmNode};

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
}

/// The executor chosen at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Executor {
    /// Tasks are programs in their own namespaces.
    Process,
    /// Tasks are Docker containers.
    Docker,
}

/// What every API handler shares: this node's configuration and its swarm membership.
pub struct Daemon {
    /// The node's name.
    pub hostname: String,
    /// Root of the node's durable state.
    pub data_dir: PathBuf,
    /// How tasks run here.
    pub executor: Executor,
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
        let node = swarm::init(&self.data_dir, &self.hostname, request).await?;
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
        let node = swarm::join(&self.data_dir, &self.hostname, request, availability).await?;
        *membership = Some(node.clone());
        Ok(node)
    }

    /// Leaves the swarm and forgets its state.
    pub async fn leave_swarm(&self, force: bool) -> Result<(), SwarmError> {
        let mut membership = self.swarm.write().await;
        let node = membership.as_ref().ok_or(SwarmError::NotInSwarm)?;
        swarm::leave(&self.data_dir, node, force).await?;
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
    let hostname = match args.hostname {
        Some(name) => name,
        None => nix::unistd::gethostname()?.to_string_lossy().into_owned(),
    };
    let executor = choose_executor(args.executor, &args.docker_host).await?;
    let membership = swarm::restore(&args.data_dir).await?;
    if let Some(node) = &membership {
        tracing::info!(node = %node.node_id, manager = node.manager().is_some(), "back in the swarm");
    }
    let daemon = Arc::new(Daemon {
        hostname,
        data_dir: args.data_dir,
        executor,
        swarm: RwLock::new(membership),
    });
    tracing::info!(socket = %args.socket.display(), hostname = %daemon.hostname, ?executor, "shoal daemon starting");

    let listener = bind_socket(&args.socket)?;
    let served = crate::api::serve(listener, daemon.clone(), shutdown).await;
    daemon.shutdown().await;
    let _ = std::fs::remove_file(&args.socket);
    tracing::info!("shoal daemon stopped");
    served
}

/// `auto` picks Docker only when its engine answers.
async fn choose_executor(choice: ExecutorChoice, docker_host: &str) -> anyhow::Result<Executor> {
    match choice {
        ExecutorChoice::Process => Ok(Executor::Process),
        ExecutorChoice::Docker => Ok(Executor::Docker),
        ExecutorChoice::Auto if docker_answers(docker_host).await => Ok(Executor::Docker),
        ExecutorChoice::Auto => Ok(Executor::Process),
    }
}

async fn docker_answers(docker_host: &str) -> bool {
    let Some(path) = docker_host.strip_prefix("unix://") else {
        return false;
    };
    if !Path::new(path).exists() {
        return false;
    }
    let Ok(docker) = bollard::Docker::connect_with_unix(path, 2, bollard::API_DEFAULT_VERSION)
    else {
        return false;
    };
    tokio::time::timeout(Duration::from_secs(2), docker.ping())
        .await
        .is_ok_and(|r| r.is_ok())
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
