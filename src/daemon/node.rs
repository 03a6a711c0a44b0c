//! This node in a swarm: what it keeps on disk, its agent, and its manager while it has that
//! role. Promotion and demotion start and stop the manager here, as the agent reports them.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::agent::{self, AgentConfig, AgentEvent, NodeNetwork, Worker};
use crate::background::Background;
use crate::exec::Executor;
use crate::fsutil;
use crate::manager::{Manager, ManagerConfig};
use crate::pki::{NodeCredentials, NodeIdentity};
use crate::rpc::proto::{Failure, Request, Response};
use crate::rpc::{Connection, Tls};
use crate::store::RaftId;

/// How long joining, or becoming a voter, may take.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What a node keeps about its own membership.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct LocalState {
    pub(super) node_id: String,
    /// Set while the node is a manager.
    pub(super) raft_id: Option<RaftId>,
    pub(super) advertise_ip: IpAddr,
    pub(super) advertise_port: Option<u16>,
    pub(super) listen_addr: SocketAddr,
    /// The managers' control addresses, to find one after a restart.
    pub(super) managers: Vec<String>,
}

pub(super) fn swarm_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("swarm")
}

pub(super) fn state_file(data_dir: &Path) -> PathBuf {
    swarm_dir(data_dir).join("state.json")
}

pub(super) fn certificates_dir(data_dir: &Path) -> PathBuf {
    swarm_dir(data_dir).join("certificates")
}

pub(super) fn raft_dir(data_dir: &Path) -> PathBuf {
    swarm_dir(data_dir).join("raft")
}

pub(super) fn remove_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

pub(super) fn new_raft_id() -> RaftId {
    loop {
        let id = rand::random::<u64>();
        if id != 0 {
            return id;
        }
    }
}

/// This node as a member of a swarm: always an agent, a manager too while it has that role.
pub struct SwarmNode {
    /// The node's ID (the CN of its certificate).
    pub node_id: String,
    /// The IP other nodes reach this one at.
    pub advertise_ip: IpAddr,
    pub(super) advertise_port: Option<u16>,
    /// Where the control port listens; a port of 0 becomes the one first bound, kept after.
    pub(super) listen_addr: Mutex<SocketAddr>,
    pub(super) data_dir: PathBuf,
    pub(super) tls: Arc<Tls>,
    pub(super) manager: RwLock<Option<Arc<Manager>>>,
    pub(super) managers: Mutex<Vec<String>>,
    pub(super) executor: Arc<dyn Executor>,
    /// The node's overlays.
    pub network: Arc<NodeNetwork>,
    pub(super) background: Background,
}

