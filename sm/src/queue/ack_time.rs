//! When a group acknowledged a message: what an order's trace answers with "acked when".
//!
//! Keeping one record per acknowledged message would add a key to every delivery. Acks mostly
//! settle the messages right after the cursor, so the queue keeps instead one *passage mark*
//! per `RecordDeliveries` that moved a group's cursor, keyed by the cursor it moved to: the first
//! mark at or after an offset is when the cursor passed it, which for a message acknowledged in
//! order is when it was acknowledged. The other acks get a record of their own: one beyond the
//! cursor (its `Settled` marker carries the time, kept when the cursor passes it) and one behind
//! it (a redriven dead letter, a late answer to one).
//!
//! To ensure correctness:
//! - The times are the batch clock of the command (`now_ms`), never a node's clock, so every
//!   replica writes the same marks.
//! - A reset of the group's position moves its cursor back, so older marks no longer describe
//!   it. Every mark carries the group's reset count, and marks of another count are ignored; a
//!   reset need not delete them (it could be millions).
//! - Retention prunes marks at or below the topic's floor in the command that moves the floor,
//!   at most [`super::MAX_TRIM`] per group per kind, so marks do not outlive their messages.

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::keys::{self, DeliveryRecord, CF_DELIVERIES};
use crate::txn::Txn;

use super::subscription::Subscription;

/// How many passage marks of older resets a lookup steps over before it gives up.
const STALE_MARKS_SKIPPED: usize = 16;

/// When a message, or every message up to a cursor, was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckMark {
    /// The batch clock of the command that settled it.
    pub at_ms: i64,
    /// The group's reset count then ([`Subscription::resets`]).
    pub resets: u64,
}

impl AckMark {
    /// A mark for `sub` at `now_ms`.
    fn now(sub: &Subscription, now_ms: i64) -> Self {
        AckMark {
            at_ms: now_ms,
            resets: sub.resets,
        }
    }
}

/// Records that `sub`'s cursor moved to where it is now at `now_ms`.
pub fn cursor_passed(txn: &mut Txn<'_>, sub: &Subscription, now_ms: i64) -> Result<(), StoreError> {
    put_mark(
        txn,
        DeliveryRecord::CursorPassed,
        sub,
        sub.cursor,
        AckMark::now(sub, now_ms),
    )
}

/// Records that `sub` acknowledged the message at `offset`, behind its cursor, at `now_ms`.
pub fn acked_behind(
    txn: &mut Txn<'_>,
    sub: &Subscription,
    offset: u64,
    now_ms: i64,
) -> Result<(), StoreError> {
    put_mark(
        txn,
        DeliveryRecord::AckedBehind,
        sub,
        offset,
        AckMark::now(sub, now_ms),
    )
}

/// Marks the message at `offset`, beyond `sub`'s cursor, settled at `now_ms` (the `Settled`
/// marker that moves the cursor past it once the offsets before it are settled).
pub fn settled_beyond(
    txn: &mut Txn<'_>,
    sub: &Subscription,
    offset: u64,
    now_ms: i64,
) -> Result<(), StoreError> {
    put_mark(
        txn,
        DeliveryRecord::Settled,
        sub,
        offset,
        AckMark::now(sub, now_ms),
    )
}

/// Stages `mark` as `sub`'s record of `kind` about `offset`.
fn put_mark(
    txn: &mut Txn<'_>,
    kind: DeliveryRecord,
    sub: &Subscription,
    offset: u64,
    mark: AckMark,
) -> Result<(), StoreError> {
    txn.put(
        CF_DELIVERIES,
        keys::delivery(kind, &sub.group, offset),
        &mark,
    )
}

/// Keeps the time of the `Settled` marker `value` of `offset`, which the cursor just passed, as
/// a record of its own: the passage mark would say when the messages before it were settled.
pub fn keep_marker_time(
    txn: &mut Txn<'_>,
    sub: &Subscription,
    offset: u64,
    value: &[u8],
) -> Result<(), StoreError> {
    // Markers written before ack times were kept are empty.
    if let Ok(mark) = serde_json::from_slice::<AckMark>(value) {
        put_mark(txn, DeliveryRecord::AckedBehind, sub, offset, mark)?;
    }
    Ok(())
}

/// When `sub` settled the message at `offset`, if the state knows: `None` for a message settled
/// before this was recorded, before a reset, or only by where the group started.
pub fn settled_at(
    txn: &Txn<'_>,
    sub: &Subscription,
    offset: u64,
) -> Result<Option<i64>, StoreError> {
    let current = |mark: Option<AckMark>| mark.filter(|m| m.resets == sub.resets).map(|m| m.at_ms);
    if offset > sub.cursor {
        let key = keys::delivery(DeliveryRecord::Settled, &sub.group, offset);
        return Ok(txn
            .get_raw(CF_DELIVERIES, &key)?
            .and_then(|value| serde_json::from_slice(&value).ok())
            .and_then(|mark| current(Some(mark))));
    }
    let behind = keys::delivery(DeliveryRecord::AckedBehind, &sub.group, offset);
    if let Some(at_ms) = current(txn.get(CF_DELIVERIES, &behind)?) {
        return Ok(Some(at_ms));
    }
    let from = keys::delivery(DeliveryRecord::CursorPassed, &sub.group, offset);
    let to = keys::delivery(
        DeliveryRecord::CursorPassed,
        &sub.group,
        sub.cursor.saturating_add(1),
    );
    for key in txn.scan_keys(CF_DELIVERIES, &from, &to, STALE_MARKS_SKIPPED)? {
        if let Some(at_ms) = current(txn.get(CF_DELIVERIES, &key)?) {
            return Ok(Some(at_ms));
        }
    }
    Ok(None)
}

/// Deletes `group`'s marks at or below `floor`, at most `limit` of each kind.
pub fn prune(txn: &mut Txn<'_>, group: &str, floor: u64, limit: usize) -> Result<(), StoreError> {
    for kind in [DeliveryRecord::CursorPassed, DeliveryRecord::AckedBehind] {
        let from = keys::delivery_prefix(kind, group);
        let to = keys::delivery(kind, group, floor.saturating_add(1));
        for key in txn.scan_keys(CF_DELIVERIES, &from, &to, limit)? {
            txn.delete(CF_DELIVERIES, key);
        }
    }
    Ok(())
}
