//! The sold-out set: SKUs with nothing available, in memory, on every node.
//!
//! At a flash sale most requests arrive after the last unit is gone. Each node keeps, from its
//! own applied state, the set of SKUs whose `available` is 0, so the API answers `sold_out`
//! without a Raft round trip; a unit released by a closed order takes the SKU out of the set
//! again as soon as the node applies that close.
//!
//! To ensure correctness:
//! - The set is an output of `apply`, never an input: `apply` decides from RocksDB alone, so a
//!   stale set can only answer `sold_out` a moment too long (or send a request to Raft that
//!   `apply` then refuses), never oversell.
//! - It is updated only after the batch that changed a SKU is written ([`SoldOut::changes`] then
//!   [`SoldOut::record`]), and rebuilt from RocksDB at start and after a snapshot is installed.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use rocksdb::{IteratorMode, DB};

use crate::db::cf;
use crate::error::StoreError;
use crate::keys::{CF_SKUS, KEY_END};
use crate::txn::Txn;

use super::sku::Sku;

/// What one applied batch did to the set: each changed SKU and whether it is now sold out.
pub type SoldOutChanges = Vec<(String, bool)>;

/// The set of sold-out SKUs. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct SoldOut {
    /// SKU ids whose `available` is 0 in this node's applied state.
    skus: Arc<RwLock<HashSet<String>>>,
}

impl SoldOut {
    /// Whether `sku` has nothing available on this node.
    pub fn contains(&self, sku: &str) -> bool {
        self.skus.read().map(|s| s.contains(sku)).unwrap_or(false)
    }

    /// How many SKUs are sold out (for metrics).
    pub fn len(&self) -> usize {
        self.skus.read().map(|s| s.len()).unwrap_or(0)
    }

    /// Whether no SKU is sold out.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The SKUs `txn` is about to change and whether each will be sold out; pass them to
    /// [`SoldOut::record`] once the batch is written.
    pub fn changes(txn: &Txn<'_>) -> Result<SoldOutChanges, StoreError> {
        txn.staged_values(CF_SKUS)
            .map(|bytes| {
                serde_json::from_slice::<Sku>(bytes)
                    .map(|sku| (sku.sku, sku.available == 0))
                    .map_err(|e| StoreError::corrupt(CF_SKUS, e))
            })
            .collect()
    }

    /// Applies the changes of a written batch.
    pub fn record(&self, changes: SoldOutChanges) {
        if changes.is_empty() {
            return;
        }
        // A poisoned lock means a panic elsewhere while holding it; the set is a cache of
        // RocksDB, so carrying on with its contents is safe.
        let mut skus = self.skus.write().unwrap_or_else(|e| e.into_inner());
        for (sku, sold_out) in changes {
            if sold_out {
                skus.insert(sku);
            } else {
                skus.remove(&sku);
            }
        }
    }

    /// Rebuilds the set from every SKU in `db` (at start, after installing a snapshot).
    pub fn reload(&self, db: &DB) -> Result<(), StoreError> {
        let mut fresh = HashSet::new();
        for item in db.iterator_cf(cf(db, CF_SKUS)?, IteratorMode::Start) {
            let (key, value) = item?;
            if key.as_ref() >= KEY_END {
                break;
            }
            let sku: Sku =
                serde_json::from_slice(&value).map_err(|e| StoreError::corrupt(CF_SKUS, e))?;
            if sku.available == 0 {
                fresh.insert(sku.sku);
            }
        }
        *self.skus.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }
}
