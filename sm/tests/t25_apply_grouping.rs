//! `apply` decides the same however openraft groups the entries it hands over.
//!
//! openraft applies committed entries in groups whose size differs between the leader, each
//! follower and a replay after a restart, and one `apply` call stages a whole group in one
//! transaction. These properties build a log the way a leader would (each command chosen from
//! the state so far: real order ids, due timers, pending offsets, dead letters), then apply that
//! same log one entry per call, all in one call, and in random splits, and ask for equal
//! outcomes for every command and equal state digests. A snapshot taken at a random index,
//! installed on a fresh replica and followed by the rest of the log, must give the same digest.
//! Another property feeds `apply` random, also nonsensical, commands: it must answer every one
//! (a typed rejection at worst) and never fail or panic.

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload, RaftSnapshotBuilder};
use proptest::prelude::*;
use sm::command::{
    Action, CancelOrder, Command, CommandBatch, CreateOrder, FailedDelivery, FireTimers, OrderLine,
    PauseSubscription, PayOrder, Publish, PurgeDead, PutSku, PutSubscription, RecordDeliveries,
    Redrive, RefundOrder, RemoveSubscription, ResetSubscription, Seckill, TrimMessages,
};
use sm::order::REFUND_GROUP;
use sm::outcome::{Applied, BatchOutcome};
use sm::raft_types::{Entry, LogId};
use sm::QueueReads;
use sm::Storage;

/// The first entry's clock.
const START_MS: i64 = 1_700_000_000_000;
/// Past the 24-hour retention of idempotency keys.
const DAY_AND_AN_HOUR_MS: i64 = 25 * 3_600_000;
/// Idempotency keys used before the clock jumps a day: more than one entry forgets (256).
const REMEMBERED_KEYS: usize = 600;
const SKUS: &[&str] = &["A", "B", "C"];
const TOPICS: &[&str] = &["points", "sms"];
const GROUPS: &[&str] = &["points-push", "points-pull", "sms-push"];

/// One replica's storage, applied through openraft's state machine interface.
struct Replica {
    storage: Storage,
    runtime: tokio::runtime::Runtime,
    /// Dropped last (fields drop in order): the database flushes what it holds outside the WAL
    /// when it closes, into this folder.
    _dir: tempfile::TempDir,
}

impl Replica {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Storage::open(dir.path()).expect("open storage");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Replica {
            storage,
            runtime,
            _dir: dir,
        }
    }

    /// Applies `entries` in one call, as openraft does with one group.
    fn apply(&mut self, entries: &[Entry]) -> Vec<BatchOutcome> {
        let state = &mut self.storage.state;
        self.runtime
            .block_on(state.apply(entries.to_vec()))
            .expect("apply never fails on a command")
    }

    fn digest(&self) -> String {
        self.storage.reader.state_digest().expect("digest").digest
    }

    fn reads(&self) -> QueueReads<'_> {
        self.storage.reader.queue()
    }
}

