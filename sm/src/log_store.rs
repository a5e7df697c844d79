//! The Raft log and vote in RocksDB: openraft's [`RaftLogStorage`].
//!
//! To ensure correctness:
//! - An append is acknowledged to openraft (its [`LogFlushed`] callback) only after the WAL holding
//!   it is synced. Appends are written at once and handed to a flusher thread that syncs the WAL
//!   once for every append waiting, in order: durable before acknowledged, with group fsync.
//! - The vote is written with a synced write before `save_vote` returns.
//! - `apply` writes the state without the WAL ([`crate::db::unlogged`]); the log is purged only
//!   behind a flush of every column family ([`crate::db::flush_all`]), so the entries a restart
//!   replays onto the state on disk are still in the log. The committed index keeps the WAL, so a
//!   restarted node knows at once how far its log is committed.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::metrics::histogram::Histogram;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};

use crate::db::cf;
use crate::error::StoreError;
use crate::keys::{self, CF_LOG};
use crate::log_codec::{decode_entry, encode_entry};
use crate::meta;
use crate::raft_types::{
    Committed, Entry, LastPurged, LogId, SavedVote, StorageError, TypeConfig, Vote,
};
use crate::snapshot::{self, PurgeLimit, SnapshotStore};
use crate::store_metrics::StoreMetrics;

/// The WAL flusher thread and the queue feeding it. Dropped with the last [`LogStore`] clone: the
/// queue closes, the thread finishes what is queued and exits, and the drop waits for it, so the
/// database is released when the store is.
struct WalSyncer {
    /// Appends waiting for the WAL sync, in append order.
    queue: Option<mpsc::Sender<LogFlushed<TypeConfig>>>,
    /// The flusher thread.
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WalSyncer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The log store. Cheap to clone: clones share the database and the flusher.
#[derive(Clone)]
pub struct LogStore {
    /// The node's database (shared with the state machine).
    db: Arc<DB>,
    /// The state machine's snapshots: the log is never purged past the current one.
    snapshots: Arc<SnapshotStore>,
    /// The WAL flusher.
    flusher: Arc<WalSyncer>,
    /// Where the committed index is published for `/metrics`; the flusher thread times its
    /// syncs into the same series.
    metrics: StoreMetrics,
}

fn log_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(&e).into()
}

impl LogStore {
    /// A log store over `db`, starting its WAL flusher thread (which ends with the last clone).
    pub fn new(db: Arc<DB>, snapshots: Arc<SnapshotStore>) -> Result<Self, StoreError> {
        let (queue, pending) = mpsc::channel::<LogFlushed<TypeConfig>>();
        let flush_db = db.clone();
        let metrics = StoreMetrics::default();
        let sync_time = metrics.log_sync.clone();
        let thread = std::thread::Builder::new()
            .name("orderq-wal-sync".into())
            .spawn(move || sync_appends(&flush_db, &pending, &sync_time))?;
        let flusher = Arc::new(WalSyncer {
            queue: Some(queue),
            thread: Some(thread),
        });
        let store = LogStore {
            db,
            snapshots,
            flusher,
            metrics,
        };
        store.finish_held_back_purge()?;
        Ok(store)
    }

    /// The store's timings and committed index (the flusher thread observes into the same
    /// series), shared with the state machine by [`crate::Storage::open`].
    pub fn metrics(&self) -> StoreMetrics {
        self.metrics.clone()
    }

    /// Finishes a purge that [`SnapshotStore::purge_limit`] held back while a snapshot was
    /// installed. openraft then counts the log as purged up to the installed snapshot, but only
    /// in memory, and appends after it; a node restarted before its next purge would find its
    /// log starting before the snapshot with a hole up to it (entries it never received), and
    /// openraft refuses to start from a log with a hole. Once the state holds the snapshot
    /// (`SnapshotStore::open` has finished any interrupted restore), everything up to the
    /// snapshot is covered, so such a log is purged through it.
    fn finish_held_back_purge(&self) -> Result<(), StoreError> {
        let Some(snapshot) = self.snapshots.current_last_log_id()? else {
            return Ok(());
        };
        if snapshot::applied(&self.db)?.is_none_or(|a| a.index < snapshot.index) {
            return Ok(());
        }
        let purged = self.last_purged()?;
        if purged.is_some_and(|p| p.index >= snapshot.index)
            || self.reaches_without_a_hole(purged, snapshot.index)?
        {
            return Ok(());
        }
        tracing::warn!(
            purged = ?purged.map(|p| p.index),
            snapshot = snapshot.index,
            "the log has a hole before the installed snapshot: purging through it"
        );
        self.purge_through(snapshot)
    }

    /// Whether the log holds every entry from after `purged` (from its first entry when nothing
    /// was purged) through `index`.
    fn reaches_without_a_hole(
        &self,
        purged: Option<LogId>,
        index: u64,
    ) -> Result<bool, StoreError> {
        let from = purged.map_or(0, |p| p.index.saturating_add(1));
        // After a purge the log must go on right after it; without one it starts anywhere.
        let mut expected = purged.map(|_| from);
        for item in self.db.iterator_cf(
            cf(&self.db, CF_LOG)?,
            IteratorMode::From(&keys::log_index(from), Direction::Forward),
        ) {
            let (key, _) = item?;
            let at = keys::parse_log_index(&key)
                .ok_or_else(|| StoreError::corrupt("log key", "not 8 bytes"))?;
            if at != *expected.get_or_insert(at) {
                return Ok(false);
            }
            if at >= index {
                return Ok(true);
            }
            expected = Some(at.saturating_add(1));
        }
        Ok(false)
    }

