//! Subscriptions: each consumer group's committed delivery state, and how delivery outcomes
//! decided by the leader's scheduler change it.
//!
//! To ensure correctness:
//! - The cursor means "every offset up to here is settled" (acknowledged or dead). Offsets beyond
//!   it that are settled carry a `Settled` record until the cursor passes them; the cursor
//!   advances by point lookups only (offsets have no gaps, see `crate::queue`).
//! - A message is pending for a group when it is beyond the cursor and not settled, or when it
//!   was redriven and not yet settled again. Outcomes for messages that are not pending (a
//!   duplicate ack, a late failure after an ack) change nothing, so the scheduler may repeat
//!   itself and a deposed leader's leftovers are harmless.
//! - Retry times come in the command (the leader drew the jitter); `apply` reads no clock.

use rocksdb::{Direction, IteratorMode, ReadOptions, DB};
use serde::{Deserialize, Serialize};

use crate::command::{PutSubscription, RecordDeliveries, Redrive};
use crate::db::cf;
use crate::error::StoreError;
use crate::group_removal;
use crate::keys::{self, DeliveryRecord, CF_DELIVERIES, CF_MESSAGES};
use crate::outcome::{Applied, Outcome, Rejection};
use crate::queue::{self, Message};
use crate::queue_timers;
use crate::refund;
use crate::retention;
use crate::signing_secret::SigningSecret;
use crate::timers;
use crate::txn::Txn;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// The subscription of `group`, if any.
pub(crate) fn load(txn: &Txn<'_>, group: &str) -> Result<Option<Subscription>, StoreError> {
    txn.get(CF_DELIVERIES, &keys::subscription(group))
}

/// Every subscription as this batch sees it: those committed and those created earlier in it.
pub(crate) fn all(txn: &Txn<'_>) -> Result<Vec<Subscription>, StoreError> {
    let prefix = [DeliveryRecord::Subscription as u8];
    let end = [DeliveryRecord::Subscription as u8 + 1];
    let keys = txn.scan_keys(CF_DELIVERIES, &prefix, &end, usize::MAX)?;
    let mut subs = Vec::with_capacity(keys.len());
    for key in keys {
        let Ok(group) = std::str::from_utf8(&key[1..]) else {
            continue;
        };
        subs.extend(load(txn, group)?);
    }
    Ok(subs)
}

/// Stores `sub`.
pub(crate) fn save(txn: &mut Txn<'_>, sub: &Subscription) -> Result<(), StoreError> {
    txn.put(CF_DELIVERIES, keys::subscription(&sub.group), sub)
}

fn not_found(group: &str) -> Rejection {
    Rejection::NotFound {
        kind: "subscription".into(),
        id: group.into(),
    }
}

