//! Timers in the state: arming and disarming them beside what they guard, and firing them.
//!
//! To ensure correctness:
//! - A timer is written in the same batch as what creates it and deleted in the same batch as
//!   what cancels it, through [`arm`] and [`disarm`], which also keep the pending count.
//! - [`firing`] decides what a named timer still means from the state alone: a timer that is gone
//!   was cancelled (its order paid or cancelled) and does nothing; a timer not yet due at the
//!   batch's clock stays pending, so nothing fires early however the leader's wheel behaves. What
//!   a due timer does is the dispatcher's (`apply`), by the timer's kind.

use crate::counters;
use crate::error::StoreError;
use crate::keys::{self, CF_TIMERS, SM_TIMERS_FIRED, SM_TIMERS_PENDING};
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

/// What a timer named in a `FireTimers` command is at the batch's clock.
pub enum Firing<'a> {
    /// Due and still pending: the dispatcher acts on it, then calls [`fired`].
    Due(keys::TimerKey<'a>),
    /// No longer pending (cancelled, or fired already) or not a timer key: nothing to do.
    Gone,
    /// Pending but not due yet at the batch's clock: it stays.
    Early,
}

/// What timer `key` is at `now_ms`, decided from the state alone.
pub fn firing<'a>(txn: &Txn<'_>, now_ms: i64, key: &'a [u8]) -> Result<Firing<'a>, StoreError> {
    let Some(timer) = keys::parse_timer(key) else {
        return Ok(Firing::Gone);
    };
    if txn.get_raw(CF_TIMERS, key)?.is_none() {
        return Ok(Firing::Gone);
    }
    if timer.due_ms > now_ms {
        return Ok(Firing::Early);
    }
    Ok(Firing::Due(timer))
}

/// Removes a timer that fired (acting may already have disarmed it, as closing an order does)
/// and counts it.
pub fn fired(txn: &mut Txn<'_>, key: &[u8]) -> Result<(), StoreError> {
    disarm(txn, key.to_vec())?;
    counters::add(txn, SM_TIMERS_FIRED, 1)
}
