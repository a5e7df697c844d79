//! Reads of the queue's applied state: what the leader's scheduler rebuilds from after a leader
//! change, and what the admin API shows. Reached through [`crate::StateReader::queue`].

use rocksdb::{Direction, IteratorMode, ReadOptions, DB};

use crate::db::cf;
use crate::error::StoreError;
use crate::keys::{self, DeliveryRecord, CF_DELIVERIES, CF_MESSAGES};
use crate::txn::Txn;

use super::ack_time;
use super::message::Message;
use super::store;
use super::subscription::{Attempts, DeadLetter, Subscription};
use super::timers as queue_timers;

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

/// Where one message stands with one group, for an order's trace.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryStatus {
    /// Not settled yet; its failed attempts so far (if any).
    Pending(Option<Attempts>),
    /// Settled without a dead letter: acknowledged, or behind where the group started or was
    /// reset to. With when it was acknowledged, when the state knows (`queue::ack_time`).
    Settled(Option<i64>),
    /// Given up on: the dead letter with its attempts.
    Dead(DeadLetter),
}

/// A page of a dead-letter search.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadSearch {
    /// The letters that matched, in offset order.
    pub letters: Vec<DeadLetter>,
    /// Where the next page starts (the last offset examined), when the scan stopped early.
    pub next: Option<u64>,
}

/// A message waiting for delivery to a group, with its failed attempts so far.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingMessage {
    /// The message.
    pub message: Message,
    /// Its failed attempts, if any.
    pub attempts: Option<Attempts>,
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
    if let Some(end) = keys::prefix_end(prefix) {
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
    db: &'a DB,
}

impl<'a> QueueReads<'a> {
    /// Reads of `db`'s applied queue state; reached through [`crate::StateReader::queue`].
    pub(crate) fn new(db: &'a DB) -> Self {
        QueueReads { db }
    }

    fn txn(&self) -> Txn<'_> {
        Txn::new(self.db)
    }

    /// Every subscription.
    pub fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        let prefix = keys::record_kind_prefix(DeliveryRecord::Subscription);
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
        let prefix = keys::record_kind_prefix(kind);
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
        store::floor(&self.txn(), topic)
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
        let floor = store::floor(&txn, topic)?;
        let settled_by_all = self
            .subscriptions()?
            .into_iter()
            .filter(|sub| sub.topic == topic)
            .map(|sub| sub.cursor)
            .min()
            .unwrap_or(u64::MAX)
            .min(store::head(&txn, topic)?);
        if settled_by_all <= floor {
            return Ok(None);
        }
        let retention_ms = i64::try_from(retention_ms).unwrap_or(i64::MAX);
        Ok(match store::message(&txn, topic, floor + 1)? {
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
        store::subscription(&self.txn(), group)
    }

    /// The last offset of `topic`.
    pub fn head(&self, topic: &str) -> Result<u64, StoreError> {
        store::head(&self.txn(), topic)
    }

    /// The message at `offset` of `topic`.
    pub fn message(&self, topic: &str, offset: u64) -> Result<Option<Message>, StoreError> {
        store::message(&self.txn(), topic, offset)
    }

    /// The newest messages of `topic` still held, newest first, at most `limit` (a topic's
    /// offsets have no gaps, so this is `limit` point reads back from its head).
    pub fn latest(&self, topic: &str, limit: u64) -> Result<Vec<Message>, StoreError> {
        let txn = self.txn();
        let head = store::head(&txn, topic)?;
        let floor = store::floor(&txn, topic)?;
        let oldest = head.saturating_sub(limit).max(floor) + 1;
        let mut messages = Vec::new();
        for offset in (oldest..=head).rev() {
            if let Some(message) = store::message(&txn, topic, offset)? {
                messages.push(message);
            }
        }
        Ok(messages)
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
            if store::exists(&txn, DeliveryRecord::Settled, &sub.group, offset)? {
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

    /// Up to `limit` dead letters of `group` after offset `after` whose key or payload text
    /// contains `needle` (case-insensitive), examining at most `budget` letters: a search of a
    /// huge dead-letter set answers in pages, `next` saying where to go on.
    pub fn search_dead_letters(
        &self,
        group: &str,
        needle: &str,
        after: u64,
        limit: usize,
        budget: usize,
    ) -> Result<DeadSearch, StoreError> {
        let needle = needle.to_lowercase();
        let prefix = keys::delivery_prefix(DeliveryRecord::Dead, group);
        let from = keys::delivery(DeliveryRecord::Dead, group, after.saturating_add(1));
        let mut found = DeadSearch {
            letters: Vec::new(),
            next: None,
        };
        let mut examined = 0;
        let mut last = after;
        scan_prefix(self.db, CF_DELIVERIES, &from, &prefix, |key, value| {
            if found.letters.len() >= limit || examined >= budget {
                found.next = Some(last);
                return Ok(false);
            }
            examined += 1;
            last = keys::trailing_offset(key).unwrap_or(last);
            let letter: DeadLetter =
                serde_json::from_slice(value).map_err(|e| StoreError::corrupt("dead letter", e))?;
            if letter.message.key.to_lowercase().contains(&needle)
                || letter
                    .message
                    .payload
                    .to_string()
                    .to_lowercase()
                    .contains(&needle)
            {
                found.letters.push(letter);
            }
            Ok(true)
        })?;
        Ok(found)
    }

    /// Where the message at `offset` stands with `sub`.
    pub fn delivery_status(
        &self,
        sub: &Subscription,
        offset: u64,
    ) -> Result<DeliveryStatus, StoreError> {
        let txn = self.txn();
        if let Some(dead) = txn.get::<DeadLetter>(
            CF_DELIVERIES,
            &keys::delivery(DeliveryRecord::Dead, &sub.group, offset),
        )? {
            return Ok(DeliveryStatus::Dead(dead));
        }
        if store::is_pending(&txn, sub, offset)? {
            let attempts = txn.get(
                CF_DELIVERIES,
                &keys::delivery(DeliveryRecord::Attempts, &sub.group, offset),
            )?;
            return Ok(DeliveryStatus::Pending(attempts));
        }
        Ok(DeliveryStatus::Settled(ack_time::settled_at(
            &txn, sub, offset,
        )?))
    }

    /// The cursor that puts `topic`'s messages published at or after `at_ms` next in line: the
    /// last offset published before it. Publish times never go backwards along a topic (the
    /// batch clock does not), so this is a binary search of point lookups.
    pub fn offset_before_time(&self, topic: &str, at_ms: i64) -> Result<u64, StoreError> {
        let txn = self.txn();
        let (mut lo, mut hi) = (store::floor(&txn, topic)?, store::head(&txn, topic)?);
        // Invariant: every offset <= lo is before `at_ms`; every offset > hi is at or after it.
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            let before =
                store::message(&txn, topic, mid)?.is_none_or(|m| m.published_at_ms < at_ms);
            if before {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Ok(lo)
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
