//! Dead letters, end to end on real processes: an always-failing webhook leaves exactly one dead
//! letter per message, each after `max_attempts` attempts with growing gaps between them, and a
//! redrive delivers them all once the webhook recovers.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cluster::{
    poll_until, within, Cluster, ClusterOptions, Endpoint, Receiver, ReceiverOptions, Subscription,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_always_failing_webhook_leaves_one_dead_letter_each_then_redrive_delivers() {
    let cluster = Cluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    let receiver = Receiver::failing(1.0).await.expect("receiver");
    within(Duration::from_secs(60), async {
        cluster
            .publish_numbered("jobs", 20, 7)
            .await
            .expect("publish");
        let hook = Subscription::push("jobs", receiver.url())
            .timeout_ms(2000)
            .max_attempts(4)
            .backoff(100, 1000);
        cluster
            .subscribe("jobs-hook", &hook)
            .await
            .expect("subscribe");
        let dead = poll_until("20 dead letters", Duration::from_secs(20), || async {
            let page = cluster
                .dead_letters("jobs-hook", Some(100))
                .await
                .expect("dead letters page");
            if page.dead.len() == 20 {
                Ok(page.dead)
            } else {
                Err(format!("{} dead", page.dead.len()))
            }
        })
        .await
        .expect("dead letters");
        let ids: HashSet<&str> = dead.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids.len(), 20, "one dead letter per message");
        for d in &dead {
            assert_eq!(d.attempts.len(), 4, "{d:?}");
            assert!(d.payload["n"].is_number());
        }
        // Gaps between attempts grow: backoff doubles, and equal jitter keeps each gap within
        // [d/2, d] of its doubling base d.
        let mut by_id: HashMap<String, Vec<i64>> = HashMap::new();
        for r in receiver.received() {
            by_id.entry(r.id).or_default().push(r.at_ms);
        }
        for (id, times) in &by_id {
            assert_eq!(times.len(), 4, "{id}");
            let gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
            assert!(
                gaps.windows(2).all(|g| g[1] + 30 >= g[0]),
                "{id}: gaps {gaps:?} should grow"
            );
            assert!(gaps[2] >= 180, "{id}: third gap {gaps:?}");
        }
        let stats = cluster
            .subscription_stats("jobs-hook", false)
            .await
            .expect("stats");
        assert_eq!(stats.map(|s| s.dead), Some(20));
        receiver.set_options(ReceiverOptions::default());
        let redriven = cluster.redrive("jobs-hook", None).await.expect("redrive");
        assert_eq!(redriven, 20);
        receiver
            .wait_acked(20, Duration::from_secs(10))
            .await
            .expect("redrive delivers");
        // The receiver answered; the acks reach the committed stats in the scheduler's next batch.
        poll_until(
            "stats show the redrive",
            Duration::from_secs(10),
            || async {
                let stats = cluster
                    .subscription_stats("jobs-hook", false)
                    .await
                    .expect("stats");
                let seen = stats.map(|s| (s.dead, s.delivered, s.backlog));
                if seen == Some((0, 20, 0)) {
                    Ok(())
                } else {
                    Err(format!("dead, delivered, backlog = {seen:?}"))
                }
            },
        )
        .await
        .expect("stats settle after the redrive");
    })
    .await;
}
