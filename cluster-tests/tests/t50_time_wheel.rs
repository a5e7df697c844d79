//! The time wheel: unpaid orders close themselves at their deadline, never before it; a payment
//! just in time keeps its order; closes survive a leader failover and a full cluster restart.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cluster::{
    epoch_ms, poll_until, within, Cluster, ClusterOptions, NewOrder, Order, OrderState,
    SkuSettings, TimerStats,
};

/// How late after its deadline a close may be applied on a healthy cluster.
const ON_TIME_MS: i64 = 1_000;

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn expiring(user: &str, sku: &str, pay_within_secs: u64) -> NewOrder {
    NewOrder {
        pay_within_secs: Some(pay_within_secs),
        ..NewOrder::single(user, sku, 1)
    }
}

/// Milliseconds between an order's deadline and its close (negative: closed early).
fn close_delay_ms(order: &Order) -> i64 {
    let expires = order
        .expires_at
        .as_deref()
        .and_then(epoch_ms)
        .expect("expires_at");
    let closed = order
        .closed_at
        .as_deref()
        .and_then(epoch_ms)
        .expect("closed_at");
    closed - expires
}

/// Waits until every order in `ids` is closed, as read through `node`; answers them.
async fn wait_all_closed(
    cluster: &Cluster,
    node: u64,
    ids: &[String],
    limit: Duration,
) -> Vec<Order> {
    poll_until("every order closed", limit, || async {
        let mut closed = Vec::with_capacity(ids.len());
        for id in ids {
            let order = cluster
                .get_order(id, node, false)
                .await
                .map_err(|e| e.to_string())?;
            if order.state != OrderState::Closed {
                return Err(format!("order {id} is {:?}", order.state));
            }
            closed.push(order);
        }
        Ok(closed)
    })
    .await
    .expect("orders close")
}

