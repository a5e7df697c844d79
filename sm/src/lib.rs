//! orderq's replicated state machine and its RocksDB storage.
//!
//! This crate decides; it does no network IO and never reads the clock. The node feeds it
//! committed Raft entries; it answers each command with an outcome and keeps everything in one
//! RocksDB database.
//!
//! # Layout
//! - [`keys`]: column-family names and key encoding (nothing else builds keys).
//! - [`command`]: the prost commands a Raft entry carries.
//! - [`order`], [`sku`]: the domain records.
//! - [`outcome`]: what applying a command answers, including typed rejections.
//! - [`apply`]: the deterministic state transition.
//! - [`batch_clock`]: the time `apply` decides with, never going backwards.
//! - [`counters`]: totals kept by `apply` (orders per state, timers) for operators.
//! - [`idempotency`]: `Idempotency-Key` records and their 24-hour retention.
//! - [`timers`]: arming, disarming and firing timers (the `timers` column family).
//! - [`txn`]: read-your-writes staging of one applied batch, written as one `WriteBatch`; it
//!   captures the change stream.
//! - [`changes`]: change records (offset, time, table, key, op, before/after), pages of the stream,
//!   node-local retention.
//! - [`queue`]: messages of topics, published in log order with gapless per-topic offsets.
//! - [`order_event`]: the order life cycle's messages and the order's API shape they carry.
//! - [`signing_secret`]: a push group's webhook signing key, hidden from `Debug`.
//! - [`subscription`]: consumer groups' committed delivery state (cursor, attempts, dead
//!   letters, redrive) and the reads the leader's scheduler rebuilds from.
//! - [`refund`]: refunds as a built-in push subscription to the payment provider.
//! - [`reserved_topics`]: topics only `apply` writes (`order.*`, built-in groups' topics).
//! - [`seckill`]: the flash sale's one-unit purchase, decided in log order.
//! - [`user_limit`]: per-user holdings of a SKU, checked against its per-user limit.
//! - [`sold_out`]: the in-memory set of SKUs with nothing available, kept from applied state.
//! - [`log_store`]: the Raft log and vote (openraft `RaftLogStorage`), synced before acknowledged.
//! - [`state_machine`]: openraft `RaftStateMachine` over the state column families.
//! - [`snapshot`]: consistent capture and atomic restore of the state.
//! - [`log_codec`]: binary form of entries and votes, on disk and on the peer wire.
//! - [`reader`]: reads of the applied state for the API.
//! - [`raft_types`]: the openraft type configuration.
//! - [`db`], [`error`]: opening the database; storage errors.
//! - [`failpoints`]: crash points in the write path (only in a `failpoints` build).

pub mod apply;
pub mod batch_clock;
pub mod changes;
pub mod command;
pub mod counters;
pub mod db;
pub mod error;
pub mod failpoints;
pub mod group_removal;
pub mod idempotency;
pub mod keys;
pub mod log_codec;
pub mod log_store;
pub mod order;
pub mod order_event;
pub mod outcome;
pub mod queue;
pub mod queue_timers;
pub mod raft_types;
pub mod reader;
pub mod refund;
pub mod reserved_topics;
pub mod retention;
pub mod seckill;
pub mod signing_secret;
pub mod sku;
pub mod snapshot;
pub mod sold_out;
pub mod state_machine;
pub mod subscription;
pub mod timers;
pub mod txn;
pub mod user_limit;

use std::path::Path;

pub use error::StoreError;
pub use log_store::LogStore;
pub use reader::StateReader;
pub use state_machine::StateMachine;

/// Everything a node keeps on disk, opened from its data directory.
pub struct Storage {
    /// The Raft log and vote.
    pub log: LogStore,
    /// The state machine.
    pub state: StateMachine,
    /// Reads of the applied state.
    pub reader: StateReader,
}

impl Storage {
    /// Opens (or creates) the storage under `data_dir`: the database in `db/`, the current
    /// snapshot in `snapshot/`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let db = db::open(&data_dir.join("db"))?;
        let state = StateMachine::new(db.clone(), &data_dir.join("snapshot"))?;
        Ok(Storage {
            log: LogStore::new(db.clone(), state.snapshots())?,
            reader: StateReader::live(db, state.watch_applied(), state.sold_out()),
            state,
        })
    }
}
