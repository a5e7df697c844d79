//! The JSON bodies of the public contract (`/work/shared/API.md`), as the tests read them.
//!
//! These are written from the contract, not imported from the `api` crate: the point of
//! black-box tests is to catch the server drifting from what users were promised. Fields the
//! server may add later are ignored on decode.

use serde::{Deserialize, Serialize};

/// `PUT /admin/skus/{sku}` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkuSettings {
    /// Total loaded stock.
    pub stock: i64,
    /// Unit price in cents.
    pub price_cents: i64,
    /// Most units one user may hold; 0 means no limit.
    pub per_user_limit: i64,
}

impl SkuSettings {
    /// `stock` units at `price_cents` each, with no per-user limit.
    pub fn new(stock: i64, price_cents: i64) -> Self {
        SkuSettings {
            stock,
            price_cents,
            per_user_limit: 0,
        }
    }
}

/// A SKU as `GET /v1/skus/{sku}` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Sku {
    /// The SKU id.
    pub sku: String,
    /// Unit price in cents.
    pub price_cents: i64,
    /// Units that can still be ordered.
    pub available: i64,
    /// Units held by unpaid orders.
    pub reserved: i64,
    /// Units of paid orders.
    pub sold: i64,
    /// Most units one user may hold; 0 means no limit.
    pub per_user_limit: i64,
    /// Total loaded stock, when the server reports it.
    #[serde(default)]
    pub stock: Option<i64>,
}

impl Sku {
    /// The contract's invariant `available + reserved + sold == stock`, none negative.
    pub fn holds_invariant(&self, stock: i64) -> bool {
        self.available >= 0
            && self.reserved >= 0
            && self.sold >= 0
            && self.available + self.reserved + self.sold == stock
            && self.stock.is_none_or(|reported| reported == stock)
    }
}

/// One line of a new order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewItem {
    /// Which SKU.
    pub sku: String,
    /// How many units.
    pub qty: i64,
}

/// `POST /v1/orders` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewOrder {
    /// Who orders.
    pub user_id: String,
    /// What they order; all items are reserved or none.
    pub items: Vec<NewItem>,
    /// Pay window; the server's default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pay_within_secs: Option<u64>,
}

impl NewOrder {
    /// An order of `qty` units of one SKU, with the server's default pay window.
    pub fn single(user_id: impl Into<String>, sku: impl Into<String>, qty: i64) -> Self {
        NewOrder {
            user_id: user_id.into(),
            items: vec![NewItem {
                sku: sku.into(),
                qty,
            }],
            pay_within_secs: None,
        }
    }
}

/// The states of the order life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Stock reserved, waiting for payment.
    PendingPayment,
    /// Paid: the reserved stock became sold.
    Paid,
    /// A refund was asked for and is being delivered.
    RefundRequested,
    /// The payment provider confirmed the refund.
    Refunded,
    /// Delivering the refund was given up.
    RefundFailed,
    /// Closed unpaid (expired or cancelled), stock released.
    Closed,
}

/// One line of a stored order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrderItem {
    /// Which SKU.
    pub sku: String,
    /// How many units.
    pub qty: i64,
    /// Unit price when the order was made.
    pub price_cents: i64,
}

/// An order as every order endpoint returns it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Order {
    /// Server-assigned id.
    pub id: String,
    /// Who ordered.
    pub user_id: String,
    /// What was ordered.
    pub items: Vec<OrderItem>,
    /// Sum of qty * price over the items.
    pub amount_cents: i64,
    /// Where the order is in its life cycle.
    pub state: OrderState,
    /// `expired` or `cancelled` once closed.
    pub close_reason: Option<String>,
    /// The payment reference once paid.
    pub payment_ref: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time the unpaid order closes.
    pub expires_at: Option<String>,
    /// RFC 3339 payment time.
    pub paid_at: Option<String>,
    /// RFC 3339 close time.
    pub closed_at: Option<String>,
    /// RFC 3339 refund time.
    pub refunded_at: Option<String>,
}

/// `GET /v1/orders?user_id=` answer: one page.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrderPage {
    /// The orders of this page.
    pub orders: Vec<Order>,
    /// The `after` to pass for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// `GET /admin/cluster` answer: one node's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClusterStatus {
    /// The answering node.
    pub node_id: u64,
    /// The leader it knows of, if any.
    pub leader_id: Option<u64>,
    /// Its current term.
    pub term: u64,
    /// Voter ids.
    #[serde(default)]
    pub voters: Vec<u64>,
    /// Learner ids.
    #[serde(default)]
    pub learners: Vec<u64>,
    /// Index of its last log entry.
    #[serde(default)]
    pub last_log_index: Option<u64>,
    /// Index of the last entry applied to its state machine.
    #[serde(default)]
    pub last_applied: Option<u64>,
    /// Last log index covered by its current snapshot.
    #[serde(default)]
    pub snapshot_index: Option<u64>,
    /// Last log index it has purged (deleted) from its log.
    #[serde(default)]
    pub last_purged_index: Option<u64>,
    /// Every member with its addresses and, on the leader, its replication progress.
    #[serde(default)]
    pub nodes: Vec<MemberStatus>,
}

