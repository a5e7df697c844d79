//! A consumer group's records: its settings and committed position, the failed attempts of a
//! pending message, its dead letters, and what recording a batch of outcomes did.
//!
//! Plain data, stored as JSON in `deliveries`: the rules that change them live in
//! [`super::subscribe`] (settings) and [`super::delivery`] (outcomes).

use serde::{Deserialize, Serialize};

use super::message::Message;
use super::signing_secret::SigningSecret;

/// Where a push subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushTarget {
    /// The webhook.
    pub url: String,
    /// No answer within this is a failed attempt.
    pub timeout_ms: u64,
    /// The key deliveries are signed with; empty for unsigned deliveries.
    #[serde(default)]
    pub signing_secret: SigningSecret,
    /// The key it replaced, which deliveries also sign with for a grace period after
    /// `rotated_at_ms`, so a receiver can switch keys without refusing calls meanwhile.
    #[serde(default)]
    pub previous_signing_secret: SigningSecret,
    /// When (batch clock) the key was last replaced; 0 if never.
    #[serde(default)]
    pub rotated_at_ms: i64,
}

/// A consumer group's settings and committed position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The group name.
    pub group: String,
    /// The topic consumed.
    pub topic: String,
    /// Webhook; `None` for a pulled group.
    pub push: Option<PushTarget>,
    /// Attempts before a dead letter.
    pub max_attempts: u32,
    /// First retry delay.
    pub backoff_initial_ms: u64,
    /// Largest retry delay.
    pub backoff_max_ms: u64,
    /// Most unsettled deliveries at once.
    pub max_in_flight: u32,
    /// Deliveries per second, 0 = unlimited.
    pub rate_per_sec: u32,
    /// One message per key at a time, in offset order.
    pub ordered_by_key: bool,
    /// `earliest` or `latest`, as created.
    pub start: String,
    /// Every offset up to this one is settled.
    pub cursor: u64,
    /// Messages acknowledged so far.
    pub delivered: u64,
    /// Dead letters now held.
    pub dead: u64,
    /// Failed attempts so far.
    pub failures: u64,
    /// Bumped by every redrive, so the scheduler knows to look for redriven messages.
    pub redrives: u64,
    /// Bumped whenever a fired delay or retry timer marks a message ready, so the scheduler
    /// knows to look for ready messages.
    #[serde(default)]
    pub ready_marks: u64,
    /// An operator paused the group: the scheduler hands none of its messages out.
    #[serde(default)]
    pub paused: bool,
    /// Bumped by every reset of the cursor, so the scheduler drops what it had read past the
    /// old position and reads again from the new one.
    #[serde(default)]
    pub resets: u64,
}

/// One attempt that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When the failure was recorded (batch clock).
    pub at_ms: i64,
    /// What went wrong.
    pub error: String,
}

/// The failed attempts of a pending message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempts {
    /// Every failed attempt, oldest first.
    pub attempts: Vec<Attempt>,
    /// Not to be tried again before this.
    pub retry_at_ms: i64,
}

/// A message a group gave up on, with its history; kept until redriven.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The message.
    pub message: Message,
    /// Every attempt's time and error.
    pub attempts: Vec<Attempt>,
    /// When it died (batch clock).
    pub dead_at_ms: i64,
}

/// What one `RecordDeliveries` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveriesRecorded {
    /// Offsets newly settled by an ack.
    pub acked: Vec<u64>,
    /// Offsets that failed and will be retried.
    pub retrying: Vec<u64>,
    /// Those of `retrying` whose retry waits on a timer in the wheel: the scheduler need not
    /// hold them, the timer marks them ready when due.
    #[serde(default)]
    pub waiting: Vec<u64>,
    /// Offsets that became dead letters.
    pub dead: Vec<u64>,
    /// Outcomes about messages no longer pending (duplicates), ignored.
    pub ignored: Vec<u64>,
}
