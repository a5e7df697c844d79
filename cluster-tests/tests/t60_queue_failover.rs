//! The durable queue through failures and leader changes, on real processes: every
//! `order.paid` reaches a webhook that fails half the time while the leader is killed twice, and
//! a pull group's receive and ack work through followers (forwarded to the leader).

use std::collections::HashSet;
use std::time::Duration;

use cluster::{
    poll_until, within, Cluster, ClusterOptions, Endpoint, Receive, Receiver, SkuSettings,
    Subscription,
};

/// Order ids in the payloads the receiver acknowledged.
fn acked_order_ids(receiver: &Receiver) -> HashSet<String> {
    receiver
        .received()
        .into_iter()
        .filter(|r| r.acked)
        .filter_map(|r| r.body["payload"]["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t60_every_paid_order_arrives_through_failures_and_two_leader_kills() {
    let mut cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("cluster");
    let receiver = Receiver::failing(0.5).await.expect("receiver");
    within(Duration::from_secs(100), async {
        eprintln!("t60: --- 1000 orders paid");
        cluster
            .load_sku("Q", &SkuSettings::new(1_000_000, 100))
            .await
            .expect("sku");
        let ids = cluster.paid_orders("Q", 1000).await.expect("paid orders");
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 1000);
        eprintln!(
            "t60: --- subscribe a webhook failing half the time, paced so kills land mid-delivery"
        );
        let hook = Subscription::push("order.paid", receiver.url())
            .timeout_ms(2000)
            .max_attempts(100)
            .backoff(100, 800)
            .rate_per_sec(400);
        cluster
            .subscribe("paid-hook", &hook)
            .await
            .expect("subscribe");
        for kill in 1..=2 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let leader = cluster.wait_for_leader().await.expect("leader");
            eprintln!("t60: --- kill the leader (node {leader}), kill {kill} of 2");
            cluster.kill(leader).expect("kill");
            cluster.wait_for_leader().await.expect("new leader");
            cluster.restart(leader).expect("restart");
        }
        let wanted: HashSet<String> = ids.into_iter().collect();
        poll_until(
            "every order.paid acknowledged",
            Duration::from_secs(60),
            || async {
                let got = acked_order_ids(&receiver);
                let missing = wanted.difference(&got).count();
                if missing == 0 {
                    Ok(())
                } else {
                    Err(format!("{missing} missing"))
                }
            },
        )
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

        eprintln!("t60: --- pull through followers: receive and ack are forwarded to the leader");
        cluster
            .subscribe_pull("created-pull", "order.created")
            .await
            .expect("subscribe");
        let followers = cluster.followers().await.expect("followers");
        let leased = cluster
            .client(followers[0])
            .receive("created-pull", &Receive::waiting(5, 5000))
            .await
            .expect("receive via a follower");
        let receipts = leased.receipts();
        assert_eq!(receipts.len(), 5);
        let acked = cluster
            .client(followers[1 % followers.len()])
            .ack("created-pull", &receipts)
            .await
            .expect("ack via a follower");
        assert_eq!(acked, 5);
    })
    .await;
}
