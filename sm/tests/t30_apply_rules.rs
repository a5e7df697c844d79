//! Example-based checks of the order rules in `apply`.

mod support;

use sm::command::{Action, CancelOrder, Command, CreateOrder, OrderLine, PayOrder, PutSku};
use sm::order::{CloseReason, OrderState};
use sm::outcome::{Applied, Outcome, Rejection};
use support::Fixture;

fn put(sku: &str, stock: u64) -> Command {
    Command::new(Action::PutSku(PutSku {
        sku: sku.into(),
        stock,
        price_cents: 250,
        per_user_limit: 0,
    }))
}

fn create(lines: &[(&str, u64)], pay_within_secs: u64) -> Command {
    Command::new(Action::CreateOrder(CreateOrder {
        user_id: "u1".into(),
        items: lines
            .iter()
            .map(|(s, q)| OrderLine {
                sku: s.to_string(),
                qty: *q,
            })
            .collect(),
        pay_within_secs,
    }))
}

fn created_id(outcome: Outcome) -> String {
    match outcome {
        Ok(Applied::OrderCreated(o)) => o.id,
        other => panic!("expected a created order, got {other:?}"),
    }
}

#[test]
fn an_order_reserves_all_lines_or_none() {
    let mut f = Fixture::new();
    f.run(0, put("A", 5)).unwrap();
    f.run(0, put("B", 1)).unwrap();
    let refused = f.run(0, create(&[("A", 2), ("B", 2)], 60));
    assert!(matches!(refused, Err(Rejection::InsufficientStock { ref sku, .. }) if sku == "B"));
    let a = f.reader().sku("A").unwrap().unwrap();
    assert_eq!(
        (a.available, a.reserved),
        (5, 0),
        "a refused order reserves nothing"
    );
    created_id(f.run(0, create(&[("A", 2), ("B", 1)], 60)));
    let a = f.reader().sku("A").unwrap().unwrap();
    assert_eq!((a.available, a.reserved), (3, 2));
}

#[test]
fn paying_sells_and_cancelling_releases() {
    let mut f = Fixture::new();
    f.run(0, put("A", 5)).unwrap();
    let paid = created_id(f.run(0, create(&[("A", 2)], 60)));
    let cancelled = created_id(f.run(0, create(&[("A", 1)], 60)));
    let pay = |id: &str, r: &str| {
        Command::new(Action::PayOrder(PayOrder {
            order_id: id.into(),
            payment_ref: r.into(),
        }))
    };
    assert!(
        matches!(f.run(10, pay(&paid, "p1")), Ok(Applied::Order(ref o)) if o.state == OrderState::Paid)
    );
    assert!(
        f.run(11, pay(&paid, "p1")).is_ok(),
        "paying again with the same reference is a no-op"
    );
    assert!(matches!(
        f.run(12, pay(&paid, "p2")),
        Err(Rejection::InvalidState { .. })
    ));
    let cancel = Command::new(Action::CancelOrder(CancelOrder {
        order_id: cancelled.clone(),
    }));
    assert!(
        matches!(f.run(13, cancel), Ok(Applied::Order(ref o)) if o.close_reason == Some(CloseReason::Cancelled))
    );
    assert!(matches!(
        f.run(14, pay(&cancelled, "p3")),
        Err(Rejection::InvalidState { .. })
    ));
    let a = f.reader().sku("A").unwrap().unwrap();
    assert_eq!((a.available, a.reserved, a.sold), (3, 0, 2));
    assert_eq!(
        f.reader().timer_stats().unwrap().pending,
        0,
        "paid and cancelled orders keep no close timer"
    );
}

#[test]
fn a_payment_after_the_deadline_closes_the_order() {
    let mut f = Fixture::new();
    f.run(0, put("A", 5)).unwrap();
    let id = created_id(f.run(1_000, create(&[("A", 2)], 2)));
    let pay = Command::new(Action::PayOrder(PayOrder {
        order_id: id.clone(),
        payment_ref: "p".into(),
    }));
    assert!(matches!(
        f.run(3_000, pay),
        Err(Rejection::InvalidState { .. })
    ));
    let order = f.reader().order(&id).unwrap().unwrap();
    assert_eq!(
        (order.state, order.close_reason),
        (OrderState::Closed, Some(CloseReason::Expired))
    );
    assert_eq!(f.reader().sku("A").unwrap().unwrap().available, 5);
}

#[test]
fn lowering_stock_below_what_is_held_is_refused() {
    let mut f = Fixture::new();
    f.run(0, put("A", 5)).unwrap();
    created_id(f.run(0, create(&[("A", 4)], 60)));
    assert!(matches!(
        f.run(0, put("A", 3)),
        Err(Rejection::InsufficientStock { .. })
    ));
    assert!(
        matches!(f.run(0, put("A", 10)), Ok(Applied::Sku(ref s)) if s.available == 6 && s.reserved == 4)
    );
}

#[test]
fn idempotency_keys_answer_the_first_outcome() {
    let mut f = Fixture::new();
    f.run(0, put("A", 5)).unwrap();
    let mut first = create(&[("A", 1)], 60);
    first.idempotency_key = "k1".into();
    first.request_hash = vec![1];
    let a = f.run(0, first.clone());
    let b = f.run(5, first.clone());
    assert_eq!(a, b);
    assert_eq!(
        f.reader().sku("A").unwrap().unwrap().reserved,
        1,
        "the retry reserved nothing"
    );
    let mut other = create(&[("A", 2)], 60);
    other.idempotency_key = "k1".into();
    other.request_hash = vec![2];
    assert_eq!(f.run(6, other), Err(Rejection::IdempotencyKeyReused));
}

#[test]
fn orders_are_listed_per_user_in_pages() {
    let mut f = Fixture::new();
    f.run(0, put("A", 50)).unwrap();
    let ids: Vec<String> = (0..5)
        .map(|_| created_id(f.run(0, create(&[("A", 1)], 60))))
        .collect();
    let page = f.reader().orders_of_user("u1", None, 2).unwrap();
    assert_eq!(
        page.orders.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
        ids[..2]
    );
    let rest = f
        .reader()
        .orders_of_user("u1", page.next.as_deref(), 10)
        .unwrap();
    assert_eq!(
        rest.orders.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
        ids[2..]
    );
    assert_eq!(rest.next, None);
    assert!(f
        .reader()
        .orders_of_user("u2", None, 10)
        .unwrap()
        .orders
        .is_empty());
}

#[test]
fn idempotency_keys_are_forgotten_after_a_day() {
    let day = sm::idempotency::RETENTION_MS;
    let mut f = Fixture::new();
    f.run(0, put("A", 5)).unwrap();
    let mut keyed = create(&[("A", 1)], 60);
    keyed.idempotency_key = "k-day".into();
    keyed.request_hash = vec![7];
    let first = created_id(f.run(1_000, keyed.clone()));
    assert_eq!(
        created_id(f.run(1_000 + day - 1, keyed.clone())),
        first,
        "remembered within a day"
    );
    // Any batch past the retention forgets it; the same request is then a new one.
    f.run(1_000 + day + 1, put("B", 1)).unwrap();
    let second = created_id(f.run(1_000 + day + 2, keyed));
    assert_ne!(second, first, "a key older than a day is a new request");
}