/// Polls node `node`'s `/admin/timers` until `done` holds; answers the stats that satisfied it.
async fn wait_timers(
    cluster: &Cluster,
    node: u64,
    what: &str,
    done: impl Fn(&TimerStats) -> bool,
) -> TimerStats {
    poll_until(what, Duration::from_secs(30), || async {
        let stats = cluster
            .client(node)
            .timers()
            .await
            .map_err(|e| e.to_string())?;
        if done(&stats) {
            Ok(stats)
        } else {
            Err(format!("{stats:?}"))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn assert_expired_on_time(orders: &[Order], late_limit_ms: Option<i64>) {
    for order in orders {
        assert_eq!(
            order.close_reason.as_deref(),
            Some("expired"),
            "order {}",
            order.id
        );
        let delay = close_delay_ms(order);
        assert!(
            delay >= 0,
            "order {} closed {}ms before its deadline",
            order.id,
            -delay
        );
        if let Some(limit) = late_limit_ms {
            assert!(
                delay <= limit,
                "order {} closed {delay}ms after its deadline",
                order.id
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_orders_close_at_their_deadline_and_paid_ones_stay_paid() {
    let cluster = Cluster::start(1, ClusterOptions::default())
        .await
        .expect("start");
    within(Duration::from_secs(60), async {
        let sku = "t50-a";
        let settings = SkuSettings::new(10, 100);
        cluster.put_sku(1, sku, &settings).await.expect("put sku");

        eprintln!("--- two orders due in 2 s; pay one just before its deadline");
        let unpaid = cluster
            .create_order(1, &expiring("u1", sku, 2), None)
            .await
            .expect("create");
        let paid = cluster
            .create_order(1, &expiring("u2", sku, 2), None)
            .await
            .expect("create");
        let deadline = paid
            .expires_at
            .as_deref()
            .and_then(epoch_ms)
            .expect("expires_at");
        // Scenario timing, not a wait for a condition: act 300 ms before the deadline.
        tokio::time::sleep(Duration::from_millis(
            (deadline - 300 - wall_ms()).max(0) as u64
        ))
        .await;
        let paid = cluster
            .pay(1, &paid.id, "p-just-in-time")
            .await
            .expect("pay in time");
        assert_eq!(paid.state, OrderState::Paid);

        eprintln!("--- the unpaid one closes within a second of its deadline, never before");
        let closed = wait_all_closed(
            &cluster,
            1,
            std::slice::from_ref(&unpaid.id),
            Duration::from_secs(10),
        )
        .await;
        assert_expired_on_time(&closed, Some(ON_TIME_MS));
        let sku_now = cluster.get_sku(1, sku, false).await.expect("sku");
        assert_eq!(
            (sku_now.available, sku_now.reserved, sku_now.sold),
            (9, 0, 1),
            "stock is back"
        );

        let late = cluster
            .pay(1, &unpaid.id, "p-late")
            .await
            .expect_err("paying a closed order fails");
        assert_eq!(late.status(), Some(409), "{late}");

        eprintln!("--- the paid order's close never happens");
        let stats = wait_timers(&cluster, 1, "no timer pending", |t| t.pending == 0).await;
        assert_eq!(stats.fired, 1, "exactly one close fired");
        assert!(
            stats.lag_ms_p99.is_some_and(|lag| lag <= ON_TIME_MS as u64),
            "{stats:?}"
        );
        let still = cluster
            .get_order(&paid.id, 1, false)
            .await
            .expect("read paid");
        assert_eq!((still.state, still.closed_at), (OrderState::Paid, None));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closes_happen_exactly_once_across_a_leader_kill() {
    let mut cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("start");
    within(Duration::from_secs(120), async {
        let leader = cluster.wait_for_leader().await.expect("leader");
        let sku = "t50-b";
        let stock = 1_000;
        let settings = SkuSettings::new(stock, 100);
        cluster
            .put_sku(leader, sku, &settings)
            .await
            .expect("put sku");

        eprintln!("--- 150 orders expiring over the next seconds");
        let mut ids = Vec::new();
        for i in 0..150u64 {
            let order = cluster
                .create_order(
                    leader,
                    &expiring(&format!("u{i}"), sku, 3 + i % 3),
                    Some(&format!("t50-b-{i}")),
                )
                .await
                .expect("create");
            ids.push(order.id);
        }
        eprintln!("--- kill -9 the leader (node {leader})");
        cluster.kill(leader).expect("kill");
        let survivor = cluster.running_ids()[0];
        let closed = wait_all_closed(&cluster, survivor, &ids, Duration::from_secs(60)).await;
        assert_expired_on_time(&closed, None);

        eprintln!("--- every close counted once, all stock back");
        let new_leader = cluster.wait_for_leader().await.expect("new leader");
        let stats = cluster.client(new_leader).timers().await.expect("timers");
        assert_eq!((stats.fired, stats.pending), (150, 0), "{stats:?}");
        let sku_now = cluster.get_sku(new_leader, sku, false).await.expect("sku");
        assert_eq!(
            (sku_now.available, sku_now.reserved, sku_now.sold),
            (stock, 0, 0)
        );

        eprintln!("--- the killed node restarts and agrees");
        cluster.restart(leader).expect("restart");
        let restarted = wait_timers(&cluster, leader, "restarted node caught up", |t| {
            t.fired == 150
        })
        .await;
        assert_eq!(restarted.pending, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_timers_survive_a_full_cluster_restart() {
    let mut cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("start");
    within(Duration::from_secs(120), async {
        let leader = cluster.wait_for_leader().await.expect("leader");
        let sku = "t50-c";
        let settings = SkuSettings::new(100, 100);
        cluster
            .put_sku(leader, sku, &settings)
            .await
            .expect("put sku");
        let mut ids = Vec::new();
        for i in 0..50 {
            let order = cluster
                .create_order(leader, &expiring(&format!("u{i}"), sku, 10), None)
                .await
                .expect("create");
            ids.push(order.id);
        }

        eprintln!("--- kill -9 all three nodes, then start them again from their data");
        for id in cluster.ids() {
            cluster.kill(id).expect("kill");
        }
        for id in cluster.ids() {
            cluster.restart(id).expect("restart");
        }
        let leader = cluster
            .wait_for_leader()
            .await
            .expect("leader after restart");
        let stats = cluster.client(leader).timers().await.expect("timers");
        assert_eq!(
            stats.pending, 50,
            "pending timers were re-armed from disk: {stats:?}"
        );

        let closed = wait_all_closed(&cluster, leader, &ids, Duration::from_secs(30)).await;
        assert_expired_on_time(&closed, Some(ON_TIME_MS));
        let sku_now = cluster.get_sku(leader, sku, false).await.expect("sku");
        assert_eq!((sku_now.available, sku_now.reserved), (100, 0));
    })
    .await;
}
