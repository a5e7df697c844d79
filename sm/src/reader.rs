//! Reads of the node's own applied state, for the API. Reads see whole applied batches only,
//! because each batch is one atomic `WriteBatch`.

use std::sync::Arc;

use rocksdb::{Direction, IteratorMode, DB};
use tokio::sync::watch;

use crate::changes::{self, ChangePage, ChangesError};
use crate::db::cf;
use crate::error::StoreError;
use crate::idempotency::IdempotencyRecord;
use crate::keys::{
    self, CF_IDEMPOTENCY, CF_ORDERS, CF_SKUS, CF_SM_META, CF_TIMERS, CF_USER_ORDERS,
};
use crate::meta::{self, AppliedIndex, Restoring, TimersFired, TimersPending};
use crate::order::{Order, Sku, SoldOut};
use crate::queue::QueueReads;
use crate::txn::Txn;

/// A page of a user's orders.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderPage {
    /// Orders in id (creation) order.
    pub orders: Vec<Order>,
    /// The id to pass as `after` for the next page, when there may be one.
    pub next: Option<String>,
}

/// Timer counts for `GET /admin/timers` and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerStats {
    /// Timers armed and not yet fired or cancelled.
    pub pending: u64,
    /// Timers fired since the cluster began.
    pub fired: u64,
    /// When the earliest pending timer is due (ms since the epoch).
    pub next_due_ms: Option<i64>,
}

/// A fingerprint of the replicated state, for checking that replicas agree
/// (`GET /admin/digest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDigest {
    /// The log index the state is the result of (0 before anything was applied).
    pub applied_index: u64,
    /// SHA-256, hex, over every key and value of the state column families.
    pub digest: String,
}

/// Read access to the applied state. Cheap to clone.
#[derive(Clone)]
pub struct StateReader {
    /// The node's database.
    db: Arc<DB>,
    /// The last applied index, to wait for new changes on.
    applied: watch::Receiver<u64>,
    /// The state machine's sold-out set, for the flash sale's answer without Raft.
    sold_out: SoldOut,
}

impl StateReader {
    /// A reader over `db` that is never told of new applies (tests that apply by hand): a wait
    /// for changes returns at once.
    pub fn new(db: Arc<DB>) -> Self {
        let (_, applied) = watch::channel(0);
        StateReader {
            db,
            applied,
            sold_out: SoldOut::default(),
        }
    }

    /// A reader over `db` that follows a state machine: woken by `applied` (see
    /// `StateMachine::watch_applied`) and sharing its sold-out set.
    pub fn live(db: Arc<DB>, applied: watch::Receiver<u64>, sold_out: SoldOut) -> Self {
        StateReader {
            db,
            applied,
            sold_out,
        }
    }

    /// Up to `limit` changes after offset `after` from this node's own stream (see
    /// [`crate::changes::page`]).
    pub fn changes(&self, after: u64, limit: usize) -> Result<ChangePage, ChangesError> {
        changes::page(&self.db, after, limit)
    }

    /// The newest offset this node no longer serves after.
    pub fn changes_floor(&self) -> Result<u64, StoreError> {
        changes::floor(&self.db)
    }

    /// A receiver that changes whenever an entry is applied: long polls wait on it.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }

    /// The database, for node-local maintenance (pruning the change stream).
    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    /// Whether this node is replacing its state with a received snapshot. The restore writes in
    /// bounded batches, so until it ends the state is part old, part new: nothing should be
    /// answered from it.
    pub fn restoring(&self) -> Result<bool, StoreError> {
        Ok(meta::read::<Restoring>(&self.db)?.is_some())
    }

