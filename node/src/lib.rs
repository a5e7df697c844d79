//! The orderq node: configuration, openraft wiring, the peer network, the write batcher and the
//! glue between the API and Raft. The binary (`src/main.rs`) is a thin CLI over [`serve::run`].
//!
//! # Layout
//! - [`admin_cli`]: `orderq admin ...`, the operator's command line over the admin API.
//! - [`clock`]: the wall clock leader-side code stamps time with.
//! - [`clock_watch`]: clock offsets to the other voters; a node whose clock is off does not lead.
//! - [`config`]: the one configuration struct, from file, environment and flags.
//! - [`secrets`]: secrets that never print, read from `*_file` settings, compared in constant
//!   time.
//! - [`logs`]: log lines on stderr, filtered by `RUST_LOG`, flushed on every exit.
//! - [`log_writer`]: the thread that writes log lines in batches, one wake per batch.
//! - [`access_line`]: the access log's lines, written without tracing-subscriber's formatters.
//! - [`exposure`]: the start-up guard: no reachable node or cluster without its secrets.
//! - [`serve`]: start-up and shutdown of a node; cluster initialisation.
//! - [`backup`]: `orderq backup` (asks a node for a backup) and `orderq restore` (seeds a new
//!   node's data directory from one).
//! - [`readiness`]: systemd readiness (`READY=1` once serving, `STOPPING=1` on a stop).
//! - [`batcher`]: group commit of concurrent writes into one Raft entry.
//! - [`admission`]: per-lane budgets of queued writes (normal, flash sale); 429 when spent.
//! - [`change_retention`]: node-local pruning of the change stream by age and count.
//! - [`raft_cluster`]: `api::Cluster` over Raft (writes, linearizable reads, forwarding, status).
//! - [`leadership`]: starts leader-only services on gaining leadership, stops them on losing it
//!   or losing contact with a quorum.
//! - [`membership_check`]: membership changes refused before they are proposed if they
//!   cannot work (shared addresses, voters not caught up, no voter).
//! - [`quorum_contact`]: whether this leader heard from a quorum within an election timeout.
//! - [`timing_wheel`]: the hierarchical timing wheel (pure data structure).
//! - [`wipe_guard`]: refuses to start a member whose data directory was lost.
//! - [`write_forwarder`]: a follower's batches of writes sent to the leader over the peer port.
//! - [`timer_service`]: the leader's wheel driver: refill from disk, propose due timers.
//! - [`scheduler`]: the leader's consumer scheduler: push delivery, pull leases, outcomes
//!   proposed in batches.
//! - [`consumer_lane`]: one group's in-memory delivery state (pending, in flight, pacing, per-key
//!   order, backoff), pure logic.
//! - [`push`]: one webhook POST as the contract describes it.
//! - [`webhook_signature`]: the `X-Orderq-Signature` HMAC on every webhook call.
//! - [`webhook_resolver`]: webhook name resolution that never yields a link-local address.
//! - [`receipt`]: pull receipts, MACed under a per-node random key (unguessable, bound to group
//!   and lease).
//! - [`queue_handle`]: pull requests from the API to the running scheduler; its stats back.
//! - [`settle_waiters`]: pull consumers' `ack`/`nack` calls waiting for their outcomes to
//!   commit.
//! - [`queue_housekeeping`]: the leader's retention trims and group-removal steps.
//! - [`raft_metrics`], [`storage_metrics`], [`process_metrics`], [`delivery_metrics`]: what
//!   `/metrics` shows of Raft, the disk, the process and the scheduler's deliveries (registered
//!   in the API's registry by [`raft_cluster`]).
//! - [`tls`]: https on the API port and mutual TLS on the Raft port (rustls).
//! - [`network`], [`peer_server`], [`peer_wire`]: the Raft peer protocol (prost over HTTP,
//!   authenticated by the cluster secret).

#![warn(missing_docs)]

pub mod access_line;
pub mod admin_cli;
pub mod admission;
pub mod backup;
pub mod batcher;
pub mod change_retention;
pub mod clock;
pub mod clock_watch;
pub mod config;
pub mod consumer_lane;
pub mod delivery_metrics;
pub mod exposure;
pub mod leadership;
pub mod log_writer;
pub mod logs;
pub mod membership_check;
pub mod network;
pub mod peer_server;
pub mod peer_wire;
pub mod process_metrics;
pub mod push;
pub mod queue_handle;
pub mod queue_housekeeping;
pub mod quorum_contact;
pub mod raft_cluster;
pub mod raft_metrics;
pub mod readiness;
pub mod receipt;
pub mod refund_status;
pub mod scheduler;
pub mod secrets;
pub mod serve;
pub mod settle_waiters;
pub mod storage_metrics;
pub mod timer_service;
pub mod timing_wheel;
pub mod tls;
pub mod webhook_resolver;
pub mod webhook_signature;
pub mod wipe_guard;
pub mod write_forwarder;
