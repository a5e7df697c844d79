//! One constructor per endpoint of the contract: the [`Request`] each typed verb sends.
//!
//! The verbs of [`crate::NodeClient`] and [`crate::Cluster`] send exactly these, and so do the
//! tests that look at a refusal (a status, an error code, a request with another token): a
//! refused request is then the same request a verb would have sent, changed only where the test
//! says (`.bearer(..)`, `.idempotency_key(..)`).

use reqwest::Method;
use serde_json::json;

use crate::client::Request;
use crate::model::{NewOrder, SkuSettings};
use crate::queue::{NewMessage, Receipts, Receive, Redrive, Subscription};

/// `POST /admin/backup`.
pub fn backup(dir: &std::path::Path) -> Request {
    Request::json(Method::POST, "/admin/backup", &json!({ "dir": dir }))
}

/// `GET /admin/digest`.
pub fn digest() -> Request {
    Request::get("/admin/digest")
}

/// `PUT /admin/skus/{sku}`.
pub fn put_sku(sku: &str, settings: &SkuSettings) -> Request {
    Request::json(Method::PUT, format!("/admin/skus/{sku}"), settings)
}

/// `POST /v1/orders`.
pub fn create_order(order: &NewOrder) -> Request {
    Request::json(Method::POST, "/v1/orders", order)
}

/// `POST /v1/orders/batch`: each order under its idempotency key, answered in this order.
pub fn create_order_batch(orders: &[(String, NewOrder)]) -> Request {
    let items: Vec<serde_json::Value> = orders
        .iter()
        .map(|(key, order)| keyed_item(Some(key), order))
        .collect();
    Request::json(
        Method::POST,
        "/v1/orders/batch",
        &json!({ "orders": items }),
    )
}

/// `POST /v1/topics/{topic}/messages/batch`: each message under its idempotency key if it has
/// one, answered in this order.
pub fn publish_batch(topic: &str, messages: &[(Option<String>, NewMessage)]) -> Request {
    let items: Vec<serde_json::Value> = messages
        .iter()
        .map(|(key, message)| keyed_item(key.as_deref(), message))
        .collect();
    Request::json(
        Method::POST,
        format!("/v1/topics/{topic}/messages/batch"),
        &json!({ "messages": items }),
    )
}

/// A batch item: the single endpoint's body with `idempotency_key` added when there is one.
fn keyed_item(key: Option<&str>, body: &impl serde::Serialize) -> serde_json::Value {
    let mut item = serde_json::to_value(body).unwrap_or_default();
    if let (Some(key), Some(fields)) = (key, item.as_object_mut()) {
        fields.insert("idempotency_key".into(), json!(key));
    }
    item
}

/// `POST /v1/orders/{id}/pay`.
pub fn pay(id: &str, payment_ref: &str) -> Request {
    Request::json(
        Method::POST,
        format!("/v1/orders/{id}/pay"),
        &json!({ "payment_ref": payment_ref }),
    )
}

/// `POST /v1/orders/{id}/cancel`.
pub fn cancel(id: &str) -> Request {
    Request::json(Method::POST, format!("/v1/orders/{id}/cancel"), &json!({}))
}

/// `POST /v1/orders/{id}/refund`.
pub fn refund(id: &str, reason: &str) -> Request {
    Request::json(
        Method::POST,
        format!("/v1/orders/{id}/refund"),
        &json!({ "reason": reason }),
    )
}

/// `GET /v1/orders/{id}`, linearizable.
pub fn get_order(id: &str) -> Request {
    Request::get(format!("/v1/orders/{id}"))
}

/// `POST /v1/seckill/{sku}` for `user_id`.
pub fn seckill(sku: &str, user_id: &str) -> Request {
    Request::json(
        Method::POST,
        format!("/v1/seckill/{sku}"),
        &json!({ "user_id": user_id }),
    )
}

/// `GET /admin/timers`.
pub fn timers() -> Request {
    Request::get("/admin/timers")
}

/// `POST /v1/topics/{topic}/messages`.
pub fn publish(topic: &str, message: &NewMessage) -> Request {
    Request::json(
        Method::POST,
        format!("/v1/topics/{topic}/messages"),
        message,
    )
}

/// `PUT /admin/subscriptions/{group}`.
pub fn subscribe(group: &str, subscription: &Subscription) -> Request {
    Request::json(
        Method::PUT,
        format!("/admin/subscriptions/{group}"),
        subscription,
    )
}

/// `DELETE /admin/subscriptions/{group}`.
pub fn remove_subscription(group: &str) -> Request {
    Request::json(
        Method::DELETE,
        format!("/admin/subscriptions/{group}"),
        &json!({}),
    )
}

/// `GET /admin/subscriptions`, linearizable or (with `local`) from the node's applied state.
pub fn subscriptions(local: bool) -> Request {
    if local {
        Request::get("/admin/subscriptions?consistency=local")
    } else {
        Request::get("/admin/subscriptions")
    }
}

/// `POST /v1/subscriptions/{group}/receive`.
pub fn receive(group: &str, receive: &Receive) -> Request {
    Request::json(
        Method::POST,
        format!("/v1/subscriptions/{group}/receive"),
        receive,
    )
}

/// `POST /v1/subscriptions/{group}/ack`.
pub fn ack(group: &str, receipts: &[String]) -> Request {
    Request::json(
        Method::POST,
        format!("/v1/subscriptions/{group}/ack"),
        &Receipts {
            receipts,
            delay_ms: None,
        },
    )
}

/// `POST /v1/subscriptions/{group}/nack`, visible again after `delay_ms` (the server's default
/// when `None`).
pub fn nack(group: &str, receipts: &[String], delay_ms: Option<u64>) -> Request {
    Request::json(
        Method::POST,
        format!("/v1/subscriptions/{group}/nack"),
        &Receipts { receipts, delay_ms },
    )
}

/// `GET /admin/subscriptions/{group}/dead`, up to `limit` letters (the server's page size when
/// `None`).
pub fn dead_letters(group: &str, limit: Option<u32>) -> Request {
    match limit {
        Some(limit) => Request::get(format!("/admin/subscriptions/{group}/dead?limit={limit}")),
        None => Request::get(format!("/admin/subscriptions/{group}/dead")),
    }
}

/// `POST /admin/subscriptions/{group}/dead/redrive` of `ids`, or of every letter when `None`.
pub fn redrive(group: &str, ids: Option<&[String]>) -> Request {
    Request::json(
        Method::POST,
        format!("/admin/subscriptions/{group}/dead/redrive"),
        &Redrive { ids },
    )
}
