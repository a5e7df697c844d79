//! The timers checker bites: under leader kills and pauses with the mixed workload, the real
//! `orderq` closes every unpaid order on time; the mutant (`orderq-failpoints` with
//! `apply-clock-skew` armed: `apply` decides with each entry's raw stamp moved 5 s ahead,
//! ignoring the batch clock) must fail the `timers` checker on the same seed.

use std::path::Path;
use std::time::Duration;

use cluster::chaos::faults::FaultKind;
use cluster::chaos::mutant::{discard_data, run_on, seed_or, verdict, Binaries};
use cluster::chaos::report::Report;
use cluster::chaos::run::ChaosOptions;

/// The seed CI runs unless `ORDERQ_CHAOS_SEED` says otherwise.
const DEFAULT_SEED: u64 = 67;

/// How long faults are injected in each run: long enough for 3 s and 6 s pay windows to run out
/// several times around the faults.
const DURATION: Duration = Duration::from_secs(20);

/// The mutant's arming: `apply` runs 5 s ahead of the stamp, so every close is decided 5 s
/// after the deadline it wrote.
const MUTANT: &str = "apply-clock-skew=return(5000)";

/// One short run of `binary` under leader kills and pauses, `FAILPOINTS` set to `failpoints`.
async fn timer_run(seed: u64, binary: &Path, failpoints: Option<&str>, name: &str) -> Report {
    let options = ChaosOptions {
        seed,
        duration: DURATION,
        faults: vec![FaultKind::Kill, FaultKind::Pause],
        ..ChaosOptions::default()
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    run_on(binary, failpoints, options, dir, name).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_close_on_time_and_an_apply_off_the_batch_clock_is_caught() {
    let seed = seed_or(DEFAULT_SEED);
    let binaries = Binaries::locate().unwrap();

    eprintln!("--- the real orderq under leader kills and pauses, seed {seed}");
    let report = timer_run(seed, &binaries.real, None, "timer-report.json").await;
    assert!(report.passed, "{}", report.summary());
    assert!(
        verdict(&report, "timers").counts["expired_on_time"] > 0,
        "no order expired during the run: the check judged nothing"
    );

    eprintln!("--- the mutant ({MUTANT}) under the same faults");
    let report = timer_run(
        seed,
        &binaries.mutant,
        Some(MUTANT),
        "timer-mutant-report.json",
    )
    .await;
    let timers = verdict(&report, "timers");
    assert!(
        !timers.passed && timers.problems > 0,
        "the timers checker missed an apply that ignores the batch clock: {}",
        report.summary()
    );
    eprintln!(
        "--- the mutant closed orders late, as it must: {} problem(s), e.g. {:?}",
        timers.problems,
        timers.examples.first()
    );
    discard_data(&report);
}
