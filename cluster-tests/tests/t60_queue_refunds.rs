//! Refunds through a fake payment provider, on real processes: a refund the provider accepts
//! after three failures ends `refunded`; one it keeps refusing ends `refund_failed` with a dead
//! letter, and redriving that letter refunds it. Every refund state is published.

use std::time::Duration;

use cluster::{
    requests, within, ChangePage, Cluster, ClusterOptions, Endpoint, OrderState, Receiver,
    ReceiverOptions, Request, SkuSettings, Subscription,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_refunds_end_refunded_or_refund_failed_and_redrive_refunds() {
    let provider = Receiver::start(
        0,
        ReceiverOptions {
            fail_first: 3,
            ..Default::default()
        },
    )
    .await
    .expect("provider");
    let options = ClusterOptions {
        extra_args: vec!["--payment-refund-url".into(), provider.url()],
        ..Default::default()
    };
    let cluster = Cluster::start(1, options).await.expect("cluster");
    within(Duration::from_secs(40), async {
        let refunds = Subscription::push("order.refund_requested", provider.url())
            .timeout_ms(2000)
            .max_attempts(4)
            .backoff(100, 400);
        cluster
            .subscribe("payment.refund", &refunds)
            .await
            .expect("subscribe");
        cluster
            .load_sku("Q", &SkuSettings::new(1_000_000, 100))
            .await
            .expect("sku");
        let ids = cluster.paid_orders("Q", 2).await.expect("paid orders");
        let r = cluster
            .send_to_any(requests::refund(&ids[0], "damaged"))
            .await
            .expect("an answer");
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.json()["state"], "refund_requested");
        cluster
            .wait_order_state(&ids[0], OrderState::Refunded, Duration::from_secs(10))
            .await
            .expect("refunded after three failures");
        let calls = provider.received();
        assert_eq!(calls.len(), 4);
        assert!(calls
            .iter()
            .all(|c| c.idempotency_key.as_deref() == Some(ids[0].as_str())));

        provider.set_options(ReceiverOptions {
            fail_rate: 1.0,
            ..Default::default()
        });
        cluster.refund(&ids[1], "damaged").await.expect("an answer");
        cluster
            .wait_order_state(&ids[1], OrderState::RefundFailed, Duration::from_secs(10))
            .await
            .expect("refund_failed after max_attempts");
        let dead = cluster
            .dead_letters("payment.refund", None)
            .await
            .expect("dead letters")
            .dead;
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].key, ids[1]);
        provider.set_options(ReceiverOptions::default());
        cluster
            .redrive("payment.refund", None)
            .await
            .expect("redrive");
        cluster
            .wait_order_state(&ids[1], OrderState::Refunded, Duration::from_secs(10))
            .await
            .expect("refunded by redrive");
        for topic in [
            "order.refund_requested",
            "order.refunded",
            "order.refund_failed",
        ] {
            let changes: ChangePage = cluster
                .call(Request::get("/v1/changes?after=0&limit=10000"))
                .await
                .expect("changes");
            let published = changes
                .changes
                .iter()
                .filter(|c| c.table == "messages" && c.after["topic"] == topic)
                .count();
            assert!(published >= 1, "{topic} published");
        }
    })
    .await;
}

/// The provider makes the refund but its answer is lost (held past the push timeout), then
/// refuses every retry: orderq asks the provider (`[payment] refund_status_url`), hears
/// "refunded", and records the order `refunded`, never `refund_failed` (issue 13, seed 5150).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_a_refund_whose_answer_was_lost_is_looked_up_and_recorded_refunded() {
    let provider = Receiver::start(
        0,
        ReceiverOptions {
            lose_first: 1,
            fail_rate: 1.0,
            ..Default::default()
        },
    )
    .await
    .expect("provider");
    let options = ClusterOptions {
        extra_args: vec!["--payment-refund-url".into(), provider.url()],
        // The environment rather than a flag: a binary without the lookup still starts.
        env: vec![(
            "ORDERQ_PAYMENT_REFUND_STATUS_URL".into(),
            provider.status_url(),
        )],
        ..Default::default()
    };
    let cluster = Cluster::start(1, options).await.expect("cluster");
    within(Duration::from_secs(40), async {
        let refunds = Subscription::push("order.refund_requested", provider.url())
            .timeout_ms(300)
            .max_attempts(3)
            .backoff(100, 200);
        cluster
            .subscribe("payment.refund", &refunds)
            .await
            .expect("subscribe");
        cluster
            .load_sku("Q", &SkuSettings::new(1_000_000, 100))
            .await
            .expect("sku");
        let ids = cluster.paid_orders("Q", 1).await.expect("paid orders");
        let r = cluster
            .send_to_any(requests::refund(&ids[0], "damaged"))
            .await
            .expect("an answer");
        assert_eq!(r.status, 202, "{}", r.body);
        let settled = cluster
            .wait_order_state(&ids[0], OrderState::Refunded, Duration::from_secs(20))
            .await;
        let calls = provider.received();
        assert!(
            calls.first().is_some_and(|c| c.acked),
            "the provider made the refund on the first call"
        );
        settled.unwrap_or_else(|e| {
            panic!(
                "the provider made the refund (its answer was lost), yet: {e}; provider calls: {:?}",
                calls.iter().map(|c| (c.attempt, c.acked)).collect::<Vec<_>>()
            )
        });
        let dead = cluster
            .dead_letters("payment.refund", None)
            .await
            .expect("dead letters")
            .dead;
        assert!(dead.is_empty(), "{dead:?}");
    })
    .await;
}
