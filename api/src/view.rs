//! The JSON shapes the contract answers with.

use serde_json::{json, Value};
use sm::changes::{Change, Table};
use sm::order::Order;
use sm::sku::Sku;

use sm::StoreError;

/// Milliseconds since the epoch as an RFC 3339 UTC string.
pub fn rfc3339(ms: i64) -> String {
    sm::order_event::rfc3339(ms)
}

/// An order as the contract shows it: the same shape the order events carry as payload.
pub fn order(order: &Order) -> Value {
    sm::order_event::order_json(order)
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

/// A change of the stream as the contract shows it: `{"offset", "at", "table", "key", "op",
/// "before", "after"}`, with orders and SKUs in the same shapes as their own routes, so a consumer
/// reads a change exactly like a `GET` of the row; messages as the queue stores them.
pub fn change(change: &Change) -> Result<Value, StoreError> {
    let image = |bytes: &Option<Vec<u8>>| -> Result<Value, StoreError> {
        let Some(bytes) = bytes else {
            return Ok(Value::Null);
        };
        match change.table {
            Table::Orders => serde_json::from_slice::<Order>(bytes)
                .map(|o| order(&o))
                .map_err(|e| StoreError::corrupt("order image", e)),
            Table::Skus => serde_json::from_slice::<Sku>(bytes)
                .map(|s| sku(&s))
                .map_err(|e| StoreError::corrupt("sku image", e)),
            Table::Messages => serde_json::from_slice::<Value>(bytes)
                .map_err(|e| StoreError::corrupt("message image", e)),
        }
    };
    Ok(json!({
        "offset": change.offset,
        "at": rfc3339(change.at_ms),
        "table": change.table.name(),
        "key": change.key_text(),
        "op": change.op.name(),
        "before": image(&change.before)?,
        "after": image(&change.after)?,
    }))
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
