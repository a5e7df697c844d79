//! The mixed workload: many concurrent clients creating, paying, cancelling and reading orders,
//! buying in a flash sale and reading stock, each recording every operation in the [`History`].
//!
//! Clients behave as the contract asks a good client to: every create carries an idempotency
//! key and is retried with the same key and body on another node while the answer is
//! ambiguous; a pay is retried with the same `payment_ref`. Whatever the retries end in is one
//! operation whose interval spans all its attempts, which is what the checkers need.
//!
//! The durable queue is part of the mix: clients publish messages (with an idempotency key,
//! retried with it) to [`WorkloadPlan::topic`] and refund paid orders; the run's
//! [`super::subscribers::Subscribers`] receive what the cluster delivers. No order gets more than
//! [`MAX_OPS_PER_ORDER`] operations: clients rotate to fresher orders, so every per-order history
//! stays decidable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::task::JoinSet;

use super::history::{History, OpKind, Operation, Outcome};
use super::rng::Rng;
use crate::client::{NodeClient, Request};
use crate::model::{epoch_ms, SkuSettings};

/// How long a client keeps retrying one write before calling it unknown. Longer than an
/// election, shorter than a pause fault, so both outcomes happen.
const WRITE_DEADLINE: Duration = Duration::from_secs(8);

/// How long one request may take: a paused node must not hold a client for long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// How many of the newest acknowledged orders clients pay, cancel and read: recent orders are
/// the ones whose operations race.
const RECENT_ORDERS: usize = 64;

/// Most operations clients aim at one order (pay, cancel, refund, reads; its create aside).
/// An order that had its share drops out of the choice, and fresher orders take its place, so
/// every per-order history stays small enough for the linearizability search to decide (it
/// takes 120 operations; a 30-minute run once had 72 orders past that).
pub const MAX_OPS_PER_ORDER: u32 = 40;

/// One SKU the workload uses and how it is loaded.
#[derive(Debug, Clone)]
pub struct SkuPlan {
    /// The SKU id.
    pub sku: String,
    /// Its stock, price and per-user limit.
    pub settings: SkuSettings,
}

/// What the workload does: how many clients, on which SKUs.
#[derive(Debug, Clone)]
pub struct WorkloadPlan {
    /// Concurrent clients.
    pub clients: u32,
    /// Users per client (user ids are `c{client}-u{n}`, so the final check can list them all).
    pub users_per_client: u32,
    /// SKUs ordered with `POST /v1/orders`. One small stock, so `insufficient_stock` happens
    /// and cancels and expiries hand units back.
    pub skus: Vec<SkuPlan>,
    /// The flash-sale SKU bought with `POST /v1/seckill/{sku}`.
    pub seckill: SkuPlan,
    /// The SKU of the deadline bursts ([`Workload::deadline_burst`]): only they order it.
    pub burst: SkuPlan,
    /// Pay windows a create chooses from (seconds); short ones close during the run.
    pub pay_windows: Vec<u64>,
    /// The topic clients publish to (a push subscription on it is judged by the
    /// `publishes` checker).
    pub topic: String,
}

impl Default for WorkloadPlan {
    fn default() -> Self {
        let sku = |name: &str, stock| SkuPlan {
            sku: name.to_owned(),
            settings: SkuSettings::new(stock, 1999),
        };
        WorkloadPlan {
            clients: 12,
            users_per_client: 4,
            skus: vec![sku("A", 20_000), sku("B", 20_000), sku("C", 300)],
            seckill: SkuPlan {
                sku: "S".to_owned(),
                settings: SkuSettings {
                    stock: 200,
                    price_cents: 99,
                    per_user_limit: 3,
                },
            },
            burst: sku("D", 1_000_000),
            pay_windows: vec![3, 6, 12, 600],
            topic: "chaos.events".to_owned(),
        }
    }
}

impl WorkloadPlan {
    /// Every user id any client uses.
    pub fn users(&self) -> Vec<String> {
        (0..self.clients)
            .flat_map(|c| (0..self.users_per_client).map(move |u| user_id(c, u)))
            .collect()
    }

    /// Every SKU the workload touches, flash-sale SKU included.
    pub fn all_skus(&self) -> Vec<&SkuPlan> {
        self.skus
            .iter()
            .chain([&self.seckill, &self.burst])
            .collect()
    }
}

/// The user id of client `client`'s user `n`.
fn user_id(client: u32, n: u32) -> String {
    format!("c{client}-u{n}")
}

