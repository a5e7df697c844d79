//! Delivery outcomes: how the acks, failures and redrives decided by the leader's scheduler
//! change a consumer group's committed state.
//!
//! To ensure correctness:
//! - The cursor means "every offset up to here is settled" (acknowledged or dead). Offsets beyond
//!   it that are settled carry a `Settled` record until the cursor passes them; the cursor
//!   advances by point lookups only (offsets have no gaps, see `crate::queue`).
//! - A message is pending for a group when it is beyond the cursor and not settled, or when it
//!   was redriven and not yet settled again. Outcomes for messages that are not pending (a
//!   duplicate ack, a late failure after an ack) change nothing, so the scheduler may repeat
//!   itself and a deposed leader's leftovers are harmless.
//! - Retry times come in the command (the leader drew the jitter); `apply` reads no clock.
//! - What a settled message means beyond the queue (a refund acknowledged by the provider) is
//!   not decided here: the dispatcher passes a [`SettleHook`], and the queue tells it which
//!   messages a group acknowledged or gave up on.

use crate::command::{PurgeDead, RecordDeliveries, Redrive};
use crate::error::StoreError;
use crate::keys::{self, DeliveryRecord, CF_DELIVERIES, CF_MESSAGES};
use crate::outcome::{Applied, Outcome, Rejection};
use crate::timers;
use crate::txn::Txn;

use super::ack_time;
use super::message::Message;
use super::store;
use super::subscription::{Attempt, Attempts, DeadLetter, DeliveriesRecorded, Subscription};
use super::timers as queue_timers;

/// Most dead letters one `Redrive` moves: larger redrives are proposed in steps.
pub const MAX_REDRIVE: usize = 1_000;

/// What the rest of the state machine learns when a group settles a message: the one seam
/// through which a built-in group (the payment provider's refunds) reaches the order wing,
/// so the queue itself knows nothing of what its messages mean.
pub trait SettleHook {
    /// Whether `group`'s settled messages concern the hook; others are not even read.
    fn watches(&self, group: &str) -> bool;

    /// `group` acknowledged `message`.
    fn delivered(
        &self,
        txn: &mut Txn<'_>,
        now_ms: i64,
        group: &str,
        message: &Message,
    ) -> Result<(), StoreError>;

    /// `group` gave up on `message`: it is a dead letter now.
    fn dead(
        &self,
        txn: &mut Txn<'_>,
        now_ms: i64,
        group: &str,
        message: &Message,
    ) -> Result<(), StoreError>;
}

/// Marks `offset` settled for `sub` and moves the cursor past every settled offset after it;
/// its retry timer, attempts and markers go. The common case, settling the offset right after
/// the cursor, writes no marker at all.
fn settle(
    txn: &mut Txn<'_>,
    sub: &mut Subscription,
    offset: u64,
    now_ms: i64,
) -> Result<(), StoreError> {
    let group = sub.group.clone();
    store::delete_if_present(
        txn,
        keys::delivery(DeliveryRecord::Redriven, &group, offset),
    )?;
    store::delete_if_present(txn, keys::delivery(DeliveryRecord::Ready, &group, offset))?;
    let attempts_key = keys::delivery(DeliveryRecord::Attempts, &group, offset);
    if let Some(attempts) = txn.get::<Attempts>(CF_DELIVERIES, &attempts_key)? {
        if attempts.retry_at_ms > 0 {
            timers::disarm(
                txn,
                queue_timers::retry_timer(&group, offset, attempts.retry_at_ms),
            )?;
        }
        txn.delete(CF_DELIVERIES, attempts_key);
    }
    if offset <= store::floor(txn, &sub.topic)? {
        // A redriven message that retention had removed before: it goes again once settled.
        let message = keys::message(&sub.topic, offset);
        if txn.get_raw(CF_MESSAGES, &message)?.is_some() {
            txn.delete(CF_MESSAGES, message);
        }
    }
    if offset != sub.cursor + 1 {
        if offset > sub.cursor {
            ack_time::settled_beyond(txn, sub, offset, now_ms)?;
        }
        return Ok(());
    }
    sub.cursor = offset;
    loop {
        let next = keys::delivery(DeliveryRecord::Settled, &group, sub.cursor + 1);
        let Some(marker) = txn.get_raw(CF_DELIVERIES, &next)? else {
            return Ok(());
        };
        txn.delete(CF_DELIVERIES, next);
        sub.cursor += 1;
        ack_time::keep_marker_time(txn, sub, sub.cursor, &marker)?;
    }
}

