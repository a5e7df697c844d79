//! Example-based checks of the queue rules in `apply`: order events commit with their change,
//! cursors advance over settled offsets only, attempts end in exactly one dead letter, redrive,
//! the refund flow, the queue's timers (delayed messages and retries wait in the wheel), and the
//! reserved topics only `apply` writes.

mod support;

use sm::command::{
    Action, CreateOrder, FailedDelivery, FireTimers, OrderLine, PayOrder, Publish, PutSku,
    RecordDeliveries, Redrive, RefundOrder, RemoveSubscription, TrimMessages,
};
use sm::order::OrderState;
use sm::order::REFUND_GROUP;
use sm::outcome::{Applied, Rejection};
use sm::queue::{delivery_timer, retry_timer};
use sm::queue::{DeliveriesRecorded, Subscription};
use support::{subscribe, Fixture};

/// The queue tests' verbs on the shared fixture.
impl Fixture {
    fn sub(&self, group: &str) -> Subscription {
        self.queue().subscription(group).unwrap().unwrap()
    }

    fn pending_timers(&self) -> u64 {
        self.reader().timer_stats().unwrap().pending
    }

    /// Offsets the scheduler's scan of `group` would hold.
    fn scanned(&self, group: &str) -> Vec<u64> {
        let scan = self
            .queue()
            .pending_after(&self.sub(group), 0, 100)
            .unwrap();
        scan.messages.iter().map(|p| p.message.offset).collect()
    }

    /// Offsets marked ready for `group`.
    fn ready(&self, group: &str) -> Vec<u64> {
        let (ready, _) = self
            .queue()
            .ready(&self.sub(group), |_| false, 100)
            .unwrap();
        ready.iter().map(|p| p.message.offset).collect()
    }

    fn fire(&mut self, now_ms: i64, key: Vec<u8>) -> (usize, usize) {
        match self.action_at(now_ms, Action::FireTimers(FireTimers { keys: vec![key] })) {
            Ok(Applied::TimersFired(fired)) => (fired.fired.len(), fired.early.len()),
            other => panic!("{other:?}"),
        }
    }

    fn record(&mut self, now_ms: i64, action: Action) -> DeliveriesRecorded {
        match self.action_at(now_ms, action) {
            Ok(Applied::DeliveriesRecorded(done)) => done,
            other => panic!("{other:?}"),
        }
    }

