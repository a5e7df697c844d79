//! The replicated state in RocksDB: openraft's [`RaftStateMachine`] and snapshot builder.
//!
//! To ensure correctness:
//! - Everything one `apply` call changes (state, `last_applied`, membership) goes into one
//!   `WriteBatch`, so a crash leaves the state of some prefix of the log.
//! - `apply` is deterministic (see [`crate::apply`]): replicas applying the same log agree.
//! - Snapshots are consistent point-in-time views ([`crate::snapshot`]).

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use rocksdb::DB;

use crate::apply::apply_batch;
use crate::error::StoreError;
use crate::keys::{CF_SM_META, SM_LAST_APPLIED, SM_MEMBERSHIP};
use crate::outcome::BatchOutcome;
use crate::raft_types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::snapshot::{self, SnapshotFile};
use crate::sold_out::SoldOut;
use crate::txn::Txn;

/// The state machine. Clones share the database and the snapshot file.
#[derive(Clone)]
pub struct StateMachine {
    /// The node's database (shared with the log store and readers).
    db: Arc<DB>,
    /// Where the current snapshot lives.
    snapshots: Arc<SnapshotFile>,
    /// SKUs with nothing available, updated after each applied batch (shared with the reader).
    sold_out: SoldOut,
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
        let sold_out = SoldOut::default();
        sold_out.reload(&db)?;
        Ok(StateMachine {
            db,
            snapshots: Arc::new(SnapshotFile::new(snapshot_dir)?),
            sold_out,
        })
    }

    /// The sold-out set this state machine keeps up to date.
    pub fn sold_out(&self) -> SoldOut {
        self.sold_out.clone()
    }

    /// The log id of the last applied entry and the membership as of it.
    pub fn applied(&self) -> Result<(Option<LogId>, StoredMembership), StoreError> {
        let txn = Txn::new(&self.db);
        let last = txn.get::<LogId>(CF_SM_META, SM_LAST_APPLIED)?;
        let membership = txn
            .get::<StoredMembership>(CF_SM_META, SM_MEMBERSHIP)?
            .unwrap_or_default();
        Ok((last, membership))
    }

    fn apply_entries(
        &self,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
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
                    txn.put(CF_SM_META, SM_MEMBERSHIP.to_vec(), &stored)?;
                    BatchOutcome::default()
                }
            };
            last = Some(entry.log_id);
            replies.push(reply);
        }
        if let Some(last) = last {
            txn.put(CF_SM_META, SM_LAST_APPLIED.to_vec(), &last)?;
            let sold_out = SoldOut::changes(&txn)?;
            self.db.write(txn.into_write_batch()?)?;
            self.sold_out.record(sold_out);
        }
        Ok(replies)
    }

    fn build(&self) -> Result<Snapshot<TypeConfig>, StoreError> {
        let (last_log_id, last_membership, data) = snapshot::capture(&self.db)?;
        let snapshot_id = match last_log_id {
            Some(id) => format!(
                "{}-{}-{}",
                id.leader_id.term, id.leader_id.node_id, id.index
            ),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        self.snapshots.save(&meta, &data)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }

    fn install(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StoreError> {
        snapshot::restore(&self.db, data)?;
        self.sold_out.reload(&self.db)?;
        self.snapshots.save(meta, data)
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

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let sm = self.clone();
        let meta = meta.clone();
        let data = snapshot.into_inner();
        tokio::task::spawn_blocking(move || sm.install(&meta, &data))
            .await
            .map_err(snapshot_err)?
            .map_err(snapshot_err)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self
            .snapshots
            .load()
            .map_err(sm_read_err)?
            .map(|(meta, data)| Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            }))
    }
}