/// Records acks and failed attempts of one group: acks settle, failures count an attempt and
/// either schedule a retry or, at `max_attempts`, make a dead letter.
pub fn record(
    txn: &mut Txn<'_>,
    now_ms: i64,
    results: &RecordDeliveries,
    hook: &dyn SettleHook,
) -> Result<Outcome, StoreError> {
    let Some(mut sub) = store::subscription(txn, &results.group)? else {
        return Ok(Err(store::not_found(&results.group)));
    };
    let mut done = DeliveriesRecorded::default();
    let cursor_before = sub.cursor;
    for &offset in &results.acks {
        if !store::is_pending(txn, &sub, offset)? {
            // An attempt answered after its message was dead-lettered (one still in flight from
            // a scheduler that lost its lease, say): it was delivered after all. The letter goes
            // and the hook hears of the delivery, so a refund the provider made is recorded
            // refunded, never left refund_failed.
            let dead = keys::delivery(DeliveryRecord::Dead, &sub.group, offset);
            match txn.get::<DeadLetter>(CF_DELIVERIES, &dead)? {
                Some(letter) => {
                    txn.delete(CF_DELIVERIES, dead);
                    ack_time::acked_behind(txn, &sub, offset, now_ms)?;
                    sub.dead = sub.dead.saturating_sub(1);
                    sub.delivered += 1;
                    done.acked.push(offset);
                    if hook.watches(&sub.group) {
                        hook.delivered(txn, now_ms, &sub.group, &letter.message)?;
                    }
                }
                None => done.ignored.push(offset),
            }
            continue;
        }
        if offset <= sub.cursor {
            // A redriven dead letter: the cursor passed it long ago.
            ack_time::acked_behind(txn, &sub, offset, now_ms)?;
        }
        settle(txn, &mut sub, offset, now_ms)?;
        sub.delivered += 1;
        done.acked.push(offset);
        // Only a watched group's messages are read; others need not be.
        if hook.watches(&sub.group) {
            if let Some(message) = store::message(txn, &sub.topic, offset)? {
                hook.delivered(txn, now_ms, &sub.group, &message)?;
            }
        }
    }
    for failure in &results.failures {
        let offset = failure.offset;
        if !store::is_pending(txn, &sub, offset)? {
            done.ignored.push(offset);
            continue;
        }
        let key = keys::delivery(DeliveryRecord::Attempts, &sub.group, offset);
        let mut attempts: Attempts = txn.get(CF_DELIVERIES, &key)?.unwrap_or_default();
        if attempts.retry_at_ms > 0 {
            // Delivered before its retry timer fired (an ordered group holds it in memory).
            timers::disarm(
                txn,
                queue_timers::retry_timer(&sub.group, offset, attempts.retry_at_ms),
            )?;
        }
        attempts.attempts.push(Attempt {
            at_ms: now_ms,
            error: failure.error.clone(),
        });
        attempts.retry_at_ms = failure.retry_at_ms;
        sub.failures += 1;
        if attempts.attempts.len() < sub.max_attempts as usize {
            if failure.retry_at_ms > now_ms {
                timers::arm(
                    txn,
                    queue_timers::retry_timer(&sub.group, offset, failure.retry_at_ms),
                )?;
                // Waiting again: ready only when this retry's timer fires.
                store::delete_if_present(
                    txn,
                    keys::delivery(DeliveryRecord::Ready, &sub.group, offset),
                )?;
                done.waiting.push(offset);
            }
            txn.put(CF_DELIVERIES, key, &attempts)?;
            done.retrying.push(offset);
            continue;
        }
        let Some(message) = store::message(txn, &sub.topic, offset)? else {
            done.ignored.push(offset);
            continue;
        };
        let dead = DeadLetter {
            message,
            attempts: attempts.attempts,
            dead_at_ms: now_ms,
        };
        let dead_key = keys::delivery(DeliveryRecord::Dead, &sub.group, offset);
        // A reset can make a dead letter's message pending again: dying twice counts once.
        if txn.get_raw(CF_DELIVERIES, &dead_key)?.is_none() {
            sub.dead += 1;
        }
        txn.put(CF_DELIVERIES, dead_key, &dead)?;
        settle(txn, &mut sub, offset, now_ms)?;
        done.dead.push(offset);
        if hook.watches(&sub.group) {
            hook.dead(txn, now_ms, &sub.group, &dead.message)?;
        }
    }
    if sub.cursor > cursor_before {
        ack_time::cursor_passed(txn, &sub, now_ms)?;
    }
    store::save(txn, &sub)?;
    Ok(Ok(Applied::DeliveriesRecorded(done)))
}

