//! Queue messages: publishing into a topic, in log order, inside whatever command causes them.
//!
//! To ensure correctness:
//! - A topic's offsets are 1, 2, 3, ... with no gap, decided in log order from the topic's head
//!   (a `deliveries` record read through the [`Txn`]), so they are the same on every node and a
//!   subscription's cursor advances by point lookups, never by a scan that could miss writes
//!   staged earlier in the same apply.
//! - A message is written in the same batch as the state change that causes it (an order paid,
//!   closed, refunded), so there is no moment at which one exists without the other.
//! - A delayed message arms its delivery timer in the same batch (see `crate::queue_timers`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;
use crate::keys::{self, CF_DELIVERIES, CF_MESSAGES};
use crate::queue_timers;
use crate::txn::Txn;

/// A stored message. JSON in `messages`, so the change stream captures it as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `topic:offset`: unique, and names where the message lives.
    pub id: String,
    /// The topic.
    pub topic: String,
    /// Position in the topic, from 1.
    pub offset: u64,
    /// The key (`ordered_by_key` orders per key); may be empty.
    pub key: String,
    /// The publisher's JSON.
    pub payload: Value,
    /// The batch clock when it was published.
    pub published_at_ms: i64,
    /// Not delivered before this time.
    pub deliver_at_ms: i64,
}

/// The id of the message at `offset` of `topic`.
pub fn message_id(topic: &str, offset: u64) -> String {
    format!("{topic}:{offset}")
}

/// The offset named by a message id of `topic`, if it is one.
pub fn parse_message_id(topic: &str, id: &str) -> Option<u64> {
    let (t, offset) = id.rsplit_once(':')?;
    if t != topic {
        return None;
    }
    offset.parse().ok()
}

/// The last offset published to `topic` (0 for a topic never published to).
pub fn head(txn: &Txn<'_>, topic: &str) -> Result<u64, StoreError> {
    Ok(txn
        .get::<u64>(CF_DELIVERIES, &keys::topic_head(topic))?
        .unwrap_or(0))
}

/// The message at `offset` of `topic`, if any.
pub fn load(txn: &Txn<'_>, topic: &str, offset: u64) -> Result<Option<Message>, StoreError> {
    txn.get(CF_MESSAGES, &keys::message(topic, offset))
}

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
    let offset = head(txn, new.topic)? + 1;
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
    txn.put(CF_MESSAGES, keys::message(new.topic, offset), &message)?;
    if message.deliver_at_ms > now_ms {
        queue_timers::arm_delivery(txn, &message)?;
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_topic_and_offset() {
        assert_eq!(message_id("order.paid", 7), "order.paid:7");
        assert_eq!(parse_message_id("order.paid", "order.paid:7"), Some(7));
        assert_eq!(parse_message_id("a:b", "a:b:9"), Some(9));
        assert_eq!(parse_message_id("other", "order.paid:7"), None);
    }
}
