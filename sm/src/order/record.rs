//! An order as stored: its lines, state and times. Plain data: the life cycle that moves it is
//! [`super::lifecycle`]; the shape the API and events show is [`super::event::OrderView`].

use serde::{Deserialize, Serialize};

/// Where an order is in its life. The only moves are those of [`OrderState::can_move_to`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Created, stock reserved, waiting for payment until `expires_at`.
    PendingPayment,
    /// Paid: the reserved stock is sold.
    Paid,
    /// The buyer asked for a refund; the provider has not answered yet.
    RefundRequested,
    /// The provider refunded the payment.
    Refunded,
    /// The provider's refund failed for good (a redrive that then succeeds still refunds it).
    RefundFailed,
    /// Closed before payment (`close_reason` says why); the stock is released.
    Closed,
}

impl OrderState {
    /// The snake_case name, as the API, the events and the per-state counters spell it.
    pub fn name(self) -> &'static str {
        match self {
            OrderState::PendingPayment => "pending_payment",
            OrderState::Paid => "paid",
            OrderState::RefundRequested => "refund_requested",
            OrderState::Refunded => "refunded",
            OrderState::RefundFailed => "refund_failed",
            OrderState::Closed => "closed",
        }
    }

    /// Whether the contract allows moving from `self` to `next`.
    pub fn can_move_to(self, next: OrderState) -> bool {
        use OrderState::*;
        matches!(
            (self, next),
            (PendingPayment, Paid)
                | (PendingPayment, Closed)
                | (Paid, RefundRequested)
                | (RefundRequested, Refunded)
                | (RefundRequested, RefundFailed)
                | (RefundFailed, Refunded)
        )
    }
}

/// Why an order was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Not paid by `expires_at`.
    Expired,
    /// Cancelled by the buyer.
    Cancelled,
}

/// A line of an order, with the price it was sold at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// The SKU id.
    pub sku: String,
    /// Units.
    pub qty: u64,
    /// Unit price in cents when the order was placed.
    pub price_cents: u64,
}

/// An order as stored. Times are milliseconds since the epoch; the API renders them as RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Derived from the log position that created it (see `keys::order_id`).
    pub id: String,
    /// The buyer.
    pub user_id: String,
    /// What was bought; one line per SKU.
    pub items: Vec<OrderItem>,
    /// Sum of qty × price over the items.
    pub amount_cents: u64,
    /// Life-cycle state.
    pub state: OrderState,
    /// Set when `state` is `closed`.
    pub close_reason: Option<CloseReason>,
    /// The payment provider's reference, once paid.
    pub payment_ref: Option<String>,
    /// When the order was placed.
    pub created_at_ms: i64,
    /// When an unpaid order closes itself.
    pub expires_at_ms: i64,
    /// When it was paid.
    pub paid_at_ms: Option<i64>,
    /// When it was closed.
    pub closed_at_ms: Option<i64>,
    /// When it was refunded.
    pub refunded_at_ms: Option<i64>,
}
