//! Column-family names and key encoding: the only place that builds RocksDB keys.
//!
//! Keys sort the way they are scanned: integers are big-endian, strings are UTF-8 (which never
//! contains the byte `0xff`, so [`KEY_END`] bounds every state key) and composite keys join their
//! parts with a `0x00` separator, which ids (printable text, see `api`) never contain.

/// Raft log entries, keyed by [`log_index`].
pub const CF_LOG: &str = "raft_log";
/// Raft metadata that is not state: vote, last purged log id, committed log id.
pub const CF_RAFT_META: &str = "raft_meta";
/// State-machine metadata: last applied log id and the last membership.
pub const CF_SM_META: &str = "sm_meta";
/// Stock per SKU, keyed by SKU id.
pub const CF_SKUS: &str = "skus";
/// Orders, keyed by order id.
pub const CF_ORDERS: &str = "orders";
/// Secondary index of orders by user: [`user_order`] keys, empty values.
pub const CF_USER_ORDERS: &str = "user_orders";
/// Idempotency records, keyed by the client's `Idempotency-Key`.
pub const CF_IDEMPOTENCY: &str = "idempotency";
/// Pending timers keyed by due time ([`timer`]); the time wheel reads them.
pub const CF_TIMERS: &str = "timers";
/// Queue messages (reserved for the queue).
pub const CF_MESSAGES: &str = "messages";
/// Per-subscription delivery state (reserved for the queue).
pub const CF_DELIVERIES: &str = "deliveries";
/// The change stream, keyed by [`change`] offset (see `changes`). Node-local history like the
/// Raft log: not part of snapshots, pruned by each node's own retention.
pub const CF_CHANGES: &str = "changes";
/// Units of a SKU a user holds in open or paid orders, keyed by [`user_sku`]: what per-user
/// limits are checked against (see `crate::user_limit`).
pub const CF_USER_UNITS: &str = "user_units";

/// Every column family the database is opened with.
pub const ALL_CFS: &[&str] = &[
    CF_LOG,
    CF_RAFT_META,
    CF_SM_META,
    CF_SKUS,
    CF_ORDERS,
    CF_USER_ORDERS,
    CF_IDEMPOTENCY,
    CF_TIMERS,
    CF_MESSAGES,
    CF_DELIVERIES,
    CF_CHANGES,
    CF_USER_UNITS,
];

/// The column families that make up the replicated state: what a snapshot carries and what
/// installing one replaces. The order is the snapshot's wire order (the index is the CF tag).
/// `changes` is not among them: it is history, like the log, and installing a snapshot empties it
/// (see `changes::reset_after_snapshot`).
pub const STATE_CFS: &[&str] = &[
    CF_SM_META,
    CF_SKUS,
    CF_ORDERS,
    CF_USER_ORDERS,
    CF_IDEMPOTENCY,
    CF_TIMERS,
    CF_MESSAGES,
    CF_DELIVERIES,
    CF_USER_UNITS,
];

/// Exclusive upper bound of every key in a state column family.
pub const KEY_END: &[u8] = &[0xff];

/// `raft_meta` key of the vote.
pub const META_VOTE: &[u8] = b"vote";
/// `raft_meta` key of the last purged log id.
pub const META_LAST_PURGED: &[u8] = b"last_purged";
/// `raft_meta` key set while a snapshot is being installed (see `snapshot::restore`).
pub const META_RESTORING: &[u8] = b"restoring";
/// `raft_meta` key of the committed log id.
pub const META_COMMITTED: &[u8] = b"committed";
/// `raft_meta` key of this node's change-stream floor: the newest offset it no longer serves
/// after (node-local, like the rest of `raft_meta`).
pub const META_CHANGES_FLOOR: &[u8] = b"changes_floor";
/// `sm_meta` key of the last applied log id.
pub const SM_LAST_APPLIED: &[u8] = b"last_applied";
/// `sm_meta` key of the last applied membership.
pub const SM_MEMBERSHIP: &[u8] = b"membership";
/// The `sm_meta` keys that are Raft's bookkeeping rather than orders, stock or queue state:
/// the state digest leaves them out (see `StateReader::state_digest`).
pub const RAFT_STATE_KEYS: &[&[u8]] = &[SM_LAST_APPLIED, SM_MEMBERSHIP];
/// `sm_meta` key of the number of pending timers.
pub const SM_TIMERS_PENDING: &[u8] = b"timers_pending";
/// Prefix of the `sm_meta` keys counting orders per state ([`order_count`]).
pub const SM_ORDER_COUNT_PREFIX: &[u8] = b"orders/";

/// `sm_meta` key of the number of orders in `state` (snake_case state name).
pub fn order_count(state: &str) -> Vec<u8> {
    let mut key = SM_ORDER_COUNT_PREFIX.to_vec();
    key.extend_from_slice(state.as_bytes());
    key
}

/// `sm_meta` key of the batch clock: the time the last entry was applied at.
pub const SM_BATCH_CLOCK: &[u8] = b"batch_clock";

