//! The cluster makes progress: a run where it stopped acknowledging writes after the first fault
//! must not pass on the strength of having lost nothing.
//!
//! After each fault is healed, a write must be acknowledged again within [`RECOVERY_BOUND_MS`]
//! (the time to recover is reported per fault). A fault followed by the next one before any
//! write was acknowledged is judged only if that gap alone exceeded the bound. Over the healthy
//! time of the run (the workload's time outside every fault and its recovery), at least
//! [`FLOOR_PER_MINUTE`] writes must be acknowledged per minute.

use super::Verdict;
use crate::chaos::history::{Operation, Outcome};

/// How long after healing the cluster may take to acknowledge a write again.
pub const RECOVERY_BOUND_MS: u64 = 20_000;

/// Acknowledged writes per minute of healthy time, at least (the CI workload does thousands).
pub const FLOOR_PER_MINUTE: u64 = 60;

/// When one fault was injected and healed, in run milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultWindow {
    /// Injected.
    pub injected_ms: u64,
    /// Healed.
    pub healed_ms: u64,
}

/// When the first write after `after_ms` was acknowledged (its answer's time), if any was.
pub fn first_ack_after(operations: &[Operation], after_ms: u64) -> Option<u64> {
    operations
        .iter()
        .filter(|op| is_acked_write(op) && op.completed_ms > after_ms)
        .map(|op| op.completed_ms)
        .min()
}

/// The spans of run time the cluster was not healthy: from each fault's injection until the
/// first write acknowledged after it healed (or the next fault, or the end of the workload,
/// whichever comes first). What a fault did is judged by its own recovery; what happened outside
/// these spans is held to the healthy bounds.
pub fn unhealthy_spans(
    operations: &[Operation],
    windows: &[FaultWindow],
    workload_end_ms: u64,
) -> Vec<(u64, u64)> {
    windows
        .iter()
        .enumerate()
        .map(|(i, window)| {
            let next_fault = windows
                .get(i + 1)
                .map_or(workload_end_ms, |next| next.injected_ms);
            let end = first_ack_after(operations, window.healed_ms)
                .map_or(next_fault, |at| at.min(next_fault));
            (window.injected_ms, end.max(window.healed_ms))
        })
        .collect()
}

/// Whether `op` is a write the cluster acknowledged.
fn is_acked_write(op: &Operation) -> bool {
    op.kind.is_write() && matches!(op.outcome, Outcome::Ok { .. })
}

/// Runs the checker over the faults `windows` (in order) of a workload that ran until
/// `workload_end_ms`.
pub fn check(operations: &[Operation], windows: &[FaultWindow], workload_end_ms: u64) -> Verdict {
    let mut verdict = Verdict::new("progress");
    let mut unhealthy = Vec::new();
    let mut slowest = 0;
    for (i, window) in windows.iter().enumerate() {
        verdict.checked += 1;
        let next_fault = windows
            .get(i + 1)
            .map_or(workload_end_ms, |next| next.injected_ms);
        let recovered = first_ack_after(operations, window.healed_ms);
        match recovered {
            Some(at) if at <= next_fault || at - window.healed_ms <= RECOVERY_BOUND_MS => {
                let took = at - window.healed_ms;
                slowest = slowest.max(took);
                if took > RECOVERY_BOUND_MS {
                    verdict.problem(format!(
                        "fault {i} healed at {} ms: first write acknowledged {took} ms later",
                        window.healed_ms
                    ));
                }
                unhealthy.push((window.injected_ms, at.min(next_fault)));
            }
            _ => {
                if next_fault - window.healed_ms > RECOVERY_BOUND_MS {
                    verdict.problem(format!(
                        "fault {i} healed at {} ms: no write acknowledged in the {} ms before {}",
                        window.healed_ms,
                        next_fault - window.healed_ms,
                        if i + 1 < windows.len() {
                            "the next fault"
                        } else {
                            "the workload stopped"
                        }
                    ));
                }
                unhealthy.push((window.injected_ms, next_fault));
            }
        }
    }
    let unhealthy_ms: u64 = unhealthy
        .iter()
        .map(|(from, to)| to.saturating_sub(*from))
        .sum();
    let healthy_ms = workload_end_ms.saturating_sub(unhealthy_ms);
    let acked_healthy = operations
        .iter()
        .filter(|op| is_acked_write(op) && op.completed_ms <= workload_end_ms)
        .filter(|op| {
            !unhealthy
                .iter()
                .any(|(from, to)| (*from..*to).contains(&op.completed_ms))
        })
        .count() as u64;
    let floor = FLOOR_PER_MINUTE * healthy_ms / 60_000;
    if acked_healthy < floor {
        verdict.problem(format!(
            "{acked_healthy} writes acknowledged in {healthy_ms} ms of healthy time, fewer than \
             {FLOOR_PER_MINUTE} a minute"
        ));
    }
    verdict.counts.insert("healthy_ms", healthy_ms);
    verdict.counts.insert("acked_writes_healthy", acked_healthy);
    verdict.counts.insert("slowest_recovery_ms", slowest);
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::history::OpKind;

    fn pay(completed_ms: u64, ok: bool) -> Operation {
        Operation {
            client: 0,
            node: 1,
            kind: OpKind::Pay {
                order_id: "1".into(),
                payment_ref: "p".into(),
            },
            invoked_ms: completed_ms.saturating_sub(5),
            completed_ms,
            attempts: 1,
            outcome: if ok {
                Outcome::Ok {
                    status: 200,
                    body: serde_json::json!({}),
                }
            } else {
                Outcome::Unknown {
                    reason: "timeout".into(),
                }
            },
        }
    }

    #[test]
    fn a_cluster_that_recovers_passes_and_reports_its_recovery() {
        let ops: Vec<Operation> = (0..120).map(|i| pay(i * 500, true)).collect();
        let windows = [FaultWindow {
            injected_ms: 10_000,
            healed_ms: 12_000,
        }];
        let verdict = check(&ops, &windows, 60_000);
        assert!(verdict.passed, "{:?}", verdict.examples);
        assert_eq!(verdict.counts["slowest_recovery_ms"], 500);
        assert_eq!(first_ack_after(&ops, 12_000), Some(12_500));
    }

    #[test]
    fn a_cluster_that_stops_acknowledging_after_a_fault_fails() {
        let mut ops: Vec<Operation> = (0..20).map(|i| pay(i * 500, true)).collect();
        ops.extend((20..120).map(|i| pay(i * 500, false)));
        let windows = [FaultWindow {
            injected_ms: 10_000,
            healed_ms: 12_000,
        }];
        let verdict = check(&ops, &windows, 60_000);
        assert!(!verdict.passed);
    }

    #[test]
    fn too_few_acknowledgements_fail_the_floor() {
        let ops = vec![pay(1_000, true), pay(50_000, true)];
        let verdict = check(&ops, &[], 60_000);
        assert!(!verdict.passed);
    }
}
