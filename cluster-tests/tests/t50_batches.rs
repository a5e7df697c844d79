//! The batch endpoints on three real processes, sent through a follower: each item is answered
//! as its single endpoint would answer it, one refusal does not refuse the others, a batch costs
//! far fewer Raft entries than items, a retried batch answers the same bytes and creates nothing,
//! and a key reused with another item is refused for that item alone.

use std::collections::BTreeSet;
use std::time::Duration;

use cluster::{
    poll_until, requests, within, ApiResponse, Cluster, ClusterOptions, Endpoint, NewMessage,
    NewOrder, Receive, SkuSettings,
};
use serde_json::{json, Value};

/// Orders in the batch; one of them asks for more than the whole stock.
const ORDERS: usize = 20;
/// Units each accepted order reserves.
const QTY: i64 = 5;
/// The SKU's stock: every accepted order fits, in any order, and the refused one never does.
const STOCK: i64 = 100;
/// The item asking for more than the stock.
const REFUSED: usize = 7;
/// Messages in the publish batch.
const MESSAGES: usize = 10;

/// The answers of a batch, in item order.
fn results(answer: &ApiResponse) -> Vec<Value> {
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Raft entries the leader's log holds.
async fn log_length(cluster: &Cluster) -> u64 {
    let leader = cluster.wait_for_leader().await.expect("leader");
    let status = cluster.status(leader).await.expect("status");
    status.last_log_index.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t50_batches_through_a_follower_answer_each_item() {
    let cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("cluster");
    within(Duration::from_secs(90), async {
        let followers = cluster.followers().await.expect("followers");
        let (via, other) = (cluster.client(followers[0]), cluster.client(followers[1]));
        cluster
            .load_sku("A", &SkuSettings::new(STOCK, 250))
            .await
            .expect("stock");

        eprintln!(
            "--- a batch of {ORDERS} orders through follower {}",
            followers[0]
        );
        let orders: Vec<(String, NewOrder)> = (0..ORDERS)
            .map(|i| {
                let qty = if i == REFUSED { STOCK + 1 } else { QTY };
                (
                    format!("order-{i}"),
                    NewOrder::single(format!("u{i}"), "A", qty),
                )
            })
            .collect();
        let before = log_length(&cluster).await;
        let first = via
            .answer(requests::create_order_batch(&orders))
            .await
            .expect("batch");
        let entries = log_length(&cluster).await - before;
        eprintln!("--- {ORDERS} orders took {entries} Raft entries");
        assert!(
            entries < ORDERS as u64 / 2,
            "a batch shares entries: {entries} for {ORDERS} orders"
        );
        let answers = results(&first);
        assert_eq!(answers.len(), ORDERS);
        for (i, answer) in answers.iter().enumerate() {
            if i == REFUSED {
                assert_eq!(answer["status"], 409, "{answer}");
                assert_eq!(answer["error"]["code"], "insufficient_stock");
            } else {
                assert_eq!(answer["status"], 201, "{answer}");
                assert_eq!(answer["order"]["user_id"], format!("u{i}"));
                assert_eq!(answer["order"]["state"], "pending_payment");
            }
        }
        let accepted = (ORDERS as i64 - 1) * QTY;
        let sku = cluster
            .get_sku(followers[1], "A", false)
            .await
            .expect("sku");
        assert!(sku.holds_invariant(STOCK), "{sku:?}");
        assert_eq!((sku.reserved, sku.available), (accepted, STOCK - accepted));

        eprintln!("--- the same batch again, through the other follower");
        let again = other
            .answer(requests::create_order_batch(&orders))
            .await
            .expect("retry");
        assert_eq!(again, first, "a retried batch answers the first answers");
        let sku = cluster
            .get_sku(followers[1], "A", false)
            .await
            .expect("sku");
        assert_eq!(sku.reserved, accepted, "the retry created nothing");
        let placed = other.all_orders_of("u0").await.expect("orders of u0");
        assert_eq!(placed.len(), 1);

        eprintln!("--- a key reused with another order, beside a new one");
        let reused = [
            ("order-3".to_string(), NewOrder::single("u3", "A", 1)),
            ("order-new".to_string(), NewOrder::single("u-new", "A", 1)),
        ];
        let answer = via
            .answer(requests::create_order_batch(&reused))
            .await
            .expect("reused");
        let answers = results(&answer);
        assert_eq!(answers[0]["status"], 422, "{}", answer.body);
        assert_eq!(answers[0]["error"]["code"], "idempotency_key_reused");
        assert_eq!(answers[1]["status"], 201, "{}", answer.body);
        let sku = cluster
            .get_sku(followers[0], "A", false)
            .await
            .expect("sku");
        assert!(sku.holds_invariant(STOCK), "{sku:?}");
        assert_eq!(sku.reserved, accepted + 1);

        eprintln!(
            "--- {MESSAGES} publishes in one batch through follower {}",
            followers[0]
        );
        cluster
            .subscribe_pull("batch-readers", "batched")
            .await
            .expect("subscribe");
        let messages: Vec<(Option<String>, NewMessage)> = (0..MESSAGES)
            .map(|i| {
                let key = (i % 2 == 0).then(|| format!("message-{i}"));
                (key, NewMessage::keyed(format!("k{i}"), json!({ "n": i })))
            })
            .collect();
        let published = via
            .answer(requests::publish_batch("batched", &messages))
            .await
            .expect("publish batch");
        let answers = results(&published);
        assert!(
            answers.iter().all(|a| a["status"] == 201),
            "{}",
            published.body
        );
        let offsets: BTreeSet<u64> = answers
            .iter()
            .filter_map(|a| a["message"]["offset"].as_u64())
            .collect();
        let expected: BTreeSet<u64> = (1..=MESSAGES as u64).collect();
        assert_eq!(offsets, expected, "consecutive offsets, one per message");

        let again = other
            .answer(requests::publish_batch("batched", &messages[..1]))
            .await
            .expect("republish");
        assert_eq!(
            results(&again)[0],
            answers[0],
            "a keyed retry gets its first answer"
        );
        let reused = [(
            Some("message-0".to_string()),
            NewMessage::keyed("k0", json!({ "n": "other" })),
        )];
        let answer = via
            .answer(requests::publish_batch("batched", &reused))
            .await
            .expect("reused");
        assert_eq!(results(&answer)[0]["status"], 422, "{}", answer.body);

        eprintln!("--- a pull group reads every message of the batch");
        let read = std::sync::Mutex::new(BTreeSet::new());
        poll_until(
            "the batch's messages to be received",
            Duration::from_secs(20),
            || async {
                let leased = cluster
                    .receive("batch-readers", &Receive::waiting(100, 1000))
                    .await
                    .map_err(|e| e.to_string())?;
                cluster
                    .ack("batch-readers", &leased.receipts())
                    .await
                    .map_err(|e| e.to_string())?;
                let mut read = read.lock().map_err(|e| e.to_string())?;
                for message in &leased.messages {
                    let n = message.payload["n"].as_u64().ok_or("a payload without n")?;
                    assert_eq!(message.key, format!("k{n}"));
                    read.insert(n);
                }
                if read.len() == MESSAGES {
                    Ok(())
                } else {
                    Err(format!("{} of {MESSAGES} read", read.len()))
                }
            },
        )
        .await
        .expect("every message read");
    })
    .await;
}
