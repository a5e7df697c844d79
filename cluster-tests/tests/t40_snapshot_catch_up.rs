//! A follower that was down while the leader snapshotted and purged the log it would need
//! catches up by installing a snapshot, and then answers every order from its own state.

use std::time::Duration;

use cluster::{
    create_order_retrying, within, write_until_purged_past, Cluster, ClusterOptions, NewOrder,
    NodeClient, Order, SkuSettings,
};
use tokio::task::JoinSet;

const SKU: &str = "t40-widget";
const STOCK: i64 = 1_000_000;
/// Orders written while the follower is down.
const ORDERS_WHILE_DOWN: usize = 300;
/// Concurrent writers, so a few hundred orders do not take a minute on a debug build.
const WRITERS: usize = 6;
const CATCH_UP_LIMIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_follower_catches_up_from_a_snapshot() {
    let options = ClusterOptions {
        snapshot_every: Some(50),
        keep_logs_after_snapshot: Some(0),
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(3, options).await.expect("start three nodes");
    within(Duration::from_secs(300), scenario(&mut cluster)).await;
}

async fn scenario(cluster: &mut Cluster) {
    let leader = cluster.wait_for_leader().await.expect("leader");
    let followers = cluster.followers().await.expect("followers");
    let (stopped, other) = (followers[0], followers[1]);
    eprintln!("--- leader is node {leader}; node {stopped} will be stopped");

    eprintln!("--- load a SKU and write a few orders everyone sees");
    let settings = SkuSettings::new(STOCK, 100);
    cluster
        .put_sku(leader, SKU, &settings)
        .await
        .expect("put sku");
    let mut acked: Vec<Order> = Vec::new();
    for i in 0..10 {
        let new = NewOrder::single(format!("t40-early-{i}"), SKU, 1);
        let order = cluster
            .create_order(leader, &new, Some(&format!("t40-early-{i}")))
            .await
            .expect("create");
        acked.push(order);
    }
    cluster
        .wait_orders_visible(stopped, &acked, CATCH_UP_LIMIT)
        .await
        .expect("the follower has the early orders");
    let stopped_log = cluster
        .status(stopped)
        .await
        .expect("follower status")
        .last_log_index
        .expect("the follower has a log");

    eprintln!("--- kill -9 node {stopped} (its log ends at {stopped_log})");
    cluster.kill(stopped).expect("kill the follower");

    eprintln!("--- write {ORDERS_WHILE_DOWN} orders through the two live nodes");
    let live: Vec<NodeClient> = [leader, other]
        .iter()
        .map(|id| cluster.client(*id).clone())
        .collect();
    let mut writers: JoinSet<cluster::Result<Vec<Order>>> = JoinSet::new();
    for writer in 0..WRITERS {
        let live = live.clone();
        writers.spawn(async move {
            let mut orders = Vec::new();
            for i in (writer..ORDERS_WHILE_DOWN).step_by(WRITERS) {
                let new = NewOrder::single(format!("t40-user-{}", i % 13), SKU, 1);
                let key = format!("t40-down-{i}");
                let order =
                    create_order_retrying(&live, i, &new, &key, Duration::from_secs(30)).await?;
                orders.push(order);
            }
            Ok(orders)
        });
    }
    while let Some(joined) = writers.join_next().await {
        acked.extend(joined.expect("writer task").expect("writer's orders"));
    }
    assert_eq!(acked.len(), 10 + ORDERS_WHILE_DOWN);

    eprintln!("--- snapshot on the leader; wait until it purged past index {stopped_log}");
    let taken = cluster
        .client(leader)
        .snapshot()
        .await
        .expect("POST /admin/snapshot");
    eprintln!("    snapshot at index {}", taken.index);
    assert!(
        taken.index > stopped_log,
        "the snapshot covers the writes made while node {stopped} was down"
    );
    // A trickle of writes, as in real traffic, gives the leader occasions to purge; they are
    // acknowledged orders like any other.
    let nudges = write_until_purged_past(
        &live,
        &live[0],
        stopped_log,
        &NewOrder::single("t40-nudge", SKU, 1),
        "t40-nudge",
        Duration::from_secs(60),
    )
    .await
    .expect("leader purges its log");
    acked.extend(nudges);
    let purged = cluster
        .status(leader)
        .await
        .expect("leader status")
        .last_purged_index;
    eprintln!("    leader purged up to {purged:?}");

    eprintln!("--- restart node {stopped}; it catches up by snapshot");
    cluster.restart(stopped).expect("restart the follower");
    cluster
        .wait_for_leader()
        .await
        .expect("all three agree on a leader");
    cluster
        .wait_orders_visible(stopped, &acked, CATCH_UP_LIMIT)
        .await
        .expect("the restarted follower reads every order locally");
    cluster
        .wait_sku_converged(stopped, SKU, CATCH_UP_LIMIT)
        .await
        .expect("the restarted follower's stock matches the leader's");
    let status = cluster.status(stopped).await.expect("follower status");
    eprintln!(
        "    node {stopped}: snapshot_index {:?}, last_applied {:?}",
        status.snapshot_index, status.last_applied
    );
    assert!(
        status
            .snapshot_index
            .is_some_and(|index| index > stopped_log),
        "the follower installed a snapshot newer than its old log: {status:?}"
    );
}