/// Creates or changes a subscription. A new one's cursor is resolved here, in log order:
/// `earliest` from the topic's beginning, `latest` after its current head. A new signing key
/// replaces the old one, which is kept as the previous key from `now_ms` on.
pub fn put(txn: &mut Txn<'_>, now_ms: i64, put: &PutSubscription) -> Result<Outcome, StoreError> {
    if put.group.is_empty() || put.topic.is_empty() || put.max_attempts == 0 {
        return Ok(Err(Rejection::Invalid(
            "a subscription needs a group, a topic and max_attempts >= 1".into(),
        )));
    }
    if group_removal::is_removing(txn, &put.group)? {
        return Ok(Err(Rejection::Conflict(format!(
            "group {} is still being removed; create it again shortly",
            put.group
        ))));
    }
    let existing = load(txn, &put.group)?;
    let old_push = existing.as_ref().and_then(|s| s.push.clone());
    // The key a push group keeps: its current one, unless this PUT names a new one.
    let current_key = old_push
        .as_ref()
        .map(|p| p.signing_secret.clone())
        .filter(|k| !k.is_empty());
    let keeps_key = put.signing_secret_drawn || put.signing_secret.is_empty();
    let push = (!put.push_url.is_empty()).then(|| match (&old_push, &current_key) {
        (Some(old), Some(_)) if keeps_key || old.signing_secret.expose() == put.signing_secret => {
            PushTarget {
                url: put.push_url.clone(),
                timeout_ms: put.timeout_ms,
                ..old.clone()
            }
        }
        _ => PushTarget {
            url: put.push_url.clone(),
            timeout_ms: put.timeout_ms,
            signing_secret: SigningSecret::from(put.signing_secret.clone()),
            previous_signing_secret: current_key.clone().unwrap_or_default(),
            rotated_at_ms: if current_key.is_some() { now_ms } else { 0 },
        },
    });
    let new_key = push.as_ref().filter(|p| {
        !p.signing_secret.is_empty() && Some(&p.signing_secret) != current_key.as_ref()
    });
    let signing_secret = new_key.map(|p| p.signing_secret.expose().to_string());
    let sub = match existing {
        Some(old) if old.topic != put.topic => {
            return Ok(Err(Rejection::Invalid(format!(
                "group {} consumes {}; its topic cannot change",
                old.group, old.topic
            ))))
        }
        Some(old) => Subscription {
            push,
            max_attempts: put.max_attempts,
            backoff_initial_ms: put.backoff_initial_ms,
            backoff_max_ms: put.backoff_max_ms,
            max_in_flight: put.max_in_flight,
            rate_per_sec: put.rate_per_sec,
            ordered_by_key: put.ordered_by_key,
            ..old
        },
        None => Subscription {
            group: put.group.clone(),
            topic: put.topic.clone(),
            push,
            max_attempts: put.max_attempts,
            backoff_initial_ms: put.backoff_initial_ms,
            backoff_max_ms: put.backoff_max_ms,
            max_in_flight: put.max_in_flight,
            rate_per_sec: put.rate_per_sec,
            ordered_by_key: put.ordered_by_key,
            start: if put.start_latest {
                "latest"
            } else {
                "earliest"
            }
            .into(),
            cursor: if put.start_latest {
                queue::head(txn, &put.topic)?
            } else {
                // The oldest message retention has not removed.
                retention::floor(txn, &put.topic)?
            },
            delivered: 0,
            dead: 0,
            failures: 0,
            redrives: 0,
            ready_marks: 0,
        },
    };
    save(txn, &sub)?;
    if let Some(signing_secret) = signing_secret {
        return Ok(Ok(Applied::SubscriptionSigned {
            subscription: sub,
            signing_secret,
        }));
    }
    Ok(Ok(Applied::Subscription(sub)))
}

fn exists(
    txn: &Txn<'_>,
    kind: DeliveryRecord,
    group: &str,
    offset: u64,
) -> Result<bool, StoreError> {
    Ok(txn
        .get_raw(CF_DELIVERIES, &keys::delivery(kind, group, offset))?
        .is_some())
}

/// Whether `offset` still waits for delivery to `sub`.
pub(crate) fn is_pending(
    txn: &Txn<'_>,
    sub: &Subscription,
    offset: u64,
) -> Result<bool, StoreError> {
    if offset == 0 || offset > queue::head(txn, &sub.topic)? {
        return Ok(false);
    }
    if exists(txn, DeliveryRecord::Redriven, &sub.group, offset)? {
        return Ok(true);
    }
    Ok(offset > sub.cursor && !exists(txn, DeliveryRecord::Settled, &sub.group, offset)?)
}

/// Deletes `key` from `deliveries` if it is there: a blind delete would leave a tombstone per
/// message that every later scan of the column family has to step over.
fn delete_if_present(txn: &mut Txn<'_>, key: Vec<u8>) -> Result<(), StoreError> {
    if txn.get_raw(CF_DELIVERIES, &key)?.is_some() {
        txn.delete(CF_DELIVERIES, key);
    }
    Ok(())
}

