//! The chaos harness: a real three-node cluster under a mixed workload while nodes are killed,
//! paused and partitioned on a seeded schedule; afterwards checkers judge the recorded history
//! against the promises in the contract (nothing acknowledged lost, stock conserved, states
//! forward only, replicas equal, single-order operations linearizable, every paid order's
//! event and every acknowledged publish delivered at least once, every refund settled).
//!
//! # Layout
//!
//! - [`run`]: one run from start to report ([`run::run`], [`run::ChaosOptions`]).
//! - [`workload`]: the concurrent clients and what they send, with idempotent retries.
//! - [`history`]: the record of every operation: invoked, ok / failed / unknown, when.
//! - [`faults`]: the fault kinds, the seeded schedule, injecting and healing.
//! - [`disk`]: small tmpfs data directories that fill up, for the disk-full fault (root only).
//! - [`power`]: the nodes' data directories on the power-loss filesystem, for power cuts.
//! - [`proxy`]: the TCP proxy in front of every Raft port that cuts, slows and breaks links.
//! - [`check`]: the checkers, one file each.
//! - [`report`]: the JSON report and its terminal summary.
//! - [`abuse`]: the HTTP abuse scenario (bad bodies, tokens, one key under contention, bytes on
//!   the Raft port).
//! - [`subscribers`]: the webhook receiver and the fake payment provider the cluster delivers
//!   to, and waiting for the queue to drain.
//! - [`rng`]: the seeded random source.

pub mod abuse;
pub mod check;
pub mod disk;
pub mod faults;
pub mod history;
pub mod mutant;
pub mod power;
pub mod proxy;
pub mod pull_consumers;
pub mod report;
pub mod rng;
pub mod run;
pub mod subscribers;
pub mod timeline;
pub mod workload;
