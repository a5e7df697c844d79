//! What `apply` costs per command kind, so a regression shows in `make bench-sm`
//! (`cargo bench -p orderq-sm --profile dev`).
//!
//! Each iteration applies one Raft entry holding one command to a real RocksDB (in a temporary
//! folder, without fsync: the log's sync is not what is measured here) and writes its batch,
//! as a node does after commit. Entries carry an idempotency key like API requests do, so the
//! stored answer is part of the cost. The state grows while a benchmark runs, as it does in a
//! node.

use std::cell::RefCell;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use sm::command::{
    Action, Command, CommandBatch, CreateOrder, FailedDelivery, FireTimers, OrderLine, PayOrder,
    Publish, PutSku, PutSubscription, RecordDeliveries, Seckill,
};
use sm::outcome::{Applied, Outcome};
use sm::txn::Txn;
use sm::{apply_batch, StateReader};

/// The clock every entry is stamped with, unless a benchmark moves it on.
const NOW_MS: i64 = 1_700_000_000_000;
/// How long an order may stay unpaid: its close timer is due this much after `NOW_MS`.
const PAY_WITHIN_SECS: u64 = 900;

/// A state machine without Raft: one entry per call, written as a node writes it.
struct Bench {
    _dir: tempfile::TempDir,
    db: Arc<rocksdb::DB>,
    index: u64,
    keys: u64,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let db = sm::db::open(dir.path()).expect("the database opens");
        Bench {
            _dir: dir,
            db,
            index: 0,
            keys: 0,
        }
    }

    /// Applies `action` in an entry of its own, with a fresh idempotency key, at `now_ms`.
    fn apply_at(&mut self, now_ms: i64, action: Action) -> Outcome {
        self.index += 1;
        self.keys += 1;
        let command = Command {
            idempotency_key: format!("bench-{}", self.keys),
            request_hash: vec![7; 32],
            action: Some(action),
        };
        let batch = CommandBatch {
            now_ms,
            commands: vec![command],
        };
        let mut txn = Txn::new(&self.db);
        let mut outcomes = apply_batch(&mut txn, self.index, &batch).expect("apply");
        self.db
            .write(txn.into_write_batch().expect("the batch"))
            .expect("write");
        outcomes.remove(0)
    }

    fn apply(&mut self, action: Action) -> Outcome {
        self.apply_at(NOW_MS, action)
    }

    fn order(&mut self, user: u64) -> String {
        self.order_at(NOW_MS, user)
    }

    fn order_at(&mut self, now_ms: i64, user: u64) -> String {
        match self.apply_at(now_ms, create_order(user)) {
            Ok(Applied::OrderCreated(order)) => order.id,
            other => panic!("an order: {other:?}"),
        }
    }
}

fn put_sku(sku: &str, stock: u64) -> Action {
    Action::PutSku(PutSku {
        sku: sku.into(),
        stock,
        price_cents: 100,
        per_user_limit: 0,
    })
}

fn create_order(user: u64) -> Action {
    Action::CreateOrder(CreateOrder {
        user_id: format!("u{user}"),
        items: vec![OrderLine {
            sku: "B".into(),
            qty: 1,
        }],
        pay_within_secs: PAY_WITHIN_SECS,
    })
}

fn seckill(sku: &str, user: u64) -> Action {
    Action::Seckill(Seckill {
        sku: sku.into(),
        user_id: format!("u{user}"),
        pay_within_secs: PAY_WITHIN_SECS,
    })
}

fn publish(n: u64) -> Action {
    Action::Publish(Publish {
        topic: "bench".into(),
        key: format!("k{n}"),
        payload_json: format!("{{\"data\":\"{}\"}}", "x".repeat(170)),
        delay_ms: 0,
        deliver_at_ms: 0,
    })
}

fn subscribe(group: &str) -> Action {
    Action::PutSubscription(PutSubscription {
        group: group.into(),
        topic: "bench".into(),
        push_url: "http://127.0.0.1:1/hook".into(),
        timeout_ms: 1_000,
        max_attempts: 1_000_000,
        backoff_initial_ms: 10,
        backoff_max_ms: 100,
        max_in_flight: 64,
        rate_per_sec: 0,
        ordered_by_key: false,
        start_latest: false,
        signing_secret: String::new(),
        signing_secret_drawn: false,
    })
}