/// A node's client with its id.
#[derive(Debug, Clone)]
pub struct Target {
    /// Node id.
    pub id: u64,
    /// Its API client (short timeouts).
    pub client: NodeClient,
}

/// The running workload's shared state.
#[derive(Debug)]
struct Shared {
    /// What to do.
    plan: WorkloadPlan,
    /// Every node, running or not: a client that hits a killed node just gets no answer.
    targets: Vec<Target>,
    /// Where operations are recorded.
    history: Arc<History>,
    /// Ids of acknowledged orders, newest last, for pay/cancel/read to choose from.
    known_orders: Mutex<Vec<String>>,
    /// Ids of orders whose pay was acknowledged, newest last, for refunds to choose from.
    paid_orders: Mutex<Vec<String>>,
    /// Operations chosen per order so far, to retire an order at [`MAX_OPS_PER_ORDER`].
    ops_per_order: Mutex<HashMap<String, u32>>,
    /// When the run's faults end: no order's pay window reaches more than
    /// [`DEADLINE_SLACK`] past it, so every close timer has fired soon after the run and the
    /// final state can be read at a quiet applied index.
    ends: Instant,
    /// Set when the run is over; clients finish their current operation and stop.
    stop: AtomicBool,
}

/// How far past the end of the run an order's `expires_at` may lie.
const DEADLINE_SLACK: Duration = Duration::from_secs(12);

/// Handle to the running clients.
pub struct Workload {
    /// Shared with every client task.
    shared: Arc<Shared>,
    /// The client tasks.
    tasks: JoinSet<()>,
}

impl Workload {
    /// Starts `plan.clients` client tasks against `targets`, their choices seeded from `rng`;
    /// the run's faults end at `ends` (pay windows are cut to end soon after it).
    pub fn start(
        plan: WorkloadPlan,
        targets: Vec<Target>,
        history: Arc<History>,
        rng: &Rng,
        ends: Instant,
    ) -> Self {
        let shared = Arc::new(Shared {
            plan,
            targets,
            history,
            known_orders: Mutex::new(Vec::new()),
            paid_orders: Mutex::new(Vec::new()),
            ops_per_order: Mutex::new(HashMap::new()),
            ends,
            stop: AtomicBool::new(false),
        });
        let mut tasks = JoinSet::new();
        for client in 0..shared.plan.clients {
            let shared = shared.clone();
            let rng = rng.fork(u64::from(client) + 1);
            tasks.spawn(run_client(shared, client, rng));
        }
        Workload { shared, tasks }
    }

    /// Creates `orders` orders of the burst SKU from `lanes` concurrent pseudo-clients (numbered
    /// after the workload's own, each running its creates one after another), each with the pay
    /// window that puts its `expires_at` nearest `aim_epoch_ms`; every create is recorded like
    /// any operation, so the checkers judge these orders too. Answers the earliest `expires_at`
    /// acknowledged (epoch ms), if any was.
    pub async fn deadline_burst(
        &self,
        orders: u32,
        lanes: u32,
        aim_epoch_ms: i64,
        rng: &Rng,
    ) -> Option<i64> {
        let mut tasks = JoinSet::new();
        let burst = self.shared.history.now_ms();
        for lane in 0..lanes {
            let shared = self.shared.clone();
            let mut rng = rng.fork(u64::from(lane));
            tasks.spawn(async move {
                let plan = &shared.plan;
                let client = plan.clients + lane;
                let mut earliest: Option<i64> = None;
                for n in (lane..orders).step_by(lanes as usize) {
                    let now = shared.history.started_epoch_ms()
                        + i64::try_from(shared.history.now_ms()).unwrap_or(i64::MAX);
                    let window = ((aim_epoch_ms - now) as f64 / 1000.0).round().max(1.0) as u64;
                    let kind = OpKind::CreateOrder {
                        key: format!("chaos-burst-{burst}-{n}"),
                        user_id: user_id(n % plan.clients, n % plan.users_per_client),
                        items: vec![(plan.burst.sku.clone(), 1)],
                        pay_within_secs: window,
                    };
                    let operation = perform(&shared, client, &mut rng, kind).await;
                    if let Outcome::Ok { body, .. } = &operation.outcome {
                        if let Some(at) = body["expires_at"].as_str().and_then(epoch_ms) {
                            earliest = Some(earliest.map_or(at, |e| e.min(at)));
                        }
                    }
                    shared.history.record(operation);
                }
                earliest
            });
        }
        let mut earliest: Option<i64> = None;
        while let Some(joined) = tasks.join_next().await {
            if let Ok(Some(at)) = joined {
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
        }
        earliest
    }

    /// Asks every client to stop and waits for their last operations to end.
    pub async fn stop(mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(e) = joined {
                eprintln!("chaos: a client task failed: {e}");
            }
        }
    }
}

