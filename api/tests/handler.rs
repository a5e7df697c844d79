//! The API over an in-process state machine: contract status codes, validation and idempotency,
//! without Raft.

mod support;

use std::sync::Arc;

use api::{Api, ApiConfig, HttpReply, HttpRequest};
use serde_json::Value;
use support::LocalCluster;

struct Client {
    api: Api<LocalCluster>,
    cluster: Arc<LocalCluster>,
}

impl Client {
    fn new(admin_token: Option<&str>) -> Self {
        let config = ApiConfig {
            access: api::Access::new(admin_token.map(str::to_string), Vec::new(), None),
            default_pay_within_secs: 86_400,
            seckill_pay_within_secs: 900,
            redrive_step: 1000,
            webhook_policy: Default::default(),
            access_log: Default::default(),
        };
        let cluster = Arc::new(LocalCluster::new());
        Client {
            api: Api::new(cluster.clone(), config),
            cluster,
        }
    }

    /// Loads SKU `A`: 5 units at 100 cents, no per-user limit.
    async fn sku_a_with_five(&self) {
        let (status, _) = self
            .call(
                "PUT",
                "/admin/skus/A",
                &[],
                r#"{"stock": 5, "price_cents": 100}"#,
            )
            .await;
        assert_eq!(status, 200, "SKU A loaded");
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Value) {
        let reply = self.reply(method, path, headers, body).await;
        let value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        (reply.status, value)
    }

    async fn reply(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> HttpReply {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (path.to_string(), None),
        };
        let request = HttpRequest {
            method: method.into(),
            path,
            query,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_string().into(),
        };
        self.api.handle(request).await
    }
}

