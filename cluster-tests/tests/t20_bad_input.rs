//! Bad input against a single node: every malformed, unauthorised or impossible request gets
//! the contract's 4xx with a well-formed error body, never a 5xx, and changes nothing.

use std::time::Duration;

use cluster::{
    within, ApiResponse, Cluster, ClusterOptions, NewOrder, NodeClient, OrderState, Request,
    SkuSettings,
};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SKU_A: &str = "t20-a";
const SKU_B: &str = "t20-b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_and_changes_nothing() {
    let cluster = Cluster::start(1, ClusterOptions::default())
        .await
        .expect("start a single node");
    within(Duration::from_secs(120), scenario(&cluster)).await;
}

async fn scenario(cluster: &Cluster) {
    let node = cluster.client(1);

    eprintln!("--- set up: two SKUs, a cancelled order, a paid order, an idempotent order");
    for (sku, stock) in [(SKU_A, 10), (SKU_B, 5)] {
        let settings = SkuSettings::new(stock, 100);
        node.put_sku(sku, &settings).await.expect("put sku");
    }
    let one_a = NewOrder::single("t20-user", SKU_A, 1);
    let cancelled = node.create_order(&one_a, None).await.expect("create");
    let cancelled = node.cancel(&cancelled.id).await.expect("cancel");
    assert_eq!(cancelled.state, OrderState::Closed);
    let paid = node.create_order(&one_a, None).await.expect("create");
    let paid = node.pay(&paid.id, "t20-pay").await.expect("pay");
    assert_eq!(paid.state, OrderState::Paid);

    let key = "t20-idempotent-key";
    let body = json!({"user_id": "t20-user", "items": [{"sku": SKU_A, "qty": 1}]});
    let first = node
        .send(create(&body).idempotency_key(key))
        .await
        .expect("create with key");
    assert_eq!(first.status, 201, "create with key: {}", first.body);
    let longest_key = "k".repeat(255);
    let longest = node
        .send(create(&body).idempotency_key(&longest_key))
        .await
        .expect("create with a 255-char key");
    assert_eq!(
        longest.status, 201,
        "a 255-char key is valid: {}",
        longest.body
    );

    let sku_a = node.get_sku(SKU_A, false).await.expect("sku a");
    let sku_b = node.get_sku(SKU_B, false).await.expect("sku b");
    assert_eq!((sku_a.available, sku_a.reserved, sku_a.sold), (7, 2, 1));
    let orders_before = [
        cancelled.clone(),
        paid.clone(),
        serde_json::from_str(&first.body).expect("first answer is an order"),
    ];

    eprintln!("--- request bodies with unknown fields, wrong types, missing fields");
    let invalid_orders = [
        json!({"user_id": "u", "items": [{"sku": SKU_A, "qty": 1}], "coupon": "x"}),
        json!({"user_id": "u", "items": [{"sku": SKU_A, "qty": 1, "colour": "red"}]}),
        json!({"user_id": "u", "items": [{"sku": SKU_A, "qty": "1"}]}),
        json!({"user_id": 5, "items": [{"sku": SKU_A, "qty": 1}]}),
        json!({"user_id": "u", "items": {"sku": SKU_A, "qty": 1}}),
        json!({"user_id": "u", "items": null}),
        json!({"user_id": "u"}),
        json!({"items": [{"sku": SKU_A, "qty": 1}]}),
        json!({"user_id": "u", "items": []}),
        json!({"user_id": "u", "items": [{"sku": SKU_A, "qty": 1}], "pay_within_secs": -1}),
        json!({"user_id": "u", "items": [{"sku": SKU_A, "qty": 1}], "pay_within_secs": "soon"}),
        json!([]),
        json!("order"),
    ];
    for body in &invalid_orders {
        expect_error(node, create(body), 400, "invalid_request").await;
    }

    eprintln!("--- quantities: 0, negative, fractional, beyond any integer");
    for qty in ["0", "-1", "1.5", "100000000000000000000000000000"] {
        let raw = format!(r#"{{"user_id": "u", "items": [{{"sku": "{SKU_A}", "qty": {qty}}}]}}"#);
        expect_error(node, create_raw(raw), 400, "invalid_request").await;
    }
    // Fits a u64 but no stock could ever hold it: rejected as invalid or as out of stock.
    let raw = format!(
        r#"{{"user_id": "u", "items": [{{"sku": "{SKU_A}", "qty": 18446744073709551615}}]}}"#
    );
    expect_rejected(node, create_raw(raw), &[400, 409]).await;

    eprintln!("--- empty and 300-character ids");
    let long = "x".repeat(300);
    for (user, sku) in [
        ("", SKU_A),
        (long.as_str(), SKU_A),
        ("u", ""),
        ("u", long.as_str()),
    ] {
        let body = json!({"user_id": user, "items": [{"sku": sku, "qty": 1}]});
        expect_error(node, create(&body), 400, "invalid_request").await;
    }
    let settings = json!({"stock": 1, "price_cents": 1, "per_user_limit": 0});
    expect_error(
        node,
        Request::json(Method::PUT, format!("/admin/skus/{long}"), &settings),
        400,
        "invalid_request",
    )
    .await;
    expect_rejected(
        node,
        Request::get(format!("/v1/orders/{long}")),
        &[400, 404],
    )
    .await;
    expect_rejected(node, Request::get(format!("/v1/skus/{long}")), &[400, 404]).await;

    eprintln!("--- malformed JSON and an empty body");
    for raw in [
        r#"{"user_id": "u", "items": ["#,
        "not json",
        "",
        "{}{}",
        "\u{0}",
    ] {
        expect_error(node, create_raw(raw), 400, "invalid_request").await;
    }

    eprintln!("--- a body over 1 MiB gets 413");
    let huge =
        json!({"user_id": "x".repeat(1024 * 1024 + 10), "items": [{"sku": SKU_A, "qty": 1}]});
    let huge = serde_json::to_vec(&huge).expect("serialise");
    let response = send_oversized(node.base(), "/v1/orders", huge).await;
    assert_eq!(
        (response.status, response.error_code().as_deref()),
        (413, Some("payload_too_large")),
        "oversized body: {}",
        abbreviated(&response.body)
    );

    eprintln!("--- bad Idempotency-Key: empty, 256 chars, control character, non-ASCII");
    let body = json!({"user_id": "t20-user", "items": [{"sku": SKU_A, "qty": 1}]});
    let bad_keys: [Vec<u8>; 4] = [
        Vec::new(),
        vec![b'k'; 256],
        b"bad\tkey".to_vec(),
        vec![b'k', 0xE9, b'y'],
    ];
    for bad in bad_keys {
        expect_error(
            node,
            create(&body).header("Idempotency-Key", bad),
            400,
            "invalid_request",
        )
        .await;
    }

    eprintln!("--- same key, same body: the first answer; same key, other body: 422");
    for _ in 0..2 {
        let again = node
            .send(create(&body).idempotency_key(key))
            .await
            .expect("retry");
        assert_eq!(again.status, first.status, "retry status: {}", again.body);
        assert_eq!(again.json(), first.json(), "retry body");
    }
    let other = json!({"user_id": "t20-user", "items": [{"sku": SKU_A, "qty": 2}]});
    expect_error(
        node,
        create(&other).idempotency_key(key),
        422,
        "idempotency_key_reused",
    )
    .await;

    eprintln!("--- admin without a token, with a wrong one, with the wrong scheme: 401");
    let restock = json!({"stock": 999_999, "price_cents": 1, "per_user_limit": 0});
    let admin_requests = [
        Request::json(Method::PUT, format!("/admin/skus/{SKU_A}"), &restock),
        Request::json(Method::PUT, "/admin/skus/t20-new", &restock),
        Request::get("/admin/cluster"),
        Request::json(Method::POST, "/admin/snapshot", &json!({})),
    ];
    for request in admin_requests {
        let bad_auth: [Option<&str>; 4] = [
            None,
            Some("Bearer wrong-token"),
            Some("Bearer "),
            Some("Basic Y2x1c3Rlci10ZXN0czphZG1pbg=="),
        ];
        for auth in bad_auth {
            let mut request = request.clone().without_admin_token();
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            expect_error(node, request, 401, "unauthorized").await;
        }
    }
    expect_rejected(node, Request::get("/v1/skus/t20-new"), &[404]).await;

    eprintln!("--- state machine: pay a cancelled order, cancel a paid one: 409 invalid_state");
    let pay = |id: &str| {
        Request::json(
            Method::POST,
            format!("/v1/orders/{id}/pay"),
            &json!({"payment_ref": "t20-late-pay"}),
        )
    };
    let cancel =
        |id: &str| Request::json(Method::POST, format!("/v1/orders/{id}/cancel"), &json!({}));
    expect_error(node, pay(&cancelled.id), 409, "invalid_state").await;
    expect_error(node, cancel(&paid.id), 409, "invalid_state").await;
    let repay = node
        .pay(&paid.id, "t20-pay")
        .await
        .expect("re-pay with the same ref");
    assert_eq!(
        repay, paid,
        "paying a paid order with the same ref returns it unchanged"
    );

    eprintln!("--- unknown ids: 404 not_found");
    expect_error(
        node,
        Request::get("/v1/orders/no-such-order"),
        404,
        "not_found",
    )
    .await;
    expect_error(node, Request::get("/v1/skus/no-such-sku"), 404, "not_found").await;
    expect_error(node, pay("no-such-order"), 404, "not_found").await;
    expect_error(node, cancel("no-such-order"), 404, "not_found").await;

    eprintln!("--- bad pay bodies and query strings: 400");
    let pay_bodies = [
        json!({}),
        json!({"payment_ref": 7}),
        json!({"payment_ref": "p", "tip": 1}),
    ];
    for body in &pay_bodies {
        let request = Request::json(
            Method::POST,
            format!("/v1/orders/{}/pay", orders_before[2].id),
            body,
        );
        expect_error(node, request, 400, "invalid_request").await;
    }
    for query in [
        "/v1/orders?user_id=t20-user&limit=abc",
        "/v1/orders?user_id=t20-user&limit=-1",
        &format!("/v1/orders/{}?consistency=bogus", paid.id),
    ] {
        expect_error(node, Request::get(query), 400, "invalid_request").await;
    }

    eprintln!("--- oversell: 409 insufficient_stock, all items or none");
    let too_many = NewOrder::single("t20-user", SKU_A, 8);
    expect_error(
        node,
        Request::json(Method::POST, "/v1/orders", &too_many),
        409,
        "insufficient_stock",
    )
    .await;
    let half_possible = json!({"user_id": "t20-user", "items": [
        {"sku": SKU_A, "qty": 1},
        {"sku": SKU_B, "qty": 6},
    ]});
    expect_error(node, create(&half_possible), 409, "insufficient_stock").await;
    let unknown_sku = json!({"user_id": "t20-user", "items": [{"sku": "no-such-sku", "qty": 1}]});
    expect_rejected(node, create(&unknown_sku), &[400, 404, 409]).await;

    eprintln!("--- stock below reserved + sold, negative stock or price");
    let below = SkuSettings::new(2, 100);
    expect_rejected(
        node,
        Request::json(Method::PUT, format!("/admin/skus/{SKU_A}"), &below),
        &[409],
    )
    .await;
    for settings in [
        json!({"stock": -1, "price_cents": 100, "per_user_limit": 0}),
        json!({"stock": 10, "price_cents": -5, "per_user_limit": 0}),
        json!({"stock": "ten", "price_cents": 100, "per_user_limit": 0}),
        json!({"stock": 10, "price_cents": 100, "per_user_limit": 0, "colour": "red"}),
    ] {
        let request = Request::json(Method::PUT, format!("/admin/skus/{SKU_A}"), &settings);
        expect_error(node, request, 400, "invalid_request").await;
    }

    eprintln!("--- afterwards the node is healthy and nothing changed");
    assert!(node.is_healthy().await, "/healthz after bad input");
    assert_eq!(node.get_sku(SKU_A, false).await.expect("sku a"), sku_a);
    assert_eq!(node.get_sku(SKU_B, false).await.expect("sku b"), sku_b);
    for order in &orders_before {
        let now = node.get_order(&order.id, false).await.expect("order");
        assert_eq!(&now, order, "order {} unchanged", order.id);
    }
}

/// POSTs `body` over a plain TCP connection, writing and reading at the same time.
///
/// A server may answer 413 as soon as it sees the declared length and close the connection
/// without reading the body; an HTTP client library then may report "broken pipe" and lose the
/// answer. Reading while writing gets the answer the server sent.
async fn send_oversized(base: &str, path: &str, body: Vec<u8>) -> ApiResponse {
    let addr = base.trim_start_matches("http://").to_owned();
    let stream = TcpStream::connect(&addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let writing = tokio::spawn(async move {
        // Either write may fail once the server has answered and closed: that is allowed.
        if writer.write_all(head.as_bytes()).await.is_ok() {
            let _ = writer.write_all(&body).await;
        }
        writer
    });
    let mut raw = Vec::new();
    // A reset after the answer ends the read with an error; the bytes before it are kept.
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut raw)).await;
    assert!(read.is_ok(), "no answer to the oversized body within 10 s");
    writing.abort();
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status line in {:?}", abbreviated(&text)));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    ApiResponse { status, body }
}

