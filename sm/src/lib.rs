//! orderq's replicated state machine and its RocksDB storage.
//!
//! This crate decides; it does no network IO and never reads the clock. The node feeds it
//! committed Raft entries; it answers each command with an outcome and keeps everything in one
//! RocksDB database.
//!
//! # Layout
//! Three floors; every import points down or sideways within a wing, never up.
//!
//! The ground floor, which names no domain logic and no Raft type:
//! - [`keys`]: column-family names and every key and prefix (nothing else builds keys).
//! - [`meta`]: typed access to the single values of the meta column families (the applied
//!   index, the changes floor, the restore marker, ...).
//! - [`txn`]: read-your-writes staging of one applied batch, written as one `WriteBatch`; it
//!   captures the change stream.
//! - [`changes`]: change records (offset, time, table, key, op, before/after), pages of the
//!   stream, node-local retention.
//! - [`command`]: the prost commands a Raft entry carries.
//! - [`outcome`]: what applying a command answers, including typed rejections (it names the
//!   wings' records, which are plain data).
//! - [`counters`]: totals kept by `apply` (orders per state, timers) for operators.
//! - [`timers`]: arming, disarming and judging timers (the `timers` column family).
//! - [`batch_clock`]: the time `apply` decides with, never going backwards.
//! - [`idempotency`]: `Idempotency-Key` records and their 24-hour retention.
//! - [`db`], `error`: opening the database; storage errors ([`StoreError`]). [`failpoints`]: crash points in
//!   the write path (only in a `failpoints` build).
//!
//! The two wings, each with its own Layout:
//! - [`order`]: SKUs and stock, the order life cycle, per-user limits, the flash sale, order
//!   events (and the order's JSON shape, which the API answers and events carry), refunds.
//! - [`queue`]: topics, consumer groups, deliveries, queue timers, retention, group removal, and
//!   the queue's reads. It knows nothing of orders; the refund group reaches the order wing
//!   through [`queue::SettleHook`].
//!
//! The top floor:
//! - [`apply`]: the dispatcher from each command (and each fired timer) to its wing.
//! - [`raft_types`]: the openraft type configuration; [`log_codec`]: binary form of entries and
//!   votes, on disk and on the peer wire; [`log_store`]: the Raft log and vote, synced before
//!   acknowledged; [`state_machine`]: openraft's `RaftStateMachine` over the state; [`snapshot`]:
//!   consistent capture and atomic restore; [`backup`]: a checkpoint of a running node's state
//!   with its manifest, and seeding a new node's data directory from one.
//! - [`reader`]: every read of the applied state for the API and the node (queue reads too).
//! - [`store_metrics`]: WAL sync and apply durations and the committed index, for `/metrics`.
//! - [`trace`]: an order's story (its changes and the messages it caused) from the change stream.

#![warn(missing_docs)]

mod apply;
pub mod backup;
mod batch_clock;
pub mod changes;
pub mod command;
mod counters;
pub mod db;
mod error;
pub mod failpoints;
pub mod idempotency;
pub mod keys;
pub mod log_codec;
mod log_store;
pub mod meta;
pub mod order;
pub mod outcome;
pub mod queue;
pub mod raft_types;
mod reader;
pub mod snapshot;
mod state_machine;
pub mod store_metrics;
mod timers;
pub mod trace;
pub mod txn;

use std::path::Path;

pub use apply::apply_batch;
pub use command::{Command, CommandBatch};
pub use error::StoreError;
pub use log_store::LogStore;
pub use order::{Order, OrderState, Sku, SoldOut};
pub use outcome::{Applied, BatchOutcome, Outcome, Rejection};
pub use queue::{DeadLetter, DeliveriesRecorded, Message, PushTarget, QueueReads, Subscription};
pub use reader::StateReader;
pub use state_machine::StateMachine;
pub use store_metrics::StoreMetrics;

/// Everything a node keeps on disk, opened from its data directory.
pub struct Storage {
    /// The Raft log and vote.
    pub log: LogStore,
    /// The state machine.
    pub state: StateMachine,
    /// Reads of the applied state.
    pub reader: StateReader,
    /// The storage's own timings and committed index, shared with the log and the state machine.
    pub metrics: StoreMetrics,
}

impl Storage {
    /// Opens (or creates) the storage under `data_dir`: the database in `db/`, the current
    /// snapshot in `snapshot/`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let db = db::open(&data_dir.join("db"))?;
        let state = StateMachine::new(db.clone(), &data_dir.join("snapshot"))?;
        let log = LogStore::new(db.clone(), state.snapshots())?;
        let metrics = log.metrics();
        let state = state.with_metrics(metrics.clone());
        Ok(Storage {
            log,
            reader: StateReader::live(db, state.watch_applied(), state.sold_out()),
            state,
            metrics,
        })
    }
}
