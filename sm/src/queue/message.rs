//! A queue message as stored, and its id (`topic:offset`).
//!
//! Plain data: publishing lives in [`super::topic`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
