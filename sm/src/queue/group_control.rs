//! An operator's controls over a consumer group: pause and resume its deliveries, and move its
//! position (reset to the earliest or latest message, an offset or a time).
//!
//! To ensure correctness:
//! - Pausing changes no position and no record: the scheduler stops handing the group's messages
//!   out and anything in flight settles as usual, so a resume continues where it stopped.
//! - A reset leaves the group's records as if it had just been created at the new cursor: the
//!   settled markers, attempts (with their retry timers), ready and redriven markers go; dead
//!   letters stay (they are the operator's to redrive or purge). The cursor is clamped to what the
//!   topic holds (`floor..=head`), decided by the state alone.
//! - A reset is one bounded write: a group with more than [`RESET_RECORDS`] such records is
//!   refused (pause it and let it settle, or remove it) rather than reset in a huge entry.
//! - `resets` is bumped, so the leader's scheduler drops what it read past the old position.

use crate::command::{PauseSubscription, ResetSubscription};
use crate::error::StoreError;
use crate::keys::{self, DeliveryRecord, CF_DELIVERIES};
use crate::outcome::{Applied, Outcome, Rejection};
use crate::timers;
use crate::txn::Txn;

use super::store;
use super::subscription::Attempts;
use super::timers as queue_timers;

/// Most delivery records one reset removes: the bound on its write.
pub const RESET_RECORDS: usize = 10_000;

/// The per-message records a reset clears (dead letters stay).
const RESET_KINDS: [DeliveryRecord; 4] = [
    DeliveryRecord::Settled,
    DeliveryRecord::Attempts,
    DeliveryRecord::Ready,
    DeliveryRecord::Redriven,
];

/// Pauses or resumes `pause.group`; answers the group.
pub fn pause(txn: &mut Txn<'_>, pause: &PauseSubscription) -> Result<Outcome, StoreError> {
    let Some(mut sub) = store::subscription(txn, &pause.group)? else {
        return Ok(Err(store::not_found(&pause.group)));
    };
    if sub.paused != pause.paused {
        sub.paused = pause.paused;
        store::save(txn, &sub)?;
    }
    Ok(Ok(Applied::Subscription(sub)))
}

/// Moves `reset.group`'s cursor to `reset.cursor` (clamped to the topic); answers the group.
pub fn reset(txn: &mut Txn<'_>, reset: &ResetSubscription) -> Result<Outcome, StoreError> {
    let Some(mut sub) = store::subscription(txn, &reset.group)? else {
        return Ok(Err(store::not_found(&reset.group)));
    };
    let mut records = Vec::new();
    for kind in RESET_KINDS {
        let prefix = keys::delivery_prefix(kind, &sub.group);
        let end = keys::prefix_end(&prefix).unwrap_or_default();
        let room = RESET_RECORDS + 1 - records.len();
        records.extend(
            txn.scan_keys(CF_DELIVERIES, &prefix, &end, room)?
                .into_iter()
                .map(|key| (kind, key)),
        );
        if records.len() > RESET_RECORDS {
            return Ok(Err(Rejection::Invalid(format!(
                "group {} holds more than {RESET_RECORDS} delivery records; pause it and let \
                 them settle before a reset",
                sub.group
            ))));
        }
    }
    for (kind, key) in records {
        if kind == DeliveryRecord::Attempts {
            let attempts = txn.get::<Attempts>(CF_DELIVERIES, &key)?;
            if let (Some(attempts), Some(offset)) = (attempts, keys::trailing_offset(&key)) {
                if attempts.retry_at_ms > 0 {
                    timers::disarm(
                        txn,
                        queue_timers::retry_timer(&sub.group, offset, attempts.retry_at_ms),
                    )?;
                }
            }
        }
        txn.delete(CF_DELIVERIES, key);
    }
    let floor = store::floor(txn, &sub.topic)?;
    let head = store::head(txn, &sub.topic)?;
    sub.cursor = reset.cursor.clamp(floor, head.max(floor));
    sub.resets += 1;
    store::save(txn, &sub)?;
    Ok(Ok(Applied::Subscription(sub)))
}
