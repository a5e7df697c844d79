//! Nobody acts where they do not belong, tried on real processes as an attacker on the same
//! network would: forged events into reserved topics, acks for a push group, altered and guessed
//! receipts, calls without the right token, a node started where it can be reached without its
//! secrets, an empty cluster secret on the peer port.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cluster::queue::Acked;
use cluster::{
    poll_until, requests, within, ApiResponse, Cluster, ClusterOptions, Endpoint, Leased,
    NewMessage, NewOrder, NodeClient, Order, OrderState, Receive, Receiver, Request, Sku,
    SkuSettings, Subscription,
};
use serde_json::{json, Value};

fn phase(text: &str) {
    eprintln!("t70: {text}");
}

async fn send(client: &NodeClient, request: Request) -> ApiResponse {
    let what = format!("{} {}", request.method, request.path);
    client
        .send(request)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn assert_refused(r: &ApiResponse, status: u16, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert_eq!(r.error_code().as_deref(), Some(code), "{what}: {}", r.body);
}

fn publish(topic: &str, key: &str, payload: Value) -> Request {
    requests::publish(topic, &NewMessage::keyed(key, payload))
}

/// Creates and pays one order of SKU `T70`; answers its id.
async fn paid_order(client: &NodeClient, user: &str) -> String {
    let order = client
        .create_order(&NewOrder::single(user, "T70", 1), None)
        .await
        .expect("create");
    client
        .pay(&order.id, &format!("pay-{user}"))
        .await
        .expect("pay");
    order.id
}

async fn put_sku(client: &NodeClient) {
    client
        .put_sku("T70", &SkuSettings::new(1000, 500))
        .await
        .expect("put the SKU");
}

/// The `head` (messages ever published) of `group`'s topic, from `GET /admin/subscriptions`.
async fn topic_head(client: &NodeClient, group: &str) -> Option<u64> {
    let stats = client
        .subscription_stats(group, false)
        .await
        .expect("subscriptions");
    stats?.head
}

/// Waits until order `id` reads `refunded` on `node`; `calls` says what the provider got.
async fn wait_refunded(node: &NodeClient, id: &str, what: &str, calls: impl Fn() -> String) {
    poll_until(what, Duration::from_secs(30), || async {
        let order = node.get_order(id, false).await.expect("read the order");
        match order.state {
            OrderState::Refunded => Ok(()),
            other => Err(format!("state {other:?}{}", calls())),
        }
    })
    .await
    .expect("refunded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_forged_order_events_are_refused_and_never_reach_the_provider() {
    let provider = Receiver::acking().await.expect("fake provider");
    let options = ClusterOptions {
        extra_args: vec!["--payment-refund-url".into(), provider.url()],
        ..Default::default()
    };
    let cluster = Cluster::start(1, options).await.expect("cluster");
    within(Duration::from_secs(60), async {
        let node = cluster.client(1);
        put_sku(node).await;
        let forged_for = paid_order(node, "victim").await;
        let genuine = paid_order(node, "buyer").await;
        node.subscribe("paid-watch", &Subscription::pull("order.paid"))
            .await
            .expect("subscribe");

        phase("--- forged publishes into order.* and the refund group's topic");
        for topic in ["order.refund_requested", "order.paid", "order.anything"] {
            let r = send(
                node,
                publish(
                    topic,
                    &forged_for,
                    json!({"id": forged_for, "state": "paid"}),
                ),
            )
            .await;
            assert_refused(&r, 403, "reserved_topic", &format!("publish to {topic}"));
        }
        let r = send(node, publish("shop.events", "k", json!({"ok": true}))).await;
        assert_eq!(
            r.status, 201,
            "an ordinary topic still takes publishes: {}",
            r.body
        );

        phase("--- a genuine refund reaches the provider; the forged one never did");
        let r = send(node, requests::refund(&genuine, "damaged")).await;
        assert_eq!(r.status, 202, "{}", r.body);
        wait_refunded(node, &genuine, "the genuine refund refunded", String::new).await;
        let keys: Vec<Option<String>> = provider
            .received()
            .into_iter()
            .map(|r| r.idempotency_key)
            .collect();
        assert!(
            keys.iter().all(|k| k.as_deref() == Some(genuine.as_str())),
            "the provider was called only for the genuine refund: {keys:?}"
        );
        assert_eq!(
            topic_head(node, "payment.refund").await,
            Some(1),
            "order.refund_requested holds only the genuine request"
        );
        assert_eq!(
            topic_head(node, "paid-watch").await,
            Some(2),
            "order.paid holds only the two real payments"
        );
        let victim = node.get_order(&forged_for, false).await.expect("read");
        assert_eq!(victim.state, OrderState::Paid, "{victim:?}");
    })
    .await;
}

/// Ids and receipts of `receive` on `group` (one long lease each).
async fn receive(client: &NodeClient, group: &str, max: usize) -> Vec<(String, String)> {
    let leased = client
        .receive(group, &Receive::waiting(max, 5000).visibility_ms(60000))
        .await
        .expect("receive");
    leased
        .messages
        .into_iter()
        .map(|m| (m.id, m.receipt))
        .collect()
}

async fn settle(client: &NodeClient, group: &str, verb: &str, receipts: &[String]) -> ApiResponse {
    let request = match verb {
        "ack" => requests::ack(group, receipts),
        _ => requests::nack(group, receipts, None),
    };
    send(client, request).await
}

async fn acked(client: &NodeClient, group: &str, receipts: &[String]) -> u64 {
    let r = settle(client, group, "ack", receipts).await;
    assert_eq!(r.status, 200, "ack on {group}: {}", r.body);
    r.json()["acked"].as_u64().unwrap_or(u64::MAX)
}

/// Receipts one could guess from `receipt`: each single character changed, a leading zero put
/// before each number, and each number in it moved by a little (a counter's neighbours).
fn altered(receipt: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = receipt.chars().collect();
    for i in 0..chars.len() {
        for c in ['0', '1', 'a', 'f', 'Z'] {
            if chars[i] != c {
                let mut changed = chars.clone();
                changed[i] = c;
                out.push(changed.into_iter().collect());
            }
        }
    }
    let parts: Vec<&str> = receipt.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let mut padded = parts.clone();
        let zero = format!("0{part}");
        padded[i] = &zero;
        out.push(padded.join("."));
        if let Ok(n) = part.parse::<u64>() {
            for delta in [1u64, 2, 3] {
                for moved in [n.wrapping_add(delta), n.wrapping_sub(delta)] {
                    let mut guess = parts.clone();
                    let moved = moved.to_string();
                    guess[i] = &moved;
                    out.push(guess.join("."));
                }
            }
        }
    }
    out.push(format!("{receipt} "));
    out.push(receipt.to_uppercase());
    out.retain(|r| r != receipt);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_receipts_settle_only_their_own_pull_lease() {
    let hook = Receiver::failing(1.0).await.expect("webhook");
    let cluster = Cluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    within(Duration::from_secs(60), async {
        let node = cluster.client(1);
        for (group, push) in [
            ("t70-a", None),
            ("t70-b", None),
            ("t70-push", Some(hook.url())),
        ] {
            let subscription = match push {
                Some(url) => Subscription::push("t70.jobs", url)
                    .timeout_ms(1000)
                    .backoff(60000, 60000),
                None => Subscription::pull("t70.jobs"),
            };
            node.subscribe(group, &subscription)
                .await
                .expect("subscribe");
        }
        node.publish("t70.jobs", &NewMessage::keyed("k", json!({"n": 1})))
            .await
            .expect("publish");

        phase("--- a lease in group a and one in group b, of the same message");
        let a = receive(node, "t70-a", 1).await;
        let b = receive(node, "t70-b", 1).await;
        assert_eq!((a.len(), b.len()), (1, 1), "a: {a:?}, b: {b:?}");
        assert_eq!(a[0].0, b[0].0, "both lease the one message");
        let (receipt_a, receipt_b) = (a[0].1.clone(), b[0].1.clone());

        phase("--- push groups and the built-in refund group take no ack, nack or receive");
        for group in ["t70-push"] {
            for verb in ["ack", "nack"] {
                let r = settle(node, group, verb, std::slice::from_ref(&receipt_a)).await;
                assert_refused(&r, 409, "not_pull_group", &format!("{verb} on {group}"));
            }
            let r = send(node, requests::receive(group, &Receive::waiting(1, 0))).await;
            assert_refused(&r, 409, "not_pull_group", &format!("receive on {group}"));
        }
        poll_until(
            "the push group tried its webhook",
            Duration::from_secs(10),
            || async {
                if hook.received().is_empty() {
                    Err("no call yet".to_string())
                } else {
                    Ok(())
                }
            },
        )
        .await
        .expect("pushed");
        let r = settle(node, "t70-push", "ack", std::slice::from_ref(&receipt_b)).await;
        assert_refused(
            &r,
            409,
            "not_pull_group",
            "ack on a push group with its lease live",
        );

        phase("--- altered and guessed receipts settle nothing");
        let guesses = altered(&receipt_a);
        for chunk in guesses.chunks(100) {
            assert_eq!(acked(node, "t70-a", chunk).await, 0, "guesses {chunk:?}");
        }
        let guesses_b: Vec<String> = altered(&receipt_a)
            .into_iter()
            .chain([receipt_a.clone()])
            .filter(|g| g != &receipt_b)
            .collect();
        for chunk in guesses_b.chunks(100) {
            assert_eq!(
                acked(node, "t70-b", chunk).await,
                0,
                "group a's receipt, and guesses from it, on group b: {chunk:?}"
            );
        }

        phase("--- the genuine receipts still settle their own leases, once");
        assert_eq!(
            acked(node, "t70-a", std::slice::from_ref(&receipt_a)).await,
            1
        );
        assert_eq!(
            acked(node, "t70-b", std::slice::from_ref(&receipt_b)).await,
            1
        );
        assert_eq!(
            acked(node, "t70-a", &[receipt_a]).await,
            0,
            "already settled"
        );
    })
    .await;
}

/// A config file naming the clients of the scope test.
fn write_clients(path: &Path) {
    std::fs::write(
        path,
        r#"
[[clients]]
name = "shop"
token = "shop-token"
scopes = ["orders:read", "orders:write", "publish:shop.*", "consume:shop-*"]

[[clients]]
name = "payments"
token_file = "PAYMENTS_TOKEN_FILE"
scopes = ["orders:pay", "orders:read"]

[[clients]]
name = "ops"
token = "ops-token"
scopes = ["admin"]

[[clients]]
name = "analytics"
token = "analytics-token"
scopes = ["changes:read"]
"#
        .replace(
            "PAYMENTS_TOKEN_FILE",
            &path.with_extension("payments").display().to_string(),
        ),
    )
    .expect("write the config");
    std::fs::write(path.with_extension("payments"), "payments-token\n").expect("token file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_client_tokens_open_only_their_scopes_on_every_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("clients.toml");
    write_clients(&config);
    let options = ClusterOptions {
        extra_args: vec![
            "--config".into(),
            config.display().to_string(),
            "--metrics-token".into(),
            "scrape-token".into(),
        ],
        ..Default::default()
    };
    let cluster = Cluster::start(3, options).await.expect("cluster");
    within(Duration::from_secs(90), async {
        let leader = cluster.wait_for_leader().await.expect("leader");
        let follower = cluster
            .ids()
            .into_iter()
            .find(|id| *id != leader)
            .expect("a follower");
        let node = cluster.client(follower);
        put_sku(cluster.client(leader)).await;
        let order = NewOrder::single("t70-u", "T70", 1);
        let create = || requests::create_order(&order);

        phase("--- no token, an unknown token, the admin token: 401 on /v1");
        let r = send(node, create().without_admin_token()).await;
        assert_refused(&r, 401, "unauthorized", "create without a token");
        let r = send(node, create().bearer("made-up")).await;
        assert_refused(&r, 401, "unauthorized", "create with an unknown token");
        let r = send(node, create()).await;
        assert_refused(
            &r,
            401,
            "unauthorized",
            "the admin token is not a client token",
        );
        let r = send(node, Request::get("/v1/orders/x").without_admin_token()).await;
        assert_refused(&r, 401, "unauthorized", "read without a token");

        phase("--- each client within its scopes, through a follower (forwarded to the leader)");
        let created: Order = node
            .call(create().bearer("shop-token"))
            .await
            .expect("create");
        let id = created.id;
        let pay = |token: &str| requests::pay(&id, "t70-p").bearer(token);
        let r = send(node, pay("shop-token")).await;
        assert_refused(&r, 403, "forbidden", "shop may not pay");
        let paid: Order = node.call(pay("payments-token")).await.expect("pay");
        assert_eq!(paid.state, OrderState::Paid);
        let read: Order = node
            .call(requests::get_order(&id).bearer("shop-token"))
            .await
            .expect("read");
        assert_eq!(
            read.state,
            OrderState::Paid,
            "a linearizable read forwarded with its token"
        );
        let r = send(node, requests::refund(&id, "x").bearer("payments-token")).await;
        assert_refused(&r, 403, "forbidden", "payments may not refund");
        let r = send(
            node,
            publish("shop.news", "k", json!(1)).bearer("shop-token"),
        )
        .await;
        assert_eq!(r.status, 201, "publish:shop.* covers shop.news: {}", r.body);
        let r = send(node, publish("billing", "k", json!(1)).bearer("shop-token")).await;
        assert_refused(
            &r,
            403,
            "forbidden",
            "publish:shop.* does not cover billing",
        );
        let r = send(
            node,
            Request::get("/v1/changes?wait_ms=0").bearer("shop-token"),
        )
        .await;
        assert_refused(&r, 403, "forbidden", "shop may not read changes");
        let r = send(
            node,
            Request::get("/v1/changes?wait_ms=0").bearer("analytics-token"),
        )
        .await;
        assert_eq!(r.status, 200, "changes:read reads changes: {}", r.body);
        let r = send(
            node,
            Request::get("/v1/changes/stream").without_admin_token(),
        )
        .await;
        assert_refused(&r, 401, "unauthorized", "the change stream without a token");
        let r = send(
            node,
            Request::get("/v1/changes/stream").bearer("shop-token"),
        )
        .await;
        assert_refused(
            &r,
            403,
            "forbidden",
            "the change stream without changes:read",
        );
        let r = send(node, requests::seckill("T70", "t70-u").bearer("shop-token")).await;
        assert_refused(&r, 403, "forbidden", "shop may not buy in a flash sale");
        let r = send(
            node,
            requests::receive("billing-pull", &Receive::waiting(1, 0)).bearer("shop-token"),
        )
        .await;
        assert_refused(
            &r,
            403,
            "forbidden",
            "consume:shop-* does not cover billing-pull",
        );

        phase("--- a pull group within consume:shop-*: receive and ack forwarded with the token");
        cluster
            .client(leader)
            .subscribe("shop-pull", &Subscription::pull("shop.news"))
            .await
            .expect("subscribe");
        let leased: Leased = node
            .call(requests::receive("shop-pull", &Receive::waiting(10, 5000)).bearer("shop-token"))
            .await
            .expect("receive");
        let receipts = leased.receipts();
        assert_eq!(receipts.len(), 1, "the one shop.news message: {leased:?}");
        let ack = |token: &str| requests::ack("shop-pull", &receipts).bearer(token);
        let r = send(node, ack("payments-token")).await;
        assert_refused(&r, 403, "forbidden", "payments may not ack shop's group");
        let acked: Acked = node.call(ack("shop-token")).await.expect("ack");
        assert_eq!(acked.acked, 1, "{acked:?}");

        phase("--- /admin: the admin token or the admin scope; other tokens 403, none 401");
        let put = || requests::put_sku("T70-OPS", &SkuSettings::new(5, 1));
        let r = send(node, put().bearer("shop-token")).await;
        assert_refused(&r, 403, "forbidden", "shop is no admin");
        let r = send(node, put().without_admin_token()).await;
        assert_refused(&r, 401, "unauthorized", "admin without a token");
        let _: Sku = node
            .call(put().bearer("ops-token"))
            .await
            .expect("put as ops");
        node.cluster_status().await.expect("/admin/cluster");

        phase("--- /healthz and /readyz open; /metrics needs its token");
        for path in ["/healthz", "/readyz"] {
            let r = send(node, Request::get(path).without_admin_token()).await;
            assert!(r.is_success(), "GET {path}: {} {}", r.status, r.body);
        }
        let r = send(node, Request::get("/metrics").without_admin_token()).await;
        assert_refused(&r, 401, "unauthorized", "metrics without its token");
        let r = send(node, Request::get("/metrics").bearer("scrape-token")).await;
        assert_eq!(r.status, 200, "metrics with its token");

        phase("--- the audit log names the client, never its token");
        poll_until("the audit line", Duration::from_secs(5), || async {
            let log = cluster.log_tail(follower, 400);
            let line = log
                .lines()
                .find(|l| l.contains("audit") && l.contains("T70-OPS"))
                .map(str::to_string);
            match line {
                Some(line) if line.contains("client:ops") && !line.contains("ops-token") => Ok(()),
                Some(line) => Err(format!("audit line without the client: {line}")),
                None => Err("no audit line yet".to_string()),
            }
        })
        .await
        .expect("audited");
    })
    .await;
}

/// Runs `orderq` with `args` and `env` until it exits (it must, within a few seconds); answers
/// its exit code and stderr. A process still running at the deadline is killed and fails.
async fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let binary = cluster::process::locate_binary().expect("orderq binary");
    let mut command = Command::new(binary);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ORDERQ_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("spawn orderq");
    let status = poll_until("orderq to exit", Duration::from_secs(10), || {
        let status = child.try_wait();
        async move {
            match status {
                Ok(Some(status)) => Ok(status),
                Ok(None) => Err("still running".to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("orderq {args:?} kept running: {e}");
        }
    };
    let output = child.wait_with_output().expect("collect output");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_a_reachable_node_without_secrets_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = cluster::ports::reserve_ports_on(std::net::Ipv4Addr::LOCALHOST, 4).expect("ports");
    let data = dir.path().join("data");
    let data = data.display().to_string();
    let api_any = format!("0.0.0.0:{}", ports[0]);
    let raft = format!("127.0.0.1:{}", ports[1]);

    let serve_on_any = [
        "serve",
        "--data-dir",
        &data,
        "--api-addr",
        &api_any,
        "--raft-addr",
        &raft,
    ];

    phase("--- api on 0.0.0.0 without any secret: exit 2, one line naming them all");
    let (code, out) = run_to_exit(&serve_on_any, &[]).await;
    assert_eq!(code, Some(2), "{out}");
    assert_eq!(out.trim().lines().count(), 1, "one line: {out}");
    for setting in ["api_addr", "cluster_secret", "admin_token", "clients"] {
        assert!(out.contains(setting), "names {setting}: {out}");
    }

    phase("--- with the secrets but no client: still refused, naming only the client");
    let (code, out) = run_to_exit(
        &serve_on_any,
        &[
            ("ORDERQ_ADMIN_TOKEN", "t70-admin-secret-value"),
            ("ORDERQ_CLUSTER_SECRET", "t70-cluster-secret-value"),
        ],
    )
    .await;
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("clients") && !out.contains("admin_token"),
        "{out}"
    );
    assert!(
        !out.contains("t70-admin-secret-value"),
        "never printed: {out}"
    );

    phase("--- peers on loopback without a cluster secret: refused");
    let peer2 = format!("2=127.0.0.1:{},127.0.0.1:{}", ports[2], ports[3]);
    let peer1 = format!("1={raft},127.0.0.1:{}", ports[0]);
    let (code, out) = run_to_exit(
        &[
            "serve",
            "--data-dir",
            &data,
            "--api-addr",
            &format!("127.0.0.1:{}", ports[0]),
            "--raft-addr",
            &raft,
            "--peer",
            &peer1,
            "--peer",
            &peer2,
        ],
        &[],
    )
    .await;
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("cluster_secret") && out.contains("peers"),
        "{out}"
    );

    phase("--- --help shows no secret from the environment");
    let (code, out) = run_to_exit(
        &["serve", "--help"],
        &[
            ("ORDERQ_ADMIN_TOKEN", "t70-admin-secret-value"),
            ("ORDERQ_CLUSTER_SECRET", "t70-cluster-secret-value"),
            ("ORDERQ_METRICS_TOKEN", "t70-metrics-secret-value"),
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("--admin-token-file"), "{out}");
    assert!(
        !out.contains("secret-value"),
        "help printed a secret: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_the_peer_port_refuses_an_empty_secret() {
    phase("--- a lone loopback node without secrets runs open, and says so");
    let open = ClusterOptions {
        admin_token: None,
        cluster_secret: None,
        ..Default::default()
    };
    let lone = Cluster::start(1, open).await.expect("lone node");
    let closed = Cluster::start(1, ClusterOptions::default())
        .await
        .expect("node with a secret");
    within(Duration::from_secs(30), async {
        poll_until("the open warning", Duration::from_secs(5), || async {
            if lone.log_tail(1, 100).contains("this node is open") {
                Ok(())
            } else {
                Err("no warning yet".to_string())
            }
        })
        .await
        .expect("warned");
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        for (cluster, label) in [(&lone, "without a cluster secret"), (&closed, "with one")] {
            phase(&format!(
                "--- an empty secret header on the peer port of a node {label}"
            ));
            for presented in [Some(""), None] {
                let mut request = http
                    .post(format!("http://{}/raft/vote", cluster.raft_addr(1)))
                    .body(vec![0u8; 8]);
                if let Some(value) = presented {
                    request = request.header("x-orderq-cluster-secret", value);
                }
                let status = request.send().await.expect("peer port answers").status();
                assert_eq!(status.as_u16(), 401, "{label}, header {presented:?}");
            }
        }
        lone.client(1)
            .cluster_status()
            .await
            .expect("/admin/cluster on the open node");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_webhooks_are_signed_and_never_sent_to_link_local_addresses_or_the_cluster() {
    let hook = Receiver::acking().await.expect("webhook");
    let provider = Receiver::acking().await.expect("fake provider");
    let refund_key = "t70-refund-signing-key-0123456789";
    provider.require_signature(Some(refund_key.to_string()));
    let options = ClusterOptions {
        extra_args: vec![
            "--payment-refund-url".into(),
            provider.url(),
            "--payment-signing-secret".into(),
            refund_key.into(),
        ],
        ..Default::default()
    };
    let cluster = Cluster::start(1, options).await.expect("cluster");
    within(Duration::from_secs(60), async {
        let node = cluster.client(1);
        let signed = Subscription::push("t70.signed", hook.url()).timeout_ms(2000);

        phase("--- a push group gets a drawn key, answered once");
        let created = node
            .subscribe("t70-signed", &signed)
            .await
            .expect("subscribe");
        let key = created
            .signing_secret
            .clone()
            .unwrap_or_else(|| panic!("the PUT answers the drawn key: {created:?}"));
        assert!(key.len() >= 32, "{key}");
        let listed = send(node, requests::subscriptions(false)).await;
        assert!(!listed.body.contains(&key), "the key is never listed");
        let again = node
            .subscribe("t70-signed", &signed.clone().max_attempts(5))
            .await
            .expect("change the settings");
        assert!(
            again.signing_secret.is_none(),
            "a settings change keeps the key: {again:?}"
        );

        phase("--- every delivery verifies under the key from the PUT answer");
        hook.require_signature(Some(key.clone()));
        for n in 0..3 {
            node.publish("t70.signed", &NewMessage::keyed("k", json!({ "n": n })))
                .await
                .expect("publish");
        }
        poll_until(
            "three signed deliveries acknowledged",
            Duration::from_secs(20),
            || async {
                let acked = hook.acked_ids().len();
                if acked == 3 {
                    Ok(())
                } else {
                    Err(format!("{acked} acknowledged: {:?}", hook.received()))
                }
            },
        )
        .await
        .expect("delivered");
        assert!(
            hook.received()
                .iter()
                .all(|r| r.signature_valid == Some(true)),
            "{:?}",
            hook.received()
        );

        phase("--- a key given in the PUT replaces it; the old one signs too for a grace period");
        let given = "t70-given-signing-key-abcdefghijkl";
        let changed = node
            .subscribe("t70-signed", &signed.clone().signing_secret(given))
            .await
            .expect("give a key");
        assert_eq!(changed.signing_secret.as_deref(), Some(given));
        let acked_count = |want: usize| {
            let hook = &hook;
            async move {
                let acked = hook.acked_ids().len();
                if acked == want {
                    Ok(())
                } else {
                    Err(format!("{acked} acknowledged: {:?}", hook.received()))
                }
            }
        };
        node.publish("t70.signed", &NewMessage::keyed("k", json!({"n": 3})))
            .await
            .expect("publish");
        poll_until(
            "a receiver still on the old key",
            Duration::from_secs(20),
            || acked_count(4),
        )
        .await
        .expect("verified under the old key during the grace period");
        hook.require_signature(Some(given.to_string()));
        node.publish("t70.signed", &NewMessage::keyed("k", json!({"n": 4})))
            .await
            .expect("publish");
        poll_until("a receiver on the new key", Duration::from_secs(20), || {
            acked_count(5)
        })
        .await
        .expect("verified under the new key");

        phase("--- refunds are signed with [payment] signing_secret");
        put_sku(node).await;
        let id = paid_order(node, "t70-refund").await;
        let r = send(node, requests::refund(&id, "t70")).await;
        assert_eq!(r.status, 202, "{}", r.body);
        wait_refunded(
            node,
            &id,
            "refunded by a provider checking the signature",
            || format!(", calls {:?}", provider.received()),
        )
        .await;

        phase("--- link-local push URLs and the cluster's own ports are refused");
        let own_api = format!("{}/v1/orders", cluster.api(1));
        let own_raft = format!("http://{}/raft/vote", cluster.raft_addr(1));
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]:8080/hook",
            own_api.as_str(),
            own_raft.as_str(),
        ] {
            let r = send(
                node,
                requests::subscribe("t70-metadata", &Subscription::push("t70.x", url)),
            )
            .await;
            assert_refused(&r, 400, "invalid_request", url);
        }
        let subs = send(node, requests::subscriptions(false)).await;
        assert!(!subs.body.contains("t70-metadata"), "nothing was created");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_webhook_allow_keeps_webhooks_inside_its_ranges() {
    let hook = Receiver::acking().await.expect("webhook");
    let options = ClusterOptions {
        extra_args: vec!["--webhook-allow".into(), "10.0.0.0/8".into()],
        ..Default::default()
    };
    let cluster = Cluster::start(1, options).await.expect("cluster");
    within(Duration::from_secs(40), async {
        let node = cluster.client(1);
        let by_name = hook.url().replace("127.0.0.1", "localhost");

        phase("--- an address outside webhook_allow is refused when the group is put");
        let r = send(
            node,
            requests::subscribe("t70-outside", &Subscription::push("t70.allow", hook.url())),
        )
        .await;
        assert_refused(
            &r,
            400,
            "invalid_request",
            "127.0.0.1 is outside 10.0.0.0/8",
        );

        phase("--- a name is checked when it resolves: localhost is outside too");
        let by_name = Subscription::push("t70.allow", by_name)
            .timeout_ms(1000)
            .backoff(100, 200);
        node.subscribe("t70-by-name", &by_name)
            .await
            .expect("subscribe");
        node.publish("t70.allow", &NewMessage::keyed("k", json!({"n": 1})))
            .await
            .expect("publish");
        node.wait_failures("t70-by-name", 2, Duration::from_secs(20))
            .await
            .expect("attempts fail");
        assert!(
            hook.received().is_empty(),
            "the receiver outside the allowed ranges was never called: {:?}",
            hook.received()
        );
    })
    .await;
}
