//! The HTTP abuse scenario: a three-node cluster is sent what a careless or hostile client
//! sends (2 MiB bodies, missing and wrong `Content-Type`, unknown fields, negative and
//! overflowing quantities, admin calls without or with a wrong token, random bytes and forged
//! RPCs on the Raft peer port) and 1,000 concurrent creates under one idempotency key.
//!
//! It must answer each with the contract's documented error, never a 5xx, never crash, and
//! change nothing: the replicated state digest of every node is the same after the refused
//! probes as before them. The contention probe must leave exactly one order.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::rng::Rng;
use crate::client::{ApiResponse, NodeClient, Request};
use crate::cluster::{Cluster, ClusterOptions};
use crate::error::{Error, Result};
use crate::model::{OrderState, SkuSettings};
use crate::wait::{poll_until, retry_while_unavailable};

/// Concurrent creates sharing one idempotency key.
const CONTENDED_CREATES: usize = 1000;

/// How long one raw request may take.
const RAW_TIMEOUT: Duration = Duration::from_secs(10);

/// One probe and what came of it.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// What was sent.
    pub name: String,
    /// What the contract says must come back.
    pub expected: String,
    /// What came back.
    pub got: String,
    /// Whether that was acceptable.
    pub passed: bool,
}

/// The outcome of the abuse scenario.
#[derive(Debug, Clone, Serialize)]
pub struct AbuseReport {
    /// Every probe, in the order sent.
    pub probes: Vec<Probe>,
    /// Findings that are not failures (the server's leniency, say).
    pub notes: Vec<String>,
    /// Every probe passed, no node died, nothing changed.
    pub passed: bool,
}

impl AbuseReport {
    /// Lines for a terminal: failed probes in full, a count of the rest.
    pub fn summary(&self) -> String {
        let failed: Vec<&Probe> = self.probes.iter().filter(|p| !p.passed).collect();
        let mut out = format!(
            "abuse: {} probes, {} failed\n",
            self.probes.len(),
            failed.len()
        );
        for probe in failed {
            out.push_str(&format!(
                "  FAIL {}: expected {}, got {}\n",
                probe.name, probe.expected, probe.got
            ));
        }
        for note in &self.notes {
            out.push_str(&format!("  note: {note}\n"));
        }
        out.push_str(if self.passed { "PASSED" } else { "FAILED" });
        out
    }
}

/// Collects probes.
#[derive(Debug, Default)]
struct Probes {
    /// So far.
    probes: Vec<Probe>,
}

impl Probes {
    /// Records a probe answered `got`, expecting one of `statuses` with error code `code` (any
    /// code when `None`).
    fn expect(
        &mut self,
        name: impl Into<String>,
        got: &Result<ApiResponse>,
        statuses: &[u16],
        code: Option<&str>,
    ) {
        let (passed, got) = match got {
            Ok(response) => {
                let code_ok = match code {
                    Some(code) => response.error_code().as_deref() == Some(code),
                    None => true,
                };
                (
                    statuses.contains(&response.status) && code_ok,
                    format!("{} {}", response.status, abbreviated(&response.body)),
                )
            }
            Err(e) => (false, format!("no answer: {e}")),
        };
        self.probes.push(Probe {
            name: name.into(),
            expected: format!("{statuses:?} {}", code.unwrap_or("")),
            got,
            passed,
        });
    }

    /// Records a check that is not one answer.
    fn check(
        &mut self,
        name: impl Into<String>,
        expected: impl Into<String>,
        got: impl Into<String>,
        passed: bool,
    ) {
        self.probes.push(Probe {
            name: name.into(),
            expected: expected.into(),
            got: got.into(),
            passed,
        });
    }
}

/// Runs the scenario on a fresh three-node cluster.
pub async fn run() -> Result<AbuseReport> {
    let cluster = Cluster::start(3, ClusterOptions::default()).await?;
    let result = probe_all(&cluster).await;
    if !matches!(&result, Ok(report) if report.passed) {
        cluster.print_log_tails();
    }
    result
}

