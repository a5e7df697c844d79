//! A read-your-writes view over the database for the length of one applied batch.
//!
//! `apply` reads through the [`Txn`] (its own pending writes first, then RocksDB) and writes into
//! it; the whole batch then goes to disk as one `WriteBatch`, so a crash leaves either all of a
//! batch's effects or none.
//!
//! It is also where the change stream is captured: once [`Txn::begin_entry`] names the log entry
//! being applied, every write to a captured table (`orders`, `skus`, `messages`) that changes a
//! value stages a [`Change`] record with its before and after images into the same batch, so
//! `apply` records changes without knowing about them.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound;

use rocksdb::{DBIteratorWithThreadMode, ReadOptions, WriteBatch, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::changes::{Change, EntryClock, Op, Table};
use crate::error::StoreError;
use crate::keys::{self, CF_CHANGES};
use crate::meta::StoreMeta;

/// A RocksDB batch's header: sequence number and count.
const BATCH_HEADER: usize = 12;
/// Most bytes RocksDB adds to one write in a batch: its tag, column family id and two lengths
/// (varints).
const WRITE_OVERHEAD: usize = 16;

/// Pending writes of one applied batch over a database.
pub struct Txn<'a> {
    /// Where unchanged keys are read from.
    db: &'a DB,
    /// Writes so far per column family, in key order: `Some(value)` to put, `None` to delete.
    /// Key order is the order the batch reaches RocksDB's memtables in, which inserts sorted
    /// keys faster; a lookup borrows the key instead of copying it.
    writes: BTreeMap<&'static str, BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
    /// The entry whose changes are being recorded; `None` records none (reads, `apply` alone).
    entry: Option<EntryClock>,
    /// The first failure while capturing a change, reported by [`Txn::into_write_batch`] so the
    /// batch is never written without its change records.
    failed: Option<StoreError>,
}

impl<'a> Txn<'a> {
    /// An empty transaction over `db`.
    pub fn new(db: &'a DB) -> Self {
        Txn {
            db,
            writes: BTreeMap::new(),
            entry: None,
            failed: None,
        }
    }

    /// Starts recording the changes of the entry at `log_index`, stamped `now_ms`: its offsets
    /// are `log_index << 20 | seq` in write order.
    pub fn begin_entry(&mut self, log_index: u64, now_ms: i64) {
        self.entry = Some(EntryClock::new(log_index, now_ms));
    }

    /// How many change records the entry being recorded has staged so far (0 when none is).
    pub fn changes_recorded(&self) -> u64 {
        self.entry.as_ref().map_or(0, |entry| entry.next_seq)
    }

    /// Stages the change record of writing `after` to `key` in `cf`, if `cf` is captured, an
    /// entry is being recorded and the value really changes.
    fn capture(&mut self, cf: &'static str, key: &[u8], after: Option<&[u8]>) {
        if Table::of_cf(cf).is_none() || self.entry.is_none() || self.failed.is_some() {
            return;
        }
        match self.get_raw(cf, key) {
            Ok(before) => self.capture_change(cf, key, before, after),
            Err(e) => self.failed = Some(e),
        }
    }

    /// Stages the change record of `key` in `cf` going from `before` to `after`.
    fn capture_change(
        &mut self,
        cf: &'static str,
        key: &[u8],
        before: Option<Vec<u8>>,
        after: Option<&[u8]>,
    ) {
        let Some(table) = Table::of_cf(cf) else {
            return;
        };
        if self.entry.is_none() || self.failed.is_some() {
            return;
        }
        let Some(op) = Op::between(before.as_deref(), after) else {
            return;
        };
        let Some(entry) = self.entry.as_mut() else {
            return;
        };
        let at_ms = entry.now_ms;
        let record = entry.next_offset().and_then(|offset| {
            let change = Change {
                offset,
                at_ms,
                table,
                key: key.to_vec(),
                op,
                before,
                after: after.map(<[u8]>::to_vec),
            };
            Ok((offset, change.encode()?))
        });
        match record {
            Ok((offset, bytes)) => {
                self.stage(CF_CHANGES, keys::change(offset).to_vec(), Some(bytes));
            }
            Err(e) => self.failed = Some(e),
        }
    }

    /// The raw value of `key` in `cf` as this transaction sees it.
    pub fn get_raw(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(pending) = self.writes.get(cf).and_then(|staged| staged.get(key)) {
            return Ok(pending.clone());
        }
        Ok(self.db.get_cf(crate::db::cf(self.db, cf)?, key)?)
    }

