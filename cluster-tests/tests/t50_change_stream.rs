//! The change stream and learners: a consumer following a learner sees every change exactly
//! once, in offset order, across a leader kill and its own restart, and replaying it reproduces
//! the leader's orders and SKUs; a learner added after the log was purged catches up by snapshot
//! and serves the stream from the snapshot on (older offsets 410); a learner never counts toward
//! quorum.

use std::collections::BTreeMap;
use std::time::Duration;

use cluster::{
    create_order_retrying, entry_end_offset, poll_until, retry_while_unavailable, within,
    ChangeFollower, Cluster, ClusterOptions, NewOrder, NodeClient, Request, SkuSettings,
};
use serde_json::Value;

const SKUS: [&str; 2] = ["t50-a", "t50-b"];
const USERS: usize = 5;
const ORDERS: usize = 60;
const LIMIT: Duration = Duration::from_secs(60);

fn settings() -> SkuSettings {
    SkuSettings::new(100_000, 250)
}

/// Drains the learner's stream into `follower` until a page brings nothing new and the offset
/// covers `applied` (the leader's last applied index).
async fn drain(follower: &mut ChangeFollower, applied: u64) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let wrote = follower.step(500, 200).await.expect("follow");
        if wrote == 0 && follower.offset() >= Some(entry_end_offset(applied)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the follower did not reach index {applied}: offset {:?}",
            follower.offset()
        );
    }
}

