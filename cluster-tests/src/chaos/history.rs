//! [`History`]: every operation a chaos client invoked, with when it started, when it ended and
//! how it ended. The checkers judge the cluster from this record alone (plus a final read).
//!
//! An operation ends one of three ways, as in Jepsen: `ok` (the cluster acknowledged it),
//! `failed` (the cluster definitely refused it: a documented 4xx), or `unknown` (no answer, a
//! timeout, a 5xx: it may or may not have taken effect, and the checkers must allow both).

use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

/// What a client asked for. Order and SKU ids are the contract's strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OpKind {
    /// `POST /v1/orders` under an idempotency key (retried with the same key).
    CreateOrder {
        /// The `Idempotency-Key`.
        key: String,
        /// Who orders.
        user_id: String,
        /// `(sku, qty)` lines.
        items: Vec<(String, i64)>,
        /// Pay window: short ones expire during the run.
        pay_within_secs: u64,
    },
    /// `POST /v1/seckill/{sku}` under an idempotency key.
    Seckill {
        /// The `Idempotency-Key`.
        key: String,
        /// The flash-sale SKU.
        sku: String,
        /// The buyer.
        user_id: String,
    },
    /// `POST /v1/orders/{id}/pay`.
    Pay {
        /// Which order.
        order_id: String,
        /// The payment reference (a retry with the same one is idempotent).
        payment_ref: String,
    },
    /// `POST /v1/orders/{id}/cancel`.
    Cancel {
        /// Which order.
        order_id: String,
    },
    /// `GET /v1/orders/{id}`.
    ReadOrder {
        /// Which order.
        order_id: String,
        /// `?consistency=local` (a node's own state, may be stale) rather than linearizable.
        local: bool,
    },
    /// `GET /v1/skus/{sku}`.
    ReadSku {
        /// Which SKU.
        sku: String,
        /// `?consistency=local`.
        local: bool,
    },
    /// `POST /v1/orders/{id}/refund` under an idempotency key (retried with the same key).
    Refund {
        /// The `Idempotency-Key`: one per refund operation, so a retry gets the first answer
        /// and another client's refund of the same order is a request of its own.
        key: String,
        /// Which order.
        order_id: String,
    },
    /// `POST /v1/topics/{topic}/messages` under an idempotency key (retried with the same key).
    /// The payload is `{"publish": key}`, so a delivery names the publish it comes from even
    /// when the publisher never learnt the message id.
    Publish {
        /// The `Idempotency-Key`, also the payload's `publish` field.
        key: String,
        /// The topic published to.
        topic: String,
        /// The message key.
        message_key: String,
        /// `delay_secs`: delayed messages go through the leader's time wheel.
        delay_secs: u64,
    },
}

impl OpKind {
    /// The order this operation names, if any (creates learn theirs from the answer).
    pub fn order_id(&self) -> Option<&str> {
        match self {
            OpKind::Pay { order_id, .. }
            | OpKind::Cancel { order_id }
            | OpKind::Refund { order_id, .. }
            | OpKind::ReadOrder { order_id, .. } => Some(order_id),
            _ => None,
        }
    }

    /// Whether the operation may change state (and so needs retries and an idempotency story).
    pub fn is_write(&self) -> bool {
        !matches!(self, OpKind::ReadOrder { .. } | OpKind::ReadSku { .. })
    }

    /// A short name for counts in the report.
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::CreateOrder { .. } => "create_order",
            OpKind::Seckill { .. } => "seckill",
            OpKind::Pay { .. } => "pay",
            OpKind::Cancel { .. } => "cancel",
            OpKind::Refund { .. } => "refund",
            OpKind::Publish { .. } => "publish",
            OpKind::ReadOrder { local: false, .. } => "read_order",
            OpKind::ReadOrder { local: true, .. } => "read_order_local",
            OpKind::ReadSku { local: false, .. } => "read_sku",
            OpKind::ReadSku { local: true, .. } => "read_sku_local",
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged (2xx), with the body the cluster answered.
    Ok {
        /// HTTP status.
        status: u16,
        /// The decoded body.
        body: serde_json::Value,
    },
    /// Definitely refused: a documented 4xx other than 429 (which the client retries).
    Failed {
        /// HTTP status.
        status: u16,
        /// The contract's `error.code`.
        code: String,
    },
    /// No definite answer before the client gave up: it may or may not have happened.
    Unknown {
        /// The last thing that went wrong.
        reason: String,
    },
}

impl Outcome {
    /// Short name for counts.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Ok { .. } => "ok",
            Outcome::Failed { .. } => "failed",
            Outcome::Unknown { .. } => "unknown",
        }
    }
}

/// One finished operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation {
    /// Which client ran it (operations of one client never overlap).
    pub client: u32,
    /// The node its first attempt went to.
    pub node: u64,
    /// What was asked.
    #[serde(flatten)]
    pub kind: OpKind,
    /// Milliseconds since the run began when the first attempt was sent.
    pub invoked_ms: u64,
    /// Milliseconds since the run began when the last attempt ended.
    pub completed_ms: u64,
    /// How many requests it took (retries included).
    pub attempts: u32,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The shared, append-only record of a run. Clients add finished operations; the checkers read
/// the whole of it once the run is over.
#[derive(Debug)]
pub struct History {
    /// Time zero of the run.
    started: Instant,
    /// Time zero as wall-clock milliseconds since the epoch: the bridge between the history's
    /// run milliseconds and the times the cluster writes into orders.
    started_epoch_ms: i64,
    /// Finished operations in completion order.
    operations: Mutex<Vec<Operation>>,
}

impl History {
    /// An empty history whose clock starts now.
    pub fn new() -> Self {
        History {
            started: Instant::now(),
            started_epoch_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0),
            operations: Mutex::new(Vec::new()),
        }
    }

    /// Milliseconds since the run began: every timestamp in the history uses this clock.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Wall-clock milliseconds since the epoch at time zero of the run.
    pub fn started_epoch_ms(&self) -> i64 {
        self.started_epoch_ms
    }

    /// Records a finished operation.
    pub fn record(&self, operation: Operation) {
        self.lock().push(operation);
    }

    /// A copy of everything recorded so far.
    pub fn operations(&self) -> Vec<Operation> {
        self.lock().clone()
    }

    /// The list, surviving a client task that panicked while holding the lock.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Operation>> {
        self.operations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}
