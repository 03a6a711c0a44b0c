//! The Raft log and vote, durable in redb.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError, Vote};
use redb::{Database, ReadableTable};

use super::db::{self, LOG, LOG_META, any};
use super::raft::{Entry, LogId, RaftId, StorageError, TypeConfig};

const VOTE: &str = "vote";
const LAST_PURGED: &str = "last_purged";

/// The log store; cheap to clone (readers are clones).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    /// A log store over `db`, which [`db::open`] prepared.
    pub fn new(db: Arc<Database>) -> Self {
        LogStore { db }
    }

    fn last_purged(&self) -> Result<Option<LogId>, StorageError> {
        db::get(&self.db, LOG_META, LAST_PURGED).map_err(|e| StorageIOError::read_logs(e).into())
    }

    /// Writes in one durable transaction; `f` gets the log and meta tables.
    fn write(
        &self,
        f: impl FnOnce(
            &mut redb::Table<u64, &[u8]>,
            &mut redb::Table<&str, &[u8]>,
        ) -> Result<(), redb::Error>,
    ) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        {
            let mut log = txn.open_table(LOG)?;
            let mut meta = txn.open_table(LOG_META)?;
            f(&mut log, &mut meta)?;
        }
        txn.commit()?;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let read = || -> Result<Vec<Entry>, openraft::AnyError> {
            let txn = self.db.begin_read().map_err(any)?;
            let table = txn.open_table(LOG).map_err(any)?;
            let mut entries = Vec::new();
            for row in table.range(range).map_err(any)? {
                let (_, value) = row.map_err(any)?;
                entries.push(db::decode(value.value())?);
            }
            Ok(entries)
        };
        read().map_err(|e| StorageIOError::read_logs(e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id = self.last_purged()?;
        let last = || -> Result<Option<LogId>, openraft::AnyError> {
            let txn = self.db.begin_read().map_err(any)?;
            let table = txn.open_table(LOG).map_err(any)?;
            let Some((_, value)) = table.last().map_err(any)? else {
                return Ok(None);
            };
            let entry: Entry = db::decode(value.value())?;
            Ok(Some(entry.log_id))
        };
        let last_log_id = last()
            .map_err(StorageIOError::read_logs)?
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<RaftId>) -> Result<(), StorageError> {
        let bytes = db::encode(vote).map_err(StorageIOError::write_vote)?;
        self.write(|_, meta| {
            meta.insert(VOTE, bytes.as_slice())?;
            Ok(())
        })
        .map_err(|e| StorageIOError::write_vote(any(e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<RaftId>>, StorageError> {
        db::get(&self.db, LOG_META, VOTE).map_err(|e| StorageIOError::read_vote(e).into())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, db::encode(&e)?)))
            .collect::<Result<Vec<_>, openraft::AnyError>>()
            .map_err(StorageIOError::write_logs)?;
        let written = self.write(|log, _| {
            for (index, bytes) in &encoded {
                log.insert(index, bytes.as_slice())?;
            }
            Ok(())
        });
        // redb commits are durable, so the entries are flushed as soon as the commit returns.
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(any(e)).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write(|log, _| {
            log.retain_in(log_id.index.., |_, _| false)?;
            Ok(())
        })
        .map_err(|e| StorageIOError::write_logs(any(e)).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let bytes = db::encode(&log_id).map_err(StorageIOError::write_logs)?;
        self.write(|log, meta| {
            meta.insert(LAST_PURGED, bytes.as_slice())?;
            log.retain_in(..=log_id.index, |_, _| false)?;
            Ok(())
        })
        .map_err(|e| StorageIOError::write_logs(any(e)).into())
    }
}
