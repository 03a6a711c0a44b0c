//! The Raft state machine: applies committed proposals to [`ClusterState`] and keeps it durable.
//!
//! The state lives in memory for readers (the API, the reconcile loops) and in redb for restarts;
//! every apply batch is one durable redb transaction together with the last applied log ID, so a
//! restart resumes exactly where the disk says it stopped.

use std::io::Cursor;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError, StoredMembership,
};
use redb::{Database, ReadableTable};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::db::{self, MACHINE_META, OBJECTS, any};
use super::objects::{Kind, ObjectKey};
use super::raft::{ApplyResult, Entry, LogId, RaftId, RaftPeer, StorageError, TypeConfig};
use super::state::{Change, ClusterState};

const LAST_APPLIED: &str = "last_applied";
const MEMBERSHIP: &str = "membership";
const SNAPSHOT_META: &str = "snapshot_meta";
const SNAPSHOT_DATA: &str = "snapshot_data";

/// Raft membership as stored with the state.
pub type Membership = StoredMembership<RaftId, RaftPeer>;

/// The applied state and the log position it reflects, kept together under one lock so a
/// snapshot always pairs a state with the exact log ID it includes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Applied {
    /// Every cluster object.
    pub state: ClusterState,
    /// The last log entry applied to `state`.
    pub last_applied: Option<LogId>,
    /// The last membership applied.
    pub membership: Membership,
}

/// Read access to the applied state, shared by everything that is not Raft.
#[derive(Clone)]
pub struct StateReader {
    applied: Arc<RwLock<Applied>>,
    changes: watch::Receiver<u64>,
}

impl StateReader {
    /// Locks the state for reading; hold the guard briefly.
    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        self.applied
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The index of the last applied log entry, changing with every apply.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}

/// The state machine openraft drives.
pub struct StateMachine {
    db: Arc<Database>,
    applied: Arc<RwLock<Applied>>,
    changes: watch::Sender<u64>,
}

impl StateMachine {
    /// Loads the state machine from `db`, which [`db::open`] prepared.
    pub fn load(db: Arc<Database>) -> anyhow::Result<Self> {
        let applied = load_applied(&db)?;
        let index = applied.last_applied.map_or(0, |id| id.index);
        Ok(StateMachine {
            db,
            applied: Arc::new(RwLock::new(applied)),
            changes: watch::channel(index).0,
        })
    }

    /// A reader of this machine's state.
    pub fn reader(&self) -> StateReader {
        StateReader {
            applied: self.applied.clone(),
            changes: self.changes.subscribe(),
        }
    }

