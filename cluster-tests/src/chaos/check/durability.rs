//! No acknowledged write lost, nothing stored or read that was never written.
//!
//! Every order a 2xx answer (or any read) showed must exist after healing, in a state at least
//! as far along the same branch (an order seen paid stays paid with the same payment; one seen
//! closed stays closed the same way). Every order that exists must come from a create somebody
//! invoked (matched by user and items, at most one order per create key), every payment from a
//! pay invoked with that reference, every cancelled order from a cancel, every expired order
//! closed no earlier than its `expires_at`.

use std::collections::{BTreeMap, BTreeSet};

use super::{answered_order, is_paid_branch, rank, FinalState, Verdict};
use crate::chaos::history::{OpKind, Operation};
use crate::model::{epoch_ms, Order, OrderState};

/// What identifies the request that could have created an order: user and sorted lines.
type Signature = (String, Vec<(String, i64)>);

/// The signature of a stored order.
fn signature_of(order: &Order) -> Signature {
    let mut items: Vec<_> = order.items.iter().map(|i| (i.sku.clone(), i.qty)).collect();
    items.sort();
    (order.user_id.clone(), items)
}

/// Runs the checker.
pub fn check(operations: &[Operation], final_state: &FinalState) -> Verdict {
    let mut verdict = Verdict::new("durability");
    for operation in operations {
        let Some(seen) = answered_order(operation) else {
            continue;
        };
        verdict.checked += 1;
        let what = format!(
            "{} by client {} at {} ms",
            operation.kind.name(),
            operation.client,
            operation.completed_ms
        );
        let Some(now) = final_state.orders.get(&seen.id) else {
            verdict.problem(format!("order {} shown by {what} is gone", seen.id));
            continue;
        };
        if rank(now.state) < rank(seen.state)
            || (is_paid_branch(seen.state) && !is_paid_branch(now.state))
            || (seen.state == OrderState::Closed && now.state != OrderState::Closed)
        {
            verdict.problem(format!(
                "order {} was {:?} ({what}), now {:?}",
                seen.id, seen.state, now.state
            ));
        }
        if is_paid_branch(seen.state)
            && (seen.payment_ref != now.payment_ref || seen.paid_at != now.paid_at)
        {
            verdict.problem(format!(
                "order {} was paid {:?} at {:?} ({what}), now {:?} at {:?}",
                seen.id, seen.payment_ref, seen.paid_at, now.payment_ref, now.paid_at
            ));
        }
        if seen.state == OrderState::Closed
            && (seen.close_reason != now.close_reason || seen.closed_at != now.closed_at)
        {
            verdict.problem(format!(
                "order {} was closed {:?} at {:?} ({what}), now {:?} at {:?}",
                seen.id, seen.close_reason, seen.closed_at, now.close_reason, now.closed_at
            ));
        }
        if signature_of(&seen) != signature_of(now) {
            verdict.problem(format!("order {} changed its user or items", seen.id));
        }
    }
    check_nothing_unwritten(operations, final_state, &mut verdict);
    verdict
}

/// Every stored order, payment and close traces back to an invoked operation.
fn check_nothing_unwritten(
    operations: &[Operation],
    final_state: &FinalState,
    verdict: &mut Verdict,
) {
    let mut creates: BTreeMap<Signature, usize> = BTreeMap::new();
    let mut pays: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut cancels: BTreeSet<&str> = BTreeSet::new();
    for operation in operations {
        match &operation.kind {
            OpKind::CreateOrder { user_id, items, .. } => {
                let mut items = items.clone();
                items.sort();
                *creates.entry((user_id.clone(), items)).or_default() += 1;
            }
            OpKind::Seckill { sku, user_id, .. } => {
                *creates
                    .entry((user_id.clone(), vec![(sku.clone(), 1)]))
                    .or_default() += 1;
            }
            OpKind::Pay {
                order_id,
                payment_ref,
            } => {
                pays.insert((order_id, payment_ref));
            }
            OpKind::Cancel { order_id } => {
                cancels.insert(order_id);
            }
            _ => {}
        }
    }
    let mut stored: BTreeMap<Signature, usize> = BTreeMap::new();
    for order in final_state.orders.values() {
        verdict.checked += 1;
        *stored.entry(signature_of(order)).or_default() += 1;
        if is_paid_branch(order.state) {
            let paid_by_us = order
                .payment_ref
                .as_deref()
                .is_some_and(|r| pays.contains(&(order.id.as_str(), r)));
            if !paid_by_us {
                verdict.problem(format!(
                    "order {} is paid with {:?}, which no client sent",
                    order.id, order.payment_ref
                ));
            }
        }
        if order.state == OrderState::Closed {
            match order.close_reason.as_deref() {
                Some("cancelled") if cancels.contains(order.id.as_str()) => {}
                Some("expired") => {
                    let due = order.expires_at.as_deref().and_then(epoch_ms);
                    let closed = order.closed_at.as_deref().and_then(epoch_ms);
                    if let (Some(due), Some(closed)) = (due, closed) {
                        if closed < due {
                            verdict.problem(format!(
                                "order {} expired at {closed} before its due time {due}",
                                order.id
                            ));
                        }
                    }
                }
                other => verdict.problem(format!(
                    "order {} closed as {other:?} without a cancel",
                    order.id
                )),
            }
        }
    }
    for (signature, count) in stored {
        let invoked = creates.get(&signature).copied().unwrap_or(0);
        if count > invoked {
            verdict.problem(format!(
                "{count} orders of {signature:?} stored, only {invoked} creates invoked"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn an_acknowledged_order_that_is_gone_or_went_back_is_caught() {
        let history = [created("o1")];
        assert!(
            check(
                &history,
                &final_state(&[order("o1", "pending_payment", json!({}))])
            )
            .passed
        );
        assert!(!check(&history, &final_state(&[])).passed);

        let pay = OpKind::Pay {
            order_id: "o1".into(),
            payment_ref: "p".into(),
        };
        let paid = order(
            "o1",
            "paid",
            json!({"payment_ref": "p", "paid_at": "2026-01-01T00:01:00Z"}),
        );
        let history = [created("o1"), op(pay, (2, 3), ok(paid.clone()))];
        assert!(check(&history, &final_state(&[paid])).passed);
        let reverted = check(
            &history,
            &final_state(&[order("o1", "pending_payment", json!({}))]),
        );
        assert_eq!(reverted.problems, 2, "{:?}", reverted.examples);
    }

    #[test]
    fn an_order_nobody_created_or_paid_is_caught() {
        let phantom = check(
            &[created("o1")],
            &final_state(&[
                order("o1", "pending_payment", json!({})),
                order("o2", "pending_payment", json!({})),
            ]),
        );
        assert!(!phantom.passed, "two orders from one create");
        let unpaid = check(
            &[created("o1")],
            &final_state(&[order(
                "o1",
                "paid",
                json!({"payment_ref": "p", "paid_at": "2026-01-01T00:01:00Z"}),
            )]),
        );
        assert!(!unpaid.passed, "paid without a pay");
    }
}
