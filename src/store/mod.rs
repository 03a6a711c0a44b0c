//! The replicated store: cluster objects applied through Raft (openraft), durable in redb.
//!
//! Writers propose batches of [`Change`]s; nothing writes the state around Raft. Readers look at
//! the applied state through [`Store::read`].

// openraft's and redb's error types are large by design and fixed by their traits; boxing them
// at every boundary of this module would buy nothing on a control-plane path.
#![allow(clippy::result_large_err)]

mod db;
mod log;
mod machine;
pub mod objects;
pub mod raft;
pub mod state;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::RwLockReadGuard;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};

pub use machine::Applied;
pub use objects::{
    Cluster, Kind, ManagerRecord, Meta, Network, NetworkAddress, Node, Object, ObjectKey,
    RootCaMaterial, Service, ServiceEndpoint, Task, TaskNetwork,
};
pub use raft::{RaftId, RaftPeer};
pub use state::{Change, ClusterState, Conflict, Precondition, Proposal};

/// File name of the database inside a manager's data directory.
const DB_FILE: &str = "raft.redb";

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The proposal was applied and refused; nothing changed.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// This manager is not the leader and cannot take writes right now.
    #[error("this manager is not the Raft leader; the cluster may be electing one, try again")]
    NotLeader,
    /// Raft itself failed (storage error or shutdown).
    #[error("the Raft store failed: {0}")]
    Raft(String),
}

/// A manager's handle on the replicated store.
pub struct Store {
    raft: openraft::Raft<raft::TypeConfig>,
    reader: machine::StateReader,
    /// Kept to know when Raft's tasks have let go of the database; taken at shutdown.
    db: std::sync::Mutex<Option<std::sync::Arc<redb::Database>>>,
}

impl Store {
    /// Opens the store kept in `dir` and starts this manager's Raft member `raft_id`, reaching
    /// the other members through `network`.
    pub async fn open<N>(dir: &Path, raft_id: RaftId, network: N) -> anyhow::Result<Store>
    where
        N: openraft::RaftNetworkFactory<raft::TypeConfig>,
    {
        std::fs::create_dir_all(dir)?;
        let db = db::open(&dir.join(DB_FILE))?;
        let machine = machine::StateMachine::load(db.clone())?;
        let reader = machine.reader();
        let config = std::sync::Arc::new(raft::config().validate()?);
        let log = log::LogStore::new(db.clone());
        let raft = openraft::Raft::new(raft_id, config, network, log, machine).await?;
        Ok(Store {
            raft,
            reader,
            db: std::sync::Mutex::new(Some(db)),
        })
    }

    /// Makes this member the whole membership of a new cluster. Done once, at `swarm init`.
    pub async fn bootstrap(&self, raft_id: RaftId, me: RaftPeer) -> anyhow::Result<()> {
        self.raft
            .initialize(BTreeMap::from([(raft_id, me)]))
            .await?;
        Ok(())
    }

    /// Waits until some member leads, and returns it.
    pub async fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<RaftId> {
        let metrics = self.raft.wait(Some(timeout));
        let metrics = metrics
            .metrics(|m| m.current_leader.is_some(), "a Raft leader")
            .await?;
        metrics
            .current_leader
            .ok_or_else(|| anyhow::anyhow!("no Raft leader"))
    }

    /// The Raft member itself: for answering peers' RPCs and changing membership.
    pub fn raft(&self) -> &openraft::Raft<raft::TypeConfig> {
        &self.raft
    }

    /// The member that leads now, as far as this member knows.
    pub fn leader(&self) -> Option<RaftId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Replicates and applies `proposal`; returns once it is applied here.
    pub async fn propose(&self, proposal: Proposal) -> Result<(), StoreError> {
        match self.raft.client_write(proposal).await {
            Ok(written) => Ok(written.data?),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(StoreError::NotLeader)
            }
            Err(e) => Err(StoreError::Raft(e.to_string())),
        }
    }

    /// The applied state; hold the guard briefly (it blocks applying).
    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        self.reader.read()
    }

    /// Changes whenever a log entry is applied: what reconcile loops and long polls wait on.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reader.changes()
    }

    /// Stops this Raft member; the data stays on disk.
    /// Returns once the database is closed, so the same directory can be opened again at once.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("Raft did not shut down cleanly: {e}");
        }
        let Some(db) = self.db.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        // openraft's state-machine worker lets go of the storage just after the core stops.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::sync::Arc::strong_count(&db) > 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if std::sync::Arc::strong_count(&db) > 1 {
            tracing::warn!("the Raft database is still in use after shutdown");
        }
    }
}

#[cfg(test)]
mod no_peers;

#[cfg(test)]
mod tests {
    use super::*;

    use state::test_node as node;

    /// A store of one member that leads.
    async fn bootstrapped(dir: &Path) -> Store {
        let store = Store::open(dir, 7, no_peers::NoPeers).await.unwrap();
        store.bootstrap(7, RaftPeer::default()).await.unwrap();
        store
            .wait_for_leader(Duration::from_secs(10))
            .await
            .unwrap();
        store
    }

    async fn open_leader(dir: &Path) -> Store {
        let store = Store::open(dir, 7, no_peers::NoPeers).await.unwrap();
        store
            .wait_for_leader(Duration::from_secs(10))
            .await
            .unwrap();
        store
    }

    #[tokio::test]
    async fn writes_survive_a_restart_and_the_member_leads_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 7, no_peers::NoPeers).await.unwrap();
        store
            .bootstrap(
                7,
                RaftPeer {
                    addr: "127.0.0.1:2377".into(),
                    node_id: "n".into(),
                },
            )
            .await
            .unwrap();
        store
            .wait_for_leader(Duration::from_secs(10))
            .await
            .unwrap();
        store.propose(Proposal::create(node("a"))).await.unwrap();
        let version = store.read().state.nodes["a"].meta.version;
        assert!(version > 0);
        store.shutdown().await;
        drop(store);

        let store = open_leader(dir.path()).await;
        assert_eq!(store.leader(), Some(7));
        assert_eq!(store.read().state.nodes["a"].meta.version, version);
        store.propose(Proposal::create(node("b"))).await.unwrap();
        store.shutdown().await;
    }

    #[tokio::test]
    async fn a_refused_proposal_reports_its_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let store = bootstrapped(dir.path()).await;
        store.propose(Proposal::create(node("a"))).await.unwrap();
        let err = store
            .propose(Proposal::create(node("a")))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict(Conflict::Exists(_))),
            "{err}"
        );
        store.shutdown().await;
    }

    #[tokio::test]
    async fn snapshot_holds_the_state_it_claims() {
        let dir = tempfile::tempdir().unwrap();
        let store = bootstrapped(dir.path()).await;
        store.propose(Proposal::create(node("a"))).await.unwrap();
        store.raft.trigger().snapshot().await.unwrap();
        let metrics = store.raft.wait(Some(Duration::from_secs(10)));
        metrics
            .metrics(|m| m.snapshot.is_some(), "a snapshot")
            .await
            .unwrap();
        let snapshot = store.raft.get_snapshot().await.unwrap().unwrap();
        let applied: Applied = serde_json::from_slice(snapshot.snapshot.get_ref()).unwrap();
        assert!(applied.state.nodes.contains_key("a"));
        assert_eq!(applied.last_applied, snapshot.meta.last_log_id);
        store.shutdown().await;
    }
}
