//! Removing a subscription, on real processes: a receive waiting on the removed group is
//! answered 404 at once, nothing published afterwards reaches the removed push group, and a
//! group created again under the name starts where it is told to.

use std::time::{Duration, Instant};

use cluster::{
    requests, within, Cluster, ClusterOptions, Endpoint, NewMessage, Receive, Receiver, Start,
    Subscription,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_a_removed_group_stops_at_once() {
    let cluster = Cluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    let receiver = Receiver::acking().await.expect("receiver");
    within(Duration::from_secs(60), async {
        let pushed = Subscription::push("rm", receiver.url()).timeout_ms(2000);
        cluster
            .subscribe("pushed", &pushed)
            .await
            .expect("subscribe");
        cluster.publish_numbered("rm", 5, 7).await.expect("publish");
        cluster
            .subscribe("pulled", &Subscription::pull("rm").start(Start::Latest))
            .await
            .expect("subscribe");
        receiver
            .wait_acked(5, Duration::from_secs(10))
            .await
            .expect("delivered");

        // A receive on the pulled group, waiting or not yet arrived when the group goes, is
        // answered 404 rather than left to its wait.
        let client = cluster.client(1).clone();
        let started = Instant::now();
        let parked = tokio::spawn(async move {
            client
                .send(requests::receive("pulled", &Receive::waiting(10, 20000)))
                .await
        });
        for group in ["pulled", "pushed"] {
            let removed = cluster.remove_subscription(group).await.expect("remove");
            assert!(removed, "{group} removed");
        }
        let answer = parked.await.expect("task").expect("an answer");
        assert_eq!(answer.status, 404, "{}", answer.body);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "answered before its wait ended"
        );

        // Messages published after the removal never reach the removed push group; a group
        // created again under the name starts where it is told to.
        let before = receiver.acked_ids();
        for i in 0..5 {
            cluster
                .publish("rm", &NewMessage::keyed("after", json!({ "after": i })))
                .await
                .expect("publish");
        }
        cluster
            .subscribe("pushed", &pushed.start(Start::Latest))
            .await
            .expect("subscribe again");
        let marker = cluster
            .publish("rm", &NewMessage::new(json!("marker")))
            .await
            .expect("publish the marker");
        receiver
            .wait_acked_id(&marker.id, Duration::from_secs(10))
            .await
            .expect("the re-created group delivers");
        let new: Vec<String> = receiver.acked_ids().difference(&before).cloned().collect();
        assert_eq!(
            new,
            vec![marker.id],
            "only what came after the group was created again"
        );
    })
    .await;
}