impl SwarmNode {
    /// The manager this node runs, if it is one now.
    pub fn manager(&self) -> Option<Arc<Manager>> {
        self.manager
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The managers' control addresses as this node last heard them.
    pub fn managers(&self) -> Vec<String> {
        self.managers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn set_manager(&self, manager: Option<Arc<Manager>>) {
        *self.manager.write().unwrap_or_else(|p| p.into_inner()) = manager;
    }

    pub(super) fn save_state(&self) -> anyhow::Result<()> {
        let state = LocalState {
            node_id: self.node_id.clone(),
            raft_id: self.manager().map(|m| m.raft_id),
            advertise_ip: self.advertise_ip,
            advertise_port: self.advertise_port,
            listen_addr: *self.listen_addr.lock().unwrap_or_else(|p| p.into_inner()),
            managers: self.managers(),
        };
        fsutil::write_atomic(
            &state_file(&self.data_dir),
            &serde_json::to_vec_pretty(&state)?,
            0o600,
        )?;
        Ok(())
    }

    /// Starts this node's manager on the control port; `raft_id` names its Raft member.
    pub(super) async fn start_manager(&self, raft_id: RaftId) -> anyhow::Result<Arc<Manager>> {
        let listen_addr = *self.listen_addr.lock().unwrap_or_else(|p| p.into_inner());
        let listener = TcpListener::bind(listen_addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen_addr}: {e}"))?;
        let bound = listener.local_addr()?;
        *self.listen_addr.lock().unwrap_or_else(|p| p.into_inner()) = bound;
        let port = bound.port();
        let control_addr = SocketAddr::new(self.advertise_ip, self.advertise_port.unwrap_or(port));
        Manager::start(ManagerConfig {
            node_id: self.node_id.clone(),
            raft_id,
            control_addr,
            listener,
            raft_dir: raft_dir(&self.data_dir),
            tls: self.tls.clone(),
        })
        .await
    }

    /// Becomes a manager of an existing swarm: an empty store, then a voter once the leader
    /// has added it (which replicates the swarm's state here).
    pub(super) async fn become_manager(&self) -> anyhow::Result<()> {
        remove_dir(&raft_dir(&self.data_dir))?;
        let manager = self.start_manager(new_raft_id()).await?;
        if let Err(e) = self.ask_to_vote(&manager).await {
            manager.shutdown().await;
            return Err(e);
        }
        self.set_manager(Some(manager));
        self.save_state()?;
        tracing::info!(node = %self.node_id, "this node is now a manager");
        Ok(())
    }

    async fn ask_to_vote(&self, manager: &Manager) -> anyhow::Result<()> {
        let request = Request::AddVoter {
            raft_id: manager.raft_id,
            addr: manager.control_addr.to_string(),
        };
        let deadline = Instant::now() + JOIN_TIMEOUT;
        let mut leader = None;
        while Instant::now() < deadline {
            let candidates: Vec<String> = Option::take(&mut leader)
                .into_iter()
                .chain(self.managers())
                .collect();
            for addr in candidates {
                let answer = async {
                    let mut connection =
                        Connection::connect(&addr, self.tls.client_config(), JOIN_TIMEOUT).await?;
                    anyhow::Ok(
                        connection
                            .call::<Request, Response>(&request, JOIN_TIMEOUT)
                            .await?,
                    )
                };
                match answer.await {
                    Ok(Response::Done) => return Ok(()),
                    Ok(Response::Failed(Failure::NotLeader { leader: Some(at) })) => {
                        leader = Some(at);
                        break;
                    }
                    Ok(other) => {
                        tracing::debug!(manager = %addr, "not added to Raft yet: {other:?}")
                    }
                    Err(e) => tracing::debug!(manager = %addr, "not added to Raft yet: {e}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!("no leader added this manager to Raft within {JOIN_TIMEOUT:?}")
    }

    /// Stops being a manager: the leader has taken this node out of Raft.
    async fn stop_manager(&self) -> anyhow::Result<()> {
        let manager = self
            .manager
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(manager) = manager {
            manager.shutdown().await;
        }
        remove_dir(&raft_dir(&self.data_dir))?;
        self.save_state()?;
        tracing::info!(node = %self.node_id, "this node is now a worker");
        Ok(())
    }

    /// Runs the agent, and follows what it reports.
    pub(super) fn start_agent(self: &Arc<Self>) {
        let (events, mut received) = mpsc::channel(8);
        let (reports, reported) = mpsc::unbounded_channel();
        let config = AgentConfig {
            worker: Worker::new(self.executor.clone(), self.network.clone(), reports),
            network: self.network.clone(),
            certificates_dir: certificates_dir(&self.data_dir),
            tls: self.tls.clone(),
            managers: self.managers(),
            manager: self.manager().is_some(),
        };
        self.background.spawn(agent::run(config, reported, events));
        let node = self.clone();
        self.background.spawn(async move {
            while let Some(event) = received.recv().await {
                if let Err(e) = node.follow(event).await {
                    tracing::error!("cannot follow the swarm's change: {e:#}");
                }
            }
        });
    }

    async fn follow(&self, event: AgentEvent) -> anyhow::Result<()> {
        match event {
            AgentEvent::Managers(managers) => {
                *self.managers.lock().unwrap_or_else(|p| p.into_inner()) = managers;
                self.save_state()
            }
            AgentEvent::Role { manager: true } if self.manager().is_none() => {
                self.become_manager().await
            }
            AgentEvent::Role { manager: false } if self.manager().is_some() => {
                self.stop_manager().await
            }
            AgentEvent::Role { .. } => Ok(()),
        }
    }

    /// Stops the agent and the manager; the membership stays on disk.
    pub async fn shutdown(&self) {
        self.background.stop().await;
        if let Some(manager) = self.manager() {
            manager.shutdown().await;
        }
    }
}

/// What this host brings to any swarm it is in.
#[derive(Clone)]
pub struct Host {
    /// Root of the node's durable state.
    pub data_dir: PathBuf,
    /// The node's name (`node ls`, `node.hostname` constraints).
    pub hostname: String,
    /// Runs the node's tasks.
    pub executor: Arc<dyn Executor>,
    /// Whether this node carries overlay traffic (builds devices, runs the engine).
    pub data_plane: bool,
}

/// The parts every way into a swarm shares.
pub(super) struct Membership {
    pub(super) node_id: String,
    pub(super) credentials: NodeCredentials,
    pub(super) advertise_ip: IpAddr,
    pub(super) advertise_port: Option<u16>,
    pub(super) listen_addr: SocketAddr,
    pub(super) managers: Vec<String>,
}

pub(super) fn node_from(host: &Host, membership: Membership) -> anyhow::Result<Arc<SwarmNode>> {
    let cluster_id = NodeIdentity::from_cert_pem(&membership.credentials.cert_pem)?.cluster_id;
    let tls = Arc::new(Tls::new(&membership.credentials, &cluster_id)?);
    let network = NodeNetwork::new(
        &membership.node_id,
        membership.advertise_ip,
        host.data_dir.join("netns"),
        host.data_plane,
    );
    let executor = host.executor.for_node(&membership.node_id);
    Ok(Arc::new(SwarmNode {
        node_id: membership.node_id,
        advertise_ip: membership.advertise_ip,
        advertise_port: membership.advertise_port,
        listen_addr: Mutex::new(membership.listen_addr),
        data_dir: host.data_dir.clone(),
        executor,
        tls,
        manager: RwLock::new(None),
        managers: Mutex::new(membership.managers),
        network,
        background: Background::default(),
    }))
}
