//! The replicated state in RocksDB: openraft's [`RaftStateMachine`] and snapshot builder.
//!
//! To ensure correctness:
//! - Everything one `apply` call changes (state, `last_applied`, membership) goes into one
//!   `WriteBatch`, so a crash leaves the state of some prefix of the log. It is written without
//!   RocksDB's WAL: the Raft log replays what a crash took from memory
//!   (see [`crate::db::unlogged`]).
//! - `apply` is deterministic (see [`crate::apply`]): replicas applying the same log agree.
//! - Snapshots are consistent point-in-time views ([`crate::snapshot`]).

use std::path::Path;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use rocksdb::DB;
use tokio::sync::{broadcast, watch};

use crate::apply::apply_batch;
use crate::error::StoreError;
use crate::keys::CF_TIMERS;
use crate::order::SoldOut;
use crate::outcome::BatchOutcome;
use crate::raft_types::{
    Entry, LastApplied, LogId, Membership, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::snapshot::SnapshotStore;
use crate::store_metrics::StoreMetrics;
use crate::txn::Txn;

/// Applied batches whose armed timers a slow wheel may fall behind by before it must reload.
const ARMED_TIMER_BACKLOG: usize = 4096;

/// The state machine. Clones share the database and the snapshot file.
#[derive(Clone)]
pub struct StateMachine {
    /// The node's database (shared with the log store and readers).
    db: Arc<DB>,
    /// Where the current snapshot lives.
    snapshots: Arc<SnapshotStore>,
    /// Timer keys armed by each applied batch, for the leader's time wheel (see
    /// [`StateMachine::subscribe_armed_timers`]). Not part of the state: a notification only.
    armed_timers: broadcast::Sender<Arc<Vec<Vec<u8>>>>,
    /// The index of the last applied entry, published after each apply and install so that
    /// readers (the change stream's long poll) wake on new state instead of polling.
    applied: Arc<watch::Sender<u64>>,
    /// How many snapshots sent by a leader this node has installed since it started: an install
    /// drops the log entries it covers without applying them, so whoever waits for one of those
    /// to be applied learns here that it never will be (see [`StateMachine::watch_installs`]).
    installs: Arc<watch::Sender<u64>>,
    /// SKUs with nothing available, updated after each applied batch (shared with the reader).
    sold_out: SoldOut,
    /// How long each apply takes, for `/metrics`.
    metrics: StoreMetrics,
}

fn sm_read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(&e).into()
}

fn sm_write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(&e).into()
}

fn snapshot_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_snapshot(None, &e).into()
}

impl StateMachine {
    /// The state machine over `db`, keeping its snapshot under `snapshot_dir`.
    pub fn new(db: Arc<DB>, snapshot_dir: &Path) -> Result<Self, StoreError> {
        let snapshots = Arc::new(SnapshotStore::open(snapshot_dir, &db)?);
        let sold_out = SoldOut::default();
        sold_out.reload(&db)?;
        let mut sm = StateMachine {
            db,
            snapshots,
            sold_out,
            armed_timers: broadcast::channel(ARMED_TIMER_BACKLOG).0,
            applied: Arc::new(watch::Sender::new(0)),
            installs: Arc::new(watch::Sender::new(0)),
            metrics: StoreMetrics::default(),
        };
        let index = sm.applied()?.0.map_or(0, |id| id.index);
        sm.applied = Arc::new(watch::Sender::new(index));
        Ok(sm)
    }

    /// This state machine timing its applies into `metrics` (the node's shared series).
    pub fn with_metrics(self, metrics: StoreMetrics) -> Self {
        StateMachine { metrics, ..self }
    }

    /// The snapshot store, shared with the log store (which never purges past the current
    /// snapshot).
    pub fn snapshots(&self) -> Arc<SnapshotStore> {
        self.snapshots.clone()
    }

    /// A receiver of the last applied index, which changes after every applied batch.
    pub fn watch_applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// A receiver of the number of snapshots installed from a leader, which changes after each
    /// install. openraft 0.9 answers a `client_write` when its entry is applied or truncated, but
    /// not when a snapshot covering the entry replaces it (a leader cut off with a write in
    /// flight and caught up by a snapshot): a proposer waits on this too, so it is not held
    /// forever.
    pub fn watch_installs(&self) -> watch::Receiver<u64> {
        self.installs.subscribe()
    }

    /// Receives the keys of timers armed by every batch applied from now on. A receiver that falls
    /// behind gets `Lagged` and must reload the timers from the state.
    pub fn subscribe_armed_timers(&self) -> broadcast::Receiver<Arc<Vec<Vec<u8>>>> {
        self.armed_timers.subscribe()
    }

    /// The sold-out set this state machine keeps up to date.
    pub fn sold_out(&self) -> SoldOut {
        self.sold_out.clone()
    }

