//! Every refund requested ends `refunded` or `refund_failed`, and only the provider's
//! acknowledgement refunds.
//!
//! A refund is requested when `POST /v1/orders/{id}/refund` was answered 202, or when the final
//! state shows the order in a refund state (a request whose answer was lost). After the queue
//! drained, each such order must be `refunded` or `refund_failed`: the built-in refund group
//! delivers it to the payment provider until it acknowledges or the attempts run out. Each
//! `refunded` order must have been acknowledged by the provider (a 2xx to a call naming the
//! order), and no order may be in a refund state without a refund request. An order the provider
//! acknowledged must not end `refund_failed`: the customer has the money back, so orderq must
//! say so (the provider's acknowledgement lost to a fault is found again by the refund status
//! lookup, `[payment] refund_status_url`). Provider calls acknowledged more than once per order
//! are counted (the provider deduplicates them by the `Idempotency-Key`).

use std::collections::{BTreeMap, BTreeSet};

use super::{FinalState, Verdict};
use crate::chaos::history::{OpKind, Operation, Outcome};
use crate::model::OrderState;
use crate::receiver::order_of;

/// Runs the checker.
pub fn check(operations: &[Operation], final_state: &FinalState) -> Verdict {
    if !final_state.read {
        return Verdict::not_judged("refunds");
    }
    let mut verdict = Verdict::new("refunds");
    let mut invoked: BTreeSet<&str> = BTreeSet::new();
    let mut requested: BTreeSet<&str> = BTreeSet::new();
    for operation in operations {
        if let OpKind::Refund { order_id, .. } = &operation.kind {
            invoked.insert(order_id);
            if matches!(operation.outcome, Outcome::Ok { .. }) {
                requested.insert(order_id);
            }
        }
    }
    for order in final_state.orders.values() {
        if matches!(
            order.state,
            OrderState::RefundRequested | OrderState::Refunded | OrderState::RefundFailed
        ) {
            requested.insert(&order.id);
            if !invoked.contains(order.id.as_str()) {
                verdict.problem(format!(
                    "order {} is {:?}, but no client asked for its refund",
                    order.id, order.state
                ));
            }
        }
    }
    let mut provider_acks: BTreeMap<String, u64> = BTreeMap::new();
    for call in &final_state.deliveries.provider_calls {
        if let Some(order) = order_of(call) {
            *provider_acks.entry(order).or_default() += u64::from(call.acked);
        }
    }
    let (mut refunded, mut failed) = (0, 0);
    let mut acked_but_failed: Vec<&str> = Vec::new();
    for id in &requested {
        verdict.checked += 1;
        let acks = provider_acks.get(*id).copied().unwrap_or(0);
        match final_state.orders.get(*id).map(|o| o.state) {
            Some(OrderState::Refunded) if acks > 0 => refunded += 1,
            Some(OrderState::Refunded) => verdict.problem(format!(
                "order {id} is refunded, but the provider never acknowledged its refund"
            )),
            Some(OrderState::RefundFailed) => {
                failed += 1;
                if acks > 0 {
                    acked_but_failed.push(id);
                }
            }
            Some(other) => verdict.problem(format!(
                "order {id}: refund requested, still {other:?} after the queue drained"
            )),
            None => verdict.problem(format!("order {id}: refund requested, the order is gone")),
        }
    }
    for order in provider_acks.keys() {
        if !invoked.contains(order.as_str()) {
            verdict.problem(format!(
                "the provider was asked to refund order {order}, which no client refunded"
            ));
        }
    }
    let calls = final_state.deliveries.provider_calls.len() as u64;
    let acked: u64 = provider_acks.values().sum();
    let counts = &mut verdict.counts;
    counts.insert("requested", requested.len() as u64);
    counts.insert("refunded", refunded);
    counts.insert("refund_failed", failed);
    counts.insert("missing", requested.len() as u64 - refunded - failed);
    counts.insert("provider_calls", calls);
    counts.insert("provider_failed_calls", calls - acked);
    counts.insert(
        "duplicates",
        provider_acks.values().map(|a| a.saturating_sub(1)).sum(),
    );
    counts.insert("acked_but_refund_failed", acked_but_failed.len() as u64);
    for id in acked_but_failed {
        verdict.problem(format!(
            "order {id} is refund_failed, but the provider acknowledged its refund"
        ));
    }
    if !final_state.deliveries.drained {
        verdict
            .note
            .push_str("the queue had not drained when the final state was read");
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::receiver::Received;
    use serde_json::json;

    fn refund(id: &str, outcome: Outcome) -> Operation {
        op(
            OpKind::Refund {
                key: format!("rf-{id}"),
                order_id: id.into(),
            },
            (4, 5),
            outcome,
        )
    }

    fn in_state(id: &str, state: &str) -> serde_json::Value {
        order(
            id,
            state,
            json!({"payment_ref": "p", "paid_at": "2026-01-01T00:01:00Z"}),
        )
    }

    /// A provider call about order `id`.
    fn provider_call(id: &str, acked: bool) -> Received {
        Received {
            id: format!("m-{id}"),
            attempt: 1,
            idempotency_key: Some(id.into()),
            at_ms: 0,
            body: json!({"topic": "order.refund_requested", "key": id, "payload": {"id": id}}),
            acked,
            signature_valid: None,
        }
    }

    #[test]
    fn refunds_that_settled_either_way_pass() {
        let history = [
            refund("o1", ok(in_state("o1", "refund_requested"))),
            refund("o2", ok(in_state("o2", "refund_requested"))),
            refund(
                "o3",
                Outcome::Unknown {
                    reason: "timeout".into(),
                },
            ),
        ];
        let mut state = final_state(&[
            in_state("o1", "refunded"),
            in_state("o2", "refund_failed"),
            in_state("o3", "refunded"),
        ]);
        state.deliveries.provider_calls = vec![
            provider_call("o1", false),
            provider_call("o1", true),
            provider_call("o2", false),
            provider_call("o3", true),
            provider_call("o3", true),
        ];
        let verdict = check(&history, &state);
        assert!(verdict.passed, "{:?}", verdict.examples);
        assert_eq!(verdict.counts["refunded"], 2);
        assert_eq!(verdict.counts["refund_failed"], 1);
        assert_eq!(verdict.counts["duplicates"], 1);
    }

    #[test]
    fn an_unsettled_or_unacknowledged_refund_fails() {
        let history = [refund("o1", ok(in_state("o1", "refund_requested")))];
        let stuck = check(
            &history,
            &final_state(&[in_state("o1", "refund_requested")]),
        );
        assert!(!stuck.passed, "still refund_requested after draining");
        assert_eq!(stuck.counts["missing"], 1);
        let mut state = final_state(&[in_state("o1", "refunded")]);
        state.deliveries.provider_calls = vec![provider_call("o1", false)];
        assert!(
            !check(&history, &state).passed,
            "refunded though the provider only failed"
        );
        let unasked = check(&[], &final_state(&[in_state("o1", "refund_failed")]));
        assert!(!unasked.passed, "a refund state nobody asked for");
    }

    #[test]
    fn a_refund_the_provider_made_recorded_failed_fails() {
        let history = [refund("o1", ok(in_state("o1", "refund_requested")))];
        let mut state = final_state(&[in_state("o1", "refund_failed")]);
        state.deliveries.provider_calls =
            vec![provider_call("o1", true), provider_call("o1", false)];
        let verdict = check(&history, &state);
        assert!(!verdict.passed, "the customer has the money back");
        assert_eq!(verdict.counts["acked_but_refund_failed"], 1);
    }
}
