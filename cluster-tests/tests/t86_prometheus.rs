//! The operations kit in `ops/` works with a real Prometheus (Debian's `prometheus` package):
//! the alert rules pass `promtool check rules` and their unit tests (`promtool test rules
//! ops/alerts_test.yml`), and a Prometheus started with `ops/prometheus.yml` (its three targets
//! swapped for a test cluster's nodes) scrapes every node as `up` and loads every alert rule.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cluster::{poll_until, within, Cluster, ClusterOptions};
use serde_json::Value;

fn phase(text: &str) {
    eprintln!("t86: {text}");
}

fn ops_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops")
}

/// Runs `promtool args...` in `ops/` and fails with what it printed unless it succeeds.
fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(ops_dir())
        .output()
        .expect("promtool runs (Debian's prometheus package; `make deps` installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}: {said}");
    said
}

/// The alert names `ops/alerts.yml` defines.
fn alert_names() -> Vec<String> {
    std::fs::read_to_string(ops_dir().join("alerts.yml"))
        .expect("ops/alerts.yml")
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .map(|name| name.trim().to_owned())
        .collect()
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let checked = promtool(&["check", "rules", "alerts.yml"]);
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", alert_names().len())),
        "{checked}"
    );
    promtool(&["test", "rules", "alerts_test.yml"]);
    promtool(&["check", "config", "prometheus.yml"]);
}

/// A Prometheus process, stopped by its pid when dropped.
struct Prometheus {
    /// The process.
    child: Child,
    /// Its log, printed when the test fails.
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "prometheus log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// `ops/prometheus.yml` with its three local targets replaced by `targets` (`host:port`).
fn config_for(targets: &[String]) -> String {
    let mut config =
        std::fs::read_to_string(ops_dir().join("prometheus.yml")).expect("ops/prometheus.yml");
    for (i, target) in targets.iter().enumerate() {
        let local = format!("127.0.0.1:808{}", i + 1);
        assert!(
            config.contains(&local),
            "ops/prometheus.yml targets {local}"
        );
        config = config.replace(&local, target);
    }
    config
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
    response.json::<Value>().await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_node_up_and_loads_the_alert_rules() {
    let cluster = Cluster::start(3, ClusterOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let targets: Vec<String> = cluster
        .ids()
        .iter()
        .map(|id| cluster.api(*id).trim_start_matches("http://").to_owned())
        .collect();
    std::fs::write(dir.path().join("prometheus.yml"), config_for(&targets)).unwrap();
    std::fs::copy(ops_dir().join("alerts.yml"), dir.path().join("alerts.yml")).unwrap();
    let port = cluster::ports::reserve_ports_on(std::net::Ipv4Addr::LOCALHOST, 1).unwrap()[0];
    let log = dir.path().join("prometheus.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("prometheus runs (Debian's prometheus package; `make deps` installs it)");
    let prometheus = Prometheus { child, log };
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();

    within(Duration::from_secs(120), async {
        phase("--- every node's target is up");
        poll_until(
            "three orderq targets up",
            Duration::from_secs(60),
            || async {
                let targets = get_json(&http, &format!("{api}/targets")).await?;
                let active = targets["data"]["activeTargets"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let up = active.iter().filter(|t| t["health"] == "up").count();
                if active.len() == 3 && up == 3 {
                    Ok(())
                } else {
                    Err(format!("{up} of {} targets up: {active:?}", active.len()))
                }
            },
        )
        .await
        .unwrap();

        phase("--- every alert rule is loaded");
        let expected = alert_names();
        poll_until(
            "the alert rules loaded",
            Duration::from_secs(30),
            || async {
                let rules = get_json(&http, &format!("{api}/rules?type=alert")).await?;
                let loaded: Vec<String> = rules["data"]["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                    .filter_map(|r| r["name"].as_str().map(str::to_owned))
                    .collect();
                if expected.iter().all(|name| loaded.contains(name)) {
                    Ok(())
                } else {
                    Err(format!("loaded {loaded:?}, expected {expected:?}"))
                }
            },
        )
        .await
        .unwrap();

        phase("--- the cluster has a leader, so OrderqNoLeader is not firing");
        poll_until("a scraped leader", Duration::from_secs(30), || async {
            let query = format!("{api}/query?query=max(orderq_raft_is_leader)");
            let answer = get_json(&http, &query).await?;
            match answer["data"]["result"][0]["value"][1].as_str() {
                Some("1") => Ok(()),
                other => Err(format!("max(orderq_raft_is_leader) = {other:?}")),
            }
        })
        .await
        .unwrap();
    })
    .await;
    drop(prometheus);
}
