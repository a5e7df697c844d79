//! What an order costs the state machine in CPU and on disk, background work included
//! (`make bench-sm` runs it after the criterion benches).
//!
//! Why beside criterion: criterion times the applying thread, while RocksDB's flushes and
//! compactions run on threads of their own, and on a two-core machine they compete with `apply`
//! for the same CPU. This applies a run of orders as a node does (entries of several commands,
//! each with an idempotency key, written without the WAL), then flushes and compacts, and prints
//! the whole process's CPU per order, with the SST bytes per order of every column family and the
//! size of a snapshot.
//!
//! usage: `cargo run -p orderq-sm --profile dev --example order_footprint [ORDERS]`

use std::time::Instant;

use sm::apply_batch;
use sm::command::{Action, Command, CommandBatch, CreateOrder, OrderLine, PutSku};
use sm::keys::ALL_CFS;
use sm::txn::Txn;

/// Orders applied unless the first argument says otherwise.
const DEFAULT_ORDERS: u64 = 100_000;
/// Commands per Raft entry: about what the batcher groups under 64 clients.
const PER_ENTRY: u64 = 16;
/// SKUs the orders are spread over, one line each.
const SKUS: u64 = 50;
/// The clock every entry is stamped with.
const NOW_MS: i64 = 1_700_000_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let orders = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => DEFAULT_ORDERS,
    };
    let dir = tempfile::tempdir()?;
    let db = sm::db::open(dir.path())?;
    let mut index = 0;
    let mut apply = |actions: Vec<(String, Action)>| -> Result<(), Box<dyn std::error::Error>> {
        index += 1;
        let batch = CommandBatch {
            now_ms: NOW_MS,
            commands: actions
                .into_iter()
                .map(|(idempotency_key, action)| Command {
                    idempotency_key,
                    request_hash: vec![7; 32],
                    action: Some(action),
                })
                .collect(),
        };
        let mut txn = Txn::new(&db);
        apply_batch(&mut txn, index, &batch)?;
        db.write_opt(txn.into_write_batch()?, &sm::db::unlogged())?;
        Ok(())
    };
    let skus = (0..SKUS)
        .map(|n| {
            let sku = PutSku {
                sku: sku_id(n),
                stock: 1_000_000_000,
                price_cents: 199 + 100 * n,
                per_user_limit: 0,
            };
            (format!("sku-{n}"), Action::PutSku(sku))
        })
        .collect();
    apply(skus)?;

    let (cpu_before, started) = (process_cpu_us(), Instant::now());
    for first in (0..orders).step_by(PER_ENTRY as usize) {
        let entry = (first..orders.min(first + PER_ENTRY))
            .map(|n| {
                let order = CreateOrder {
                    user_id: format!("u{}", n % 10_000),
                    items: vec![OrderLine {
                        sku: sku_id(n % SKUS),
                        qty: 1 + n % 3,
                    }],
                    pay_within_secs: 900,
                };
                (format!("order-{n:012}"), Action::CreateOrder(order))
            })
            .collect();
        apply(entry)?;
    }
    let applied_us = process_cpu_us() - cpu_before;
    let wall = started.elapsed();
    for name in ALL_CFS {
        db.flush_cf(sm::db::cf(&db, name)?)?;
    }
    let flushed_us = process_cpu_us() - cpu_before;
    for name in ALL_CFS {
        db.compact_range_cf(sm::db::cf(&db, name)?, None::<&[u8]>, None::<&[u8]>);
    }
    let compacted_us = process_cpu_us() - cpu_before;

    let per_order = |us: u64| us as f64 / orders as f64;
    println!(
        "{orders} orders in {:.1} s: CPU per order {:.1} us applying (background included), \
         {:.1} us with the last flush, {:.1} us with a full compaction",
        wall.as_secs_f64(),
        per_order(applied_us),
        per_order(flushed_us),
        per_order(compacted_us)
    );
    let mut total = 0;
    for name in ALL_CFS {
        let bytes = db
            .property_int_value_cf(sm::db::cf(&db, name)?, "rocksdb.total-sst-files-size")?
            .unwrap_or(0);
        total += bytes;
        println!("  {name:12} {:8.1} SST bytes per order", per_order(bytes));
    }
    println!(
        "  {:12} {:8.1} SST bytes per order",
        "all",
        per_order(total)
    );
    let mut snapshot = Vec::new();
    sm::snapshot::capture(&db, &mut snapshot)?;
    println!(
        "  a snapshot of the state: {:.1} bytes per order",
        per_order(snapshot.len() as u64)
    );
    Ok(())
}

/// The id of the `n`th SKU.
fn sku_id(n: u64) -> String {
    format!("sku-{n:04}")
}

/// CPU time of this whole process so far (every thread, user and system), in microseconds.
fn process_cpu_us() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}
