//! The durable queue, end to end on real processes: every `order.paid` reaches a webhook that
//! fails half the time, also while the leader is killed twice; an always-failing webhook leaves
//! exactly one dead letter per message, with growing gaps between attempts, and a redrive
//! delivers them; `rate_per_sec` paces delivery; pull leases come back after their visibility;
//! refunds through a fake payment provider end `refunded` or `refund_failed`, and a refund the
//! provider made whose answer was lost is looked up and recorded `refunded`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use cluster::{
    poll_until, within, Cluster, ClusterOptions, NodeClient, Receiver, ReceiverOptions, Request,
};
use reqwest::Method;
use serde_json::{json, Value};

async fn ok(cluster: &Cluster, request: Request) -> Value {
    let what = format!("{} {}", request.method, request.path);
    let r = cluster.send_to_any(request).await.expect("an answer");
    assert!(r.is_success(), "{what}: {} {}", r.status, r.body);
    r.json()
}

fn subscription(topic: &str, url: Option<&str>, extra: Value) -> Value {
    let mut body = json!({"topic": topic});
    if let Some(url) = url {
        body["push"] = json!({"url": url, "timeout_ms": 2000});
    }
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

async fn subscribe(cluster: &Cluster, group: &str, body: Value) {
    ok(
        cluster,
        Request::json(Method::PUT, format!("/admin/subscriptions/{group}"), &body),
    )
    .await;
}

async fn publish(cluster: &Cluster, topic: &str, n: usize) {
    for i in 0..n {
        ok(
            cluster,
            Request::json(
                Method::POST,
                format!("/v1/topics/{topic}/messages"),
                &json!({"key": format!("k{}", i % 7), "payload": {"n": i}}),
            )
            .idempotency_key(&format!("{topic}-{i}")),
        )
        .await;
    }
}

/// Creates and pays `n` orders with 32 writers; answers their ids.
async fn paid_orders(cluster: &Cluster, n: usize) -> Vec<String> {
    ok(
        cluster,
        Request::json(
            Method::PUT,
            "/admin/skus/Q",
            &json!({"stock": 1_000_000, "price_cents": 100}),
        ),
    )
    .await;
    let mut ids = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(32) {
        let calls = chunk.iter().map(|i| async move {
            let order = ok(
                cluster,
                Request::json(
                    Method::POST,
                    "/v1/orders",
                    &json!({"user_id": format!("u{i}"), "items": [{"sku": "Q", "qty": 1}]}),
                )
                .idempotency_key(&format!("order-{i}")),
            )
            .await;
            let id = order["id"].as_str().unwrap_or_default().to_string();
            ok(
                cluster,
                Request::json(
                    Method::POST,
                    format!("/v1/orders/{id}/pay"),
                    &json!({"payment_ref": format!("p{i}")}),
                )
                .idempotency_key(&format!("pay-{i}")),
            )
            .await;
            id
        });
        ids.extend(futures::future::join_all(calls).await);
    }
    ids
}

/// Order ids in the payloads the receiver acknowledged.
fn acked_order_ids(receiver: &Receiver) -> HashSet<String> {
    receiver
        .received()
        .into_iter()
        .filter(|r| r.acked)
        .filter_map(|r| r.body["payload"]["id"].as_str().map(str::to_owned))
        .collect()
}

/// A webhook receiver answering 500 to a `fail_rate` share of calls.
async fn failing_receiver(fail_rate: f64) -> Receiver {
    Receiver::start(
        0,
        ReceiverOptions {
            fail_rate,
            ..Default::default()
        },
    )
    .await
    .expect("receiver")
}

async fn stats(cluster: &Cluster, group: &str) -> Value {
    let all = ok(cluster, Request::get("/admin/subscriptions")).await;
    all["subscriptions"]
        .as_array()
        .and_then(|subs| subs.iter().find(|s| s["group"] == group).cloned())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t60_every_paid_order_arrives_through_failures_and_two_leader_kills() {
    let mut cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("cluster");
    let receiver = failing_receiver(0.5).await;
    within(Duration::from_secs(100), async {
        tracing_phase("--- 1000 orders paid");
        let ids = paid_orders(&cluster, 1000).await;
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 1000);
        tracing_phase("--- subscribe a webhook failing half the time, paced so kills land mid-delivery");
        subscribe(
            &cluster,
            "paid-hook",
            subscription(
                "order.paid",
                Some(&receiver.url()),
                json!({"max_attempts": 100, "backoff": {"initial_ms": 100, "max_ms": 800}, "rate_per_sec": 400}),
            ),
        )
        .await;
        for kill in 1..=2 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let leader = cluster.wait_for_leader().await.expect("leader");
            tracing_phase(&format!("--- kill the leader (node {leader}), kill {kill} of 2"));
            cluster.kill(leader).expect("kill");
            cluster.wait_for_leader().await.expect("new leader");
            cluster.restart(leader).expect("restart");
        }
        let wanted: HashSet<String> = ids.into_iter().collect();
        poll_until("every order.paid acknowledged", Duration::from_secs(60), || async {
            let got = acked_order_ids(&receiver);
            let missing = wanted.difference(&got).count();
            if missing == 0 {
                Ok(())
            } else {
                Err(format!("{missing} missing"))
            }
        })
        .await
        .expect("all delivered");
        let received = receiver.received();
        let acked = received.iter().filter(|r| r.acked).count();
        let failed = received.len() - acked;
        eprintln!(
            "t60: 1000 paid orders delivered; {} calls, {failed} failed, {} duplicate acks",
            received.len(),
            acked - 1000
        );
        assert!(failed > 200, "the receiver failed about half: {failed}");

        tracing_phase("--- pull through followers: receive and ack are forwarded to the leader");
        subscribe(&cluster, "created-pull", subscription("order.created", None, json!({}))).await;
        let followers = cluster.followers().await.expect("followers");
        let leased = cluster
            .client(followers[0])
            .send(Request::json(
                Method::POST,
                "/v1/subscriptions/created-pull/receive",
                &json!({"max": 5, "wait_ms": 5000}),
            ))
            .await
            .expect("receive via a follower");
        assert_eq!(leased.status, 200, "{}", leased.body);
        let receipts: Vec<String> = leased.json()["messages"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["receipt"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        assert_eq!(receipts.len(), 5);
        let acked = cluster
            .client(followers[1 % followers.len()])
            .send(Request::json(
                Method::POST,
                "/v1/subscriptions/created-pull/ack",
                &json!({"receipts": receipts}),
            ))
            .await
            .expect("ack via a follower");
        assert_eq!(acked.json()["acked"], 5, "{}", acked.body);
    })
    .await;
}

fn tracing_phase(phase: &str) {
    eprintln!("t60: {phase}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_always_failing_webhook_leaves_one_dead_letter_each_then_redrive_delivers() {
    let cluster = Cluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    let receiver = failing_receiver(1.0).await;
    within(Duration::from_secs(60), async {
        publish(&cluster, "jobs", 20).await;
        subscribe(
            &cluster,
            "jobs-hook",
            subscription(
                "jobs",
                Some(&receiver.url()),
                json!({"max_attempts": 4, "backoff": {"initial_ms": 100, "max_ms": 1000}}),
            ),
        )
        .await;
        let dead = poll_until("20 dead letters", Duration::from_secs(20), || async {
            let page = ok(
                &cluster,
                Request::get("/admin/subscriptions/jobs-hook/dead?limit=100"),
            )
            .await;
            let dead = page["dead"].as_array().cloned().unwrap_or_default();
            if dead.len() == 20 {
                Ok(dead)
            } else {
                Err(format!("{} dead", dead.len()))
            }
        })
        .await
        .expect("dead letters");
        let ids: HashSet<&str> = dead.iter().filter_map(|d| d["id"].as_str()).collect();
        assert_eq!(ids.len(), 20, "one dead letter per message");
        for d in &dead {
            assert_eq!(d["attempts"].as_array().map(Vec::len), Some(4), "{d}");
            assert!(d["payload"]["n"].is_number());
        }
        // Gaps between attempts grow: backoff doubles, and equal jitter keeps each gap within
        // [d/2, d] of its doubling base d.
        let mut by_id: HashMap<String, Vec<i64>> = HashMap::new();
        for r in receiver.received() {
            by_id.entry(r.id).or_default().push(r.at_ms);
        }
        for (id, times) in &by_id {
            assert_eq!(times.len(), 4, "{id}");
            let gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
            assert!(
                gaps.windows(2).all(|g| g[1] + 30 >= g[0]),
                "{id}: gaps {gaps:?} should grow"
            );
            assert!(gaps[2] >= 180, "{id}: third gap {gaps:?}");
        }
        assert_eq!(stats(&cluster, "jobs-hook").await["dead"], 20);
        receiver.set_options(ReceiverOptions::default());
        let redriven = ok(
            &cluster,
            Request::json(
                Method::POST,
                "/admin/subscriptions/jobs-hook/dead/redrive",
                &json!({}),
            ),
        )
        .await;
        assert_eq!(redriven["redriven"], 20);
        poll_until(
            "redriven messages delivered",
            Duration::from_secs(10),
            || async {
                let n = receiver.acked_ids().len();
                if n == 20 {
                    Ok(())
                } else {
                    Err(format!("{n} acked"))
                }
            },
        )
        .await
        .expect("redrive delivers");
        // The receiver answered; the acks reach the committed stats in the scheduler's next batch.
        poll_until(
            "stats show the redrive",
            Duration::from_secs(10),
            || async {
                let s = stats(&cluster, "jobs-hook").await;
                let seen = (
                    s["dead"].clone(),
                    s["delivered"].clone(),
                    s["backlog"].clone(),
                );
                if seen == (json!(0), json!(20), json!(0)) {
                    Ok(())
                } else {
                    Err(format!("dead, delivered, backlog = {seen:?}"))
                }
            },
        )
        .await
        .expect("stats settle after the redrive");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_rate_per_sec_paces_a_burst() {
    let cluster = Cluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    let receiver = Receiver::start(0, ReceiverOptions::default())
        .await
        .expect("receiver");
    within(Duration::from_secs(60), async {
        subscribe(
            &cluster,
            "paced",
            subscription(
                "burst",
                Some(&receiver.url()),
                json!({"rate_per_sec": 100, "max_in_flight": 256}),
            ),
        )
        .await;
        // 1000 messages at once: 16 concurrent publishers.
        let publishers = (0..16).map(|p| {
            let cluster = &cluster;
            async move {
                for i in 0..1000 / 16 + 1 {
                    let n = p * 100 + i;
                    if (p + 16 * i) >= 1000 {
                        break;
                    }
                    ok(
                        cluster,
                        Request::json(
                            Method::POST,
                            "/v1/topics/burst/messages",
                            &json!({"payload": {"n": n}}),
                        ),
                    )
                    .await;
                }
                String::new()
            }
        });
        futures::future::join_all(publishers).await;
        poll_until("1000 delivered", Duration::from_secs(20), || async {
            let n = receiver.acked_ids().len();
            if n >= 1000 {
                Ok(())
            } else {
                Err(format!("{n} delivered"))
            }
        })
        .await
        .expect("delivered");
        let times: Vec<i64> = receiver.received().iter().map(|r| r.at_ms).collect();
        let span_ms = times.iter().max().unwrap_or(&0) - times.iter().min().unwrap_or(&0);
        let rate = 999.0 * 1000.0 / span_ms.max(1) as f64;
        eprintln!("t60: 1000 deliveries over {span_ms} ms: {rate:.1}/s");
        assert!(
            (85.0..=115.0).contains(&rate),
            "rate {rate:.1}/s should be 100 within 15%"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_pull_leases_come_back_after_visibility_and_acked_never_do() {
    let cluster = Cluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    within(Duration::from_secs(30), async {
        subscribe(&cluster, "puller", subscription("pulled", None, json!({}))).await;
        publish(&cluster, "pulled", 10).await;
        let receive = |visibility_ms: u64, wait_ms: u64| {
            Request::json(
                Method::POST,
                "/v1/subscriptions/puller/receive",
                &json!({"max": 100, "wait_ms": wait_ms, "visibility_ms": visibility_ms}),
            )
        };
        let first = ok(&cluster, receive(1000, 2000)).await;
        let messages = first["messages"].as_array().cloned().unwrap_or_default();
        assert_eq!(messages.len(), 10);
        let (to_ack, to_drop) = messages.split_at(5);
        let receipts: Vec<&str> = to_ack
            .iter()
            .filter_map(|m| m["receipt"].as_str())
            .collect();
        let acked = ok(
            &cluster,
            Request::json(
                Method::POST,
                "/v1/subscriptions/puller/ack",
                &json!({"receipts": receipts}),
            ),
        )
        .await;
        assert_eq!(acked["acked"], 5);
        // Nothing is visible until the leases end.
        let early = ok(&cluster, receive(1000, 0)).await;
        assert_eq!(early["messages"].as_array().map(Vec::len), Some(0));
        let again = poll_until(
            "unacked messages come back",
            Duration::from_secs(5),
            || async {
                let r = ok(&cluster, receive(10_000, 2000)).await;
                let m = r["messages"].as_array().cloned().unwrap_or_default();
                if m.is_empty() {
                    Err("none yet".to_string())
                } else {
                    Ok(m)
                }
            },
        )
        .await
        .expect("redelivered");
        let back: HashSet<&str> = again.iter().filter_map(|m| m["id"].as_str()).collect();
        let dropped: HashSet<&str> = to_drop.iter().filter_map(|m| m["id"].as_str()).collect();
        assert_eq!(back, dropped, "exactly the unacked ones come back");
        assert!(again.iter().all(|m| m["attempt"] == 2));
        let receipts: Vec<&str> = again.iter().filter_map(|m| m["receipt"].as_str()).collect();
        ok(
            &cluster,
            Request::json(
                Method::POST,
                "/v1/subscriptions/puller/ack",
                &json!({"receipts": receipts}),
            ),
        )
        .await;
        let none = ok(&cluster, receive(1000, 1500)).await;
        assert_eq!(none["messages"].as_array().map(Vec::len), Some(0));
    })
    .await;
}

/// An `ack` is answered only once it is committed: with both followers killed the leader can
/// still lease and decide, but its acks cannot reach a quorum, so none may be answered as done
/// (it would be lost to the next leader, and the messages delivered again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_an_ack_without_a_quorum_is_not_answered_as_done() {
    let mut cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("cluster");
    within(Duration::from_secs(60), async {
        subscribe(&cluster, "acker", subscription("acked", None, json!({}))).await;
        publish(&cluster, "acked", 10).await;
        let leader = cluster.wait_for_leader().await.expect("leader");
        let client = cluster.client(leader).clone();
        let leased = client
            .send(Request::json(
                Method::POST,
                "/v1/subscriptions/acker/receive",
                &json!({"max": 100, "wait_ms": 2000, "visibility_ms": 30_000}),
            ))
            .await
            .expect("receive");
        assert!(
            leased.is_success(),
            "receive: {} {}",
            leased.status,
            leased.body
        );
        let receipts: Vec<String> = leased.json()["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|m| m["receipt"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(receipts.len(), 10);
        for follower in cluster.followers().await.expect("followers") {
            cluster.kill(follower).expect("kill");
        }
        let ack = Request::json(
            Method::POST,
            "/v1/subscriptions/acker/ack",
            &json!({"receipts": receipts}),
        );
        // No answer while there is no quorum, or a refusal: either way not acknowledged.
        if let Ok(Ok(answer)) = tokio::time::timeout(Duration::from_secs(3), client.send(ack)).await
        {
            assert!(
                !answer.is_success(),
                "an ack that cannot commit was answered {} {}",
                answer.status,
                answer.body
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_refunds_end_refunded_or_refund_failed_and_redrive_refunds() {
    let provider = Receiver::start(
        0,
        ReceiverOptions {
            fail_first: 3,
            ..Default::default()
        },
    )
    .await
    .expect("provider");
    let options = ClusterOptions {
        extra_args: vec!["--payment-refund-url".into(), provider.url()],
        ..Default::default()
    };
    let cluster = Cluster::start(1, options).await.expect("cluster");
    within(Duration::from_secs(40), async {
        subscribe(
            &cluster,
            "payment.refund",
            subscription(
                "order.refund_requested",
                Some(&provider.url()),
                json!({"max_attempts": 4, "backoff": {"initial_ms": 100, "max_ms": 400}}),
            ),
        )
        .await;
        let ids = paid_orders(&cluster, 2).await;
        let order = |id: String| {
            let cluster = &cluster;
            async move { ok(cluster, Request::get(format!("/v1/orders/{id}"))).await }
        };
        let refund = |id: &str| {
            Request::json(
                Method::POST,
                format!("/v1/orders/{id}/refund"),
                &json!({"reason": "damaged"}),
            )
        };
        let r = cluster
            .send_to_any(refund(&ids[0]))
            .await
            .expect("an answer");
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.json()["state"], "refund_requested");
        poll_until(
            "refunded after three failures",
            Duration::from_secs(10),
            || async {
                let o = order(ids[0].clone()).await;
                if o["state"] == "refunded" {
                    Ok(())
                } else {
                    Err(o["state"].to_string())
                }
            },
        )
        .await
        .expect("refunded");
        let calls = provider.received();
        assert_eq!(calls.len(), 4);
        assert!(calls
            .iter()
            .all(|c| c.idempotency_key.as_deref() == Some(ids[0].as_str())));

        provider.set_options(ReceiverOptions {
            fail_rate: 1.0,
            ..Default::default()
        });
        cluster
            .send_to_any(refund(&ids[1]))
            .await
            .expect("an answer");
        poll_until(
            "refund_failed after max_attempts",
            Duration::from_secs(10),
            || async {
                let o = order(ids[1].clone()).await;
                if o["state"] == "refund_failed" {
                    Ok(())
                } else {
                    Err(o["state"].to_string())
                }
            },
        )
        .await
        .expect("refund_failed");
        let dead = ok(
            &cluster,
            Request::get("/admin/subscriptions/payment.refund/dead"),
        )
        .await;
        assert_eq!(dead["dead"].as_array().map(Vec::len), Some(1));
        assert_eq!(dead["dead"][0]["key"], ids[1].as_str());
        provider.set_options(ReceiverOptions::default());
        ok(
            &cluster,
            Request::json(
                Method::POST,
                "/admin/subscriptions/payment.refund/dead/redrive",
                &json!({}),
            ),
        )
        .await;
        poll_until(
            "refunded after redrive",
            Duration::from_secs(10),
            || async {
                let o = order(ids[1].clone()).await;
                if o["state"] == "refunded" {
                    Ok(())
                } else {
                    Err(o["state"].to_string())
                }
            },
        )
        .await
        .expect("refunded by redrive");
        for topic in [
            "order.refund_requested",
            "order.refunded",
            "order.refund_failed",
        ] {
            let changes = ok(&cluster, Request::get("/v1/changes?after=0&limit=10000")).await;
            let published = changes["changes"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter(|c| c["table"] == "messages" && c["after"]["topic"] == topic)
                        .count()
                })
                .unwrap_or(0);
            assert!(published >= 1, "{topic} published");
        }
    })
    .await;
}

/// The provider makes the refund but its answer is lost (held past the push timeout), then
/// refuses every retry: orderq asks the provider (`[payment] refund_status_url`), hears
/// "refunded", and records the order `refunded`, never `refund_failed` (issue 13, seed 5150).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_a_refund_whose_answer_was_lost_is_looked_up_and_recorded_refunded() {
    let provider = Receiver::start(
        0,
        ReceiverOptions {
            lose_first: 1,
            fail_rate: 1.0,
            ..Default::default()
        },
    )
    .await
    .expect("provider");
    let options = ClusterOptions {
        extra_args: vec!["--payment-refund-url".into(), provider.url()],
        // The environment rather than a flag: a binary without the lookup still starts.
        env: vec![(
            "ORDERQ_PAYMENT_REFUND_STATUS_URL".into(),
            provider.status_url(),
        )],
        ..Default::default()
    };
    let cluster = Cluster::start(1, options).await.expect("cluster");
    within(Duration::from_secs(40), async {
        let mut refunds = subscription(
            "order.refund_requested",
            Some(&provider.url()),
            json!({"max_attempts": 3, "backoff": {"initial_ms": 100, "max_ms": 200}}),
        );
        refunds["push"]["timeout_ms"] = json!(300);
        subscribe(&cluster, "payment.refund", refunds).await;
        let ids = paid_orders(&cluster, 1).await;
        tracing_phase("--- refund: the provider makes it, the answer is lost, retries fail");
        let r = cluster
            .send_to_any(Request::json(
                Method::POST,
                format!("/v1/orders/{}/refund", ids[0]),
                &json!({"reason": "damaged"}),
            ))
            .await
            .expect("an answer");
        assert_eq!(r.status, 202, "{}", r.body);
        let state = poll_until("the refund settled", Duration::from_secs(20), || async {
            let o = ok(&cluster, Request::get(format!("/v1/orders/{}", ids[0]))).await;
            match o["state"].as_str() {
                Some(s @ ("refunded" | "refund_failed")) => Ok(s.to_owned()),
                other => Err(format!("{other:?}")),
            }
        })
        .await
        .expect("refunded or refund_failed");
        let calls = provider.received();
        assert!(
            calls[0].acked,
            "the provider made the refund on the first call"
        );
        assert_eq!(
            state,
            "refunded",
            "the provider made the refund (its answer was lost), yet the order is {state}; \
             provider calls: {:?}",
            calls
                .iter()
                .map(|c| (c.attempt, c.acked))
                .collect::<Vec<_>>()
        );
        let dead = ok(
            &cluster,
            Request::get("/admin/subscriptions/payment.refund/dead"),
        )
        .await;
        assert_eq!(dead["dead"].as_array().map(Vec::len), Some(0), "{dead}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_ordered_by_key_delivers_each_key_in_order_and_delays_hold() {
    let cluster = Cluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    let receiver = failing_receiver(0.3).await;
    within(Duration::from_secs(40), async {
        subscribe(
            &cluster,
            "ordered",
            subscription(
                "keyed",
                Some(&receiver.url()),
                json!({"ordered_by_key": true, "max_attempts": 50, "backoff": {"initial_ms": 20, "max_ms": 100}}),
            ),
        )
        .await;
        publish(&cluster, "keyed", 42).await;
        poll_until("42 delivered", Duration::from_secs(20), || async {
            let n = receiver.acked_ids().len();
            if n == 42 { Ok(()) } else { Err(format!("{n} delivered")) }
        })
        .await
        .expect("delivered");
        // One key's calls (every attempt) never go back to an earlier message: a message is
        // sent only once every earlier message of its key was acknowledged.
        let mut last: HashMap<String, i64> = HashMap::new();
        for r in receiver.received() {
            let key = r.body["key"].as_str().unwrap_or_default().to_string();
            let n = r.body["payload"]["n"].as_i64().unwrap_or(-1);
            let previous = last.insert(key.clone(), n).unwrap_or(-1);
            assert!(n >= previous, "key {key}: message {n} after {previous}");
        }

        let published = ok(
            &cluster,
            Request::json(
                Method::POST,
                "/v1/topics/keyed/messages",
                &json!({"key": "late", "payload": {"n": 100}, "delay_secs": 2}),
            ),
        )
        .await;
        let deliver_at = published["deliver_at"].as_str().and_then(cluster::epoch_ms).expect("deliver_at");
        poll_until("the delayed message delivered", Duration::from_secs(10), || async {
            let got = receiver.acked_ids().len();
            if got == 43 { Ok(()) } else { Err(format!("{got} delivered")) }
        })
        .await
        .expect("delayed delivered");
        let first_call = receiver
            .received()
            .iter()
            .filter(|r| r.body["payload"]["n"] == 100)
            .map(|r| r.at_ms)
            .min()
            .unwrap_or(0);
        assert!(first_call >= deliver_at, "delivered {} ms early", deliver_at - first_call);
    })
    .await;
}

/// Publishes `n` messages to `topic` with `delay_secs`, 100 at a time; answers their
/// `deliver_at` times by message id.
async fn publish_delayed(
    cluster: &Cluster,
    topic: &str,
    n: usize,
    delay_secs: u64,
) -> HashMap<String, i64> {
    let mut deliver_at = HashMap::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let calls = chunk.iter().map(|i| async move {
            ok(
                cluster,
                Request::json(
                    Method::POST,
                    format!("/v1/topics/{topic}/messages"),
                    &json!({"key": format!("d{i}"), "payload": {"n": i}, "delay_secs": delay_secs}),
                ),
            )
            .await
        });
        for published in futures::future::join_all(calls).await {
            let id = published["id"].as_str().unwrap_or_default().to_string();
            let at = published["deliver_at"]
                .as_str()
                .and_then(cluster::epoch_ms)
                .expect("deliver_at");
            deliver_at.insert(id, at);
        }
    }
    deliver_at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t60_delayed_messages_wait_in_the_wheel_without_holding_up_the_rest() {
    let mut cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("cluster");
    let receiver = failing_receiver(0.3).await;
    within(Duration::from_secs(150), async {
        // More messages delayed by an hour than the scheduler holds per group, ahead of
        // everything else in the topic: held in memory, they would stall the messages behind.
        let hour = publish_delayed(&cluster, "wheel", 25_000, 3_600).await;
        let soon = publish_delayed(&cluster, "wheel", 5, 4).await;
        subscribe(
            &cluster,
            "wheel",
            subscription(
                "wheel",
                Some(&receiver.url()),
                json!({"max_attempts": 50, "backoff": {"initial_ms": 200, "max_ms": 1000}}),
            ),
        )
        .await;
        publish(&cluster, "wheel", 20).await;
        let timers = ok(&cluster, Request::get("/admin/timers")).await;
        let pending = timers["pending"].as_u64().unwrap_or(0);
        assert!(pending >= 25_005, "pending timers: {timers}");

        // The due ones arrive (30% of calls fail: their retries go through the wheel too).
        poll_until(
            "the 20 undelayed messages delivered",
            Duration::from_secs(20),
            || async {
                let n = receiver.acked_ids().len();
                if n >= 20 {
                    Ok(())
                } else {
                    Err(format!("{n} delivered"))
                }
            },
        )
        .await
        .expect("undelayed messages delivered behind 25,000 delayed ones");

        // The leader dies before the short delays are due; the new leader's wheel fires them.
        let leader = cluster.wait_for_leader().await.expect("leader");
        cluster.kill(leader).expect("kill leader");
        poll_until(
            "the delayed messages delivered",
            Duration::from_secs(30),
            || async {
                let acked = receiver.acked_ids();
                let n = soon.keys().filter(|id| acked.contains(*id)).count();
                if n == soon.len() {
                    Ok(())
                } else {
                    Err(format!("{n} of {} delivered", soon.len()))
                }
            },
        )
        .await
        .expect("delayed messages delivered after a leader kill");
        for r in receiver.received() {
            if let Some(at) = soon.get(&r.id) {
                assert!(r.at_ms >= *at, "{} called {} ms early", r.id, at - r.at_ms);
            }
            assert!(
                !hour.contains_key(&r.id),
                "{} delivered an hour early",
                r.id
            );
        }
        assert_eq!(receiver.acked_ids().len(), 25, "exactly the due messages");
    })
    .await;
}

/// Offsets of `topic`'s messages deleted so far, read from the change stream of `client`.
async fn deleted_offsets(client: &NodeClient, topic: &str) -> Result<Vec<u64>, String> {
    let mut after = None;
    let mut deleted = Vec::new();
    loop {
        let page = client
            .changes(after, 1000, 0)
            .await
            .map_err(|e| e.to_string())?;
        if page.changes.is_empty() {
            return Ok(deleted);
        }
        for c in &page.changes {
            if c.table == "messages" && c.op == "delete" && c.before["topic"] == topic {
                deleted.extend(c.before["offset"].as_u64());
            }
        }
        after = Some(page.next);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_retention_removes_settled_messages_only() {
    let cluster = Cluster::start(
        1,
        ClusterOptions {
            extra_args: vec!["--queue-retention-secs".into(), "1".into()],
            ..ClusterOptions::default()
        },
    )
    .await
    .expect("cluster");
    within(Duration::from_secs(60), async {
        subscribe(&cluster, "keeper", subscription("kept", None, json!({}))).await;
        publish(&cluster, "kept", 20).await;
        let receive = Request::json(
            Method::POST,
            "/v1/subscriptions/keeper/receive",
            &json!({"max": 10, "wait_ms": 2000, "visibility_ms": 30000}),
        );
        let first = ok(&cluster, receive.clone()).await;
        let receipts: Vec<Value> = first["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["receipt"].clone())
            .collect();
        assert_eq!(receipts.len(), 10);
        ok(
            &cluster,
            Request::json(
                Method::POST,
                "/v1/subscriptions/keeper/ack",
                &json!({"receipts": receipts}),
            ),
        )
        .await;

        // The ten settled messages go once older than a second; the change stream shows it.
        let client = cluster.client(1).clone();
        let deleted = poll_until(
            "settled messages removed",
            Duration::from_secs(20),
            || async {
                let deleted = deleted_offsets(&client, "kept").await?;
                if deleted.len() >= 10 {
                    Ok(deleted)
                } else {
                    Err(format!("{} removed", deleted.len()))
                }
            },
        )
        .await
        .expect("retention removes settled messages");
        assert_eq!(
            deleted,
            (1..=10).collect::<Vec<u64>>(),
            "only the settled ones"
        );

        // The unsettled ones are all still there to be delivered.
        let rest = ok(&cluster, receive).await;
        let numbers: Vec<i64> = rest["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["payload"]["n"].as_i64())
            .collect();
        assert_eq!(numbers, (10..20).collect::<Vec<i64>>());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_a_removed_group_stops_at_once() {
    let cluster = Cluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    let receiver = failing_receiver(0.0).await;
    within(Duration::from_secs(60), async {
        let pushed = subscription("rm", Some(&receiver.url()), json!({}));
        subscribe(&cluster, "pushed", pushed.clone()).await;
        publish(&cluster, "rm", 5).await;
        subscribe(
            &cluster,
            "pulled",
            subscription("rm", None, json!({"start": "latest"})),
        )
        .await;
        poll_until("5 pushed", Duration::from_secs(10), || async {
            let n = receiver.acked_ids().len();
            if n == 5 {
                Ok(())
            } else {
                Err(format!("{n} pushed"))
            }
        })
        .await
        .expect("delivered");

        // A receive on the pulled group, waiting or not yet arrived when the group goes, is
        // answered 404 rather than left to its wait.
        let client = cluster.client(1).clone();
        let started = Instant::now();
        let parked = tokio::spawn(async move {
            client
                .send(Request::json(
                    Method::POST,
                    "/v1/subscriptions/pulled/receive",
                    &json!({"max": 10, "wait_ms": 20000}),
                ))
                .await
        });
        for group in ["pulled", "pushed"] {
            let removed = ok(
                &cluster,
                Request::json(
                    Method::DELETE,
                    format!("/admin/subscriptions/{group}"),
                    &json!({}),
                ),
            )
            .await;
            assert_eq!(removed["removed"], true);
        }
        let answer = parked.await.expect("task").expect("an answer");
        assert_eq!(answer.status, 404, "{}", answer.body);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "answered before its wait ended"
        );

        // Messages published after the removal never reach the removed push group; a group
        // created again under the name starts where it is told to.
        let before = receiver.acked_ids();
        for i in 0..5 {
            ok(
                &cluster,
                Request::json(
                    Method::POST,
                    "/v1/topics/rm/messages",
                    &json!({"key": "after", "payload": {"after": i}}),
                ),
            )
            .await;
        }
        let mut again = pushed;
        again["start"] = json!("latest");
        subscribe(&cluster, "pushed", again).await;
        let marker = ok(
            &cluster,
            Request::json(
                Method::POST,
                "/v1/topics/rm/messages",
                &json!({"payload": "marker"}),
            ),
        )
        .await;
        let marker_id = marker["id"].as_str().unwrap_or_default().to_string();
        poll_until("the marker pushed", Duration::from_secs(10), || async {
            if receiver.acked_ids().contains(&marker_id) {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        })
        .await
        .expect("the re-created group delivers");
        let new: Vec<String> = receiver.acked_ids().difference(&before).cloned().collect();
        assert_eq!(
            new,
            vec![marker_id],
            "only what came after the group was created again"
        );
    })
    .await;
}
