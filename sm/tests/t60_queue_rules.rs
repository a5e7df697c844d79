//! Example-based checks of the queue rules in `apply`: order events commit with their change,
//! cursors advance over settled offsets only, attempts end in exactly one dead letter, redrive,
//! and the refund flow.

use sm::apply::apply_batch;
use sm::command::{
    Action, Command, CommandBatch, CreateOrder, FailedDelivery, OrderLine, PayOrder, Publish,
    PutSku, PutSubscription, RecordDeliveries, Redrive, RefundOrder,
};
use sm::order::OrderState;
use sm::outcome::{Applied, Outcome};
use sm::refund::REFUND_GROUP;
use sm::subscription::QueueReads;
use sm::txn::Txn;

struct Fixture {
    _dir: tempfile::TempDir,
    db: std::sync::Arc<rocksdb::DB>,
    index: u64,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = sm::db::open(dir.path()).unwrap();
        Fixture {
            _dir: dir,
            db,
            index: 0,
        }
    }

    fn run(&mut self, now_ms: i64, action: Action) -> Outcome {
        self.index += 1;
        let mut txn = Txn::new(&self.db);
        let out = apply_batch(
            &mut txn,
            self.index,
            &CommandBatch {
                now_ms,
                commands: vec![Command::new(action)],
            },
        )
        .unwrap();
        self.db.write(txn.into_write_batch().unwrap()).unwrap();
        out.into_iter().next().unwrap()
    }

    fn reads(&self) -> QueueReads<'_> {
        QueueReads { db: &self.db }
    }

    fn paid_order(&mut self) -> String {
        self.run(
            0,
            Action::PutSku(PutSku {
                sku: "A".into(),
                stock: 10,
                price_cents: 100,
                per_user_limit: 0,
            }),
        )
        .unwrap();
        let id = match self.run(
            1,
            Action::CreateOrder(CreateOrder {
                user_id: "u1".into(),
                items: vec![OrderLine {
                    sku: "A".into(),
                    qty: 1,
                }],
                pay_within_secs: 60,
            }),
        ) {
            Ok(Applied::OrderCreated(o)) => o.id,
            other => panic!("{other:?}"),
        };
        self.run(
            2,
            Action::PayOrder(PayOrder {
                order_id: id.clone(),
                payment_ref: "p".into(),
            }),
        )
        .unwrap();
        id
    }
}

fn subscribe(group: &str, topic: &str, max_attempts: u32, latest: bool) -> Action {
    Action::PutSubscription(PutSubscription {
        group: group.into(),
        topic: topic.into(),
        push_url: "http://127.0.0.1:1/hook".into(),
        timeout_ms: 100,
        max_attempts,
        backoff_initial_ms: 10,
        backoff_max_ms: 100,
        max_in_flight: 8,
        rate_per_sec: 0,
        ordered_by_key: false,
        start_latest: latest,
    })
}

fn publish(topic: &str) -> Action {
    Action::Publish(Publish {
        topic: topic.into(),
        key: "k".into(),
        payload_json: "{\"n\":1}".into(),
        delay_ms: 0,
        deliver_at_ms: 0,
    })
}

fn acks(group: &str, offsets: &[u64]) -> Action {
    Action::RecordDeliveries(RecordDeliveries {
        group: group.into(),
        acks: offsets.to_vec(),
        failures: Vec::new(),
    })
}

fn fail(group: &str, offset: u64) -> Action {
    Action::RecordDeliveries(RecordDeliveries {
        group: group.into(),
        acks: Vec::new(),
        failures: vec![FailedDelivery {
            offset,
            error: "http status 500".into(),
            retry_at_ms: 50,
        }],
    })
}

#[test]
fn paying_publishes_order_paid_in_the_same_step() {
    let mut f = Fixture::new();
    let id = f.paid_order();
    let paid = f
        .reads()
        .message("order.paid", 1)
        .unwrap()
        .expect("order.paid");
    assert_eq!(paid.key, id);
    assert_eq!(paid.payload["state"], "paid");
    assert_eq!(paid.id, "order.paid:1");
    assert_eq!(f.reads().head("order.created").unwrap(), 1);
}

