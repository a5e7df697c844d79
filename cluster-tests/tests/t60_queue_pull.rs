//! Pull groups, on real processes: a lease not acknowledged within its visibility comes back
//! (and only those), an acknowledged one never does; an ack is answered only once it is
//! committed.

use std::collections::HashSet;
use std::time::Duration;

use cluster::{poll_until, requests, within, Cluster, ClusterOptions, Endpoint, Receive};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_pull_leases_come_back_after_visibility_and_acked_never_do() {
    let cluster = Cluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    within(Duration::from_secs(30), async {
        cluster
            .subscribe_pull("puller", "pulled")
            .await
            .expect("subscribe");
        cluster
            .publish_numbered("pulled", 10, 7)
            .await
            .expect("publish");
        let receive = |visibility_ms: u64, wait_ms: u64| {
            let cluster = &cluster;
            async move {
                cluster
                    .receive(
                        "puller",
                        &Receive::waiting(100, wait_ms).visibility_ms(visibility_ms),
                    )
                    .await
                    .expect("receive")
                    .messages
            }
        };
        let messages = receive(1000, 2000).await;
        assert_eq!(messages.len(), 10);
        let (to_ack, to_drop) = messages.split_at(5);
        let receipts: Vec<String> = to_ack.iter().map(|m| m.receipt.clone()).collect();
        let acked = cluster.ack("puller", &receipts).await.expect("ack");
        assert_eq!(acked, 5);
        // Nothing is visible until the leases end.
        let early = receive(1000, 0).await;
        assert_eq!(early.len(), 0);
        let again = poll_until(
            "unacked messages come back",
            Duration::from_secs(5),
            || async {
                let m = receive(10_000, 2000).await;
                if m.is_empty() {
                    Err("none yet".to_string())
                } else {
                    Ok(m)
                }
            },
        )
        .await
        .expect("redelivered");
        let back: HashSet<&str> = again.iter().map(|m| m.id.as_str()).collect();
        let dropped: HashSet<&str> = to_drop.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(back, dropped, "exactly the unacked ones come back");
        assert!(again.iter().all(|m| m.attempt == 2));
        let receipts: Vec<String> = again.iter().map(|m| m.receipt.clone()).collect();
        cluster.ack("puller", &receipts).await.expect("ack");
        let none = receive(1000, 1500).await;
        assert_eq!(none.len(), 0);
    })
    .await;
}

/// An `ack` is answered only once it is committed: with both followers killed the leader can
/// still lease and decide, but its acks cannot reach a quorum, so none may be answered as done
/// (it would be lost to the next leader, and the messages delivered again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_an_ack_without_a_quorum_is_not_answered_as_done() {
    let mut cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("cluster");
    within(Duration::from_secs(60), async {
        cluster
            .subscribe_pull("acker", "acked")
            .await
            .expect("subscribe");
        cluster
            .publish_numbered("acked", 10, 7)
            .await
            .expect("publish");
        let leader = cluster.wait_for_leader().await.expect("leader");
        let client = cluster.client(leader).clone();
        let receipts = client
            .receive("acker", &Receive::waiting(100, 2000).visibility_ms(30_000))
            .await
            .expect("receive")
            .receipts();
        assert_eq!(receipts.len(), 10);
        for follower in cluster.followers().await.expect("followers") {
            cluster.kill(follower).expect("kill");
        }
        let ack = requests::ack("acker", &receipts);
        // No answer while there is no quorum, or a refusal: either way not acknowledged.
        if let Ok(Ok(answer)) = tokio::time::timeout(Duration::from_secs(3), client.send(ack)).await
        {
            assert!(
                !answer.is_success(),
                "an ack that cannot commit was answered {} {}",
                answer.status,
                answer.body
            );
        }
    })
    .await;
}
