//! The timers checker bites: under leader kills and pauses with the mixed workload, the real
//! `orderq` closes every unpaid order on time; the mutant (`orderq-failpoints` with
//! `apply-clock-skew` armed: `apply` decides with each entry's raw stamp moved 5 s ahead,
//! ignoring the batch clock) must fail the `timers` checker on the same seed.

use std::path::PathBuf;
use std::time::Duration;

use cluster::chaos::faults::FaultKind;
use cluster::chaos::report::Report;
use cluster::chaos::run::{run, ChaosOptions, SETTLE_TIMEOUT};
use cluster::process::{locate_binary, BINARY_ENV};
use cluster::within;

/// The seed CI runs unless `ORDERQ_CHAOS_SEED` says otherwise.
const DEFAULT_SEED: u64 = 67;

/// How long faults are injected in each run: long enough for 3 s and 6 s pay windows to run out
/// several times around the faults.
const DURATION: Duration = Duration::from_secs(20);

/// The mutant's arming: `apply` runs 5 s ahead of the stamp, so every close is decided 5 s
/// after the deadline it wrote.
const MUTANT: &str = "apply-clock-skew=return(5000)";

/// One short run of `binary` under leader kills and pauses, `FAILPOINTS` set to `failpoints`.
async fn timer_run(seed: u64, binary: &PathBuf, failpoints: Option<&str>, name: &str) -> Report {
    // Only this test runs in this process, so pointing the harness at a binary is safe.
    std::env::set_var(BINARY_ENV, binary);
    let report_path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let options = ChaosOptions {
        seed,
        duration: DURATION,
        faults: vec![FaultKind::Kill, FaultKind::Pause],
        report: Some(report_path.clone()),
        node_env: failpoints
            .map(|spec| vec![("FAILPOINTS".to_owned(), spec.to_owned())])
            .unwrap_or_default(),
        settle_timeout: SETTLE_TIMEOUT,
        ..ChaosOptions::default()
    };
    let report = within(Duration::from_secs(180), run(options))
        .await
        .expect("the chaos harness runs");
    eprintln!("{}\nreport: {}", report.summary(), report_path.display());
    report
}

fn timers(report: &Report) -> &cluster::chaos::check::Verdict {
    report
        .verdicts
        .iter()
        .find(|v| v.checker == "timers")
        .expect("a timers verdict")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_close_on_time_and_an_apply_off_the_batch_clock_is_caught() {
    let seed = std::env::var("ORDERQ_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let real = locate_binary().expect("the orderq binary is built");
    let mutant = real.with_file_name("orderq-failpoints");
    assert!(
        mutant.is_file(),
        "{} is missing: `make test` builds it (cargo build -p orderq-node --features failpoints)",
        mutant.display()
    );

    eprintln!("--- the real orderq under leader kills and pauses, seed {seed}");
    let report = timer_run(seed, &real, None, "timer-report.json").await;
    assert!(report.passed, "{}", report.summary());
    assert!(
        timers(&report).counts["expired_on_time"] > 0,
        "no order expired during the run: the check judged nothing"
    );

    eprintln!("--- the mutant ({MUTANT}) under the same faults");
    let report = timer_run(seed, &mutant, Some(MUTANT), "timer-mutant-report.json").await;
    let verdict = timers(&report);
    assert!(
        !verdict.passed && verdict.problems > 0,
        "the timers checker missed an apply that ignores the batch clock: {}",
        report.summary()
    );
    eprintln!(
        "--- the mutant closed orders late, as it must: {} problem(s), e.g. {:?}",
        verdict.problems,
        verdict.examples.first()
    );
    if let Some(dir) = &report.data_dir {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            eprintln!("--- removing the mutant's data {dir}: {e}");
        }
    }
}
