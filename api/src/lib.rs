//! orderq's HTTP surface: request validation, the contract's errors, routes, admin and metrics.
//!
//! It talks to the cluster only through the [`Cluster`] trait (write a command, confirm a
//! linearizable read, read local state, forward to the leader), so it can be tested without Raft.
//!
//! # Layout
//! - [`routes`]: the route table ([`routes::ROUTES`] is what `docs/openapi.yaml` must describe).
//! - [`request`]: every request body and query (orders, SKUs, the queue's) with its validation.
//! - [`idempotency`]: `Idempotency-Key` checks and request hashing.
//! - [`auth`]: who may do what: admin, client and metrics tokens, scopes, constant-time checks.
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
//! - [`metrics`]: HTTP request metrics in Prometheus text.
//! - [`cluster`]: the trait the node implements (writes, reads, forwarding, the node's clock).
//! - [`server`]: the warp glue (1 MiB body cap).

#![warn(missing_docs)]

pub mod audit;
pub mod auth;
pub mod changes;
pub mod cluster;
pub mod console;
pub mod error;
pub mod handler;
pub mod idempotency;
pub mod metrics;
pub mod operator;
pub mod queue;
pub mod request;
pub mod routes;
pub mod seckill;
pub mod seckill_answers;
pub mod server;
pub mod signing_key;
pub mod view;
pub mod webhook_target;

pub use auth::{Access, ClientToken, Scope};
pub use cluster::{
    Cluster, ClusterError, ClusterStatus, HttpReply, HttpRequest, LiveDeliveries, NodeStatus,
    PulledMessage, ReceiveLimits,
};
pub use error::ApiError;
pub use handler::{Api, ApiConfig};
