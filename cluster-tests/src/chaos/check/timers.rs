//! Orders close on time: never before their deadline, and promptly after it while the cluster
//! is healthy. A lost timer (an order that stays open), a timer fired early, or an `apply` that
//! decides deadlines with the wrong clock all fail here.
//!
//! What is judged, for every order of the final state (times are wall-clock milliseconds; the
//! harness and the nodes share the host's clock, so the cluster's times and the client's agree to
//! within [`CLOCK_TOLERANCE_MS`]):
//! - **Never early.** An order closed `expired` has `closed_at >= expires_at`; and when its create
//!   was acknowledged to a client, neither `expires_at` nor `closed_at` is before the moment the
//!   client sent the create plus the `pay_within_secs` it asked for: the promise is kept by a
//!   correct clock, not only by the cluster's own figures.
//! - **Promptly when healthy.** The deadline counts from `expires_at`, or, when an unhealthy
//!   span (a fault, until the first write acknowledged after it healed, see
//!   [`super::progress::unhealthy_spans`]) begins before the close was due (within
//!   [`LATE_BOUND_MS`] after `expires_at`: an order due 6 ms before all three nodes lose power
//!   closes after they come back), from the end of that span. An order closed `expired`
//!   must close within [`LATE_BOUND_MS`] of it. Deadlines whose bound falls after the workload
//!   stopped are not judged for promptness (the harness heals and drains then), only for closing.
//! - **Not lost.** An order still `pending_payment` when the final state was read, whose
//!   `expires_at` passed more than [`LOST_AFTER_MS`] before, lost its timer.
//!
//! Orders paid or cancelled before their deadline are not the timer's business.

use std::collections::BTreeMap;

use super::{FinalState, Verdict};
use crate::chaos::history::{OpKind, Operation, Outcome};
use crate::model::{epoch_ms, OrderState};

/// How long after its (healthy) deadline an unpaid order may take to close.
pub const LATE_BOUND_MS: i64 = 2_000;

/// How far the cluster's clock and the harness's may disagree (the same host clock, read at
/// slightly different moments).
pub const CLOCK_TOLERANCE_MS: i64 = 500;

/// An order still open this long after its deadline when the final state was read lost its
/// close (the final read comes after the queue drained and the cluster settled).
pub const LOST_AFTER_MS: i64 = 10_000;

/// When a client was promised an order stays open: the create's send time plus its window.
fn promised_open_until(operations: &[Operation], started_epoch_ms: i64) -> BTreeMap<String, i64> {
    let mut promised = BTreeMap::new();
    for op in operations {
        if let (
            OpKind::CreateOrder {
                pay_within_secs, ..
            },
            Outcome::Ok { body, .. },
        ) = (&op.kind, &op.outcome)
        {
            if let Some(id) = body["id"].as_str() {
                let sent = started_epoch_ms + i64::try_from(op.invoked_ms).unwrap_or(i64::MAX);
                let window = i64::try_from(*pay_within_secs)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1000);
                promised.insert(id.to_owned(), sent.saturating_add(window));
            }
        }
    }
    promised
}

/// The moment (run ms) from which an order due at `due` must close: `due`, or the end of the
/// unhealthy span(s) that begin before its close was due (`from + LATE_BOUND_MS`).
fn healthy_from(due: i64, spans: &[(u64, u64)]) -> i64 {
    let mut from = due;
    loop {
        let inside = spans.iter().find(|(start, end)| {
            i64::try_from(*start).unwrap_or(i64::MAX) < from.saturating_add(LATE_BOUND_MS)
                && from < i64::try_from(*end).unwrap_or(i64::MAX)
        });
        match inside {
            Some((_, end)) => from = i64::try_from(*end).unwrap_or(i64::MAX),
            None => return from,
        }
    }
}