/// What the leader does next, in the abstract; made concrete from the state at that point.
#[derive(Debug, Clone)]
enum Op {
    PutSku {
        sku: usize,
        stock: u64,
        limit: u64,
    },
    Create {
        user: u8,
        sku: usize,
        qty: u64,
        pay_within: u64,
    },
    Pay {
        order: usize,
    },
    Cancel {
        order: usize,
    },
    Seckill {
        sku: usize,
        user: u8,
    },
    Refund {
        order: usize,
    },
    Publish {
        topic: usize,
        key: u8,
        delay_ms: u64,
    },
    Subscribe {
        group: usize,
        start_latest: bool,
    },
    Deliver {
        group: usize,
        ack: bool,
        dead: bool,
    },
    Redrive {
        group: usize,
        all: bool,
    },
    Purge {
        group: usize,
        all: bool,
    },
    Pause {
        group: usize,
        paused: bool,
    },
    Reset {
        group: usize,
        cursor: u64,
    },
    FireDue,
    Trim {
        topic: usize,
    },
    Remove {
        group: usize,
    },
    ReuseKey {
        key: usize,
        same_body: bool,
    },
    Tick {
        ms: i64,
    },
    DayPasses,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..SKUS.len(), 0u64..40, 0u64..3).prop_map(|(sku, stock, limit)| Op::PutSku {
            sku,
            stock,
            limit
        }),
        (0u8..4, 0..SKUS.len(), 1u64..4, 1u64..4).prop_map(|(user, sku, qty, pay_within)| {
            Op::Create {
                user,
                sku,
                qty,
                pay_within,
            }
        }),
        (0usize..64).prop_map(|order| Op::Pay { order }),
        (0usize..64).prop_map(|order| Op::Cancel { order }),
        (0..SKUS.len(), 0u8..4).prop_map(|(sku, user)| Op::Seckill { sku, user }),
        (0usize..64).prop_map(|order| Op::Refund { order }),
        (0..TOPICS.len(), 0u8..3, prop_oneof![Just(0u64), 1u64..3000]).prop_map(
            |(topic, key, delay_ms)| Op::Publish {
                topic,
                key,
                delay_ms
            }
        ),
        (0..GROUPS.len(), any::<bool>()).prop_map(|(group, start_latest)| Op::Subscribe {
            group,
            start_latest
        }),
        (0..GROUPS.len() + 1, any::<bool>(), any::<bool>())
            .prop_map(|(group, ack, dead)| Op::Deliver { group, ack, dead }),
        (0..GROUPS.len() + 1, any::<bool>()).prop_map(|(group, all)| Op::Redrive { group, all }),
        (0..GROUPS.len() + 1, any::<bool>()).prop_map(|(group, all)| Op::Purge { group, all }),
        (0..GROUPS.len(), any::<bool>()).prop_map(|(group, paused)| Op::Pause { group, paused }),
        (0..GROUPS.len(), 0u64..12).prop_map(|(group, cursor)| Op::Reset { group, cursor }),
        Just(Op::FireDue),
        (0..TOPICS.len()).prop_map(|topic| Op::Trim { topic }),
        (0..GROUPS.len()).prop_map(|group| Op::Remove { group }),
        (0..REMEMBERED_KEYS, any::<bool>())
            .prop_map(|(key, same_body)| Op::ReuseKey { key, same_body }),
        (0i64..2500).prop_map(|ms| Op::Tick { ms }),
        Just(Op::DayPasses),
    ]
}

fn entry(index: u64, now_ms: i64, commands: Vec<Command>) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(CommandBatch { now_ms, commands }),
    }
}

fn keyed(key: String, action: Action) -> Command {
    let request_hash = format!("{action:?}").into_bytes();
    Command {
        idempotency_key: key,
        request_hash,
        action: Some(action),
    }
}

fn sku_put(sku: usize, stock: u64, limit: u64) -> Action {
    Action::PutSku(PutSku {
        sku: SKUS[sku].into(),
        stock,
        price_cents: 100,
        per_user_limit: limit,
    })
}

/// The group's settings: groups whose name ends in `-push` are pushed, the others pulled.
fn subscription(group: &str, topic: &str, start_latest: bool) -> Action {
    let push = group.ends_with("-push") || group == REFUND_GROUP;
    Action::PutSubscription(PutSubscription {
        group: group.into(),
        topic: topic.into(),
        push_url: if push {
            "http://127.0.0.1:9/hook".into()
        } else {
            String::new()
        },
        timeout_ms: 1000,
        max_attempts: 2,
        backoff_initial_ms: 500,
        backoff_max_ms: 2000,
        max_in_flight: 16,
        rate_per_sec: 0,
        ordered_by_key: false,
        start_latest,
        signing_secret: String::new(),
        signing_secret_drawn: false,
    })
}

fn topic_of(group: &str) -> &'static str {
    if group == REFUND_GROUP {
        "order.refund_requested"
    } else if group.starts_with("sms") {
        "sms"
    } else {
        "points"
    }
}

/// The log being written and the leader applying each entry as it is made.
struct LeaderLog {
    leader: Replica,
    entries: Vec<Entry>,
    outcomes: Vec<BatchOutcome>,
}

impl LeaderLog {
    /// Appends an entry of `commands` stamped `now_ms` and applies it alone on the leader.
    fn propose(&mut self, now_ms: i64, commands: Vec<Command>) -> BatchOutcome {
        let made = entry(self.entries.len() as u64 + 1, now_ms, commands);
        let mut answered = self.leader.apply(std::slice::from_ref(&made));
        let answer = answered.pop().expect("one outcome per entry");
        self.entries.push(made);
        self.outcomes.push(answer.clone());
        answer
    }
}

