//! The queue wing: durable topics, consumer groups and their deliveries, published and decided
//! in log order inside `apply`.
//!
//! A generic message queue: it knows nothing of orders or refunds. What a settled message means
//! beyond the queue reaches the rest of the state machine through one seam, [`SettleHook`],
//! which the dispatcher wires.
//!
//! # Layout
//! - Records (plain data, importing nothing of the wing): [`message`] (a stored message and its
//!   id), [`subscription`] (a group's settings and position, attempts, dead letters),
//!   [`signing_secret`] (a push group's webhook key, hidden from `Debug`).
//! - [`store`]: the wing's ground floor: reading and writing its records through the batch.
//! - [`topic`]: publishing with gapless per-topic offsets; a topic's head; a client's publish.
//! - [`subscribe`]: creating and changing a group; loading and storing its record.
//! - [`ack_time`]: when a group acknowledged a message, kept per cursor move, not per message.
//! - [`delivery`]: acks, failed attempts, dead letters and redrives; the [`SettleHook`] seam.
//! - [`group_control`]: an operator's pause, resume and position reset of a group.
//! - [`timers`]: delay and retry timers marking messages ready when they fire.
//! - [`retention`]: removing old messages every group has settled.
//! - [`group_removal`]: removing a group and its records in bounded steps.
//! - [`reads`]: reads of the applied queue state for the scheduler and the admin API.

pub(crate) mod ack_time;
pub(crate) mod delivery;
pub(crate) mod group_control;
pub(crate) mod group_removal;
pub(crate) mod message;
mod reads;
pub(crate) mod retention;
mod signing_secret;
pub(crate) mod store;
pub(crate) mod subscribe;
pub(crate) mod subscription;
pub(crate) mod timers;
pub(crate) mod topic;

pub use ack_time::AckMark;
pub use delivery::{SettleHook, MAX_REDRIVE};
pub use group_control::RESET_RECORDS;
pub use group_removal::RECORDS_PER_STEP;
pub use message::{message_id, parse_message_id, Message};
pub use reads::{DeadSearch, DeliveryStatus, PendingMessage, QueueReads, Scanned, SKIP_BUDGET};
pub use retention::MAX_TRIM;
pub use signing_secret::SigningSecret;
pub use subscription::{
    Attempt, Attempts, DeadLetter, DeliveriesRecorded, PushTarget, Subscription,
};
pub use timers::{delivery_timer, retry_timer};
pub use topic::{publish, NewMessage};
