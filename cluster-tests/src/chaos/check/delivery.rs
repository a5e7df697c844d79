//! What arrived per item at a webhook: the arithmetic the queue checkers share.
//!
//! At least once means every expected item (an order's `order.paid`, one publish) arrived
//! acknowledged, a call the receiver answered 2xx, at least once. Further acknowledged calls of
//! one item are duplicates: allowed, and counted. Calls the receiver failed on purpose are
//! attempts only. One item must come from one message: two message ids for one item mean the
//! cluster published it twice (a pay or an idempotent publish that took effect twice). Nothing
//! may arrive that could not have been published.

use std::collections::{BTreeMap, BTreeSet};

use super::{Deliveries, Verdict};
use crate::receiver::Received;

/// The calls one item got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Arrivals {
    /// Calls answered 2xx: the cluster saw the item delivered.
    pub acked: u64,
    /// Every call, failed ones included.
    pub calls: u64,
    /// The distinct `X-Orderq-Message-Id`s it came as: one, unless it was published twice.
    pub message_ids: BTreeSet<String>,
}

/// The calls of `topic` among `calls`, grouped by the item `item_of` reads from each call's
/// body (calls it reads none from are left out).
pub fn arrivals<'a>(
    calls: impl IntoIterator<Item = &'a Received>,
    topic: &str,
    item_of: impl Fn(&Received) -> Option<String>,
) -> BTreeMap<String, Arrivals> {
    let mut by_item: BTreeMap<String, Arrivals> = BTreeMap::new();
    for call in calls {
        if call.body.get("topic").and_then(|t| t.as_str()) != Some(topic) {
            continue;
        }
        let Some(item) = item_of(call) else {
            continue;
        };
        let arrivals = by_item.entry(item).or_default();
        arrivals.calls += 1;
        arrivals.acked += u64::from(call.acked);
        arrivals.message_ids.insert(call.id.clone());
    }
    by_item
}

/// What one group should have delivered, for [`judge`].
#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    /// The group, to find its figures in [`Deliveries::groups`].
    pub group: &'a str,
    /// What an item is, in words (for problems): "order.paid of order", "publish".
    pub what: &'a str,
    /// Items that must have arrived.
    pub expected: &'a BTreeSet<String>,
    /// Items that may have arrived (the expected ones and those whose publish is unknown).
    pub possible: &'a BTreeSet<String>,
}

/// Judges `arrived` against `expectation` into `verdict`: a problem per expected item that
/// never arrived acknowledged, per item published twice, per item nobody could have published;
/// counts delivered, missing, duplicates, calls, failed calls, and the group's dead letters.
pub fn judge(
    verdict: &mut Verdict,
    expectation: Expectation<'_>,
    arrived: &BTreeMap<String, Arrivals>,
    deliveries: &Deliveries,
) {
    let (mut delivered, mut missing, mut duplicates) = (0, 0, 0);
    for item in expectation.expected {
        verdict.checked += 1;
        match arrived.get(item) {
            Some(arrivals) if arrivals.acked > 0 => {
                delivered += 1;
                duplicates += arrivals.acked - 1;
            }
            Some(arrivals) => {
                missing += 1;
                verdict.problem(format!(
                    "{} {item} never acknowledged by the receiver ({} failed calls)",
                    expectation.what, arrivals.calls
                ));
            }
            None => {
                missing += 1;
                verdict.problem(format!("{} {item} never arrived", expectation.what));
            }
        }
    }
    for (item, arrivals) in arrived {
        if arrivals.message_ids.len() > 1 {
            verdict.problem(format!(
                "{} {item} arrived as {} different messages: {:?}",
                expectation.what,
                arrivals.message_ids.len(),
                arrivals.message_ids
            ));
        }
        if !expectation.possible.contains(item) {
            verdict.problem(format!(
                "{} {item} arrived, but nothing published it",
                expectation.what
            ));
        }
    }
    let calls: u64 = arrived.values().map(|a| a.calls).sum();
    let acked: u64 = arrived.values().map(|a| a.acked).sum();
    let counts = &mut verdict.counts;
    counts.insert("expected", expectation.expected.len() as u64);
    counts.insert("delivered", delivered);
    counts.insert("missing", missing);
    counts.insert("duplicates", duplicates);
    counts.insert("calls", calls);
    counts.insert("failed_calls", calls - acked);
    if let Some(group) = deliveries
        .groups
        .iter()
        .find(|g| g.group == expectation.group)
    {
        counts.insert("dead", group.dead);
    }
    if !deliveries.drained {
        verdict.note = format!(
            "the queue had not drained when the deliveries were taken; {}",
            verdict.note
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A call of message `id` on `topic` carrying order `order`.
    fn call(id: &str, order: &str, acked: bool) -> Received {
        Received {
            id: id.into(),
            attempt: 1,
            idempotency_key: None,
            at_ms: 0,
            body: json!({"topic": "t", "payload": {"id": order}}),
            acked,
            signature_valid: None,
        }
    }

    fn judged(expected: &[&str], calls: &[Received]) -> Verdict {
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        let arrived = arrivals(calls, "t", |c| {
            c.body["payload"]["id"].as_str().map(str::to_owned)
        });
        let mut verdict = Verdict::new("test");
        let expectation = Expectation {
            group: "g",
            what: "item",
            expected: &expected,
            possible: &expected,
        };
        judge(&mut verdict, expectation, &arrived, &Deliveries::default());
        verdict
    }

    #[test]
    fn duplicates_are_counted_and_a_failed_call_is_not_a_delivery() {
        let fine = judged(
            &["o1", "o2"],
            &[
                call("m1", "o1", false),
                call("m1", "o1", true),
                call("m1", "o1", true),
                call("m2", "o2", true),
            ],
        );
        assert!(fine.passed, "{:?}", fine.examples);
        assert_eq!(fine.counts["duplicates"], 1);
        assert_eq!(fine.counts["failed_calls"], 1);
        let only_failed = judged(&["o1"], &[call("m1", "o1", false)]);
        assert!(!only_failed.passed);
        assert_eq!(only_failed.counts["missing"], 1);
    }

    #[test]
    fn one_item_as_two_messages_or_from_nowhere_is_caught() {
        let twice = judged(&["o1"], &[call("m1", "o1", true), call("m2", "o1", true)]);
        assert!(!twice.passed);
        let phantom = judged(&["o1"], &[call("m1", "o1", true), call("m9", "o9", true)]);
        assert!(!phantom.passed);
    }
}
