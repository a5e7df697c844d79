//! Clean restarts: `SIGTERM` ends a node's long polls and change streams and the node exits 0
//! within 5 s; a rolling restart of all three nodes under idempotent retrying writers loses no
//! acknowledged order and fails no request, and the longest write pause is reported.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{
    create_order_retrying, within, Cluster, ClusterOptions, Endpoint, NewOrder, NodeClient,
    SkuSettings,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The contract: a stop drains and exits within this.
const STOP_LIMIT: Duration = Duration::from_secs(5);
/// How long a restarted node gets to rejoin and apply what the leader had.
const REJOIN_LIMIT: Duration = Duration::from_secs(30);
/// How long one write may be retried across nodes before it counts as failed.
const WRITE_RETRY_LIMIT: Duration = Duration::from_secs(20);
/// Writers running through the rolling restart, each as its own user.
const WRITERS: usize = 4;
const SKU: &str = "t35-widget";

/// Sends `POST /v1/subscriptions/{group}/receive` waiting 30 s on a raw connection and answers
/// the connection once the whole request is in the node's socket: the long poll is then under
/// way before anything else the test does reaches the node.
async fn start_long_poll(api: &str, group: &str, token: &str) -> tokio::net::TcpStream {
    let addr = api.trim_start_matches("http://");
    let body = r#"{"max":1,"wait_ms":30000}"#;
    let request = format!(
        "POST /v1/subscriptions/{group}/receive HTTP/1.1\r\nhost: {addr}\r\n\
         authorization: Bearer {token}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect for the long poll");
    conn.write_all(request.as_bytes())
        .await
        .expect("send the long poll");
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_streams_and_long_polls_and_exits_zero() {
    let options = ClusterOptions::default();
    let token = options
        .admin_token
        .clone()
        .expect("the fixture sets a token");
    let mut cluster = Cluster::start(1, options).await.expect("start one node");
    within(Duration::from_secs(60), async {
        eprintln!("--- a pull group, a long poll on it and an open change stream");
        cluster
            .subscribe_pull("t35-pull", "t35.events")
            .await
            .expect("pull group");
        let mut long_poll = start_long_poll(&cluster.api(1), "t35-pull", &token).await;
        let http = reqwest::Client::builder().no_proxy().build().expect("http");
        let mut stream = http
            .get(format!("{}/v1/changes/stream", cluster.api(1)))
            .bearer_auth(&token)
            .send()
            .await
            .expect("open the change stream");
        assert_eq!(stream.status(), 200, "the stream opens");
        let first = stream.chunk().await.expect("a first chunk");
        assert!(first.is_some(), "the stream carries the changes so far");
        let stream_end = tokio::spawn(async move {
            let mut chunks = 0;
            while stream
                .chunk()
                .await
                .expect("the stream ends cleanly")
                .is_some()
            {
                chunks += 1;
            }
            chunks
        });
        let poll_answer = tokio::spawn(async move {
            let mut answer = String::new();
            long_poll
                .read_to_string(&mut answer)
                .await
                .expect("read the long poll's answer");
            answer
        });

        eprintln!("--- SIGTERM");
        let (status, took) = tokio::task::block_in_place(|| cluster.stop(1, STOP_LIMIT))
            .expect("the node exits after SIGTERM");
        eprintln!("node 1 exited ({status}) after {took:?}");
        assert!(status.success(), "a clean stop exits 0, got {status}");
        assert!(took < STOP_LIMIT, "the stop took {took:?}");

        let answer = tokio::time::timeout(STOP_LIMIT, poll_answer)
            .await
            .expect("the long poll ended with the node")
            .expect("long poll task");
        assert!(
            answer.starts_with("HTTP/1.1 503") && answer.contains("shutting_down"),
            "the long poll is told the node is shutting down: {answer}"
        );
        tokio::time::timeout(STOP_LIMIT, stream_end)
            .await
            .expect("the change stream ended with the node")
            .expect("the stream ended as a complete body, not a reset");
    })
    .await;
}

/// What the writers saw.
#[derive(Default)]
struct Writes {
    /// Every acknowledged order: (user, order id).
    acked: Vec<(String, String)>,
    /// When each acknowledgement arrived.
    acked_at: Vec<Instant>,
    /// Writes that failed after all their retries.
    failed: Vec<String>,
}

/// Creates orders one after another as `user`, each under its own `Idempotency-Key`, retried
/// across the nodes on 503s, 429s and timeouts, until `stop`.
async fn write_orders(
    clients: Vec<NodeClient>,
    user: String,
    stop: Arc<AtomicBool>,
    writes: Arc<Mutex<Writes>>,
) {
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("t35-{user}-{i}");
        let order = NewOrder::single(user.clone(), SKU, 1);
        let result = create_order_retrying(&clients, i, &order, &key, WRITE_RETRY_LIMIT).await;
        let mut writes = writes.lock().expect("writes");
        match result {
            Ok(order) => {
                writes.acked.push((user.clone(), order.id));
                writes.acked_at.push(Instant::now());
            }
            Err(e) => writes.failed.push(format!("{key}: {e}")),
        }
        i += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_under_load_loses_nothing() {
    let mut cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("start three nodes");
    within(Duration::from_secs(120), async {
        cluster
            .load_sku(SKU, &SkuSettings::new(10_000_000, 100))
            .await
            .expect("load the sku");
        eprintln!("--- {WRITERS} idempotent retrying writers");
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(Mutex::new(Writes::default()));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                tokio::spawn(write_orders(
                    cluster.clients(),
                    format!("t35-user-{w}"),
                    stop.clone(),
                    writes.clone(),
                ))
            })
            .collect();
        let acked_count = || writes.lock().expect("writes").acked.len();
        cluster::poll_until("the writers to get going", REJOIN_LIMIT, || async {
            cluster::holds(acked_count() >= 20)
        })
        .await
        .expect("writes before the restarts");

        for id in cluster.ids() {
            eprintln!("--- rolling restart: SIGTERM node {id}");
            let (status, took) = tokio::task::block_in_place(|| cluster.stop(id, STOP_LIMIT))
                .expect("the node exits after SIGTERM");
            assert!(status.success(), "node {id} stopped with {status}");
            assert!(took < STOP_LIMIT, "node {id}'s stop took {took:?}");
            eprintln!("node {id} exited 0 after {took:?}; restarting it");
            cluster.restart(id).expect("restart");
            cluster
                .wait_caught_up(id, REJOIN_LIMIT)
                .await
                .expect("the node rejoins and catches up");
            let before = acked_count();
            cluster::poll_until("writes to go on", REJOIN_LIMIT, || async {
                cluster::holds(acked_count() >= before + 10)
            })
            .await
            .expect("writes after the restart");
        }

        eprintln!("--- stop the writers and check every acknowledged order");
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.await.expect("writer");
        }
        let writes = std::mem::take(&mut *writes.lock().expect("writes"));
        assert!(
            writes.failed.is_empty(),
            "requests failed after their retries: {:?}",
            writes.failed
        );
        let mut pause = Duration::ZERO;
        let mut acked_at = writes.acked_at.clone();
        acked_at.sort();
        for pair in acked_at.windows(2) {
            pause = pause.max(pair[1] - pair[0]);
        }
        let leader = cluster.wait_for_leader().await.expect("leader");
        for w in 0..WRITERS {
            let user = format!("t35-user-{w}");
            let stored: std::collections::HashSet<String> = cluster
                .client(leader)
                .all_orders_of(&user)
                .await
                .expect("list orders")
                .into_iter()
                .map(|o| o.id)
                .collect();
            let lost: Vec<&String> = writes
                .acked
                .iter()
                .filter(|(u, id)| *u == user && !stored.contains(id))
                .map(|(_, id)| id)
                .collect();
            assert!(lost.is_empty(), "acknowledged orders lost: {lost:?}");
        }
        eprintln!(
            "rolling restart: {} orders acknowledged, none lost, none failed; longest write \
             pause {pause:?}",
            writes.acked.len()
        );
    })
    .await;
}