/// Every probe against `cluster`.
async fn probe_all(cluster: &Cluster) -> Result<AbuseReport> {
    let mut probes = Probes::default();
    let mut notes = Vec::new();
    let leader = cluster.wait_for_leader().await?;
    let settings = SkuSettings::new(100, 500);
    retry_while_unavailable("SKU X to load", Duration::from_secs(30), || {
        cluster.put_sku(leader, "X", &settings)
    })
    .await?;
    let before = settled_digests(cluster).await?;

    let ids = cluster.ids();
    let node = |n: usize| cluster.client(ids[n % ids.len()]);
    let api = |n: usize| api_addr(cluster.client(ids[n % ids.len()]));

    // Bodies over the 1 MiB limit, to the public API and to admin.
    let big = vec![b'x'; 2 << 20];
    for (n, (method, path)) in [
        ("POST", "/v1/orders"),
        ("PUT", "/admin/skus/X"),
        ("POST", "/v1/seckill/X"),
    ]
    .into_iter()
    .enumerate()
    {
        let got = raw_http(
            api(n)?,
            method,
            path,
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &bearer()),
            ],
            &big,
        )
        .await;
        probes.expect(
            format!("2 MiB body to {method} {path}"),
            &got,
            &[413],
            Some("payload_too_large"),
        );
    }
    // Unknown fields, wrong shapes, quantities that are negative, zero or overflow.
    let bad_orders = [
        json!({"user_id": "abuse", "items": [{"sku": "X", "qty": 1}], "coupon": "FREE"}),
        json!({"user_id": "abuse", "items": [{"sku": "X", "qty": 1, "discount": 100}]}),
        json!({"user_id": "abuse", "items": [{"sku": "X", "qty": -1}]}),
        json!({"user_id": "abuse", "items": [{"sku": "X", "qty": 0}]}),
        json!({"user_id": "abuse", "items": [{"sku": "X", "qty": -9_223_372_036_854_775_807_i64}]}),
        json!({"user_id": "abuse", "items": [{"sku": "X", "qty": 1}], "pay_within_secs": -5}),
    ];
    for (n, body) in bad_orders.iter().enumerate() {
        let got = node(n)
            .send(Request::json(Method::POST, "/v1/orders", body))
            .await;
        probes.expect(
            format!("create {body}"),
            &got,
            &[400],
            Some("invalid_request"),
        );
    }
    for (n, qty) in [
        "9223372036854775808",
        "18446744073709551616",
        "1e400",
        "1.5",
    ]
    .into_iter()
    .enumerate()
    {
        let raw = format!(r#"{{"user_id": "abuse", "items": [{{"sku": "X", "qty": {qty}}}]}}"#);
        let got = node(n)
            .send(Request::raw(Method::POST, "/v1/orders", raw))
            .await;
        probes.expect(format!("create with qty {qty}"), &got, &[400, 409], None);
    }
    // Two items that each fit but overflow together.
    let got = node(1)
        .send(Request::json(
            Method::POST,
            "/v1/orders",
            &json!({"user_id": "abuse", "items": [{"sku": "X", "qty": i64::MAX}, {"sku": "X", "qty": i64::MAX}]}),
        ))
        .await;
    probes.expect("create with two i64::MAX lines", &got, &[400, 409], None);
    let got = node(2)
        .send(Request::json(
            Method::PUT,
            "/admin/skus/X",
            &json!({"stock": -1, "price_cents": 1, "per_user_limit": 0}),
        ))
        .await;
    probes.expect(
        "PUT SKU with negative stock",
        &got,
        &[400],
        Some("invalid_request"),
    );
    let got = node(0)
        .send(Request::json(
            Method::POST,
            "/v1/seckill/X",
            &json!({"user_id": "abuse", "qty": 5}),
        ))
        .await;
    probes.expect(
        "seckill with an unknown field",
        &got,
        &[400],
        Some("invalid_request"),
    );
    let got = node(1)
        .send(Request::raw(
            Method::POST,
            "/v1/orders",
            b"\xff\xfe{not json".to_vec(),
        ))
        .await;
    probes.expect(
        "create with a body that is not JSON",
        &got,
        &[400],
        Some("invalid_request"),
    );

    // Admin without or with a wrong token: 401, on every node.
    for (n, id) in ids.iter().enumerate() {
        let client = cluster.client(*id);
        let got = client
            .send(
                Request::json(
                    Method::PUT,
                    "/admin/skus/X",
                    &json!({"stock": 1, "price_cents": 1, "per_user_limit": 0}),
                )
                .without_admin_token(),
            )
            .await;
        probes.expect(
            format!("node {id}: PUT /admin/skus/X without a token"),
            &got,
            &[401],
            Some("unauthorized"),
        );
        let got = client
            .send(
                Request::json(Method::POST, "/admin/snapshot", &json!({}))
                    .without_admin_token()
                    .header("Authorization", "Bearer wrong-token"),
            )
            .await;
        probes.expect(
            format!("node {id}: POST /admin/snapshot with a wrong token"),
            &got,
            &[401],
            Some("unauthorized"),
        );
        let got = client
            .send(Request::get("/admin/digest").without_admin_token())
            .await;
        probes.expect(
            format!("node {id}: GET /admin/digest without a token"),
            &got,
            &[401],
            Some("unauthorized"),
        );
        let got = client
            .send(
                Request::json(
                    Method::POST,
                    "/admin/cluster/voters",
                    &json!({"voters": [n as u64 + 1]}),
                )
                .without_admin_token()
                .header("Authorization", "Basic Zm9vOmJhcg=="),
            )
            .await;
        probes.expect(
            format!("node {id}: POST /admin/cluster/voters with a Basic token"),
            &got,
            &[401],
            Some("unauthorized"),
        );
    }

    // The Raft peer port: random bytes, HTTP without the secret, garbage RPCs with the secret.
    let mut rng = Rng::new(6);
    for id in &ids {
        let raft = cluster.raft_addr(*id);
        let noise: Vec<u8> = (0..64 * 1024).map(|_| rng.next_u64() as u8).collect();
        let answered = raw_bytes(raft, &noise).await;
        probes.check(
            format!("node {id}: 64 KiB of random bytes on the Raft port"),
            "a 4xx or a closed connection, never a 5xx",
            abbreviated(&answered),
            !answered.starts_with("HTTP/1.1 5"),
        );
        let got = raw_http(
            raft,
            "POST",
            "/raft/append",
            &[("Content-Type", "application/x-protobuf")],
            &noise[..1024],
        )
        .await;
        probes.expect(
            format!("node {id}: Raft append without the cluster secret"),
            &got,
            &[401],
            None,
        );
        for rpc in ["append", "vote", "snapshot"] {
            let got = raw_http(
                raft,
                "POST",
                &format!("/raft/{rpc}"),
                &[("x-orderq-cluster-secret", "cluster-tests-cluster-secret")],
                &noise[..4096],
            )
            .await;
            probes.expect(
                format!("node {id}: Raft {rpc} with the secret and a garbage body"),
                &got,
                &[400],
                None,
            );
        }
    }
    cluster.ensure_running()?;
    let after = settled_digests(cluster).await?;
    probes.check(
        "replicated state after every refused probe",
        format!("unchanged: {before:?}"),
        format!("{after:?}"),
        before == after,
    );

    // The contract's leniency on Content-Type is reported, not judged: the body is JSON either way.
    for (n, headers) in [
        vec![],
        vec![("Content-Type", "text/plain")],
        vec![("Content-Type", "application/xml")],
    ]
    .into_iter()
    .enumerate()
    {
        let body = json!({"user_id": format!("abuse-ct-{n}"), "items": [{"sku": "X", "qty": 1}]})
            .to_string();
        let label = headers
            .first()
            .map_or("no Content-Type".to_owned(), |(_, v)| {
                format!("Content-Type: {v}")
            });
        let got = raw_http(api(n)?, "POST", "/v1/orders", &headers, body.as_bytes()).await;
        probes.expect(format!("create with {label}"), &got, &[201, 400, 415], None);
        if let Ok(response) = &got {
            if response.status == 201 {
                notes.push(format!("a create with {label} is accepted (the server reads the body as JSON whatever its Content-Type)"));
            }
        }
    }

    // 1,000 concurrent creates under one key, spread over every node: one order.
    let key = "abuse-contended-key";
    let body = json!({"user_id": "abuse-contended", "items": [{"sku": "X", "qty": 1}]});
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..CONTENDED_CREATES {
        let client = node(n).clone();
        let body = body.clone();
        tasks.spawn(async move {
            retry_while_unavailable("a contended create", Duration::from_secs(60), || {
                client.call::<serde_json::Value>(
                    Request::json(Method::POST, "/v1/orders", &body).idempotency_key(key),
                )
            })
            .await
        });
    }
    let mut answers = std::collections::BTreeMap::new();
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(order)) => *answers.entry(order.to_string()).or_insert(0) += 1,
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    probes.check(
        format!("{CONTENDED_CREATES} concurrent creates with one key"),
        format!("{CONTENDED_CREATES} identical 201 answers"),
        format!(
            "{} distinct answers {:?}, {} errors {:?}",
            answers.len(),
            answers.values().collect::<Vec<_>>(),
            errors.len(),
            errors.iter().take(3).collect::<Vec<_>>()
        ),
        answers.len() == 1 && errors.is_empty(),
    );
    let stored = cluster
        .client(leader)
        .all_orders_of("abuse-contended")
        .await;
    let count = stored.as_ref().map(|o| o.len()).map_err(|e| e.to_string());
    probes.check(
        "orders stored for the contended key",
        "exactly 1",
        format!("{count:?}"),
        count == Ok(1),
    );
    if let Ok(orders) = &stored {
        probes.check(
            "its state",
            "pending_payment",
            format!("{:?}", orders.first().map(|o| o.state)),
            orders.first().map(|o| o.state) == Some(OrderState::PendingPayment),
        );
    }
    let other = json!({"user_id": "abuse-contended", "items": [{"sku": "X", "qty": 2}]});
    let got = node(2)
        .send(Request::json(Method::POST, "/v1/orders", &other).idempotency_key(key))
        .await;
    probes.expect(
        "the same key with another body",
        &got,
        &[422],
        Some("idempotency_key_reused"),
    );
    cluster.ensure_running()?;
    let sku = cluster.get_sku(leader, "X", false).await?;
    probes.check(
        "SKU X after everything",
        "the invariant holds",
        format!("{sku:?}"),
        sku.holds_invariant(100),
    );

    let passed = probes.probes.iter().all(|p| p.passed);
    Ok(AbuseReport {
        probes: probes.probes,
        notes,
        passed,
    })
}

