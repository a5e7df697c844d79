//! A one-node stand-in for the cluster, shared by the API's in-process tests.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use api::{Cluster, ClusterError, ClusterStatus, HttpReply, HttpRequest};
use async_trait::async_trait;
use sm::apply_batch;
use sm::command::{Command, CommandBatch};
use sm::outcome::Outcome;
use sm::txn::Txn;
use sm::SoldOut;
use sm::StateReader;

/// A one-node "cluster" applying each write at once, keeping the sold-out set as a node does,
/// and counting the writes that reach it.
pub struct LocalCluster {
    _dir: tempfile::TempDir,
    db: Arc<rocksdb::DB>,
    reader: StateReader,
    index: AtomicU64,
    lock: Mutex<()>,
    /// While set, every write is refused as a spent admission budget would.
    pub overloaded: AtomicBool,
}

impl LocalCluster {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = sm::db::open(dir.path()).unwrap();
        LocalCluster {
            reader: StateReader::new(db.clone()),
            _dir: dir,
            db,
            index: AtomicU64::new(0),
            lock: Mutex::new(()),
            overloaded: AtomicBool::new(false),
        }
    }

    /// Writes that reached the cluster.
    /// Sets or clears the marker a node keeps while it restores a received snapshot.
    pub fn set_restoring(&self, on: bool) {
        let cf = sm::db::cf(&self.db, sm::keys::CF_RAFT_META).unwrap();
        if on {
            self.db.put_cf(cf, sm::keys::META_RESTORING, b"1").unwrap();
        } else {
            self.db.delete_cf(cf, sm::keys::META_RESTORING).unwrap();
        }
    }

    pub fn writes(&self) -> u64 {
        self.index.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Cluster for LocalCluster {
    async fn write(&self, command: Command) -> Result<Outcome, ClusterError> {
        if self.overloaded.load(Ordering::SeqCst) {
            return Err(ClusterError::Overloaded("budget spent".into()));
        }
        let _guard = self.lock.lock().unwrap();
        let index = self.index.fetch_add(1, Ordering::SeqCst) + 1;
        let mut txn = Txn::new(&self.db);
        let batch = CommandBatch {
            now_ms: 1_700_000_000_000,
            commands: vec![command],
        };
        let outcome = apply_batch(&mut txn, index, &batch).unwrap().remove(0);
        let changes = SoldOut::changes(&txn).unwrap();
        self.db.write(txn.into_write_batch().unwrap()).unwrap();
        self.reader.sold_out().record(changes);
        Ok(outcome)
    }

    async fn linearizable(&self) -> Result<(), ClusterError> {
        Ok(())
    }

    fn reader(&self) -> &StateReader {
        &self.reader
    }

    async fn forward(&self, _: &str, _: &HttpRequest) -> Result<HttpReply, ClusterError> {
        Err(ClusterError::NoLeader("single node".into()))
    }

    fn status(&self) -> ClusterStatus {
        ClusterStatus {
            quorum_lost: false,
            clock_skewed: false,
            node_id: 1,
            leader_id: Some(1),
            term: 1,
            voters: vec![1],
            learners: vec![],
            last_log_index: None,
            last_applied: None,
            snapshot_index: None,
            last_purged_index: None,
            nodes: vec![],
        }
    }

    async fn snapshot(&self) -> Result<u64, ClusterError> {
        Ok(0)
    }

    fn timer_lag_p99_ms(&self) -> Option<u64> {
        None
    }
}
