//! The one redb database a manager keeps its Raft log, vote and state machine in.
//!
//! redb commits are durable (fsynced) before they return, so whatever Raft is told was written
//! survives a crash, and each commit is atomic, so a crash never leaves half a change.

use std::path::Path;
use std::sync::Arc;

use openraft::AnyError;
use redb::{Database, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Log entries by index.
pub const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// The vote and the last purged log ID.
pub const LOG_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
/// Cluster objects by `kind/id`.
pub const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
/// Last applied log ID, membership, and the current snapshot.
pub const MACHINE_META: TableDefinition<&str, &[u8]> = TableDefinition::new("machine_meta");

/// Opens (creating if needed) the database and every table, so readers never find one missing.
pub fn open(path: &Path) -> anyhow::Result<Arc<Database>> {
    let db = Database::create(path)?;
    let txn = db.begin_write()?;
    txn.open_table(LOG)?;
    txn.open_table(LOG_META)?;
    txn.open_table(OBJECTS)?;
    txn.open_table(MACHINE_META)?;
    txn.commit()?;
    Ok(Arc::new(db))
}

/// Wraps any error for openraft's storage errors.
pub fn any<E: std::error::Error + 'static>(e: E) -> AnyError {
    AnyError::new(&e)
}

/// Encodes a stored value. JSON keeps the files readable when debugging a cluster.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, AnyError> {
    serde_json::to_vec(value).map_err(any)
}

/// Decodes a stored value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AnyError> {
    serde_json::from_slice(bytes).map_err(any)
}

/// Reads and decodes one value of a string-keyed table.
pub fn get<T: DeserializeOwned>(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
) -> Result<Option<T>, AnyError> {
    let txn = db.begin_read().map_err(any)?;
    let table = txn.open_table(table).map_err(any)?;
    let value = table.get(key).map_err(any)?;
    value.map(|v| decode(v.value())).transpose()
}
