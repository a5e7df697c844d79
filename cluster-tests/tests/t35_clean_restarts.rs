//! Clean restarts: `SIGTERM` ends a node's long polls and change streams and the node exits 0
//! within 5 s; a rolling restart of all three nodes under idempotent retrying writers loses no
//! acknowledged order and fails no request, and the longest write pause is reported.

use std::time::Duration;

use cluster::{within, Cluster, ClusterOptions, Endpoint, OrderWriters, SkuSettings};
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
    let body = r#"{"max":1,"wait_ms":20000}"#;
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
        let users: Vec<String> = (0..WRITERS).map(|w| format!("t35-user-{w}")).collect();
        let writers = OrderWriters::start(cluster.clients(), SKU, &users, WRITE_RETRY_LIMIT);
        cluster::poll_until("the writers to get going", REJOIN_LIMIT, || async {
            cluster::holds(writers.acked() >= 20)
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
            let before = writers.acked();
            cluster::poll_until("writes to go on", REJOIN_LIMIT, || async {
                cluster::holds(writers.acked() >= before + 10)
            })
            .await
            .expect("writes after the restart");
        }

        eprintln!("--- stop the writers and check every acknowledged order");
        let writes = writers.stop().await;
        assert!(
            writes.failed.is_empty(),
            "requests failed after their retries: {:?}",
            writes.failed
        );
        let leader = cluster.wait_for_leader().await.expect("leader");
        for user in &users {
            let stored: std::collections::HashSet<String> = cluster
                .client(leader)
                .all_orders_of(user)
                .await
                .expect("list orders")
                .into_iter()
                .map(|o| o.id)
                .collect();
            let lost: Vec<&String> = writes
                .acked
                .iter()
                .filter(|a| a.order.user_id == *user && !stored.contains(&a.order.id))
                .map(|a| &a.order.id)
                .collect();
            assert!(lost.is_empty(), "acknowledged orders lost: {lost:?}");
        }
        eprintln!(
            "rolling restart: {} orders acknowledged, none lost, none failed; longest write \
             pause {:?}",
            writes.acked.len(),
            writes.longest_pause()
        );
    })
    .await;
}
