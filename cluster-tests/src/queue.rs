//! The queue's JSON bodies (`/work/shared/API.md`, "Queue"), as the tests send and read them.
//!
//! Written from the contract, like [`crate::model`], so a server drifting from it fails here.
//! Request bodies leave out every setting a test does not give, so the server's own default
//! applies exactly as it would for a user who left the field out; answers ignore fields the
//! server may add later.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/topics/{topic}/messages` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewMessage {
    /// Ordering and idempotency key; the server's empty key when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Any JSON.
    pub payload: Value,
    /// Held back this many seconds before its first delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_secs: Option<u64>,
}

impl NewMessage {
    /// A message of `payload` without a key or delay.
    pub fn new(payload: Value) -> Self {
        NewMessage {
            key: None,
            payload,
            delay_secs: None,
        }
    }

    /// A message of `payload` under `key`.
    pub fn keyed(key: impl Into<String>, payload: Value) -> Self {
        NewMessage {
            key: Some(key.into()),
            ..NewMessage::new(payload)
        }
    }

    /// The same message, first delivered `delay_secs` after it is published.
    pub fn delayed(self, delay_secs: u64) -> Self {
        NewMessage {
            delay_secs: Some(delay_secs),
            ..self
        }
    }
}

/// The answer to a publish.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Published {
    /// The message id, as deliveries carry it in `X-Orderq-Message-Id`.
    pub id: String,
    /// The topic it went to.
    pub topic: String,
    /// Its position in the topic, from 1.
    pub offset: u64,
    /// RFC 3339 time of its first delivery.
    pub deliver_at: String,
}

/// `push` of a subscription: where a push group posts each message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Push {
    /// The webhook.
    pub url: String,
    /// How long one call may take before it counts as failed; the server's default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// `backoff` of a subscription: the retry delays of a push group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial_ms: u64,
    /// Ceiling of the doubling delay.
    pub max_ms: u64,
}

/// Where a new group starts in its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// From the first message the topic holds.
    Earliest,
    /// From the next message published.
    Latest,
}

/// `PUT /admin/subscriptions/{group}` body. Built with [`Subscription::pull`] or
/// [`Subscription::push`] and the setters; every setting not set is left to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    /// The topic the group consumes.
    pub topic: String,
    /// The webhook of a push group; a pull group has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<Push>,
    /// Attempts before a message becomes a dead letter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Retry delays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Deliveries out at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Deliveries started per second (0 = unpaced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<u32>,
    /// One key's messages one at a time, in publish order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordered_by_key: Option<bool>,
    /// Where a new group starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<Start>,
    /// The key its webhook calls are signed with; drawn by the server when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

impl Subscription {
    /// A pull group on `topic` with the server's defaults.
    pub fn pull(topic: impl Into<String>) -> Self {
        Subscription {
            topic: topic.into(),
            push: None,
            max_attempts: None,
            backoff: None,
            max_in_flight: None,
            rate_per_sec: None,
            ordered_by_key: None,
            start: None,
            signing_secret: None,
        }
    }

    /// A push group on `topic` posting to `url`, without a call timeout of its own.
    pub fn push(topic: impl Into<String>, url: impl Into<String>) -> Self {
        Subscription {
            push: Some(Push {
                url: url.into(),
                timeout_ms: None,
            }),
            ..Subscription::pull(topic)
        }
    }

    /// The push call's timeout (no effect on a pull group).
    pub fn timeout_ms(mut self, timeout_ms: u64) -> Self {
        if let Some(push) = &mut self.push {
            push.timeout_ms = Some(timeout_ms);
        }
        self
    }

    /// Attempts before a message becomes a dead letter.
    pub fn max_attempts(self, max_attempts: u32) -> Self {
        Subscription {
            max_attempts: Some(max_attempts),
            ..self
        }
    }

    /// Retry delays from `initial_ms`, doubling up to `max_ms`.
    pub fn backoff(self, initial_ms: u64, max_ms: u64) -> Self {
        Subscription {
            backoff: Some(Backoff { initial_ms, max_ms }),
            ..self
        }
    }

    /// Deliveries out at once.
    pub fn max_in_flight(self, max_in_flight: u32) -> Self {
        Subscription {
            max_in_flight: Some(max_in_flight),
            ..self
        }
    }

    /// Deliveries started per second.
    pub fn rate_per_sec(self, rate_per_sec: u32) -> Self {
        Subscription {
            rate_per_sec: Some(rate_per_sec),
            ..self
        }
    }

    /// Delivers one key's messages one at a time, in publish order.
    pub fn ordered_by_key(self) -> Self {
        Subscription {
            ordered_by_key: Some(true),
            ..self
        }
    }

    /// Where a new group starts in its topic.
    pub fn start(self, start: Start) -> Self {
        Subscription {
            start: Some(start),
            ..self
        }
    }

