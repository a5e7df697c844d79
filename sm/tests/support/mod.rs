//! A state machine without Raft for the `apply` tests: each call applies one entry, as a node
//! does after commit, and keeps the sold-out set the way a node does.

#![allow(dead_code)]

use std::sync::Arc;

use sm::apply::apply_batch;
use sm::command::{Command, CommandBatch};
use sm::outcome::Outcome;
use sm::sold_out::SoldOut;
use sm::txn::Txn;
use sm::StateReader;

/// The clock of entries applied without naming one.
pub const DEFAULT_NOW_MS: i64 = 1_700_000_000_000;

/// A database with a log index counter.
pub struct Fixture {
    _dir: tempfile::TempDir,
    db: Arc<rocksdb::DB>,
    index: u64,
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

    /// Reads of the state.
    pub fn reader(&self) -> StateReader {
        StateReader::new(self.db.clone())
    }
}
