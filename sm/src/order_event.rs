//! The order life cycle's messages: `order.created`, `order.paid`, `order.closed`,
//! `order.refund_requested`, `order.refunded`, `order.refund_failed`, each with the order in its
//! API shape as payload and the order id as key, published in the same apply as the change.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::order::Order;
use crate::queue::{self, NewMessage};
use crate::txn::Txn;

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
    json!({
        "id": order.id,
        "user_id": order.user_id,
        "items": order.items.iter().map(|i| json!({"sku": i.sku, "qty": i.qty, "price_cents": i.price_cents})).collect::<Vec<_>>(),
        "amount_cents": order.amount_cents,
        "state": order.state,
        "close_reason": order.close_reason,
        "payment_ref": order.payment_ref,
        "created_at": rfc3339(order.created_at_ms),
        "expires_at": rfc3339(order.expires_at_ms),
        "paid_at": order.paid_at_ms.map(rfc3339),
        "closed_at": order.closed_at_ms.map(rfc3339),
        "refunded_at": order.refunded_at_ms.map(rfc3339),
    })
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
