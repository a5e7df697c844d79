//! The JSON shapes the contract answers with.

use serde_json::{json, Value};
use sm::order::Order;
use sm::sku::Sku;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the epoch as an RFC 3339 UTC string.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// An order as the contract shows it.
pub fn order(order: &Order) -> Value {
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

/// A SKU as the contract shows it.
pub fn sku(sku: &Sku) -> Value {
    json!({
        "sku": sku.sku,
        "price_cents": sku.price_cents,
        "stock": sku.stock,
        "available": sku.available,
        "reserved": sku.reserved,
        "sold": sku.sold,
        "per_user_limit": sku.per_user_limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_500), "1970-01-01T00:00:01.5Z");
    }
}
