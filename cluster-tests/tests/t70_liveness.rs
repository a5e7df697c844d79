//! No single request, command or entry can stall, crash or fool the cluster: a leader cut off
//! from its followers stops calling webhooks and says it is not ready; a membership change that
//! cannot work is refused instead of bricking the node; a command larger than an entry may be is
//! refused with 413; a redrive of more letters than one step moves completes in steps; and a
//! flood of large publishes neither starves a small order nor costs the leader its office.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cluster::{
    holds, poll_until, Cluster, ClusterOptions, NodeClient, Receiver, ReceiverOptions, Request,
};
use reqwest::Method;
use serde_json::{json, Value};

async fn ok(cluster: &Cluster, request: Request) -> Value {
    let what = format!("{} {}", request.method, request.path);
    let r = cluster.send_to_any(request).await.expect("an answer");
    assert!(r.is_success(), "{what}: {} {}", r.status, r.body);
    r.json()
}

async fn subscribe_push(cluster: &Cluster, group: &str, topic: &str, url: &str, extra: Value) {
    let mut body = json!({"topic": topic, "push": {"url": url, "timeout_ms": 2000}});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
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
                &json!({"key": format!("k{i}"), "payload": {"n": i}}),
            )
            .idempotency_key(&format!("{topic}-{i}")),
        )
        .await;
    }
}

/// The group's figures from `GET /admin/subscriptions` on `node`.
async fn group_stats(cluster: &Cluster, node: u64, group: &str) -> Option<Value> {
    let r = cluster
        .client(node)
        .send(Request::get("/admin/subscriptions?consistency=local"))
        .await
        .ok()?;
    r.json()["subscriptions"]
        .as_array()?
        .iter()
        .find(|s| s["group"] == group)
        .cloned()
}