/// Builds a log a leader could have written: every entry applied alone on the leader as it is
/// made, each command chosen from the state so far. Answers the entries and the outcomes.
fn leader_log(ops: &[Op], per_entry: &[usize]) -> (Vec<Entry>, Vec<BatchOutcome>) {
    let mut log = LeaderLog {
        leader: Replica::new(),
        entries: Vec::new(),
        outcomes: Vec::new(),
    };
    let mut now_ms = START_MS;
    let mut orders: Vec<String> = Vec::new();

    // Stock, the refund group, and more idempotency keys than one entry forgets.
    let setup: Vec<Command> = (0..SKUS.len())
        .map(|sku| Command::new(sku_put(sku, 20, 0)))
        .chain(std::iter::once(Command::new(subscription(
            REFUND_GROUP,
            "order.refund_requested",
            false,
        ))))
        .collect();
    log.propose(now_ms, setup);
    for chunk in (0..REMEMBERED_KEYS).collect::<Vec<_>>().chunks(200) {
        let commands = chunk
            .iter()
            .map(|&i| {
                keyed(
                    format!("key-{i}"),
                    sku_put(i % SKUS.len(), 20 + i as u64, 0),
                )
            })
            .collect();
        log.propose(now_ms, commands);
    }

    let mut sizes = per_entry.iter().cycle();
    let mut ops = ops.iter().peekable();
    while ops.peek().is_some() {
        let size = sizes.next().copied().unwrap_or(1).max(1);
        let mut commands = Vec::new();
        for op in ops.by_ref().take(size) {
            let pick = |i: usize| {
                orders
                    .get(i % orders.len().max(1))
                    .cloned()
                    .unwrap_or_default()
            };
            let action = match op {
                Op::Tick { ms } => {
                    now_ms += ms;
                    continue;
                }
                Op::DayPasses => {
                    now_ms += DAY_AND_AN_HOUR_MS;
                    continue;
                }
                Op::PutSku { sku, stock, limit } => sku_put(*sku, *stock, *limit),
                Op::Create {
                    user,
                    sku,
                    qty,
                    pay_within,
                } => Action::CreateOrder(CreateOrder {
                    user_id: format!("u{user}"),
                    items: vec![OrderLine {
                        sku: SKUS[*sku].into(),
                        qty: *qty,
                    }],
                    pay_within_secs: *pay_within,
                }),
                Op::Pay { order } => Action::PayOrder(PayOrder {
                    order_id: pick(*order),
                    payment_ref: "p".into(),
                }),
                Op::Cancel { order } => Action::CancelOrder(CancelOrder {
                    order_id: pick(*order),
                }),
                Op::Seckill { sku, user } => Action::Seckill(Seckill {
                    sku: SKUS[*sku].into(),
                    user_id: format!("u{user}"),
                    pay_within_secs: 2,
                }),
                Op::Refund { order } => Action::RefundOrder(RefundOrder {
                    order_id: pick(*order),
                    reason: "damaged".into(),
                }),
                Op::Publish {
                    topic,
                    key,
                    delay_ms,
                } => Action::Publish(Publish {
                    topic: TOPICS[*topic].into(),
                    key: format!("k{key}"),
                    payload_json: format!("{{\"n\":{}}}", log.entries.len()),
                    delay_ms: *delay_ms,
                    deliver_at_ms: 0,
                }),
                Op::Subscribe {
                    group,
                    start_latest,
                } => {
                    let group = GROUPS[*group];
                    subscription(group, topic_of(group), *start_latest)
                }
                Op::Deliver { group, ack, dead } => {
                    deliveries(&log.leader, group_name(*group), now_ms, *ack, *dead)
                }
                Op::Redrive { group, all } => Action::Redrive(Redrive {
                    group: group_name(*group).into(),
                    offsets: dead_offsets(&log.leader, group_name(*group), *all),
                }),
                Op::Purge { group, all } => Action::PurgeDead(PurgeDead {
                    group: group_name(*group).into(),
                    offsets: dead_offsets(&log.leader, group_name(*group), *all),
                }),
                Op::Pause { group, paused } => Action::PauseSubscription(PauseSubscription {
                    group: GROUPS[*group].into(),
                    paused: *paused,
                }),
                Op::Reset { group, cursor } => Action::ResetSubscription(ResetSubscription {
                    group: GROUPS[*group].into(),
                    cursor: *cursor,
                }),
                Op::FireDue => Action::FireTimers(FireTimers {
                    keys: log
                        .leader
                        .storage
                        .reader
                        .timers_due(0, now_ms + 1, 64)
                        .expect("due timers"),
                }),
                Op::Trim { topic } => Action::TrimMessages(TrimMessages {
                    topic: TOPICS[*topic].into(),
                    up_to_offset: u64::MAX,
                    retention_ms: 1000,
                }),
                Op::Remove { group } => Action::RemoveSubscription(RemoveSubscription {
                    group: GROUPS[*group].into(),
                }),
                Op::ReuseKey { key, same_body } => {
                    let sku = key % SKUS.len();
                    let stock = if *same_body { 20 + *key as u64 } else { 1 };
                    commands.push(keyed(format!("key-{key}"), sku_put(sku, stock, 0)));
                    continue;
                }
            };
            commands.push(Command::new(action));
        }
        if commands.is_empty() {
            continue;
        }
        for outcome in log.propose(now_ms, commands).0 {
            if let Ok(Applied::OrderCreated(order)) = outcome {
                orders.push(order.id.clone());
            }
        }
    }
    (log.entries, log.outcomes)
}

