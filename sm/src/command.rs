//! Commands: what a Raft entry carries. Prost messages, so the log and the peer wire hold a
//! compact, versionable encoding; serde too, because openraft's `serde` feature asks app data to
//! be serialisable.
//!
//! A [`CommandBatch`] is one Raft entry: the write batcher coalesces concurrent requests into it
//! and the leader stamps `now_ms` once, so `apply` never reads a clock.

use serde::{Deserialize, Serialize};

/// One Raft entry's worth of commands, applied in order with one clock reading.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct CommandBatch {
    /// Wall-clock milliseconds since the epoch, stamped by the leader when it proposed the batch.
    #[prost(int64, tag = "1")]
    pub now_ms: i64,
    /// The commands, each answered on its own.
    #[prost(message, repeated, tag = "2")]
    pub commands: Vec<Command>,
}

/// One client request, as the state machine sees it.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct Command {
    /// The client's `Idempotency-Key`, scoped by the API; empty when the request had none.
    #[prost(string, tag = "1")]
    pub idempotency_key: String,
    /// Hash of the request (method, path, body): a reused key with another body is refused.
    #[prost(bytes = "vec", tag = "2")]
    pub request_hash: Vec<u8>,
    /// What to do.
    #[prost(
        oneof = "Action",
        tags = "3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18"
    )]
    pub action: Option<Action>,
}

/// The state changes a client can ask for.
#[derive(Clone, PartialEq, prost::Oneof, Serialize, Deserialize)]
pub enum Action {
    /// Load or change a SKU's stock and price.
    #[prost(message, tag = "3")]
    PutSku(PutSku),
    /// Place an order, reserving its stock.
    #[prost(message, tag = "4")]
    CreateOrder(CreateOrder),
    /// Record the payment of an order.
    #[prost(message, tag = "5")]
    PayOrder(PayOrder),
    /// Cancel an unpaid order, releasing its stock.
    #[prost(message, tag = "6")]
    CancelOrder(CancelOrder),
    /// Fire due timers (proposed by the leader's time wheel).
    #[prost(message, tag = "7")]
    FireTimers(FireTimers),
    /// Buy one unit at a flash sale (see `crate::seckill`).
    #[prost(message, tag = "8")]
    Seckill(Seckill),
    /// Publish a message to a topic (see `crate::queue`).
    #[prost(message, tag = "9")]
    Publish(Publish),
    /// Create or change a subscription (see `crate::subscription`).
    #[prost(message, tag = "10")]
    PutSubscription(PutSubscription),
    /// Record delivery outcomes decided by the leader's scheduler: acks and failed attempts.
    #[prost(message, tag = "11")]
    RecordDeliveries(RecordDeliveries),
    /// Move dead letters back to delivery.
    #[prost(message, tag = "12")]
    Redrive(Redrive),
    /// Ask for the refund of a paid order (see `crate::refund`).
    #[prost(message, tag = "13")]
    RefundOrder(RefundOrder),
    /// Remove a topic's oldest settled messages past the retention (see `crate::retention`).
    #[prost(message, tag = "14")]
    TrimMessages(TrimMessages),
    /// Remove a consumer group and its delivery records (see `crate::group_removal`).
    #[prost(message, tag = "15")]
    RemoveSubscription(RemoveSubscription),
    /// Delete dead letters of a group for good (an operator's purge).
    #[prost(message, tag = "16")]
    PurgeDead(PurgeDead),
    /// Stop or restart deliveries of a group without losing its position.
    #[prost(message, tag = "17")]
    PauseSubscription(PauseSubscription),
    /// Move a group's position to another offset of its topic.
    #[prost(message, tag = "18")]
    ResetSubscription(ResetSubscription),
}

/// Deletes dead letters of a group: an operator decided they will never be delivered.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct PurgeDead {
    /// The consumer group.
    #[prost(string, tag = "1")]
    pub group: String,
    /// Offsets of the dead letters (the API resolves "all" to pages it read), at most
    /// `queue::MAX_REDRIVE` per command.
    #[prost(uint64, repeated, tag = "2")]
    pub offsets: Vec<u64>,
}

