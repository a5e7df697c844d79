//! The chaos harness, short enough for CI: about a minute of kills, pauses, partitions, flaky
//! links and full restarts under the mixed workload (orders, flash sale, publishes, refunds),
//! then every checker, the queue's after it drained; and the HTTP abuse scenario. Longer runs: `cargo run --bin chaos -- --duration-secs 600 --seed N`.
//!
//! `ORDERQ_CHAOS_SEED` replays another seed; the report (and the history beside it) is written
//! to `$CARGO_TARGET_TMPDIR/chaos-report.json`, and a failing run keeps every node's data.

use std::time::Duration;

use cluster::chaos::abuse;
use cluster::chaos::mutant::seed_or;
use cluster::chaos::run::{run, ChaosOptions};
use cluster::within;

/// The seed CI runs unless `ORDERQ_CHAOS_SEED` says otherwise.
const DEFAULT_SEED: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_promise_holds_under_a_minute_of_faults() {
    let seed = seed_or(DEFAULT_SEED);
    eprintln!("--- chaos run, seed {seed}");
    let report_path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos-report.json");
    let options = ChaosOptions {
        seed,
        duration: Duration::from_secs(60),
        report: Some(report_path.clone()),
        ..ChaosOptions::default()
    };
    let report = within(Duration::from_secs(240), run(options))
        .await
        .expect("the chaos harness runs");
    eprintln!("{}\nreport: {}", report.summary(), report_path.display());
    assert!(
        report.faults.len() >= 4,
        "too few faults injected: {:?}",
        report.faults
    );
    assert!(report.passed, "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abuse_is_answered_with_documented_errors_and_changes_nothing() {
    eprintln!("--- HTTP abuse scenario");
    let report = within(Duration::from_secs(120), abuse::run())
        .await
        .expect("the abuse scenario runs");
    eprintln!("{}", report.summary());
    assert!(report.passed, "{}", report.summary());
}
