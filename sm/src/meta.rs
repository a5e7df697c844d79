//! Typed access to the single values kept in the meta column families (`raft_meta`, `sm_meta`):
//! each value is a type naming its column family, its key and its encoding, so no caller
//! decodes bytes by hand or mixes up two values' encodings (openraft's `rocksstore` uses a
//! `StoreMeta` trait for the same reason).
//!
//! Values owned by the Raft layer (the vote, the last purged and applied log ids, the
//! membership) implement [`StoreMeta`] where their types live; this file holds the ones the
//! ground floor reads, and the applied index alone ([`AppliedIndex`]), read from the applied
//! log id without naming the Raft type.

use rocksdb::{ReadOptions, WriteBatch, WriteOptions, DB};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::db::cf;
use crate::error::StoreError;
use crate::keys::{self, CF_RAFT_META, CF_SM_META};

/// A single value under a fixed key of a meta column family.
pub trait StoreMeta {
    /// The column family.
    const CF: &'static str;
    /// The key.
    const KEY: &'static [u8];
    /// What the value is, for corruption reports.
    const WHAT: &'static str;
    /// The decoded value.
    type Value;

    /// The stored bytes of `value`.
    fn encode(value: &Self::Value) -> Result<Vec<u8>, StoreError>;

    /// The value of stored `bytes`.
    fn decode(bytes: &[u8]) -> Result<Self::Value, StoreError>;
}

/// JSON decoding, the one most meta values use.
fn json_decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::corrupt(what, e))
}