/// Pauses or resumes a group: a paused group keeps its position and records, and the leader's
/// scheduler hands none of its messages out until it is resumed.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct PauseSubscription {
    /// The consumer group.
    #[prost(string, tag = "1")]
    pub group: String,
    /// `true` pauses, `false` resumes.
    #[prost(bool, tag = "2")]
    pub paused: bool,
}

/// Moves a group's cursor: every offset up to `cursor` counts as settled, every later one as
/// pending. The API resolves earliest, latest and a time to an offset against the leader's state;
/// `apply` clamps it to what the topic holds.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct ResetSubscription {
    /// The consumer group.
    #[prost(string, tag = "1")]
    pub group: String,
    /// The new cursor: the last offset counted as settled (0 for the topic's beginning).
    #[prost(uint64, tag = "2")]
    pub cursor: u64,
}

/// Publishes one message. The offset is the topic's next one, decided in log order.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct Publish {
    /// The topic, created on first publish.
    #[prost(string, tag = "1")]
    pub topic: String,
    /// The message key (ordering unit of `ordered_by_key`); may be empty.
    #[prost(string, tag = "2")]
    pub key: String,
    /// The payload, JSON text (validated by the API, re-checked by `apply`).
    #[prost(string, tag = "3")]
    pub payload_json: String,
    /// Delay from the batch's clock before the message may be delivered.
    #[prost(uint64, tag = "4")]
    pub delay_ms: u64,
    /// Absolute earliest delivery time (ms since the epoch); 0 for none. The later of this and
    /// `delay_ms` wins.
    #[prost(int64, tag = "5")]
    pub deliver_at_ms: i64,
}

/// Creates a subscription or changes its settings (the topic and cursor of an existing one stay).
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct PutSubscription {
    /// The consumer group.
    #[prost(string, tag = "1")]
    pub group: String,
    /// The topic it consumes.
    #[prost(string, tag = "2")]
    pub topic: String,
    /// Webhook URL; empty for a pull subscription.
    #[prost(string, tag = "3")]
    pub push_url: String,
    /// Push timeout per attempt.
    #[prost(uint64, tag = "4")]
    pub timeout_ms: u64,
    /// Attempts before a message becomes a dead letter.
    #[prost(uint32, tag = "5")]
    pub max_attempts: u32,
    /// First retry delay.
    #[prost(uint64, tag = "6")]
    pub backoff_initial_ms: u64,
    /// Largest retry delay.
    #[prost(uint64, tag = "7")]
    pub backoff_max_ms: u64,
    /// Most messages delivered and not yet settled at once.
    #[prost(uint32, tag = "8")]
    pub max_in_flight: u32,
    /// Most deliveries per second; 0 for no limit.
    #[prost(uint32, tag = "9")]
    pub rate_per_sec: u32,
    /// One message per key in flight, in offset order.
    #[prost(bool, tag = "10")]
    pub ordered_by_key: bool,
    /// A new subscription starts after the topic's current head instead of at its beginning.
    #[prost(bool, tag = "11")]
    pub start_latest: bool,
    /// Push groups: the key deliveries are signed with (`X-Orderq-Signature`). Empty keeps
    /// the group's current key.
    #[prost(string, tag = "12")]
    pub signing_secret: String,
    /// The API drew `signing_secret` because the request named none: a group that already has
    /// a key keeps it (a PUT that only changes settings does not rotate the key).
    #[prost(bool, tag = "13")]
    pub signing_secret_drawn: bool,
}

/// Delivery outcomes of one group, decided by the leader's scheduler and batched.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct RecordDeliveries {
    /// The consumer group.
    #[prost(string, tag = "1")]
    pub group: String,
    /// Offsets the consumer acknowledged.
    #[prost(uint64, repeated, tag = "2")]
    pub acks: Vec<u64>,
    /// Failed attempts.
    #[prost(message, repeated, tag = "3")]
    pub failures: Vec<FailedDelivery>,
}

/// One failed delivery attempt.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct FailedDelivery {
    /// The message's offset in the group's topic.
    #[prost(uint64, tag = "1")]
    pub offset: u64,
    /// What went wrong (status, timeout, nack).
    #[prost(string, tag = "2")]
    pub error: String,
    /// When to try again, with the leader's jitter already applied, so `apply` stays
    /// deterministic.
    #[prost(int64, tag = "3")]
    pub retry_at_ms: i64,
}