fn group_name(group: usize) -> &'static str {
    GROUPS.get(group).copied().unwrap_or(REFUND_GROUP)
}

/// The outcome of delivering a few of `group`'s pending messages, as the scheduler reports it.
/// The offsets of `group`'s dead letters on the leader: all of them, or the first.
fn dead_offsets(leader: &Replica, group: &str, all: bool) -> Vec<u64> {
    let (letters, _) = leader
        .reads()
        .dead_letters(group, 0, usize::MAX)
        .expect("dead letters");
    let take = if all { letters.len() } else { 1 };
    letters
        .iter()
        .take(take)
        .map(|d| d.message.offset)
        .collect()
}

fn deliveries(leader: &Replica, group: &str, now_ms: i64, ack: bool, dead: bool) -> Action {
    let reads = leader.reads();
    let mut offsets = Vec::new();
    if let Ok(Some(sub)) = reads.subscription(group) {
        if let Ok(scan) = reads.pending_after(&sub, 0, 4) {
            offsets.extend(scan.messages.iter().map(|p| p.message.offset));
        }
        if let Ok((ready, _)) = reads.ready(&sub, |_| false, 4) {
            offsets.extend(ready.iter().map(|p| p.message.offset));
        }
    }
    offsets.sort_unstable();
    offsets.dedup();
    let (acks, failures) = if ack {
        (offsets, Vec::new())
    } else {
        let retry_at_ms = if dead { 0 } else { now_ms + 700 };
        let failures = offsets
            .into_iter()
            .map(|offset| FailedDelivery {
                offset,
                error: "HTTP 500".into(),
                retry_at_ms,
            })
            .collect();
        (Vec::new(), failures)
    };
    Action::RecordDeliveries(RecordDeliveries {
        group: group.into(),
        acks,
        failures,
    })
}

/// `entries` cut into consecutive groups at the given proportions.
fn split<'a>(entries: &'a [Entry], cuts: &[usize]) -> Vec<&'a [Entry]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (entries.len() + 1)).collect();
    at.push(0);
    at.push(entries.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| &entries[w[0]..w[1]]).collect()
}

