//! `orderq admin` against three real nodes, each subcommand through a follower as well as the
//! leader, with `--json` parsed: cluster, skus, topics, subs, dead list/redrive/purge, trace,
//! timers, snapshot, backup; the environment in place of flags; one-line errors with their exit codes;
//! `orderq completions`.

use std::process::Output;
use std::time::Duration;

use cluster::process::locate_binary;
use cluster::scene::{JOBS_GROUP, POINTS_GROUP};
use cluster::{within, Cluster, ClusterOptions, OperatorScene, ReceiverOptions};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The token [`ClusterOptions::default`] starts the nodes with.
fn token() -> String {
    ClusterOptions::default()
        .admin_token
        .expect("the fixture sets an admin token")
}

/// Runs `orderq args...` with `env`, bounded in time.
async fn orderq(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(locate_binary().expect("orderq binary"));
    command
        .args(args)
        .env_remove("ORDERQ_URL")
        .env_remove("ORDERQ_ADMIN_TOKEN")
        .envs(env.iter().copied())
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("orderq answers within a minute")
        .expect("orderq runs")
}

/// `orderq admin args... --url URL --token T --json`: the parsed answer; fails the test on a
/// non-zero exit.
async fn admin_json(url: &str, args: &[&str]) -> Value {
    let token = token();
    let mut all = vec!["admin"];
    all.extend_from_slice(args);
    all.extend(["--url", url, "--token", &token, "--json"]);
    let out = orderq(&all, &[]).await;
    assert!(
        out.status.success(),
        "orderq {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "orderq {all:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Stderr of a failed run: one line, naming the failure.
fn one_line_error(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    assert_eq!(text.lines().count(), 1, "one line: {text:?}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t68_admin_cli_every_subcommand_on_a_three_node_cluster() {
    let cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("cluster");
    within(Duration::from_secs(180), async {
        let scene = OperatorScene::set_up(&cluster).await.expect("scene");
        let leader = cluster.wait_for_leader().await.expect("leader");
        let follower = cluster.followers().await.expect("followers")[0];
        let via_follower = cluster.api(follower);
        let via_leader = cluster.api(leader);

        eprintln!("--- cluster: every member with its role, through a follower");
        let status = admin_json(&via_follower, &["cluster"]).await;
        assert_eq!(status["node_id"], follower);
        assert_eq!(status["leader_id"], leader);
        assert_eq!(status["nodes"].as_array().map(Vec::len), Some(3));

        eprintln!("--- skus in pages");
        let page = admin_json(&via_follower, &["skus", "--limit", "2"]).await;
        assert_eq!(page["skus"][0]["sku"], "A");
        assert_eq!(page["skus"][0]["sold"], 2);
        assert_eq!(page["next"], "B");
        let rest = admin_json(&via_follower, &["skus", "--after", "B"]).await;
        assert_eq!(rest["skus"][0]["sku"], "C");
        assert_eq!(rest["next"], Value::Null);

        eprintln!("--- topics and subscriptions");
        let topics = admin_json(&via_follower, &["topics"]).await;
        let listed: Vec<&str> = topics["topics"]
            .as_array()
            .expect("topics")
            .iter()
            .filter_map(|t| t["topic"].as_str())
            .collect();
        assert!(
            listed.contains(&"order.paid") && listed.contains(&"jobs"),
            "{listed:?}"
        );
        let subs = admin_json(&via_follower, &["subs"]).await;
        let jobs = subs["subscriptions"]
            .as_array()
            .expect("subscriptions")
            .iter()
            .find(|s| s["group"] == JOBS_GROUP)
            .cloned()
            .expect("jobs-hook listed");
        assert_eq!(jobs["dead"], 3);

        eprintln!("--- trace: the paid event settled with points");
        let trace = admin_json(&via_follower, &["trace", &scene.order_id]).await;
        assert_eq!(trace["order"]["state"], "paid");
        let paid = trace["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .find(|m| m["topic"] == "order.paid")
            .cloned()
            .expect("order.paid in the trace");
        assert_eq!(paid["deliveries"][0]["group"], POINTS_GROUP);
        assert_eq!(paid["deliveries"][0]["status"], "settled");
        let time = |v: &Value| {
            v.as_str()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                .unwrap_or_else(|| panic!("an RFC 3339 time, got {v}"))
        };
        assert!(
            time(&paid["deliveries"][0]["acked_at"]) >= time(&trace["order"]["paid_at"]),
            "acknowledged after it was paid: {paid}"
        );

        eprintln!("--- dead letters: search, redrive one to a mended webhook, purge the rest");
        let found = admin_json(
            &via_follower,
            &["dead", "list", JOBS_GROUP, "--q", "needle"],
        )
        .await;
        assert_eq!(found["dead"].as_array().map(Vec::len), Some(1));
        assert_eq!(found["dead"][0]["id"], scene.needle_id.as_str());
        scene.jobs.set_options(ReceiverOptions::default());
        let redriven = admin_json(
            &via_follower,
            &["dead", "redrive", JOBS_GROUP, &scene.needle_id],
        )
        .await;
        assert_eq!(redriven["redriven"], 1);
        scene
            .jobs
            .wait_acked_id(&scene.needle_id, Duration::from_secs(20))
            .await
            .expect("the redriven letter reaches the webhook");
        let purged = admin_json(&via_leader, &["dead", "purge", JOBS_GROUP, "--all"]).await;
        assert_eq!(purged["purged"], 2);
        let left = admin_json(&via_leader, &["dead", "list", JOBS_GROUP]).await;
        assert_eq!(left["dead"], serde_json::json!([]));

        eprintln!("--- timers and a snapshot");
        let timers = admin_json(&via_follower, &["timers"]).await;
        assert!(timers["pending"].is_u64(), "{timers}");
        assert_eq!(
            timers["recent_closes"][0]["order_id"], scene.closed_order_id,
            "the latest close first: {timers}"
        );
        assert_eq!(
            timers["recent_closes"][0]["reason"], "cancelled",
            "{timers}"
        );
        let snapshot = admin_json(&via_leader, &["snapshot"]).await;
        assert!(
            snapshot["index"].as_u64().is_some_and(|i| i > 0),
            "{snapshot}"
        );

        eprintln!("--- a backup through a follower, then the same one refused");
        let backup_dir = cluster.dir().join("cli-backup");
        let backup_path = backup_dir.to_string_lossy().to_string();
        let backup = admin_json(&via_follower, &["backup", "--dir", &backup_path]).await;
        assert_eq!(backup["dir"], backup_path.as_str(), "{backup}");
        assert!(
            backup["applied_index"].as_u64().is_some_and(|i| i > 0),
            "{backup}"
        );
        assert!(
            backup_dir.join("backup.json").is_file(),
            "the backup's manifest in {backup_dir:?}"
        );
        let again = orderq(
            &[
                "admin",
                "backup",
                "--dir",
                &backup_path,
                "--url",
                &via_follower,
                "--token",
                &token(),
            ],
            &[],
        )
        .await;
        assert!(
            !again.status.success(),
            "a second backup into the same directory is refused"
        );
        assert!(
            one_line_error(&again).contains("backup"),
            "{}",
            one_line_error(&again)
        );

        eprintln!("--- tables by default; the URL and token from the environment");
        let token = token();
        let out = orderq(
            &["admin", "subs"],
            &[
                ("ORDERQ_URL", &via_follower),
                ("ORDERQ_ADMIN_TOKEN", &token),
            ],
        )
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let table = String::from_utf8_lossy(&out.stdout).to_string();
        let header = table.lines().next().unwrap_or_default();
        assert!(
            header.starts_with("GROUP") && header.contains("BACKLOG"),
            "{table}"
        );
        assert!(
            table.lines().any(|l| l.starts_with(POINTS_GROUP)),
            "{table}"
        );

        eprintln!("--- failures: one line each, a distinct exit code");
        let no_token = orderq(&["admin", "cluster", "--url", &via_follower], &[]).await;
        assert_eq!(no_token.status.code(), Some(4));
        assert!(one_line_error(&no_token).contains("401 unauthorized"));
        let unknown = orderq(
            &[
                "admin",
                "trace",
                "no-such-order",
                "--url",
                &via_follower,
                "--token",
                &token,
            ],
            &[],
        )
        .await;
        assert_eq!(unknown.status.code(), Some(5));
        assert!(one_line_error(&unknown).contains("not_found"));
        let down = orderq(&["admin", "cluster", "--url", "http://127.0.0.1:9"], &[]).await;
        assert_eq!(down.status.code(), Some(3));
        assert!(one_line_error(&down).contains("cannot reach"));
        let bad_url = orderq(&["admin", "cluster", "--url", "localhost:8080"], &[]).await;
        assert_eq!(bad_url.status.code(), Some(2));
        one_line_error(&bad_url);

        eprintln!("--- completions");
        let completions = orderq(&["completions", "bash"], &[]).await;
        assert!(completions.status.success());
        let script = String::from_utf8_lossy(&completions.stdout);
        assert!(
            script.contains("orderq") && script.contains("admin"),
            "{script}"
        );
    })
    .await;
}