    fn lock(&self) -> std::sync::RwLockWriteGuard<'_, Applied> {
        self.applied
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn storage_key(key: &ObjectKey) -> String {
    format!("{:?}/{}", key.kind, key.id)
}

fn load_applied(db: &Database) -> anyhow::Result<Applied> {
    let mut applied = Applied {
        last_applied: db::get(db, MACHINE_META, LAST_APPLIED)?,
        membership: db::get(db, MACHINE_META, MEMBERSHIP)?.unwrap_or_default(),
        ..Default::default()
    };
    let txn = db.begin_read()?;
    for row in txn.open_table(OBJECTS)?.iter()? {
        let (_, value) = row?;
        applied.state.insert(db::decode(value.value())?);
    }
    Ok(applied)
}

/// Writes `applied`'s position and the objects `changes` touched, in `txn`.
fn persist(
    txn: &redb::WriteTransaction,
    applied: &Applied,
    changes: &[ObjectKey],
) -> Result<(), AnyError> {
    let mut objects = txn.open_table(OBJECTS).map_err(any)?;
    for key in changes {
        let name = storage_key(key);
        match applied.state.object(key) {
            Some(object) => objects
                .insert(name.as_str(), db::encode(&object)?.as_slice())
                .map_err(any)?,
            None => objects.remove(name.as_str()).map_err(any)?,
        };
    }
    let mut meta = txn.open_table(MACHINE_META).map_err(any)?;
    meta.insert(LAST_APPLIED, db::encode(&applied.last_applied)?.as_slice())
        .map_err(any)?;
    meta.insert(MEMBERSHIP, db::encode(&applied.membership)?.as_slice())
        .map_err(any)?;
    Ok(())
}

fn changed_keys(change: &Change) -> ObjectKey {
    match change {
        Change::Put { object, .. } => object.key(),
        Change::Delete { key } => key.clone(),
        Change::TaskStatus { task_id, .. }
        | Change::TaskDesired { task_id, .. }
        | Change::TaskAllocate { task_id, .. }
        | Change::TaskAssign { task_id, .. } => ObjectKey {
            kind: Kind::Task,
            id: task_id.clone(),
        },
        Change::NodeIngress { node_id, .. } | Change::NodeBalancer { node_id, .. } => ObjectKey {
            kind: Kind::Node,
            id: node_id.clone(),
        },
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), StorageError> {
        let applied = self.lock();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // The write lock is held through the durable commit, so readers never see state the
        // disk does not have.
        let db = self.db.clone();
        let mut applied = self.lock();
        let mut results = Vec::new();
        let mut touched = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let result = match entry.payload {
                EntryPayload::Blank => Ok(()),
                EntryPayload::Normal(proposal) => {
                    let result = applied.state.apply(&proposal, entry.log_id.index);
                    if result.is_ok() {
                        touched.extend(proposal.changes.iter().map(changed_keys));
                    }
                    result
                }
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Ok(())
                }
            };
            results.push(result);
        }
        let commit = || -> Result<(), AnyError> {
            let txn = db.begin_write().map_err(any)?;
            persist(&txn, &applied, &touched)?;
            txn.commit().map_err(any)
        };
        if let Err(e) = commit() {
            // Put memory back in step with the disk before anyone reads it; Raft stops on this
            // error and will re-apply from the durable position after a restart.
            if let Ok(on_disk) = load_applied(&db) {
                *applied = on_disk;
            }
            return Err(StorageIOError::write_state_machine(e).into());
        }
        let index = applied.last_applied.map_or(0, |id| id.index);
        drop(applied);
        self.changes.send_replace(index);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            applied: self.applied.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<RaftId, RaftPeer>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let signature = Some(meta.signature());
        let install = || -> Result<Applied, AnyError> {
            let received: Applied = db::decode(&data)?;
            let txn = self.db.begin_write().map_err(any)?;
            txn.delete_table(OBJECTS).map_err(any)?;
            let keys: Vec<ObjectKey> = received.state.objects().map(|o| o.key()).collect();
            persist(&txn, &received, &keys)?;
            save_snapshot(&txn, meta, &data)?;
            txn.commit().map_err(any)?;
            Ok(received)
        };
        let received = install().map_err(|e| StorageIOError::write_snapshot(signature, e))?;
        let index = received.last_applied.map_or(0, |id| id.index);
        *self.lock() = received;
        self.changes.send_replace(index);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let read = || -> Result<Option<Snapshot<TypeConfig>>, AnyError> {
            let Some(meta) = db::get(&self.db, MACHINE_META, SNAPSHOT_META)? else {
                return Ok(None);
            };
            let txn = self.db.begin_read().map_err(any)?;
            let table = txn.open_table(MACHINE_META).map_err(any)?;
            let data = table
                .get(SNAPSHOT_DATA)
                .map_err(any)?
                .map(|v| v.value().to_vec())
                .unwrap_or_default();
            Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            }))
        };
        read().map_err(|e| StorageIOError::read_snapshot(None, e).into())
    }
}

fn save_snapshot(
    txn: &redb::WriteTransaction,
    meta: &SnapshotMeta<RaftId, RaftPeer>,
    data: &[u8],
) -> Result<(), AnyError> {
    let mut table = txn.open_table(MACHINE_META).map_err(any)?;
    table
        .insert(SNAPSHOT_META, db::encode(meta)?.as_slice())
        .map_err(any)?;
    table.insert(SNAPSHOT_DATA, data).map_err(any)?;
    Ok(())
}

/// Builds a snapshot from the state as it is when building starts.
pub struct SnapshotBuilder {
    db: Arc<Database>,
    applied: Arc<RwLock<Applied>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let build = || -> Result<Snapshot<TypeConfig>, AnyError> {
            let (data, meta) = {
                let applied = self
                    .applied
                    .read()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let index = applied.last_applied.map_or(0, |id| id.index);
                let meta = SnapshotMeta {
                    last_log_id: applied.last_applied,
                    last_membership: applied.membership.clone(),
                    snapshot_id: format!("{index}-{}", rand::random::<u32>()),
                };
                (db::encode(&*applied)?, meta)
            };
            let txn = self.db.begin_write().map_err(any)?;
            save_snapshot(&txn, &meta, &data)?;
            txn.commit().map_err(any)?;
            Ok(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            })
        };
        build().map_err(|e| StorageIOError::write_snapshot(None, e).into())
    }
}
