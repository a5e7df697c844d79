//! `chaos`: runs the chaos harness against a fresh three-node cluster of the `orderq` binary
//! (`$ORDERQ_BIN`) and writes a report. Exits non-zero when a checker fails.
//!
//! ```sh
//! cargo build --workspace --bins
//! cargo run --bin chaos -- --seed 7 --duration-secs 600 --report chaos-report.json
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cluster::chaos::abuse;
use cluster::chaos::faults::FaultKind;
use cluster::chaos::run::{run, ChaosOptions, SETTLE_TIMEOUT};
use cluster::chaos::workload::WorkloadPlan;

/// Kill, pause and partition a real three-node orderq cluster under a mixed workload, then
/// check the history: nothing acknowledged lost, stock conserved, states forward only, replicas
/// equal, single-order operations linearizable, every paid order's event and every acknowledged
/// publish delivered at least once, every refund settled.
#[derive(Debug, Parser)]
struct Args {
    /// Seed of the fault schedule and the clients' choices; the same seed replays the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long faults are injected while the workload runs (settling and checks come after).
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// Fault kinds to draw from (comma-separated); all by default.
    #[arg(long, value_delimiter = ',', value_enum)]
    faults: Vec<FaultKind>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 12)]
    clients: u32,
    /// Write the JSON report here (the timeline picture to FILE.timeline.png, the history to
    /// FILE.history.jsonl, the webhook and provider calls to FILE.deliveries.jsonl).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Keep the nodes' data and logs even when every check passes (always kept on failure).
    #[arg(long)]
    keep_data: bool,
    /// Start every node with `FAILPOINTS=SPEC` (a failpoints build, e.g. `log-skip-sync=return`
    /// for the mutant that acknowledges unsynced log appends).
    #[arg(long)]
    failpoints: Option<String>,
    /// How long the healed cluster may take to settle before its state is read anyway.
    #[arg(long, default_value_t = SETTLE_TIMEOUT.as_secs())]
    settle_secs: u64,
    /// Run the HTTP abuse scenario instead of the fault schedule.
    #[arg(long)]
    abuse: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.abuse {
        return match abuse::run().await {
            Ok(report) => {
                println!("{}", report.summary());
                if let Some(path) = &args.report {
                    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
                    if let Err(e) = std::fs::write(path, json) {
                        eprintln!("chaos: writing {}: {e}", path.display());
                        return ExitCode::from(2);
                    }
                }
                if report.passed {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("chaos: abuse scenario could not run: {e}");
                ExitCode::from(2)
            }
        };
    }
    let options = ChaosOptions {
        seed: args.seed,
        duration: Duration::from_secs(args.duration_secs),
        faults: if args.faults.is_empty() {
            FaultKind::ALL.to_vec()
        } else {
            args.faults
        },
        plan: WorkloadPlan {
            clients: args.clients,
            ..WorkloadPlan::default()
        },
        keep_data: args.keep_data,
        report: args.report,
        node_env: args
            .failpoints
            .map(|spec| vec![("FAILPOINTS".to_owned(), spec)])
            .unwrap_or_default(),
        settle_timeout: Duration::from_secs(args.settle_secs),
    };
    match run(options).await {
        Ok(report) => {
            println!("{}", report.summary());
            if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("chaos: the harness could not run: {e}");
            ExitCode::from(2)
        }
    }
}