/// One member in [`ClusterStatus::nodes`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MemberStatus {
    /// Node id.
    pub id: u64,
    /// Its HTTP API address.
    pub api_addr: String,
    /// Its Raft peer address.
    pub raft_addr: String,
    /// Last log index known replicated to it (leader's view).
    #[serde(default)]
    pub matched_index: Option<u64>,
}

/// `GET /admin/digest` answer, and what `POST /admin/backup` says it backed up.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StateDigest {
    /// The index the state is the result of.
    pub applied_index: u64,
    /// SHA-256 (hex) of the replicated state.
    pub digest: String,
}

/// `POST /admin/backup` answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BackupTaken {
    /// The backup directory on the node's machine.
    pub dir: String,
    /// The state it holds: the index it is the state after, and its digest.
    #[serde(flatten)]
    pub state: StateDigest,
}

/// `POST /admin/snapshot` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct SnapshotTaken {
    /// Last log index the snapshot covers.
    pub index: u64,
}

/// What `orders` should hold of `sku`: `(reserved, sold)`. Units of unpaid orders are
/// reserved; units of paid orders are sold, and stay sold through the refund states (the
/// contract never says a refund restocks). Closed orders hold nothing.
pub fn stock_held(orders: &[Order], sku: &str) -> (i64, i64) {
    let mut reserved = 0;
    let mut sold = 0;
    for order in orders {
        let units: i64 = order
            .items
            .iter()
            .filter(|item| item.sku == sku)
            .map(|item| item.qty)
            .sum();
        match order.state {
            OrderState::PendingPayment => reserved += units,
            OrderState::Paid
            | OrderState::RefundRequested
            | OrderState::Refunded
            | OrderState::RefundFailed => sold += units,
            OrderState::Closed => {}
        }
    }
    (reserved, sold)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(state: OrderState, qty: i64) -> Order {
        serde_json::from_value(serde_json::json!({
            "id": "o1", "user_id": "u1",
            "items": [{"sku": "A", "qty": qty, "price_cents": 10}, {"sku": "B", "qty": 1, "price_cents": 5}],
            "amount_cents": 10 * qty + 5, "state": state, "close_reason": null, "payment_ref": null,
            "created_at": "2025-01-01T00:00:00Z", "expires_at": "2025-01-02T00:00:00Z",
            "paid_at": null, "closed_at": null, "refunded_at": null, "a_field_added_later": 1
        }))
        .expect("an order")
    }

    #[test]
    fn stock_held_counts_units_of_one_sku_by_state() {
        let orders = [
            order(OrderState::PendingPayment, 2),
            order(OrderState::Paid, 3),
            order(OrderState::Closed, 5),
            order(OrderState::RefundRequested, 7),
        ];
        assert_eq!(stock_held(&orders, "A"), (2, 10));
        assert_eq!(stock_held(&orders, "B"), (1, 2));
        assert_eq!(stock_held(&orders, "C"), (0, 0));
    }

    #[test]
    fn invariant_needs_the_sum_and_no_negatives() {
        let sku = |available, reserved, sold| Sku {
            sku: "A".into(),
            price_cents: 1,
            available,
            reserved,
            sold,
            per_user_limit: 0,
            stock: None,
        };
        assert!(sku(5, 3, 2).holds_invariant(10));
        assert!(!sku(5, 3, 1).holds_invariant(10));
        assert!(!sku(12, -1, -1).holds_invariant(10));
        assert!(!Sku {
            stock: Some(11),
            ..sku(5, 3, 2)
        }
        .holds_invariant(10));
    }
}

/// `GET /admin/timers` answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TimerStats {
    /// Timers armed and not yet fired or cancelled.
    pub pending: u64,
    /// RFC 3339 due time of the earliest pending timer.
    pub next_due_at: Option<String>,
    /// Timers fired since the cluster began.
    pub fired: u64,
    /// Recent firing lag p99 in ms, on a node that fired timers as leader.
    pub lag_ms_p99: Option<u64>,
}

/// Milliseconds since the epoch of an RFC 3339 time, as the API writes them.
pub fn epoch_ms(rfc3339: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// One change of the stream (`GET /v1/changes`), as the contract shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Position in the stream; strictly increasing, the same on every node.
    pub offset: u64,
    /// When the change was applied (RFC 3339).
    pub at: String,
    /// `orders`, `skus` or `messages`.
    pub table: String,
    /// The order id or SKU.
    pub key: String,
    /// `insert`, `update` or `delete`.
    pub op: String,
    /// The row before, in its GET shape; null for an insert.
    pub before: serde_json::Value,
    /// The row after, in its GET shape; null for a delete.
    pub after: serde_json::Value,
}

/// A page of the change stream: of [`Change`]s, or of each change's JSON as it came
/// (`ChangePage<Box<RawValue>>`) for consumers that store changes without reading them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChangePage<C = Change> {
    /// Changes after the asked offset, in order.
    pub changes: Vec<C>,
    /// The `after` of the next call.
    pub next: u64,
}

/// Bits of an offset that count the changes within one log entry.
pub const OFFSET_SEQ_BITS: u32 = 20;

/// The largest offset of any change of the entry at `log_index`: `after` of a consumer that has
/// seen that entry whole.
pub fn entry_end_offset(log_index: u64) -> u64 {
    (log_index << OFFSET_SEQ_BITS) | ((1 << OFFSET_SEQ_BITS) - 1)
}
