//! `/metrics` of a real node is valid Prometheus text: `promtool check metrics` (Debian's
//! `prometheus` package) finds nothing to complain about on the leader's or a follower's output
//! after orders, stock, a push group and a pull group have been through the cluster; every family
//! the dashboards and alerts use is there with its `# HELP`, and each family's samples are
//! together. `/metrics` keeps its token.

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use cluster::{
    poll_until, within, Cluster, ClusterOptions, Endpoint, Receiver, Request, SkuSettings,
    Subscription,
};

const TOKEN: &str = "t85-scrape-token";

fn phase(text: &str) {
    eprintln!("t85: {text}");
}

/// Every family `ops/grafana-dashboard.json` and `ops/alerts.yml` read, with its type.
const FAMILIES: &[(&str, &str)] = &[
    ("orderq_build_info", "gauge"),
    ("orderq_http_requests_total", "counter"),
    ("orderq_http_request_duration_seconds", "histogram"),
    ("orderq_raft_term", "gauge"),
    ("orderq_raft_leader_id", "gauge"),
    ("orderq_raft_is_leader", "gauge"),
    ("orderq_raft_last_log_index", "gauge"),
    ("orderq_raft_committed_index", "gauge"),
    ("orderq_raft_applied_index", "gauge"),
    ("orderq_raft_snapshot_index", "gauge"),
    ("orderq_raft_replication_lag", "gauge"),
    ("orderq_leader_quorum_lost", "gauge"),
    ("orderq_clock_skewed", "gauge"),
    ("orderq_clock_offset_seconds", "gauge"),
    ("orderq_commit_latency_seconds", "histogram"),
    ("orderq_apply_batch_duration_seconds", "histogram"),
    ("orderq_log_sync_duration_seconds", "histogram"),
    ("orderq_admission_queue_depth", "gauge"),
    ("orderq_admission_queue_capacity", "gauge"),
    ("orderq_admission_refused_total", "counter"),
    ("orderq_seckill_sold_out_skus", "gauge"),
    ("orderq_orders", "gauge"),
    ("orderq_stock", "gauge"),
    ("orderq_timers_pending", "gauge"),
    ("orderq_timers_fired_total", "counter"),
    ("orderq_timer_lag_seconds", "histogram"),
    ("orderq_queue_backlog", "gauge"),
    ("orderq_queue_in_flight", "gauge"),
    ("orderq_queue_dead", "gauge"),
    ("orderq_queue_oldest_unacked_age_seconds", "gauge"),
    ("orderq_queue_delivered_total", "counter"),
    ("orderq_queue_failures_total", "counter"),
    ("orderq_rocksdb_live_data_bytes", "gauge"),
    ("orderq_rocksdb_pending_compaction_bytes", "gauge"),
    ("orderq_data_dir_free_bytes", "gauge"),
    ("orderq_data_dir_size_bytes", "gauge"),
    ("process_cpu_seconds_total", "counter"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
    ("process_start_time_seconds", "gauge"),
];

/// Families observed by the node that pushes (the leader) per group: a label set appears with
/// its first observation, so a follower, which pushes nothing, has none of their series.
const PUSHER_FAMILIES: &[(&str, &str)] = &[
    ("orderq_queue_delivery_latency_seconds", "histogram"),
    ("orderq_queue_webhook_duration_seconds", "histogram"),
];

/// What `promtool check metrics` says of `text`: its exit status and everything it printed.
fn promtool_check_metrics(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian's prometheus package; `make deps` installs it)");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("promtool reads the text");
    let out = child.wait_with_output().expect("promtool finishes");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// The family a sample line belongs to, given the families declared so far.
fn family_of<'a>(sample: &'a str, declared: &HashSet<String>) -> &'a str {
    let name = sample.split(['{', ' ']).next().unwrap_or(sample);
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if declared.contains(base) {
                return base;
            }
        }
    }
    name
}

