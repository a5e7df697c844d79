//! Queue retention: a topic's oldest messages, once every group has settled them and they are
//! older than the retention, are removed, so the `messages` column family does not grow forever.
//!
//! To ensure correctness:
//! - Nothing a group still waits for goes: a message is removed only when every subscription of
//!   its topic (those created earlier in the same batch included) has its cursor at or past it,
//!   that is, acknowledged it or made it a dead letter. A dead letter keeps its own copy of the
//!   message, and redriving one whose message is gone puts the message back from that copy.
//! - Trimming runs in `apply`, from a leader's proposal, and re-checks the cursors and the age
//!   with the batch clock, so every node removes the same messages.
//! - A topic's floor (the last offset removed) is kept beside its head: the next trim starts
//!   after it, and a subscription created with `start: earliest` begins at the oldest message
//!   still held. Messages go in offset order, at most [`MAX_TRIM`] per command.
//! - The groups' ack times at or below the new floor go with the messages (`ack_time::prune`).

use super::ack_time;
use super::message::Message;
use super::store;
use super::timers as queue_timers;
use crate::command::TrimMessages;
use crate::error::StoreError;
use crate::keys::{self, CF_DELIVERIES, CF_MESSAGES};
use crate::outcome::{Applied, Outcome};
use crate::timers;
use crate::txn::Txn;

/// Most messages one `TrimMessages` removes, so one command stays a bounded write.
pub const MAX_TRIM: u64 = 1_000;

/// Removes what `trim` asks for and the state allows; answers the topic's floor after it.
pub fn trim(txn: &mut Txn<'_>, now_ms: i64, trim: &TrimMessages) -> Result<Outcome, StoreError> {
    let old_floor = store::floor(txn, &trim.topic)?;
    let groups: Vec<_> = store::subscriptions(txn)?
        .into_iter()
        .filter(|sub| sub.topic == trim.topic)
        .collect();
    let settled_by_all = groups
        .iter()
        .map(|sub| sub.cursor)
        .min()
        .unwrap_or(u64::MAX);
    let last = trim
        .up_to_offset
        .min(store::head(txn, &trim.topic)?)
        .min(settled_by_all)
        .min(old_floor.saturating_add(MAX_TRIM));
    let retention_ms = i64::try_from(trim.retention_ms).unwrap_or(i64::MAX);
    let mut new_floor = old_floor;
    for offset in old_floor + 1..=last {
        let key = keys::message(&trim.topic, offset);
        if let Some(message) = txn.get::<Message>(CF_MESSAGES, &key)? {
            if message.published_at_ms.saturating_add(retention_ms) > now_ms {
                break;
            }
            if let Some(timer) = queue_timers::delivery_timer(&message) {
                timers::disarm(txn, timer)?;
            }
            txn.delete(CF_MESSAGES, key);
        }
        new_floor = offset;
    }
    if new_floor != old_floor {
        txn.put(CF_DELIVERIES, keys::topic_floor(&trim.topic), &new_floor)?;
        let limit = usize::try_from(MAX_TRIM).unwrap_or(usize::MAX);
        for sub in &groups {
            ack_time::prune(txn, &sub.group, new_floor, limit)?;
        }
    }
    Ok(Ok(Applied::Trimmed(new_floor)))
}