/// Marks `offset` settled for `sub` and moves the cursor past every settled offset after it;
/// its retry timer, attempts and markers go. The common case, settling the offset right after
/// the cursor, writes no marker at all.
fn settle(txn: &mut Txn<'_>, sub: &mut Subscription, offset: u64) -> Result<(), StoreError> {
    let group = sub.group.clone();
    delete_if_present(
        txn,
        keys::delivery(DeliveryRecord::Redriven, &group, offset),
    )?;
    delete_if_present(txn, keys::delivery(DeliveryRecord::Ready, &group, offset))?;
    let attempts_key = keys::delivery(DeliveryRecord::Attempts, &group, offset);
    if let Some(attempts) = txn.get::<Attempts>(CF_DELIVERIES, &attempts_key)? {
        if attempts.retry_at_ms > 0 {
            timers::disarm(
                txn,
                queue_timers::retry_timer(&group, offset, attempts.retry_at_ms),
            )?;
        }
        txn.delete(CF_DELIVERIES, attempts_key);
    }
    if offset <= retention::floor(txn, &sub.topic)? {
        // A redriven message that retention had removed before: it goes again once settled.
        let message = keys::message(&sub.topic, offset);
        if txn.get_raw(CF_MESSAGES, &message)?.is_some() {
            txn.delete(CF_MESSAGES, message);
        }
    }
    if offset != sub.cursor + 1 {
        if offset > sub.cursor {
            txn.put_raw(
                CF_DELIVERIES,
                keys::delivery(DeliveryRecord::Settled, &group, offset),
                Vec::new(),
            );
        }
        return Ok(());
    }
    sub.cursor = offset;
    loop {
        let next = keys::delivery(DeliveryRecord::Settled, &group, sub.cursor + 1);
        if txn.get_raw(CF_DELIVERIES, &next)?.is_none() {
            return Ok(());
        }
        txn.delete(CF_DELIVERIES, next);
        sub.cursor += 1;
    }
}

/// Records acks and failed attempts of one group: acks settle, failures count an attempt and
/// either schedule a retry or, at `max_attempts`, make a dead letter.
pub fn record(
    txn: &mut Txn<'_>,
    now_ms: i64,
    results: &RecordDeliveries,
) -> Result<Outcome, StoreError> {
    let Some(mut sub) = load(txn, &results.group)? else {
        return Ok(Err(not_found(&results.group)));
    };
    let mut done = DeliveriesRecorded::default();
    for &offset in &results.acks {
        if !is_pending(txn, &sub, offset)? {
            done.ignored.push(offset);
            continue;
        }
        settle(txn, &mut sub, offset)?;
        sub.delivered += 1;
        done.acked.push(offset);
        // Only the refund group acts on what it delivered; others need not read the message.
        if sub.group == refund::REFUND_GROUP {
            if let Some(message) = queue::load(txn, &sub.topic, offset)? {
                refund::on_delivered(txn, now_ms, &sub.group, &message)?;
            }
        }
    }
    for failure in &results.failures {
        let offset = failure.offset;
        if !is_pending(txn, &sub, offset)? {
            done.ignored.push(offset);
            continue;
        }
        let key = keys::delivery(DeliveryRecord::Attempts, &sub.group, offset);
        let mut attempts: Attempts = txn.get(CF_DELIVERIES, &key)?.unwrap_or_default();
        if attempts.retry_at_ms > 0 {
            // Delivered before its retry timer fired (an ordered group holds it in memory).
            timers::disarm(
                txn,
                queue_timers::retry_timer(&sub.group, offset, attempts.retry_at_ms),
            )?;
        }
        attempts.attempts.push(Attempt {
            at_ms: now_ms,
            error: failure.error.clone(),
        });
        attempts.retry_at_ms = failure.retry_at_ms;
        sub.failures += 1;
        if attempts.attempts.len() < sub.max_attempts as usize {
            if failure.retry_at_ms > now_ms {
                timers::arm(
                    txn,
                    queue_timers::retry_timer(&sub.group, offset, failure.retry_at_ms),
                )?;
                // Waiting again: ready only when this retry's timer fires.
                delete_if_present(
                    txn,
                    keys::delivery(DeliveryRecord::Ready, &sub.group, offset),
                )?;
                done.waiting.push(offset);
            }
            txn.put(CF_DELIVERIES, key, &attempts)?;
            done.retrying.push(offset);
            continue;
        }
        let Some(message) = queue::load(txn, &sub.topic, offset)? else {
            done.ignored.push(offset);
            continue;
        };
        let dead = DeadLetter {
            message,
            attempts: attempts.attempts,
            dead_at_ms: now_ms,
        };
        txn.put(
            CF_DELIVERIES,
            keys::delivery(DeliveryRecord::Dead, &sub.group, offset),
            &dead,
        )?;
        settle(txn, &mut sub, offset)?;
        sub.dead += 1;
        done.dead.push(offset);
        refund::on_dead(txn, now_ms, &sub.group, &dead.message)?;
    }
    save(txn, &sub)?;
    Ok(Ok(Applied::DeliveriesRecorded(done)))
}

