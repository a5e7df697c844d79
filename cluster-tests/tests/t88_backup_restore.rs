//! Backup and restore: a backup of a three-node cluster's leader taken under load from
//! idempotent retrying writers holds exactly the state at its index (every order acknowledged
//! before it was asked for, none asked for after it answered); restored into a fresh three-node
//! cluster, every node answers the backup's digest, the orders read back as they were
//! acknowledged, and the new cluster takes writes. Bad input is refused with a clear error, and
//! a node id of the live source cluster cannot be restored.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use cluster::{
    requests, within, Cluster, ClusterOptions, Error, NewOrder, Order, OrderState, OrderWriters,
    SkuSettings,
};

/// Writers running while the backup is taken, each as its own user.
const WRITERS: usize = 4;
/// How long one write may be retried across nodes before it counts as failed.
const WRITE_RETRY_LIMIT: Duration = Duration::from_secs(20);
/// How long the writers get to make progress before and after the backup.
const PROGRESS_LIMIT: Duration = Duration::from_secs(30);
const SKU: &str = "t88-widget";
const STOCK: i64 = 10_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_into_a_new_cluster() {
    let source = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("start the source cluster");
    let mut restored = Cluster::create(3, ClusterOptions::default()).expect("the new cluster");
    within(Duration::from_secs(180), scenario(&source, &mut restored)).await;
}

async fn scenario(source: &Cluster, restored: &mut Cluster) {
    source
        .load_sku(SKU, &SkuSettings::new(STOCK, 100))
        .await
        .expect("load the sku");
    eprintln!("--- {WRITERS} idempotent retrying writers on the source cluster");
    let users: Vec<String> = (0..WRITERS).map(|w| format!("t88-user-{w}")).collect();
    let writers = OrderWriters::start(source.clients(), SKU, &users, WRITE_RETRY_LIMIT);
    cluster::poll_until("the writers to get going", PROGRESS_LIMIT, || async {
        cluster::holds(writers.acked() >= 20)
    })
    .await
    .expect("writes before the backup");

    eprintln!("--- back up the leader under load");
    let leader = source.wait_for_leader().await.expect("source leader");
    let backup_dir = source.dir().join("backup");
    let asked = Instant::now();
    let backup = source
        .client(leader)
        .backup(&backup_dir)
        .await
        .expect("POST /admin/backup");
    let answered = Instant::now();
    eprintln!(
        "backup of node {leader} at index {} took {:?}",
        backup.state.applied_index,
        answered - asked
    );
    assert_eq!(
        Path::new(&backup.dir),
        backup_dir,
        "the answer names the dir"
    );
    assert!(backup.state.applied_index > 0, "{backup:?}");
    let before = writers.acked();
    cluster::poll_until(
        "writes to go on after the backup",
        PROGRESS_LIMIT,
        || async { cluster::holds(writers.acked() >= before + 20) },
    )
    .await
    .expect("writes after the backup");
    let writes = writers.stop().await;
    assert!(
        writes.failed.is_empty(),
        "requests failed after their retries: {:?}",
        writes.failed
    );

    eprintln!("--- bad input is refused and changes nothing");
    refuse(
        source,
        leader,
        requests::backup(&backup_dir),
        "an existing dir",
    )
    .await;
    refuse(
        source,
        leader,
        requests::backup(Path::new("rel/dir")),
        "a relative dir",
    )
    .await;
    let unknown_field = cluster::Request::json(
        reqwest::Method::POST,
        "/admin/backup",
        &serde_json::json!({"dir": "/tmp/x", "compress": true}),
    );
    refuse(source, leader, unknown_field, "an unknown field").await;
    let follower = source.followers().await.expect("followers")[0];
    match source.restore_node(follower, &backup_dir).await {
        Err(Error::CommandFailed { stderr, .. }) => eprintln!("restore refused: {stderr}"),
        other => panic!("restoring a live member's node id must fail: {other:?}"),
    }

    eprintln!("--- restore every node of a fresh cluster from the backup, then start it");
    for id in restored.ids() {
        let said = restored
            .restore_node(id, &backup_dir)
            .await
            .expect("orderq restore");
        eprintln!("node {id}: {said}");
    }
    restored
        .start_all()
        .await
        .expect("the restored cluster elects a leader");
    for id in restored.ids() {
        let digest = restored.client(id).digest().await.expect("digest");
        assert!(
            digest.applied_index >= backup.state.applied_index,
            "node {id} resumes after the backed-up index: {digest:?}"
        );
        assert_eq!(
            digest.digest, backup.state.digest,
            "node {id} holds the source's state at index {}",
            backup.state.applied_index
        );
    }

    eprintln!("--- the orders are those acknowledged up to the backup, as acknowledged");
    let new_leader = restored.wait_for_leader().await.expect("restored leader");
    let mut found: HashMap<String, Order> = HashMap::new();
    for user in &users {
        let orders = restored
            .client(new_leader)
            .all_orders_of(user)
            .await
            .expect("list orders");
        found.extend(orders.into_iter().map(|o| (o.id.clone(), o)));
    }
    let (mut kept, mut before_backup, mut after_backup) = (0, 0, 0);
    for acked in &writes.acked {
        match found.remove(&acked.order.id) {
            Some(order) => {
                assert_eq!(order, acked.order, "a restored order reads as acknowledged");
                assert!(
                    acked.sent_at < answered,
                    "order {} was asked for after the backup answered, yet it is in it",
                    order.id
                );
                kept += 1;
            }
            None => assert!(
                acked.acked_at > asked,
                "order {} was acknowledged before the backup was asked for, yet it is missing",
                acked.order.id
            ),
        }
        before_backup += usize::from(acked.acked_at < asked);
        after_backup += usize::from(acked.sent_at > answered);
    }
    assert!(
        found.is_empty(),
        "orders nobody acknowledged: {:?}",
        found.keys()
    );
    let sku = restored
        .get_sku(new_leader, SKU, false)
        .await
        .expect("the sku");
    assert_eq!(
        sku.reserved, kept as i64,
        "one reserved unit per restored order"
    );
    assert_eq!(sku.available + sku.reserved + sku.sold, STOCK, "{sku:?}");
    eprintln!(
        "{} orders acknowledged: {before_backup} before the backup was asked for, \
         {after_backup} asked for after it answered; {kept} restored",
        writes.acked.len()
    );

    eprintln!("--- the restored cluster takes writes");
    let order = restored
        .place_order(&NewOrder::single("t88-after", SKU, 2), Some("t88-after-1"))
        .await
        .expect("a new order");
    let paid = restored
        .pay_order(&order.id, "t88-pay-1", Some("t88-pay-1"))
        .await
        .expect("pay it");
    assert_eq!(paid.state, OrderState::Paid);
    let restored_order = &writes
        .acked
        .iter()
        .find(|a| a.acked_at < asked)
        .expect("an order from before the backup")
        .order;
    let paid = restored
        .pay_order(&restored_order.id, "t88-pay-2", Some("t88-pay-2"))
        .await
        .expect("pay a restored order");
    assert_eq!(paid.state, OrderState::Paid);
}

/// Sends `request` to node `id` and expects 400 `invalid_request` with a message.
async fn refuse(cluster: &Cluster, id: u64, request: cluster::Request, what: &str) {
    let answer = cluster.client(id).send(request).await.expect("an answer");
    assert_eq!(answer.status, 400, "{what}: {answer:?}");
    assert_eq!(answer.error_code().as_deref(), Some("invalid_request"));
    let message = answer.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(!message.is_empty(), "{what}: the refusal says why");
    eprintln!("{what}: {message}");
}
