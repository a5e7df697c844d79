//! [`Report`]: what a chaos run did and what the checkers concluded, written as JSON.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::check::{Deliveries, Verdict};
use super::faults::FaultStep;
use super::history::Operation;
use crate::error::{Error, Result};
use crate::queue::SubscriptionStats;

/// Operation counts by kind, then by outcome.
pub type CountsByKind = BTreeMap<&'static str, BTreeMap<&'static str, u64>>;

/// Operation counts by outcome.
pub type Counts = BTreeMap<&'static str, u64>;

/// One fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct InjectedFault {
    /// What was planned.
    #[serde(flatten)]
    pub step: FaultStep,
    /// The nodes it hit (the leader resolved at injection time).
    pub nodes: Vec<u64>,
    /// Run time (ms) it was injected.
    pub injected_ms: u64,
    /// Run time (ms) it was healed.
    pub healed_ms: u64,
    /// Run time (ms) the nodes agreed on a leader again; `None` if they did not in time.
    pub recovered_ms: Option<u64>,
    /// Time (ms) from healing to the first write acknowledged after it; `None` if none was
    /// before the run's workload stopped.
    pub time_to_recover_ms: Option<u64>,
    /// What healing found (whether an armed crash point fired).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The seed: the same seed replays the same fault schedule and client choices.
    pub seed: u64,
    /// Planned duration of the faulty phase, seconds.
    pub duration_secs: u64,
    /// Wall time of the whole run, seconds (start, faults, settling, checks).
    pub elapsed_secs: u64,
    /// Every fault injected, in order.
    pub faults: Vec<InjectedFault>,
    /// Operations by kind, then by outcome (`ok`, `failed`, `unknown`).
    pub operations: CountsByKind,
    /// Operations by outcome over all kinds.
    pub totals: Counts,
    /// Each checker's verdict.
    pub verdicts: Vec<Verdict>,
    /// The harness's subscription groups after the queue drained (delivered, dead, failed
    /// attempts), empty when it did not drain.
    pub subscriptions: Vec<SubscriptionStats>,
    /// Things that went wrong outside the checkers: a node that exited on its own, a cluster
    /// that did not recover from a fault in time.
    pub incidents: Vec<String>,
    /// Every verdict passed and nothing went wrong.
    pub passed: bool,
    /// Where the nodes' data and logs were kept (on failure, or when asked).
    pub data_dir: Option<String>,
    /// What the timeline picture beside the report shows (it has no text), when one was drawn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<super::timeline::TimelineLegend>,
}

impl Report {
    /// Counts operations by kind and outcome.
    pub fn count(operations: &[Operation]) -> (CountsByKind, Counts) {
        let mut by_kind = CountsByKind::new();
        let mut totals = Counts::new();
        for operation in operations {
            *by_kind
                .entry(operation.kind.name())
                .or_default()
                .entry(operation.outcome.name())
                .or_default() += 1;
            *totals.entry(operation.outcome.name()).or_default() += 1;
        }
        (by_kind, totals)
    }

    /// Writes the report as pretty JSON to `path`, the history as JSON lines beside it (`path`
    /// with `.history.jsonl` appended), and every call the webhook receiver and the payment
    /// provider got (`.deliveries.jsonl`), so a missing or doubled delivery can be traced.
    pub fn write(
        &self,
        path: &Path,
        operations: &[Operation],
        deliveries: &Deliveries,
    ) -> Result<()> {
        let io = |context: String| move |source| Error::Io { context, source };
        let json = serde_json::to_string_pretty(self).unwrap_or_default();
        std::fs::write(path, json).map_err(io(format!("writing {}", path.display())))?;
        let history_path = format!("{}.history.jsonl", path.display());
        let lines: String = operations
            .iter()
            .filter_map(|o| serde_json::to_string(o).ok())
            .map(|line| line + "\n")
            .collect();
        std::fs::write(&history_path, lines).map_err(io(format!("writing {history_path}")))?;
        let deliveries_path = format!("{}.deliveries.jsonl", path.display());
        let calls = deliveries
            .webhook_calls
            .iter()
            .map(|call| ("webhook", call))
            .chain(
                deliveries
                    .provider_calls
                    .iter()
                    .map(|call| ("provider", call)),
            );
        let lines: String = calls
            .map(|(to, call)| {
                serde_json::json!({"to": to, "id": call.id, "attempt": call.attempt,
                    "idempotency_key": call.idempotency_key, "at_ms": call.at_ms,
                    "acked": call.acked, "body": call.body})
                .to_string()
                    + "\n"
            })
            .collect();
        std::fs::write(&deliveries_path, lines).map_err(io(format!("writing {deliveries_path}")))
    }

    /// A few lines for a terminal: totals, faults and verdicts.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "chaos seed {}: {} s of faults, {} s in all; operations {:?}; {} faults injected\n",
            self.seed,
            self.duration_secs,
            self.elapsed_secs,
            self.totals,
            self.faults.len()
        );
        if !self.faults.is_empty() {
            let recoveries: Vec<String> = self
                .faults
                .iter()
                .map(|f| match f.time_to_recover_ms {
                    Some(ms) => format!("{} {ms}", f.step.fault.kind().name()),
                    None => format!("{} none", f.step.fault.kind().name()),
                })
                .collect();
            out.push_str(&format!(
                "  ms from healing to the next acknowledged write: {}\n",
                recoveries.join(", ")
            ));
        }
        for verdict in &self.verdicts {
            out.push_str(&format!(
                "  {:<13} {} ({} checked, {} problems) {}\n",
                verdict.checker,
                if verdict.passed { "PASS" } else { "FAIL" },
                verdict.checked,
                verdict.problems,
                verdict.note
            ));
            if !verdict.counts.is_empty() {
                let counts: Vec<String> = verdict
                    .counts
                    .iter()
                    .map(|(name, n)| format!("{name} {n}"))
                    .collect();
                out.push_str(&format!("      {}\n", counts.join(", ")));
            }
            for example in &verdict.examples {
                out.push_str(&format!("      {example}\n"));
            }
        }
        for group in &self.subscriptions {
            out.push_str(&format!(
                "  group {} ({}): delivered {}, dead {}, failed attempts {}\n",
                group.group, group.topic, group.delivered, group.dead, group.failures
            ));
        }
        for incident in &self.incidents {
            out.push_str(&format!("  incident: {incident}\n"));
        }
        out.push_str(if self.passed { "PASSED" } else { "FAILED" });
        if let Some(dir) = &self.data_dir {
            out.push_str(&format!("; data and logs kept in {dir}"));
        }
        out
    }
}