/// Moves the named dead letters back to delivery with fresh attempts; answers how many moved.
pub fn redrive(txn: &mut Txn<'_>, redrive: &Redrive) -> Result<Outcome, StoreError> {
    if redrive.offsets.len() > crate::apply::MAX_REDRIVE {
        return Ok(Err(Rejection::Invalid(format!(
            "a redrive moves at most {} dead letters; propose larger ones in steps",
            crate::apply::MAX_REDRIVE
        ))));
    }
    let Some(mut sub) = load(txn, &redrive.group)? else {
        return Ok(Err(not_found(&redrive.group)));
    };
    let mut moved = 0;
    for &offset in &redrive.offsets {
        let dead = keys::delivery(DeliveryRecord::Dead, &sub.group, offset);
        let Some(letter) = txn.get::<DeadLetter>(CF_DELIVERIES, &dead)? else {
            continue;
        };
        txn.delete(CF_DELIVERIES, dead);
        let message = keys::message(&sub.topic, offset);
        if txn.get_raw(CF_MESSAGES, &message)?.is_none() {
            // Retention removed it once every group had settled it: the letter's copy returns.
            txn.put(CF_MESSAGES, message, &letter.message)?;
        }
        // The marker makes it pending whichever side of the cursor it is on, and tells the
        // scheduler (which has read past it) to deliver it again.
        delete_if_present(
            txn,
            keys::delivery(DeliveryRecord::Settled, &sub.group, offset),
        )?;
        txn.put_raw(
            CF_DELIVERIES,
            keys::delivery(DeliveryRecord::Redriven, &sub.group, offset),
            Vec::new(),
        );
        sub.dead = sub.dead.saturating_sub(1);
        moved += 1;
    }
    if moved > 0 {
        sub.redrives += 1;
        save(txn, &sub)?;
    }
    Ok(Ok(Applied::Redriven(moved)))
}

/// Messages examined past a group's cursor per scan beyond those it returns: the bound on how
/// long one scan spends stepping over messages that wait on timers.
pub const SKIP_BUDGET: usize = 10_000;

/// What one scan of a topic for a group found.
#[derive(Debug, Clone, PartialEq)]
pub struct Scanned {
    /// Pending messages to hold, in offset order.
    pub messages: Vec<PendingMessage>,
    /// Every offset up to this one was examined.
    pub through: u64,
    /// Whether the scan reached the end of the topic.
    pub complete: bool,
}

/// A message waiting for delivery to a group, with its failed attempts so far.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingMessage {
    /// The message.
    pub message: Message,
    /// Its failed attempts, if any.
    pub attempts: Option<Attempts>,
}

/// The smallest key after every key starting with `prefix`, if there is one.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn scan_prefix(
    db: &DB,
    cf_name: &'static str,
    from: &[u8],
    prefix: &[u8],
    mut each: impl FnMut(&[u8], &[u8]) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    // Bounded by the prefix, so the scan never steps over what lies beyond it.
    let mut options = ReadOptions::default();
    if let Some(end) = prefix_end(prefix) {
        options.set_iterate_upper_bound(end);
    }
    for item in db.iterator_cf_opt(
        cf(db, cf_name)?,
        options,
        IteratorMode::From(from, Direction::Forward),
    ) {
        let (key, value) = item?;
        if !key.starts_with(prefix) || !each(&key, &value)? {
            break;
        }
    }
    Ok(())
}

/// Reads of the queue's applied state (the scheduler's rebuild after a leader change, the
/// admin API).
pub struct QueueReads<'a> {
    /// The database.
    pub db: &'a DB,
}

