//! What the state machine remembers of requests made with an `Idempotency-Key`, and for how long.
//!
//! To ensure correctness:
//! - The record (request hash and first outcome) is written by `apply` in the same batch as the
//!   outcome itself, so a retry that reaches any node, or a new leader, gets the first answer.
//! - Keys are forgotten [`RETENTION_MS`] after their first use, by `apply` itself at the batch's
//!   clock (a bounded number per batch, oldest first), so every replica forgets the same keys at
//!   the same log position and the table does not grow forever.

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::keys::{self, CF_IDEMPOTENCY};
use crate::meta::IdempotencyForgotten;
use crate::outcome::Outcome;
use crate::txn::Txn;

/// How long a key is remembered: a day, as payment APIs do; a retry after that is a new request.
pub const RETENTION_MS: i64 = 24 * 3_600_000;
/// Most keys forgotten per applied batch, so a backlog drains without a long apply.
const FORGET_PER_BATCH: usize = 256;

/// What the state machine remembers of a request made with an `Idempotency-Key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// Hash of the first request; another hash under the same key is refused.
    pub request_hash: Vec<u8>,
    /// The first answer, returned again to every retry.
    pub outcome: Outcome,
    /// When the first request was applied (for retention).
    pub at_ms: i64,
}

/// The record of `key`, if it is remembered.
pub fn recall(txn: &Txn<'_>, key: &[u8]) -> Result<Option<IdempotencyRecord>, StoreError> {
    txn.get(CF_IDEMPOTENCY, key)
}

/// Remembers `record` under `key` (which is not remembered yet).
pub fn remember(
    txn: &mut Txn<'_>,
    key: &[u8],
    record: &IdempotencyRecord,
) -> Result<(), StoreError> {
    txn.put(CF_IDEMPOTENCY, key.to_vec(), record)?;
    txn.put_raw(
        CF_IDEMPOTENCY,
        keys::idempotency_expiry(record.at_ms, key),
        Vec::new(),
    );
    Ok(())
}

