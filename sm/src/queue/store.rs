//! The queue's stored records, read and written through the batch's [`Txn`]: a group's record,
//! a topic's head, floor and messages, a group's per-message markers. The ground floor of the
//! wing: every rule above (subscribing, delivery outcomes, timers, retention, removal, reads)
//! goes through these, and they import nothing of the wing but its records.

use crate::error::StoreError;
use crate::keys::{self, DeliveryRecord, CF_DELIVERIES, CF_MESSAGES};
use crate::outcome::Rejection;
use crate::txn::Txn;

use super::message::Message;
use super::subscription::Subscription;

/// The subscription of `group`, if any.
pub fn subscription(txn: &Txn<'_>, group: &str) -> Result<Option<Subscription>, StoreError> {
    txn.get(CF_DELIVERIES, &keys::subscription(group))
}

/// Every subscription as this batch sees it: those committed and those created earlier in it.
pub fn subscriptions(txn: &Txn<'_>) -> Result<Vec<Subscription>, StoreError> {
    let prefix = keys::record_kind_prefix(DeliveryRecord::Subscription);
    let end = keys::prefix_end(&prefix).unwrap_or_default();
    let keys = txn.scan_keys(CF_DELIVERIES, &prefix, &end, usize::MAX)?;
    let mut subs = Vec::with_capacity(keys.len());
    for key in keys {
        let Ok(group) = std::str::from_utf8(&key[1..]) else {
            continue;
        };
        subs.extend(subscription(txn, group)?);
    }
    Ok(subs)
}

/// Stores `sub`.
pub fn save(txn: &mut Txn<'_>, sub: &Subscription) -> Result<(), StoreError> {
    txn.put(CF_DELIVERIES, keys::subscription(&sub.group), sub)
}

/// The refusal for a group that does not exist.
pub fn not_found(group: &str) -> Rejection {
    Rejection::NotFound {
        kind: "subscription".into(),
        id: group.into(),
    }
}

/// The last offset published to `topic` (0 for a topic never published to).
pub fn head(txn: &Txn<'_>, topic: &str) -> Result<u64, StoreError> {
    Ok(txn
        .get::<u64>(CF_DELIVERIES, &keys::topic_head(topic))?
        .unwrap_or(0))
}

/// The message at `offset` of `topic`, if any.
pub fn message(txn: &Txn<'_>, topic: &str, offset: u64) -> Result<Option<Message>, StoreError> {
    txn.get(CF_MESSAGES, &keys::message(topic, offset))
}

/// The last offset of `topic` removed by retention (0 when none was).
pub fn floor(txn: &Txn<'_>, topic: &str) -> Result<u64, StoreError> {
    Ok(txn
        .get::<u64>(CF_DELIVERIES, &keys::topic_floor(topic))?
        .unwrap_or(0))
}

/// Whether `group` is still being removed.
pub fn is_removing(txn: &Txn<'_>, group: &str) -> Result<bool, StoreError> {
    Ok(txn
        .get_raw(CF_DELIVERIES, &keys::group_removing(group))?
        .is_some())
}

/// Whether `group` has a record of `kind` about the message at `offset`.
pub fn exists(
    txn: &Txn<'_>,
    kind: DeliveryRecord,
    group: &str,
    offset: u64,
) -> Result<bool, StoreError> {
    Ok(txn
        .get_raw(CF_DELIVERIES, &keys::delivery(kind, group, offset))?
        .is_some())
}

/// Whether `offset` still waits for delivery to `sub`.
pub fn is_pending(txn: &Txn<'_>, sub: &Subscription, offset: u64) -> Result<bool, StoreError> {
    if offset == 0 || offset > head(txn, &sub.topic)? {
        return Ok(false);
    }
    if exists(txn, DeliveryRecord::Redriven, &sub.group, offset)? {
        return Ok(true);
    }
    Ok(offset > sub.cursor && !exists(txn, DeliveryRecord::Settled, &sub.group, offset)?)
}

/// Deletes `key` from `deliveries` if it is there: a blind delete would leave a tombstone per
/// message that every later scan of the column family has to step over.
pub fn delete_if_present(txn: &mut Txn<'_>, key: Vec<u8>) -> Result<(), StoreError> {
    if txn.get_raw(CF_DELIVERIES, &key)?.is_some() {
        txn.delete(CF_DELIVERIES, key);
    }
    Ok(())
}
