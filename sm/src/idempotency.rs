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
use crate::keys::{self, CF_IDEMPOTENCY, IDEMPOTENCY_EXPIRY_PREFIX};
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
pub fn forget_expired(txn: &mut Txn<'_>, now_ms: i64) -> Result<(), StoreError> {
    let from = [IDEMPOTENCY_EXPIRY_PREFIX];
    let until = keys::idempotency_expiry(now_ms.saturating_sub(RETENTION_MS), &[]);
    for index_key in txn.scan_keys(CF_IDEMPOTENCY, &from, &until, FORGET_PER_BATCH)? {
        if let Some(key) = index_key.get(9..) {
            txn.delete(CF_IDEMPOTENCY, key.to_vec());
        }
        txn.delete(CF_IDEMPOTENCY, index_key);
    }
    Ok(())
}
