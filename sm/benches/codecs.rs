//! What the codecs cost: the Raft log entry (on disk and on the peer wire), the change record,
//! and the order record as stored, so a regression shows in `make bench-sm`
//! (`cargo bench -p orderq-sm --profile dev`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use openraft::{CommittedLeaderId, EntryPayload};
use sm::changes::{Change, Op, Table};
use sm::command::{Action, Command, CommandBatch, CreateOrder, OrderLine, PutSku};
use sm::log_codec::{decode_entry, encode_entry};
use sm::outcome::Applied;
use sm::raft_types::{Entry, LogId};
use sm::txn::Txn;
use sm::{apply_batch, Order};

/// The clock the sample order is created at.
const NOW_MS: i64 = 1_700_000_000_000;

/// A one-item order command as the API proposes it.
fn create_order(user: u64) -> Command {
    Command {
        idempotency_key: format!("orders:key-{user}"),
        request_hash: vec![7; 32],
        action: Some(Action::CreateOrder(CreateOrder {
            user_id: format!("u{user}"),
            items: vec![OrderLine {
                sku: "B".into(),
                qty: 1,
            }],
            pay_within_secs: 900,
        })),
    }
}

/// A log entry carrying `commands` one-item orders, as the batcher groups them.
fn entry_of(commands: u64) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), 123_456),
        payload: EntryPayload::Normal(CommandBatch {
            now_ms: NOW_MS,
            commands: (0..commands).map(create_order).collect(),
        }),
    }
}

/// An order as `apply` creates it.
fn sample_order() -> Order {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = sm::db::open(dir.path()).expect("the database opens");
    let mut txn = Txn::new(&db);
    let put = Command::new(Action::PutSku(PutSku {
        sku: "B".into(),
        stock: 1_000,
        price_cents: 100,
        per_user_limit: 0,
    }));
    let batch = CommandBatch {
        now_ms: NOW_MS,
        commands: vec![put, create_order(1)],
    };
    let mut outcomes = apply_batch(&mut txn, 1, &batch).expect("apply");
    match outcomes.remove(1) {
        Ok(Applied::OrderCreated(order)) => order,
        other => panic!("an order: {other:?}"),
    }
}

fn log_entry(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_entry");
    for commands in [1, 64] {
        let entry = entry_of(commands);
        let bytes = encode_entry(&entry).expect("encode");
        group.throughput(Throughput::Elements(commands));
        group.bench_function(format!("encode_{commands}_orders"), |b| {
            b.iter(|| black_box(encode_entry(black_box(&entry)).expect("encode")))
        });
        group.bench_function(format!("decode_{commands}_orders"), |b| {
            b.iter(|| black_box(decode_entry(black_box(&bytes)).expect("decode")))
        });
    }
    group.finish();
}

fn order_record(c: &mut Criterion) {
    let order = sample_order();
    let json = serde_json::to_vec(&order).expect("encode");
    let mut group = c.benchmark_group("order_record");
    group.bench_function("encode_json", |b| {
        b.iter(|| black_box(serde_json::to_vec(black_box(&order)).expect("encode")))
    });
    group.bench_function("decode_json", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Order>(black_box(&json)).expect("decode")))
    });
    group.finish();

    let mut group = c.benchmark_group("change_record");
    let change = Change {
        offset: 123_456 << 20,
        at_ms: NOW_MS,
        table: Table::Orders,
        key: order.id.clone().into_bytes(),
        op: Op::Update,
        before: Some(json.clone()),
        after: Some(json),
    };
    let bytes = change.encode().expect("encode");
    group.bench_function("encode_order_update", |b| {
        b.iter(|| black_box(black_box(&change).encode().expect("encode")))
    });
    group.bench_function("decode_order_update", |b| {
        b.iter(|| black_box(Change::decode(change.offset, black_box(&bytes)).expect("decode")))
    });
    group.finish();
}

criterion_group!(benches, log_entry, order_record);
criterion_main!(benches);
