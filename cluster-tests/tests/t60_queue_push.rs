//! How push groups deliver, on real processes: `rate_per_sec` paces a burst, `ordered_by_key`
//! sends one key's messages one at a time in publish order (retries included), and a delayed
//! message is not called before its `deliver_at`.

use std::collections::HashMap;
use std::time::Duration;

use cluster::{
    epoch_ms, within, Cluster, ClusterOptions, Endpoint, NewMessage, Receiver, Subscription,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_rate_per_sec_paces_a_burst() {
    let cluster = Cluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    let receiver = Receiver::acking().await.expect("receiver");
    within(Duration::from_secs(60), async {
        let paced = Subscription::push("burst", receiver.url())
            .timeout_ms(2000)
            .rate_per_sec(100)
            .max_in_flight(256);
        cluster.subscribe("paced", &paced).await.expect("subscribe");
        // 1000 messages at once: 16 concurrent publishers.
        let publishers = (0..16).map(|p| {
            let cluster = &cluster;
            async move {
                for i in 0..1000 / 16 + 1 {
                    let n = p * 100 + i;
                    if (p + 16 * i) >= 1000 {
                        break;
                    }
                    cluster
                        .publish("burst", &NewMessage::new(json!({ "n": n })))
                        .await
                        .expect("publish");
                }
            }
        });
        futures::future::join_all(publishers).await;
        receiver
            .wait_acked(1000, Duration::from_secs(20))
            .await
            .expect("delivered");
        let times: Vec<i64> = receiver.received().iter().map(|r| r.at_ms).collect();
        let span_ms = times.iter().max().unwrap_or(&0) - times.iter().min().unwrap_or(&0);
        let rate = 999.0 * 1000.0 / span_ms.max(1) as f64;
        eprintln!("t60: 1000 deliveries over {span_ms} ms: {rate:.1}/s");
        assert!(
            (85.0..=115.0).contains(&rate),
            "rate {rate:.1}/s should be 100 within 15%"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_ordered_by_key_delivers_each_key_in_order_and_delays_hold() {
    let cluster = Cluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    let receiver = Receiver::failing(0.3).await.expect("receiver");
    within(Duration::from_secs(40), async {
        let ordered = Subscription::push("keyed", receiver.url())
            .timeout_ms(2000)
            .ordered_by_key()
            .max_attempts(50)
            .backoff(20, 100);
        cluster
            .subscribe("ordered", &ordered)
            .await
            .expect("subscribe");
        cluster
            .publish_numbered("keyed", 42, 7)
            .await
            .expect("publish");
        receiver
            .wait_acked(42, Duration::from_secs(20))
            .await
            .expect("delivered");
        // One key's calls (every attempt) never go back to an earlier message: a message is
        // sent only once every earlier message of its key was acknowledged.
        let mut last: HashMap<String, i64> = HashMap::new();
        for r in receiver.received() {
            let key = r.body["key"].as_str().unwrap_or_default().to_string();
            let n = r.body["payload"]["n"].as_i64().unwrap_or(-1);
            let previous = last.insert(key.clone(), n).unwrap_or(-1);
            assert!(n >= previous, "key {key}: message {n} after {previous}");
        }

        let late = NewMessage::keyed("late", json!({"n": 100})).delayed(2);
        let published = cluster.publish("keyed", &late).await.expect("publish");
        let deliver_at = epoch_ms(&published.deliver_at).expect("deliver_at");
        receiver
            .wait_acked(43, Duration::from_secs(10))
            .await
            .expect("delayed delivered");
        let first_call = receiver
            .received()
            .iter()
            .filter(|r| r.body["payload"]["n"] == 100)
            .map(|r| r.at_ms)
            .min()
            .unwrap_or(0);
        assert!(
            first_call >= deliver_at,
            "delivered {} ms early",
            deliver_at - first_call
        );
    })
    .await;
}