impl QueueReads<'_> {
    fn txn(&self) -> Txn<'_> {
        Txn::new(self.db)
    }

    /// Every subscription.
    pub fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        let prefix = [DeliveryRecord::Subscription as u8];
        let mut subs = Vec::new();
        scan_prefix(self.db, CF_DELIVERIES, &prefix, &prefix, |_, value| {
            subs.push(
                serde_json::from_slice(value)
                    .map_err(|e| StoreError::corrupt("subscription", e))?,
            );
            Ok(true)
        })?;
        Ok(subs)
    }

    /// Every topic ever published to.
    pub fn topics(&self) -> Result<Vec<String>, StoreError> {
        self.names(DeliveryRecord::TopicHead)
    }

    /// The names in the one-byte-kind records `kind` (`kind name`): topics, groups.
    fn names(&self, kind: DeliveryRecord) -> Result<Vec<String>, StoreError> {
        let prefix = [kind as u8];
        let mut names = Vec::new();
        scan_prefix(self.db, CF_DELIVERIES, &prefix, &prefix, |key, _| {
            if let Ok(name) = std::str::from_utf8(&key[1..]) {
                names.push(name.to_owned());
            }
            Ok(true)
        })?;
        Ok(names)
    }

    /// Groups whose removal still has records to remove.
    pub fn removing_groups(&self) -> Result<Vec<String>, StoreError> {
        self.names(DeliveryRecord::Removing)
    }

    /// The last offset of `topic` removed by retention (0 when none was).
    pub fn floor(&self, topic: &str) -> Result<u64, StoreError> {
        retention::floor(&self.txn(), topic)
    }

    /// How far retention could trim `topic` at `now_ms`: the last offset every group has
    /// settled, if the oldest message still held is older than `retention_ms`; `None` when there
    /// is nothing to trim.
    pub fn trimmable(
        &self,
        topic: &str,
        retention_ms: u64,
        now_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        let txn = self.txn();
        let floor = retention::floor(&txn, topic)?;
        let settled_by_all = self
            .subscriptions()?
            .into_iter()
            .filter(|sub| sub.topic == topic)
            .map(|sub| sub.cursor)
            .min()
            .unwrap_or(u64::MAX)
            .min(queue::head(&txn, topic)?);
        if settled_by_all <= floor {
            return Ok(None);
        }
        let retention_ms = i64::try_from(retention_ms).unwrap_or(i64::MAX);
        Ok(match queue::load(&txn, topic, floor + 1)? {
            Some(oldest) if oldest.published_at_ms.saturating_add(retention_ms) <= now_ms => {
                Some(settled_by_all)
            }
            // Removed already (a later command will move the floor past it) or too young.
            Some(_) => None,
            None => Some(settled_by_all),
        })
    }

    /// One subscription.
    pub fn subscription(&self, group: &str) -> Result<Option<Subscription>, StoreError> {
        load(&self.txn(), group)
    }

    /// The last offset of `topic`.
    pub fn head(&self, topic: &str) -> Result<u64, StoreError> {
        queue::head(&self.txn(), topic)
    }

    /// The message at `offset` of `topic`.
    pub fn message(&self, topic: &str, offset: u64) -> Result<Option<Message>, StoreError> {
        queue::load(&self.txn(), topic, offset)
    }

    /// Up to `limit` messages of `sub`'s topic after `after` (and after its cursor) that are not
    /// settled, in offset order, with their attempts. For an unordered group, messages waiting on
    /// a delay or retry timer are skipped (the timer marks them ready when due). At most
    /// `limit + SKIP_BUDGET` messages are examined per call, so a long run of delayed messages
    /// costs several calls rather than one long one; `through` says how far it got.
    pub fn pending_after(
        &self,
        sub: &Subscription,
        after: u64,
        limit: usize,
    ) -> Result<Scanned, StoreError> {
        self.pending_after_within(sub, after, limit, usize::MAX)
    }

    /// [`QueueReads::pending_after`], also stopping before the messages returned pass
    /// `max_bytes` of stored message (at least one is returned): what bounds a group's memory
    /// when messages are large.
    pub fn pending_after_within(
        &self,
        sub: &Subscription,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Scanned, StoreError> {
        let txn = self.txn();
        let prefix = keys::message_prefix(&sub.topic);
        let start = after.max(sub.cursor);
        let from = keys::message(&sub.topic, start + 1);
        let mut scanned = Scanned {
            messages: Vec::new(),
            through: start,
            complete: true,
        };
        let mut examined = 0;
        let mut bytes = 0usize;
        scan_prefix(self.db, CF_MESSAGES, &from, &prefix, |key, value| {
            let over_bytes = !scanned.messages.is_empty() && bytes + value.len() > max_bytes;
            if scanned.messages.len() >= limit || examined >= limit + SKIP_BUDGET || over_bytes {
                scanned.complete = false;
                return Ok(false);
            }
            examined += 1;
            let offset = keys::trailing_offset(key).unwrap_or(0);
            scanned.through = offset;
            if exists(&txn, DeliveryRecord::Settled, &sub.group, offset)? {
                return Ok(true);
            }
            let pending = self.pending(&txn, &sub.group, value)?;
            if sub.ordered_by_key
                || !queue_timers::waits_on_timer(
                    &txn,
                    &sub.group,
                    &pending.message,
                    pending.attempts.as_ref(),
                )?
            {
                bytes += value.len();
                scanned.messages.push(pending);
            }
            Ok(true)
        })?;
        Ok(scanned)
    }

    /// Up to `limit` messages of `sub` marked ready by a fired timer that `held` does not
    /// already hold, and whether more are left.
    pub fn ready(
        &self,
        sub: &Subscription,
        held: impl Fn(u64) -> bool,
        limit: usize,
    ) -> Result<(Vec<PendingMessage>, bool), StoreError> {
        let txn = self.txn();
        let prefix = keys::delivery_prefix(DeliveryRecord::Ready, &sub.group);
        let mut offsets = Vec::new();
        let mut more = false;
        scan_prefix(self.db, CF_DELIVERIES, &prefix, &prefix, |key, _| {
            let Some(offset) = keys::trailing_offset(key) else {
                return Ok(true);
            };
            if held(offset) {
                return Ok(true);
            }
            if offsets.len() == limit {
                more = true;
                return Ok(false);
            }
            offsets.push(offset);
            Ok(true)
        })?;
        Ok((self.load_pending(&txn, sub, offsets)?, more))
    }

    /// The messages of `sub`'s topic at `offsets` (those still held), with their attempts.
    fn load_pending(
        &self,
        txn: &Txn<'_>,
        sub: &Subscription,
        offsets: Vec<u64>,
    ) -> Result<Vec<PendingMessage>, StoreError> {
        let mut found = Vec::new();
        for offset in offsets {
            if let Some(bytes) = txn.get_raw(CF_MESSAGES, &keys::message(&sub.topic, offset))? {
                found.push(self.pending(txn, &sub.group, &bytes)?);
            }
        }
        Ok(found)
    }

    fn pending(
        &self,
        txn: &Txn<'_>,
        group: &str,
        value: &[u8],
    ) -> Result<PendingMessage, StoreError> {
        let message: Message =
            serde_json::from_slice(value).map_err(|e| StoreError::corrupt("message", e))?;
        let attempts = txn.get(
            CF_DELIVERIES,
            &keys::delivery(DeliveryRecord::Attempts, group, message.offset),
        )?;
        Ok(PendingMessage { message, attempts })
    }

    /// Redriven messages of `sub` waiting for delivery again.
    pub fn redriven(&self, sub: &Subscription) -> Result<Vec<PendingMessage>, StoreError> {
        let txn = self.txn();
        let prefix = keys::delivery_prefix(DeliveryRecord::Redriven, &sub.group);
        let mut offsets = Vec::new();
        scan_prefix(self.db, CF_DELIVERIES, &prefix, &prefix, |key, _| {
            offsets.extend(keys::trailing_offset(key));
            Ok(true)
        })?;
        self.load_pending(&txn, sub, offsets)
    }

    /// Up to `limit` dead letters of `group` after offset `after`, and whether there are more.
    pub fn dead_letters(
        &self,
        group: &str,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<DeadLetter>, bool), StoreError> {
        let prefix = keys::delivery_prefix(DeliveryRecord::Dead, group);
        let from = keys::delivery(DeliveryRecord::Dead, group, after.saturating_add(1));
        let mut dead = Vec::new();
        let mut more = false;
        scan_prefix(self.db, CF_DELIVERIES, &from, &prefix, |_, value| {
            if dead.len() >= limit {
                more = true;
                return Ok(false);
            }
            dead.push(
                serde_json::from_slice(value).map_err(|e| StoreError::corrupt("dead letter", e))?,
            );
            Ok(true)
        })?;
        Ok((dead, more))
    }

    /// How many offsets beyond the cursor of `sub` are already settled (for the backlog).
    pub fn settled_beyond_cursor(&self, sub: &Subscription) -> Result<u64, StoreError> {
        let prefix = keys::delivery_prefix(DeliveryRecord::Settled, &sub.group);
        let mut n = 0;
        scan_prefix(self.db, CF_DELIVERIES, &prefix, &prefix, |_, _| {
            n += 1;
            Ok(true)
        })?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends_bound_every_key_with_the_prefix() {
        assert_eq!(prefix_end(b"g\x00"), Some(b"g\x01".to_vec()));
        assert_eq!(prefix_end(&[2, 0xff]), Some(vec![3]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }
}