    /// The JSON value of `key` in `cf`, decoded.
    pub fn get<T: DeserializeOwned>(
        &self,
        cf: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match self.get_raw(cf, key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::corrupt(cf, e)),
        }
    }

    /// Up to `limit` keys of `cf` in `[from, to)` as this transaction sees them: committed keys
    /// not deleted earlier in the batch, and keys put earlier in the batch, in key order.
    ///
    /// To ensure correctness: openraft hands `apply` entries in groups whose size differs
    /// between replicas and replays, and one transaction spans a whole group; a scan that read
    /// the database alone would see a different set of keys depending on the grouping, so every
    /// scan `apply` makes goes through here.
    pub fn scan_keys(
        &self,
        cf: &'static str,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut found = Vec::new();
        if limit == 0 || from >= to {
            return Ok(found);
        }
        let bounds = (Bound::Included(from), Bound::Excluded(to));
        let mut staged = self
            .writes
            .get(cf)
            .into_iter()
            .flat_map(|writes| writes.range::<[u8], _>(bounds))
            .peekable();
        // Bounded above, or RocksDB would step over every deleted key after `to` looking for a
        // live one before this loop saw the bound (the idempotency keys' tombstones follow their
        // expiry index, and each batch's scan of the index walked all of them).
        let mut bounded = ReadOptions::default();
        bounded.set_iterate_upper_bound(to.to_vec());
        let mut committed = self.db.iterator_cf_opt(
            crate::db::cf(self.db, cf)?,
            bounded,
            rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward),
        );
        let mut next_committed = next_key_before(&mut committed, to)?;
        while found.len() < limit {
            let staged_first = match (next_committed.as_deref(), staged.peek()) {
                (None, None) => break,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(committed_key), Some((staged_key, _))) => {
                    let order = staged_key.as_slice().cmp(committed_key);
                    if order == Ordering::Equal {
                        // The batch rewrote or deleted a committed key: its write decides.
                        next_committed = next_key_before(&mut committed, to)?;
                    }
                    order != Ordering::Greater
                }
            };
            if staged_first {
                if let Some((key, Some(_))) = staged.next() {
                    found.push(key.clone());
                }
            } else if let Some(key) = next_committed.take() {
                found.push(key.into_vec());
                next_committed = next_key_before(&mut committed, to)?;
            }
        }
        Ok(found)
    }

    /// Stages a raw put.
    pub fn put_raw(&mut self, cf: &'static str, key: Vec<u8>, value: Vec<u8>) {
        self.capture(cf, &key, Some(&value));
        self.stage(cf, key, Some(value));
    }

    /// Stages a JSON put of a key that has never been written: one named after a position that
    /// only grows (an order id from its log index, a topic's next offset). Its change record is
    /// an insert without reading the key first, the read every other put of a captured table
    /// makes for the before image.
    pub fn put_new<T: Serialize>(
        &mut self,
        cf: &'static str,
        key: Vec<u8>,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = encode(cf, value)?;
        self.capture_change(cf, &key, None, Some(&bytes));
        self.stage(cf, key, Some(bytes));
        Ok(())
    }

    /// Stages a JSON put.
    pub fn put<T: Serialize>(
        &mut self,
        cf: &'static str,
        key: Vec<u8>,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = encode(cf, value)?;
        self.put_raw(cf, key, bytes);
        Ok(())
    }

    /// Stages a delete.
    pub fn delete(&mut self, cf: &'static str, key: Vec<u8>) {
        self.capture(cf, &key, None);
        self.stage(cf, key, None);
    }

    /// Records `value` (`None`: a delete) as the batch's write of `key` in `cf`.
    fn stage(&mut self, cf: &'static str, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.writes.entry(cf).or_default().insert(key, value);
    }

    /// The staged writes of `cf`, in key order.
    fn staged(&self, cf: &'static str) -> impl Iterator<Item = (&Vec<u8>, &Option<Vec<u8>>)> {
        self.writes.get(cf).into_iter().flatten()
    }

    /// Keys staged for a put into `cf` (for example timers armed by this batch).
    pub fn staged_puts(&self, cf: &'static str) -> Vec<Vec<u8>> {
        self.staged(cf)
            .filter(|(_, value)| value.is_some())
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// The values staged to be put in `cf`: what a batch changed there, for the in-memory views
    /// updated once the batch is written (the sold-out set).
    pub fn staged_values(&self, cf: &'static str) -> impl Iterator<Item = &[u8]> + '_ {
        self.staged(cf).filter_map(|(_, value)| value.as_deref())
    }

    /// The staged writes, change records included, as one RocksDB batch; fails if capturing a
    /// change failed.
    pub fn into_write_batch(self) -> Result<WriteBatch, StoreError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        // Sized once: a batch of a thousand closes is megabytes, and growing it by doubling
        // copies it again at every step.
        let bytes: usize = self
            .writes
            .values()
            .flatten()
            .map(|(key, value)| key.len() + value.as_ref().map_or(0, Vec::len) + WRITE_OVERHEAD)
            .sum();
        let mut batch = WriteBatch::with_capacity_bytes(bytes + BATCH_HEADER);
        for (cf, staged) in self.writes {
            let handle = crate::db::cf(self.db, cf)?;
            for (key, value) in staged {
                match value {
                    Some(value) => batch.put_cf(handle, key, value),
                    None => batch.delete_cf(handle, key),
                }
            }
        }
        Ok(batch)
    }
}

/// A record of `cf` as stored: JSON.
fn encode<T: Serialize>(cf: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::corrupt(cf, e))
}

/// The next key of `iter` if it sorts before `to`.
fn next_key_before(
    iter: &mut DBIteratorWithThreadMode<'_, DB>,
    to: &[u8],
) -> Result<Option<Box<[u8]>>, StoreError> {
    match iter.next() {
        Some(item) => {
            let (key, _) = item?;
            Ok((key.as_ref() < to).then_some(key))
        }
        None => Ok(None),
    }
}

/// Typed access to the meta values ([`crate::meta`]) as this transaction sees them.
impl Txn<'_> {
    /// `M` as this transaction sees it.
    pub fn meta<M: StoreMeta>(&self) -> Result<Option<M::Value>, StoreError> {
        match self.get_raw(M::CF, M::KEY)? {
            None => Ok(None),
            Some(bytes) => M::decode(&bytes).map(Some),
        }
    }

    /// Stages `value` as `M`.
    pub fn put_meta<M: StoreMeta>(&mut self, value: &M::Value) -> Result<(), StoreError> {
        let bytes = M::encode(value)?;
        self.put_raw(M::CF, M::KEY.to_vec(), bytes);
        Ok(())
    }
}
