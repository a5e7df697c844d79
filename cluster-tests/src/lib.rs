//! Black-box tests of real `orderq` processes, and the load generator.
//!
//! Nothing here links the server's crates: the tests start the `orderq` binary (found through
//! `$ORDERQ_BIN`, else next to the test executable's target directory) and talk to it over
//! HTTP exactly as a user would, so they check the public contract in `/work/shared/API.md`.
//!
//! A test reads as a story of verbs on a [`Cluster`]:
//!
//! ```no_run
//! # async fn story() -> cluster::Result<()> {
//! use cluster::{Cluster, ClusterOptions, NewOrder};
//! let mut cluster = Cluster::start(3, ClusterOptions::default()).await?;
//! let leader = cluster.wait_for_leader().await?;
//! cluster.kill(leader)?;
//! let order = NewOrder::single("u1", "A", 1);
//! let next = cluster.wait_for_leader().await?;
//! cluster.create_order(next, &order, Some("key-1")).await?;
//! cluster.restart(leader)?;
//! # Ok(()) }
//! ```
//!
//! and the queue's, as verbs on any running node (or, through [`Cluster::client`], on one):
//!
//! ```no_run
//! # async fn story(cluster: &cluster::Cluster, hook: String) -> cluster::Result<()> {
//! use std::time::Duration;
//! use cluster::{Endpoint, OrderState, Receive, SkuSettings, Subscription};
//! let refunds = Subscription::push("order.refund_requested", hook).max_attempts(4);
//! cluster.subscribe("payment.refund", &refunds).await?;
//! cluster.subscribe_pull("created", "order.created").await?;
//! cluster.load_sku("A", &SkuSettings::new(100, 500)).await?;
//! let ids = cluster.paid_orders("A", 10).await?;
//! let leased = cluster.receive("created", &Receive::waiting(10, 5000)).await?;
//! cluster.ack("created", &leased.receipts()).await?;
//! cluster.refund(&ids[0], "damaged").await?;
//! cluster.wait_order_state(&ids[0], OrderState::Refunded, Duration::from_secs(10)).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`chaos`]: the chaos harness: faults on a seeded schedule under a mixed workload, the
//!   link proxy, the history and its checkers (behind `src/bin/chaos.rs` and `tests/t60_chaos.rs`).
//! - [`cluster`]: [`Cluster`], n `orderq serve` processes with their ports, directories and
//!   verbs (`start`, `kill`, `restart`, `restore_node`, `wait_for_leader`, typed requests to one
//!   node).
//! - [`endpoint`]: [`Endpoint`], one node's client or any running node of a [`Cluster`], with
//!   the queue and refund verbs written once for both (`publish`, `publish_numbered`,
//!   `subscribe`, `subscribe_pull`, `receive`, `ack`, `nack`, `dead_letters`, `redrive`,
//!   `subscription_stats`, `remove_subscription`, `refund`, `wait_order_state`, ...).
//! - `any_node`: the [`Cluster`]'s stock and order verbs through any running node, retried
//!   through elections (`load_sku`, `place_order`, `pay_order`, `paid_orders`, `timer_stats`).
//! - [`lazyfs`]: the power-loss filesystem (FUSE): what was not fsynced is lost when its process
//!   is killed (behind `src/bin/lazyfs.rs`, used by the chaos harness's power cuts).
//! - [`process`]: one child process: locating the binary, spawning it with its log captured,
//!   `SIGKILL` by pid.
//! - [`chromedriver`]: [`Chromedriver`], chromedriver on a free port driving headless
//!   Chromium, for the console's browser test.
//! - [`client`]: [`NodeClient`], typed HTTP calls to one node, and raw [`Request`]s for
//!   malformed input.
//! - [`requests`]: one [`Request`] constructor per endpoint, what every typed verb sends and
//!   what a test of a refusal sends itself.
//! - [`model`]: the contract's JSON bodies (orders, SKUs, cluster status).
//! - [`queue`]: the queue's JSON bodies (messages, subscriptions, leases, dead letters).
//! - [`wait`]: polling a condition until a deadline; bounding a whole scenario.
//! - [`writers`]: [`OrderWriters`], idempotent retrying clients creating orders while a test
//!   restarts nodes or takes a backup, and what they saw ([`Writes`]).
//! - [`follower`]: [`ChangeFollower`], a change-stream consumer that keeps its offset in a file
//!   and resumes without gaps or repeats (behind `src/bin/follow-changes.rs` and the tests).
//! - [`load_stats`]: the load generator's counts, latency percentiles and rates per outcome.
//! - [`receiver`]: [`Receiver`], a real webhook receiver / fake payment provider with failure
//!   rate, fail-first-N and latency, recording every call (behind `src/bin/fake-provider.rs`).
//! - [`scene`]: [`OperatorScene`], a paid order delivered and a group's dead letters: what the
//!   admin-route, CLI and console tests look at.
//! - [`signature`]: verifying `X-Orderq-Signature` as a webhook receiver does.
//! - [`error`]: the one [`Error`] type.
//! - `src/bin/loadgen.rs`: the benchmark's load generator.
//! - `src/bin/follow-changes.rs`: the example change-stream consumer.
//! - `src/bin/fake-provider.rs`: the fake payment provider for the README's refund demo.
//! - `src/bin/lazyfs.rs`: mounts the power-loss filesystem over a backing directory.
//! - `src/bin/chaos.rs`: the chaos harness's command (`--seed --duration-secs --report`).
//! - `tests/tNN_*.rs`: the tests, numbered by area.

mod any_node;
pub mod chaos;
pub mod chromedriver;
pub mod client;
pub mod cluster;
pub mod endpoint;
pub mod error;
pub mod fake_clock;
pub mod follower;
pub mod lazyfs;
pub mod load_stats;
pub mod model;
pub mod ports;
pub mod process;
pub mod queue;
pub mod receiver;
pub mod requests;
pub mod scene;
pub mod signature;
pub mod wait;
pub mod writers;

pub use chromedriver::Chromedriver;
pub use client::{
    create_order_retrying, write_until_purged_past, ApiResponse, NodeClient, Request,
};
pub use cluster::{Cluster, ClusterOptions, NodeAddrs};
pub use endpoint::Endpoint;
pub use error::{Error, Result};
pub use follower::ChangeFollower;
pub use model::{
    entry_end_offset, epoch_ms, stock_held, BackupTaken, Change, ChangePage, NewItem, NewOrder,
    Order, OrderState, Sku, SkuSettings, StateDigest, TimerStats,
};
pub use queue::{
    DeadLetter, DeadLetterPage, Leased, LeasedMessage, NewMessage, Published, Receive, Start,
    Subscribed, Subscription, SubscriptionStats,
};
pub use receiver::{Received, Receiver, ReceiverOptions};
pub use scene::OperatorScene;
pub use wait::{holds, poll_until, retry_while_unavailable, within};
pub use writers::{AckedOrder, OrderWriters, Writes};