/// Fails unless every family has a HELP and a TYPE and its samples follow them, together.
fn check_families_together(text: &str) {
    let mut declared = HashSet::new();
    let mut finished = HashSet::new();
    let mut current: Option<String> = None;
    let mut helped = HashSet::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().unwrap_or("").to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap_or("").to_owned();
            assert!(
                helped.contains(&name),
                "{name} has no # HELP before its # TYPE"
            );
            assert!(declared.insert(name.clone()), "{name} is declared twice");
            if let Some(previous) = current.replace(name) {
                finished.insert(previous);
            }
            continue;
        }
        let family = family_of(line, &declared);
        assert!(
            !finished.contains(family),
            "a sample of {family} comes after another family began: {line}"
        );
        assert_eq!(
            current.as_deref(),
            Some(family),
            "the sample {line} is not under its family's # TYPE"
        );
    }
}

/// Every `orderq_*` and `process_*` series name `text` mentions (histogram parts named by their
/// family).
fn series_names(text: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let starts_name = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if starts_name && (rest.starts_with("orderq_") || rest.starts_with("process_")) {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            names.insert(family.to_owned());
            i += end;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    names
}

async fn scrape(cluster: &Cluster, node: u64) -> String {
    let response = cluster
        .client(node)
        .send(Request::get("/metrics").without_admin_token().bearer(TOKEN))
        .await
        .expect("/metrics answers");
    assert_eq!(response.status, 200, "/metrics with its token");
    response.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_s_metrics_pass_promtool_with_every_family_together() {
    let options = ClusterOptions {
        extra_args: vec!["--metrics-token".into(), TOKEN.into()],
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(3, options).await.unwrap();
    let receiver = Receiver::acking().await.unwrap();
    within(Duration::from_secs(120), async {
        phase("--- orders, stock, a push group and a pull group go through the cluster");
        cluster
            .subscribe(
                "t85-push",
                &Subscription::push("order.created", receiver.url()),
            )
            .await
            .unwrap();
        cluster
            .subscribe_pull("t85-pull", "order.created")
            .await
            .unwrap();
        cluster
            .load_sku("T85", &SkuSettings::new(100, 500))
            .await
            .unwrap();
        cluster.paid_orders("T85", 3).await.unwrap();
        poll_until(
            "the push group acknowledged 3 messages",
            Duration::from_secs(30),
            || async {
                let text = scrape(&cluster, cluster.leader_id().await?).await;
                cluster::holds(text.contains("orderq_queue_delivered_total{group=\"t85-push\"} 3"))
            },
        )
        .await
        .unwrap();

        let leader = cluster.wait_for_leader().await.unwrap();
        let follower = *cluster.followers().await.unwrap().first().unwrap();
        for (role, node) in [("leader", leader), ("follower", follower)] {
            phase(&format!("--- promtool checks the {role}'s /metrics"));
            let text = scrape(&cluster, node).await;
            let (ok, said) = promtool_check_metrics(&text);
            assert!(
                ok && said.trim().is_empty(),
                "promtool on the {role}: {said}\n{text}"
            );
            check_families_together(&text);
            let pusher = if node == leader { PUSHER_FAMILIES } else { &[] };
            for (name, kind) in FAMILIES.iter().chain(pusher) {
                assert!(
                    text.contains(&format!("# TYPE {name} {kind}\n")),
                    "the {role}'s /metrics has no {kind} {name}"
                );
            }
        }

        phase("--- every series the dashboard and the alert rules name is on /metrics");
        let text = scrape(&cluster, leader).await;
        let ops = concat!(env!("CARGO_MANIFEST_DIR"), "/../ops");
        for file in ["grafana-dashboard.json", "alerts.yml"] {
            let used = std::fs::read_to_string(format!("{ops}/{file}")).expect("ops file");
            for name in series_names(&used) {
                assert!(
                    text.contains(&format!("# TYPE {name} ")),
                    "{file} uses {name}, which /metrics does not have"
                );
            }
        }

        phase("--- /metrics still needs its token");
        let refused = cluster
            .client(leader)
            .send(Request::get("/metrics").without_admin_token())
            .await
            .unwrap();
        assert_eq!(refused.status, 401);
    })
    .await;
}