/// Every node's `GET /admin/digest` once they all agree on the applied index.
async fn settled_digests(cluster: &Cluster) -> Result<Vec<String>> {
    poll_until(
        "every node to report the same applied index and digest",
        Duration::from_secs(30),
        || async {
            let mut digests = Vec::new();
            for id in cluster.ids() {
                let body: serde_json::Value = cluster
                    .client(id)
                    .call(Request::get("/admin/digest"))
                    .await
                    .map_err(|e| e.to_string())?;
                digests.push(body.to_string());
            }
            if digests.windows(2).all(|w| w[0] == w[1]) {
                Ok(digests)
            } else {
                Err(format!("digests differ: {digests:?}"))
            }
        },
    )
    .await
}

/// The `host:port` a node client talks to.
fn api_addr(client: &NodeClient) -> Result<SocketAddr> {
    client
        .base()
        .trim_start_matches("http://")
        .parse()
        .map_err(|e| Error::Usage(format!("{} is not host:port: {e}", client.base())))
}

/// The fixture's admin header value.
fn bearer() -> String {
    format!(
        "Bearer {}",
        ClusterOptions::default().admin_token.unwrap_or_default()
    )
}

/// Sends one HTTP/1.1 request with exactly these headers and body over a fresh connection and
/// reads the answer. Reads while writing: a server may answer 413 before reading a big body.
async fn raw_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<ApiResponse> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    let text = exchange(addr, bytes).await?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| Error::Usage(format!("no HTTP status line in {:?}", abbreviated(&text))))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok(ApiResponse { status, body })
}

/// Writes `bytes` to `addr` and returns whatever came back before the connection closed (or a
/// note that the connection could not be made).
async fn raw_bytes(addr: SocketAddr, bytes: &[u8]) -> String {
    match exchange(addr, bytes.to_vec()).await {
        Ok(text) => text,
        Err(e) => format!("({e})"),
    }
}

/// Writes `bytes` and reads until the peer closes, at most [`RAW_TIMEOUT`].
async fn exchange(addr: SocketAddr, bytes: Vec<u8>) -> Result<String> {
    let stream = TcpStream::connect(addr).await.map_err(|source| Error::Io {
        context: format!("connecting to {addr}"),
        source,
    })?;
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        // The server may answer and close before reading everything: a failed write is fine.
        let _ = writer.write_all(&bytes).await;
        writer
    });
    let mut raw = Vec::new();
    // A reset after the answer ends the read with an error; the bytes before it are kept.
    let _ = tokio::time::timeout(RAW_TIMEOUT, reader.read_to_end(&mut raw)).await;
    writing.abort();
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// The first 200 characters of `text`.
fn abbreviated(text: &str) -> String {
    text.chars().take(200).collect()
}
