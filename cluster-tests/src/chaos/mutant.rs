//! Proof that a checker bites: the same seed run on the real `orderq` and on a mutant (the
//! failpoints build, `orderq-failpoints`, with one guarantee switched off through `FAILPOINTS`).
//! The real binary must pass; the mutant must fail the checker that guards what it broke, or the
//! harness proves nothing about that guarantee.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::check::Verdict;
use super::report::Report;
use super::run::{run, ChaosOptions};
use crate::error::{Error, Result};
use crate::process::{locate_binary, BINARY_ENV};
use crate::wait::within;

/// The environment variable that replays another seed than a test's default.
pub const SEED_ENV: &str = "ORDERQ_CHAOS_SEED";

/// How long one run of a pair may take, settling and checks included.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// The seed to run: `ORDERQ_CHAOS_SEED` when set, else `default`.
pub fn seed_or(default: u64) -> u64 {
    std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The real `orderq` and the mutant beside it (`make test` builds both).
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The binary users run.
    pub real: PathBuf,
    /// `orderq-failpoints`: the same code with failpoints compiled in.
    pub mutant: PathBuf,
}

impl Binaries {
    /// Finds both, saying how to build what is missing.
    pub fn locate() -> Result<Self> {
        let real = locate_binary()?;
        let mutant = real.with_file_name("orderq-failpoints");
        if !mutant.is_file() {
            return Err(Error::Usage(format!(
                "{} is missing: `make test` builds it (cargo build -p orderq-node --features \
                 failpoints, copied to orderq-failpoints)",
                mutant.display()
            )));
        }
        Ok(Binaries { real, mutant })
    }
}

/// Runs `options` on `binary`, every node started with `FAILPOINTS=failpoints` when given, and
/// the report written as `report` in `dir`. Only one run at a time per process: the binary is
/// chosen through the process environment.
pub async fn run_on(
    binary: &Path,
    failpoints: Option<&str>,
    options: ChaosOptions,
    dir: &Path,
    report: &str,
) -> Report {
    std::env::set_var(BINARY_ENV, binary);
    let report_path = dir.join(report);
    let options = ChaosOptions {
        report: Some(report_path.clone()),
        node_env: failpoints
            .map(|spec| vec![("FAILPOINTS".to_owned(), spec.to_owned())])
            .unwrap_or_default(),
        ..options
    };
    let report = within(RUN_LIMIT, run(options))
        .await
        .expect("the chaos harness runs");
    eprintln!("{}\nreport: {}", report.summary(), report_path.display());
    report
}

/// The verdict of `checker` in `report`.
pub fn verdict<'a>(report: &'a Report, checker: &str) -> &'a Verdict {
    report
        .verdicts
        .iter()
        .find(|v| v.checker == checker)
        .unwrap_or_else(|| panic!("no {checker} verdict in the report"))
}

/// Removes a mutant run's data: it was meant to fail, so what the harness kept is of no use.
pub fn discard_data(report: &Report) {
    if let Some(dir) = &report.data_dir {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            eprintln!("--- removing the mutant's data {dir}: {e}");
        }
    }
}