    /// The log id of the last applied entry and the membership as of it.
    pub fn applied(&self) -> Result<(Option<LogId>, StoredMembership), StoreError> {
        let txn = Txn::new(&self.db);
        let last = txn.meta::<LastApplied>()?;
        let membership = txn.meta::<Membership>()?.unwrap_or_default();
        Ok((last, membership))
    }

    fn apply_entries(
        &self,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        let started = std::time::Instant::now();
        let mut txn = Txn::new(&self.db);
        let mut replies = Vec::new();
        let mut last = None;
        for entry in entries {
            let reply = match entry.payload {
                EntryPayload::Blank => BatchOutcome::default(),
                EntryPayload::Normal(ref batch) => {
                    BatchOutcome(apply_batch(&mut txn, entry.log_id.index, batch)?)
                }
                EntryPayload::Membership(ref membership) => {
                    let stored = StoredMembership::new(Some(entry.log_id), membership.clone());
                    txn.put_meta::<Membership>(&stored)?;
                    BatchOutcome::default()
                }
            };
            last = Some(entry.log_id);
            replies.push(reply);
        }
        if let Some(last) = last {
            txn.put_meta::<LastApplied>(&last)?;
            // Collected whether or not a time wheel listens now: one may subscribe, and read the
            // timers on disk, between here and the write below, and it must then hear of these.
            // (Asking for listeners here lost exactly those: after a leader restarted, entries
            // re-applied while its time wheel started left their orders unclosed until the next
            // reload, seconds late; the chaos timers check of t67 caught it.)
            let armed = txn.staged_puts(CF_TIMERS);
            let sold_out = SoldOut::changes(&txn)?;
            crate::failpoints::crash_point(crate::failpoints::APPLY_BEFORE_WRITE);
            // Without the WAL: the Raft log replays it (see `db::unlogged`).
            self.db
                .write_opt(txn.into_write_batch()?, &crate::db::unlogged())?;
            crate::failpoints::crash_point(crate::failpoints::APPLY_AFTER_WRITE);
            self.sold_out.record(sold_out);
            self.applied.send_replace(last.index);
            if !armed.is_empty() && self.armed_timers.receiver_count() > 0 {
                // No receiver (not the leader, or shutting down) is fine: a wheel that subscribes
                // after the write above reads these timers from disk.
                let _ = self.armed_timers.send(Arc::new(armed));
            }
            self.metrics
                .apply_batch
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(replies)
    }

    fn build(&self) -> Result<Snapshot<TypeConfig>, StoreError> {
        let (meta, file) = self.snapshots.build(&self.db)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        })
    }

    /// Installs the snapshot whose data was received into `received`: checked whole, kept as the
    /// current snapshot, then restored from, so a crash mid-restore can finish from it. A
    /// received snapshot that does not parse changes nothing.
    fn install(&self, meta: &SnapshotMeta, received: std::fs::File) -> Result<(), StoreError> {
        self.snapshots.finish_receiving();
        let path = self.snapshots.new_data_path("snap");
        let mut source = std::io::BufReader::new(received);
        let mut copy = std::fs::File::create(&path)?;
        std::io::copy(&mut source, &mut copy)?;
        copy.sync_all()?;
        if let Err(e) = crate::snapshot::validate(std::fs::File::open(&path)?) {
            // Nothing was changed yet: the old state and the old current snapshot stay.
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        let data = std::fs::File::open(&path)?;
        self.snapshots.set_current(meta, &path)?;
        let last_index = meta.last_log_id.map(|id| id.index);
        crate::snapshot::restore(&self.db, data, last_index)?;
        self.sold_out.reload(&self.db)?;
        self.snapshots.installed();
        self.applied.send_replace(last_index.unwrap_or(0));
        self.installs.send_modify(|installs| *installs += 1);
        Ok(())
    }
}

/// Builds snapshots off the state machine's task.
pub struct SnapshotBuilder {
    /// The state machine to copy.
    sm: StateMachine,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let sm = self.sm.clone();
        tokio::task::spawn_blocking(move || sm.build())
            .await
            .map_err(snapshot_err)?
            .map_err(snapshot_err)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        self.applied().map_err(sm_read_err)
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchOutcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        self.apply_entries(entries).map_err(sm_write_err)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder { sm: self.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        self.snapshots.receiving();
        let path = self.snapshots.new_data_path("recv");
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(snapshot_err)?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let sm = self.clone();
        let meta = meta.clone();
        let mut received = snapshot.into_std().await;
        tokio::task::spawn_blocking(move || {
            std::io::Seek::seek(&mut received, std::io::SeekFrom::Start(0))?;
            sm.install(&meta, received)
        })
        .await
        .map_err(snapshot_err)?
        .map_err(snapshot_err)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let snapshots = self.snapshots.clone();
        let current = tokio::task::spawn_blocking(move || snapshots.open_current())
            .await
            .map_err(sm_read_err)?
            .map_err(sm_read_err)?;
        Ok(current.map(|(meta, file)| Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
    }
}
