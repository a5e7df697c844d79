//! The queue's timers: a delayed message waits in the time wheel until its `deliver_at`, a failed
//! delivery until its retry time. When such a timer fires, the message is marked ready for each
//! group still waiting for it, and the leader's consumer scheduler loads it then, so the
//! scheduler's memory holds work that is due rather than everything that will be due some day.
//!
//! To ensure correctness:
//! - A timer is armed in the same batch as what sets its time (the publish, the failed attempt)
//!   and a retry timer is disarmed in the same batch as the delivery settles or fails again, so
//!   the timer and the state it waits on never disagree.
//! - Firing re-checks the state: a delivery that settled meanwhile, or a retry timer for an
//!   attempt that is no longer the latest, marks nothing.
//! - While a message's timer is armed, the scheduler's scan of an unordered group skips it
//!   ([`waits_on_timer`]); once the timer fired, the scan finds it as well as the ready marker,
//!   and the scheduler holds each offset once. Ordered groups keep such messages in memory, since
//!   a waiting message still blocks the later messages of its key.

use std::collections::HashMap;

use crate::error::StoreError;
use crate::keys::{self, DeliveryRecord, TimerKind, CF_DELIVERIES, CF_TIMERS};
use crate::timers;
use crate::txn::Txn;

use super::message::Message;
use super::store;
use super::subscription::{Attempts, Subscription};

/// The target of a retry timer: which group's delivery of which offset.
pub fn retry_target(group: &str, offset: u64) -> String {
    format!("{group}:{offset}")
}

/// `(name, offset)` of a `name:offset` timer target (a message id or a retry target). The name
/// may itself contain `:`; the offset is after the last one.
pub fn parse_target(target: &str) -> Option<(&str, u64)> {
    let (name, offset) = target.rsplit_once(':')?;
    Some((name, offset.parse().ok()?))
}

/// The key of `message`'s delivery timer, if it was published with a delay.
pub fn delivery_timer(message: &Message) -> Option<Vec<u8>> {
    (message.deliver_at_ms > message.published_at_ms).then(|| {
        keys::timer(
            message.deliver_at_ms,
            TimerKind::DeliverMessage,
            &message.id,
        )
    })
}

/// The key of the retry timer of `group`'s delivery of `offset` at `retry_at_ms`.
pub fn retry_timer(group: &str, offset: u64, retry_at_ms: i64) -> Vec<u8> {
    keys::timer(
        retry_at_ms,
        TimerKind::RetryDelivery,
        &retry_target(group, offset),
    )
}

/// Arms the delivery timer of a message just published with a delay.
pub fn arm_delivery(txn: &mut Txn<'_>, message: &Message) -> Result<(), StoreError> {
    match delivery_timer(message) {
        Some(key) => timers::arm(txn, key),
        None => Ok(()),
    }
}

/// Whether the delivery of `message` to `group` (with its failed `attempts`) waits on a timer
/// that has not fired yet.
pub fn waits_on_timer(
    txn: &Txn<'_>,
    group: &str,
    message: &Message,
    attempts: Option<&Attempts>,
) -> Result<bool, StoreError> {
    if let Some(key) = delivery_timer(message) {
        if txn.get_raw(CF_TIMERS, &key)?.is_some() {
            return Ok(true);
        }
    }
    match attempts {
        Some(a) if a.retry_at_ms > 0 => Ok(txn
            .get_raw(
                CF_TIMERS,
                &retry_timer(group, message.offset, a.retry_at_ms),
            )?
            .is_some()),
        _ => Ok(false),
    }
}

/// The groups consuming each topic, read once per fired batch of delivery timers.
#[derive(Default)]
pub struct GroupsByTopic(Option<HashMap<String, Vec<String>>>);

impl GroupsByTopic {
    /// The groups consuming `topic`, as this batch sees them.
    fn of(&mut self, txn: &Txn<'_>, topic: &str) -> Result<&[String], StoreError> {
        if self.0.is_none() {
            let mut by_topic: HashMap<String, Vec<String>> = HashMap::new();
            for sub in store::subscriptions(txn)? {
                by_topic.entry(sub.topic).or_default().push(sub.group);
            }
            self.0 = Some(by_topic);
        }
        Ok(self
            .0
            .as_ref()
            .and_then(|m| m.get(topic))
            .map_or(&[], Vec::as_slice))
    }
}

/// A delayed message's timer fired: it is ready for every group still waiting for it.
pub fn fire_delivery(
    txn: &mut Txn<'_>,
    target: &str,
    groups: &mut GroupsByTopic,
) -> Result<(), StoreError> {
    let Some((topic, offset)) = parse_target(target) else {
        return Ok(());
    };
    if store::message(txn, topic, offset)?.is_none() {
        return Ok(());
    }
    for group in groups.of(txn, topic)?.to_vec() {
        let Some(mut sub) = store::subscription(txn, &group)? else {
            continue;
        };
        if store::is_pending(txn, &sub, offset)? {
            mark_ready(txn, &mut sub, offset)?;
        }
    }
    Ok(())
}

/// A retry timer fired: the delivery is ready again, if it still waits for this very retry.
pub fn fire_retry(txn: &mut Txn<'_>, due_ms: i64, target: &str) -> Result<(), StoreError> {
    let Some((group, offset)) = parse_target(target) else {
        return Ok(());
    };
    let Some(mut sub) = store::subscription(txn, group)? else {
        return Ok(());
    };
    if !store::is_pending(txn, &sub, offset)? {
        return Ok(());
    }
    let attempts: Option<Attempts> = txn.get(
        CF_DELIVERIES,
        &keys::delivery(DeliveryRecord::Attempts, group, offset),
    )?;
    if attempts.is_some_and(|a| a.retry_at_ms == due_ms) {
        mark_ready(txn, &mut sub, offset)?;
    }
    Ok(())
}

/// Marks `offset` ready for `sub` and bumps its ready count, so the scheduler looks.
fn mark_ready(txn: &mut Txn<'_>, sub: &mut Subscription, offset: u64) -> Result<(), StoreError> {
    txn.put_raw(
        CF_DELIVERIES,
        keys::delivery(DeliveryRecord::Ready, &sub.group, offset),
        Vec::new(),
    );
    sub.ready_marks += 1;
    store::save(txn, sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_their_group_and_offset() {
        assert_eq!(
            parse_target(&retry_target("billing", 42)),
            Some(("billing", 42))
        );
        assert_eq!(parse_target("a:b:7"), Some(("a:b", 7)));
        assert_eq!(parse_target("no-offset"), None);
        assert_eq!(parse_target("t:x"), None);
    }
}
