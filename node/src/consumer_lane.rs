//! One consumer group's delivery state in the leader's memory: what is waiting, what is in
//! flight, the pacing, and the outcomes not yet committed. Pure data and decisions, no IO, so the
//! scheduler's rules are tested here without a cluster.
//!
//! To ensure correctness:
//! - A message is in exactly one of `pending` (waiting for its due time or a slot) or `in_flight`
//!   (handed to a consumer, or its outcome waiting to be committed) until its outcome commits;
//!   then it leaves memory. So nothing is delivered twice at once, and nothing unsettled is
//!   forgotten while this node leads.
//! - Memory is rebuilt from the committed state when leadership starts ([`ConsumerLane::new`] then
//!   [`ConsumerLane::add_loaded`]): whatever was in flight under the old leader is pending again,
//!   so every unacknowledged message is delivered again (at least once).
//! - With `ordered_by_key`, a key has at most one message in flight, and a message is handed out
//!   only when no earlier message of its key is still unsettled.
//! - An unordered group does not hold what waits on a timer in the wheel (a delayed message, a
//!   retry armed by `apply`): the scan skips it and a committed retry that `apply` reports as
//!   waiting leaves memory; the fired timer marks it ready and the lane loads it again. Ordered
//!   groups keep such messages, since a waiting message still blocks the later ones of its key.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use sm::command::{FailedDelivery, RecordDeliveries};
use sm::queue::Message;
use sm::queue::{DeliveriesRecorded, PendingMessage, Subscription};

/// Most messages of one group held in memory (pending and in flight) at once.
pub const BUFFER: usize = 20_000;
/// Most bytes of messages one group holds in memory at once (the count alone would let 20,000
/// messages of 1 MiB take 20 GiB); a single larger message is still held.
pub const BUFFER_BYTES: usize = 64 << 20;

/// A message waiting to be delivered.
#[derive(Debug, Clone)]
struct Pending {
    /// The message.
    message: Arc<Message>,
    /// Failed attempts so far.
    failed: u32,
    /// Not to be delivered before this (its `deliver_at` or retry time).
    due_ms: i64,
}

/// A message handed out and not yet settled.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The message.
    pub message: Arc<Message>,
    /// Failed attempts before this one.
    pub failed: u32,
    /// Pull leases: when the consumer's visibility ends.
    pub expires_ms: Option<i64>,
    /// The lease's number, named (under a MAC, see `receipt`) in a pull receipt, so a stale
    /// receipt cannot settle a newer lease of the same message.
    pub token: u64,
    /// Whether its outcome is decided and waiting to be committed.
    pub decided: bool,
}

/// Paces deliveries to `rate_per_sec`: a token bucket holding at most a twentieth of a second's
/// worth, so the downstream sees a steady rate rather than bursts.
#[derive(Debug, Clone)]
struct TokenBucket {
    /// Tokens available.
    tokens: f64,
    /// When tokens were last added.
    at_ms: i64,
}

