//! Queue messages: publishing into a topic, in log order, inside whatever command causes them.
//!
//! To ensure correctness:
//! - A topic's offsets are 1, 2, 3, ... with no gap, decided in log order from the topic's head
//!   (a `deliveries` record read through the [`Txn`]), so they are the same on every node and a
//!   subscription's cursor advances by point lookups, never by a scan that could miss writes
//!   staged earlier in the same apply.
//! - A message is written in the same batch as the state change that causes it (an order paid,
//!   closed, refunded), so there is no moment at which one exists without the other.
//! - A delayed message arms its delivery timer in the same batch (see [`super::timers`]).

use serde_json::Value;

use crate::command::Publish;
use crate::error::StoreError;
use crate::keys::{self, CF_DELIVERIES, CF_MESSAGES};
use crate::outcome::{Applied, Outcome, Rejection};
use crate::txn::Txn;

use super::message::{message_id, Message};
use super::store;
use super::timers as queue_timers;

/// What to publish.
pub struct NewMessage<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The key.
    pub key: &'a str,
    /// The payload.
    pub payload: Value,
    /// Earliest delivery time.
    pub deliver_at_ms: i64,
}

/// Appends `new` to its topic at the batch clock `now_ms`; answers the stored message.
pub fn publish(txn: &mut Txn<'_>, now_ms: i64, new: NewMessage<'_>) -> Result<Message, StoreError> {
    let offset = store::head(txn, new.topic)? + 1;
    txn.put(CF_DELIVERIES, keys::topic_head(new.topic), &offset)?;
    let message = Message {
        id: message_id(new.topic, offset),
        topic: new.topic.to_string(),
        offset,
        key: new.key.to_string(),
        payload: new.payload,
        published_at_ms: now_ms,
        deliver_at_ms: new.deliver_at_ms.max(now_ms),
    };
    // The offset after the head: no message was ever stored under it.
    txn.put_new(CF_MESSAGES, keys::message(new.topic, offset), &message)?;
    if message.deliver_at_ms > now_ms {
        queue_timers::arm_delivery(txn, &message)?;
    }
    Ok(message)
}

/// Publishes a client's message; its delivery time is the later of `deliver_at` and the delay
/// from the batch clock. (Which topics a client may not publish to is the dispatcher's check,
/// made before this.)
pub fn publish_command(
    txn: &mut Txn<'_>,
    now_ms: i64,
    publish: &Publish,
) -> Result<Outcome, StoreError> {
    if publish.topic.is_empty() {
        return Ok(Err(Rejection::Invalid("empty topic".into())));
    }
    let Ok(payload) = serde_json::from_str(&publish.payload_json) else {
        return Ok(Err(Rejection::Invalid("payload is not JSON".into())));
    };
    let delay = i64::try_from(publish.delay_ms).unwrap_or(i64::MAX);
    let message = self::publish(
        txn,
        now_ms,
        NewMessage {
            topic: &publish.topic,
            key: &publish.key,
            payload,
            deliver_at_ms: now_ms.saturating_add(delay).max(publish.deliver_at_ms),
        },
    )?;
    Ok(Ok(Applied::Published(message)))
}
