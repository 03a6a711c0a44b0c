//! The manager side of a node: the replicated store, the control-port service, and the loops
//! that run on the leader (node health, Raft membership).
//!
//! Any manager serves reads from its own store; writes go to the leader, forwarded over the
//! control port when this manager is not it.

pub mod allocator;
mod ca;
pub mod dispatcher;
pub mod endpoint;
mod health;
pub mod ipam;
pub mod logs;
pub mod orchestrator;
pub mod placement;
mod roles;
pub mod routes;
pub mod scheduler;
mod service;
pub mod transport;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use crate::background::Background;
use crate::pki::RootCa;
use crate::rpc::proto::{Failure, Request, Response};
use crate::rpc::{Connection, Tls};
use crate::store::raft::RaftId;
use crate::store::{Cluster, Proposal, Store, StoreError};
use dispatcher::Dispatcher;
use transport::{PeerHealth, RaftTransport};

/// How long a write keeps trying to find a leader before giving up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a forwarded write may take once the leader is reached.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// What a manager needs to start.
pub struct ManagerConfig {
    /// This node's ID.
    pub node_id: String,
    /// This manager's Raft member ID.
    pub raft_id: RaftId,
    /// Where other nodes reach this manager (`ip:port`).
    pub control_addr: SocketAddr,
    /// The bound control port.
    pub listener: TcpListener,
    /// The Raft database's directory.
    pub raft_dir: std::path::PathBuf,
    /// This node's TLS identity.
    pub tls: Arc<Tls>,
}

/// A running manager.
pub struct Manager {
    /// This node's ID.
    pub node_id: String,
    /// This manager's Raft member ID.
    pub raft_id: RaftId,
    /// Where other nodes reach this manager.
    pub control_addr: SocketAddr,
    /// The replicated store.
    pub store: Store,
    /// This node's TLS identity.
    pub tls: Arc<Tls>,
    root_ca: OnceLock<RootCa>,
    health: Arc<PeerHealth>,
    dispatcher: Dispatcher,
    /// Where `service logs` meets the nodes' task output.
    pub logs: logs::LogBroker,
    background: Background,
}

impl Manager {
    /// Opens the store, serves the control port and starts the leader's loops.
    pub async fn start(config: ManagerConfig) -> anyhow::Result<Arc<Manager>> {
        let health = Arc::new(PeerHealth::default());
        let transport = RaftTransport::new(config.tls.clone(), health.clone());
        let store = Store::open(&config.raft_dir, config.raft_id, transport).await?;
        let manager = Arc::new(Manager {
            node_id: config.node_id,
            raft_id: config.raft_id,
            control_addr: config.control_addr,
            store,
            tls: config.tls,
            root_ca: OnceLock::new(),
            health,
            dispatcher: Dispatcher::default(),
            logs: logs::LogBroker::default(),
            background: Background::default(),
        });
        let stopping = manager.background.stopping();
        manager
            .background
            .spawn(service::serve(manager.clone(), config.listener, stopping));
        manager.background.spawn(health::run(manager.clone()));
        manager.background.spawn(roles::run(manager.clone()));
        let (orchestrate, place) = (orchestrator::reconcile, placement::place);
        manager.background.spawn(manager.clone().reconcile_loop(
            "orchestrator",
            orchestrator::TICK,
            orchestrate,
        ));
        manager.background.spawn(manager.clone().reconcile_loop(
            "placement",
            placement::TICK,
            place,
        ));
        Ok(manager)
    }

    /// Stops serving and stops Raft; the data stays on disk.
    pub async fn shutdown(&self) {
        self.background.stop().await;
        self.store.shutdown().await;
    }

    /// Whether this manager leads Raft now.
    pub fn is_leader(&self) -> bool {
        self.store.leader() == Some(self.raft_id)
    }

    /// The swarm, once this manager's store has it.
    pub fn cluster(&self) -> Option<Cluster> {
        self.store.read().state.cluster().cloned()
    }

    /// Whether the store gives node `node_id` the manager role.
    pub fn node_is_manager(&self, node_id: &str) -> bool {
        self.store
            .read()
            .state
            .nodes
            .get(node_id)
            .is_some_and(|n| n.is_manager())
    }

    /// The swarm's root CA, parsed once from the store.
    pub fn root_ca(&self) -> anyhow::Result<&RootCa> {
        if let Some(ca) = self.root_ca.get() {
            return Ok(ca);
        }
        let cluster = self.cluster().ok_or_else(|| {
            anyhow::anyhow!("this manager has not received the swarm's state yet")
        })?;
        let ca = RootCa::from_pem(&cluster.root_ca.cert_pem, &cluster.root_ca.key_pem)?;
        Ok(self.root_ca.get_or_init(|| ca))
    }

    /// The leader's control address, if a leader is known.
    pub fn leader_addr(&self) -> Option<String> {
        let metrics = self.store.raft().metrics().borrow().clone();
        let leader = metrics.current_leader?;
        metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|peer| peer.addr.clone())
    }

    /// Every manager's control address, from the Raft membership.
    pub fn manager_addrs(&self) -> Vec<String> {
        let metrics = self.store.raft().metrics().borrow().clone();
        metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(_, peer)| peer.addr.clone())
            .collect()
    }

    /// Writes `proposal` through the leader, wherever it is; waits out an election.
    pub async fn propose(&self, proposal: Proposal) -> Result<(), StoreError> {
        let deadline = Instant::now() + WRITE_TIMEOUT;
        loop {
            match self.store.propose(proposal.clone()).await {
                Err(StoreError::NotLeader) => {}
                done => return done,
            }
            if let Some(leader) = self
                .leader_addr()
                .filter(|addr| *addr != self.control_addr.to_string())
            {
                match self.forward(&leader, proposal.clone()).await {
                    Ok(Response::Done) => return Ok(()),
                    Ok(Response::Failed(Failure::Conflict(conflict))) => {
                        return Err(conflict.into());
                    }
                    Ok(other) => tracing::debug!(%leader, "forwarded write not taken: {other:?}"),
                    Err(e) => tracing::debug!(%leader, "cannot forward write: {e}"),
                }
            }
            if Instant::now() >= deadline {
                return Err(StoreError::NotLeader);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs one reconcile loop until aborted: on the leader, after every change to the store and
    /// at least every `tick` (for decisions that wait on the clock), proposes what `decide`
    /// makes of the state. A proposal that conflicts is simply decided again next round.
    pub async fn reconcile_loop(
        self: Arc<Self>,
        name: &'static str,
        tick: Duration,
        decide: fn(&crate::store::ClusterState, std::time::SystemTime) -> Vec<crate::store::Change>,
    ) {
        let mut changes = self.store.changes();
        loop {
            let _ = tokio::time::timeout(tick, changes.changed()).await;
            if !self.is_leader() {
                continue;
            }
            let proposal = {
                let applied = self.store.read();
                Proposal {
                    changes: decide(&applied.state, std::time::SystemTime::now()),
                }
            };
            if !proposal.changes.is_empty() {
                if let Err(e) = self.propose(proposal).await {
                    tracing::debug!(
                        "{name}: changes not applied (the next round decides again): {e}"
                    );
                }
            }
        }
    }

    async fn forward(&self, leader: &str, proposal: Proposal) -> anyhow::Result<Response> {
        let mut connection =
            Connection::connect(leader, self.tls.client_config(), FORWARD_TIMEOUT).await?;
        Ok(connection
            .call(&Request::Propose(proposal), FORWARD_TIMEOUT)
            .await?)
    }
}