/// `sm_meta` key of the number of timers fired so far.
pub const SM_TIMERS_FIRED: &[u8] = b"timers_fired";
/// Key in `sm_meta` of the time idempotency keys are forgotten up to.
pub const SM_IDEMPOTENCY_FORGOTTEN: &[u8] = b"idempotency_forgotten";

/// Key of a log entry: its index, big-endian so entries sort by index.
pub fn log_index(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Inverse of [`log_index`]; `None` for a key that is not 8 bytes.
pub fn parse_log_index(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// Key of a change record: its offset, big-endian so records sort in stream order.
pub fn change(offset: u64) -> [u8; 8] {
    offset.to_be_bytes()
}

/// Inverse of [`change`]; `None` for a key that is not 8 bytes.
pub fn parse_change(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// First byte of the expiry index inside the `idempotency` column family. Client keys are
/// printable ASCII, so no client key starts with it.
pub const IDEMPOTENCY_EXPIRY_PREFIX: u8 = 0;

/// Key of an idempotency key's expiry entry: `0x00 at_ms (BE) key`, so a scan from the prefix
/// yields the oldest keys first.
pub fn idempotency_expiry(at_ms: i64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + key.len());
    out.push(IDEMPOTENCY_EXPIRY_PREFIX);
    out.extend_from_slice(&(at_ms.max(0) as u64).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The first-use time in an expiry entry's key ([`idempotency_expiry`]).
pub fn idempotency_expiry_time(key: &[u8]) -> Option<i64> {
    let at: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    i64::try_from(u64::from_be_bytes(at)).ok()
}

/// Key of a user's order in the `user_orders` index: `user 0x00 order_id`.
pub fn user_order(user_id: &str, order_id: &str) -> Vec<u8> {
    let mut key = user_prefix(user_id);
    key.extend_from_slice(order_id.as_bytes());
    key
}

/// The smallest key strictly after `key`: where a page that ended at `key` resumes.
pub fn key_after(mut key: Vec<u8>) -> Vec<u8> {
    key.push(0);
    key
}

/// Prefix of every `user_orders` key of one user.
pub fn user_prefix(user_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(user_id.len() + 21);
    key.extend_from_slice(user_id.as_bytes());
    key.push(0);
    key
}

/// Key of a user's holding of one SKU in `user_units`: `user 0x00 sku`.
pub fn user_sku(user_id: &str, sku: &str) -> Vec<u8> {
    let mut key = user_prefix(user_id);
    key.extend_from_slice(sku.as_bytes());
    key
}

/// What a timer does when it fires; the kind is part of the key so one due time can hold many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TimerKind {
    /// Close an unpaid order at its `expires_at`.
    CloseOrder = 1,
    /// Make a delayed message deliverable at its `deliver_at`; target `topic:offset`.
    DeliverMessage = 2,
    /// Make a failed delivery retryable at its retry time; target `group:offset`.
    RetryDelivery = 3,
}

impl TimerKind {
    /// The kind with tag `tag`, if known.
    pub fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(TimerKind::CloseOrder),
            2 => Some(TimerKind::DeliverMessage),
            3 => Some(TimerKind::RetryDelivery),
            _ => None,
        }
    }
}

/// Key of a timer: `due_ms (BE) kind target`, so a scan from the start yields timers in due order.
pub fn timer(due_ms: i64, kind: TimerKind, target: &str) -> Vec<u8> {
    let mut key = timer_due_prefix(due_ms).to_vec();
    key.reserve(1 + target.len());
    key.push(kind as u8);
    key.extend_from_slice(target.as_bytes());
    key
}

/// The first 8 bytes of every timer key due at `due_ms`: a scan bound for "due before".
pub fn timer_due_prefix(due_ms: i64) -> [u8; 8] {
    // Times before the epoch are clamped: a timer due in the past is due now.
    (due_ms.max(0) as u64).to_be_bytes()
}

/// A timer key taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerKey<'a> {
    /// When it is due, ms since the epoch.
    pub due_ms: i64,
    /// What it does.
    pub kind: TimerKind,
    /// What it acts on (an order id, a message id, a group's delivery).
    pub target: &'a str,
}

/// Inverse of [`timer`]; `None` for a key that is not a timer key of a known kind.
pub fn parse_timer(key: &[u8]) -> Option<TimerKey<'_>> {
    let (due, rest) = key.split_first_chunk::<8>()?;
    let (kind, target) = rest.split_first()?;
    Some(TimerKey {
        due_ms: i64::try_from(u64::from_be_bytes(*due)).ok()?,
        kind: TimerKind::from_tag(*kind)?,
        target: std::str::from_utf8(target).ok()?,
    })
}

/// Key of a queue message in `messages`: `topic 0x00 offset (BE)`, so one topic's messages sort
/// in publish order and a consumer's scan after its cursor is one seek.
pub fn message(topic: &str, offset: u64) -> Vec<u8> {
    let mut key = message_prefix(topic);
    key.extend_from_slice(&offset.to_be_bytes());
    key
}

/// Prefix of every `messages` key of one topic.
pub fn message_prefix(topic: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(topic.len() + 9);
    key.extend_from_slice(topic.as_bytes());
    key.push(0);
    key
}

