//! A single node killed with `kill -9` and restarted on the same data directory keeps every
//! write it acknowledged, with its state, and the stock invariant still holds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cluster::{
    poll_until, stock_held, within, Cluster, ClusterOptions, NewOrder, Order, OrderState,
    SkuSettings,
};

const SKU: &str = "t10-widget";
const STOCK: i64 = 10_000;
const PRICE: i64 = 250;
const ORDERS: usize = 120;
const USERS: usize = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let mut cluster = Cluster::start(1, ClusterOptions::default())
        .await
        .expect("start a single node");
    within(Duration::from_secs(180), scenario(&mut cluster)).await;
}

async fn scenario(cluster: &mut Cluster) {
    eprintln!("--- load a SKU");
    let settings = SkuSettings::new(STOCK, PRICE);
    let sku = cluster.put_sku(1, SKU, &settings).await.expect("put sku");
    assert!(sku.holds_invariant(STOCK), "fresh SKU: {sku:?}");
    assert_eq!(sku.available, STOCK);

    eprintln!("--- create {ORDERS} orders; pay every third, cancel every fifth unpaid one");
    let mut created = Vec::new();
    let mut latest: Vec<Order> = Vec::new();
    for i in 0..ORDERS {
        let qty = (i % 3 + 1) as i64;
        let new = NewOrder::single(format!("t10-user-{}", i % USERS), SKU, qty);
        let key = format!("t10-create-{i}");
        let order = cluster
            .create_order(1, &new, Some(&key))
            .await
            .expect("create order");
        assert_eq!(order.state, OrderState::PendingPayment);
        assert_eq!(order.amount_cents, qty * PRICE);
        created.push((new, key, order.clone()));
        let order = if i % 3 == 0 {
            let paid = cluster
                .pay(1, &order.id, &format!("t10-pay-{i}"))
                .await
                .expect("pay");
            assert_eq!(paid.state, OrderState::Paid);
            paid
        } else if i % 5 == 0 {
            let closed = cluster.cancel(1, &order.id).await.expect("cancel");
            assert_eq!(closed.state, OrderState::Closed);
            assert_eq!(closed.close_reason.as_deref(), Some("cancelled"));
            closed
        } else {
            order
        };
        latest.push(order);
    }
    let ids: BTreeSet<&str> = latest.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids.len(), ORDERS, "order ids are unique");
    assert_stock(cluster, &latest, false).await;

    eprintln!("--- kill -9 the node and restart it on the same data dir");
    cluster.kill(1).expect("kill");
    cluster.restart(1).expect("restart");
    cluster
        .wait_for_leader()
        .await
        .expect("leader after restart");

    eprintln!("--- every acknowledged write is there with its state (linearizable reads)");
    for order in &latest {
        let got = cluster
            .get_order(&order.id, 1, false)
            .await
            .expect("get order");
        assert_eq!(&got, order, "order {} after restart", order.id);
    }
    assert_stock(cluster, &latest, false).await;

    eprintln!("--- the same through consistency=local");
    poll_until(
        "local reads to show every order",
        Duration::from_secs(20),
        || async {
            for order in &latest {
                match cluster.get_order(&order.id, 1, true).await {
                    Ok(got) if &got == order => {}
                    other => return Err(format!("order {}: {other:?}", order.id)),
                }
            }
            Ok(())
        },
    )
    .await
    .expect("local reads");
    assert_stock(cluster, &latest, true).await;

    eprintln!("--- listing each user's orders returns exactly their orders");
    let mut by_user: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for order in &latest {
        by_user
            .entry(order.user_id.as_str())
            .or_default()
            .insert(order.id.as_str());
    }
    for (user, expected) in &by_user {
        let mut listed = BTreeSet::new();
        let mut after: Option<String> = None;
        for _page in 0..=ORDERS {
            let page = cluster
                .client(1)
                .list_orders(user, 5, after.as_deref())
                .await
                .expect("list orders");
            assert!(page.orders.len() <= 5, "page over its limit");
            for order in &page.orders {
                assert_eq!(&order.user_id, user);
                assert!(listed.insert(order.id.clone()), "{} listed twice", order.id);
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let listed: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
        assert_eq!(&listed, expected, "orders of {user}");
    }

    eprintln!("--- an idempotent retry after the restart returns the first answer");
    for (new, key, first) in created.iter().take(10) {
        let again = cluster
            .create_order(1, new, Some(key))
            .await
            .expect("retry create");
        assert_eq!(&again, first, "retry of {key}");
    }
    assert_stock(cluster, &latest, false).await;

    eprintln!("--- the restarted node takes new writes");
    let order = cluster
        .create_order(1, &NewOrder::single("t10-late", SKU, 1), None)
        .await
        .expect("create after restart");
    latest.push(order);
    assert_stock(cluster, &latest, false).await;
}

/// The SKU holds exactly what the orders reserve and sell, and the invariant holds.
async fn assert_stock(cluster: &Cluster, orders: &[Order], local: bool) {
    let sku = cluster.get_sku(1, SKU, local).await.expect("get sku");
    let (reserved, sold) = stock_held(orders, SKU);
    assert!(sku.holds_invariant(STOCK), "invariant broken: {sku:?}");
    assert_eq!(
        (sku.reserved, sku.sold),
        (reserved, sold),
        "reserved/sold vs orders: {sku:?}"
    );
}