/// One client: choose an operation, run it to its end, record it, repeat until stopped.
async fn run_client(shared: Arc<Shared>, client: u32, mut rng: Rng) {
    let mut keys_minted = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        let Some(kind) = choose(&shared, client, &mut rng, &mut keys_minted) else {
            continue;
        };
        let operation = perform(&shared, client, &mut rng, kind).await;
        if let Outcome::Ok { body, .. } = &operation.outcome {
            match &operation.kind {
                OpKind::CreateOrder { .. } | OpKind::Seckill { .. } => {
                    if let Some(id) = body.get("id").and_then(|id| id.as_str()) {
                        lock(&shared.known_orders).push(id.to_owned());
                    }
                }
                OpKind::Pay { order_id, .. } => lock(&shared.paid_orders).push(order_id.clone()),
                _ => {}
            }
        }
        shared.history.record(operation);
        // A short think time keeps per-order histories small enough to check exhaustively.
        tokio::time::sleep(Duration::from_millis(rng.below(10))).await;
    }
}

/// The next operation of `client`, `None` when it needs an order and none is known yet.
/// `keys_minted` numbers the client's idempotency keys, so no two of its requests share one.
fn choose(shared: &Shared, client: u32, rng: &mut Rng, keys_minted: &mut u64) -> Option<OpKind> {
    let plan = &shared.plan;
    let user = user_id(client, rng.below(u64::from(plan.users_per_client)) as u32);
    let roll = rng.below(100);
    if roll < 25 {
        *keys_minted += 1;
        let lines = rng.between(1, 2);
        let mut items: Vec<(String, i64)> = Vec::new();
        for _ in 0..lines {
            let sku = rng.pick(&plan.skus)?.sku.clone();
            if items.iter().all(|(s, _)| *s != sku) {
                items.push((sku, rng.between(1, 3) as i64));
            }
        }
        return Some(OpKind::CreateOrder {
            key: format!("chaos-c{client}-{keys_minted}"),
            user_id: user,
            items,
            pay_within_secs: (*rng.pick(&plan.pay_windows)?).min(
                (shared.ends.saturating_duration_since(Instant::now()) + DEADLINE_SLACK).as_secs(),
            ),
        });
    }
    if roll < 32 {
        *keys_minted += 1;
        return Some(OpKind::Seckill {
            key: format!("chaos-sk-c{client}-{keys_minted}"),
            sku: plan.seckill.sku.clone(),
            user_id: user,
        });
    }
    if roll < 38 {
        *keys_minted += 1;
        return Some(OpKind::Publish {
            key: format!("chaos-pub-c{client}-{keys_minted}"),
            topic: plan.topic.clone(),
            message_key: format!("k{}", rng.below(8)),
            delay_secs: if rng.chance(20) { rng.between(1, 3) } else { 0 },
        });
    }
    if roll < 43 {
        *keys_minted += 1;
        let order_id = pick_order(shared, &shared.paid_orders, rng)?;
        return Some(OpKind::Refund {
            key: format!("chaos-rf-c{client}-{keys_minted}"),
            order_id,
        });
    }
    if roll < 88 {
        let order_id = pick_order(shared, &shared.known_orders, rng)?;
        return Some(match roll {
            43..=56 => OpKind::Pay {
                order_id,
                payment_ref: format!("pay-{}", ["a", "b"][rng.below(2) as usize]),
            },
            57..=63 => OpKind::Cancel { order_id },
            64..=76 => OpKind::ReadOrder {
                order_id,
                local: false,
            },
            _ => OpKind::ReadOrder {
                order_id,
                local: true,
            },
        });
    }
    let skus = plan.all_skus();
    Some(OpKind::ReadSku {
        sku: rng.pick(&skus)?.sku.clone(),
        local: rng.chance(50),
    })
}

