//! The change stream: every put or delete of an order, a SKU or a queue message, recorded in the
//! `changes` column family in the same `WriteBatch` as the change itself.
//!
//! A record's offset is `log_index << 20 | seq`, where `seq` counts the changes of one log entry
//! from 0. Offsets therefore increase strictly, are the same on every node that applied the same
//! log, and a consumer that has seen everything up to offset `X` has seen every change of every
//! entry before `X >> 20`.
//!
//! To ensure correctness:
//! - Records are written only through [`crate::txn::Txn`], which sees the before image of every
//!   key it writes, so a record can never disagree with the state change it describes.
//! - Retention is node-local: [`prune`] deletes old records on one node and moves that node's
//!   [`floor`] (the newest offset no longer served) in the same `WriteBatch`; readers check the
//!   floor and scan in one RocksDB snapshot, so a page never silently skips pruned records.
//! - Snapshots do not carry change records (they would dwarf the state): installing one empties
//!   this node's changes and sets the floor to the snapshot's last entry ([`reset_after_snapshot`]).

use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch, DB};

use crate::db::cf;
use crate::error::StoreError;
use crate::keys::{self, CF_CHANGES, CF_MESSAGES, CF_ORDERS, CF_SKUS};
use crate::meta::{self, AppliedIndex, ChangesFloor};

/// Bits of an offset that count changes within one log entry.
pub const SEQ_BITS: u32 = 20;
/// Most changes one log entry can record.
pub const MAX_CHANGES_PER_ENTRY: u64 = 1 << SEQ_BITS;

/// The offset of change `seq` of the entry at `log_index`.
pub fn offset(log_index: u64, seq: u64) -> u64 {
    (log_index << SEQ_BITS) | seq
}

/// The largest offset any change of the entry at `log_index` can have: a consumer at this offset
/// has seen that entry whole.
pub fn entry_end(log_index: u64) -> u64 {
    offset(log_index, MAX_CHANGES_PER_ENTRY - 1)
}

/// The log index an offset belongs to.
pub fn log_index_of(offset: u64) -> u64 {
    offset >> SEQ_BITS
}

/// Which table a change is to; the column families captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Table {
    /// `orders`: values are [`crate::order::Order`] JSON.
    Orders = 1,
    /// `skus`: values are [`crate::sku::Sku`] JSON.
    Skus = 2,
    /// `messages`: queue messages, as the queue stores them.
    Messages = 3,
}

impl Table {
    /// The table a column family's writes are captured as, if they are.
    pub fn of_cf(cf: &str) -> Option<Table> {
        match cf {
            CF_ORDERS => Some(Table::Orders),
            CF_SKUS => Some(Table::Skus),
            CF_MESSAGES => Some(Table::Messages),
            _ => None,
        }
    }

    /// The contract's name of the table.
    pub fn name(self) -> &'static str {
        match self {
            Table::Orders => "orders",
            Table::Skus => "skus",
            Table::Messages => "messages",
        }
    }

    fn from_tag(tag: u8) -> Option<Table> {
        match tag {
            1 => Some(Table::Orders),
            2 => Some(Table::Skus),
            3 => Some(Table::Messages),
            _ => None,
        }
    }
}

/// What happened to the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// The key did not exist before.
    Insert = 1,
    /// The key existed and has a new value.
    Update = 2,
    /// The key existed and is gone.
    Delete = 3,
}

impl Op {
    /// The contract's name of the operation.
    pub fn name(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }

    /// The operation turning `before` into `after`; `None` when nothing changes (a rewrite of
    /// the same bytes, or a delete of a missing key), which records nothing.
    pub fn between(before: Option<&[u8]>, after: Option<&[u8]>) -> Option<Op> {
        match (before, after) {
            (None, None) => None,
            (None, Some(_)) => Some(Op::Insert),
            (Some(_), None) => Some(Op::Delete),
            (Some(b), Some(a)) if a == b => None,
            (Some(_), Some(_)) => Some(Op::Update),
        }
    }

    fn from_tag(tag: u8) -> Option<Op> {
        match tag {
            1 => Some(Op::Insert),
            2 => Some(Op::Update),
            3 => Some(Op::Delete),
            _ => None,
        }
    }
}

