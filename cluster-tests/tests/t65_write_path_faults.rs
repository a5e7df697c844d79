//! Faults inside the write path, on real processes: nodes restarted with a crash point armed
//! (`orderq-failpoints`, the `failpoints` build `make test` puts beside `orderq`) abort before
//! or after the log sync and before or after an applied batch is written; and a node whose disk
//! fills up (a small tmpfs, so this part needs `mount`). Every checker of the chaos harness must
//! pass: nothing acknowledged is lost, replicas converge once the node is back.

use std::path::PathBuf;
use std::time::Duration;

use cluster::chaos::faults::FaultKind;
use cluster::chaos::mutant::seed_or;
use cluster::chaos::run::{run, ChaosOptions};
use cluster::process::{locate_binary, BINARY_ENV};
use cluster::within;

/// The seed CI runs unless `ORDERQ_CHAOS_SEED` says otherwise.
const DEFAULT_SEED: u64 = 65;

/// The failpoints build beside the normal binary.
fn failpoints_binary() -> PathBuf {
    let normal = locate_binary().expect("the orderq binary is built");
    let path = normal.with_file_name("orderq-failpoints");
    assert!(
        path.is_file(),
        "{} is missing: `make test` builds it (cargo build -p orderq-node --features failpoints)",
        path.display()
    );
    path
}

/// Whether this machine lets us mount a tmpfs (root with CAP_SYS_ADMIN).
fn can_mount_tmpfs() -> bool {
    let Ok(dir) = tempfile::tempdir() else {
        return false;
    };
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if mounted {
        let _ = std::process::Command::new("umount")
            .arg(dir.path())
            .status();
    }
    mounted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_points_and_a_full_disk_lose_nothing() {
    // Only this test runs in this process, so pointing every node at the failpoints build is
    // safe; in it the crash points stay inert unless a node is started with `FAILPOINTS`.
    std::env::set_var(BINARY_ENV, failpoints_binary());
    let seed = seed_or(DEFAULT_SEED);
    let mut faults = vec![FaultKind::CrashPoint];
    if can_mount_tmpfs() {
        faults.push(FaultKind::DiskFull);
    } else {
        eprintln!("--- cannot mount a tmpfs here: the disk-full fault is left out of this run");
    }
    eprintln!("--- write-path faults {faults:?}, seed {seed}");
    let report_path =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("write-path-report.json");
    let options = ChaosOptions {
        seed,
        duration: Duration::from_secs(60),
        faults: faults.clone(),
        report: Some(report_path.clone()),
        ..ChaosOptions::default()
    };
    let report = within(Duration::from_secs(300), run(options))
        .await
        .expect("the chaos harness runs");
    eprintln!("{}\nreport: {}", report.summary(), report_path.display());
    assert!(report.passed, "{}", report.summary());
    let crashed = report
        .faults
        .iter()
        .filter(|f| f.note.contains("crashed at its crash point"))
        .count();
    assert!(
        crashed >= 1,
        "no armed crash point fired: {:?}",
        report.faults
    );
    if faults.contains(&FaultKind::DiskFull) {
        let full = report
            .faults
            .iter()
            .filter(|f| f.note.contains("full disk"))
            .count();
        assert!(full >= 1, "no disk filled up: {:?}", report.faults);
    }
}