impl TokenBucket {
    fn take(&mut self, rate_per_sec: u32, now_ms: i64) -> bool {
        if rate_per_sec == 0 {
            return true;
        }
        let rate = f64::from(rate_per_sec);
        let capacity = (rate / 20.0).max(1.0);
        let elapsed = (now_ms - self.at_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        self.at_ms = now_ms;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Outcomes sent in one proposal, kept to act on its answer.
#[derive(Debug, Clone, Default)]
pub struct Proposed {
    /// The command.
    pub command: RecordDeliveries,
}

/// One group's state while this node leads.
pub struct ConsumerLane {
    /// The subscription as last read.
    pub sub: Subscription,
    /// Everything after this offset is unread from the topic.
    scanned: u64,
    /// Waiting messages by offset.
    pending: BTreeMap<u64, Pending>,
    /// `(due, offset)` of `pending`, for unordered groups to find what is due.
    due: BTreeSet<(i64, u64)>,
    /// Handed out, by offset.
    in_flight: HashMap<u64, Lease>,
    /// Pacing.
    bucket: TokenBucket,
    /// `sub.redrives` when redriven messages were last loaded.
    pub redrives_seen: u64,
    /// `sub.ready_marks` when ready messages were last loaded.
    ready_seen: u64,
    /// Ready messages may be waiting that a load has not taken yet (the load was cut short, or a
    /// retry left memory after the last load and its timer may already have fired).
    ready_unloaded: bool,
    /// Acks decided and not yet proposed.
    acks: Vec<u64>,
    /// Failures decided and not yet proposed.
    failures: Vec<FailedDelivery>,
    /// Proposals in flight.
    pub proposing: usize,
    /// The size of each message held (pending or in flight), by offset.
    sizes: HashMap<u64, usize>,
    /// Their sum: what [`BUFFER_BYTES`] bounds.
    held_bytes: usize,
}

impl ConsumerLane {
    /// An empty lane for `sub`; the caller loads its unsettled messages next.
    pub fn new(sub: Subscription, now_ms: i64) -> Self {
        ConsumerLane {
            scanned: sub.cursor,
            redrives_seen: u64::MAX,
            ready_seen: u64::MAX,
            ready_unloaded: true,
            sub,
            pending: BTreeMap::new(),
            due: BTreeSet::new(),
            in_flight: HashMap::new(),
            bucket: TokenBucket {
                tokens: 1.0,
                at_ms: now_ms,
            },
            acks: Vec::new(),
            failures: Vec::new(),
            proposing: 0,
            sizes: HashMap::new(),
            held_bytes: 0,
        }
    }

    /// Messages held in memory.
    pub fn held(&self) -> usize {
        self.pending.len() + self.in_flight.len()
    }

    /// Bytes of the messages held in memory.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Whether the lane may load more messages: below half of both [`BUFFER`] and
    /// [`BUFFER_BYTES`], so loads come in large steps.
    pub fn wants_more(&self) -> bool {
        self.held() < BUFFER / 2 && self.held_bytes < BUFFER_BYTES / 2
    }

    /// How many more messages, and bytes of them, the lane may load now.
    pub fn room(&self) -> (usize, usize) {
        (
            BUFFER.saturating_sub(self.held()),
            BUFFER_BYTES.saturating_sub(self.held_bytes),
        )
    }

    /// Forgets the size of a message that left memory.
    fn release(&mut self, offset: u64) {
        if let Some(size) = self.sizes.remove(&offset) {
            self.held_bytes = self.held_bytes.saturating_sub(size);
        }
    }

    /// Messages handed out and not yet settled.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether the lane holds the message at `offset` (waiting or in flight).
    pub fn holds(&self, offset: u64) -> bool {
        self.pending.contains_key(&offset) || self.in_flight.contains_key(&offset)
    }

    /// Whether ready messages should be loaded: fired timers marked new ones, or some may be
    /// left from before.
    pub fn wants_ready(&self) -> bool {
        self.ready_unloaded || self.ready_seen != self.sub.ready_marks
    }

    /// Records a load of ready messages made after reading `sub` with `ready_marks`; `more` when
    /// it left some behind.
    pub fn ready_loaded(&mut self, ready_marks: u64, more: bool) {
        self.ready_seen = ready_marks;
        self.ready_unloaded = more;
    }

    /// Where the next read of the topic starts (exclusive).
    pub fn scanned(&self) -> u64 {
        self.scanned
    }

    /// Records that the topic has been read up to `offset`.
    pub fn scanned_to(&mut self, offset: u64) {
        self.scanned = self.scanned.max(offset);
    }

    fn insert_pending(&mut self, offset: u64, pending: Pending) {
        self.due.insert((pending.due_ms, offset));
        self.pending.insert(offset, pending);
    }

    fn remove_pending(&mut self, offset: u64) -> Option<Pending> {
        let pending = self.pending.remove(&offset)?;
        self.due.remove(&(pending.due_ms, offset));
        Some(pending)
    }

    /// Adds unsettled messages read from the state (skipping any already held). It does not move
    /// [`ConsumerLane::scanned`]: redriven messages may lie anywhere in the topic.
    pub fn add_loaded(&mut self, loaded: Vec<PendingMessage>) {
        for p in loaded {
            let offset = p.message.offset;
            if self.pending.contains_key(&offset) || self.in_flight.contains_key(&offset) {
                continue;
            }
            let (failed, retry_at) = p
                .attempts
                .map_or((0, 0), |a| (a.attempts.len() as u32, a.retry_at_ms));
            let due_ms = p.message.deliver_at_ms.max(retry_at);
            let size = message_size(&p.message);
            self.held_bytes += size;
            self.sizes.insert(offset, size);
            self.insert_pending(
                offset,
                Pending {
                    message: Arc::new(p.message),
                    failed,
                    due_ms,
                },
            );
        }
    }

    /// Hands out what may be delivered now: at most `max`, within `max_in_flight` and the rate,
    /// due, and (ordered groups) first of its key. `expires_ms` marks pull leases.
    pub fn hand_out(
        &mut self,
        now_ms: i64,
        max: usize,
        expires_ms: Option<i64>,
        next_token: &mut u64,
    ) -> Vec<(u64, Lease)> {
        let slots = (self.sub.max_in_flight as usize)
            .saturating_sub(self.in_flight.len())
            .min(max);
        // A paused group hands nothing out; what is in flight settles as usual.
        if slots == 0 || self.sub.paused {
            return Vec::new();
        }
        let chosen = if self.sub.ordered_by_key {
            self.choose_ordered(now_ms, slots)
        } else {
            self.choose_due(now_ms, slots)
        };
        let mut out = Vec::with_capacity(chosen.len());
        for offset in chosen {
            let Some(pending) = self.remove_pending(offset) else {
                continue;
            };
            *next_token += 1;
            let lease = Lease {
                message: pending.message,
                failed: pending.failed,
                expires_ms,
                token: *next_token,
                decided: false,
            };
            self.in_flight.insert(offset, lease.clone());
            out.push((offset, lease));
        }
        out
    }

    fn choose_due(&mut self, now_ms: i64, slots: usize) -> Vec<u64> {
        let mut chosen = Vec::new();
        for &(due, offset) in &self.due {
            if due > now_ms || chosen.len() == slots {
                break;
            }
            if !self.bucket.take(self.sub.rate_per_sec, now_ms) {
                break;
            }
            chosen.push(offset);
        }
        chosen
    }

    fn choose_ordered(&mut self, now_ms: i64, slots: usize) -> Vec<u64> {
        let mut blocked: HashSet<&str> = self
            .in_flight
            .values()
            .map(|l| l.message.key.as_str())
            .filter(|k| !k.is_empty())
            .collect();
        let mut chosen = Vec::new();
        for (&offset, p) in &self.pending {
            if chosen.len() == slots {
                break;
            }
            let key = p.message.key.as_str();
            let free = key.is_empty() || !blocked.contains(key);
            if !key.is_empty() {
                blocked.insert(key);
            }
            if !free || p.due_ms > now_ms {
                continue;
            }
            if !self.bucket.take(self.sub.rate_per_sec, now_ms) {
                break;
            }
            chosen.push(offset);
        }
        chosen
    }

    /// The retry time after the `failed`-th failure: exponential backoff with equal jitter
    /// (`jitter` in [0, 1) drawn by the leader).
    pub fn retry_at(&self, now_ms: i64, failed: u32, jitter: f64) -> i64 {
        let exp = failed.saturating_sub(1).min(40);
        let delay = self
            .sub
            .backoff_initial_ms
            .saturating_mul(1u64 << exp)
            .min(self.sub.backoff_max_ms);
        let half = delay / 2;
        let jittered = half + (half as f64 * jitter) as u64;
        now_ms.saturating_add(i64::try_from(jittered).unwrap_or(i64::MAX))
    }

    /// Decides the outcome of the lease at `offset`: acknowledged, or failed with `error` to be
    /// retried at `retry_at_ms`. False when there is no undecided lease there (or, with `token`,
    /// not that lease).
    pub fn decide(
        &mut self,
        offset: u64,
        token: Option<u64>,
        outcome: Result<(), (String, i64)>,
    ) -> bool {
        let Some(lease) = self.in_flight.get_mut(&offset) else {
            return false;
        };
        if lease.decided || token.is_some_and(|t| t != lease.token) {
            return false;
        }
        lease.decided = true;
        match outcome {
            Ok(()) => self.acks.push(offset),
            Err((error, retry_at_ms)) => self.failures.push(FailedDelivery {
                offset,
                error,
                retry_at_ms,
            }),
        }
        true
    }

    /// The failed-attempt count of the lease at `offset`, if any.
    pub fn failed_before(&self, offset: u64) -> Option<u32> {
        self.in_flight.get(&offset).map(|l| l.failed)
    }

    /// Pull leases whose visibility ended and whose outcome is undecided.
    pub fn expired(&self, now_ms: i64) -> Vec<u64> {
        self.in_flight
            .iter()
            .filter(|(_, l)| !l.decided && l.expires_ms.is_some_and(|e| e <= now_ms))
            .map(|(o, _)| *o)
            .collect()
    }

    /// The decided outcomes to propose, if any.
    pub fn take_outcomes(&mut self) -> Option<RecordDeliveries> {
        if self.acks.is_empty() && self.failures.is_empty() {
            return None;
        }
        Some(RecordDeliveries {
            group: self.sub.group.clone(),
            acks: std::mem::take(&mut self.acks),
            failures: std::mem::take(&mut self.failures),
        })
    }

    /// Acts on a committed proposal: settled messages leave memory; retried ones wait for their
    /// retry time, in memory or (unordered groups, retries `apply` armed a timer for) in the
    /// wheel.
    pub fn committed(&mut self, sent: &RecordDeliveries, done: &DeliveriesRecorded) {
        for offset in done.acked.iter().chain(&done.dead).chain(&done.ignored) {
            self.in_flight.remove(offset);
            self.release(*offset);
        }
        if !self.sub.ordered_by_key && !done.waiting.is_empty() {
            for offset in &done.waiting {
                self.in_flight.remove(offset);
                self.release(*offset);
            }
            // Its timer may fire before the next load looks; make sure the next load happens.
            self.ready_unloaded = true;
        }
        let retrying: HashSet<u64> = done.retrying.iter().copied().collect();
        for failure in &sent.failures {
            if !retrying.contains(&failure.offset) {
                continue;
            }
            if let Some(lease) = self.in_flight.remove(&failure.offset) {
                self.insert_pending(
                    failure.offset,
                    Pending {
                        message: lease.message,
                        failed: lease.failed + 1,
                        due_ms: failure.retry_at_ms,
                    },
                );
            }
        }
    }

    /// Acts on a proposal that did not commit: its messages are pending again after `retry_ms`,
    /// their attempt not counted (the outcome is unknown, so they are simply delivered again).
    pub fn not_committed(&mut self, sent: &RecordDeliveries, retry_at_ms: i64) {
        let offsets = sent
            .acks
            .iter()
            .copied()
            .chain(sent.failures.iter().map(|f| f.offset));
        for offset in offsets.collect::<Vec<_>>() {
            if let Some(lease) = self.in_flight.remove(&offset) {
                self.insert_pending(
                    offset,
                    Pending {
                        message: lease.message,
                        failed: lease.failed,
                        due_ms: retry_at_ms,
                    },
                );
            }
        }
    }
}

/// What a message takes in memory, near enough: its key and its payload as JSON text.
fn message_size(message: &Message) -> usize {
    let payload = serde_json::to_vec(&message.payload).map_or(0, |bytes| bytes.len());
    message.id.len() + message.topic.len() + message.key.len() + payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sub(ordered: bool, max_in_flight: u32) -> Subscription {
        Subscription {
            group: "g".into(),
            topic: "t".into(),
            push: None,
            max_attempts: 3,
            backoff_initial_ms: 100,
            backoff_max_ms: 1000,
            max_in_flight,
            rate_per_sec: 0,
            ordered_by_key: ordered,
            start: "earliest".into(),
            cursor: 0,
            delivered: 0,
            dead: 0,
            failures: 0,
            redrives: 0,
            ready_marks: 0,
            paused: false,
            resets: 0,
        }
    }

    fn message(offset: u64, key: &str) -> PendingMessage {
        PendingMessage {
            message: Message {
                id: format!("t:{offset}"),
                topic: "t".into(),
                offset,
                key: key.into(),
                payload: json!(null),
                published_at_ms: 0,
                deliver_at_ms: 0,
            },
            attempts: None,
        }
    }

    #[test]
    fn large_messages_fill_the_byte_budget_and_settling_frees_it() {
        let mut lane = ConsumerLane::new(sub(false, 10), 0);
        let mut big = message(1, "k");
        big.message.payload = json!("x".repeat(BUFFER_BYTES / 2));
        lane.add_loaded(vec![big, message(2, "k")]);
        assert!(lane.held_bytes() > BUFFER_BYTES / 2);
        assert!(
            !lane.wants_more(),
            "half the byte budget held: no more loads"
        );
        assert!(lane.room().1 < BUFFER_BYTES / 2);

        let mut token = 0;
        assert_eq!(lane.hand_out(0, 10, None, &mut token).len(), 2);
        assert!(lane.decide(1, None, Ok(())));
        let sent = lane.take_outcomes().unwrap();
        lane.committed(
            &sent,
            &DeliveriesRecorded {
                acked: vec![1],
                ..Default::default()
            },
        );
        assert!(lane.held_bytes() < 100, "the settled message left memory");
        assert!(lane.wants_more());
    }

    #[test]
    fn ordered_groups_hold_one_message_per_key() {
        let mut lane = ConsumerLane::new(sub(true, 10), 0);
        lane.add_loaded(vec![message(1, "a"), message(2, "a"), message(3, "b")]);
        let mut token = 0;
        let out: Vec<u64> = lane
            .hand_out(0, 10, None, &mut token)
            .iter()
            .map(|(o, _)| *o)
            .collect();
        assert_eq!(out, vec![1, 3]);
        assert!(lane.decide(1, None, Ok(())));
        let sent = lane.take_outcomes().unwrap();
        lane.committed(
            &sent,
            &DeliveriesRecorded {
                acked: vec![1],
                ..Default::default()
            },
        );
        let out: Vec<u64> = lane
            .hand_out(0, 10, None, &mut token)
            .iter()
            .map(|(o, _)| *o)
            .collect();
        assert_eq!(out, vec![2]);
    }

    #[test]
    fn failures_wait_for_their_retry_time() {
        let mut lane = ConsumerLane::new(sub(false, 10), 0);
        lane.add_loaded(vec![message(1, "")]);
        let mut token = 0;
        assert_eq!(lane.hand_out(0, 10, None, &mut token).len(), 1);
        let retry = lane.retry_at(0, 1, 0.0);
        assert_eq!(retry, 50);
        assert!(lane.decide(1, None, Err(("boom".into(), retry))));
        let sent = lane.take_outcomes().unwrap();
        lane.committed(
            &sent,
            &DeliveriesRecorded {
                retrying: vec![1],
                ..Default::default()
            },
        );
        assert!(lane.hand_out(49, 10, None, &mut token).is_empty());
        assert_eq!(lane.hand_out(50, 10, None, &mut token).len(), 1);
        assert!(lane.retry_at(0, 3, 0.99) <= 400);
        assert!(lane.retry_at(0, 30, 0.0) == 500);
    }

    #[test]
    fn retries_waiting_on_a_timer_leave_unordered_lanes_only() {
        for ordered in [false, true] {
            let mut lane = ConsumerLane::new(sub(ordered, 10), 0);
            lane.add_loaded(vec![message(1, "k")]);
            lane.ready_loaded(0, false);
            assert!(!lane.wants_ready());
            let mut token = 0;
            assert_eq!(lane.hand_out(0, 10, None, &mut token).len(), 1);
            assert!(lane.decide(1, None, Err(("boom".into(), 5_000))));
            let sent = lane.take_outcomes().unwrap();
            lane.committed(
                &sent,
                &DeliveriesRecorded {
                    retrying: vec![1],
                    waiting: vec![1],
                    ..Default::default()
                },
            );
            // Unordered: the wheel holds it and the next refresh looks for it being ready.
            // Ordered: it stays, blocking its key until its retry time.
            assert_eq!(lane.holds(1), ordered, "ordered: {ordered}");
            assert_eq!(lane.wants_ready(), !ordered, "ordered: {ordered}");
        }
    }

    #[test]
    fn max_in_flight_and_rate_bound_hand_outs() {
        let mut lane = ConsumerLane::new(sub(false, 2), 0);
        lane.add_loaded((1..=5).map(|o| message(o, "")).collect());
        let mut token = 0;
        assert_eq!(lane.hand_out(0, 10, None, &mut token).len(), 2);
        let mut paced = ConsumerLane::new(
            Subscription {
                rate_per_sec: 100,
                ..sub(false, 1000)
            },
            0,
        );
        paced.add_loaded((1..=1000).map(|o| message(o, "")).collect());
        let mut handed = 0;
        for ms in 0..1000 {
            handed += paced.hand_out(ms, 1000, None, &mut token).len();
        }
        assert!((95..=106).contains(&handed), "{handed}");
    }
}
