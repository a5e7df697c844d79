//! An operator's commands on a consumer group: purging dead letters, pausing and resuming, and
//! resetting the position; and the reads the admin API builds on them (dead-letter search, a
//! message's delivery status per group, the offset before a time).

mod support;

use sm::command::{
    Action, FailedDelivery, PauseSubscription, Publish, PurgeDead, RecordDeliveries, Redrive,
    ResetSubscription,
};
use sm::outcome::{Applied, Rejection};
use sm::queue::{DeliveryStatus, Subscription, MAX_REDRIVE};
use support::{subscribe, Fixture};

fn publish(key: &str, text: &str) -> Action {
    Action::Publish(Publish {
        topic: "t".into(),
        key: key.into(),
        payload_json: serde_json::json!({ "text": text }).to_string(),
        delay_ms: 0,
        deliver_at_ms: 0,
    })
}

fn outcomes(group: &str, acks: &[u64], failed: &[u64], retry_at_ms: i64) -> Action {
    Action::RecordDeliveries(RecordDeliveries {
        group: group.into(),
        acks: acks.to_vec(),
        failures: failed
            .iter()
            .map(|&offset| FailedDelivery {
                offset,
                error: "http status 500".into(),
                retry_at_ms,
            })
            .collect(),
    })
}

fn purge(group: &str, offsets: Vec<u64>) -> Action {
    Action::PurgeDead(PurgeDead {
        group: group.into(),
        offsets,
    })
}

fn reset(group: &str, cursor: u64) -> Action {
    Action::ResetSubscription(ResetSubscription {
        group: group.into(),
        cursor,
    })
}

impl Fixture {
    fn sub(&self, group: &str) -> Subscription {
        self.queue().subscription(group).unwrap().unwrap()
    }
}

/// Messages 1..=4 on `t` (published at 10, 20, 30, 40), group `g` with one attempt: 1 acked,
/// 2 and 3 dead, 4 pending after a failure waiting on a retry timer.
fn group_with_history() -> Fixture {
    let mut f = Fixture::new();
    f.action_at(0, subscribe("g", "t", 1, false)).unwrap();
    for (i, text) in ["apple", "Banana split", "cherry", "date"]
        .iter()
        .enumerate()
    {
        f.action_at(10 * (i as i64 + 1), publish(&format!("k{i}"), text))
            .unwrap();
    }
    f.action_at(50, outcomes("g", &[1], &[2, 3], 0)).unwrap();
    f.action_at(50, subscribe("g", "t", 5, false)).unwrap();
    f.action_at(51, outcomes("g", &[], &[4], 10_000)).unwrap();
    f
}

#[test]
fn purge_deletes_dead_letters_once_and_is_bounded() {
    let mut f = group_with_history();
    assert_eq!(f.sub("g").dead, 2);
    assert_eq!(
        f.action_at(60, purge("g", vec![2, 4, 99])),
        Ok(Applied::Purged(1))
    );
    assert_eq!(f.action_at(61, purge("g", vec![2])), Ok(Applied::Purged(0)));
    let (left, _) = f.queue().dead_letters("g", 0, 10).unwrap();
    assert_eq!(
        left.iter().map(|d| d.message.offset).collect::<Vec<_>>(),
        [3]
    );
    assert_eq!(f.sub("g").dead, 1);
    let too_many = purge("g", vec![3; MAX_REDRIVE + 1]);
    assert!(matches!(
        f.action_at(62, too_many),
        Err(Rejection::Invalid(_))
    ));
    assert!(matches!(
        f.action_at(62, purge("nobody", vec![3])),
        Err(Rejection::NotFound { .. })
    ));
}

#[test]
fn pause_and_resume_keep_the_position() {
    let mut f = group_with_history();
    let before = f.sub("g");
    let paused = PauseSubscription {
        group: "g".into(),
        paused: true,
    };
    match f.action_at(60, Action::PauseSubscription(paused.clone())) {
        Ok(Applied::Subscription(sub)) => assert!(sub.paused),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.sub("g").cursor, before.cursor);
    f.action_at(
        61,
        Action::PauseSubscription(PauseSubscription {
            paused: false,
            ..paused
        }),
    )
    .unwrap();
    assert_eq!(f.sub("g"), before);
}