/// Runs the writes of the first scenario: orders on both SKUs, a third paid, a third cancelled.
async fn write_orders(clients: &[NodeClient], range: std::ops::Range<usize>) {
    for i in range {
        let new = NewOrder::single(
            format!("t50-user-{}", i % USERS),
            SKUS[i % 2],
            1 + i as i64 % 3,
        );
        let order = create_order_retrying(clients, i, &new, &format!("t50-o-{i}"), LIMIT)
            .await
            .expect("order acknowledged");
        match i % 3 {
            0 => {
                let payment_ref = format!("t50-p-{i}");
                retry_while_unavailable("pay", LIMIT, || {
                    clients[i % clients.len()].pay(&order.id, &payment_ref)
                })
                .await
                .expect("paid");
            }
            1 => {
                retry_while_unavailable("cancel", LIMIT, || {
                    clients[i % clients.len()].cancel(&order.id)
                })
                .await
                .expect("cancelled");
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_of_a_learner_sees_every_change_once_across_a_leader_kill() {
    let mut cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("start three nodes");
    within(Duration::from_secs(300), follow_scenario(&mut cluster)).await;
}

async fn follow_scenario(cluster: &mut Cluster) {
    let leader = cluster.wait_for_leader().await.expect("leader");
    eprintln!("--- add node 4 as a learner");
    let learner = cluster
        .add_learner(leader, LIMIT)
        .await
        .expect("add learner");
    let status = cluster.status(leader).await.expect("status");
    assert_eq!(status.learners, vec![learner]);
    assert_eq!(status.voters.len(), 3);

    let files = tempfile::tempdir().expect("tempdir");
    let (state, out) = (
        files.path().join("offset"),
        files.path().join("changes.ndjson"),
    );
    let open = || ChangeFollower::open(cluster.client(learner).clone(), &state, &out);
    let mut follower = open().expect("open follower");

    eprintln!("--- load SKUs, write orders, follow the learner");
    for sku in SKUS {
        cluster
            .put_sku(leader, sku, &settings())
            .await
            .expect("put sku");
    }
    let voters: Vec<NodeClient> = (1..=3).map(|id| cluster.client(id).clone()).collect();
    write_orders(&voters, 0..ORDERS / 2).await;
    follower.step(50, 0).await.expect("a first page");

    eprintln!("--- restart the follower from its files, kill -9 the leader {leader}");
    drop(follower);
    let mut follower = open().expect("reopen follower");
    cluster.kill(leader).expect("kill leader");
    let live: Vec<NodeClient> = (1..=3)
        .filter(|id| *id != leader)
        .map(|id| cluster.client(id).clone())
        .collect();
    let writer = tokio::spawn({
        let live = live.clone();
        async move { write_orders(&live, ORDERS / 2..ORDERS).await }
    });
    while !writer.is_finished() {
        follower.step(100, 200).await.expect("follow during writes");
    }
    writer.await.expect("writer");

    let new_leader = cluster.wait_for_leader().await.expect("new leader");
    let applied = cluster
        .status(new_leader)
        .await
        .expect("status")
        .last_applied
        .expect("applied");
    cluster
        .wait_caught_up(learner, LIMIT)
        .await
        .expect("learner caught up");
    drain(&mut follower, applied).await;

    eprintln!("--- check: strictly increasing offsets, before = previous after, replay = leader");
    let changes = ChangeFollower::read_output(&out).expect("read output");
    assert!(changes.len() >= ORDERS * 2, "{} changes", changes.len());
    let mut replay: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut last = None;
    for change in &changes {
        assert!(
            last < Some(change.offset),
            "offsets strictly increase: {last:?} then {}",
            change.offset
        );
        last = Some(change.offset);
        let key = (change.table.clone(), change.key.clone());
        let before = replay.get(&key).cloned().unwrap_or(Value::Null);
        assert_eq!(
            before, change.before,
            "before image of {key:?} at {}",
            change.offset
        );
        match change.op.as_str() {
            "delete" => replay.remove(&key),
            _ => replay.insert(key, change.after.clone()),
        };
    }
    let leader_client = cluster.client(new_leader);
    let mut leader_orders = BTreeMap::new();
    for user in 0..USERS {
        let page = leader_client
            .list_orders(&format!("t50-user-{user}"), 1000, None)
            .await
            .expect("list orders");
        for order in page.orders {
            leader_orders.insert(order.id.clone(), order);
        }
    }
    let replayed_orders: BTreeMap<String, cluster::Order> = replay
        .iter()
        .filter(|((table, _), _)| table == "orders")
        .map(|((_, id), v)| {
            (
                id.clone(),
                serde_json::from_value(v.clone()).expect("an order"),
            )
        })
        .collect();
    assert_eq!(replayed_orders.len(), ORDERS);
    assert_eq!(
        replayed_orders, leader_orders,
        "replaying the stream gives the leader's orders"
    );
    for sku in SKUS {
        let leader_sku = leader_client
            .send(Request::get(format!("/v1/skus/{sku}")))
            .await
            .expect("get sku")
            .json();
        let replayed = replay
            .get(&("skus".to_owned(), sku.to_owned()))
            .expect("sku replayed");
        assert_eq!(replayed, &leader_sku, "replayed sku {sku}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_added_after_a_purge_streams_from_its_snapshot() {
    let options = ClusterOptions {
        snapshot_every: Some(40),
        keep_logs_after_snapshot: Some(0),
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(3, options).await.expect("start three nodes");
    within(Duration::from_secs(300), snapshot_scenario(&mut cluster)).await;
}

async fn snapshot_scenario(cluster: &mut Cluster) {
    let leader = cluster.wait_for_leader().await.expect("leader");
    let voters: Vec<NodeClient> = (1..=3).map(|id| cluster.client(id).clone()).collect();
    for sku in SKUS {
        cluster
            .put_sku(leader, sku, &settings())
            .await
            .expect("put sku");
    }
    eprintln!("--- write until the leader purged its log");
    let mut i = 0;
    poll_until("the leader to purge its log", LIMIT, || {
        i += 1;
        let (voters, n) = (&voters, i);
        async move {
            for j in 0..10 {
                let new = NewOrder::single("t50-snap", SKUS[0], 1);
                create_order_retrying(voters, j, &new, &format!("t50-s-{n}-{j}"), LIMIT)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if n % 5 == 0 {
                voters[0].snapshot().await.map_err(|e| e.to_string())?;
            }
            let status = voters[0]
                .cluster_status()
                .await
                .map_err(|e| e.to_string())?;
            match status.last_purged_index {
                Some(purged) if purged > 5 => Ok(()),
                other => Err(format!("last_purged_index {other:?}")),
            }
        }
    })
    .await
    .expect("purged");

    eprintln!("--- add a learner; it catches up by snapshot");
    let learner = cluster
        .add_learner(leader, LIMIT)
        .await
        .expect("add learner");
    // openraft reports an installed snapshot as the log purged behind it; the log may be purged
    // before the state machine has finished restoring, so wait for it to have applied that far.
    let snapshot = poll_until("the learner to report its snapshot", LIMIT, || async {
        let status = cluster.status(learner).await.map_err(|e| e.to_string())?;
        match (
            status.snapshot_index.or(status.last_purged_index),
            status.last_applied,
        ) {
            (Some(snapshot), Some(applied)) if applied >= snapshot => Ok(snapshot),
            _ => Err(format!("{status:?}")),
        }
    })
    .await
    .expect("the learner installed a snapshot");
    eprintln!("    learner snapshot at index {snapshot}");

    let client = cluster.client(learner);
    let expired = client
        .send(Request::get("/v1/changes?after=0"))
        .await
        .expect("answer");
    assert_eq!(expired.status, 410, "{}", expired.body);
    assert_eq!(expired.error_code().as_deref(), Some("offset_expired"));
    let floor = entry_end_offset(snapshot);
    let stale = client
        .send(Request::get(format!("/v1/changes?after={}", floor - 1)))
        .await
        .expect("answer");
    assert_eq!(stale.status, 410);

    eprintln!("--- new writes appear on the learner's stream after the snapshot's offset");
    let new = NewOrder::single("t50-after", SKUS[1], 2);
    let order = create_order_retrying(&voters, 0, &new, "t50-after", LIMIT)
        .await
        .expect("order");
    let found = poll_until("the new order on the learner's stream", LIMIT, || async {
        let page = client
            .changes(Some(floor), 1000, 500)
            .await
            .map_err(|e| e.to_string())?;
        assert!(page.changes.iter().all(|c| c.offset > floor));
        page.changes
            .into_iter()
            .find(|c| c.table == "orders" && c.key == order.id)
            .ok_or_else(|| "not yet".to_owned())
    })
    .await
    .expect("the order's change");
    assert_eq!(found.op, "insert");
    assert_eq!(found.before, Value::Null);
    let from_floor = client
        .changes(None, 1, 0)
        .await
        .expect("no after: from the floor");
    assert!(from_floor.changes.first().is_some_and(|c| c.offset > floor));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_never_counts_toward_quorum() {
    let mut cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("start three nodes");
    within(Duration::from_secs(200), quorum_scenario(&mut cluster)).await;
}

async fn quorum_scenario(cluster: &mut Cluster) {
    let leader = cluster.wait_for_leader().await.expect("leader");
    let learner = cluster
        .add_learner(leader, LIMIT)
        .await
        .expect("add learner");
    cluster
        .put_sku(leader, SKUS[0], &settings())
        .await
        .expect("put sku");
    cluster
        .wait_caught_up(learner, LIMIT)
        .await
        .expect("learner caught up");
    let survivor = 1 + (leader % 3);
    let down: Vec<u64> = (1..=3).filter(|id| *id != survivor).collect();
    eprintln!("--- kill voters {down:?}; voter {survivor} and learner {learner} stay up");
    for id in &down {
        cluster.kill(*id).expect("kill voter");
    }
    let new = NewOrder::single("t50-q", SKUS[0], 1);
    for node in [survivor, learner] {
        let attempt = tokio::time::timeout(
            Duration::from_secs(8),
            cluster.client(node).create_order(&new, Some("t50-quorum")),
        )
        .await;
        assert!(
            !matches!(attempt, Ok(Ok(_))),
            "a write through node {node} succeeded with one voter and a learner: {attempt:?}"
        );
    }
    assert!(
        cluster.client(learner).is_healthy().await,
        "the learner is up"
    );
    let local = cluster
        .client(learner)
        .get_sku(SKUS[0], true)
        .await
        .expect("the learner still serves local reads");
    assert_eq!(local.sku, SKUS[0]);

    eprintln!("--- restart one voter: quorum is back, writes resume");
    cluster.restart(down[0]).expect("restart voter");
    let clients: Vec<NodeClient> = [survivor, down[0]]
        .iter()
        .map(|id| cluster.client(*id).clone())
        .collect();
    create_order_retrying(&clients, 0, &new, "t50-quorum", LIMIT)
        .await
        .expect("writes resume with two voters");
}
