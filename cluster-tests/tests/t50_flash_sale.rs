//! The flash sale on three real nodes: a flood never oversells and answers only `sold_out` or
//! `overloaded` past the stock; one user hammering every node gets one unit under a limit of
//! one; an unpaid order's unit comes back and every node sells it again; and killing the leader
//! in the middle of a sale still never sells more than the stock.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{
    poll_until, within, ApiResponse, Cluster, ClusterOptions, Error, NodeClient, Order, OrderState,
    SkuSettings,
};

/// How long a node may take to apply what the leader applied.
const CONVERGE: Duration = Duration::from_secs(30);

/// A label for an answer: `201`, `409 sold_out`, `no answer`, ...
fn outcome(answer: &cluster::Result<ApiResponse>) -> String {
    match answer {
        Ok(r) if r.is_success() => r.status.to_string(),
        Ok(r) => format!("{} {}", r.status, r.error_code().unwrap_or_default()),
        Err(e) => format!("no answer: {e}"),
    }
}

/// Waits until every running node reads `sku` locally with `available` and `reserved`.
async fn wait_sku_everywhere(cluster: &Cluster, sku: &str, available: i64, reserved: i64) {
    for id in cluster.running_ids() {
        poll_until(
            &format!("node {id} to show {sku} with {available} available, {reserved} reserved"),
            CONVERGE,
            || async {
                match cluster.get_sku(id, sku, true).await {
                    Ok(s) if s.available == available && s.reserved == reserved => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await
        .expect("the node converges");
    }
}

/// Loads the sale of `sku` (`stock` units at 100 cents, at most `per_user_limit` a user) through
/// the leader and waits until every node shows it; answers the leader.
async fn load_sale(cluster: &Cluster, sku: &str, stock: i64, per_user_limit: i64) -> u64 {
    let leader = cluster.wait_for_leader().await.expect("leader");
    let settings = SkuSettings {
        per_user_limit,
        ..SkuSettings::new(stock, 100)
    };
    cluster
        .put_sku(leader, sku, &settings)
        .await
        .expect("load the sale");
    wait_sku_everywhere(cluster, sku, stock, 0).await;
    leader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t50_a_flood_sells_exactly_the_stock() {
    let cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("start three nodes");
    within(Duration::from_secs(120), async {
        const SKU: &str = "t50-flood";
        const STOCK: i64 = 1_000;
        const CLIENTS: usize = 200;
        const PER_CLIENT: usize = 100;
        let leader = load_sale(&cluster, SKU, STOCK, 0).await;

        eprintln!(
            "--- {CLIENTS} clients send {} purchases over three nodes",
            CLIENTS * PER_CLIENT
        );
        let started = Instant::now();
        let nodes = cluster.clients();
        let mut tasks = tokio::task::JoinSet::new();
        for client in 0..CLIENTS {
            let node = nodes[client % nodes.len()].clone();
            tasks.spawn(async move {
                let mut seen: BTreeMap<String, u64> = BTreeMap::new();
                let mut orders = Vec::new();
                for i in 0..PER_CLIENT {
                    let user = format!("flood-{client}-{i}");
                    let answer = node.seckill(SKU, &user, Some(&user)).await;
                    if let Ok(r) = &answer {
                        if r.status == 201 {
                            orders.push(r.json()["id"].as_str().unwrap_or_default().to_owned());
                        }
                    }
                    *seen.entry(outcome(&answer)).or_default() += 1;
                }
                (seen, orders)
            });
        }
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        let mut orders = HashSet::new();
        while let Some(joined) = tasks.join_next().await {
            let (client_seen, client_orders) = joined.expect("client task");
            for (label, n) in client_seen {
                *seen.entry(label).or_default() += n;
            }
            orders.extend(client_orders);
        }
        eprintln!("--- answers after {:?}: {seen:?}", started.elapsed());
        assert_eq!(seen.get("201"), Some(&(STOCK as u64)), "answers: {seen:?}");
        assert_eq!(orders.len(), STOCK as usize, "every order id is distinct");
        for label in seen.keys() {
            assert!(
                ["201", "409 sold_out", "429 overloaded"].contains(&label.as_str()),
                "unexpected answer {label}: {seen:?}"
            );
        }

        eprintln!("--- every node shows 0 available and {STOCK} reserved; the orders exist");
        wait_sku_everywhere(&cluster, SKU, 0, STOCK).await;
        let reader = cluster.client(leader);
        for id in &orders {
            let order = reader
                .get_order(id, true)
                .await
                .expect("acknowledged order exists");
            assert_eq!(order.state, OrderState::PendingPayment);
            assert_eq!(order.items[0].qty, 1);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t51_one_user_through_every_node_gets_one_unit_under_a_limit_of_one() {
    let cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("start three nodes");
    within(Duration::from_secs(90), async {
        const SKU: &str = "t51-limited";
        let leader = load_sale(&cluster, SKU, 100, 1).await;

        eprintln!("--- one user sends 50 concurrent purchases through all three nodes");
        let nodes = cluster.clients();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..50 {
            let node = nodes[i % nodes.len()].clone();
            tasks.spawn(async move {
                let answer = node.seckill(SKU, "greedy", Some(&format!("t51-{i}"))).await;
                outcome(&answer)
            });
        }
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            *seen.entry(joined.expect("task")).or_default() += 1;
        }
        eprintln!("--- answers: {seen:?}");
        assert_eq!(seen.get("201"), Some(&1), "{seen:?}");
        assert_eq!(seen.get("409 limit_exceeded"), Some(&49), "{seen:?}");
        let orders = cluster
            .client(leader)
            .all_orders_of("greedy")
            .await
            .expect("list the user's orders");
        assert_eq!(orders.len(), 1, "exactly one order: {orders:?}");
        wait_sku_everywhere(&cluster, SKU, 99, 1).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t52_an_unpaid_order_gives_its_unit_back_on_every_node() {
    let options = ClusterOptions {
        extra_args: vec!["--seckill-pay-within-secs".into(), "2".into()],
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(3, options).await.expect("start three nodes");
    within(Duration::from_secs(120), async {
        const SKU: &str = "t52-last-unit";
        let leader = load_sale(&cluster, SKU, 1, 0).await;

        eprintln!("--- the only unit is bought with a 2 s pay window");
        let window = Duration::from_secs(2);
        let bought_at = Instant::now();
        let answer = cluster
            .seckill(leader, SKU, "slow-payer", Some("t52-buy"))
            .await;
        let bought = answer.expect("an answer");
        assert_eq!(bought.status, 201, "{}", bought.body);
        let order: Order = serde_json::from_str(&bought.body).expect("an order");
        wait_sku_everywhere(&cluster, SKU, 0, 1).await;
        for id in cluster.ids() {
            let late = cluster
                .seckill(id, SKU, "late", None)
                .await
                .expect("an answer");
            assert_eq!(
                (late.status, late.error_code().as_deref()),
                (409, Some("sold_out")),
                "node {id} knows the SKU is sold out"
            );
        }

        // The leader's time wheel closes the order at expires_at; until it is on this branch, a
        // pay attempt after the deadline closes it in apply. Either way it ends closed/expired.
        eprintln!("--- the order expires unpaid");
        let closed = poll_until("the unpaid order to close as expired", CONVERGE, || async {
            let now = cluster
                .get_order(&order.id, leader, false)
                .await
                .map_err(|e| e.to_string())?;
            if now.state == OrderState::Closed {
                return Ok(now);
            }
            // Pay only once the window has passed on this machine's clock (which the nodes share,
            // plus a margin), so the attempt can only find the order expired.
            if bought_at.elapsed() < window + Duration::from_millis(500) {
                return Err("the pay window is still open".to_owned());
            }
            match cluster.pay(leader, &order.id, "too-late").await {
                Err(Error::Api { code, .. }) if code == "invalid_state" => {
                    Err("closed by the late payment; reading it again".to_owned())
                }
                Ok(paid) => Ok(paid),
                Err(e) => Err(format!("still open: {e}")),
            }
        })
        .await
        .expect("the order closes");
        assert_eq!(
            closed.state,
            OrderState::Closed,
            "never paid after its deadline"
        );
        assert_eq!(closed.close_reason.as_deref(), Some("expired"));
        wait_sku_everywhere(&cluster, SKU, 1, 0).await;

        eprintln!("--- every node sells the released unit again");
        for id in cluster.ids() {
            let again = cluster
                .seckill(id, SKU, &format!("buyer-{id}"), None)
                .await
                .expect("an answer");
            assert_eq!(again.status, 201, "node {id}: {}", again.body);
            let order: Order = serde_json::from_str(&again.body).expect("an order");
            wait_sku_everywhere(&cluster, SKU, 0, 1).await;
            cluster.cancel(id, &order.id).await.expect("cancel");
            wait_sku_everywhere(&cluster, SKU, 1, 0).await;
        }
    })
    .await;
}

/// What the sale's clients saw, shared with the test.
#[derive(Default)]
struct SaleLog {
    /// Every order a client got a 201 for.
    acked: Mutex<Vec<Order>>,
    /// How many 201s so far.
    acks: AtomicU64,
    /// Answers that are neither success, sold_out nor retryable.
    unexpected: Mutex<Vec<String>>,
}

/// One client: buys with a fresh key per purchase, retrying that key over the nodes while the
/// answer is retryable, until the SKU is sold out or `stop` is set.
async fn buyer(client: usize, nodes: Vec<NodeClient>, log: Arc<SaleLog>, stop: Arc<AtomicBool>) {
    const USERS: usize = 100;
    let mut node = client;
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let key = format!("t53-{client}-{i}");
        let user = format!("t53-user-{}", (client * 31 + i) % USERS);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = nodes[node % nodes.len()]
                .seckill(SKU53, &user, Some(&key))
                .await;
            match &answer {
                Ok(r) if r.status == 201 => {
                    if let Ok(order) = serde_json::from_str::<Order>(&r.body) {
                        log.acked.lock().expect("log").push(order);
                    }
                    log.acks.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Ok(r) if r.error_code().as_deref() == Some("sold_out") => return,
                Ok(r) if !matches!(r.status, 429 | 502 | 503 | 504) => {
                    log.unexpected.lock().expect("log").push(outcome(&answer));
                    break;
                }
                _ => {
                    node += 1;
                    if Instant::now() > deadline {
                        log.unexpected.lock().expect("log").push(outcome(&answer));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

const SKU53: &str = "t53-contested";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t53_killing_the_leader_mid_sale_never_oversells() {
    let mut cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("start three nodes");
    const STOCK: i64 = 3_000;
    let leader = load_sale(&cluster, SKU53, STOCK, 0).await;

    eprintln!("--- 48 clients buy; the leader is killed after 300 acknowledged orders");
    let log = Arc::new(SaleLog::default());
    let stop = Arc::new(AtomicBool::new(false));
    let nodes = cluster.clients();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..48 {
        tasks.spawn(buyer(client, nodes.clone(), log.clone(), stop.clone()));
    }
    let waited = poll_until(
        "300 acknowledged orders",
        Duration::from_secs(60),
        || async {
            let acks = log.acks.load(Ordering::SeqCst);
            if acks >= 300 {
                Ok(acks)
            } else {
                Err(format!("{acks} so far"))
            }
        },
    )
    .await;
    if waited.is_err() {
        stop.store(true, Ordering::SeqCst);
    }
    waited.expect("the sale makes progress");
    cluster.kill(leader).expect("kill the leader");
    let next = cluster.wait_for_leader().await.expect("a new leader");
    eprintln!("--- node {next} leads; the sale goes on");

    let finished = within(Duration::from_secs(120), async {
        while let Some(joined) = tasks.join_next().await {
            joined.expect("buyer task");
        }
    });
    finished.await;

    eprintln!("--- never more orders than units; every acknowledged order exists");
    let unexpected = log.unexpected.lock().expect("log").clone();
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");
    let sku = cluster
        .get_sku(next, SKU53, false)
        .await
        .expect("read the SKU");
    assert!(sku.holds_invariant(STOCK), "{sku:?}");
    let mut existing = HashSet::new();
    for user in 0..100 {
        let orders = cluster
            .client(next)
            .all_orders_of(&format!("t53-user-{user}"))
            .await
            .expect("list orders");
        for order in orders {
            assert_eq!(order.state, OrderState::PendingPayment);
            existing.insert(order.id);
        }
    }
    let acked = log.acked.lock().expect("log").clone();
    eprintln!(
        "--- {} orders exist, {} acknowledged, sku {sku:?}",
        existing.len(),
        acked.len()
    );
    assert!(
        existing.len() as i64 <= STOCK,
        "oversold: {} orders",
        existing.len()
    );
    assert_eq!(
        existing.len() as i64,
        sku.reserved,
        "reserved units are the orders"
    );
    for order in &acked {
        assert!(
            existing.contains(&order.id),
            "acknowledged order {} lost",
            order.id
        );
    }
    assert_eq!(sku.available, 0, "the sale ran to the end");
}