/// (method, path, headers, body, expected status, expected error code)
type BadCase<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, &'a str)>,
    String,
    u16,
    &'a str,
);

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn the_order_flow_follows_the_contract() {
    let c = Client::new(None);
    let (s, sku) = c
        .call(
            "PUT",
            "/admin/skus/A",
            &[],
            r#"{"stock": 10, "price_cents": 1999}"#,
        )
        .await;
    assert_eq!((s, sku["available"].as_u64()), (200, Some(10)));
    let (s, order) = c
        .call(
            "POST",
            "/v1/orders",
            &[],
            r#"{"user_id":"u1","items":[{"sku":"A","qty":2}]}"#,
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(order["state"], "pending_payment");
    assert_eq!(order["amount_cents"], 3998);
    assert!(order["expires_at"].as_str().unwrap().ends_with('Z'));
    let id = order["id"].as_str().unwrap();
    let (s, paid) = c
        .call(
            "POST",
            &format!("/v1/orders/{id}/pay"),
            &[],
            r#"{"payment_ref":"p-1"}"#,
        )
        .await;
    assert_eq!((s, paid["state"].as_str()), (200, Some("paid")));
    let (s, _) = c
        .call("POST", &format!("/v1/orders/{id}/cancel"), &[], "{}")
        .await;
    assert_eq!(s, 409);
    let (s, sku) = c.call("GET", "/v1/skus/A?consistency=local", &[], "").await;
    assert_eq!(
        (s, sku["sold"].as_u64(), sku["available"].as_u64()),
        (200, Some(2), Some(8))
    );
    let (s, list) = c
        .call("GET", "/v1/orders?user_id=u1&limit=10", &[], "")
        .await;
    assert_eq!((s, list["orders"].as_array().map(Vec::len)), (200, Some(1)));
    assert_eq!(list["next"], Value::Null);
}

#[tokio::test]
async fn bad_input_gets_its_documented_error_and_changes_nothing() {
    let c = Client::new(Some("secret"));
    let auth = [("authorization", "Bearer secret")];
    assert_eq!(
        c.call(
            "PUT",
            "/admin/skus/A",
            &auth,
            r#"{"stock": 5, "price_cents": 100}"#
        )
        .await
        .0,
        200
    );
    let cases: Vec<BadCase> = vec![
        (
            "PUT",
            "/admin/skus/A",
            vec![],
            r#"{"stock": 1, "price_cents": 1}"#.into(),
            401,
            "unauthorized",
        ),
        (
            "PUT",
            "/admin/skus/A",
            vec![("authorization", "Bearer nope")],
            r#"{"stock": 1, "price_cents": 1}"#.into(),
            401,
            "unauthorized",
        ),
        (
            "PUT",
            "/admin/skus/A",
            auth.to_vec(),
            r#"{"stock": -1, "price_cents": 1}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "PUT",
            "/admin/skus/A",
            auth.to_vec(),
            r#"{"stock": 1, "price_cents": 99999999999999999999}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/orders",
            vec![],
            r#"{"user_id":"u1","items":[{"sku":"A","qty":1}],"extra":1}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/orders",
            vec![],
            r#"{"user_id":7,"items":[{"sku":"A","qty":1}]}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/orders",
            vec![],
            r#"{"user_id":"u1","items":[{"sku":"A","qty":0}]}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/orders",
            vec![],
            r#"{"user_id":"u1","items":[{"sku":"A","qty":1000000000}]}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/orders",
            vec![],
            r#"{"user_id":"","items":[{"sku":"A","qty":1}]}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/orders",
            vec![],
            format!(
                r#"{{"user_id":"{}","items":[{{"sku":"A","qty":1}}]}}"#,
                "x".repeat(300)
            ),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/orders",
            vec![],
            "{not json".into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/orders",
            vec![],
            r#"{"user_id":"u1","items":[{"sku":"A","qty":6}]}"#.into(),
            409,
            "insufficient_stock",
        ),
        (
            "POST",
            "/v1/orders",
            vec![],
            r#"{"user_id":"u1","items":[{"sku":"nope","qty":1}]}"#.into(),
            404,
            "not_found",
        ),
        (
            "POST",
            "/v1/orders",
            vec![("idempotency-key", "")],
            r#"{"user_id":"u1","items":[{"sku":"A","qty":1}]}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/v1/orders/missing",
            vec![],
            String::new(),
            404,
            "not_found",
        ),
        (
            "GET",
            "/v1/orders?user_id=u1&limit=0",
            vec![],
            String::new(),
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/v1/skus/A?consistency=sometimes",
            vec![],
            String::new(),
            400,
            "invalid_request",
        ),
        (
            "DELETE",
            "/v1/orders",
            vec![],
            String::new(),
            405,
            "method_not_allowed",
        ),
        (
            "POST",
            "/v1/orders",
            vec![],
            r#"{"user_id":"u1","items":[{"sku":"A","qty":1}],"pay_within_secs":null}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/v1/changes?after=9223372036854775808",
            vec![],
            String::new(),
            400,
            "invalid_request",
        ),
    ];
    for (method, path, headers, body, status, expected) in cases {
        let (s, v) = c.call(method, path, &headers, &body).await;
        assert_eq!((s, code(&v)), (status, expected), "{method} {path} {body}");
    }
    let (_, sku) = c.call("GET", "/v1/skus/A", &[], "").await;
    assert_eq!(
        (sku["stock"].as_u64(), sku["available"].as_u64()),
        (Some(5), Some(5)),
        "nothing changed"
    );
}

#[tokio::test]
async fn idempotency_keys_replay_the_first_answer() {
    let c = Client::new(None);
    c.sku_a_with_five().await;
    let key = [("idempotency-key", "order-1")];
    let body = r#"{"user_id":"u1","items":[{"sku":"A","qty":1}]}"#;
    let first = c.call("POST", "/v1/orders", &key, body).await;
    let again = c
        .call(
            "POST",
            "/v1/orders",
            &key,
            "{ \"items\": [{\"qty\": 1, \"sku\": \"A\"}], \"user_id\": \"u1\" }",
        )
        .await;
    assert_eq!(first, again);
    let other = c
        .call(
            "POST",
            "/v1/orders",
            &key,
            r#"{"user_id":"u1","items":[{"sku":"A","qty":2}]}"#,
        )
        .await;
    assert_eq!((other.0, code(&other.1)), (422, "idempotency_key_reused"));
    let (_, sku) = c.call("GET", "/v1/skus/A", &[], "").await;
    assert_eq!(sku["reserved"].as_u64(), Some(1));
}

#[tokio::test]
async fn a_node_restoring_a_snapshot_answers_no_reads_from_its_half_restored_state() {
    let client = Client::new(None);
    let json = [("content-type", "application/json")];
    let (status, _) = client
        .call(
            "PUT",
            "/admin/skus/R",
            &json,
            r#"{"stock": 5, "price_cents": 100}"#,
        )
        .await;
    assert_eq!(status, 200);
    let (status, order) = client
        .call(
            "POST",
            "/v1/orders",
            &json,
            r#"{"user_id": "u1", "items": [{"sku": "R", "qty": 1}]}"#,
        )
        .await;
    assert_eq!(status, 201);
    let path = format!(
        "/v1/orders/{}?consistency=local",
        order["id"].as_str().unwrap()
    );

    client.cluster.set_restoring(true);
    for read in [
        path.as_str(),
        "/v1/skus/R?consistency=local",
        "/v1/changes?after=0",
    ] {
        let (status, body) = client.call("GET", read, &[], "").await;
        assert_eq!((status, code(&body)), (503, "restoring"), "{read}: {body}");
    }
    client.cluster.set_restoring(false);
    let (status, body) = client.call("GET", &path, &[], "").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = client.call("GET", "/v1/changes?after=0", &[], "").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_removed_group_is_gone_and_the_refund_group_stays() {
    let client = Client::new(None);
    let json = [("content-type", "application/json")];
    let (status, _) = client
        .call(
            "PUT",
            "/admin/subscriptions/points",
            &json,
            r#"{"topic": "order.paid"}"#,
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = client
        .call("DELETE", "/admin/subscriptions/points", &[], "")
        .await;
    assert_eq!(
        (status, &body["removed"]),
        (200, &Value::Bool(true)),
        "{body}"
    );
    let (_, list) = client.call("GET", "/admin/subscriptions", &[], "").await;
    assert_eq!(
        list["subscriptions"].as_array().map(Vec::len),
        Some(0),
        "{list}"
    );
    let (status, body) = client
        .call("DELETE", "/admin/subscriptions/points", &[], "")
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = client
        .call("DELETE", "/admin/subscriptions/payment.refund", &[], "")
        .await;
    assert_eq!((status, code(&body)), (409, "invalid_state"));
}

#[tokio::test]
async fn a_405_names_the_methods_the_path_accepts() {
    let c = Client::new(None);
    for (method, path, allow) in [
        ("TRACE", "/v1/orders", "GET, POST"),
        ("PATCH", "/admin/subscriptions/g", "PUT, DELETE"),
        ("DELETE", "/healthz", "GET"),
        ("GET", "/v1/orders/1/pay", "POST"),
    ] {
        let reply = c.reply(method, path, &[], "").await;
        let header = reply
            .headers
            .iter()
            .find(|(name, _)| name == "allow")
            .map(|(_, value)| value.as_str());
        assert_eq!(
            (reply.status, header),
            (405, Some(allow)),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn a_batch_of_orders_answers_each_item_as_the_single_endpoint_would() {
    let c = Client::new(None);
    c.sku_a_with_five().await;
    let batch = r#"{"orders": [
        {"idempotency_key": "b-1", "user_id": "u1", "items": [{"sku": "A", "qty": 2}]},
        {"idempotency_key": "b-2", "user_id": "u2", "items": [{"sku": "A", "qty": 9}]},
        {"idempotency_key": "b-3", "user_id": "u3", "items": [{"sku": "A", "qty": 3}]}
    ]}"#;
    let first = c.reply("POST", "/v1/orders/batch", &[], batch).await;
    assert_eq!(first.status, 200);
    let answer: Value = serde_json::from_slice(&first.body).unwrap();
    let results = answer["results"].as_array().unwrap();
    let statuses: Vec<_> = results.iter().map(|r| r["status"].as_u64()).collect();
    assert_eq!(statuses, [Some(201), Some(409), Some(201)]);
    assert_eq!(results[0]["order"]["user_id"], "u1");
    assert_eq!(results[1]["error"]["code"], "insufficient_stock");
    let (_, sku) = c.call("GET", "/v1/skus/A", &[], "").await;
    assert_eq!(sku["reserved"].as_u64(), Some(5));

    // Each answer is the single endpoint's body, byte for byte: a single retry of item 1 with
    // its key and content is the same request, and answers the body embedded in the batch's.
    let single = c
        .reply(
            "POST",
            "/v1/orders",
            &[("idempotency-key", "b-1")],
            r#"{"user_id": "u1", "items": [{"sku": "A", "qty": 2}]}"#,
        )
        .await;
    assert_eq!(single.status, 201);
    let text = String::from_utf8(first.body.to_vec()).unwrap();
    let embedded = format!(
        r#"{{"status":201,"order":{}}}"#,
        String::from_utf8(single.body.to_vec()).unwrap()
    );
    assert!(text.contains(&embedded), "{text} holds {embedded}");

    let writes = c.cluster.writes();
    let again = c.reply("POST", "/v1/orders/batch", &[], batch).await;
    assert_eq!(
        again.body, first.body,
        "a retried batch gets the first answers"
    );
    let (_, sku) = c.call("GET", "/v1/skus/A", &[], "").await;
    assert_eq!(sku["reserved"].as_u64(), Some(5));

    let reused = r#"{"orders": [
        {"idempotency_key": "b-3", "user_id": "u3", "items": [{"sku": "A", "qty": 1}]}
    ]}"#;
    let (s, answer) = c.call("POST", "/v1/orders/batch", &[], reused).await;
    assert_eq!(s, 200);
    assert_eq!(answer["results"][0]["status"], 422);
    assert_eq!(code(&answer["results"][0]), "idempotency_key_reused");
    assert_eq!(
        c.cluster.writes(),
        writes + 4,
        "one write per item, none refused whole"
    );
}

#[tokio::test]
async fn an_invalid_batch_is_refused_whole_and_changes_nothing() {
    let c = Client::new(None);
    c.sku_a_with_five().await;
    let writes = c.cluster.writes();
    let good = r#"{"idempotency_key": "k1", "user_id": "u1", "items": [{"sku": "A", "qty": 1}]}"#;
    let cases = [
        ("/v1/orders/batch", r#"{"orders": []}"#.to_string()),
        ("/v1/orders/batch", r#"{"orders": {}}"#.to_string()),
        ("/v1/orders/batch", format!(r#"{{"orders": [{good}], "x": 1}}"#)),
        ("/v1/orders/batch", format!(r#"{{"orders": [{good}, {good}]}}"#)),
        (
            "/v1/orders/batch",
            format!(r#"{{"orders": [{good}, {{"user_id": "u2", "items": [{{"sku": "A", "qty": 1}}]}}]}}"#),
        ),
        (
            "/v1/orders/batch",
            format!(r#"{{"orders": [{good}, {{"idempotency_key": "k2", "user_id": "u2", "items": [{{"sku": "A", "qty": 0}}]}}]}}"#),
        ),
        (
            "/v1/orders/batch",
            format!(r#"{{"orders": [{good}, {{"idempotency_key": "k2", "user_id": "u2", "items": [], "y": 1}}]}}"#),
        ),
        (
            "/v1/topics/t/messages/batch",
            r#"{"messages": [{"payload": 1, "delay_secs": 1, "deliver_at": "2030-01-01T00:00:00Z"}]}"#
                .to_string(),
        ),
        ("/v1/topics/t/messages/batch", r#"{"messages": [{"key": "k"}]}"#.to_string()),
        (
            "/v1/topics/t/messages/batch",
            format!(r#"{{"messages": [{}]}}"#, vec![r#"{"payload": 1}"#; 1001].join(",")),
        ),
    ];
    for (path, body) in cases {
        let (s, answer) = c.call("POST", path, &[], &body).await;
        assert_eq!(
            (s, code(&answer)),
            (400, "invalid_request"),
            "{path} {body}"
        );
    }
    let (s, answer) = c
        .call(
            "POST",
            "/v1/topics/order.paid/messages/batch",
            &[],
            r#"{"messages": [{"payload": 1}]}"#,
        )
        .await;
    assert_eq!((s, code(&answer)), (403, "reserved_topic"));
    assert_eq!(c.cluster.writes(), writes, "nothing was proposed");
}

#[tokio::test]
async fn a_batch_of_publishes_takes_consecutive_offsets_with_optional_keys() {
    let c = Client::new(None);
    let batch = r#"{"messages": [
        {"idempotency_key": "m-1", "key": "k", "payload": {"n": 1}},
        {"payload": [2]},
        {"idempotency_key": "m-3", "payload": "three", "delay_secs": 60}
    ]}"#;
    let (s, answer) = c
        .call("POST", "/v1/topics/loyalty/messages/batch", &[], batch)
        .await;
    assert_eq!(s, 200);
    let offsets: Vec<_> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["status"].as_u64(), r["message"]["offset"].as_u64()))
        .collect();
    assert_eq!(
        offsets,
        [
            (Some(201), Some(1)),
            (Some(201), Some(2)),
            (Some(201), Some(3))
        ]
    );
    assert_eq!(answer["results"][0]["message"]["id"], "loyalty:1");

    // The same key through the single publish, same content: the first answer.
    let (s, single) = c
        .call(
            "POST",
            "/v1/topics/loyalty/messages",
            &[("idempotency-key", "m-1")],
            r#"{"key": "k", "payload": {"n": 1}}"#,
        )
        .await;
    assert_eq!((s, &single), (201, &answer["results"][0]["message"]));
}

#[tokio::test]
async fn an_overloaded_cluster_refuses_the_batch_whole_with_retry_after() {
    let c = Client::new(None);
    c.cluster
        .overloaded
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let reply = c
        .reply(
            "POST",
            "/v1/topics/t/messages/batch",
            &[],
            r#"{"messages": [{"payload": 1}, {"payload": 2}]}"#,
        )
        .await;
    assert_eq!(reply.status, 429);
    assert!(reply.headers.iter().any(|(n, _)| n == "retry-after"));
}

#[tokio::test]
async fn a_batch_refuses_an_idempotency_key_header() {
    let c = Client::new(None);
    let (s, answer) = c
        .call(
            "POST",
            "/v1/topics/t/messages/batch",
            &[("idempotency-key", "whole")],
            r#"{"messages": [{"payload": 1}]}"#,
        )
        .await;
    assert_eq!((s, code(&answer)), (400, "invalid_request"));
    assert_eq!(c.cluster.writes(), 0);
}
