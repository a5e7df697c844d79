//! Three nodes: writes through followers, `kill -9` of the leader under a steady stream of
//! orders, a new leader within seconds, no acknowledged order lost on any node, the killed
//! node catching up from its own data, and idempotent retries answered the same everywhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{
    create_order_retrying, requests, stock_held, within, ApiResponse, Cluster, ClusterOptions,
    NewOrder, NodeClient, Order, OrderState, Request, SkuSettings,
};

const SKU: &str = "t30-widget";
const STOCK: i64 = 1_000_000;
/// The contract's promise under test: writes resume this soon after the leader dies.
const FAILOVER_LIMIT: Duration = Duration::from_secs(10);
/// How long the nodes get to catch up after the writes stop.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(60);

/// An order the writer got a 2xx for, and when.
struct Ack {
    /// When the 2xx arrived.
    at: Instant,
    /// The acknowledged order.
    order: Order,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_loses_no_acknowledged_order() {
    let mut cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("start three nodes");
    within(Duration::from_secs(300), scenario(&mut cluster)).await;
}

async fn scenario(cluster: &mut Cluster) {
    let leader = cluster.wait_for_leader().await.expect("leader");
    let followers = cluster.followers().await.expect("followers");
    assert_eq!(
        followers.len(),
        2,
        "three voters: one leader, two followers"
    );
    let (f1, f2) = (followers[0], followers[1]);
    eprintln!("--- leader is node {leader}; followers {f1} and {f2}");

    eprintln!("--- load a SKU and create orders through a follower");
    let settings = SkuSettings::new(STOCK, 999);
    cluster
        .put_sku(f1, SKU, &settings)
        .await
        .expect("put sku via follower");
    let mut acked: Vec<Order> = Vec::new();
    for i in 0..20 {
        let new = NewOrder::single(format!("t30-user-{}", i % 4), SKU, 2);
        let order = cluster
            .create_order(f1, &new, Some(&format!("t30-setup-{i}")))
            .await
            .expect("create via follower");
        let order = if i % 2 == 0 {
            cluster
                .pay(f2, &order.id, &format!("t30-pay-{i}"))
                .await
                .expect("pay via the other follower")
        } else {
            order
        };
        let read = cluster
            .get_order(&order.id, leader, false)
            .await
            .expect("read via leader");
        assert_eq!(read, order, "the leader reads what a follower acknowledged");
        acked.push(order);
    }

    eprintln!("--- an idempotent retry sent to a different node returns the first answer");
    let key = "t30-idempotent";
    let order = NewOrder::single("t30-user-idem", SKU, 3);
    let create = || requests::create_order(&order).idempotency_key(key);
    let first = cluster
        .client(f1)
        .send(create())
        .await
        .expect("first attempt");
    assert_eq!(first.status, 201, "first attempt: {}", first.body);
    acked.push(serde_json::from_str(&first.body).expect("an order"));
    for node in [leader, f2, f1] {
        assert_replayed(cluster, node, create(), &first, "retry").await;
    }

    eprintln!("--- start a client that keeps creating orders through every node");
    let stop = Arc::new(AtomicBool::new(false));
    let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let writer = tokio::spawn(keep_creating_orders(
        cluster.clients(),
        Arc::clone(&stop),
        Arc::clone(&acks),
    ));
    wait_for_acks(&acks, 20, None).await;

    eprintln!("--- kill -9 the leader (node {leader})");
    let killed_at = Instant::now();
    cluster.kill(leader).expect("kill the leader");

    eprintln!("--- a new leader serves writes within {FAILOVER_LIMIT:?}");
    let survivors: Vec<NodeClient> = [f1, f2]
        .iter()
        .map(|id| cluster.client(*id).clone())
        .collect();
    let probe = create_order_retrying(
        &survivors,
        0,
        &NewOrder::single("t30-probe", SKU, 1),
        "t30-probe",
        FAILOVER_LIMIT,
    )
    .await
    .expect("a write succeeds within the failover limit");
    let failover = killed_at.elapsed();
    eprintln!("    first write after the kill acknowledged after {failover:?}");
    assert!(failover < FAILOVER_LIMIT, "failover took {failover:?}");
    acked.push(probe);
    let new_leader = cluster.wait_for_leader().await.expect("new leader");
    assert_ne!(new_leader, leader, "the killed node cannot lead");
    eprintln!("    node {new_leader} leads");
    wait_for_acks(&acks, 20, Some(killed_at)).await;

    eprintln!("--- stop the client");
    stop.store(true, Ordering::Relaxed);
    writer
        .await
        .expect("writer task")
        .expect("every order of the writer was acknowledged");
    let writes: Vec<Order> = acks
        .lock()
        .expect("acks")
        .iter()
        .map(|ack| ack.order.clone())
        .collect();
    eprintln!("    the writer had {} orders acknowledged", writes.len());
    acked.extend(writes);

    eprintln!("--- every acknowledged order is present, exactly once, on the leader");
    let sku = cluster.get_sku(new_leader, SKU, false).await.expect("sku");
    assert!(sku.holds_invariant(STOCK), "invariant: {sku:?}");
    assert_eq!(
        (sku.reserved, sku.sold),
        stock_held(&acked, SKU),
        "stock held matches the acknowledged orders (a retry created nothing twice)"
    );
    for order in &acked {
        let read = cluster
            .get_order(&order.id, new_leader, false)
            .await
            .expect("read via leader");
        assert_eq!(&read, order);
    }

    eprintln!("--- ... and on every running node through consistency=local");
    for node in cluster.running_ids() {
        cluster
            .wait_orders_visible(node, &acked, CATCH_UP_LIMIT)
            .await
            .expect("orders visible locally");
        cluster
            .wait_sku_converged(node, SKU, CATCH_UP_LIMIT)
            .await
            .expect("sku converged");
    }

    eprintln!("--- restart the killed node (node {leader}) from its data; it catches up");
    cluster.restart(leader).expect("restart");
    cluster
        .wait_for_leader()
        .await
        .expect("all three agree on a leader");
    cluster
        .wait_orders_visible(leader, &acked, CATCH_UP_LIMIT)
        .await
        .expect("restarted node reads every order");
    let converged = cluster
        .wait_sku_converged(leader, SKU, CATCH_UP_LIMIT)
        .await
        .expect("restarted node's sku");
    assert_eq!(converged, sku, "no write since the check on the leader");

    eprintln!("--- the idempotent retry still returns the first answer, on every node");
    for node in cluster.ids() {
        assert_replayed(cluster, node, create(), &first, "retry after the failover").await;
    }
    let states: Vec<OrderState> = acked.iter().map(|o| o.state).collect();
    assert!(states.contains(&OrderState::Paid) && states.contains(&OrderState::PendingPayment));
}

/// Sends the idempotent `retry` through `node` and checks it is answered exactly as `first` was
/// (same status, same body).
async fn assert_replayed(
    cluster: &Cluster,
    node: u64,
    retry: Request,
    first: &ApiResponse,
    what: &str,
) {
    let again = cluster.client(node).send(retry).await.expect(what);
    assert_eq!(
        (again.status, again.json()),
        (first.status, first.json()),
        "{what} via node {node}"
    );
}

/// Creates orders one after another until `stop`, each with its own idempotency key retried
/// across the nodes until acknowledged, recording every acknowledged order in `acks`.
async fn keep_creating_orders(
    clients: Vec<NodeClient>,
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
) -> cluster::Result<()> {
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let new = NewOrder::single(format!("t30-writer-{}", i % 10), SKU, 1);
        let key = format!("t30-writer-{i}");
        let order = create_order_retrying(&clients, i, &new, &key, Duration::from_secs(30)).await?;
        let ack = Ack {
            at: Instant::now(),
            order,
        };
        acks.lock().expect("acks").push(ack);
        i += 1;
    }
    Ok(())
}

/// Waits until the writer has `count` acknowledgements (after `since`, if given).
async fn wait_for_acks(acks: &Mutex<Vec<Ack>>, count: usize, since: Option<Instant>) {
    cluster::poll_until(
        &format!("{count} acknowledged writes"),
        Duration::from_secs(60),
        || async {
            let acks = acks.lock().expect("acks");
            let seen = acks
                .iter()
                .filter(|ack| since.is_none_or(|since| ack.at > since))
                .count();
            if seen >= count {
                Ok(())
            } else {
                Err(format!("{seen} so far"))
            }
        },
    )
    .await
    .expect("the writer makes progress");
}
