//! Stock is conserved: per SKU `available + reserved + sold == stock`, none negative, at every
//! read during the run and after healing; after healing, reserved and sold equal what the
//! orders hold; the flash sale's per-user limit is kept.

use std::collections::BTreeMap;

use super::{FinalState, Verdict};
use crate::chaos::history::{OpKind, Operation, Outcome};
use crate::chaos::workload::WorkloadPlan;
use crate::model::{stock_held, OrderState, Sku};

/// Runs the checker.
pub fn check(operations: &[Operation], plan: &WorkloadPlan, final_state: &FinalState) -> Verdict {
    let mut verdict = Verdict::new("stock");
    let loaded: BTreeMap<&str, i64> = plan
        .all_skus()
        .into_iter()
        .map(|p| (p.sku.as_str(), p.settings.stock))
        .collect();
    for operation in operations {
        let (OpKind::ReadSku { sku, local }, Outcome::Ok { body, .. }) =
            (&operation.kind, &operation.outcome)
        else {
            continue;
        };
        verdict.checked += 1;
        match (
            serde_json::from_value::<Sku>(body.clone()),
            loaded.get(sku.as_str()),
        ) {
            (Ok(read), Some(&stock)) if read.holds_invariant(stock) => {}
            (read, _) => verdict.problem(format!(
                "read of {sku} (local {local}) at {} ms broke the invariant: {read:?}",
                operation.completed_ms
            )),
        }
    }
    let orders: Vec<_> = final_state.orders.values().cloned().collect();
    for (sku, stock) in &loaded {
        verdict.checked += 1;
        let Some(now) = final_state.skus.get(*sku) else {
            verdict.problem(format!("SKU {sku} is gone"));
            continue;
        };
        if !now.holds_invariant(*stock) {
            verdict.problem(format!(
                "SKU {sku} breaks the invariant after healing: {now:?}"
            ));
        }
        let (reserved, sold) = stock_held(&orders, sku);
        if (now.reserved, now.sold) != (reserved, sold) {
            verdict.problem(format!(
                "SKU {sku} says reserved {} sold {}, its orders hold {reserved} and {sold}",
                now.reserved, now.sold
            ));
        }
    }
    let limit = plan.seckill.settings.per_user_limit;
    if limit > 0 {
        let mut held: BTreeMap<&str, i64> = BTreeMap::new();
        for order in orders.iter().filter(|o| o.state != OrderState::Closed) {
            for item in order.items.iter().filter(|i| i.sku == plan.seckill.sku) {
                *held.entry(order.user_id.as_str()).or_default() += item.qty;
            }
        }
        for (user, units) in held {
            if units > limit {
                verdict.problem(format!(
                    "user {user} holds {units} units of {}, limit {limit}",
                    plan.seckill.sku
                ));
            }
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use serde_json::json;

    fn sku(available: i64, reserved: i64, sold: i64) -> Sku {
        serde_json::from_value(
            json!({"sku": "A", "price_cents": 10, "available": available,
            "reserved": reserved, "sold": sold, "per_user_limit": 0}),
        )
        .expect("a SKU")
    }

    #[test]
    fn stock_must_match_the_orders_and_add_up() {
        let plan = WorkloadPlan {
            skus: vec![crate::chaos::workload::SkuPlan {
                sku: "A".into(),
                settings: crate::model::SkuSettings {
                    stock: 10,
                    price_cents: 10,
                    per_user_limit: 0,
                },
            }],
            seckill: crate::chaos::workload::SkuPlan {
                sku: "S".into(),
                settings: crate::model::SkuSettings {
                    stock: 0,
                    price_cents: 1,
                    per_user_limit: 0,
                },
            },
            ..WorkloadPlan::default()
        };
        let mut state = final_state(&[order("o1", "pending_payment", json!({}))]);
        state.skus.insert(
            "S".into(),
            Sku {
                sku: "S".into(),
                ..sku(0, 0, 0)
            },
        );
        state.skus.insert(
            "D".into(),
            Sku {
                sku: "D".into(),
                ..sku(1_000_000, 0, 0)
            },
        );
        state.skus.insert("A".into(), sku(8, 2, 0));
        assert!(check(&[], &plan, &state).passed);
        state.skus.insert("A".into(), sku(8, 0, 2));
        assert!(
            !check(&[], &plan, &state).passed,
            "sold units no paid order holds"
        );
        state.skus.insert("A".into(), sku(9, 2, 0));
        assert!(!check(&[], &plan, &state).passed, "one unit too many");
    }
}