    /// Reads of the queue's applied state (subscriptions, topics, pending messages, dead
    /// letters): the one way the API and the node's scheduler read the queue.
    pub fn queue(&self) -> QueueReads<'_> {
        QueueReads::new(&self.db)
    }

    /// SKUs with nothing available in this node's applied state.
    pub fn sold_out(&self) -> &SoldOut {
        &self.sold_out
    }

    /// The applied answer to a request made with `Idempotency-Key` `key`, if this node has it:
    /// a retry answered from memory (a sold-out flash sale) must still get its first answer.
    pub fn idempotency_record(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Txn::new(&self.db).get(CF_IDEMPOTENCY, key.as_bytes())
    }

    /// A SHA-256 over every key and value of the replicated state column families
    /// ([`keys::STATE_CFS`]: what a snapshot carries), read from one RocksDB snapshot together
    /// with the applied index, so two replicas at the same index must give the same digest.
    /// Node-local data (the log, the vote, the change stream and its retention) is left out, and
    /// so is Raft's own bookkeeping kept with the state (the applied log id and the membership,
    /// [`keys::RAFT_STATE_KEYS`]): blank and membership entries leave the digest as it was, and a
    /// cluster restored from a backup, with its own members, answers the digest of the state it
    /// was restored from.
    pub fn state_digest(&self) -> Result<StateDigest, StoreError> {
        use sha2::{Digest, Sha256};
        let view = self.db.snapshot();
        let mut at_view = rocksdb::ReadOptions::default();
        at_view.set_snapshot(&view);
        let applied_index = meta::read_with::<AppliedIndex>(&self.db, &at_view)?.unwrap_or(0);
        let mut hasher = Sha256::new();
        for name in keys::STATE_CFS {
            hasher.update((name.len() as u64).to_be_bytes());
            hasher.update(name.as_bytes());
            for item in view.iterator_cf(cf(&self.db, name)?, IteratorMode::Start) {
                let (key, value) = item?;
                if *name == CF_SM_META && keys::RAFT_STATE_KEYS.contains(&&*key) {
                    continue;
                }
                hasher.update((key.len() as u64).to_be_bytes());
                hasher.update(&key);
                hasher.update((value.len() as u64).to_be_bytes());
                hasher.update(&value);
            }
        }
        let digest = hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Ok(StateDigest {
            applied_index,
            digest,
        })
    }

    /// The SKU, if loaded.
    pub fn sku(&self, sku: &str) -> Result<Option<Sku>, StoreError> {
        Txn::new(&self.db).get(CF_SKUS, sku.as_bytes())
    }

    /// The order, if it exists.
    pub fn order(&self, order_id: &str) -> Result<Option<Order>, StoreError> {
        Txn::new(&self.db).get(CF_ORDERS, order_id.as_bytes())
    }

    /// Up to `limit` of the user's orders with ids after `after`, oldest first.
    pub fn orders_of_user(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<OrderPage, StoreError> {
        let prefix = keys::user_prefix(user_id);
        let start = match after {
            // The smallest key strictly after `after`'s key.
            Some(after) => keys::key_after(keys::user_order(user_id, after)),
            None => prefix.clone(),
        };
        let mut orders = Vec::new();
        let mut more = false;
        for item in self.db.iterator_cf(
            cf(&self.db, CF_USER_ORDERS)?,
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (key, _) = item?;
            let Some(order_id) = key.strip_prefix(prefix.as_slice()) else {
                break;
            };
            if orders.len() == limit {
                more = true;
                break;
            }
            let order_id = std::str::from_utf8(order_id)
                .map_err(|e| StoreError::corrupt("user order key", e))?;
            if let Some(order) = self.order(order_id)? {
                orders.push(order);
            }
        }
        let next = if more {
            orders.last().map(|o| o.id.clone())
        } else {
            None
        };
        Ok(OrderPage { orders, next })
    }

    /// How many orders are in each state (snake_case name → count), kept by `apply`.
    pub fn order_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let prefix = keys::SM_ORDER_COUNT_PREFIX;
        let mut counts = Vec::new();
        for item in self.db.iterator_cf(
            cf(&self.db, CF_SM_META)?,
            IteratorMode::From(prefix, Direction::Forward),
        ) {
            let (key, value) = item?;
            let Some(state) = key.strip_prefix(prefix) else {
                break;
            };
            let count: u64 = serde_json::from_slice(&value)
                .map_err(|e| StoreError::corrupt("order count", e))?;
            counts.push((String::from_utf8_lossy(state).into_owned(), count));
        }
        Ok(counts)
    }

    /// Up to `limit` SKUs in id order, for the stock metrics.
    pub fn skus(&self, limit: usize) -> Result<Vec<Sku>, StoreError> {
        let mut skus = Vec::new();
        for item in self
            .db
            .iterator_cf(cf(&self.db, CF_SKUS)?, IteratorMode::Start)
            .take(limit)
        {
            let (_, value) = item?;
            skus.push(serde_json::from_slice(&value).map_err(|e| StoreError::corrupt("sku", e))?);
        }
        Ok(skus)
    }

    /// Up to `limit` SKUs with ids after `after` (from the first when `None`) that start with
    /// `prefix`, in id order, and whether more follow: the operators' paged, searchable stock
    /// list.
    pub fn skus_after(
        &self,
        after: Option<&str>,
        prefix: &str,
        limit: usize,
    ) -> Result<(Vec<Sku>, bool), StoreError> {
        let after = after.map_or_else(Vec::new, |a| keys::key_after(a.as_bytes().to_vec()));
        let start = after.max(prefix.as_bytes().to_vec());
        let mut skus = Vec::new();
        for item in self.db.iterator_cf(
            cf(&self.db, CF_SKUS)?,
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (key, value) = item?;
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            if skus.len() == limit {
                return Ok((skus, true));
            }
            skus.push(serde_json::from_slice(&value).map_err(|e| StoreError::corrupt("sku", e))?);
        }
        Ok((skus, false))
    }

    /// An order's story from the change stream: see [`crate::trace`].
    pub fn order_trace(
        &self,
        order_id: &str,
        after: Option<u64>,
        budget: usize,
    ) -> Result<crate::trace::OrderTrace, StoreError> {
        crate::trace::order_trace(&self.db, order_id, after, budget)
    }

    /// Timer counts for operators: pending, fired so far, and the earliest due time (ms).
    pub fn timer_stats(&self) -> Result<TimerStats, StoreError> {
        let txn = Txn::new(&self.db);
        let next_due_ms = match self
            .db
            .iterator_cf(cf(&self.db, CF_TIMERS)?, IteratorMode::Start)
            .next()
        {
            None => None,
            Some(item) => keys::parse_timer(&item?.0).map(|t| t.due_ms),
        };
        Ok(TimerStats {
            pending: txn.meta::<TimersPending>()?.unwrap_or(0),
            fired: txn.meta::<TimersFired>()?.unwrap_or(0),
            next_due_ms,
        })
    }

    /// Up to `limit` pending timer keys due in `[from_ms, until_ms)`, in due order: how the
    /// leader's wheel refills the near future from disk.
    pub fn timers_due(
        &self,
        from_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let start = keys::timer_due_prefix(from_ms);
        let end = keys::timer_due_prefix(until_ms);
        let mut found = Vec::new();
        for item in self.db.iterator_cf(
            cf(&self.db, CF_TIMERS)?,
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (key, _) = item?;
            if key.as_ref() >= end.as_slice() || found.len() == limit {
                break;
            }
            found.push(key.to_vec());
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(r: &StateReader, name: &'static str, key: &[u8], value: &[u8]) {
        let db = r.db();
        db.put_cf(cf(db, name).expect("cf"), key, value)
            .expect("put");
    }

    fn reader() -> (tempfile::TempDir, StateReader) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = crate::db::open(dir.path()).expect("open");
        (dir, StateReader::new(db))
    }

    #[test]
    fn the_digest_covers_state_and_leaves_node_local_data_out() {
        let (_a_dir, a) = reader();
        let (_b_dir, b) = reader();
        let empty = a.state_digest().expect("digest");
        assert_eq!(empty.applied_index, 0);
        assert_eq!(empty, b.state_digest().expect("digest"));

        put(&a, keys::CF_CHANGES, b"offset", b"node-local");
        put(&a, keys::CF_RAFT_META, b"vote", b"node-local");
        assert_eq!(a.state_digest().expect("digest"), empty);

        put(&a, CF_ORDERS, b"o1", b"{}");
        let changed = a.state_digest().expect("digest");
        assert_ne!(changed, empty);
        put(&b, CF_ORDERS, b"o1", b"{}");
        assert_eq!(b.state_digest().expect("digest"), changed);
        assert_eq!(changed.digest.len(), 64);
    }
}
