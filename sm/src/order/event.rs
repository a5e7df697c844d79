//! The order life cycle's messages: `order.created`, `order.paid`, `order.closed`,
//! `order.refund_requested`, `order.refunded`, `order.refund_failed`, each with the order in its
//! API shape as payload and the order id as key, published in the same apply as the change.

use serde::Serialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::queue::{self, NewMessage};
use crate::txn::Txn;

use super::record::{CloseReason, Order, OrderState};

/// Topic of new orders.
pub const CREATED: &str = "order.created";
/// Topic of paid orders.
pub const PAID: &str = "order.paid";
/// Topic of closed (expired or cancelled) orders.
pub const CLOSED: &str = "order.closed";
/// Topic of refunds asked for; the built-in refund subscription consumes it.
pub const REFUND_REQUESTED: &str = "order.refund_requested";
/// Topic of refunds the provider confirmed.
pub const REFUNDED: &str = "order.refunded";
/// Topic of refunds given up on.
pub const REFUND_FAILED: &str = "order.refund_failed";

/// Milliseconds since the epoch as an RFC 3339 UTC string, as the contract writes times.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// An order as the contract shows it (the API's routes answer the same shape).
pub fn order_json(order: &Order) -> Value {
    json!(OrderView::of(order))
}

/// An order in its API shape, serialized straight from the stored order: the change stream writes
/// thousands of these a second, and building a `Value` first would cost a map per order. Fields
/// are in name order, the order a `Value` prints them in, so both give the same bytes.
#[derive(Debug, Serialize)]
pub struct OrderView<'a> {
    amount_cents: u64,
    close_reason: Option<CloseReason>,
    closed_at: Option<String>,
    created_at: String,
    expires_at: String,
    id: &'a str,
    items: Vec<ItemView<'a>>,
    paid_at: Option<String>,
    payment_ref: Option<&'a str>,
    refunded_at: Option<String>,
    state: OrderState,
    user_id: &'a str,
}

/// One line of an [`OrderView`].
#[derive(Debug, Serialize)]
struct ItemView<'a> {
    price_cents: u64,
    qty: u64,
    sku: &'a str,
}

impl<'a> OrderView<'a> {
    /// The view of `order`.
    pub fn of(order: &'a Order) -> Self {
        OrderView {
            amount_cents: order.amount_cents,
            close_reason: order.close_reason,
            closed_at: order.closed_at_ms.map(rfc3339),
            created_at: rfc3339(order.created_at_ms),
            expires_at: rfc3339(order.expires_at_ms),
            id: &order.id,
            items: order
                .items
                .iter()
                .map(|item| ItemView {
                    price_cents: item.price_cents,
                    qty: item.qty,
                    sku: &item.sku,
                })
                .collect(),
            paid_at: order.paid_at_ms.map(rfc3339),
            payment_ref: order.payment_ref.as_deref(),
            refunded_at: order.refunded_at_ms.map(rfc3339),
            state: order.state,
            user_id: &order.user_id,
        }
    }
}

/// Publishes `order` to `topic` at the batch clock `now_ms`.
pub fn publish(
    txn: &mut Txn<'_>,
    now_ms: i64,
    topic: &str,
    order: &Order,
) -> Result<(), StoreError> {
    queue::publish(
        txn,
        now_ms,
        NewMessage {
            topic,
            key: &order.id,
            payload: order_json(order),
            deliver_at_ms: now_ms,
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::record::OrderItem;

    #[test]
    fn the_view_prints_the_same_bytes_as_its_value() {
        let order = Order {
            id: "o-1".into(),
            user_id: "u \"quoted\"".into(),
            items: vec![
                OrderItem {
                    sku: "A".into(),
                    qty: 2,
                    price_cents: 1999,
                },
                OrderItem {
                    sku: "B".into(),
                    qty: 1,
                    price_cents: 5,
                },
            ],
            amount_cents: 4003,
            state: OrderState::Closed,
            close_reason: Some(CloseReason::Expired),
            payment_ref: None,
            created_at_ms: 1_500,
            expires_at_ms: 86_401_500,
            paid_at_ms: None,
            closed_at_ms: Some(86_401_600),
            refunded_at_ms: None,
        };
        let direct = serde_json::to_string(&OrderView::of(&order)).unwrap();
        assert_eq!(direct, order_json(&order).to_string());
        let value: Value = serde_json::from_str(&direct).unwrap();
        assert_eq!(value["created_at"], "1970-01-01T00:00:01.5Z");
        assert_eq!(value["close_reason"], "expired");
        assert_eq!(value["items"][1]["sku"], "B");
        assert_eq!(value["paid_at"], Value::Null);
    }
}