/// Forgets up to [`FORGET_PER_BATCH`] keys first used more than [`RETENTION_MS`] before `now_ms`.
///
/// The scan starts where the last one got to ([`IdempotencyForgotten`]), not at the start of the
/// expiry index, and stops at its bound (`Txn::scan_keys`): forgotten entries stay as tombstones
/// until a compaction, before the scan (the index) and after it (the records), and a scan from
/// the start without a bound stepped over both in every batch. A day after start, under steady
/// load, that is every key forgotten since the last flush, in each batch: the `fire_close_timer`
/// benchmark, whose clock moves a day in a hundred entries, took 1.6 ms per close for it.
///
/// When nothing is due, the mark moves up to the oldest key left (or to `now_ms` when none is
/// left: the batch clock never goes back, so no key can be remembered before it), and the
/// batches after it open no iterator until that key is due. Without that, every batch of a
/// node's first day, and every batch after an idle day, scanned an empty range: one iterator over
/// every memtable and SST of the column family per entry, about 6% of `apply`'s CPU per order
/// (`order_footprint`, perf).
pub fn forget_expired(txn: &mut Txn<'_>, now_ms: i64) -> Result<(), StoreError> {
    let forgotten = txn.meta::<IdempotencyForgotten>()?.unwrap_or(0);
    let expired = now_ms.saturating_sub(RETENTION_MS);
    if expired <= forgotten {
        return Ok(());
    }
    let from = keys::idempotency_expiry(forgotten, &[]);
    let until = keys::idempotency_expiry(expired, &[]);
    let found = txn.scan_keys(CF_IDEMPOTENCY, &from, &until, FORGET_PER_BATCH)?;
    if found.is_empty() {
        let index_end = [keys::IDEMPOTENCY_EXPIRY_PREFIX + 1];
        let oldest_left = txn.scan_keys(CF_IDEMPOTENCY, &until, &index_end, 1)?;
        let due_from = oldest_left
            .first()
            .and_then(|key| keys::idempotency_expiry_time(key))
            .unwrap_or(now_ms);
        if due_from > forgotten {
            txn.put_meta::<IdempotencyForgotten>(&due_from)?;
        }
        return Ok(());
    }
    // Every key before `expired` is gone unless the batch's share ran out; then the scan goes
    // on next time from the last one's time (keys of that millisecond may be left).
    let reached = if found.len() < FORGET_PER_BATCH {
        expired
    } else {
        found
            .last()
            .and_then(|key| keys::idempotency_expiry_time(key))
            .unwrap_or(forgotten)
    };
    for index_key in found {
        if let Some(key) = index_key.get(9..) {
            txn.delete(CF_IDEMPOTENCY, key.to_vec());
        }
        txn.delete(CF_IDEMPOTENCY, index_key);
    }
    if reached > forgotten {
        txn.put_meta::<IdempotencyForgotten>(&reached)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Rejection;
    use rocksdb::perf::{set_perf_stats, PerfContext, PerfMetric, PerfStatsLevel};

    /// Applies `step` in a batch of its own, as `apply` does.
    fn batch(db: &rocksdb::DB, step: impl FnOnce(&mut Txn<'_>)) {
        let mut txn = Txn::new(db);
        step(&mut txn);
        db.write(txn.into_write_batch().expect("the batch"))
            .expect("write");
    }

    #[test]
    fn forgetting_does_not_step_over_what_was_forgotten_before() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let db = crate::db::open(dir.path()).expect("the database");
        let keys = 3 * FORGET_PER_BATCH + 10;
        batch(&db, |txn| {
            for i in 0..keys {
                let record = IdempotencyRecord {
                    request_hash: vec![1],
                    outcome: Err(Rejection::Invalid("x".into())),
                    at_ms: 1_000 + i as i64,
                };
                remember(txn, format!("key-{i}").as_bytes(), &record).expect("remember");
            }
        });
        let late = RETENTION_MS + 1_000_000;
        for _ in 0..4 {
            batch(&db, |txn| forget_expired(txn, late).expect("forget"));
        }
        let txn = Txn::new(&db);
        assert!(recall(&txn, b"key-0").expect("read").is_none());
        assert!(recall(&txn, format!("key-{}", keys - 1).as_bytes())
            .expect("read")
            .is_none());

        // The next batch, a moment later, finds nothing to forget and reads past no tombstone.
        set_perf_stats(PerfStatsLevel::EnableCount);
        let mut perf = PerfContext::default();
        perf.reset();
        batch(&db, |txn| forget_expired(txn, late + 1).expect("forget"));
        let skipped = perf.metric(PerfMetric::InternalDeleteSkippedCount);
        set_perf_stats(PerfStatsLevel::Disable);
        assert!(
            skipped < 10,
            "the scan stepped over {skipped} forgotten entries of {keys}"
        );
    }

    #[test]
    fn a_batch_with_nothing_due_opens_no_iterator_and_keys_are_still_forgotten_on_time() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let db = crate::db::open(dir.path()).expect("the database");
        let first_used = 1_700_000_000_000;
        batch(&db, |txn| {
            let record = IdempotencyRecord {
                request_hash: vec![1],
                outcome: Err(Rejection::Invalid("x".into())),
                at_ms: first_used,
            };
            remember(txn, b"key-a", &record).expect("remember");
        });
        // The first batch after it looks once and learns when the oldest key is due.
        batch(&db, |txn| {
            forget_expired(txn, first_used + 1_000).expect("forget")
        });

        set_perf_stats(PerfStatsLevel::EnableCount);
        let mut perf = PerfContext::default();
        perf.reset();
        for later in [2_000, 3_000, RETENTION_MS] {
            batch(&db, |txn| {
                forget_expired(txn, first_used + later).expect("forget")
            });
        }
        let seeks = perf.metric(PerfMetric::SeekOnMemtableCount);
        set_perf_stats(PerfStatsLevel::Disable);
        assert_eq!(seeks, 0, "batches with nothing due opened iterators");
        let txn = Txn::new(&db);
        assert!(
            recall(&txn, b"key-a").expect("read").is_some(),
            "a key is remembered for the whole retention"
        );

        batch(&db, |txn| {
            forget_expired(txn, first_used + RETENTION_MS + 1).expect("forget")
        });
        let txn = Txn::new(&db);
        assert!(recall(&txn, b"key-a").expect("read").is_none());
    }
}