fn signal(cluster: &Cluster, id: u64, signal: libc::c_int) {
    let pid = cluster.pid(id).expect("the node runs");
    // SAFETY: `pid` is a child process this fixture started and still owns.
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(sent, 0, "signal {signal} to node {id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_stops_calling_webhooks_and_is_not_ready() {
    let cluster = Cluster::start(3, ClusterOptions::default()).await.unwrap();
    let receiver = Receiver::start(0, ReceiverOptions::default())
        .await
        .unwrap();
    let leader = cluster.wait_for_leader().await.unwrap();
    let followers = cluster.followers().await.unwrap();

    eprintln!("--- a paced group with a backlog the leader delivers from memory");
    publish(&cluster, "ticks", 120).await;
    subscribe_push(
        &cluster,
        "paced",
        "ticks",
        &receiver.url(),
        json!({"rate_per_sec": 10, "start": "earliest"}),
    )
    .await;
    poll_until("the first deliveries", Duration::from_secs(10), || async {
        holds(receiver.received().len() >= 5)
    })
    .await
    .unwrap();

    eprintln!("--- pause both followers: the leader is cut off from its quorum");
    for id in &followers {
        signal(&cluster, *id, libc::SIGSTOP);
    }
    let paused_at = Instant::now();
    let leader_client = cluster.client(leader).clone();
    poll_until(
        "the old leader's /readyz to answer 503",
        Duration::from_secs(2),
        || async { holds(!leader_client.is_ready().await) },
    )
    .await
    .unwrap();
    // Give the services the rest of the two seconds to stop, then watch that nothing is called.
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(paused_at.elapsed())).await;
    let calls_then = receiver.received().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls_after = receiver.received().len();

    eprintln!("--- resume: delivery goes on to the end");
    for id in &followers {
        signal(&cluster, *id, libc::SIGCONT);
    }
    assert_eq!(
        calls_after, calls_then,
        "the cut-off leader kept calling the webhook"
    );
    poll_until(
        "every message delivered",
        Duration::from_secs(60),
        || async {
            let acked: HashSet<String> = receiver.acked_ids();
            holds(acked.len() == 120)
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn membership_changes_that_cannot_work_are_refused_and_the_node_stays_up() {
    let cluster = Cluster::start(1, ClusterOptions::default()).await.unwrap();
    let node = cluster.client(1);
    let status = cluster.status(1).await.unwrap();
    let me = &status.nodes[0];

    eprintln!("--- a learner at the node's own addresses under a new id");
    let r = node
        .send(Request::json(
            Method::POST,
            "/admin/cluster/learners",
            &json!({"node_id": 1999, "api_addr": me.api_addr, "raft_addr": me.raft_addr}),
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.error_code().as_deref(), Some("invalid_state"));

    eprintln!("--- a voter that is not a member");
    let r = node
        .send(Request::json(
            Method::POST,
            "/admin/cluster/voters",
            &json!({"voters": [1, 77]}),
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);

    eprintln!("--- the node still serves, with the membership it had");
    let sku = json!({"stock": 5, "price_cents": 100});
    ok(&cluster, Request::json(Method::PUT, "/admin/skus/M", &sku)).await;
    cluster.ensure_running().unwrap();
    let after = cluster.status(1).await.unwrap();
    assert_eq!(after.voters, vec![1]);
    assert!(after.learners.is_empty(), "{after:?}");
}

#[tokio::test]
async fn a_command_larger_than_an_entry_is_refused_with_413_and_stores_nothing() {
    let options = ClusterOptions {
        extra_args: vec!["--max-batch-bytes".into(), "8192".into()],
        ..Default::default()
    };
    let cluster = Cluster::start(1, options).await.unwrap();
    let big = "x".repeat(20_000);
    let r = cluster
        .client(1)
        .send(Request::json(
            Method::POST,
            "/v1/topics/big/messages",
            &json!({"key": "k", "payload": big}),
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.error_code().as_deref(), Some("payload_too_large"));
    let small = ok(
        &cluster,
        Request::json(
            Method::POST,
            "/v1/topics/big/messages",
            &json!({"key": "k", "payload": "small"}),
        ),
    )
    .await;
    assert_eq!(small["offset"], 1, "the refused publish took no offset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_of_more_letters_than_one_step_completes() {
    const LETTERS: usize = 40;
    let options = ClusterOptions {
        extra_args: vec!["--redrive-step".into(), "7".into()],
        ..Default::default()
    };
    let cluster = Cluster::start(3, options).await.unwrap();
    let receiver = Receiver::start(
        0,
        ReceiverOptions {
            fail_rate: 1.0,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    subscribe_push(
        &cluster,
        "fails",
        "letters",
        &receiver.url(),
        json!({"max_attempts": 1, "start": "earliest"}),
    )
    .await;
    publish(&cluster, "letters", LETTERS).await;
    let leader = cluster.wait_for_leader().await.unwrap();
    poll_until(
        "every message a dead letter",
        Duration::from_secs(60),
        || async {
            let stats = group_stats(&cluster, leader, "fails").await;
            holds(stats.is_some_and(|s| s["dead"] == LETTERS))
        },
    )
    .await
    .unwrap();

    eprintln!("--- the receiver recovers; redrive all, in steps of 7");
    receiver.set_options(ReceiverOptions::default());
    let redriven = ok(
        &cluster,
        Request::json(
            Method::POST,
            "/admin/subscriptions/fails/dead/redrive",
            &json!({}),
        ),
    )
    .await;
    assert_eq!(redriven["redriven"], LETTERS);
    poll_until(
        "every message delivered",
        Duration::from_secs(60),
        || async { holds(receiver.acked_ids().len() == LETTERS) },
    )
    .await
    .unwrap();
    cluster.ensure_running().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_publishes_neither_starve_an_order_nor_cost_the_leader_its_office() {
    const PUBLISHES: usize = 300;
    let cluster = Cluster::start(3, ClusterOptions::default()).await.unwrap();
    let leader = cluster.wait_for_leader().await.unwrap();
    let term = cluster.status(leader).await.unwrap().term;
    ok(
        &cluster,
        Request::json(
            Method::PUT,
            "/admin/skus/S",
            &json!({"stock": 10, "price_cents": 100}),
        ),
    )
    .await;

    eprintln!("--- {PUBLISHES} concurrent publishes of ~1 MiB");
    let payload = "p".repeat(1_000_000);
    // Moving 300 MiB through three nodes on one machine takes a while: wait for every answer.
    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .no_proxy()
        .build()
        .unwrap();
    let client = NodeClient::with_http(cluster.client(leader).base(), None, patient);
    let publishes: Vec<_> = (0..PUBLISHES)
        .map(|i| {
            let client = client.clone();
            let body = json!({"key": format!("k{i}"), "payload": payload});
            tokio::spawn(async move {
                client
                    .send(Request::json(
                        Method::POST,
                        "/v1/topics/bulk/messages",
                        &body,
                    ))
                    .await
                    .map(|r| r.status)
            })
        })
        .collect();

    eprintln!("--- meanwhile a small order commits within 10 s");
    let started = Instant::now();
    let order = cluster
        .client(leader)
        .send(Request::json(
            Method::POST,
            "/v1/orders",
            &json!({"user_id": "u1", "items": [{"sku": "S", "qty": 1}]}),
        ))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(order.status, 201, "{}", order.body);
    assert!(took < Duration::from_secs(10), "the order took {took:?}");

    let mut statuses = Vec::new();
    for publish in publishes {
        statuses.push(publish.await.unwrap().unwrap());
    }
    let accepted = statuses.iter().filter(|s| **s == 201).count();
    assert!(
        statuses.iter().all(|s| [201, 429].contains(s)),
        "publishes answered {statuses:?}"
    );
    assert!(accepted > 0, "no publish was accepted");
    eprintln!("--- the order took {took:?}; {accepted} of {PUBLISHES} publishes accepted");

    eprintln!("--- no election happened and the followers are in step");
    for id in cluster.ids() {
        let status = cluster.status(id).await.unwrap();
        assert_eq!(status.term, term, "node {id} moved to another term");
        assert_eq!(status.leader_id, Some(leader));
    }
    for id in cluster.ids() {
        cluster
            .wait_caught_up(id, Duration::from_secs(30))
            .await
            .unwrap();
    }
}

/// Two CPU-bound processes beside the nodes, stopped (by pid) when dropped.
struct BusyProcesses(Vec<std::process::Child>);

impl BusyProcesses {
    fn start(n: usize) -> Self {
        BusyProcesses(
            (0..n)
                .map(|_| {
                    std::process::Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .spawn()
                        .expect("start a busy process")
                })
                .collect(),
        )
    }
}

impl Drop for BusyProcesses {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_saturated_by_a_flash_sale_keeps_its_office() {
    const SALES: usize = 10;
    const CLIENTS: usize = 60;
    const PER_CLIENT: usize = 50;
    let cluster = Cluster::start(3, ClusterOptions::default()).await.unwrap();
    let leader = cluster.wait_for_leader().await.unwrap();
    let term = cluster.status(leader).await.unwrap().term;
    let _busy = BusyProcesses::start(2);
    let nodes = cluster.clients();
    for sale in 0..SALES {
        let sku = format!("sale-{sale}");
        ok(
            &cluster,
            Request::json(
                Method::PUT,
                format!("/admin/skus/{sku}"),
                &json!({"stock": CLIENTS * PER_CLIENT, "price_cents": 100}),
            ),
        )
        .await;
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..CLIENTS {
            let node = nodes[c % nodes.len()].clone();
            let sku = sku.clone();
            tasks.spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..PER_CLIENT {
                    let r = node
                        .send(Request::json(
                            Method::POST,
                            format!("/v1/seckill/{sku}"),
                            &json!({"user_id": format!("u{c}-{i}")}),
                        ))
                        .await;
                    statuses.push(r.map(|r| r.status).unwrap_or(0));
                }
                statuses
            });
        }
        let mut unavailable = 0;
        while let Some(statuses) = tasks.join_next().await {
            unavailable += statuses.unwrap().iter().filter(|s| **s == 503).count();
        }
        let now = cluster.status(leader).await.unwrap();
        eprintln!(
            "--- sale {sale}: {unavailable} answers 503, term {}",
            now.term
        );
        assert_eq!(unavailable, 0, "sale {sale} answered 503");
        assert_eq!(now.term, term, "sale {sale} cost the leader its office");
    }
}

fn epoch_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_on_time_while_clients_flood_past_the_queue_depth() {
    const ORDERS: usize = 10_000;
    const WRITERS: usize = 64;
    let options = ClusterOptions {
        extra_args: vec!["--queue-depth".into(), "32".into()],
        ..Default::default()
    };
    let cluster = Cluster::start(3, options).await.unwrap();
    let leader = cluster.wait_for_leader().await.unwrap();
    for sku in ["E", "F"] {
        ok(
            &cluster,
            Request::json(
                Method::PUT,
                format!("/admin/skus/{sku}"),
                &json!({"stock": 1_000_000, "price_cents": 100}),
            ),
        )
        .await;
    }

    eprintln!("--- {ORDERS} orders, all due in the same second");
    let due_ms = epoch_now_ms() + 25_000;
    let client = cluster.client(leader).clone();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let client = client.clone();
        writers.spawn(async move {
            let mut ids = Vec::new();
            for i in (w..ORDERS).step_by(WRITERS) {
                let pay_within_secs = ((due_ms - epoch_now_ms()) / 1000).max(1);
                let request = Request::json(
                    Method::POST,
                    "/v1/orders",
                    &json!({"user_id": format!("u{i}"), "items": [{"sku": "E", "qty": 1}],
                            "pay_within_secs": pay_within_secs}),
                )
                .idempotency_key(&format!("expiring-{i}"));
                loop {
                    let r = client.send(request.clone()).await.expect("an answer");
                    if r.status == 201 {
                        ids.push(r.json()["id"].as_str().unwrap_or_default().to_owned());
                        break;
                    }
                    assert_eq!(r.status, 429, "{}", r.body);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            ids
        });
    }
    let mut ids = Vec::new();
    while let Some(batch) = writers.join_next().await {
        ids.extend(batch.unwrap());
    }
    assert!(
        epoch_now_ms() < due_ms - 3_000,
        "creating the orders took too long to test their deadline"
    );

    eprintln!("--- a flood of creates past the queue depth around the deadline");
    let flood_until = due_ms + 4_000;
    let mut flood = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let client = client.clone();
        flood.spawn(async move {
            let mut refused = 0;
            while epoch_now_ms() < flood_until {
                let r = client
                    .send(Request::json(
                        Method::POST,
                        "/v1/orders",
                        &json!({"user_id": format!("flood{w}"), "items": [{"sku": "F", "qty": 1}]}),
                    ))
                    .await;
                refused += usize::from(matches!(r, Ok(r) if r.status == 429));
            }
            refused
        });
    }
    let mut refused = 0;
    while let Some(n) = flood.join_next().await {
        refused += n.unwrap();
    }
    assert!(refused > 0, "the flood never passed the queue depth");

    eprintln!("--- every order closed within a second of its deadline (p99)");
    let mut delays = Vec::with_capacity(ids.len());
    for id in &ids {
        let order = poll_until("the order to close", Duration::from_secs(30), || async {
            let order = cluster
                .client(leader)
                .get_order(id, true)
                .await
                .map_err(|e| e.to_string())?;
            match order.closed_at.clone() {
                Some(closed) => Ok((order, closed)),
                None => Err(format!("order {id} is {:?}", order.state)),
            }
        })
        .await
        .unwrap();
        let (order, closed) = order;
        let at = |t: &str| cluster::epoch_ms(t).expect("an RFC 3339 time");
        delays.push(at(&closed) - at(order.expires_at.as_deref().expect("expires_at")));
    }
    delays.sort_unstable();
    let p99 = delays[delays.len() * 99 / 100];
    eprintln!(
        "--- close delay p50 {} ms, p99 {p99} ms, max {} ms; {refused} flood writes refused",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    assert!(delays[0] >= 0, "an order closed before its deadline");
    assert!(p99 < 1_000, "timer lag p99 {p99} ms under a flood");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_cuts_forwarded_writes_too() {
    use cluster::chaos::proxy::LinkState;
    let (cluster, proxy) = cluster::chaos::run::start_cluster(11, Vec::new(), Vec::new(), None)
        .await
        .unwrap();
    let leader = cluster.wait_for_leader().await.unwrap();
    let followers = cluster.followers().await.unwrap();
    ok(
        &cluster,
        Request::json(
            Method::PUT,
            "/admin/skus/P",
            &json!({"stock": 10, "price_cents": 100}),
        ),
    )
    .await;
    let before = cluster.status(leader).await.unwrap().last_log_index;

    eprintln!("--- isolate the leader, then write through a follower that still names it");
    for id in &followers {
        proxy.set_both(leader, *id, LinkState::Down);
    }
    let follower = cluster.client(followers[0]).clone();
    let write = tokio::spawn(async move {
        follower
            .send(
                Request::json(
                    Method::POST,
                    "/v1/orders",
                    &json!({"user_id": "u1", "items": [{"sku": "P", "qty": 1}]}),
                )
                .idempotency_key("through-a-partition"),
            )
            .await
    });
    let reached = poll_until(
        "the isolated leader to append something",
        Duration::from_secs(3),
        || async {
            let status = cluster.status(leader).await.map_err(|e| e.to_string())?;
            holds(status.last_log_index != before)
        },
    )
    .await;
    assert!(
        reached.is_err(),
        "a write forwarded across the partition reached the isolated leader's log"
    );

    eprintln!("--- heal: the write was committed once or not at all");
    proxy.heal();
    let _ = write.await;
    cluster.wait_for_leader().await.unwrap();
    let orders: Value = ok(&cluster, Request::get("/v1/orders?user_id=u1")).await;
    assert!(orders["orders"].as_array().map_or(0, Vec::len) <= 1);
}

/// API-level forwarding (a follower sending a whole HTTP request on to the leader's API, as it
/// does for pull acks) crosses the harness's links too: with the leader isolated, an ack sent to a
/// follower that still names the old leader never reaches it, so the old leader appends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_cuts_api_forwarding_too() {
    use cluster::chaos::proxy::LinkState;
    let (cluster, proxy) = cluster::chaos::run::start_cluster(12, Vec::new(), Vec::new(), None)
        .await
        .unwrap();
    let leader = cluster.wait_for_leader().await.unwrap();
    let followers = cluster.followers().await.unwrap();
    ok(
        &cluster,
        Request::json(
            Method::PUT,
            "/admin/subscriptions/pulled",
            &json!({"topic": "pulled", "start": "earliest"}),
        ),
    )
    .await;
    ok(
        &cluster,
        Request::json(
            Method::POST,
            "/v1/topics/pulled/messages",
            &json!({"key": "k", "payload": {"n": 1}}),
        ),
    )
    .await;
    let receipt = poll_until(
        "a lease from the leader",
        Duration::from_secs(10),
        || async {
            let r = cluster
                .client(leader)
                .send(Request::json(
                    Method::POST,
                    "/v1/subscriptions/pulled/receive",
                    &json!({"max": 1, "wait_ms": 1000, "visibility_ms": 60000}),
                ))
                .await
                .map_err(|e| e.to_string())?;
            r.json()["messages"][0]["receipt"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{} {}", r.status, r.body))
        },
    )
    .await
    .unwrap();
    let before = cluster.status(leader).await.unwrap().last_log_index;

    eprintln!("--- isolate the leader, then ack through a follower that still names it");
    for id in &followers {
        proxy.set_both(leader, *id, LinkState::Down);
    }
    let follower = cluster.client(followers[0]).clone();
    let ack = tokio::spawn(async move {
        follower
            .send(Request::json(
                Method::POST,
                "/v1/subscriptions/pulled/ack",
                &json!({"receipts": [receipt]}),
            ))
            .await
    });
    let reached = poll_until(
        "the isolated leader to append something",
        Duration::from_secs(3),
        || async {
            let status = cluster.status(leader).await.map_err(|e| e.to_string())?;
            holds(status.last_log_index != before)
        },
    )
    .await;
    assert!(
        reached.is_err(),
        "an ack forwarded to the leader's API across the partition reached its log"
    );
    proxy.heal();
    let _ = ack.await;
}