/// One recorded change, with the stored bytes of the value before and after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Position in the stream (see the module doc).
    pub offset: u64,
    /// The entry's clock (`now_ms` of its batch).
    pub at_ms: i64,
    /// The table changed.
    pub table: Table,
    /// The key changed, as stored.
    pub key: Vec<u8>,
    /// Insert, update or delete.
    pub op: Op,
    /// The stored value before (`None` for an insert).
    pub before: Option<Vec<u8>>,
    /// The stored value after (`None` for a delete).
    pub after: Option<Vec<u8>>,
}

/// Marks an absent image in the encoding.
const ABSENT: u32 = u32::MAX;

impl Change {
    /// The value stored under [`keys::change`]: `at_ms i64, table u8, op u8`, then key, before
    /// and after each as `len u32, bytes` (`len = u32::MAX` for an absent image). Binary, so
    /// capturing a change costs a copy, not a JSON round trip.
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let images =
            self.before.as_ref().map_or(0, Vec::len) + self.after.as_ref().map_or(0, Vec::len);
        let mut out = Vec::with_capacity(22 + self.key.len() + images);
        out.extend_from_slice(&self.at_ms.to_be_bytes());
        out.push(self.table as u8);
        out.push(self.op as u8);
        put_part(&mut out, Some(&self.key))?;
        put_part(&mut out, self.before.as_deref())?;
        put_part(&mut out, self.after.as_deref())?;
        Ok(out)
    }

    /// Decodes a record stored at `offset`.
    pub fn decode(offset: u64, mut bytes: &[u8]) -> Result<Change, StoreError> {
        let corrupt =
            |what: &str| StoreError::corrupt("change record", format!("{what} at offset {offset}"));
        let (at, rest) = bytes
            .split_first_chunk::<8>()
            .ok_or_else(|| corrupt("truncated"))?;
        let at_ms = i64::from_be_bytes(*at);
        let [table, op, rest @ ..] = rest else {
            return Err(corrupt("truncated"));
        };
        let table = Table::from_tag(*table).ok_or_else(|| corrupt("unknown table"))?;
        let op = Op::from_tag(*op).ok_or_else(|| corrupt("unknown op"))?;
        bytes = rest;
        let key = take_part(&mut bytes)?.ok_or_else(|| corrupt("missing key"))?;
        let before = take_part(&mut bytes)?;
        let after = take_part(&mut bytes)?;
        Ok(Change {
            offset,
            at_ms,
            table,
            key,
            op,
            before,
            after,
        })
    }

    /// The key as text: the id for orders and SKUs; keys that are not UTF-8 (binary queue keys)
    /// as `0x` and lower-case hex.
    pub fn key_text(&self) -> String {
        match std::str::from_utf8(&self.key) {
            Ok(text) if !text.starts_with("0x") && !text.chars().any(char::is_control) => {
                text.to_string()
            }
            _ => {
                let mut hex = String::with_capacity(2 + 2 * self.key.len());
                hex.push_str("0x");
                for byte in &self.key {
                    hex.push_str(&format!("{byte:02x}"));
                }
                hex
            }
        }
    }
}

fn put_part(out: &mut Vec<u8>, part: Option<&[u8]>) -> Result<(), StoreError> {
    match part {
        None => out.extend_from_slice(&ABSENT.to_be_bytes()),
        Some(bytes) => {
            let len = u32::try_from(bytes.len())
                .ok()
                .filter(|len| *len != ABSENT)
                .ok_or_else(|| StoreError::corrupt("change record", "image over 4 GiB"))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(bytes);
        }
    }
    Ok(())
}

fn take_part(data: &mut &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    let short = || StoreError::corrupt("change record", "truncated image");
    let (len, rest) = data.split_first_chunk::<4>().ok_or_else(short)?;
    let len = u32::from_be_bytes(*len);
    if len == ABSENT {
        *data = rest;
        return Ok(None);
    }
    let len = len as usize;
    if rest.len() < len {
        return Err(short());
    }
    let (bytes, rest) = rest.split_at(len);
    *data = rest;
    Ok(Some(bytes.to_vec()))
}

