//! The JSON shapes the contract answers with.

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use sm::changes::{Change, Table};
use sm::order::OrderView;
use sm::queue::{Attempt, DeadLetter, DeliveryStatus, Message, Subscription};
use sm::{Order, Sku};

use sm::StoreError;

/// Milliseconds since the epoch as an RFC 3339 UTC string.
pub fn rfc3339(ms: i64) -> String {
    sm::order::rfc3339(ms)
}

/// An order as the contract shows it: the same shape the order events carry as payload.
pub fn order(order: &Order) -> Value {
    sm::order::order_json(order)
}

/// A SKU as the contract shows it.
pub fn sku(sku: &Sku) -> Value {
    json!(SkuView::of(sku))
}

/// A SKU in its API shape, serialized straight from the stored SKU (fields in name order, as a
/// `Value` prints them).
#[derive(Serialize)]
struct SkuView<'a> {
    available: u64,
    per_user_limit: u64,
    price_cents: u64,
    reserved: u64,
    sku: &'a str,
    sold: u64,
    stock: u64,
}

impl<'a> SkuView<'a> {
    fn of(sku: &'a Sku) -> Self {
        SkuView {
            available: sku.available,
            per_user_limit: sku.per_user_limit,
            price_cents: sku.price_cents,
            reserved: sku.reserved,
            sku: &sku.sku,
            sold: sku.sold,
            stock: sku.stock,
        }
    }
}

/// A change of the stream as the contract shows it: `{"offset", "at", "table", "key", "op",
/// "before", "after"}`, with orders and SKUs in the same shapes as their own routes, so a consumer
/// reads a change exactly like a `GET` of the row; messages as the queue stores them.
///
/// Written straight into `out`: a learner serves tens of thousands of changes a second, and the
/// stored message images are copied as they are rather than parsed into a `Value` and printed
/// again.
pub fn write_change(change: &Change, out: &mut Vec<u8>) -> Result<(), StoreError> {
    let view = ChangeView {
        after: Image::read(change.table, change.after.as_deref())?,
        at: rfc3339(change.at_ms),
        before: Image::read(change.table, change.before.as_deref())?,
        key: change.key_text(),
        offset: change.offset,
        op: change.op.name(),
        table: change.table.name(),
    };
    serde_json::to_writer(out, &view).map_err(|e| StoreError::corrupt("change", e))
}

/// A change as [`write_change`] writes it (fields in name order, as a `Value` prints them).
#[derive(Serialize)]
struct ChangeView<'a> {
    after: Image<'a>,
    at: String,
    before: Image<'a>,
    key: String,
    offset: u64,
    op: &'static str,
    table: &'static str,
}

/// The row before or after a change, decoded only as far as its API shape needs.
enum Image<'a> {
    Absent,
    Order(Order),
    Sku(Sku),
    /// A stored message: already its API shape, checked to be JSON and copied as is.
    Message(&'a RawValue),
}

impl<'a> Image<'a> {
    fn read(table: Table, bytes: Option<&'a [u8]>) -> Result<Self, StoreError> {
        let Some(bytes) = bytes else {
            return Ok(Image::Absent);
        };
        match table {
            Table::Orders => serde_json::from_slice(bytes)
                .map(Image::Order)
                .map_err(|e| StoreError::corrupt("order image", e)),
            Table::Skus => serde_json::from_slice(bytes)
                .map(Image::Sku)
                .map_err(|e| StoreError::corrupt("sku image", e)),
            Table::Messages => serde_json::from_slice(bytes)
                .map(Image::Message)
                .map_err(|e| StoreError::corrupt("message image", e)),
        }
    }
}

impl Serialize for Image<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Image::Absent => serializer.serialize_none(),
            Image::Order(order) => OrderView::of(order).serialize(serializer),
            Image::Sku(sku) => SkuView::of(sku).serialize(serializer),
            Image::Message(raw) => raw.serialize(serializer),
        }
    }
}

/// A subscription's settings as the contract shows them.
pub fn subscription(sub: &Subscription) -> Value {
    json!({
        "group": sub.group,
        "topic": sub.topic,
        "push": sub.push.as_ref().map(|p| json!({"url": p.url, "timeout_ms": p.timeout_ms})),
        "max_attempts": sub.max_attempts,
        "backoff": {"initial_ms": sub.backoff_initial_ms, "max_ms": sub.backoff_max_ms},
        "max_in_flight": sub.max_in_flight,
        "rate_per_sec": sub.rate_per_sec,
        "ordered_by_key": sub.ordered_by_key,
        "start": sub.start,
        "paused": sub.paused,
    })
}

/// A SKU in the operators' stock list: its API shape and whether it is sold out.
pub fn sku_stock(sku: &Sku) -> Value {
    let mut view = self::sku(sku);
    view["sold_out"] = Value::Bool(sku.available == 0);
    view
}

/// A message as an order's trace shows it, with where it stands with each group.
pub fn traced_message(message: &Message, deliveries: Vec<Value>) -> Value {
    json!({
        "id": message.id,
        "topic": message.topic,
        "offset": message.offset,
        "key": message.key,
        "published_at": rfc3339(message.published_at_ms),
        "payload": message.payload,
        "deliveries": deliveries,
    })
}

/// Where a message stands with `group`: `pending` (with its failed attempts, and whether the
/// leader has it in flight), `settled` (with when it was acknowledged, when the state knows) or
/// `dead`.
pub fn delivery_status(group: &str, status: &DeliveryStatus) -> Value {
    let attempts = |list: &[Attempt]| -> Vec<Value> {
        list.iter()
            .map(|a| json!({"at": rfc3339(a.at_ms), "error": a.error}))
            .collect()
    };
    match status {
        DeliveryStatus::Pending(tried) => {
            let list = tried.as_ref().map_or(&[][..], |t| &t.attempts[..]);
            json!({
                "group": group,
                "status": "pending",
                "attempts": attempts(list),
                "last_error": list.last().map(|a| &a.error),
            })
        }
        DeliveryStatus::Settled(acked_at_ms) => json!({
            "group": group,
            "status": "settled",
            "attempts": [],
            "last_error": null,
            "acked_at": acked_at_ms.map(rfc3339),
        }),
        DeliveryStatus::Dead(dead) => json!({
            "group": group,
            "status": "dead",
            "attempts": attempts(&dead.attempts),
            "last_error": dead.attempts.last().map(|a| &a.error),
            "dead_at": rfc3339(dead.dead_at_ms),
        }),
    }
}

/// An `order.closed` message as `GET /admin/timers` lists it: which order, when and why. The
/// message's payload is the order itself.
pub fn closed_order(message: &Message) -> Value {
    let order = &message.payload;
    json!({
        "order_id": order["id"],
        "user_id": order["user_id"],
        "closed_at": order["closed_at"],
        "reason": order["close_reason"],
        "offset": message.offset,
    })
}

/// A dead letter as the contract shows it: the message, its failed attempts, when it died.
pub fn dead_letter(dead: &DeadLetter) -> Value {
    json!({
        "id": dead.message.id,
        "topic": dead.message.topic,
        "key": dead.message.key,
        "payload": dead.message.payload,
        "published_at": rfc3339(dead.message.published_at_ms),
        "attempts": dead.attempts.iter().map(|a| json!({"at": rfc3339(a.at_ms), "error": a.error})).collect::<Vec<_>>(),
        "dead_at": rfc3339(dead.dead_at_ms),
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
