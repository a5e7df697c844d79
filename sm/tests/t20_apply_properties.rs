//! Property tests of `apply`: for any sequence of commands, every SKU keeps
//! `available + reserved + sold == stock` (none negative), and orders only move along the
//! contract's transitions.

use std::collections::HashMap;

use proptest::prelude::*;
use sm::apply_batch;
use sm::command::{
    Action, CancelOrder, Command, CommandBatch, CreateOrder, OrderLine, PayOrder, PutSku,
};
use sm::order::OrderState;
use sm::outcome::{Applied, Rejection};
use sm::txn::Txn;
use sm::StateReader;

const SKUS: &[&str] = &["A", "B", "C"];

/// A command over a small universe, so commands collide on the same SKUs and orders.
#[derive(Debug, Clone)]
enum Op {
    Put {
        sku: usize,
        stock: u64,
        price: u64,
    },
    Create {
        user: u8,
        lines: Vec<(usize, u64)>,
        pay_within: u64,
    },
    Pay {
        order: usize,
        payment_ref: u8,
    },
    Cancel {
        order: usize,
    },
    Tick {
        ms: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..SKUS.len(), 0u64..50, 0u64..1000).prop_map(|(sku, stock, price)| Op::Put {
            sku,
            stock,
            price
        }),
        (
            0u8..3,
            prop::collection::vec((0..SKUS.len(), 1u64..8), 1..4),
            1u64..5
        )
            .prop_map(|(user, lines, pay_within)| Op::Create {
                user,
                lines,
                pay_within
            }),
        (0usize..40, 0u8..2).prop_map(|(order, payment_ref)| Op::Pay { order, payment_ref }),
        (0usize..40).prop_map(|order| Op::Cancel { order }),
        (0i64..3000).prop_map(|ms| Op::Tick { ms }),
    ]
}

fn command(op: &Op, orders: &[String]) -> Option<Command> {
    let order_id = |i: usize| {
        orders
            .get(i % orders.len().max(1))
            .cloned()
            .unwrap_or_else(|| "missing".into())
    };
    let action = match op {
        Op::Put { sku, stock, price } => Action::PutSku(PutSku {
            sku: SKUS[*sku].into(),
            stock: *stock,
            price_cents: *price,
            per_user_limit: 0,
        }),
        Op::Create {
            user,
            lines,
            pay_within,
        } => Action::CreateOrder(CreateOrder {
            user_id: format!("u{user}"),
            items: lines
                .iter()
                .map(|(sku, qty)| OrderLine {
                    sku: SKUS[*sku].into(),
                    qty: *qty,
                })
                .collect(),
            pay_within_secs: *pay_within,
        }),
        Op::Pay { order, payment_ref } => Action::PayOrder(PayOrder {
            order_id: order_id(*order),
            payment_ref: format!("p{payment_ref}"),
        }),
        Op::Cancel { order } => Action::CancelOrder(CancelOrder {
            order_id: order_id(*order),
        }),
        Op::Tick { .. } => return None,
    };
    Some(Command::new(action))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn stock_and_states_stay_legal(ops in prop::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let db = sm::db::open(dir.path()).unwrap();
        let reader = StateReader::new(db.clone());
        let mut now_ms = 1_000_000i64;
        let mut orders: Vec<String> = Vec::new();
        let mut states: HashMap<String, OrderState> = HashMap::new();
        for (index, op) in ops.iter().enumerate() {
            if let Op::Tick { ms } = op {
                now_ms += ms;
                continue;
            }
            let Some(cmd) = command(op, &orders) else { continue };
            let batch = CommandBatch { now_ms, commands: vec![cmd] };
            let mut txn = Txn::new(&db);
            let outcomes = apply_batch(&mut txn, index as u64 + 1, &batch).unwrap();
            db.write(txn.into_write_batch().unwrap()).unwrap();
            match &outcomes[0] {
                Ok(Applied::OrderCreated(order)) => {
                    prop_assert_eq!(order.state, OrderState::PendingPayment);
                    orders.push(order.id.clone());
                    states.insert(order.id.clone(), order.state);
                }
                Err(Rejection::Invalid(m)) => prop_assert!(false, "valid command refused as invalid: {}", m),
                _ => {}
            }
            for sku in SKUS {
                if let Some(s) = reader.sku(sku).unwrap() {
                    prop_assert!(s.is_consistent(), "stock invariant broken: {:?}", s);
                }
            }
            for id in &orders {
                let order = reader.order(id).unwrap().expect("created order exists");
                let before = states[id];
                prop_assert!(before == order.state || before.can_move_to(order.state),
                    "illegal move {:?} -> {:?}", before, order.state);
                states.insert(id.clone(), order.state);
            }
        }
        // Stock held by open orders equals what the SKUs say is reserved.
        let mut reserved: HashMap<String, u64> = HashMap::new();
        let mut sold: HashMap<String, u64> = HashMap::new();
        for id in &orders {
            let order = reader.order(id).unwrap().unwrap();
            for item in &order.items {
                match order.state {
                    OrderState::PendingPayment => *reserved.entry(item.sku.clone()).or_default() += item.qty,
                    OrderState::Paid => *sold.entry(item.sku.clone()).or_default() += item.qty,
                    _ => {}
                }
            }
        }
        // The per-state counters agree with the orders themselves.
        let mut by_state: HashMap<String, u64> = HashMap::new();
        for id in &orders {
            let order = reader.order(id).unwrap().unwrap();
            *by_state.entry(order.state.name().to_string()).or_default() += 1;
        }
        for (state, count) in reader.order_counts().unwrap() {
            prop_assert_eq!(count, by_state.get(&state).copied().unwrap_or(0), "count of {}", state);
        }
        for sku in SKUS {
            if let Some(s) = reader.sku(sku).unwrap() {
                prop_assert_eq!(s.reserved, reserved.get(*sku).copied().unwrap_or(0));
                prop_assert_eq!(s.sold, sold.get(*sku).copied().unwrap_or(0));
            }
        }
    }
}
