//! The flash sale in `apply`: many purchases of one SKU in one entry decided in order, per-user
//! limits for seckill and normal orders, holdings released on close, and the sold-out set.

mod support;

use sm::command::{Action, CancelOrder, Command, CreateOrder, OrderLine, PutSku, Seckill};
use sm::outcome::{Applied, Outcome, Rejection};
use support::Fixture;

fn put(sku: &str, stock: u64, per_user_limit: u64) -> Command {
    Command::new(Action::PutSku(PutSku {
        sku: sku.into(),
        stock,
        price_cents: 100,
        per_user_limit,
    }))
}

fn buy(sku: &str, user: &str) -> Command {
    Command::new(Action::Seckill(Seckill {
        sku: sku.into(),
        user_id: user.into(),
        pay_within_secs: 900,
    }))
}

fn order(sku: &str, user: &str, qty: u64) -> Command {
    Command::new(Action::CreateOrder(CreateOrder {
        user_id: user.into(),
        items: vec![OrderLine {
            sku: sku.into(),
            qty,
        }],
        pay_within_secs: 60,
    }))
}

fn order_id(outcome: &Outcome) -> String {
    match outcome {
        Ok(Applied::OrderCreated(order)) => order.id.clone(),
        other => panic!("expected an order, got {other:?}"),
    }
}

#[test]
fn one_entry_of_purchases_never_oversells() {
    let mut f = Fixture::new();
    f.one(put("hot", 3, 0)).unwrap();
    let outcomes = f.entry((0..10).map(|i| buy("hot", &format!("u{i}"))).collect());
    let created: Vec<_> = outcomes.iter().filter(|o| o.is_ok()).collect();
    assert_eq!(created.len(), 3, "{outcomes:?}");
    // Decided in order: the first three buy, the rest find it sold out.
    assert!(outcomes[..3].iter().all(Result::is_ok));
    for outcome in &outcomes[3..] {
        assert_eq!(outcome, &Err(Rejection::SoldOut { sku: "hot".into() }));
    }
    let sku = f.reader().sku("hot").unwrap().unwrap();
    assert_eq!((sku.available, sku.reserved, sku.sold), (0, 3, 0));
    match &outcomes[0] {
        Ok(Applied::OrderCreated(order)) => {
            assert_eq!(order.items[0].qty, 1);
            assert_eq!(order.expires_at_ms - order.created_at_ms, 900_000);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_closed_order_makes_the_sku_buyable_again() {
    let mut f = Fixture::new();
    f.one(put("hot", 1, 0)).unwrap();
    assert!(!f.sold_out.contains("hot"));
    let first = order_id(&f.one(buy("hot", "u1")));
    assert!(
        f.sold_out.contains("hot"),
        "the last unit sold sets sold out"
    );
    assert!(f.one(buy("hot", "u2")).is_err());
    f.one(Command::new(Action::CancelOrder(CancelOrder {
        order_id: first,
    })))
    .unwrap();
    assert!(!f.sold_out.contains("hot"), "the released unit clears it");
    order_id(&f.one(buy("hot", "u2")));
}

#[test]
fn per_user_limit_holds_within_one_entry_and_across_kinds() {
    let mut f = Fixture::new();
    f.one(put("lim", 100, 2)).unwrap();
    let outcomes = f.entry(vec![buy("lim", "u1"), buy("lim", "u1"), buy("lim", "u1")]);
    assert!(outcomes[0].is_ok() && outcomes[1].is_ok());
    assert!(
        matches!(
            &outcomes[2],
            Err(Rejection::LimitExceeded {
                limit: 2,
                held: 2,
                wanted: 1,
                ..
            })
        ),
        "{outcomes:?}"
    );
    assert!(matches!(
        f.one(order("lim", "u1", 1)),
        Err(Rejection::LimitExceeded { .. })
    ));
    assert!(matches!(
        f.one(order("lim", "u2", 3)),
        Err(Rejection::LimitExceeded {
            held: 0,
            wanted: 3,
            ..
        })
    ));
    order_id(&f.one(order("lim", "u2", 2)));
    // Closing one of u1's orders gives its unit back to u1's allowance.
    let first = order_id(&outcomes[0]);
    f.one(Command::new(Action::CancelOrder(CancelOrder {
        order_id: first,
    })))
    .unwrap();
    order_id(&f.one(buy("lim", "u1")));
    let sku = f.reader().sku("lim").unwrap().unwrap();
    assert_eq!(sku.reserved, 4);
    assert!(sku.is_consistent());
}

#[test]
fn unlimited_skus_and_unknown_skus() {
    let mut f = Fixture::new();
    f.one(put("free", 5, 0)).unwrap();
    for _ in 0..5 {
        order_id(&f.one(buy("free", "same-user")));
    }
    assert_eq!(
        f.one(buy("free", "same-user")),
        Err(Rejection::SoldOut { sku: "free".into() })
    );
    assert!(matches!(
        f.one(buy("missing", "u1")),
        Err(Rejection::NotFound { .. })
    ));
}
