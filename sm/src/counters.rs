//! Counters kept in the state by `apply`, so operators read totals (pending timers, orders per
//! state) without scanning millions of records.

use crate::error::StoreError;
use crate::keys::{self, CF_SM_META};
use crate::order::OrderState;
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

/// The snake_case name of `state`, as the API and the counters spell it.
pub fn state_name(state: OrderState) -> &'static str {
    match state {
        OrderState::PendingPayment => "pending_payment",
        OrderState::Paid => "paid",
        OrderState::RefundRequested => "refund_requested",
        OrderState::Refunded => "refunded",
        OrderState::RefundFailed => "refund_failed",
        OrderState::Closed => "closed",
    }
}

/// Counts an order moving from `from` (`None`: a new order) to `to`.
pub fn order_moved(
    txn: &mut Txn<'_>,
    from: Option<OrderState>,
    to: OrderState,
) -> Result<(), StoreError> {
    if from == Some(to) {
        return Ok(());
    }
    if let Some(from) = from {
        add(txn, &keys::order_count(state_name(from)), -1)?;
    }
    add(txn, &keys::order_count(state_name(to)), 1)
}