fn apply_grouped(groups: &[&[Entry]]) -> (Replica, Vec<BatchOutcome>) {
    let mut replica = Replica::new();
    let mut outcomes = Vec::new();
    for group in groups {
        outcomes.extend(replica.apply(group));
    }
    (replica, outcomes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_grouping_of_the_log_decides_the_same(
        ops in prop::collection::vec(op(), 40..160),
        per_entry in prop::collection::vec(1usize..4, 1..8),
        cuts in prop::collection::vec(any::<usize>(), 1..12),
    ) {
        let (log, expected) = leader_log(&ops, &per_entry);
        let one_per_call = {
            let mut leader = Replica::new();
            for e in &log {
                leader.apply(std::slice::from_ref(e));
            }
            leader.digest()
        };

        let (all_at_once, outcomes) = apply_grouped(&[&log]);
        prop_assert_eq!(&outcomes, &expected, "outcomes applied in one call");
        prop_assert_eq!(all_at_once.digest(), one_per_call.clone(), "state applied in one call");

        let (random_split, outcomes) = apply_grouped(&split(&log, &cuts));
        prop_assert_eq!(&outcomes, &expected, "outcomes applied in random groups");
        prop_assert_eq!(random_split.digest(), one_per_call, "state applied in random groups");
    }

    #[test]
    fn a_snapshot_at_any_index_then_the_rest_gives_the_same_state(
        ops in prop::collection::vec(op(), 30..100),
        per_entry in prop::collection::vec(1usize..4, 1..6),
        at in any::<usize>(),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let (log, _) = leader_log(&ops, &per_entry);
        let at = at % (log.len() + 1);
        let (whole, _) = apply_grouped(&[&log]);

        let (mut source, _) = apply_grouped(&[&log[..at]]);
        let snapshot = source.runtime.block_on(async {
            let state = &mut source.storage.state;
            state.get_snapshot_builder().await.build_snapshot().await
        }).expect("snapshot");
        let mut target = Replica::new();
        let state = &mut target.storage.state;
        target.runtime.block_on(async {
            let received = state.begin_receiving_snapshot().await?;
            let mut received = *received;
            let mut data = *snapshot.snapshot;
            tokio::io::copy(&mut data, &mut received).await.map_err(|e| {
                openraft::StorageIOError::write_snapshot(None, &e)
            })?;
            state.install_snapshot(&snapshot.meta, Box::new(received)).await
        }).expect("install");
        for group in split(&log[at..], &cuts) {
            target.apply(group);
        }
        prop_assert_eq!(target.digest(), whole.digest());
    }
}

/// Applies the first `committed` entries of `log` one per call on two replicas, then the rest
/// one entry per call on one and all in one call on the other; both must answer and hold the
/// same. (The scans `apply` makes see committed and staged keys in different places, so the
/// interesting case is a group over state an earlier group committed.)
fn assert_grouping_free(log: &[Entry], committed: usize) {
    let mut one_by_one = Replica::new();
    let mut together = Replica::new();
    for e in &log[..committed] {
        one_by_one.apply(std::slice::from_ref(e));
        together.apply(std::slice::from_ref(e));
    }
    let mut outcomes = Vec::new();
    for e in &log[committed..] {
        outcomes.extend(one_by_one.apply(std::slice::from_ref(e)));
    }
    let grouped_outcomes = together.apply(&log[committed..]);

    assert_eq!(
        grouped_outcomes, outcomes,
        "outcomes depend on the grouping"
    );
    assert_eq!(
        together.digest(),
        one_by_one.digest(),
        "state depends on the grouping"
    );
}

#[test]
fn idempotency_keys_expire_the_same_whatever_the_grouping() {
    let mut log = Vec::new();
    let push = |log: &mut Vec<Entry>, now_ms: i64, commands: Vec<Command>| {
        log.push(entry(log.len() as u64 + 1, now_ms, commands));
    };
    for chunk in (0..REMEMBERED_KEYS).collect::<Vec<_>>().chunks(200) {
        push(
            &mut log,
            START_MS,
            chunk
                .iter()
                .map(|&i| keyed(format!("key-{i}"), sku_put(0, 20 + i as u64, 0)))
                .collect(),
        );
    }
    // A day later each entry forgets a bounded number of keys, oldest first; then a key from the
    // end of the backlog comes back with another body.
    let later = START_MS + DAY_AND_AN_HOUR_MS;
    for _ in 0..2 {
        push(&mut log, later, vec![Command::new(sku_put(1, 5, 0))]);
    }
    push(
        &mut log,
        later,
        vec![keyed(
            format!("key-{}", REMEMBERED_KEYS - 1),
            sku_put(2, 7, 0),
        )],
    );
    let remembered = log.len() - 3;
    assert_grouping_free(&log, remembered);
}

#[test]
fn a_large_group_is_removed_the_same_whatever_the_grouping() {
    let letters = sm::queue::RECORDS_PER_STEP + 50;
    let mut log = Vec::new();
    let push = |log: &mut Vec<Entry>, commands: Vec<Command>| {
        log.push(entry(log.len() as u64 + 1, START_MS, commands));
    };
    let mut subscribe = subscription("sms-push", "sms", false);
    if let Action::PutSubscription(put) = &mut subscribe {
        put.max_attempts = 1;
    }
    push(&mut log, vec![Command::new(subscribe)]);
    let offsets: Vec<u64> = (1..=letters as u64).collect();
    for chunk in offsets.chunks(500) {
        let publishes = chunk
            .iter()
            .map(|_| {
                Command::new(Action::Publish(Publish {
                    topic: "sms".into(),
                    key: "k".into(),
                    payload_json: "{}".into(),
                    delay_ms: 0,
                    deliver_at_ms: 0,
                }))
            })
            .collect();
        push(&mut log, publishes);
    }
    // Every message fails its only attempt: one dead letter each.
    for chunk in offsets.chunks(2000) {
        push(
            &mut log,
            vec![Command::new(Action::RecordDeliveries(RecordDeliveries {
                group: "sms-push".into(),
                acks: Vec::new(),
                failures: chunk
                    .iter()
                    .map(|&offset| FailedDelivery {
                        offset,
                        error: "HTTP 500".into(),
                        retry_at_ms: 0,
                    })
                    .collect(),
            }))],
        );
    }
    let letters_made = log.len();
    for _ in 0..3 {
        push(
            &mut log,
            vec![Command::new(Action::RemoveSubscription(
                RemoveSubscription {
                    group: "sms-push".into(),
                },
            ))],
        );
    }
    assert_grouping_free(&log, letters_made);
}

/// Names that collide with real ones (SKUs, topics, the built-in group) or are odd.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("A".to_string()),
        Just("points".to_string()),
        Just("order.paid".to_string()),
        Just("order.refund_requested".to_string()),
        Just(REFUND_GROUP.to_string()),
        Just("points-push".to_string()),
        "[a-c.:/-]{1,4}",
        "\\PC{0,12}",
    ]
}