/// Runs the checker. `spans` are the unhealthy spans in run ms, `started_epoch_ms` the run's
/// time zero on the wall clock, `workload_end_ms` when clients stopped and `read_ms` when the
/// final state was read (both run ms).
pub fn check(
    operations: &[Operation],
    final_state: &FinalState,
    spans: &[(u64, u64)],
    started_epoch_ms: i64,
    workload_end_ms: u64,
    read_ms: u64,
) -> Verdict {
    if !final_state.read {
        return Verdict::not_judged("timers");
    }
    let mut verdict = Verdict::new("timers");
    let promised = promised_open_until(operations, started_epoch_ms);
    let to_run_ms = |epoch: i64| epoch - started_epoch_ms;
    let workload_end = i64::try_from(workload_end_ms).unwrap_or(i64::MAX);
    let read_at = i64::try_from(read_ms).unwrap_or(i64::MAX);
    let (mut on_time, mut excused, mut unjudged, mut latest) = (0u64, 0u64, 0u64, 0i64);
    for order in final_state.orders.values() {
        let Some(expires) = order.expires_at.as_deref().and_then(epoch_ms) else {
            continue;
        };
        let due = to_run_ms(expires);
        match order.state {
            OrderState::PendingPayment if due + LOST_AFTER_MS < read_at => {
                verdict.checked += 1;
                verdict.problem(format!(
                    "order {} is still pending_payment {} ms after its expires_at",
                    order.id,
                    read_at - due
                ));
            }
            OrderState::Closed if order.close_reason.as_deref() == Some("expired") => {
                verdict.checked += 1;
                let Some(closed) = order.closed_at.as_deref().and_then(epoch_ms) else {
                    verdict.problem(format!(
                        "order {} closed expired without closed_at",
                        order.id
                    ));
                    continue;
                };
                if closed < expires {
                    verdict.problem(format!(
                        "order {} closed {} ms before its expires_at",
                        order.id,
                        expires - closed
                    ));
                }
                if let Some(promise) = promised.get(&order.id) {
                    let early = promise - expires.min(closed);
                    if early > CLOCK_TOLERANCE_MS {
                        verdict.problem(format!(
                            "order {} closed {early} ms before the window its client asked for \
                             ran out (by the harness's clock)",
                            order.id
                        ));
                    }
                }
                let from = healthy_from(due, spans);
                if from + LATE_BOUND_MS > workload_end {
                    unjudged += 1;
                    continue;
                }
                if from > due {
                    excused += 1;
                }
                let late = to_run_ms(closed) - from;
                latest = latest.max(late);
                if late > LATE_BOUND_MS {
                    verdict.problem(format!(
                        "order {} closed {late} ms after it was due (expires_at {} ms into the \
                         run{}), more than {LATE_BOUND_MS} ms",
                        order.id,
                        due,
                        if from > due {
                            format!(", the cluster healthy again at {from} ms")
                        } else {
                            String::new()
                        }
                    ));
                } else {
                    on_time += 1;
                }
            }
            _ => {}
        }
    }
    let counts = &mut verdict.counts;
    counts.insert("expired_on_time", on_time);
    counts.insert("due_in_a_fault", excused);
    counts.insert("due_after_workload", unjudged);
    counts.insert("slowest_close_ms", u64::try_from(latest).unwrap_or(0));
    verdict
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use serde_json::json;

    /// Run time zero: 2026-01-01T00:00:00Z.
    const ZERO: i64 = 1_767_225_600_000;

    fn expired(id: &str, expires: &str, closed: &str) -> serde_json::Value {
        order(
            id,
            "closed",
            json!({"close_reason": "expired", "expires_at": expires, "closed_at": closed}),
        )
    }

    fn create(id: &str, invoked_ms: u64, window: u64) -> Operation {
        op(
            OpKind::CreateOrder {
                key: format!("k-{id}"),
                user_id: "u1".into(),
                items: vec![("A".into(), 1)],
                pay_within_secs: window,
            },
            (invoked_ms, invoked_ms + 5),
            ok(json!({"id": id})),
        )
    }

    #[test]
    fn orders_closed_on_time_pass() {
        let state = final_state(&[
            expired("o1", "2026-01-01T00:00:10Z", "2026-01-01T00:00:10.300Z"),
            // Due inside a fault: judged from the end of its span (20 s).
            expired("o2", "2026-01-01T00:00:15Z", "2026-01-01T00:00:21Z"),
        ]);
        let history = [create("o1", 4_000, 6)];
        let verdict = check(&history, &state, &[(14_000, 20_000)], ZERO, 60_000, 70_000);
        assert!(verdict.passed, "{:?}", verdict.examples);
        assert_eq!(verdict.counts["expired_on_time"], 2);

        // Due 6 ms before a fault began: its close could not commit before the fault.
        let state = final_state(&[expired(
            "o3",
            "2026-01-01T00:00:13.994Z",
            "2026-01-01T00:00:21Z",
        )]);
        let verdict = check(&[], &state, &[(14_000, 20_000)], ZERO, 60_000, 70_000);
        assert!(verdict.passed, "{:?}", verdict.examples);
        assert_eq!(verdict.counts["expired_on_time"], 1);
        assert_eq!(verdict.counts["due_in_a_fault"], 1);
    }

    #[test]
    fn early_late_and_lost_closes_fail() {
        let late = final_state(&[expired(
            "o1",
            "2026-01-01T00:00:10Z",
            "2026-01-01T00:00:15Z",
        )]);
        assert!(!check(&[], &late, &[], ZERO, 60_000, 70_000).passed, "late");
        let early = final_state(&[expired(
            "o1",
            "2026-01-01T00:00:10Z",
            "2026-01-01T00:00:09Z",
        )]);
        assert!(
            !check(&[], &early, &[], ZERO, 60_000, 70_000).passed,
            "early"
        );
        let promised_later = final_state(&[expired(
            "o1",
            "2026-01-01T00:00:10Z",
            "2026-01-01T00:00:10Z",
        )]);
        let history = [create("o1", 8_000, 6)];
        assert!(
            !check(&history, &promised_later, &[], ZERO, 60_000, 70_000).passed,
            "closed before the client's window ran out"
        );
        let lost = final_state(&[order(
            "o1",
            "pending_payment",
            json!({"expires_at": "2026-01-01T00:00:10Z"}),
        )]);
        assert!(!check(&[], &lost, &[], ZERO, 60_000, 70_000).passed, "lost");
    }
}
