//! Per-user limits: how many units of a SKU one user may hold in open or paid orders.
//!
//! Each (user, SKU) holding is a counter in `user_units`, raised when an order reserves units
//! and lowered when the order closes unpaid, in the same batch as the stock move. The check is
//! in `apply`, so two nodes (or two requests in one batch) can never both let a user past the
//! limit: the second sees the first's staged holding through the [`Txn`].
//!
//! Holdings are kept for every SKU, limited or not, so a limit set later counts earlier orders.

use crate::error::StoreError;
use crate::keys::{self, CF_USER_UNITS};
use crate::outcome::Rejection;
use crate::txn::Txn;

use super::sku::Sku;

/// Units of `sku` that `user_id` holds in open or paid orders.
pub fn held(txn: &Txn<'_>, user_id: &str, sku: &str) -> Result<u64, StoreError> {
    Ok(txn
        .get::<u64>(CF_USER_UNITS, &keys::user_sku(user_id, sku))?
        .unwrap_or(0))
}

/// The refusal, if `user_id` buying `wanted` more units of `sku` would pass its per-user limit.
pub fn check(
    txn: &Txn<'_>,
    user_id: &str,
    sku: &Sku,
    wanted: u64,
) -> Result<Option<Rejection>, StoreError> {
    if sku.per_user_limit == 0 {
        return Ok(None);
    }
    let held = held(txn, user_id, &sku.sku)?;
    if held.saturating_add(wanted) <= sku.per_user_limit {
        return Ok(None);
    }
    Ok(Some(Rejection::LimitExceeded {
        sku: sku.sku.clone(),
        user_id: user_id.to_string(),
        limit: sku.per_user_limit,
        held,
        wanted,
    }))
}

/// Stages `user_id` holding `qty` more units of `sku`.
pub fn hold(txn: &mut Txn<'_>, user_id: &str, sku: &str, qty: u64) -> Result<(), StoreError> {
    let now = held(txn, user_id, sku)?.saturating_add(qty);
    txn.put(CF_USER_UNITS, keys::user_sku(user_id, sku), &now)
}

/// Stages `user_id` giving back `qty` units of `sku` (an order closed unpaid). Saturates at
/// zero, so orders placed before holdings were counted release nothing they never held.
pub fn release(txn: &mut Txn<'_>, user_id: &str, sku: &str, qty: u64) -> Result<(), StoreError> {
    let key = keys::user_sku(user_id, sku);
    match held(txn, user_id, sku)?.saturating_sub(qty) {
        0 => {
            txn.delete(CF_USER_UNITS, key);
            Ok(())
        }
        left => txn.put(CF_USER_UNITS, key, &left),
    }
}