/// Moves the named dead letters back to delivery with fresh attempts; answers how many moved.
pub fn redrive(txn: &mut Txn<'_>, redrive: &Redrive) -> Result<Outcome, StoreError> {
    if redrive.offsets.len() > MAX_REDRIVE {
        return Ok(Err(Rejection::Invalid(format!(
            "a redrive moves at most {} dead letters; propose larger ones in steps",
            MAX_REDRIVE
        ))));
    }
    let Some(mut sub) = store::subscription(txn, &redrive.group)? else {
        return Ok(Err(store::not_found(&redrive.group)));
    };
    let mut moved = 0;
    for &offset in &redrive.offsets {
        let dead = keys::delivery(DeliveryRecord::Dead, &sub.group, offset);
        let Some(letter) = txn.get::<DeadLetter>(CF_DELIVERIES, &dead)? else {
            continue;
        };
        txn.delete(CF_DELIVERIES, dead);
        let message = keys::message(&sub.topic, offset);
        if txn.get_raw(CF_MESSAGES, &message)?.is_none() {
            // Retention removed it once every group had settled it: the letter's copy returns.
            txn.put(CF_MESSAGES, message, &letter.message)?;
        }
        // The marker makes it pending whichever side of the cursor it is on, and tells the
        // scheduler (which has read past it) to deliver it again.
        store::delete_if_present(
            txn,
            keys::delivery(DeliveryRecord::Settled, &sub.group, offset),
        )?;
        txn.put_raw(
            CF_DELIVERIES,
            keys::delivery(DeliveryRecord::Redriven, &sub.group, offset),
            Vec::new(),
        );
        sub.dead = sub.dead.saturating_sub(1);
        moved += 1;
    }
    if moved > 0 {
        sub.redrives += 1;
        store::save(txn, &sub)?;
    }
    Ok(Ok(Applied::Redriven(moved)))
}

/// Deletes the named dead letters of a group for good; answers how many went. Offsets that are
/// not dead letters (redriven or purged meanwhile) are skipped, so a repeat changes nothing.
pub fn purge(txn: &mut Txn<'_>, purge: &PurgeDead) -> Result<Outcome, StoreError> {
    if purge.offsets.len() > MAX_REDRIVE {
        return Ok(Err(Rejection::Invalid(format!(
            "a purge removes at most {MAX_REDRIVE} dead letters; propose larger ones in steps"
        ))));
    }
    let Some(mut sub) = store::subscription(txn, &purge.group)? else {
        return Ok(Err(store::not_found(&purge.group)));
    };
    let mut purged = 0;
    for &offset in &purge.offsets {
        let dead = keys::delivery(DeliveryRecord::Dead, &sub.group, offset);
        if txn.get_raw(CF_DELIVERIES, &dead)?.is_none() {
            continue;
        }
        txn.delete(CF_DELIVERIES, dead);
        sub.dead = sub.dead.saturating_sub(1);
        purged += 1;
    }
    if purged > 0 {
        store::save(txn, &sub)?;
    }
    Ok(Ok(Applied::Purged(purged)))
}
