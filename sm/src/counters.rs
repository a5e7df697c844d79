//! Counters kept in the state by `apply`, so operators read totals (pending timers, orders per
//! state) without scanning millions of records.

use crate::error::StoreError;
use crate::keys::CF_SM_META;
use crate::txn::Txn;

/// Adds `delta` to the counter at `sm_meta` key `key` (never below zero).
pub fn add(txn: &mut Txn<'_>, key: &[u8], delta: i64) -> Result<(), StoreError> {
    let current: u64 = txn.get(CF_SM_META, key)?.unwrap_or(0);
    txn.put(
        CF_SM_META,
        key.to_vec(),
        &current.saturating_add_signed(delta),
    )
}