/// Where the changes of the entry being applied go: set per entry by the state machine.
#[derive(Debug, Clone, Copy)]
pub struct EntryClock {
    /// The entry's log index, the high bits of its offsets.
    pub log_index: u64,
    /// The batch's clock, every record's `at`.
    pub now_ms: i64,
    /// The next `seq` to hand out.
    pub next_seq: u64,
}

impl EntryClock {
    /// The clock of a new entry.
    pub fn new(log_index: u64, now_ms: i64) -> Self {
        EntryClock {
            log_index,
            now_ms,
            next_seq: 0,
        }
    }

    /// The next offset of this entry; an entry with more than [`MAX_CHANGES_PER_ENTRY`] changes
    /// is refused as a storage error (the batcher's `max_batch` keeps far below it).
    pub fn next_offset(&mut self) -> Result<u64, StoreError> {
        if self.next_seq >= MAX_CHANGES_PER_ENTRY {
            return Err(StoreError::corrupt(
                "change record",
                format!(
                    "entry {} has over {MAX_CHANGES_PER_ENTRY} changes",
                    self.log_index
                ),
            ));
        }
        let at = offset(self.log_index, self.next_seq);
        self.next_seq += 1;
        Ok(at)
    }
}

/// A page of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePage {
    /// Changes with offsets after the asked one, in offset order.
    pub changes: Vec<Change>,
    /// The offset to ask after next: the last change's, or, when the page is not full, the end of
    /// the last applied entry (no change up to it is missing), whichever is larger.
    pub next: u64,
}

/// Why a page cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    /// `after` is older than what this node retains: changes after it may be gone.
    #[error("offset {after} is older than the oldest retained ({floor}); restart from {floor}")]
    Expired {
        /// The offset asked for.
        after: u64,
        /// The oldest offset this node can serve after.
        floor: u64,
    },
    /// The storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The newest offset this node no longer serves after: every change up to it may be pruned.
pub fn floor(db: &DB) -> Result<u64, StoreError> {
    read_floor(db, &ReadOptions::default())
}

fn read_floor(db: &DB, opts: &ReadOptions) -> Result<u64, StoreError> {
    Ok(meta::read_with::<ChangesFloor>(db, opts)?.unwrap_or(0))
}

/// Up to `limit` changes after offset `after`. The floor, the records and the last applied
/// index are read from one RocksDB snapshot, so the page is exact: nothing between `after` and
/// `next` is missing from it.
pub fn page(db: &DB, after: u64, limit: usize) -> Result<ChangePage, ChangesError> {
    let view = db.snapshot();
    let snapshot_opts = || {
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&view);
        opts
    };
    let floor = read_floor(db, &snapshot_opts())?;
    if after < floor {
        return Err(ChangesError::Expired { after, floor });
    }
    let applied = meta::read_with::<AppliedIndex>(db, &snapshot_opts())?;
    let applied_end = applied.map_or(0, entry_end);
    let mut changes = Vec::new();
    if let Some(first) = after.checked_add(1) {
        let start = keys::change(first);
        for item in db.iterator_cf_opt(
            cf(db, CF_CHANGES)?,
            snapshot_opts(),
            IteratorMode::From(&start, Direction::Forward),
        ) {
            if changes.len() == limit {
                break;
            }
            let (key, value) = item.map_err(StoreError::from)?;
            let offset = keys::parse_change(&key)
                .ok_or_else(|| StoreError::corrupt("change key", "not 8 bytes"))?;
            changes.push(Change::decode(offset, &value)?);
        }
    }
    let last = changes.last().map_or(after, |c| c.offset);
    let next = if limit > 0 && changes.len() == limit {
        last
    } else {
        last.max(applied_end)
    };
    Ok(ChangePage { changes, next })
}

/// How much of the stream a node keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Records older than this (by their `at`) are pruned; 0 keeps them regardless of age.
    pub max_age_ms: i64,
    /// At most this many of the newest records are kept; 0 keeps them regardless of count.
    pub max_count: u64,
}