/// Numbers from the small to the extreme.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..4, Just(u64::MAX), Just(u64::MAX / 2), any::<u64>()]
}

fn instant() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(START_MS),
        START_MS..START_MS + 10 * DAY_AND_AN_HOUR_MS,
        Just(0),
        Just(i64::MAX),
        Just(i64::MIN),
        any::<i64>(),
    ]
}

/// Timer keys: garbage bytes, or well-formed keys of any kind, time and target.
fn timer_key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24),
        (instant(), 0u8..3, name()).prop_map(|(due, kind, target)| {
            let kind = match kind {
                0 => sm::keys::TimerKind::CloseOrder,
                1 => sm::keys::TimerKind::DeliverMessage,
                _ => sm::keys::TimerKind::RetryDelivery,
            };
            sm::keys::timer(due, kind, &target)
        }),
    ]
}

/// Any action a client or the leader could propose, with fields anywhere in their range.
fn any_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (name(), number(), number(), number()).prop_map(|(sku, stock, price, limit)| {
            Action::PutSku(PutSku {
                sku,
                stock,
                price_cents: price,
                per_user_limit: limit,
            })
        }),
        (
            name(),
            prop::collection::vec((name(), number()), 0..4),
            number()
        )
            .prop_map(|(user_id, lines, pay_within_secs)| Action::CreateOrder(
                CreateOrder {
                    user_id,
                    items: lines
                        .into_iter()
                        .map(|(sku, qty)| OrderLine { sku, qty })
                        .collect(),
                    pay_within_secs,
                }
            )),
        (name(), name()).prop_map(|(order_id, payment_ref)| Action::PayOrder(PayOrder {
            order_id,
            payment_ref
        })),
        name().prop_map(|order_id| Action::CancelOrder(CancelOrder { order_id })),
        prop::collection::vec(timer_key(), 0..6)
            .prop_map(|keys| Action::FireTimers(FireTimers { keys })),
        (name(), name(), number()).prop_map(|(sku, user_id, pay_within_secs)| {
            Action::Seckill(Seckill {
                sku,
                user_id,
                pay_within_secs,
            })
        }),
        (name(), name(), "\\PC{0,16}", number(), instant()).prop_map(
            |(topic, key, payload_json, delay_ms, deliver_at_ms)| Action::Publish(Publish {
                topic,
                key,
                payload_json,
                delay_ms,
                deliver_at_ms,
            })
        ),
        (
            name(),
            name(),
            name(),
            (number(), any::<u32>(), number(), number()),
            (any::<u32>(), any::<u32>(), any::<bool>(), any::<bool>())
        )
            .prop_map(
                |(group, topic, push_url, (timeout_ms, max_attempts, initial, max), rest)| {
                    Action::PutSubscription(PutSubscription {
                        group,
                        topic,
                        push_url,
                        timeout_ms,
                        max_attempts,
                        backoff_initial_ms: initial,
                        backoff_max_ms: max,
                        max_in_flight: rest.0,
                        rate_per_sec: rest.1,
                        ordered_by_key: rest.2,
                        start_latest: rest.3,
                        signing_secret: String::new(),
                        signing_secret_drawn: false,
                    })
                }
            ),
        (
            name(),
            prop::collection::vec(number(), 0..6),
            prop::collection::vec((number(), name(), instant()), 0..6)
        )
            .prop_map(|(group, acks, failures)| {
                Action::RecordDeliveries(RecordDeliveries {
                    group,
                    acks,
                    failures: failures
                        .into_iter()
                        .map(|(offset, error, retry_at_ms)| FailedDelivery {
                            offset,
                            error,
                            retry_at_ms,
                        })
                        .collect(),
                })
            }),
        (name(), prop::collection::vec(number(), 0..6))
            .prop_map(|(group, offsets)| Action::Redrive(Redrive { group, offsets })),
        (name(), name())
            .prop_map(|(order_id, reason)| Action::RefundOrder(RefundOrder { order_id, reason })),
        (name(), number(), number()).prop_map(|(topic, up_to_offset, retention_ms)| {
            Action::TrimMessages(TrimMessages {
                topic,
                up_to_offset,
                retention_ms,
            })
        }),
        name().prop_map(|group| Action::RemoveSubscription(RemoveSubscription { group })),
        (name(), prop::collection::vec(number(), 0..6))
            .prop_map(|(group, offsets)| Action::PurgeDead(PurgeDead { group, offsets })),
        (name(), any::<bool>()).prop_map(|(group, paused)| Action::PauseSubscription(
            PauseSubscription { group, paused }
        )),
        (name(), number()).prop_map(|(group, cursor)| Action::ResetSubscription(
            ResetSubscription { group, cursor }
        )),
    ]
}