    /// Removes every entry through `log_id` and records it as the last purged.
    fn purge_through(&self, log_id: LogId) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        meta::stage::<LastPurged>(&self.db, &mut batch, &log_id)?;
        batch.delete_range_cf(
            cf(&self.db, CF_LOG)?,
            keys::log_index(0),
            keys::log_index(log_id.index.saturating_add(1)),
        );
        self.db.write(batch)?;
        Ok(())
    }

    /// The log id of the last purged entry, if any was purged.
    pub fn last_purged(&self) -> Result<Option<LogId>, StoreError> {
        meta::read::<LastPurged>(&self.db)
    }

    fn read_range(&self, start: u64, end: Bound<u64>) -> Result<Vec<Entry>, StoreError> {
        let from = keys::log_index(start);
        let mut entries = Vec::new();
        for item in self.db.iterator_cf(
            cf(&self.db, CF_LOG)?,
            IteratorMode::From(&from, Direction::Forward),
        ) {
            let (key, value) = item?;
            let index = keys::parse_log_index(&key)
                .ok_or_else(|| StoreError::corrupt("log key", "not 8 bytes"))?;
            let past_end = match end {
                Bound::Included(e) => index > e,
                Bound::Excluded(e) => index >= e,
                Bound::Unbounded => false,
            };
            if past_end {
                break;
            }
            entries.push(decode_entry(&value)?);
        }
        Ok(entries)
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StoreError> {
        match self
            .db
            .iterator_cf(cf(&self.db, CF_LOG)?, IteratorMode::End)
            .next()
        {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item?;
                Ok(Some(decode_entry(&value)?.log_id))
            }
        }
    }
}

/// The flusher thread: waits for appends, syncs the WAL once for all that are waiting, then
/// acknowledges them in order.
fn sync_appends(db: &DB, pending: &mpsc::Receiver<LogFlushed<TypeConfig>>, sync_time: &Histogram) {
    while let Ok(first) = pending.recv() {
        let mut waiting = vec![first];
        waiting.extend(pending.try_iter());
        crate::failpoints::crash_point(crate::failpoints::LOG_BEFORE_SYNC);
        let started = Instant::now();
        let result = if crate::failpoints::skip_point(crate::failpoints::LOG_SKIP_SYNC) {
            Ok(())
        } else {
            db.flush_wal(true).map_err(std::io::Error::other)
        };
        sync_time.observe(started.elapsed().as_secs_f64());
        crate::failpoints::crash_point(crate::failpoints::LOG_AFTER_SYNC);
        for callback in waiting {
            let result = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            callback.log_io_completed(result);
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        self.read_range(start, range.end_bound().cloned())
            .map_err(read_err)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id = self.last_purged().map_err(read_err)?;
        let last_log_id = self
            .last_entry_id()
            .map_err(read_err)?
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        meta::write::<SavedVote>(&self.db, vote, true)
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        meta::read::<SavedVote>(&self.db).map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        if let Some(committed) = committed {
            self.metrics
                .committed_index
                .set(i64::try_from(committed.index).unwrap_or(i64::MAX));
        }
        meta::write::<Committed>(&self.db, &committed, false).map_err(log_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(meta::read::<Committed>(&self.db)
            .map_err(read_err)?
            .flatten())
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
        let log_cf = cf(&self.db, CF_LOG).map_err(log_err)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(
                log_cf,
                keys::log_index(entry.log_id.index),
                encode_entry(&entry).map_err(log_err)?,
            );
        }
        self.db.write(batch).map_err(log_err)?;
        let stopped = || log_err(std::io::Error::other("WAL flusher stopped"));
        self.flusher
            .queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(callback)
            .map_err(|_| stopped())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let log_cf = cf(&self.db, CF_LOG).map_err(log_err)?;
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            log_cf,
            keys::log_index(log_id.index),
            keys::log_index(u64::MAX),
        );
        self.db.write_opt(batch, &opts).map_err(log_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Never past what this node holds durably: see `SnapshotStore::purge_limit`.
        let log_id = match self.snapshots.purge_limit(&self.db).map_err(read_err)? {
            PurgeLimit::UpTo(held) if held.index < log_id.index => {
                tracing::info!(
                    asked = log_id.index,
                    kept_after = held.index,
                    "log purge held back to what this node holds durably"
                );
                held
            }
            PurgeLimit::UpTo(_) | PurgeLimit::Any => log_id,
            PurgeLimit::Nothing => return Ok(()),
        };
        // The state is written without the WAL: put it on disk first, so no restart ever needs
        // an entry purged here to replay (see `db::unlogged`).
        crate::db::flush_all(&self.db).map_err(log_err)?;
        self.purge_through(log_id).map_err(log_err)
    }
}
