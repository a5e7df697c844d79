//! A member whose data directory was lost must not rejoin under its old id: it would have
//! forgotten the entries it acknowledged, and the leader's replication would go backwards. It
//! stops with an explanation, and the cluster carries on.

use std::time::Duration;

use cluster::{poll_until, within, Cluster, ClusterOptions, NewOrder, SkuSettings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_member_refuses_to_rejoin_and_the_cluster_carries_on() {
    let mut cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("start");
    within(Duration::from_secs(90), async {
        let leader = cluster.wait_for_leader().await.expect("leader");
        let settings = SkuSettings::new(100, 100);
        cluster
            .put_sku(leader, "t60", &settings)
            .await
            .expect("put sku");
        for i in 0..10 {
            let order = NewOrder::single(format!("u{i}"), "t60", 1);
            cluster
                .create_order(leader, &order, None)
                .await
                .expect("create");
        }
        let follower = cluster.followers().await.expect("followers")[0];

        eprintln!("--- kill -9 node {follower}, wipe its data, start it again");
        cluster.kill(follower).expect("kill");
        std::fs::remove_dir_all(cluster.node_dir(follower).join("data")).expect("wipe");
        cluster.restart(follower).expect("restart");
        poll_until("the wiped node stops", Duration::from_secs(30), || async {
            match cluster.ensure_running() {
                Err(_) => Ok(()),
                Ok(()) => Err(format!("node {follower} still runs")),
            }
        })
        .await
        .expect("the wiped node refuses to start");
        let log = cluster.log_tail(follower, 20);
        assert!(
            log.contains("data directory was lost"),
            "the node says why: {log}"
        );

        eprintln!("--- the other two still serve writes");
        let order = NewOrder::single("after", "t60", 1);
        let created = cluster
            .create_order(leader, &order, None)
            .await
            .expect("write after");
        let read = cluster
            .get_order(&created.id, leader, false)
            .await
            .expect("read");
        assert_eq!(read.id, created.id);
        let others: Vec<u64> = cluster
            .ids()
            .into_iter()
            .filter(|id| *id != follower)
            .collect();
        for id in others {
            let status = cluster.status(id).await.expect("status");
            assert_eq!(
                status.leader_id,
                Some(leader),
                "node {id} still follows the same leader"
            );
        }
    })
    .await;
}
