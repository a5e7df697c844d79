//! Every paid order's `order.paid` reached the webhook at least once.
//!
//! Paying an order publishes `order.paid` in the same atomic step, and the group subscribed to
//! it before the first order must deliver it, across leader changes and restarts. A paid order
//! is one whose pay was acknowledged, or one the final state holds paid or in a refund state
//! (a pay whose answer was lost may still have happened). Each must have arrived acknowledged
//! at least once, as one message; duplicates are counted, not failed. An `order.paid` of an
//! order that is not paid is a problem too.

use std::collections::BTreeSet;

use super::delivery::{arrivals, judge, Expectation};
use super::{is_paid_branch, FinalState, Verdict};
use crate::chaos::history::{OpKind, Operation, Outcome};
use crate::chaos::subscribers::{PAID_GROUP, PAID_TOPIC};

/// Runs the checker.
pub fn check(operations: &[Operation], final_state: &FinalState) -> Verdict {
    let mut verdict = Verdict::new("paid_events");
    let mut paid: BTreeSet<String> = operations
        .iter()
        .filter_map(|operation| match (&operation.kind, &operation.outcome) {
            (OpKind::Pay { order_id, .. }, Outcome::Ok { .. }) => Some(order_id.clone()),
            _ => None,
        })
        .collect();
    let possible = if final_state.read {
        paid.extend(
            final_state
                .orders
                .values()
                .filter(|o| is_paid_branch(o.state))
                .map(|o| o.id.clone()),
        );
        paid.clone()
    } else {
        verdict.note = "the final state was not read: only acknowledged pays are expected".into();
        // Without the final state, an unknown pay may have paid any order it named.
        operations
            .iter()
            .filter_map(|o| match &o.kind {
                OpKind::Pay { order_id, .. } => Some(order_id.clone()),
                _ => None,
            })
            .collect()
    };
    let deliveries = &final_state.deliveries;
    let arrived = arrivals(&deliveries.webhook_calls, PAID_TOPIC, |call| {
        call.body["payload"]["id"].as_str().map(str::to_owned)
    });
    let expectation = Expectation {
        group: PAID_GROUP,
        what: "order.paid of order",
        expected: &paid,
        possible: &possible,
    };
    judge(&mut verdict, expectation, &arrived, deliveries);
    verdict
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::receiver::Received;
    use serde_json::json;

    /// A webhook call delivering `order.paid` of order `id` as message `message`.
    fn paid_event(message: &str, id: &str, acked: bool) -> Received {
        Received {
            id: message.into(),
            attempt: 1,
            idempotency_key: None,
            at_ms: 0,
            body: json!({"id": message, "topic": "order.paid", "key": id, "payload": {"id": id}}),
            acked,
            signature_valid: None,
        }
    }

    fn paid(id: &str) -> serde_json::Value {
        order(
            id,
            "paid",
            json!({"payment_ref": "p", "paid_at": "2026-01-01T00:01:00Z"}),
        )
    }

    fn pay(id: &str) -> Operation {
        op(
            OpKind::Pay {
                order_id: id.into(),
                payment_ref: "p".into(),
            },
            (2, 3),
            ok(paid(id)),
        )
    }

    #[test]
    fn a_paid_order_whose_event_never_arrived_fails() {
        let history = [created("o1"), pay("o1"), created("o2")];
        // o2 was paid by a pay whose answer was lost: the final state says so.
        let mut state = final_state(&[paid("o1"), paid("o2")]);
        state.deliveries.webhook_calls = vec![
            paid_event("m1", "o1", false),
            paid_event("m1", "o1", true),
            paid_event("m1", "o1", true),
            paid_event("m2", "o2", true),
        ];
        state.deliveries.drained = true;
        let delivered = check(&history, &state);
        assert!(delivered.passed, "{:?}", delivered.examples);
        assert_eq!(delivered.counts["delivered"], 2);
        assert_eq!(delivered.counts["duplicates"], 1);

        state.deliveries.webhook_calls.pop();
        let missing = check(&history, &state);
        assert!(!missing.passed, "o2's order.paid is missing");
        assert_eq!(missing.counts["missing"], 1);
        assert_eq!(missing.problems, 1, "{:?}", missing.examples);
    }

    #[test]
    fn an_event_of_an_unpaid_order_fails() {
        let history = [created("o1")];
        let mut state = final_state(&[order("o1", "pending_payment", json!({}))]);
        state.deliveries.webhook_calls = vec![paid_event("m1", "o1", true)];
        assert!(!check(&history, &state).passed);
    }
}
