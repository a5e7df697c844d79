//! Logs: `--log-format json` writes one JSON object per line; every request gets an access line
//! (target `access`: method, route template, status, duration, request id); `X-Request-Id` is
//! taken from the request or made, returned, and carried to the leader when a follower forwards;
//! no configured secret ever reaches a log.

use std::time::Duration;

use cluster::{poll_until, within, Cluster, ClusterOptions};

/// The access lines of node `id` for `request_id`, parsed.
fn access_lines(cluster: &Cluster, id: u64, request_id: &str) -> Vec<serde_json::Value> {
    cluster
        .log(id)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["target"] == "access" && line["fields"]["request_id"] == request_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lines_carry_the_request_id_and_no_secret() {
    let options = ClusterOptions {
        extra_args: vec!["--log-format".into(), "json".into()],
        ..ClusterOptions::default()
    };
    let admin_token = options.admin_token.clone().expect("admin token");
    let cluster_secret = options.cluster_secret.clone().expect("cluster secret");
    let cluster = Cluster::start(3, options).await.expect("start three nodes");
    within(Duration::from_secs(60), async {
        let leader = cluster.wait_for_leader().await.expect("leader");
        let follower = cluster.followers().await.expect("followers")[0];
        let http = reqwest::Client::builder().no_proxy().build().expect("http");

        eprintln!("--- a read through follower {follower}, forwarded to leader {leader}");
        let answer = http
            .get(format!("{}/v1/orders/t37-missing", cluster.api(follower)))
            .bearer_auth(&admin_token)
            .header("x-request-id", "t37-req-1")
            .send()
            .await
            .expect("read");
        assert_eq!(answer.status(), 404);
        assert_eq!(
            answer.headers()["x-request-id"],
            "t37-req-1",
            "the id comes back"
        );
        for node in [follower, leader] {
            let lines = poll_until(
                &format!("node {node}'s access line for t37-req-1"),
                Duration::from_secs(10),
                || async {
                    let lines = access_lines(&cluster, node, "t37-req-1");
                    if lines.is_empty() {
                        Err("none yet".to_owned())
                    } else {
                        Ok(lines)
                    }
                },
            )
            .await
            .expect("access line");
            let fields = &lines[0]["fields"];
            assert_eq!(fields["method"], "GET", "{fields}");
            assert_eq!(fields["route"], "/v1/orders/{id}", "{fields}");
            assert_eq!(fields["status"], 404, "{fields}");
            assert!(fields["duration_ms"].is_number(), "{fields}");
        }

        eprintln!("--- a request without an id gets one made");
        let answer = http
            .get(format!("{}/healthz", cluster.api(leader)))
            .send()
            .await
            .expect("healthz");
        let made = answer.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert_eq!(made.len(), 16, "a made id: {made}");
        poll_until(
            "the made id's access line",
            Duration::from_secs(10),
            || async { cluster::holds(!access_lines(&cluster, leader, &made).is_empty()) },
        )
        .await
        .expect("access line of the made id");

        eprintln!("--- no secret in any log");
        for id in cluster.ids() {
            // The fixture's own `=== cluster-tests: <command line>` lines name the flags it
            // passed; everything else is the node's.
            let log: String = cluster
                .log(id)
                .expect("log")
                .lines()
                .filter(|line| !line.starts_with("=== cluster-tests:"))
                .collect();
            assert!(
                log.contains("\"target\":\"access\""),
                "node {id} logs requests"
            );
            assert!(
                !log.contains(&admin_token),
                "node {id} logged the admin token"
            );
            assert!(
                !log.contains(&cluster_secret),
                "node {id} logged the cluster secret"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_errors_keeps_the_lines_of_answers_below_500_out() {
    let options = ClusterOptions {
        extra_args: vec![
            "--log-format".into(),
            "json".into(),
            "--access-log".into(),
            "errors".into(),
        ],
        ..ClusterOptions::default()
    };
    let admin_token = options.admin_token.clone().expect("admin token");
    let cluster = Cluster::start(1, options).await.expect("start one node");
    within(Duration::from_secs(60), async {
        let leader = cluster.wait_for_leader().await.expect("leader");
        let http = reqwest::Client::builder().no_proxy().build().expect("http");

        eprintln!("--- a 200 and a 404 with ids of their own");
        for (path, status) in [("/healthz", 200), ("/v1/orders/t37-missing", 404)] {
            let answer = http
                .get(format!("{}{path}", cluster.api(leader)))
                .bearer_auth(&admin_token)
                .header("x-request-id", "t37-quiet")
                .send()
                .await
                .expect("request");
            assert_eq!(answer.status(), status, "{path}");
            assert_eq!(answer.headers()["x-request-id"], "t37-quiet");
        }

        eprintln!("--- an admin write after them: its audit line is written after theirs would be");
        let answer = http
            .put(format!("{}/admin/skus/T37QUIET", cluster.api(leader)))
            .bearer_auth(&admin_token)
            .json(&serde_json::json!({"stock": 1, "price_cents": 1}))
            .send()
            .await
            .expect("put sku");
        assert_eq!(answer.status(), 200);
        poll_until("the audit line", Duration::from_secs(10), || async {
            let audited = cluster.log(leader).unwrap_or_default().lines().any(|line| {
                serde_json::from_str::<serde_json::Value>(line).is_ok_and(|line| {
                    line["target"] == "audit" && line["fields"]["path"] == "/admin/skus/T37QUIET"
                })
            });
            cluster::holds(audited)
        })
        .await
        .expect("audit line");
        assert!(
            access_lines(&cluster, leader, "t37-quiet").is_empty(),
            "no access line for answers below 500"
        );
        for line in cluster.log(leader).expect("log").lines() {
            let Ok(line) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if line["target"] == "access" {
                let status = line["fields"]["status"].as_u64().expect("status");
                assert!(status >= 500, "only 5xx answers are logged: {line}");
            }
        }
    })
    .await;
}
