//! `POST /v1/seckill/{sku}` over an in-process state machine: the purchase, the sold-out answer
//! from memory (no write reaches the cluster), idempotent retries after the sale, per-user
//! limits, validation, and 429 `overloaded` with `Retry-After`.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use api::{Api, ApiConfig, HttpReply, HttpRequest};
use serde_json::Value;
use support::LocalCluster;

struct Client {
    cluster: Arc<LocalCluster>,
    api: Api<LocalCluster>,
}

impl Client {
    fn new() -> Self {
        let cluster = Arc::new(LocalCluster::new());
        let config = ApiConfig {
            access: api::Access::default(),
            default_pay_within_secs: 86_400,
            seckill_pay_within_secs: 900,
            redrive_step: 1000,
            webhook_policy: Default::default(),
            access_log: Default::default(),
        };
        Client {
            api: Api::new(cluster.clone(), config),
            cluster,
        }
    }

    async fn call(&self, method: &str, path: &str, key: Option<&str>, body: &str) -> HttpReply {
        let request = HttpRequest {
            method: method.into(),
            path: path.into(),
            query: None,
            headers: key
                .map(|k| vec![("idempotency-key".to_string(), k.to_string())])
                .unwrap_or_default(),
            body: body.to_string().into(),
        };
        self.api.handle(request).await
    }

    async fn put_sku(&self, sku: &str, stock: u64, per_user_limit: u64) {
        let body =
            format!(r#"{{"stock":{stock},"price_cents":500,"per_user_limit":{per_user_limit}}}"#);
        let reply = self
            .call("PUT", &format!("/admin/skus/{sku}"), None, &body)
            .await;
        assert_eq!(reply.status, 200);
    }

    async fn buy(&self, sku: &str, user: &str, key: Option<&str>) -> (u16, Value) {
        let reply = self
            .call(
                "POST",
                &format!("/v1/seckill/{sku}"),
                key,
                &format!(r#"{{"user_id":"{user}"}}"#),
            )
            .await;
        let body = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        (reply.status, body)
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_purchase_is_one_unit_with_the_flash_sale_pay_window() {
    let c = Client::new();
    c.put_sku("S", 2, 0).await;
    let (status, order) = c.buy("S", "u1", Some("k1")).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["state"], "pending_payment");
    assert_eq!(order["items"][0]["qty"], 1);
    assert_eq!(order["amount_cents"], 500);
    assert_eq!(order["created_at"], "2023-11-14T22:13:20Z");
    assert_eq!(order["expires_at"], "2023-11-14T22:28:20Z", "900 s window");
}

#[tokio::test]
async fn sold_out_is_answered_from_memory_and_retries_keep_their_first_answer() {
    let c = Client::new();
    c.put_sku("S", 1, 0).await;
    let (status, first) = c.buy("S", "u1", Some("k1")).await;
    assert_eq!(status, 201);
    let writes = c.cluster.writes();
    for i in 0..10 {
        let (status, body) = c
            .buy("S", &format!("u{i}"), Some(&format!("late-{i}")))
            .await;
        assert_eq!((status, code(&body)), (409, "sold_out"));
    }
    let (status, body) = c.buy("S", "u9", None).await;
    assert_eq!((status, code(&body)), (409, "sold_out"));
    assert_eq!(
        c.cluster.writes(),
        writes,
        "sold_out must not reach the cluster"
    );
    let (status, again) = c.buy("S", "u1", Some("k1")).await;
    assert_eq!(
        (status, &again),
        (201, &first),
        "a retry gets its first answer"
    );
    let (status, body) = c.buy("S", "other-user", Some("k1")).await;
    assert_eq!((status, code(&body)), (422, "idempotency_key_reused"));

    let id = first["id"].as_str().unwrap();
    let reply = c
        .call("POST", &format!("/v1/orders/{id}/cancel"), None, "{}")
        .await;
    assert_eq!(reply.status, 200);
    let (status, _) = c.buy("S", "u2", None).await;
    assert_eq!(status, 201, "the released unit is buyable again");
}

#[tokio::test]
async fn the_per_user_limit_answers_limit_exceeded() {
    let c = Client::new();
    c.put_sku("L", 10, 1).await;
    assert_eq!(c.buy("L", "u1", None).await.0, 201);
    let (status, body) = c.buy("L", "u1", None).await;
    assert_eq!((status, code(&body)), (409, "limit_exceeded"));
    let reply = c
        .call(
            "POST",
            "/v1/orders",
            None,
            r#"{"user_id":"u1","items":[{"sku":"L","qty":1}]}"#,
        )
        .await;
    assert_eq!(
        reply.status, 409,
        "normal orders count against the limit too"
    );
    assert_eq!(c.buy("L", "u2", None).await.0, 201);
}

#[tokio::test]
async fn bad_purchases_are_refused_before_anything_is_proposed() {
    let c = Client::new();
    c.put_sku("S", 5, 0).await;
    let writes = c.cluster.writes();
    for body in [
        r#"{}"#,
        r#"{"user_id":""}"#,
        r#"{"user_id":"u1","qty":2}"#,
        r#"{"user_id":7}"#,
        "not json",
    ] {
        let reply = c.call("POST", "/v1/seckill/S", None, body).await;
        assert_eq!(reply.status, 400, "{body}");
    }
    let reply = c
        .call(
            "POST",
            "/v1/seckill/S",
            Some("bad\tkey"),
            r#"{"user_id":"u1"}"#,
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(c.call("GET", "/v1/seckill/S", None, "").await.status, 405);
    assert_eq!(c.cluster.writes(), writes);
    let (status, body) = c.buy("missing", "u1", None).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
}

#[tokio::test]
async fn a_spent_budget_answers_429_with_retry_after() {
    let c = Client::new();
    c.put_sku("S", 5, 0).await;
    c.cluster.overloaded.store(true, Ordering::SeqCst);
    let reply = c
        .call("POST", "/v1/seckill/S", None, r#"{"user_id":"u1"}"#)
        .await;
    assert_eq!(reply.status, 429);
    assert!(reply
        .headers
        .iter()
        .any(|(name, value)| name == "retry-after" && value == "1"));
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(code(&body), "overloaded");
}
