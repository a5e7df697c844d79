//! Timers in the state: arming and disarming them beside what they guard, and firing them.
//!
//! To ensure correctness:
//! - A timer is written in the same batch as what creates it and deleted in the same batch as
//!   what cancels it, through [`arm`] and [`disarm`], which also keep the pending count.
//! - [`fire`] decides what a due timer still means from the state alone: a timer that is gone was
//!   cancelled (its order paid or cancelled) and does nothing; a timer not yet due at the batch's
//!   clock stays pending, so nothing fires early however the leader's wheel behaves.

use crate::apply::close_unpaid;
use crate::command::FireTimers;
use crate::counters;
use crate::error::StoreError;
use crate::keys::{self, TimerKind, CF_ORDERS, CF_TIMERS, SM_TIMERS_FIRED, SM_TIMERS_PENDING};
use crate::order::{CloseReason, Order, OrderState};
use crate::outcome::{Applied, FiredTimers, Outcome};
use crate::queue_timers::{self, GroupsByTopic};
use crate::txn::Txn;

/// Arms timer `key`. The caller guarantees it is not pending yet (its target is new, like an
/// order created by this very command), so arming is one write and no read.
pub fn arm(txn: &mut Txn<'_>, key: Vec<u8>) -> Result<(), StoreError> {
    counters::add(txn, SM_TIMERS_PENDING, 1)?;
    txn.put_raw(CF_TIMERS, key, Vec::new());
    Ok(())
}

/// Disarms timer `key`, if it is pending.
pub fn disarm(txn: &mut Txn<'_>, key: Vec<u8>) -> Result<(), StoreError> {
    if txn.get_raw(CF_TIMERS, &key)?.is_some() {
        counters::add(txn, SM_TIMERS_PENDING, -1)?;
        txn.delete(CF_TIMERS, key);
    }
    Ok(())
}

/// Fires the timers of `command` that are still pending and due at `now_ms`.
pub fn fire(txn: &mut Txn<'_>, now_ms: i64, command: &FireTimers) -> Result<Outcome, StoreError> {
    let mut result = FiredTimers::default();
    let mut groups = GroupsByTopic::default();
    for key in &command.keys {
        let Some(timer) = keys::parse_timer(key) else {
            result.gone += 1;
            continue;
        };
        if txn.get_raw(CF_TIMERS, key)?.is_none() {
            result.gone += 1;
            continue;
        }
        if timer.due_ms > now_ms {
            result.early.push(key.clone());
            continue;
        }
        match timer.kind {
            TimerKind::CloseOrder => close_expired(txn, now_ms, timer.target)?,
            TimerKind::DeliverMessage => {
                queue_timers::fire_delivery(txn, timer.target, &mut groups)?
            }
            TimerKind::RetryDelivery => queue_timers::fire_retry(txn, timer.due_ms, timer.target)?,
        }
        // Acting may already have disarmed it (closing an order does); make sure it is gone.
        disarm(txn, key.clone())?;
        counters::add(txn, SM_TIMERS_FIRED, 1)?;
        result.fired.push(key.clone());
    }
    Ok(Ok(Applied::TimersFired(result)))
}

/// Closes an order that is still unpaid at its deadline; anything else is left alone.
fn close_expired(txn: &mut Txn<'_>, now_ms: i64, order_id: &str) -> Result<(), StoreError> {
    let Some(mut order) = txn.get::<Order>(CF_ORDERS, order_id.as_bytes())? else {
        return Ok(());
    };
    if order.state == OrderState::PendingPayment && order.expires_at_ms <= now_ms {
        close_unpaid(txn, &mut order, CloseReason::Expired, now_ms)?;
    }
    Ok(())
}