/// Declares a JSON-encoded meta value.
#[macro_export]
#[doc(hidden)]
macro_rules! json_meta {
    ($(#[$doc:meta])* $name:ident, $cf:expr, $key:expr, $value:ty) => {
        $(#[$doc])*
        pub struct $name;

        impl $crate::meta::StoreMeta for $name {
            const CF: &'static str = $cf;
            const KEY: &'static [u8] = $key;
            const WHAT: &'static str = stringify!($name);
            type Value = $value;

            fn encode(value: &$value) -> Result<Vec<u8>, $crate::StoreError> {
                serde_json::to_vec(value).map_err(|e| $crate::StoreError::corrupt(Self::WHAT, e))
            }

            fn decode(bytes: &[u8]) -> Result<$value, $crate::StoreError> {
                serde_json::from_slice(bytes)
                    .map_err(|e| $crate::StoreError::corrupt(Self::WHAT, e))
            }
        }
    };
}

json_meta!(
    /// The batch clock: the time the last applied entry ran at ([`crate::batch_clock`]).
    BatchClock,
    CF_SM_META,
    keys::SM_BATCH_CLOCK,
    i64
);
json_meta!(
    /// Timers armed and not yet fired or disarmed.
    TimersPending,
    CF_SM_META,
    keys::SM_TIMERS_PENDING,
    u64
);
json_meta!(
    /// How far idempotency keys have been forgotten: every key first used before this batch
    /// clock time is gone ([`crate::idempotency::forget_expired`] starts its scan here).
    IdempotencyForgotten,
    CF_SM_META,
    keys::SM_IDEMPOTENCY_FORGOTTEN,
    i64
);
json_meta!(
    /// Timers fired since the state began.
    TimersFired,
    CF_SM_META,
    keys::SM_TIMERS_FIRED,
    u64
);

/// The index of the last applied entry, read from the applied log id the state machine stores
/// (its other fields are the Raft layer's, see `state_machine::LastApplied`); read-only here.
pub struct AppliedIndex;

/// The part of a stored log id the ground floor reads.
#[derive(Deserialize)]
struct IndexOnly {
    index: u64,
}

impl StoreMeta for AppliedIndex {
    const CF: &'static str = CF_SM_META;
    const KEY: &'static [u8] = keys::SM_LAST_APPLIED;
    const WHAT: &'static str = "last applied";
    type Value = u64;

    fn encode(_: &u64) -> Result<Vec<u8>, StoreError> {
        Err(StoreError::corrupt(
            Self::WHAT,
            "the applied index is written with its log id by the state machine",
        ))
    }

    fn decode(bytes: &[u8]) -> Result<u64, StoreError> {
        json_decode::<IndexOnly>(Self::WHAT, bytes).map(|id| id.index)
    }
}

/// The newest change-stream offset this node no longer serves after (8 bytes, big-endian).
pub struct ChangesFloor;

impl StoreMeta for ChangesFloor {
    const CF: &'static str = CF_RAFT_META;
    const KEY: &'static [u8] = keys::META_CHANGES_FLOOR;
    const WHAT: &'static str = "changes floor";
    type Value = u64;

    fn encode(value: &u64) -> Result<Vec<u8>, StoreError> {
        Ok(value.to_be_bytes().to_vec())
    }

    fn decode(bytes: &[u8]) -> Result<u64, StoreError> {
        keys::parse_log_index(bytes).ok_or_else(|| StoreError::corrupt(Self::WHAT, "not 8 bytes"))
    }
}

/// Present while a received snapshot replaces the state (the restore writes in bounded batches,
/// so until it ends nothing may be answered from the state).
pub struct Restoring;

impl StoreMeta for Restoring {
    const CF: &'static str = CF_RAFT_META;
    const KEY: &'static [u8] = keys::META_RESTORING;
    const WHAT: &'static str = "restoring marker";
    type Value = ();

    fn encode(_: &()) -> Result<Vec<u8>, StoreError> {
        Ok(b"1".to_vec())
    }

    fn decode(_: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Reads `M` from the database (through `opts`, e.g. a RocksDB snapshot).
pub fn read_with<M: StoreMeta>(
    db: &DB,
    opts: &ReadOptions,
) -> Result<Option<M::Value>, StoreError> {
    match db.get_cf_opt(cf(db, M::CF)?, M::KEY, opts)? {
        None => Ok(None),
        Some(bytes) => M::decode(&bytes).map(Some),
    }
}

/// Reads `M` from the database as it is now.
pub fn read<M: StoreMeta>(db: &DB) -> Result<Option<M::Value>, StoreError> {
    read_with::<M>(db, &ReadOptions::default())
}

/// Writes `value` as `M` now, synced to disk first when `sync` (the vote must survive a crash).
pub fn write<M: StoreMeta>(db: &DB, value: &M::Value, sync: bool) -> Result<(), StoreError> {
    let mut opts = WriteOptions::default();
    opts.set_sync(sync);
    db.put_cf_opt(cf(db, M::CF)?, M::KEY, M::encode(value)?, &opts)?;
    Ok(())
}

/// Stages writing `value` as `M` into `batch`.
pub fn stage<M: StoreMeta>(
    db: &DB,
    batch: &mut WriteBatch,
    value: &M::Value,
) -> Result<(), StoreError> {
    batch.put_cf(cf(db, M::CF)?, M::KEY, M::encode(value)?);
    Ok(())
}

/// Stages removing `M` from `batch`.
pub fn stage_delete<M: StoreMeta>(db: &DB, batch: &mut WriteBatch) -> Result<(), StoreError> {
    batch.delete_cf(cf(db, M::CF)?, M::KEY);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_applied_index_is_read_from_a_stored_log_id() {
        let stored = br#"{"leader_id":{"term":3,"node_id":1},"index":42}"#;
        assert_eq!(AppliedIndex::decode(stored).unwrap(), 42);
        assert!(AppliedIndex::decode(b"not json").is_err());
    }

    #[test]
    fn the_changes_floor_is_eight_big_endian_bytes() {
        let bytes = ChangesFloor::encode(&7).unwrap();
        assert_eq!(ChangesFloor::decode(&bytes).unwrap(), 7);
        assert!(ChangesFloor::decode(b"short").is_err());
    }
}
