//! The one fixture of the `apply` tests: a state machine without Raft, where each call applies
//! one entry, as a node does after commit, and keeps the sold-out set the way a node does.
//! (`t25_apply_grouping` drives the real `StateMachine` through openraft's interface instead,
//! because how openraft groups entries is what it tests.)

#![allow(dead_code)]

use std::sync::Arc;

use sm::apply_batch;
use sm::command::{Action, Command, CommandBatch, PutSubscription};
use sm::outcome::Outcome;
use sm::txn::Txn;
use sm::{QueueReads, SoldOut, StateReader};

/// The clock of entries applied without naming one.
pub const DEFAULT_NOW_MS: i64 = 1_700_000_000_000;

/// A database with a log index counter.
pub struct Fixture {
    _dir: tempfile::TempDir,
    db: Arc<rocksdb::DB>,
    index: u64,
    reader: StateReader,
    /// The sold-out set, updated after each entry.
    pub sold_out: SoldOut,
}

impl Fixture {
    /// An empty state.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = sm::db::open(dir.path()).unwrap();
        Fixture {
            _dir: dir,
            reader: StateReader::new(db.clone()),
            db,
            index: 0,
            sold_out: SoldOut::default(),
        }
    }

    /// Applies `commands` as one Raft entry stamped `now_ms`.
    pub fn entry_at(&mut self, now_ms: i64, commands: Vec<Command>) -> Vec<Outcome> {
        self.index += 1;
        let mut txn = Txn::new(&self.db);
        let batch = CommandBatch { now_ms, commands };
        let out = apply_batch(&mut txn, self.index, &batch).unwrap();
        let changes = SoldOut::changes(&txn).unwrap();
        self.db.write(txn.into_write_batch().unwrap()).unwrap();
        self.sold_out.record(changes);
        out
    }

    /// Applies `commands` as one Raft entry at [`DEFAULT_NOW_MS`].
    pub fn entry(&mut self, commands: Vec<Command>) -> Vec<Outcome> {
        self.entry_at(DEFAULT_NOW_MS, commands)
    }

    /// Applies one command as its own entry at [`DEFAULT_NOW_MS`].
    pub fn one(&mut self, command: Command) -> Outcome {
        self.entry(vec![command]).remove(0)
    }

    /// Applies one command as its own entry stamped `now_ms`.
    pub fn run(&mut self, now_ms: i64, command: Command) -> Outcome {
        self.entry_at(now_ms, vec![command]).remove(0)
    }

    /// Applies `actions` (without idempotency keys) as one Raft entry stamped `now_ms`.
    pub fn actions_at(&mut self, now_ms: i64, actions: Vec<Action>) -> Vec<Outcome> {
        self.entry_at(now_ms, actions.into_iter().map(Command::new).collect())
    }

    /// Applies one action as its own entry stamped `now_ms`.
    pub fn action_at(&mut self, now_ms: i64, action: Action) -> Outcome {
        self.actions_at(now_ms, vec![action]).remove(0)
    }

    /// Reads of the state.
    pub fn reader(&self) -> &StateReader {
        &self.reader
    }

    /// Reads of the queue's state.
    pub fn queue(&self) -> QueueReads<'_> {
        self.reader.queue()
    }
}

/// A push subscription of `group` to `topic` at an unreachable hook, with fast backoff: the
/// scheduler's outcomes are what the tests propose themselves.
pub fn subscribe(group: &str, topic: &str, max_attempts: u32, latest: bool) -> Action {
    Action::PutSubscription(PutSubscription {
        group: group.into(),
        topic: topic.into(),
        push_url: "http://127.0.0.1:1/hook".into(),
        timeout_ms: 100,
        max_attempts,
        backoff_initial_ms: 10,
        backoff_max_ms: 100,
        max_in_flight: 8,
        start_latest: latest,
        ..Default::default()
    })
}