    fn paid_order(&mut self) -> String {
        self.action_at(
            0,
            Action::PutSku(PutSku {
                sku: "A".into(),
                stock: 10,
                price_cents: 100,
                per_user_limit: 0,
            }),
        )
        .unwrap();
        let id = match self.action_at(
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
        self.action_at(
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
    fail_until(group, offset, 50)
}

fn fail_until(group: &str, offset: u64, retry_at_ms: i64) -> Action {
    Action::RecordDeliveries(RecordDeliveries {
        group: group.into(),
        acks: Vec::new(),
        failures: vec![FailedDelivery {
            offset,
            error: "http status 500".into(),
            retry_at_ms,
        }],
    })
}

#[test]
fn paying_publishes_order_paid_in_the_same_step() {
    let mut f = Fixture::new();
    let id = f.paid_order();
    let paid = f
        .queue()
        .message("order.paid", 1)
        .unwrap()
        .expect("order.paid");
    assert_eq!(paid.key, id);
    assert_eq!(paid.payload["state"], "paid");
    assert_eq!(paid.id, "order.paid:1");
    assert_eq!(f.queue().head("order.created").unwrap(), 1);
}

#[test]
fn apply_refuses_a_clients_publish_into_a_reserved_topic() {
    let mut f = Fixture::new();
    let id = f.paid_order();
    for topic in ["order.paid", "order.refund_requested", "order.anything"] {
        assert_eq!(
            f.action_at(0, publish(topic)),
            Err(Rejection::ReservedTopic {
                topic: topic.into()
            }),
            "{topic}"
        );
    }
    assert_eq!(f.queue().head("order.paid").unwrap(), 1, "only the payment");
    assert_eq!(f.queue().head("order.refund_requested").unwrap(), 0);
    assert_eq!(f.queue().head("order.anything").unwrap(), 0);
    let refund = Action::RefundOrder(RefundOrder {
        order_id: id,
        reason: "r".into(),
    });
    assert!(matches!(
        f.action_at(1, refund),
        Ok(Applied::RefundRequested(_))
    ));
    assert_eq!(
        f.queue().head("order.refund_requested").unwrap(),
        1,
        "apply itself still writes the reserved topics"
    );
}

#[test]
fn the_cursor_passes_only_contiguous_settled_offsets() {
    let mut f = Fixture::new();
    for _ in 0..3 {
        f.action_at(0, publish("t")).unwrap();
    }
    f.action_at(1, subscribe("g", "t", 3, false)).unwrap();
    f.action_at(1, subscribe("late", "t", 3, true)).unwrap();
    assert_eq!(f.queue().subscription("late").unwrap().unwrap().cursor, 3);
    let done = match f.action_at(2, acks("g", &[2, 3, 3])) {
        Ok(Applied::DeliveriesRecorded(done)) => done,
        other => panic!("{other:?}"),
    };
    assert_eq!(done.acked, vec![2, 3]);
    assert_eq!(done.ignored, vec![3]);
    let sub = f.queue().subscription("g").unwrap().unwrap();
    assert_eq!(sub.cursor, 0);
    let pending = f.queue().pending_after(&sub, 0, 10).unwrap();
    assert_eq!(pending.messages.len(), 1);
    f.action_at(3, acks("g", &[1])).unwrap();
    let sub = f.queue().subscription("g").unwrap().unwrap();
    assert_eq!((sub.cursor, sub.delivered), (3, 3));
    assert!(f
        .queue()
        .pending_after(&sub, 0, 10)
        .unwrap()
        .messages
        .is_empty());
}

#[test]
fn attempts_end_in_one_dead_letter_which_redrive_delivers_again() {
    let mut f = Fixture::new();
    f.action_at(0, publish("t")).unwrap();
    f.action_at(0, subscribe("g", "t", 3, false)).unwrap();
    for now in 1..=3 {
        f.action_at(now, fail("g", 1)).unwrap();
    }
    // A late failure after death changes nothing.
    f.action_at(4, fail("g", 1)).unwrap();
    let (dead, more) = f.queue().dead_letters("g", 0, 10).unwrap();
    assert!(!more);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts.len(), 3);
    assert_eq!(dead[0].dead_at_ms, 3);
    let sub = f.queue().subscription("g").unwrap().unwrap();
    assert_eq!((sub.cursor, sub.dead), (1, 1));
    f.action_at(
        5,
        Action::Redrive(Redrive {
            group: "g".into(),
            offsets: vec![1],
        }),
    )
    .unwrap();
    let sub = f.queue().subscription("g").unwrap().unwrap();
    assert_eq!(sub.dead, 0);
    assert_eq!(f.queue().redriven(&sub).unwrap().len(), 1);
    f.action_at(6, acks("g", &[1])).unwrap();
    let sub = f.queue().subscription("g").unwrap().unwrap();
    assert!(f.queue().redriven(&sub).unwrap().is_empty());
    assert_eq!(sub.delivered, 1);
}

#[test]
fn refunds_follow_their_delivery() {
    let mut f = Fixture::new();
    let id = f.paid_order();
    f.action_at(
        3,
        subscribe(REFUND_GROUP, "order.refund_requested", 2, false),
    )
    .unwrap();
    let refund = Action::RefundOrder(RefundOrder {
        order_id: id.clone(),
        reason: "broken".into(),
    });
    match f.action_at(4, refund) {
        Ok(Applied::RefundRequested(o)) => assert_eq!(o.state, OrderState::RefundRequested),
        other => panic!("{other:?}"),
    }
    f.action_at(5, fail(REFUND_GROUP, 1)).unwrap();
    f.action_at(6, fail(REFUND_GROUP, 1)).unwrap();
    let state = |f: &Fixture| f.reader().order(&id).unwrap().unwrap().state;
    assert_eq!(state(&f), OrderState::RefundFailed);
    assert_eq!(f.queue().head("order.refund_failed").unwrap(), 1);
    f.action_at(
        7,
        Action::Redrive(Redrive {
            group: REFUND_GROUP.into(),
            offsets: vec![1],
        }),
    )
    .unwrap();
    f.action_at(8, acks(REFUND_GROUP, &[1])).unwrap();
    assert_eq!(state(&f), OrderState::Refunded);
    assert_eq!(f.queue().head("order.refunded").unwrap(), 1);
}

/// An attempt answered after its message was dead-lettered (a deposed scheduler's call still in
/// flight, the 30-minute chaos run's seed 1313): the provider made the refund, so the order is
/// refunded and the dead letter gone, not `refund_failed`.
#[test]
fn a_refund_acknowledged_after_it_was_given_up_is_recorded_refunded() {
    let mut f = Fixture::new();
    let id = f.paid_order();
    f.action_at(
        3,
        subscribe(REFUND_GROUP, "order.refund_requested", 2, false),
    )
    .unwrap();
    f.action_at(
        4,
        Action::RefundOrder(RefundOrder {
            order_id: id.clone(),
            reason: "broken".into(),
        }),
    )
    .unwrap();
    f.action_at(5, fail(REFUND_GROUP, 1)).unwrap();
    f.action_at(6, fail(REFUND_GROUP, 1)).unwrap();
    let state = |f: &Fixture| f.reader().order(&id).unwrap().unwrap().state;
    assert_eq!(state(&f), OrderState::RefundFailed);
    let done = match f.action_at(7, acks(REFUND_GROUP, &[1])) {
        Ok(Applied::DeliveriesRecorded(done)) => done,
        other => panic!("{other:?}"),
    };
    assert_eq!(done.acked, vec![1], "the late acknowledgement counts");
    assert_eq!(state(&f), OrderState::Refunded);
    assert_eq!(f.queue().head("order.refunded").unwrap(), 1);
    let (dead, _) = f.queue().dead_letters(REFUND_GROUP, 0, 10).unwrap();
    assert!(dead.is_empty(), "{dead:?}");
    let sub = f.queue().subscription(REFUND_GROUP).unwrap().unwrap();
    assert_eq!((sub.dead, sub.delivered), (0, 1));
    // A second late acknowledgement changes nothing.
    let done = match f.action_at(8, acks(REFUND_GROUP, &[1])) {
        Ok(Applied::DeliveriesRecorded(done)) => done,
        other => panic!("{other:?}"),
    };
    assert_eq!(done.ignored, vec![1]);
    assert_eq!(f.queue().head("order.refunded").unwrap(), 1);
}

#[test]
fn a_delayed_message_waits_in_the_wheel_until_its_timer_fires() {
    let mut f = Fixture::new();
    f.action_at(0, subscribe("plain", "t", 3, false)).unwrap();
    let mut ordered = subscribe("ordered", "t", 3, false);
    if let Action::PutSubscription(put) = &mut ordered {
        put.ordered_by_key = true;
    }
    f.action_at(0, ordered).unwrap();
    let hour_ms = 3_600_000;
    let delayed = match f.action_at(
        1_000,
        Action::Publish(Publish {
            topic: "t".into(),
            key: "k".into(),
            payload_json: "{}".into(),
            delay_ms: hour_ms,
            deliver_at_ms: 0,
        }),
    ) {
        Ok(Applied::Published(message)) => message,
        other => panic!("{other:?}"),
    };
    f.action_at(1_000, publish("t")).unwrap();
    assert_eq!(f.pending_timers(), 1);
    // The unordered group's scan steps over it; the ordered one holds it (it blocks key "k").
    assert_eq!(f.scanned("plain"), vec![2]);
    assert_eq!(f.scanned("ordered"), vec![1, 2]);

    let key = delivery_timer(&delayed).expect("a delayed message has a timer");
    assert_eq!(f.fire(2_000, key.clone()), (0, 1), "not before its time");
    assert!(f.ready("plain").is_empty());
    assert_eq!(f.fire(1_000 + hour_ms as i64, key.clone()), (1, 0));
    assert_eq!(f.pending_timers(), 0);
    assert_eq!(f.ready("plain"), vec![1]);
    assert_eq!(f.sub("plain").ready_marks, 1);
    assert_eq!(f.scanned("plain"), vec![1, 2]);

    // The ordered group already delivered it: nothing left to mark there once it settles.
    f.record(5_000, acks("plain", &[1]));
    assert!(
        f.ready("plain").is_empty(),
        "settling removes the ready mark"
    );
    assert_eq!(f.fire(1_000 + hour_ms as i64, key), (0, 0), "fires once");
}

#[test]
fn a_failed_delivery_waits_on_its_retry_timer_and_settling_disarms_it() {
    let mut f = Fixture::new();
    f.action_at(0, publish("t")).unwrap();
    f.action_at(0, subscribe("g", "t", 5, false)).unwrap();
    let done = f.record(10, fail_until("g", 1, 500));
    assert_eq!(
        (done.retrying.clone(), done.waiting.clone()),
        (vec![1], vec![1])
    );
    assert_eq!(f.pending_timers(), 1);
    assert!(f.scanned("g").is_empty(), "waiting on its retry timer");

    assert_eq!(f.fire(500, retry_timer("g", 1, 500)), (1, 0));
    assert_eq!(f.ready("g"), vec![1]);
    assert_eq!(f.scanned("g"), vec![1]);

    // Failing again waits for the new retry only: the old mark goes, a new timer is armed.
    let done = f.record(600, fail_until("g", 1, 5_000));
    assert_eq!(done.waiting, vec![1]);
    assert!(f.ready("g").is_empty());
    assert!(f.scanned("g").is_empty());
    assert_eq!(f.pending_timers(), 1);

    // A retry due now (a nack without delay) needs no timer.
    f.action_at(600, publish("t")).unwrap();
    let done = f.record(700, fail_until("g", 2, 700));
    assert_eq!(
        (done.retrying.clone(), done.waiting.clone()),
        (vec![2], vec![])
    );
    assert_eq!(f.pending_timers(), 1);

    // Settling before the timer fires disarms it; a stale key fires nothing.
    f.record(800, acks("g", &[1, 2]));
    assert_eq!(f.pending_timers(), 0);
    assert_eq!(f.fire(5_000, retry_timer("g", 1, 5_000)), (0, 0));
    assert!(f.ready("g").is_empty());
    assert_eq!(f.sub("g").cursor, 2);
}

fn trim(topic: &str, up_to_offset: u64, retention_ms: u64) -> Action {
    Action::TrimMessages(TrimMessages {
        topic: topic.into(),
        up_to_offset,
        retention_ms,
    })
}

#[test]
fn retention_removes_only_what_every_group_settled_and_a_redrive_brings_its_letter_back() {
    let mut f = Fixture::new();
    f.action_at(0, subscribe("a", "t", 1, false)).unwrap();
    f.action_at(0, subscribe("b", "t", 5, false)).unwrap();
    for _ in 0..3 {
        f.action_at(1_000, publish("t")).unwrap();
    }
    f.record(1_100, acks("a", &[1, 2]));
    let done = f.record(1_100, fail("a", 3));
    assert_eq!(done.dead, vec![3], "one attempt allowed: a dead letter");
    f.record(1_100, acks("b", &[1]));
    let held = |f: &Fixture| -> Vec<u64> {
        (1..=3)
            .filter(|&o| f.queue().message("t", o).unwrap().is_some())
            .collect()
    };

    assert_eq!(
        f.action_at(10_999, trim("t", 3, 10_000)),
        Ok(Applied::Trimmed(0)),
        "too young"
    );
    assert_eq!(held(&f), vec![1, 2, 3]);
    // Group b has settled only offset 1.
    assert_eq!(
        f.action_at(11_000, trim("t", 3, 10_000)),
        Ok(Applied::Trimmed(1))
    );
    assert_eq!(held(&f), vec![2, 3]);
    f.record(11_100, acks("b", &[2, 3]));
    assert_eq!(
        f.action_at(11_200, trim("t", 3, 10_000)),
        Ok(Applied::Trimmed(3))
    );
    assert!(held(&f).is_empty());
    assert_eq!(f.queue().floor("t").unwrap(), 3);

    // A new group starting at the earliest message starts after what is gone.
    f.action_at(11_300, subscribe("c", "t", 5, false)).unwrap();
    assert_eq!(f.sub("c").cursor, 3);

    // The dead letter of group a still has its message: a redrive puts it back for delivery,
    // and once settled it goes again.
    match f.action_at(
        11_400,
        Action::Redrive(Redrive {
            group: "a".into(),
            offsets: vec![3],
        }),
    ) {
        Ok(Applied::Redriven(1)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(held(&f), vec![3]);
    let redriven = f.queue().redriven(&f.sub("a")).unwrap();
    assert_eq!(redriven.len(), 1);
    assert_eq!(redriven[0].message.payload["n"], 1);
    f.record(11_500, acks("a", &[3]));
    assert!(held(&f).is_empty());
}

fn remove(group: &str) -> Action {
    Action::RemoveSubscription(RemoveSubscription {
        group: group.into(),
    })
}

#[test]
fn removing_a_group_takes_its_records_in_bounded_steps_and_blocks_its_name_until_done() {
    let mut f = Fixture::new();
    f.action_at(0, subscribe("g", "t", 5, false)).unwrap();
    let n = 2 * sm::queue::RECORDS_PER_STEP as u64 + 3;
    for chunk in (1..=n).collect::<Vec<_>>().chunks(1000) {
        f.actions_at(1, chunk.iter().map(|_| publish("t")).collect());
    }
    // Every even offset acknowledged while offset 1 is not: one settled marker each.
    let evens: Vec<u64> = (2..=n).step_by(2).collect();
    f.record(2, acks("g", &evens));
    f.record(2, fail_until("g", 1, 60_000));
    assert_eq!(f.pending_timers(), 1);

    assert_eq!(
        f.action_at(3, remove("g")),
        Ok(Applied::SubscriptionRemoved(true))
    );
    assert!(
        f.queue().subscription("g").unwrap().is_none(),
        "gone at once"
    );
    assert!(
        matches!(
            f.action_at(3, subscribe("g", "t", 5, false)),
            Err(Rejection::Conflict(_))
        ),
        "the name is blocked while records remain"
    );
    assert!(matches!(
        f.action_at(3, acks("g", &[1])),
        Err(Rejection::NotFound { .. })
    ));
    assert_eq!(f.queue().removing_groups().unwrap(), vec!["g".to_string()]);
    assert_eq!(
        f.action_at(4, remove("g")),
        Ok(Applied::SubscriptionRemoved(false))
    );
    assert_eq!(
        f.pending_timers(),
        0,
        "its retry timer went with its attempts"
    );
    assert!(f.queue().removing_groups().unwrap().is_empty());
    assert!(matches!(
        f.action_at(4, remove("g")),
        Err(Rejection::NotFound { .. })
    ));

    // A new group of the same name starts clean: every message pending, none settled.
    f.action_at(5, subscribe("g", "t", 5, false)).unwrap();
    let scan = f.queue().pending_after(&f.sub("g"), 0, 10).unwrap();
    let offsets: Vec<u64> = scan.messages.iter().map(|p| p.message.offset).collect();
    assert_eq!(offsets, (1..=10).collect::<Vec<u64>>());
    assert!(matches!(
        f.action_at(5, remove(REFUND_GROUP)),
        Err(Rejection::Conflict(_))
    ));
}

#[test]
fn a_scan_stops_at_its_byte_budget_but_always_returns_one_message() {
    let mut f = Fixture::new();
    f.action_at(1, subscribe("g", "big", 3, false)).unwrap();
    for _ in 0..3 {
        f.action_at(
            1,
            Action::Publish(Publish {
                topic: "big".into(),
                key: "k".into(),
                payload_json: format!("\"{}\"", "x".repeat(1000)),
                delay_ms: 0,
                deliver_at_ms: 0,
            }),
        )
        .unwrap();
    }
    let sub = f.sub("g");
    let all = f
        .queue()
        .pending_after_within(&sub, 0, 10, usize::MAX)
        .unwrap();
    assert_eq!(all.messages.len(), 3);
    assert!(all.complete);
    let two = f.queue().pending_after_within(&sub, 0, 10, 2500).unwrap();
    assert_eq!(
        two.messages.len(),
        2,
        "two messages of ~1 KB fit in 2500 bytes"
    );
    assert!(!two.complete);
    let one = f.queue().pending_after_within(&sub, 0, 10, 10).unwrap();
    assert_eq!(
        one.messages.len(),
        1,
        "a message larger than the budget still comes alone"
    );
}