fn apply_per_command(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");

    let mut b = Bench::new();
    let mut n = 0;
    group.bench_function("put_sku", |i| {
        i.iter(|| {
            n += 1;
            black_box(b.apply(put_sku("B", 1_000_000 + n)))
        })
    });

    let mut b = Bench::new();
    b.apply(put_sku("B", 1_000_000_000)).expect("the SKU");
    let mut n = 0;
    group.bench_function("create_order", |i| {
        i.iter(|| {
            n += 1;
            black_box(b.apply(create_order(n)))
        })
    });

    let mut b = Bench::new();
    b.apply(put_sku("B", 1_000_000_000)).expect("the SKU");
    // Setup and routine both use the bench: one borrows it at a time.
    let b = RefCell::new(b);
    let mut n = 0;
    group.bench_function("pay_order", |i| {
        i.iter_batched(
            || {
                n += 1;
                b.borrow_mut().order(n)
            },
            |order_id| {
                black_box(b.borrow_mut().apply(Action::PayOrder(PayOrder {
                    order_id,
                    payment_ref: "pay-1".into(),
                })))
            },
            BatchSize::SmallInput,
        )
    });

    let mut b = Bench::new();
    b.apply(put_sku("HOT", 1_000_000_000)).expect("the SKU");
    let mut n = 0;
    group.bench_function("seckill_buy", |i| {
        i.iter(|| {
            n += 1;
            black_box(b.apply(seckill("HOT", n)))
        })
    });

    let mut b = Bench::new();
    b.apply(put_sku("GONE", 0)).expect("the SKU");
    let mut n = 0;
    group.bench_function("seckill_sold_out", |i| {
        i.iter(|| {
            n += 1;
            black_box(b.apply(seckill("GONE", n)))
        })
    });

    let mut b = Bench::new();
    b.apply(subscribe("g")).expect("the group");
    let mut n = 0;
    group.bench_function("publish_200b", |i| {
        i.iter(|| {
            n += 1;
            black_box(b.apply(publish(n)))
        })
    });

    // One ack and one failure per entry, over messages published beforehand.
    let mut b = Bench::new();
    b.apply(subscribe("g")).expect("the group");
    let b = RefCell::new(b);
    let mut n = 0;
    group.bench_function("record_deliveries", |i| {
        i.iter_batched(
            || {
                let mut pair = [0; 2];
                for slot in &mut pair {
                    n += 1;
                    *slot = match b.borrow_mut().apply(publish(n)) {
                        Ok(Applied::Published(message)) => message.offset,
                        other => panic!("a message: {other:?}"),
                    };
                }
                pair
            },
            |[acked, failed]| {
                black_box(
                    b.borrow_mut()
                        .apply(Action::RecordDeliveries(RecordDeliveries {
                            group: "g".into(),
                            acks: vec![acked],
                            failures: vec![FailedDelivery {
                                offset: failed,
                                error: "http status 500".into(),
                                retry_at_ms: NOW_MS + 10,
                            }],
                        })),
                )
            },
            BatchSize::SmallInput,
        )
    });

    // Closing unpaid orders: one due close timer fired per entry.
    let mut b = Bench::new();
    b.apply(put_sku("B", 1_000_000_000)).expect("the SKU");
    let reader = StateReader::new(b.db.clone());
    // The batch clock never goes backwards: each order is created when the previous one's
    // timer fired, and its own timer fires `PAY_WITHIN_SECS` later.
    let pay_within_ms = PAY_WITHIN_SECS as i64 * 1_000;
    let mut clock = NOW_MS;
    let b = RefCell::new(b);
    let mut n = 0;
    group.bench_function("fire_close_timer", |i| {
        i.iter_batched(
            || {
                n += 1;
                let created = clock;
                b.borrow_mut().order_at(created, n);
                clock = created + pay_within_ms;
                let key = reader
                    .timers_due(created, clock + 1, 1)
                    .expect("the timers")
                    .remove(0);
                (clock, key)
            },
            |(due_ms, key)| {
                black_box(
                    b.borrow_mut()
                        .apply_at(due_ms, Action::FireTimers(FireTimers { keys: vec![key] })),
                )
            },
            BatchSize::SmallInput,
        )
    });

    group.finish();
}

criterion_group!(benches, apply_per_command);
criterion_main!(benches);