/// Moves dead letters of a group back to delivery.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct Redrive {
    /// The consumer group.
    #[prost(string, tag = "1")]
    pub group: String,
    /// Offsets of the dead letters (the API resolves "all" to the list it read).
    #[prost(uint64, repeated, tag = "2")]
    pub offsets: Vec<u64>,
}

/// Removes the oldest messages of a topic that every group has settled and that are older than
/// the retention; proposed by the leader's queue trimmer, re-checked by `apply`.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct TrimMessages {
    /// The topic.
    #[prost(string, tag = "1")]
    pub topic: String,
    /// Remove nothing past this offset.
    #[prost(uint64, tag = "2")]
    pub up_to_offset: u64,
    /// Remove only messages published at least this long before the batch clock.
    #[prost(uint64, tag = "3")]
    pub retention_ms: u64,
}

/// Removes a consumer group: its settings at once, its delivery records in bounded steps (the
/// leader repeats the command until none is left).
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct RemoveSubscription {
    /// The consumer group.
    #[prost(string, tag = "1")]
    pub group: String,
}

/// Asks for the refund of a paid order.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct RefundOrder {
    /// The order id.
    #[prost(string, tag = "1")]
    pub order_id: String,
    /// Why the buyer wants the money back.
    #[prost(string, tag = "2")]
    pub reason: String,
}

/// Sets a SKU's total stock (available + reserved + sold), price and per-user limit.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct PutSku {
    /// The SKU id.
    #[prost(string, tag = "1")]
    pub sku: String,
    /// Total loaded stock.
    #[prost(uint64, tag = "2")]
    pub stock: u64,
    /// Unit price in cents.
    #[prost(uint64, tag = "3")]
    pub price_cents: u64,
    /// Most units one user may buy; 0 means no limit.
    #[prost(uint64, tag = "4")]
    pub per_user_limit: u64,
}

/// Places an order: every line reserved, or none.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct CreateOrder {
    /// Who buys.
    #[prost(string, tag = "1")]
    pub user_id: String,
    /// What is bought.
    #[prost(message, repeated, tag = "2")]
    pub items: Vec<OrderLine>,
    /// Seconds the buyer has to pay before the order closes itself.
    #[prost(uint64, tag = "3")]
    pub pay_within_secs: u64,
}

/// One line of a [`CreateOrder`].
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct OrderLine {
    /// The SKU id.
    #[prost(string, tag = "1")]
    pub sku: String,
    /// Units, at least one.
    #[prost(uint64, tag = "2")]
    pub qty: u64,
}

/// Marks an order paid.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct PayOrder {
    /// The order id.
    #[prost(string, tag = "1")]
    pub order_id: String,
    /// The payment provider's reference; paying again with the same one is a no-op.
    #[prost(string, tag = "2")]
    pub payment_ref: String,
}

/// Cancels an unpaid order.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct CancelOrder {
    /// The order id.
    #[prost(string, tag = "1")]
    pub order_id: String,
}

/// Timers the leader's wheel found due. `apply` re-checks each: a timer that no longer exists
/// (its order was paid or cancelled meanwhile) or is not yet due at the batch's clock is skipped.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct FireTimers {
    /// Timer keys (see `keys::timer`).
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub keys: Vec<Vec<u8>>,
}

/// Buys one unit of a SKU at a flash sale: an order of qty 1, or `sold_out` / `limit_exceeded`.
/// Many of these for one SKU in one entry are decided in log order, so none oversells.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct Seckill {
    /// The SKU on sale.
    #[prost(string, tag = "1")]
    pub sku: String,
    /// Who buys.
    #[prost(string, tag = "2")]
    pub user_id: String,
    /// Seconds the buyer has to pay (the flash sale's short window, from the node's config).
    #[prost(uint64, tag = "3")]
    pub pay_within_secs: u64,
}

impl Command {
    /// A command without idempotency protection.
    pub fn new(action: Action) -> Self {
        Command {
            idempotency_key: String::new(),
            request_hash: Vec::new(),
            action: Some(action),
        }
    }
}

impl std::fmt::Display for CommandBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "batch of {} at {}", self.commands.len(), self.now_ms)
    }
}