#[test]
fn a_reset_clears_the_groups_records_and_clamps_to_the_topic() {
    let mut f = group_with_history();
    let timers = f.reader().timer_stats().unwrap().pending;
    assert_eq!(timers, 1, "message 4's retry timer");
    match f.action_at(60, reset("g", 0)) {
        Ok(Applied::Subscription(sub)) => assert_eq!((sub.cursor, sub.resets), (0, 1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        f.reader().timer_stats().unwrap().pending,
        0,
        "retry disarmed"
    );
    let sub = f.sub("g");
    let scan = f.queue().pending_after(&sub, 0, 10).unwrap();
    let pending: Vec<u64> = scan.messages.iter().map(|p| p.message.offset).collect();
    assert_eq!(pending, [1, 2, 3, 4], "everything is pending again");
    assert!(scan.messages.iter().all(|p| p.attempts.is_none()));
    // Dead letters stay the operator's; dying again counts once.
    assert_eq!(f.sub("g").dead, 2);
    f.action_at(61, outcomes("g", &[], &[2], 0)).unwrap();
    f.action_at(61, subscribe("g", "t", 1, false)).unwrap();
    f.action_at(62, outcomes("g", &[], &[2], 0)).unwrap();
    assert_eq!(f.sub("g").dead, 2);

    match f.action_at(63, reset("g", 1_000)) {
        Ok(Applied::Subscription(sub)) => assert_eq!(sub.cursor, 4, "clamped to the head"),
        other => panic!("{other:?}"),
    }
    let sub = f.sub("g");
    assert!(f
        .queue()
        .pending_after(&sub, 0, 10)
        .unwrap()
        .messages
        .is_empty());
    assert_eq!(f.queue().settled_beyond_cursor(&sub).unwrap(), 0);
}

#[test]
fn operator_reads_find_letters_statuses_and_times() {
    let f = group_with_history();
    let reads = f.queue();
    let found = reads
        .search_dead_letters("g", "BANANA", 0, 10, 100)
        .unwrap();
    assert_eq!(found.letters.len(), 1);
    assert_eq!(found.letters[0].message.offset, 2);
    assert_eq!(found.next, None);
    let by_key = reads.search_dead_letters("g", "k2", 0, 10, 100).unwrap();
    assert_eq!(by_key.letters[0].message.offset, 3);
    // A budget of one letter examines offset 2 only and says where to go on.
    let first = reads.search_dead_letters("g", "cherry", 0, 10, 1).unwrap();
    assert!(first.letters.is_empty());
    assert_eq!(first.next, Some(2));
    let rest = reads.search_dead_letters("g", "cherry", 2, 10, 1).unwrap();
    assert_eq!(rest.letters.len(), 1);

    let sub = f.sub("g");
    assert_eq!(
        reads.delivery_status(&sub, 1).unwrap(),
        DeliveryStatus::Settled(Some(50))
    );
    assert!(matches!(
        reads.delivery_status(&sub, 2).unwrap(),
        DeliveryStatus::Dead(_)
    ));
    match reads.delivery_status(&sub, 4).unwrap() {
        DeliveryStatus::Pending(Some(tried)) => assert_eq!(tried.attempts.len(), 1),
        other => panic!("{other:?}"),
    }

    assert_eq!(reads.offset_before_time("t", 0).unwrap(), 0);
    assert_eq!(reads.offset_before_time("t", 25).unwrap(), 2);
    assert_eq!(reads.offset_before_time("t", 30).unwrap(), 2);
    assert_eq!(reads.offset_before_time("t", 1_000).unwrap(), 4);
    assert_eq!(reads.offset_before_time("none", 1_000).unwrap(), 0);
}

fn status(f: &Fixture, offset: u64) -> DeliveryStatus {
    f.queue().delivery_status(&f.sub("g"), offset).unwrap()
}

#[test]
fn each_ack_keeps_when_it_was_recorded_in_order_out_of_order_redriven_and_after_a_reset() {
    let mut f = Fixture::new();
    f.action_at(0, subscribe("g", "t", 1, false)).unwrap();
    for i in 1..=5 {
        f.action_at(i, publish(&format!("k{i}"), "x")).unwrap();
    }
    f.action_at(100, outcomes("g", &[3], &[], 0)).unwrap();
    assert_eq!(
        status(&f, 3),
        DeliveryStatus::Settled(Some(100)),
        "beyond the cursor"
    );
    f.action_at(200, outcomes("g", &[1, 2], &[], 0)).unwrap();
    assert_eq!(f.sub("g").cursor, 3);
    assert_eq!(status(&f, 1), DeliveryStatus::Settled(Some(200)));
    assert_eq!(status(&f, 2), DeliveryStatus::Settled(Some(200)));
    assert_eq!(
        status(&f, 3),
        DeliveryStatus::Settled(Some(100)),
        "its own time, not the cursor's passing"
    );

    f.action_at(300, outcomes("g", &[], &[4], 0)).unwrap();
    assert!(matches!(status(&f, 4), DeliveryStatus::Dead(_)));
    f.action_at(
        400,
        Action::Redrive(Redrive {
            group: "g".into(),
            offsets: vec![4],
        }),
    )
    .unwrap();
    assert!(matches!(status(&f, 4), DeliveryStatus::Pending(_)));
    f.action_at(500, outcomes("g", &[4, 5], &[], 0)).unwrap();
    assert_eq!(
        status(&f, 4),
        DeliveryStatus::Settled(Some(500)),
        "redriven"
    );
    assert_eq!(status(&f, 5), DeliveryStatus::Settled(Some(500)));
    assert_eq!(status(&f, 1), DeliveryStatus::Settled(Some(200)));

    f.action_at(600, reset("g", 0)).unwrap();
    f.action_at(700, outcomes("g", &[1], &[], 0)).unwrap();
    assert_eq!(
        status(&f, 1),
        DeliveryStatus::Settled(Some(700)),
        "acked again"
    );
    assert!(matches!(status(&f, 2), DeliveryStatus::Pending(_)));
    f.action_at(800, reset("g", 5)).unwrap();
    assert_eq!(
        status(&f, 3),
        DeliveryStatus::Settled(None),
        "skipped by a reset: no ack time, not the one from before it"
    );
}
