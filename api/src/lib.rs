//! orderq's HTTP surface: request validation, the contract's errors, routes, admin and metrics.
//!
//! It talks to the cluster only through the [`Cluster`] trait (write a command, confirm a
//! linearizable read, read local state, forward to the leader), so it can be tested without Raft.
//!
//! # Layout
//! - [`routes`]: the route table ([`routes::ROUTES`] is what `docs/openapi.yaml` must describe).
//! - [`request`]: every request body and query (orders, SKUs, the queue's) with its validation.
//! - [`idempotency`]: `Idempotency-Key` checks and request hashing.
//! - [`batch`]: the batch endpoints: many orders or publishes per request, each item its own
//!   command, key and answer, proposed together so they share Raft entries.
//! - [`auth`]: who may do what: admin, client and metrics tokens, scopes, constant-time checks.
//! - [`access_log`]: one line per request (target `access`), 5xx with their cause, no secret.
//! - [`request_id`]: `X-Request-Id` taken or made, returned, carried when forwarding.
//! - [`audit`]: the audit log of admin writes (target `audit`), secrets hidden.
//! - [`handler`]: the one route dispatch from request to reply (after [`auth`]), forwarding.
//! - [`seckill`]: the flash sale's purchase, with its sold-out answer from memory.
//! - [`seckill_answers`]: this node's flash-sale answers by outcome (the console's live rates).
//! - [`queue`]: the queue's handlers: publishing, subscriptions, dead letters, pull
//!   receive/ack/nack, refunds.
//! - [`operator`]: the operators' routes: topics, the stock list, an order's trace, a group's
//!   pause, resume and position reset.
//! - [`console`]: the operator console: its page, script and styles, embedded in the binary.
//! - [`signing_key`]: a push group's signing key, given in its PUT or drawn here.
//! - [`webhook_target`]: where a push URL may point (never link-local).
//! - [`view`]: the JSON shapes of SKUs, changes, subscriptions and dead letters. The order's
//!   shape is the state machine's (`sm::order::OrderView`), because every order event carries it
//!   as its payload: one shape for both.
//! - [`changes`]: the change stream's query, long poll and NDJSON stream.
//! - [`error`]: the contract's error codes, mapped in one place.
//! - [`metrics`]: the node's one metrics registry and the `/metrics` text.
//! - [`http_metrics`]: HTTP requests and latency by route template and status.
//! - [`state_metrics`]: orders, stock, timers and consumer groups, read from the applied state.
//! - [`cluster`]: the trait the node implements (writes, reads, forwarding, the node's clock).
//! - [`server`]: the hyper service (1 MiB body cap).
//! - [`drain`]: stopping cleanly: no new request, long polls and streams ended, writes finished.

#![warn(missing_docs)]

pub mod access_log;
pub mod audit;
pub mod auth;
pub mod batch;
pub mod changes;
pub mod cluster;
pub mod console;
pub mod drain;
pub mod error;
pub mod handler;
pub mod http_metrics;
pub mod idempotency;
pub mod metrics;
pub mod operator;
pub mod queue;
pub mod request;
pub mod request_id;
pub mod routes;
pub mod seckill;
pub mod seckill_answers;
pub mod server;
pub mod signing_key;
pub mod state_metrics;
pub mod view;
pub mod webhook_target;

pub use auth::{Access, ClientToken, Scope};
pub use cluster::{
    Cluster, ClusterError, ClusterStatus, HttpReply, HttpRequest, LiveDeliveries, NodeStatus,
    PulledMessage, ReceiveLimits,
};
pub use drain::Drain;
pub use error::ApiError;
pub use handler::{Api, ApiConfig};