/// The offset at the end of a `messages` or per-message `deliveries` key; `None` if too short.
pub fn trailing_offset(key: &[u8]) -> Option<u64> {
    let (_, offset) = key.split_last_chunk::<8>()?;
    Some(u64::from_be_bytes(*offset))
}

/// What a `deliveries` record is; the first byte of its key, so each kind scans on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DeliveryRecord {
    /// A subscription (settings, cursor, counters): `1 group`.
    Subscription = 1,
    /// A message beyond the cursor that is settled (acked or dead): `2 group 0x00 offset`.
    Settled = 2,
    /// Failed attempts of a message not yet settled: `3 group 0x00 offset`.
    Attempts = 3,
    /// A dead letter: `4 group 0x00 offset`.
    Dead = 4,
    /// A redriven dead letter waiting for delivery again: `5 group 0x00 offset`.
    Redriven = 5,
    /// The last offset published to a topic: `6 topic`.
    TopicHead = 6,
    /// A pending message whose delay or retry timer fired, for the scheduler to load (its scan
    /// skipped the message while the timer was armed): `7 group 0x00 offset`.
    Ready = 7,
    /// The last offset of a topic removed by retention: `8 topic`.
    TopicFloor = 8,
    /// A group being removed whose records are not all gone yet: `9 group`.
    Removing = 9,
    /// When a group's cursor reached an offset (`queue::ack_time`): `10 group 0x00 cursor`.
    CursorPassed = 10,
    /// When a group acknowledged a message behind its cursor (a redriven dead letter):
    /// `11 group 0x00 offset`.
    AckedBehind = 11,
}

/// Key of a subscription record in `deliveries`.
pub fn subscription(group: &str) -> Vec<u8> {
    let mut key = vec![DeliveryRecord::Subscription as u8];
    key.extend_from_slice(group.as_bytes());
    key
}

/// Key of the marker of a group being removed.
pub fn group_removing(group: &str) -> Vec<u8> {
    let mut key = vec![DeliveryRecord::Removing as u8];
    key.extend_from_slice(group.as_bytes());
    key
}

/// Prefix of every `deliveries` record of `kind` (all subscriptions, all topic heads, ...).
pub fn record_kind_prefix(kind: DeliveryRecord) -> [u8; 1] {
    [kind as u8]
}

/// The smallest key after every key starting with `prefix`, if there is one: the upper bound of
/// a prefix scan.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Key of a topic's head (its last offset) in `deliveries`.
pub fn topic_head(topic: &str) -> Vec<u8> {
    let mut key = vec![DeliveryRecord::TopicHead as u8];
    key.extend_from_slice(topic.as_bytes());
    key
}

/// Key of the record of a topic's last offset removed by retention.
pub fn topic_floor(topic: &str) -> Vec<u8> {
    let mut key = vec![DeliveryRecord::TopicFloor as u8];
    key.extend_from_slice(topic.as_bytes());
    key
}

/// Prefix of one group's per-message records of `kind` in `deliveries`.
pub fn delivery_prefix(kind: DeliveryRecord, group: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(group.len() + 10);
    key.push(kind as u8);
    key.extend_from_slice(group.as_bytes());
    key.push(0);
    key
}

/// Key of one group's record of `kind` about the message at `offset`.
pub fn delivery(kind: DeliveryRecord, group: &str, offset: u64) -> Vec<u8> {
    let mut key = delivery_prefix(kind, group);
    key.extend_from_slice(&offset.to_be_bytes());
    key
}

/// Order id derived from the log position of the command that created it: unique, the same on
/// every node, and sorting in creation order.
pub fn order_id(log_index: u64, position: usize) -> String {
    format!("{log_index:016x}{position:04x}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefix_ends_bound_every_key_with_the_prefix() {
        use super::prefix_end;
        assert_eq!(prefix_end(b"g\x00"), Some(b"g\x01".to_vec()));
        assert_eq!(prefix_end(&[2, 0xff]), Some(vec![3]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }

    use super::*;

    #[test]
    fn log_keys_sort_by_index() {
        assert!(log_index(255) < log_index(256));
        assert_eq!(parse_log_index(&log_index(42)), Some(42));
        assert_eq!(parse_log_index(b"short"), None);
    }

    #[test]
    fn timer_keys_sort_by_due_time() {
        let early = timer(1_000, TimerKind::CloseOrder, "zzz");
        let late = timer(1_001, TimerKind::CloseOrder, "aaa");
        assert!(early < late);
        assert!(late.as_slice() < KEY_END);
        let parsed = parse_timer(&late).unwrap();
        assert_eq!(
            (parsed.due_ms, parsed.kind, parsed.target),
            (1_001, TimerKind::CloseOrder, "aaa")
        );
        assert_eq!(parse_timer(b"short"), None);
    }

    #[test]
    fn order_ids_sort_in_creation_order() {
        assert!(order_id(9, 3) < order_id(10, 0));
        assert!(order_id(10, 0) < order_id(10, 1));
        assert_eq!(order_id(1, 2).len(), 20);
    }
}