fn any_command() -> impl Strategy<Value = Command> {
    (
        prop::option::of(any_action()),
        prop_oneof![Just(String::new()), "[a-z]{1,3}"],
        prop::collection::vec(any::<u8>(), 0..3),
    )
        .prop_map(|(action, idempotency_key, request_hash)| Command {
            idempotency_key,
            request_hash,
            action,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever a client or the leader proposes, `apply` answers every command (a typed
    /// rejection at worst) and never fails or panics; and it still decides the same grouped.
    #[test]
    fn apply_answers_any_command_and_never_fails(
        batches in prop::collection::vec(
            (instant(), prop::collection::vec(any_command(), 1..5)),
            1..24,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut setup = vec![Command::new(subscription("points-push", "points", false))];
        setup.extend((0..SKUS.len()).map(|sku| Command::new(sku_put(sku, 5, 1))));
        let mut log = vec![entry(1, START_MS, setup)];
        for (now_ms, commands) in batches {
            log.push(entry(log.len() as u64 + 1, now_ms, commands));
        }
        let mut one_by_one = Replica::new();
        let mut outcomes = Vec::new();
        for e in &log {
            let answered = one_by_one.apply(std::slice::from_ref(e));
            let EntryPayload::Normal(batch) = &e.payload else { unreachable!() };
            prop_assert_eq!(answered[0].0.len(), batch.commands.len(), "one outcome per command");
            outcomes.extend(answered);
        }
        let (grouped, grouped_outcomes) = apply_grouped(&split(&log, &cuts));
        prop_assert_eq!(grouped_outcomes, outcomes);
        prop_assert_eq!(grouped.digest(), one_by_one.digest());
    }
}
