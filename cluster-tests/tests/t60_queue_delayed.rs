//! Delayed messages wait in the timer wheel, on real processes: 25,000 messages delayed by an
//! hour, ahead of everything else in their topic, hold up nothing behind them; the short delays
//! fire on the new leader's wheel after the leader is killed, never early.

use std::collections::HashMap;
use std::time::Duration;

use cluster::{
    epoch_ms, poll_until, within, Cluster, ClusterOptions, Endpoint, NewMessage, Receiver,
    Subscription,
};
use serde_json::json;

/// Publishes `n` messages to `topic` with `delay_secs`, 100 at a time; answers their
/// `deliver_at` times by message id.
async fn publish_delayed(
    cluster: &Cluster,
    topic: &str,
    n: usize,
    delay_secs: u64,
) -> HashMap<String, i64> {
    let mut deliver_at = HashMap::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let calls = chunk.iter().map(|i| async move {
            let message = NewMessage::keyed(format!("d{i}"), json!({ "n": i })).delayed(delay_secs);
            cluster.publish(topic, &message).await.expect("publish")
        });
        for published in futures::future::join_all(calls).await {
            let at = epoch_ms(&published.deliver_at).expect("deliver_at");
            deliver_at.insert(published.id, at);
        }
    }
    deliver_at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t60_delayed_messages_wait_in_the_wheel_without_holding_up_the_rest() {
    let mut cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("cluster");
    let receiver = Receiver::failing(0.3).await.expect("receiver");
    within(Duration::from_secs(150), async {
        // More messages delayed by an hour than the scheduler holds per group, ahead of
        // everything else in the topic: held in memory, they would stall the messages behind.
        let hour = publish_delayed(&cluster, "wheel", 25_000, 3_600).await;
        let soon = publish_delayed(&cluster, "wheel", 5, 4).await;
        let hook = Subscription::push("wheel", receiver.url())
            .timeout_ms(2000)
            .max_attempts(50)
            .backoff(200, 1000);
        cluster.subscribe("wheel", &hook).await.expect("subscribe");
        cluster
            .publish_numbered("wheel", 20, 7)
            .await
            .expect("publish");
        let timers = cluster.timer_stats().await.expect("timers");
        assert!(timers.pending >= 25_005, "pending timers: {timers:?}");

        // The due ones arrive (30% of calls fail: their retries go through the wheel too).
        receiver
            .wait_acked(20, Duration::from_secs(20))
            .await
            .expect("undelayed messages delivered behind 25,000 delayed ones");

        // The leader dies before the short delays are due; the new leader's wheel fires them.
        let leader = cluster.wait_for_leader().await.expect("leader");
        cluster.kill(leader).expect("kill leader");
        poll_until(
            "the delayed messages delivered",
            Duration::from_secs(30),
            || async {
                let acked = receiver.acked_ids();
                let n = soon.keys().filter(|id| acked.contains(*id)).count();
                if n == soon.len() {
                    Ok(())
                } else {
                    Err(format!("{n} of {} delivered", soon.len()))
                }
            },
        )
        .await
        .expect("delayed messages delivered after a leader kill");
        for r in receiver.received() {
            if let Some(at) = soon.get(&r.id) {
                assert!(r.at_ms >= *at, "{} called {} ms early", r.id, at - r.at_ms);
            }
            assert!(
                !hour.contains_key(&r.id),
                "{} delivered an hour early",
                r.id
            );
        }
        assert_eq!(receiver.acked_ids().len(), 25, "exactly the due messages");
    })
    .await;
}