/// `POST /v1/orders` with `body`.
fn create(body: &Value) -> Request {
    Request::json(Method::POST, "/v1/orders", body)
}

/// `POST /v1/orders` with a raw (possibly malformed) body.
fn create_raw(body: impl Into<Vec<u8>>) -> Request {
    Request::raw(Method::POST, "/v1/orders", body)
}

/// Sends `request` and asserts the exact status and error code.
async fn expect_error(node: &NodeClient, request: Request, status: u16, code: &str) {
    let response = send(node, request.clone()).await;
    assert_eq!(
        (response.status, response.error_code().as_deref()),
        (status, Some(code)),
        "{} {}: body {}",
        request.method,
        abbreviated(&request.path),
        abbreviated(&response.body)
    );
}

/// Sends `request` and asserts one of the `allowed` statuses with a well-formed error body:
/// for requests where the contract leaves the exact rejection open.
async fn expect_rejected(node: &NodeClient, request: Request, allowed: &[u16]) {
    let response = send(node, request.clone()).await;
    assert!(
        allowed.contains(&response.status) && response.error_code().is_some(),
        "{} {}: expected one of {allowed:?} with an error body, got {} {}",
        request.method,
        abbreviated(&request.path),
        response.status,
        abbreviated(&response.body)
    );
}

/// Sends `request`; no answer at all fails the test (the node must answer bad input).
async fn send(node: &NodeClient, request: Request) -> ApiResponse {
    let label = format!("{} {}", request.method, abbreviated(&request.path));
    match node.send(request).await {
        Ok(response) => {
            assert!(
                response.status < 500,
                "{label}: 5xx for bad input: {}",
                response.body
            );
            response
        }
        Err(e) => panic!("{label}: no answer: {e}"),
    }
}

/// The first 120 characters, so a 1 MiB body does not flood the failure message.
fn abbreviated(text: &str) -> String {
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}
