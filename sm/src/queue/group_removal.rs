//! Removing a consumer group: its settings go at once, its delivery records (settled markers,
//! attempts, dead letters, ready and redrive marks) in bounded steps.
//!
//! To ensure correctness:
//! - From the first step on the group does not exist: the scheduler drops its lane, outcomes for
//!   it are refused, its retry timers fire into nothing, and retention no longer waits for it.
//! - A `Removing` marker stays until the last record is gone, and while it is there the group
//!   cannot be created again, so a new group of that name never inherits an old group's records.
//!   The leader repeats the command while the marker is there (see `node::queue_trimmer`).
//! - Built-in groups (the refund group) are refused by the dispatcher before they get here.

use crate::command::RemoveSubscription;
use crate::error::StoreError;
use crate::keys::{self, DeliveryRecord, CF_DELIVERIES};
use crate::outcome::{Applied, Outcome, Rejection};
use crate::timers;
use crate::txn::Txn;

use super::store;
use super::subscription::Attempts;
use super::timers as queue_timers;

/// Most records one step removes, so one command stays a bounded write.
pub const RECORDS_PER_STEP: usize = 10_000;

/// The per-message record kinds a group owns.
const GROUP_RECORDS: [DeliveryRecord; 7] = [
    DeliveryRecord::Settled,
    DeliveryRecord::CursorPassed,
    DeliveryRecord::AckedBehind,
    DeliveryRecord::Attempts,
    DeliveryRecord::Dead,
    DeliveryRecord::Ready,
    DeliveryRecord::Redriven,
];

/// Removes `remove.group`, or takes the next step of a removal under way.
pub fn remove(txn: &mut Txn<'_>, remove: &RemoveSubscription) -> Result<Outcome, StoreError> {
    let group = remove.group.as_str();
    let settings = keys::subscription(group);
    let exists = txn.get_raw(CF_DELIVERIES, &settings)?.is_some();
    if !exists && !store::is_removing(txn, group)? {
        return Ok(Err(Rejection::NotFound {
            kind: "subscription".into(),
            id: group.into(),
        }));
    }
    if exists {
        txn.delete(CF_DELIVERIES, settings);
    }
    let mut budget = RECORDS_PER_STEP;
    for kind in GROUP_RECORDS {
        let prefix = keys::delivery_prefix(kind, group);
        let end = keys::prefix_end(&prefix).unwrap_or_default();
        for key in txn.scan_keys(CF_DELIVERIES, &prefix, &end, budget)? {
            if kind == DeliveryRecord::Attempts {
                disarm_retry(txn, group, &key)?;
            }
            txn.delete(CF_DELIVERIES, key);
            budget -= 1;
        }
        if budget == 0 {
            txn.put_raw(CF_DELIVERIES, keys::group_removing(group), Vec::new());
            return Ok(Ok(Applied::SubscriptionRemoved(true)));
        }
    }
    if store::is_removing(txn, group)? {
        txn.delete(CF_DELIVERIES, keys::group_removing(group));
    }
    Ok(Ok(Applied::SubscriptionRemoved(false)))
}

/// Disarms the retry timer of the attempts record at `key`, if it has one.
fn disarm_retry(txn: &mut Txn<'_>, group: &str, key: &[u8]) -> Result<(), StoreError> {
    let (Some(attempts), Some(offset)) = (
        txn.get::<Attempts>(CF_DELIVERIES, key)?,
        keys::trailing_offset(key),
    ) else {
        return Ok(());
    };
    if attempts.retry_at_ms > 0 {
        timers::disarm(
            txn,
            queue_timers::retry_timer(group, offset, attempts.retry_at_ms),
        )?;
    }
    Ok(())
}