    /// The key its webhook calls are signed with.
    pub fn signing_secret(self, secret: impl Into<String>) -> Self {
        Subscription {
            signing_secret: Some(secret.into()),
            ..self
        }
    }
}

/// The answer to a subscription's PUT.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Subscribed {
    /// The group.
    pub group: String,
    /// Its topic.
    pub topic: String,
    /// The signing key, answered only when it was drawn or given in this PUT.
    #[serde(default)]
    pub signing_secret: Option<String>,
}

/// `POST /v1/subscriptions/{group}/receive` body: how many messages to lease, how long to wait
/// for the first, how long the lease lasts. Absent values are the server's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Receive {
    /// Most messages in the answer.
    pub max: usize,
    /// Long-poll time while nothing is visible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// How long a leased message stays invisible to other receives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility_ms: Option<u64>,
}

impl Receive {
    /// Up to `max` messages, waiting up to `wait_ms` for the first, with the server's lease.
    pub fn waiting(max: usize, wait_ms: u64) -> Self {
        Receive {
            max,
            wait_ms: Some(wait_ms),
            visibility_ms: None,
        }
    }

    /// The same receive, leasing for `visibility_ms`.
    pub fn visibility_ms(self, visibility_ms: u64) -> Self {
        Receive {
            visibility_ms: Some(visibility_ms),
            ..self
        }
    }
}

/// One message a receive leased.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LeasedMessage {
    /// The message id.
    pub id: String,
    /// Its topic.
    #[serde(default)]
    pub topic: String,
    /// Its key.
    #[serde(default)]
    pub key: String,
    /// Its payload.
    #[serde(default)]
    pub payload: Value,
    /// Which delivery of it this is, from 1.
    pub attempt: u32,
    /// What settles this lease (ack or nack), in this group only.
    pub receipt: String,
}

/// The answer to a receive.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Leased {
    /// The leased messages, possibly none.
    pub messages: Vec<LeasedMessage>,
}

impl Leased {
    /// The receipts of every leased message, to ack or nack them all.
    pub fn receipts(&self) -> Vec<String> {
        self.messages.iter().map(|m| m.receipt.clone()).collect()
    }
}

/// `POST .../ack` and `.../nack` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipts<'a> {
    /// Which leases to settle.
    pub receipts: &'a [String],
    /// A nack's delay before the message is visible again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

/// The answer to an ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Acked {
    /// Leases this ack settled (a receipt already settled, or not of this group, counts 0).
    pub acked: u64,
}

/// The answer to a nack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Nacked {
    /// Leases this nack handed back.
    pub nacked: u64,
}

/// One failed delivery attempt of a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Attempt {
    /// RFC 3339 time of the attempt.
    pub at: String,
    /// Why it failed.
    pub error: String,
}

/// A message its group gave up on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeadLetter {
    /// The message id.
    pub id: String,
    /// Its topic.
    pub topic: String,
    /// Its key.
    pub key: String,
    /// Its payload.
    pub payload: Value,
    /// Every attempt that failed, oldest first.
    pub attempts: Vec<Attempt>,
    /// RFC 3339 time it became dead.
    pub dead_at: String,
}

/// `GET /admin/subscriptions/{group}/dead` answer: one page.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeadLetterPage {
    /// The dead letters of this page.
    pub dead: Vec<DeadLetter>,
    /// The `after` of the next page; `None` on the last.
    pub next: Option<String>,
}

/// `POST .../dead/redrive` body: the letters to deliver again, all when `ids` is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redrive<'a> {
    /// Which dead letters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<&'a [String]>,
}

/// The answer to a redrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Redriven {
    /// Dead letters put back to be delivered.
    pub redriven: u64,
}

/// The answer to `DELETE /admin/subscriptions/{group}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Removed {
    /// Whether there was such a group.
    pub removed: bool,
}

/// One subscription's delivery figures, as `GET /admin/subscriptions` lists them (the
/// settings beside them are ignored here).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct SubscriptionStats {
    /// The consumer group.
    pub group: String,
    /// The topic it consumes.
    pub topic: String,
    /// Messages published and not yet settled (acknowledged or dead): waiting, retrying or in
    /// flight.
    pub backlog: u64,
    /// Deliveries the leader has out right now.
    pub in_flight: u64,
    /// Messages acknowledged.
    pub delivered: u64,
    /// Messages that became dead letters.
    pub dead: u64,
    /// Failed attempts, when the server reports them.
    #[serde(default)]
    pub failures: u64,
    /// Messages ever published to its topic, when the server reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<u64>,
}

/// `GET /admin/subscriptions` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionList {
    /// Every group.
    pub subscriptions: Vec<SubscriptionStats>,
}

impl SubscriptionList {
    /// The figures of `group`, if it exists.
    pub fn group(self, group: &str) -> Option<SubscriptionStats> {
        self.subscriptions.into_iter().find(|s| s.group == group)
    }
}