#[test]
fn the_cursor_passes_only_contiguous_settled_offsets() {
    let mut f = Fixture::new();
    for _ in 0..3 {
        f.run(0, publish("t")).unwrap();
    }
    f.run(1, subscribe("g", "t", 3, false)).unwrap();
    f.run(1, subscribe("late", "t", 3, true)).unwrap();
    assert_eq!(f.reads().subscription("late").unwrap().unwrap().cursor, 3);
    let done = match f.run(2, acks("g", &[2, 3, 3])) {
        Ok(Applied::DeliveriesRecorded(done)) => done,
        other => panic!("{other:?}"),
    };
    assert_eq!(done.acked, vec![2, 3]);
    assert_eq!(done.ignored, vec![3]);
    let sub = f.reads().subscription("g").unwrap().unwrap();
    assert_eq!(sub.cursor, 0);
    let pending = f.reads().pending_after(&sub, 0, 10).unwrap();
    assert_eq!(pending.len(), 1);
    f.run(3, acks("g", &[1])).unwrap();
    let sub = f.reads().subscription("g").unwrap().unwrap();
    assert_eq!((sub.cursor, sub.delivered), (3, 3));
    assert!(f.reads().pending_after(&sub, 0, 10).unwrap().is_empty());
}

#[test]
fn attempts_end_in_one_dead_letter_which_redrive_delivers_again() {
    let mut f = Fixture::new();
    f.run(0, publish("t")).unwrap();
    f.run(0, subscribe("g", "t", 3, false)).unwrap();
    for now in 1..=3 {
        f.run(now, fail("g", 1)).unwrap();
    }
    // A late failure after death changes nothing.
    f.run(4, fail("g", 1)).unwrap();
    let (dead, more) = f.reads().dead_letters("g", 0, 10).unwrap();
    assert!(!more);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts.len(), 3);
    assert_eq!(dead[0].dead_at_ms, 3);
    let sub = f.reads().subscription("g").unwrap().unwrap();
    assert_eq!((sub.cursor, sub.dead), (1, 1));
    f.run(
        5,
        Action::Redrive(Redrive {
            group: "g".into(),
            offsets: vec![1],
        }),
    )
    .unwrap();
    let sub = f.reads().subscription("g").unwrap().unwrap();
    assert_eq!(sub.dead, 0);
    assert_eq!(f.reads().redriven(&sub).unwrap().len(), 1);
    f.run(6, acks("g", &[1])).unwrap();
    let sub = f.reads().subscription("g").unwrap().unwrap();
    assert!(f.reads().redriven(&sub).unwrap().is_empty());
    assert_eq!(sub.delivered, 1);
}

#[test]
fn refunds_follow_their_delivery() {
    let mut f = Fixture::new();
    let id = f.paid_order();
    f.run(
        3,
        subscribe(REFUND_GROUP, "order.refund_requested", 2, false),
    )
    .unwrap();
    let refund = Action::RefundOrder(RefundOrder {
        order_id: id.clone(),
        reason: "broken".into(),
    });
    match f.run(4, refund) {
        Ok(Applied::RefundRequested(o)) => assert_eq!(o.state, OrderState::RefundRequested),
        other => panic!("{other:?}"),
    }
    f.run(5, fail(REFUND_GROUP, 1)).unwrap();
    f.run(6, fail(REFUND_GROUP, 1)).unwrap();
    let state = |f: &Fixture| {
        sm::StateReader::new(f.db.clone())
            .order(&id)
            .unwrap()
            .unwrap()
            .state
    };
    assert_eq!(state(&f), OrderState::RefundFailed);
    assert_eq!(f.reads().head("order.refund_failed").unwrap(), 1);
    f.run(
        7,
        Action::Redrive(Redrive {
            group: REFUND_GROUP.into(),
            offsets: vec![1],
        }),
    )
    .unwrap();
    f.run(8, acks(REFUND_GROUP, &[1])).unwrap();
    assert_eq!(state(&f), OrderState::Refunded);
    assert_eq!(f.reads().head("order.refunded").unwrap(), 1);
}
