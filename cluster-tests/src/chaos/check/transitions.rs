//! Order states only move forward: every answer that showed an order (any node, any read
//! consistency) lies on one path of the life cycle. Never both paid and closed; closed at most
//! once (one `closed_at`, one reason); paid once (one `paid_at`, one reference); and what one
//! client saw of an order, in its own order of operations, never went backwards.

use std::collections::BTreeMap;

use super::{answered_order, is_paid_branch, rank, FinalState, Verdict};
use crate::chaos::history::{OpKind, Operation};
use crate::model::{Order, OrderState};

/// Runs the checker.
pub fn check(operations: &[Operation], final_state: &FinalState) -> Verdict {
    let mut verdict = Verdict::new("transitions");
    let mut seen: BTreeMap<String, Vec<(&Operation, Order)>> = BTreeMap::new();
    for operation in operations {
        if let Some(order) = answered_order(operation) {
            seen.entry(order.id.clone())
                .or_default()
                .push((operation, order));
        }
    }
    for (id, views) in seen {
        verdict.checked += 1;
        let states: Vec<&Order> = views
            .iter()
            .map(|(_, o)| o)
            .chain(final_state.orders.get(&id))
            .collect();
        let paid: Vec<_> = states.iter().filter(|o| is_paid_branch(o.state)).collect();
        let closed: Vec<_> = states
            .iter()
            .filter(|o| o.state == OrderState::Closed)
            .collect();
        if !paid.is_empty() && !closed.is_empty() {
            verdict.problem(format!("order {id} was seen both paid and closed"));
        }
        if paid
            .iter()
            .any(|o| (&o.payment_ref, &o.paid_at) != (&paid[0].payment_ref, &paid[0].paid_at))
        {
            verdict.problem(format!("order {id} was paid more than once"));
        }
        if closed.iter().any(|o| {
            (&o.close_reason, &o.closed_at) != (&closed[0].close_reason, &closed[0].closed_at)
        }) {
            verdict.problem(format!("order {id} was closed more than once"));
        }
        for order in &states {
            let inconsistent = match order.state {
                OrderState::PendingPayment => {
                    order.paid_at.is_some()
                        || order.closed_at.is_some()
                        || order.close_reason.is_some()
                }
                OrderState::Closed => order.paid_at.is_some() || order.close_reason.is_none(),
                _ => order.close_reason.is_some() || order.closed_at.is_some(),
            };
            if inconsistent {
                verdict.problem(format!("order {id} has fields of another state: {order:?}"));
            }
        }
        check_sessions(&id, &views, &mut verdict);
    }
    verdict
}

/// Within one client, linearizable answers about an order never go backwards (local reads may
/// be stale and are left out).
fn check_sessions(id: &str, views: &[(&Operation, Order)], verdict: &mut Verdict) {
    let mut last: BTreeMap<u32, u8> = BTreeMap::new();
    for (operation, order) in views {
        if matches!(operation.kind, OpKind::ReadOrder { local: true, .. }) {
            continue;
        }
        let r = rank(order.state);
        let before = last.entry(operation.client).or_insert(r);
        if r < *before {
            verdict.problem(format!(
                "client {} saw order {id} go back to {:?} at {} ms",
                operation.client, order.state, operation.completed_ms
            ));
        }
        *before = (*before).max(r);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use serde_json::json;

    fn read(order: serde_json::Value, at: u64) -> Operation {
        op(
            OpKind::ReadOrder {
                order_id: "o1".into(),
                local: false,
            },
            (at, at + 1),
            ok(order),
        )
    }

    #[test]
    fn paid_and_closed_or_going_back_is_caught() {
        let paid = order(
            "o1",
            "paid",
            json!({"payment_ref": "p", "paid_at": "2026-01-01T00:01:00Z"}),
        );
        let closed = order(
            "o1",
            "closed",
            json!({"close_reason": "expired", "closed_at": "2026-01-01T00:10:00Z"}),
        );
        let pending = order("o1", "pending_payment", json!({}));
        let fine = [created("o1"), read(paid.clone(), 5)];
        assert!(check(&fine, &final_state(std::slice::from_ref(&paid))).passed);
        let both = [created("o1"), read(paid.clone(), 5), read(closed, 7)];
        assert!(!check(&both, &final_state(std::slice::from_ref(&paid))).passed);
        let back = [created("o1"), read(paid.clone(), 5), read(pending, 7)];
        assert!(!check(&back, &final_state(&[paid])).passed);
    }
}
