//! Pull consumers that die holding leases lose nothing: every message a crashed consumer leased
//! was delivered again after it died, and every acknowledged publish reached the pull group.
//!
//! The leases come from [`crate::chaos::pull_consumers`]: the healthy consumer's (acked) and the
//! crashed consumers' (never acked). A message leased by a crashed consumer at time t must be
//! leased again later (its visibility ran out, or a new leader delivered it again). Every
//! publish acknowledged to its client must show up in some lease (a dead letter would be the
//! group giving up after 1,000 attempts, which does not happen here).

use std::collections::{BTreeMap, BTreeSet};

use super::{FinalState, Verdict};
use crate::chaos::history::{OpKind, Operation, Outcome};

/// Runs the checker.
pub fn check(operations: &[Operation], final_state: &FinalState) -> Verdict {
    let mut verdict = Verdict::new("pulls");
    let leases = &final_state.deliveries.pull_leases;
    let mut last_lease: BTreeMap<&str, i64> = BTreeMap::new();
    for lease in leases {
        let at = last_lease.entry(&lease.message_id).or_insert(lease.at_ms);
        *at = (*at).max(lease.at_ms);
    }
    let (mut abandoned, mut again) = (0u64, 0u64);
    for lease in leases.iter().filter(|l| l.abandoned) {
        abandoned += 1;
        let later = leases
            .iter()
            .any(|l| l.message_id == lease.message_id && l.at_ms > lease.at_ms);
        if later {
            again += 1;
        } else {
            verdict.problem(format!(
                "message {} was leased by a consumer that died, and never delivered again",
                lease.message_id
            ));
        }
    }
    let received: BTreeSet<&str> = leases.iter().filter_map(|l| l.publish.as_deref()).collect();
    let mut published = 0u64;
    for op in operations {
        if let (OpKind::Publish { key, .. }, Outcome::Ok { .. }) = (&op.kind, &op.outcome) {
            published += 1;
            verdict.checked += 1;
            if !received.contains(key.as_str()) {
                verdict.problem(format!(
                    "publish {key} was acknowledged, and never reached the pull group"
                ));
            }
        }
    }
    if !final_state.deliveries.drained {
        verdict.note = "the queue had not drained when the leases were read".to_owned();
    }
    let counts = &mut verdict.counts;
    counts.insert("leases", leases.len() as u64);
    counts.insert("messages", last_lease.len() as u64);
    counts.insert("abandoned", abandoned);
    counts.insert("delivered_again", again);
    counts.insert("publishes", published);
    verdict
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::chaos::pull_consumers::Lease;
    use serde_json::json;

    fn lease(id: &str, at_ms: i64, abandoned: bool) -> Lease {
        Lease {
            message_id: id.into(),
            publish: Some(format!("p-{id}")),
            at_ms,
            abandoned,
        }
    }

    fn publish(key: &str) -> Operation {
        op(
            OpKind::Publish {
                key: key.into(),
                topic: "t".into(),
                message_key: "k".into(),
                delay_secs: 0,
            },
            (1, 2),
            ok(json!({"id": "m"})),
        )
    }

    #[test]
    fn abandoned_leases_delivered_again_pass_and_lost_ones_fail() {
        let mut state = final_state(&[]);
        state.deliveries.drained = true;
        state.deliveries.pull_leases = vec![lease("1", 10, true), lease("1", 20, false)];
        let verdict = check(&[publish("p-1")], &state);
        assert!(verdict.passed, "{:?}", verdict.examples);
        assert_eq!(verdict.counts["delivered_again"], 1);
        state.deliveries.pull_leases = vec![lease("1", 10, false), lease("2", 20, true)];
        assert!(!check(&[], &state).passed, "abandoned and never again");
        state.deliveries.pull_leases = vec![];
        assert!(
            !check(&[publish("p-3")], &state).passed,
            "publish never pulled"
        );
    }
}
