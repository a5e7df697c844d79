//! What applying a command answers: the changed entity or a typed rejection.

use serde::{Deserialize, Serialize};

use crate::order::record::Order;
use crate::order::sku::Sku;
use crate::queue::message::Message;
use crate::queue::subscription::{DeliveriesRecorded, Subscription};

/// The answers to one Raft entry: one [`Outcome`] per command, in order (empty for blank and
/// membership entries).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchOutcome(pub Vec<Outcome>);

/// The answer to one command.
pub type Outcome = Result<Applied, Rejection>;

/// A command that changed (or, for an idempotent repeat, confirmed) state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// The SKU after the change.
    Sku(Sku),
    /// An order was created.
    OrderCreated(Order),
    /// The order after a change of state.
    Order(Order),
    /// Timers fired by a `FireTimers` command.
    TimersFired(FiredTimers),
    /// A message was published.
    Published(Message),
    /// A subscription after its creation or change.
    Subscription(Subscription),
    /// A push subscription after a change that set its signing key: the key is answered this
    /// once (and to a retry with the same idempotency key), never shown again.
    SubscriptionSigned {
        /// The subscription.
        subscription: Subscription,
        /// The key now signing its deliveries.
        signing_secret: String,
    },
    /// What a batch of delivery outcomes did.
    DeliveriesRecorded(DeliveriesRecorded),
    /// Dead letters moved back to delivery.
    Redriven(u64),
    /// Dead letters deleted for good.
    Purged(u64),
    /// The order is waiting for the provider's refund.
    RefundRequested(Order),
    /// Messages removed by retention: the topic's last removed offset now.
    Trimmed(u64),
    /// A group was removed; `true` while some of its records are still to be removed.
    SubscriptionRemoved(bool),
}

/// What a `FireTimers` command did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiredTimers {
    /// Keys of the timers that fired (acted and removed).
    pub fired: Vec<Vec<u8>>,
    /// Keys skipped because they were no longer pending.
    pub gone: u64,
    /// Keys skipped because they were not yet due at the batch's clock.
    pub early: Vec<Vec<u8>>,
}

/// Why the state machine refused a command. It is a normal answer, never a panic; the API maps
/// each to the contract's status and error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// Not enough stock for some line (or a SKU lowered below reserved + sold).
    #[error("insufficient stock for sku {sku}: {available} available, {wanted} wanted")]
    InsufficientStock {
        /// The SKU short of stock.
        sku: String,
        /// What is available.
        available: u64,
        /// What was asked.
        wanted: u64,
    },
    /// A flash sale found no unit left.
    #[error("sku {sku} is sold out")]
    SoldOut {
        /// The SKU.
        sku: String,
    },
    /// The buyer would hold more units of the SKU than its per-user limit.
    #[error("user {user_id} may hold at most {limit} of sku {sku}; holds {held}, wanted {wanted}")]
    LimitExceeded {
        /// The SKU.
        sku: String,
        /// The buyer.
        user_id: String,
        /// The SKU's per-user limit.
        limit: u64,
        /// Units the buyer already holds in open or paid orders.
        held: u64,
        /// Units asked for.
        wanted: u64,
    },
    /// The order's state does not allow this move.
    #[error("order {order_id} is {state}; cannot {action}")]
    InvalidState {
        /// The order.
        order_id: String,
        /// Its current state, snake_case.
        state: String,
        /// What was attempted.
        action: String,
    },
    /// The named entity does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// `order` or `sku`.
        kind: String,
        /// Its id.
        id: String,
    },
    /// A client published into a topic only the state machine writes (see
    /// [`crate::order::reserved_topics`]): nothing is stored.
    #[error("topic {topic} is written by orderq only; it cannot be published to")]
    ReservedTopic {
        /// The topic.
        topic: String,
    },
    /// The same idempotency key came with another request.
    #[error("idempotency key was used for a different request")]
    IdempotencyKeyReused,
    /// The thing exists but cannot be changed that way now (a group still being removed, the
    /// built-in refund group).
    #[error("{0}")]
    Conflict(String),
    /// The entry already recorded so many changes that this command might not fit; it was not
    /// applied and may be retried (it lands in a later entry).
    #[error("the log entry is full; retry")]
    EntryFull,
    /// A command the API should have refused (kept so `apply` never trusts its input).
    #[error("{0}")]
    Invalid(String),
}