/// One of the [`RECENT_ORDERS`] newest orders of `orders` that has not had its
/// [`MAX_OPS_PER_ORDER`] operations yet, counted as chosen; `None` when there is none.
fn pick_order(shared: &Shared, orders: &Mutex<Vec<String>>, rng: &mut Rng) -> Option<String> {
    let mut counts = lock(&shared.ops_per_order);
    let candidates: Vec<String> = {
        let orders = lock(orders);
        let mut recent: Vec<String> = Vec::with_capacity(RECENT_ORDERS);
        for id in orders.iter().rev() {
            if counts.get(id).copied().unwrap_or(0) < MAX_OPS_PER_ORDER {
                recent.push(id.clone());
                if recent.len() == RECENT_ORDERS {
                    break;
                }
            }
        }
        recent
    };
    let chosen = rng.pick(&candidates)?.clone();
    *counts.entry(chosen.clone()).or_default() += 1;
    Some(chosen)
}

/// The request an operation sends (the same on every attempt).
fn request_of(kind: &OpKind) -> Request {
    let local = |path: String, local: bool| {
        if local {
            format!("{path}?consistency=local")
        } else {
            path
        }
    };
    match kind {
        OpKind::CreateOrder {
            key,
            user_id,
            items,
            pay_within_secs,
        } => {
            let items: Vec<_> = items
                .iter()
                .map(|(sku, qty)| serde_json::json!({"sku": sku, "qty": qty}))
                .collect();
            Request::json(
                Method::POST,
                "/v1/orders",
                &serde_json::json!({"user_id": user_id, "items": items,
                    "pay_within_secs": pay_within_secs}),
            )
            .idempotency_key(key)
        }
        OpKind::Seckill { key, sku, user_id } => Request::json(
            Method::POST,
            format!("/v1/seckill/{sku}"),
            &serde_json::json!({"user_id": user_id}),
        )
        .idempotency_key(key),
        OpKind::Pay {
            order_id,
            payment_ref,
        } => Request::json(
            Method::POST,
            format!("/v1/orders/{order_id}/pay"),
            &serde_json::json!({"payment_ref": payment_ref}),
        ),
        OpKind::Cancel { order_id } => Request::json(
            Method::POST,
            format!("/v1/orders/{order_id}/cancel"),
            &serde_json::json!({}),
        ),
        OpKind::Refund { key, order_id } => Request::json(
            Method::POST,
            format!("/v1/orders/{order_id}/refund"),
            &serde_json::json!({"reason": "chaos"}),
        )
        .idempotency_key(key),
        OpKind::Publish {
            key,
            topic,
            message_key,
            delay_secs,
        } => Request::json(
            Method::POST,
            format!("/v1/topics/{topic}/messages"),
            &serde_json::json!({"key": message_key, "payload": {"publish": key},
                "delay_secs": delay_secs}),
        )
        .idempotency_key(key),
        OpKind::ReadOrder { order_id, local: l } => {
            Request::get(local(format!("/v1/orders/{order_id}"), *l))
        }
        OpKind::ReadSku { sku, local: l } => Request::get(local(format!("/v1/skus/{sku}"), *l)),
    }
}

/// Runs one operation to its end: a write is retried on the next node while the answer is
/// ambiguous or says "try again" (no answer, 429, 5xx), until [`WRITE_DEADLINE`]; a read is
/// sent once.
async fn perform(shared: &Shared, client: u32, rng: &mut Rng, kind: OpKind) -> Operation {
    let first = rng.below(shared.targets.len() as u64) as usize;
    let invoked_ms = shared.history.now_ms();
    let retries = kind.is_write();
    let mut attempts = 0u32;
    let outcome = loop {
        let target = &shared.targets[(first + attempts as usize) % shared.targets.len()];
        attempts += 1;
        let reason = match target.client.send(request_of(&kind)).await {
            Ok(response) if response.is_success() => {
                break Outcome::Ok {
                    status: response.status,
                    body: response.json(),
                }
            }
            Ok(response) if response.status < 500 && response.status != 429 => {
                break Outcome::Failed {
                    status: response.status,
                    code: response.error_code().unwrap_or_default(),
                }
            }
            Ok(response) => format!("node {}: HTTP {}", target.id, response.status),
            Err(e) => format!("node {}: {e}", target.id),
        };
        let elapsed = shared.history.now_ms().saturating_sub(invoked_ms);
        if !retries || elapsed >= WRITE_DEADLINE.as_millis() as u64 {
            break Outcome::Unknown { reason };
        }
        tokio::time::sleep(Duration::from_millis(rng.between(20, 200))).await;
    };
    Operation {
        client,
        node: shared.targets[first].id,
        kind,
        invoked_ms,
        completed_ms: shared.history.now_ms(),
        attempts,
        outcome,
    }
}

/// Locks a mutex, surviving a poisoned one (a panicked client must not stop the others).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