/// Prunes this node's records beyond `retention` as of `now_ms` (the node's own clock: pruning
/// is node-local, not replicated). Answers the new floor when it moved.
pub fn prune(db: &DB, now_ms: i64, retention: Retention) -> Result<Option<u64>, StoreError> {
    let changes = cf(db, CF_CHANGES)?;
    let offset_of = |key: &[u8]| {
        keys::parse_change(key).ok_or_else(|| StoreError::corrupt("change key", "not 8 bytes"))
    };
    // By count: the newest record beyond the `max_count` newest goes, with all older ones.
    let mut cut: Option<u64> = None;
    if retention.max_count > 0 {
        let beyond = db
            .iterator_cf(changes, IteratorMode::End)
            .nth(usize::try_from(retention.max_count).unwrap_or(usize::MAX));
        if let Some(item) = beyond {
            cut = Some(offset_of(&item?.0)?);
        }
    }
    // By age: every record from the start whose `at` is before the cutoff.
    if retention.max_age_ms > 0 {
        let cutoff_ms = now_ms.saturating_sub(retention.max_age_ms);
        for item in db.iterator_cf(changes, IteratorMode::Start) {
            let (key, value) = item?;
            let old = value
                .first_chunk::<8>()
                .is_some_and(|at| i64::from_be_bytes(*at) < cutoff_ms);
            if !old {
                break;
            }
            let offset = offset_of(&key)?;
            cut = Some(cut.map_or(offset, |c| c.max(offset)));
        }
    }
    let Some(cut) = cut else {
        return Ok(None);
    };
    if cut <= floor(db)? {
        return Ok(None);
    }
    let mut batch = WriteBatch::default();
    batch.delete_range_cf(changes, keys::change(0), keys::change(cut));
    batch.delete_cf(changes, keys::change(cut));
    meta::stage::<ChangesFloor>(db, &mut batch, &cut)?;
    db.write(batch)?;
    Ok(Some(cut))
}

