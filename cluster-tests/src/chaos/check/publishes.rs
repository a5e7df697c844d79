//! Every acknowledged publish reached its subscription at least once.
//!
//! A client's publish carries `{"publish": <idempotency key>}` as its payload, so each delivery
//! names the publish it came from. Every publish answered 201 must have arrived acknowledged
//! at least once, as one message (a retry under the same key must not publish again);
//! duplicates are counted. A publish whose outcome is unknown may have arrived or not; one the
//! cluster refused must not arrive, nor anything nobody published.

use std::collections::BTreeSet;

use super::delivery::{arrivals, judge, Expectation};
use super::{FinalState, Verdict};
use crate::chaos::history::{OpKind, Operation, Outcome};
use crate::chaos::subscribers::PUBLISHED_GROUP;
use crate::chaos::workload::WorkloadPlan;

/// Runs the checker.
pub fn check(operations: &[Operation], plan: &WorkloadPlan, final_state: &FinalState) -> Verdict {
    let mut verdict = Verdict::new("publishes");
    let (mut acknowledged, mut possible) = (BTreeSet::new(), BTreeSet::new());
    let mut unknown = 0;
    for operation in operations {
        let OpKind::Publish { key, .. } = &operation.kind else {
            continue;
        };
        match operation.outcome {
            Outcome::Ok { .. } => {
                acknowledged.insert(key.clone());
                possible.insert(key.clone());
            }
            Outcome::Unknown { .. } => {
                unknown += 1;
                possible.insert(key.clone());
            }
            Outcome::Failed { .. } => {}
        }
    }
    let deliveries = &final_state.deliveries;
    let arrived = arrivals(&deliveries.webhook_calls, &plan.topic, |call| {
        call.body["payload"]["publish"].as_str().map(str::to_owned)
    });
    let unknown_arrived = arrived
        .iter()
        .filter(|(key, a)| a.acked > 0 && !acknowledged.contains(*key))
        .count();
    let expectation = Expectation {
        group: PUBLISHED_GROUP,
        what: "publish",
        expected: &acknowledged,
        possible: &possible,
    };
    judge(&mut verdict, expectation, &arrived, deliveries);
    verdict.counts.insert("unknown_publishes", unknown);
    verdict
        .counts
        .insert("unknown_publishes_delivered", unknown_arrived as u64);
    verdict
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::receiver::Received;
    use serde_json::json;

    fn publish(key: &str, outcome: Outcome) -> Operation {
        op(
            OpKind::Publish {
                key: key.into(),
                topic: "chaos.events".into(),
                message_key: "k0".into(),
                delay_secs: 0,
            },
            (0, 1),
            outcome,
        )
    }

    /// A webhook call delivering the message of publish `key` as message `message`.
    fn delivered(message: &str, key: &str) -> Received {
        Received {
            id: message.into(),
            attempt: 1,
            idempotency_key: None,
            at_ms: 0,
            body: json!({"id": message, "topic": "chaos.events", "payload": {"publish": key}}),
            acked: true,
            signature_valid: None,
        }
    }

    #[test]
    fn an_acknowledged_publish_never_delivered_fails() {
        let history = [
            publish("p1", ok(json!({"id": "m1"}))),
            publish("p2", ok(json!({"id": "m2"}))),
            publish(
                "p3",
                Outcome::Unknown {
                    reason: "timeout".into(),
                },
            ),
        ];
        let plan = WorkloadPlan::default();
        let mut state = final_state(&[]);
        state.deliveries.webhook_calls = vec![
            delivered("m1", "p1"),
            delivered("m1", "p1"),
            delivered("m2", "p2"),
        ];
        let fine = check(&history, &plan, &state);
        assert!(fine.passed, "{:?}", fine.examples);
        assert_eq!(fine.counts["duplicates"], 1);

        state.deliveries.webhook_calls.pop();
        let missing = check(&history, &plan, &state);
        assert!(!missing.passed, "p2 was acknowledged and never delivered");
        assert_eq!(missing.counts["missing"], 1);
    }

    #[test]
    fn a_refused_publish_delivered_or_published_twice_fails() {
        let plan = WorkloadPlan::default();
        let refused = [publish(
            "p1",
            Outcome::Failed {
                status: 400,
                code: "invalid_request".into(),
            },
        )];
        let mut state = final_state(&[]);
        state.deliveries.webhook_calls = vec![delivered("m1", "p1")];
        assert!(!check(&refused, &plan, &state).passed);

        let once = [publish("p1", ok(json!({"id": "m1"})))];
        state.deliveries.webhook_calls = vec![delivered("m1", "p1"), delivered("m2", "p1")];
        assert!(!check(&once, &plan, &state).passed);
    }
}