/// Stages, into `batch`, forgetting every record and moving the floor to the end of the entry at
/// `last_index`: after a snapshot install the changes before it are not on this node.
pub fn reset_after_snapshot(
    db: &DB,
    batch: &mut WriteBatch,
    last_index: Option<u64>,
) -> Result<(), StoreError> {
    batch.delete_range_cf(cf(db, CF_CHANGES)?, [].as_slice(), keys::KEY_END);
    let floor = last_index.map_or(0, entry_end);
    meta::stage::<ChangesFloor>(db, batch, &floor)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(offset: u64) -> Change {
        Change {
            offset,
            at_ms: 1_700_000_000_000,
            table: Table::Orders,
            key: b"0000000000000001".to_vec(),
            op: Op::Update,
            before: Some(br#"{"a":1}"#.to_vec()),
            after: Some(Vec::new()),
        }
    }

    #[test]
    fn offsets_increase_across_entries_and_within_one() {
        assert!(offset(7, MAX_CHANGES_PER_ENTRY - 1) < offset(8, 0));
        assert!(offset(8, 0) < offset(8, 1));
        assert_eq!(log_index_of(offset(8, 5)), 8);
        assert_eq!(entry_end(8) + 1, offset(9, 0));
    }

    #[test]
    fn records_round_trip() {
        let change = sample(offset(3, 2));
        let bytes = change.encode().unwrap();
        assert_eq!(Change::decode(change.offset, &bytes).unwrap(), change);
        let insert = Change {
            op: Op::Insert,
            before: None,
            ..sample(1)
        };
        assert_eq!(
            Change::decode(1, &insert.encode().unwrap()).unwrap(),
            insert
        );
        assert!(Change::decode(1, &bytes[..bytes.len() - 1]).is_err());
        assert!(Change::decode(1, b"short").is_err());
    }

    #[test]
    fn ops_follow_the_images() {
        assert_eq!(Op::between(None, Some(b"x")), Some(Op::Insert));
        assert_eq!(Op::between(Some(b"x"), Some(b"y")), Some(Op::Update));
        assert_eq!(Op::between(Some(b"x"), None), Some(Op::Delete));
        assert_eq!(Op::between(Some(b"x"), Some(b"x")), None);
        assert_eq!(Op::between(None, None), None);
    }

    #[test]
    fn binary_keys_are_shown_as_hex() {
        let mut change = sample(1);
        assert_eq!(change.key_text(), "0000000000000001");
        change.key = vec![b't', 0, 0xff];
        assert_eq!(change.key_text(), "0x7400ff");
    }

    #[test]
    fn an_entry_refuses_more_changes_than_its_offsets_hold() {
        let mut clock = EntryClock::new(1, 0);
        clock.next_seq = MAX_CHANGES_PER_ENTRY - 1;
        assert_eq!(clock.next_offset().unwrap(), entry_end(1));
        assert!(clock.next_offset().is_err());
    }

    mod captured {
        use std::collections::BTreeMap;

        use super::super::*;
        use crate::apply::apply_batch;
        use crate::command::{Action, CancelOrder, Command, CommandBatch, CreateOrder, OrderLine};
        use crate::command::{PayOrder, PutSku};
        use crate::keys::{CF_SM_META, SM_LAST_APPLIED};
        use crate::txn::Txn;

        /// Applies `actions` as the entry at `index`, the way the state machine does.
        fn apply(db: &DB, index: u64, now_ms: i64, actions: Vec<Action>) {
            let mut txn = Txn::new(db);
            txn.begin_entry(index, now_ms);
            let batch = CommandBatch {
                now_ms,
                commands: actions.into_iter().map(Command::new).collect(),
            };
            apply_batch(&mut txn, index, &batch).unwrap();
            let last = crate::raft_types::LogId::new(openraft::CommittedLeaderId::new(1, 1), index);
            txn.put(CF_SM_META, SM_LAST_APPLIED.to_vec(), &last)
                .unwrap();
            db.write(txn.into_write_batch().unwrap()).unwrap();
        }

        fn sku(stock: u64) -> Action {
            Action::PutSku(PutSku {
                sku: "A".into(),
                stock,
                price_cents: 100,
                per_user_limit: 0,
            })
        }

        fn order(qty: u64) -> Action {
            Action::CreateOrder(CreateOrder {
                user_id: "u1".into(),
                items: vec![OrderLine {
                    sku: "A".into(),
                    qty,
                }],
                pay_within_secs: 60,
            })
        }

        /// The state of the captured tables, as (cf, key) -> value.
        fn tables(db: &DB) -> BTreeMap<(&'static str, Vec<u8>), Vec<u8>> {
            let mut out = BTreeMap::new();
            for name in [CF_ORDERS, CF_SKUS, CF_MESSAGES] {
                for item in db.iterator_cf(cf(db, name).unwrap(), IteratorMode::Start) {
                    let (k, v) = item.unwrap();
                    out.insert((name, k.to_vec()), v.to_vec());
                }
            }
            out
        }

        #[test]
        fn every_change_is_recorded_once_and_replays_to_the_state() {
            let dir = tempfile::tempdir().unwrap();
            let db = crate::db::open(dir.path()).unwrap();
            apply(&db, 1, 1_000, vec![sku(10)]);
            apply(&db, 2, 2_000, vec![order(2), order(3), sku(10)]);
            let first = crate::keys::order_id(2, 0);
            let second = crate::keys::order_id(2, 1);
            apply(
                &db,
                3,
                3_000,
                vec![
                    Action::PayOrder(PayOrder {
                        order_id: first.clone(),
                        payment_ref: "p".into(),
                    }),
                    Action::CancelOrder(CancelOrder {
                        order_id: second.clone(),
                    }),
                ],
            );
            let page = page(&db, 0, 1000).unwrap();
            let offsets: Vec<u64> = page.changes.iter().map(|c| c.offset).collect();
            let mut sorted = offsets.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(offsets, sorted, "strictly increasing");
            assert_eq!(page.next, entry_end(3));
            // Entry 1: sku insert. Entry 2: sku, order, sku, order (the unchanged sku put records
            // nothing). Entry 3: sku + order for the payment, sku + order for the cancel. Each
            // order change also publishes its event, a message insert, checked below.
            let ops: Vec<(u64, &str, &str)> = page
                .changes
                .iter()
                .filter(|c| c.table != Table::Messages)
                .map(|c| (log_index_of(c.offset), c.table.name(), c.op.name()))
                .collect();
            assert_eq!(
                ops,
                vec![
                    (1, "skus", "insert"),
                    (2, "skus", "update"),
                    (2, "orders", "insert"),
                    (2, "skus", "update"),
                    (2, "orders", "insert"),
                    (3, "skus", "update"),
                    (3, "orders", "update"),
                    (3, "skus", "update"),
                    (3, "orders", "update"),
                ]
            );
            let events = page
                .changes
                .iter()
                .filter(|c| c.table == Table::Messages && c.op == Op::Insert)
                .count();
            assert_eq!(events, 4, "created, created, paid, closed");
            assert_eq!(page.changes[1].at_ms, 2_000);
            // Each before image is the previous after image of the same key.
            let mut replayed = BTreeMap::new();
            for change in &page.changes {
                let name = match change.table {
                    Table::Orders => CF_ORDERS,
                    Table::Skus => CF_SKUS,
                    Table::Messages => CF_MESSAGES,
                };
                let key = (name, change.key.clone());
                assert_eq!(replayed.get(&key), change.before.as_ref());
                match &change.after {
                    Some(after) => replayed.insert(key, after.clone()),
                    None => replayed.remove(&key),
                };
            }
            assert_eq!(replayed, tables(&db));
            // Paging by one gives the same changes.
            let mut after = 0;
            let mut paged = Vec::new();
            loop {
                let one = super::super::page(&db, after, 1).unwrap();
                if one.changes.is_empty() {
                    break;
                }
                after = one.next;
                paged.extend(one.changes);
            }
            assert_eq!(paged, page.changes);
        }

        #[test]
        fn pruning_moves_the_floor_and_older_offsets_expire() {
            let dir = tempfile::tempdir().unwrap();
            let db = crate::db::open(dir.path()).unwrap();
            apply(&db, 1, 1_000, vec![sku(10)]);
            for index in 2..=5 {
                apply(&db, index, 1_000 * index as i64, vec![order(1)]);
            }
            let all = page(&db, 0, 100).unwrap().changes;
            // The sku, then per order: sku update, order insert, `order.created` message.
            assert_eq!(all.len(), 13);
            // Keep the newest 4 by count.
            let retention = Retention {
                max_age_ms: 0,
                max_count: 4,
            };
            let floor_now = prune(&db, 10_000, retention).unwrap().unwrap();
            assert_eq!(floor_now, all[8].offset);
            assert_eq!(floor(&db).unwrap(), floor_now);
            assert!(matches!(
                page(&db, all[7].offset, 100),
                Err(ChangesError::Expired { .. })
            ));
            assert_eq!(page(&db, floor_now, 100).unwrap().changes, all[9..]);
            assert_eq!(prune(&db, 10_000, retention).unwrap(), None);
            // By age: entries at 4 000 ms and before go when now is 10 000 and the age 5 000.
            let by_age = Retention {
                max_age_ms: 5_000,
                max_count: 0,
            };
            let floor_now = prune(&db, 10_000, by_age).unwrap().unwrap();
            assert_eq!(log_index_of(floor_now), 4);
            assert_eq!(page(&db, floor_now, 100).unwrap().changes, all[10..]);
        }

        #[test]
        fn a_snapshot_install_restarts_the_stream_after_its_entry() {
            let dir = tempfile::tempdir().unwrap();
            let db = crate::db::open(dir.path()).unwrap();
            apply(&db, 1, 1_000, vec![sku(10)]);
            let mut batch = WriteBatch::default();
            reset_after_snapshot(&db, &mut batch, Some(7)).unwrap();
            db.write(batch).unwrap();
            assert_eq!(floor(&db).unwrap(), entry_end(7));
            assert!(page(&db, 0, 10).is_err());
            apply(&db, 8, 2_000, vec![sku(11)]);
            let page = page(&db, entry_end(7), 10).unwrap();
            assert_eq!(page.changes.len(), 1);
            assert_eq!(page.changes[0].offset, offset(8, 0));
        }
    }
}
