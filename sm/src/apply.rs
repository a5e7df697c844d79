//! The deterministic state transition: `(state, command batch) → (state', outcomes)`.
//!
//! To ensure correctness:
//! - Nothing here reads a clock, a random source or anything outside the [`Txn`]: time is the
//!   batch's `now_ms`, ids come from the log index and the command's position.
//! - Every refusal is a [`Rejection`] returned as the command's outcome, never a panic; a refused
//!   command changes nothing, except a payment that arrives after the deadline, which closes the
//!   expired order it was refused for.
//! - Stock moves only between `available`, `reserved` and `sold` with checked arithmetic, so
//!   `available + reserved + sold == stock` holds after every command.

use std::collections::BTreeMap;

use crate::command::{
    Action, CancelOrder, Command, CommandBatch, CreateOrder, PayOrder, Publish, PutSku,
};
use crate::counters;
use crate::error::StoreError;
use crate::idempotency;
use crate::keys::{self, TimerKind, CF_ORDERS, CF_SKUS, CF_USER_ORDERS};
use crate::order::{CloseReason, Order, OrderItem, OrderState};
use crate::order_event;
use crate::outcome::{Applied, Outcome, Rejection};
use crate::queue::{self, NewMessage};
use crate::sku::Sku;
use crate::timers;
use crate::txn::Txn;
use crate::user_limit;

pub use crate::idempotency::IdempotencyRecord;

/// Change records an entry may have staged and still take another command: far more than any one
/// command records (an order of [`MAX_ORDER_LINES`], a redrive of [`MAX_REDRIVE`], a trim of
/// [`crate::retention::MAX_TRIM`]), and far below the `2^20` one entry's offsets can number.
const CHANGES_BEFORE_ENTRY_FULL: u64 = crate::changes::MAX_CHANGES_PER_ENTRY / 2;
/// Most lines an order may have (the API allows far fewer).
pub const MAX_ORDER_LINES: usize = 1_000;
/// Most dead letters one `Redrive` moves: larger redrives are proposed in steps.
pub const MAX_REDRIVE: usize = 1_000;

/// Applies every command of `batch`, found at `log_index`, answering each. The batch runs at
/// its stamped time, or at the last batch's if that is later ([`crate::batch_clock`]); its
/// changes are recorded under `log_index`.
pub fn apply_batch(
    txn: &mut Txn<'_>,
    log_index: u64,
    batch: &CommandBatch,
) -> Result<Vec<Outcome>, StoreError> {
    let now_ms = crate::batch_clock::advance(txn, batch.now_ms)?;
    txn.begin_entry(log_index, now_ms);
    idempotency::forget_expired(txn, now_ms)?;
    batch
        .commands
        .iter()
        .enumerate()
        .map(|(position, command)| apply_command(txn, log_index, position, now_ms, command))
        .collect()
}

/// Applies one command, honouring its idempotency key.
fn apply_command(
    txn: &mut Txn<'_>,
    log_index: u64,
    position: usize,
    now_ms: i64,
    command: &Command,
) -> Result<Outcome, StoreError> {
    if txn.changes_recorded() >= CHANGES_BEFORE_ENTRY_FULL {
        // Decided by the entry alone, so the same on every replica; not remembered under the
        // idempotency key, so a retry in a later entry is applied.
        return Ok(Err(Rejection::EntryFull));
    }
    let key = command.idempotency_key.as_bytes();
    if !key.is_empty() {
        if let Some(record) = idempotency::recall(txn, key)? {
            return Ok(if record.request_hash == command.request_hash {
                record.outcome
            } else {
                Err(Rejection::IdempotencyKeyReused)
            });
        }
    }
    let ctx = Ctx {
        log_index,
        position,
        now_ms,
    };
    let outcome = match &command.action {
        None => Err(Rejection::Invalid("command without an action".into())),
        Some(Action::PutSku(put)) => put_sku(txn, put)?,
        Some(Action::CreateOrder(create)) => create_order(txn, &ctx, create)?,
        Some(Action::PayOrder(pay)) => pay_order(txn, &ctx, pay)?,
        Some(Action::CancelOrder(cancel)) => cancel_order(txn, &ctx, cancel)?,
        Some(Action::FireTimers(fire)) => timers::fire(txn, now_ms, fire)?,
        Some(Action::Seckill(buy)) => crate::seckill::buy_one(txn, &ctx, buy)?,
        Some(Action::Publish(publish)) => publish_message(txn, now_ms, publish)?,
        Some(Action::PutSubscription(put)) => crate::subscription::put(txn, now_ms, put)?,
        Some(Action::RecordDeliveries(results)) => {
            crate::subscription::record(txn, now_ms, results)?
        }
        Some(Action::Redrive(redrive)) => crate::subscription::redrive(txn, redrive)?,
        Some(Action::TrimMessages(trim)) => crate::retention::trim(txn, now_ms, trim)?,
        Some(Action::RemoveSubscription(remove)) => crate::group_removal::remove(txn, remove)?,
        Some(Action::RefundOrder(refund)) => crate::refund::request(txn, now_ms, refund)?,
    };
    if !key.is_empty() {
        let record = IdempotencyRecord {
            request_hash: command.request_hash.clone(),
            outcome: outcome.clone(),
            at_ms: now_ms,
        };
        idempotency::remember(txn, key, &record)?;
    }
    Ok(outcome)
}

/// Where and when a command is applied.
pub(crate) struct Ctx {
    /// Log index of the entry carrying the command.
    pub(crate) log_index: u64,
    /// The command's position in its batch.
    pub(crate) position: usize,
    /// The batch's clock.
    pub(crate) now_ms: i64,
}

fn load_sku(txn: &Txn<'_>, sku: &str) -> Result<Option<Sku>, StoreError> {
    txn.get(CF_SKUS, sku.as_bytes())
}

fn save_sku(txn: &mut Txn<'_>, sku: &Sku) -> Result<(), StoreError> {
    txn.put(CF_SKUS, sku.sku.as_bytes().to_vec(), sku)
}

fn load_order(txn: &Txn<'_>, order_id: &str) -> Result<Option<Order>, StoreError> {
    txn.get(CF_ORDERS, order_id.as_bytes())
}

/// Stores `order`, which was in state `was` (`None`: new), keeping the per-state counts.
pub(crate) fn save_order(
    txn: &mut Txn<'_>,
    order: &Order,
    was: Option<OrderState>,
) -> Result<(), StoreError> {
    counters::order_moved(txn, was, order.state)?;
    txn.put(CF_ORDERS, order.id.as_bytes().to_vec(), order)
}

fn order_not_found(order_id: &str) -> Rejection {
    Rejection::NotFound {
        kind: "order".into(),
        id: order_id.into(),
    }
}

fn invalid_state(order: &Order, action: &str) -> Rejection {
    let state = serde_json::to_value(order.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    Rejection::InvalidState {
        order_id: order.id.clone(),
        state,
        action: action.into(),
    }
}

/// Loads or changes a SKU; the total may not drop below what is reserved and sold.
fn put_sku(txn: &mut Txn<'_>, put: &PutSku) -> Result<Outcome, StoreError> {
    if put.sku.is_empty() {
        return Ok(Err(Rejection::Invalid("empty sku".into())));
    }
    let sku = match load_sku(txn, &put.sku)? {
        None => Sku {
            sku: put.sku.clone(),
            price_cents: put.price_cents,
            stock: put.stock,
            available: put.stock,
            reserved: 0,
            sold: 0,
            per_user_limit: put.per_user_limit,
        },
        Some(old) => {
            let held = old.reserved.saturating_add(old.sold);
            let Some(available) = put.stock.checked_sub(held) else {
                return Ok(Err(Rejection::InsufficientStock {
                    sku: put.sku.clone(),
                    available: put.stock,
                    wanted: held,
                }));
            };
            Sku {
                price_cents: put.price_cents,
                stock: put.stock,
                available,
                per_user_limit: put.per_user_limit,
                ..old
            }
        }
    };
    save_sku(txn, &sku)?;
    Ok(Ok(Applied::Sku(sku)))
}

/// Places an order: reserves every line or nothing (within each SKU's per-user limit), indexes it
/// by user and arms its close timer.
pub(crate) fn create_order(
    txn: &mut Txn<'_>,
    ctx: &Ctx,
    create: &CreateOrder,
) -> Result<Outcome, StoreError> {
    if create.user_id.is_empty() || create.items.is_empty() {
        return Ok(Err(Rejection::Invalid(
            "an order needs a user and at least one item".into(),
        )));
    }
    if create.items.len() > MAX_ORDER_LINES {
        return Ok(Err(Rejection::Invalid(format!(
            "an order has at most {MAX_ORDER_LINES} lines"
        ))));
    }
    // Lines of the same SKU are merged, so each SKU is checked against its whole demand.
    let mut wanted: BTreeMap<&str, u64> = BTreeMap::new();
    for line in &create.items {
        if line.qty == 0 || line.sku.is_empty() {
            return Ok(Err(Rejection::Invalid(
                "every item needs a sku and qty >= 1".into(),
            )));
        }
        let total = wanted.entry(line.sku.as_str()).or_default();
        let Some(sum) = total.checked_add(line.qty) else {
            return Ok(Err(Rejection::Invalid("quantity overflows".into())));
        };
        *total = sum;
    }
    let mut skus = Vec::with_capacity(wanted.len());
    let mut items = Vec::with_capacity(wanted.len());
    let mut amount_cents: u64 = 0;
    for (sku_id, qty) in wanted {
        let Some(mut sku) = load_sku(txn, sku_id)? else {
            return Ok(Err(Rejection::NotFound {
                kind: "sku".into(),
                id: sku_id.into(),
            }));
        };
        if sku.available < qty {
            return Ok(Err(Rejection::InsufficientStock {
                sku: sku.sku,
                available: sku.available,
                wanted: qty,
            }));
        }
        if let Some(refused) = user_limit::check(txn, &create.user_id, &sku, qty)? {
            return Ok(Err(refused));
        }
        let Some(amount) = qty
            .checked_mul(sku.price_cents)
            .and_then(|line| amount_cents.checked_add(line))
        else {
            return Ok(Err(Rejection::Invalid("order amount overflows".into())));
        };
        amount_cents = amount;
        items.push(OrderItem {
            sku: sku.sku.clone(),
            qty,
            price_cents: sku.price_cents,
        });
        sku.available -= qty;
        sku.reserved += qty;
        skus.push(sku);
    }
    for sku in &skus {
        save_sku(txn, sku)?;
    }
    for item in &items {
        user_limit::hold(txn, &create.user_id, &item.sku, item.qty)?;
    }
    let pay_ms = i64::try_from(create.pay_within_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let order = Order {
        id: keys::order_id(ctx.log_index, ctx.position),
        user_id: create.user_id.clone(),
        items,
        amount_cents,
        state: OrderState::PendingPayment,
        close_reason: None,
        payment_ref: None,
        created_at_ms: ctx.now_ms,
        expires_at_ms: ctx.now_ms.saturating_add(pay_ms),
        paid_at_ms: None,
        closed_at_ms: None,
        refunded_at_ms: None,
    };
    save_order(txn, &order, None)?;
    txn.put_raw(
        CF_USER_ORDERS,
        keys::user_order(&order.user_id, &order.id),
        Vec::new(),
    );
    timers::arm(txn, close_timer(&order))?;
    order_event::publish(txn, ctx.now_ms, order_event::CREATED, &order)?;
    Ok(Ok(Applied::OrderCreated(order)))
}

fn close_timer(order: &Order) -> Vec<u8> {
    keys::timer(order.expires_at_ms, TimerKind::CloseOrder, &order.id)
}

/// Moves the reserved units of `order` with `moved`, which returns `None` when the stock does not
/// hold them (a broken invariant: reported as corruption rather than silently repaired).
fn move_reserved(
    txn: &mut Txn<'_>,
    order: &Order,
    moved: impl Fn(&mut Sku, u64) -> Option<()>,
) -> Result<(), StoreError> {
    for item in &order.items {
        let mut sku = load_sku(txn, &item.sku)?.ok_or_else(|| {
            StoreError::corrupt(
                "skus",
                format!("order {} names missing sku {}", order.id, item.sku),
            )
        })?;
        moved(&mut sku, item.qty).ok_or_else(|| {
            StoreError::corrupt(
                "skus",
                format!("sku {} does not hold order {}", sku.sku, order.id),
            )
        })?;
        save_sku(txn, &sku)?;
    }
    Ok(())
}

/// Releases an unpaid order's stock, disarms its close timer and closes it.
pub(crate) fn close_unpaid(
    txn: &mut Txn<'_>,
    order: &mut Order,
    reason: CloseReason,
    now_ms: i64,
) -> Result<(), StoreError> {
    move_reserved(txn, order, |sku, qty| {
        sku.reserved = sku.reserved.checked_sub(qty)?;
        sku.available = sku.available.checked_add(qty)?;
        Some(())
    })?;
    for item in &order.items {
        user_limit::release(txn, &order.user_id, &item.sku, item.qty)?;
    }
    timers::disarm(txn, close_timer(order))?;
    let was = order.state;
    order.state = OrderState::Closed;
    order.close_reason = Some(reason);
    order.closed_at_ms = Some(now_ms);
    save_order(txn, order, Some(was))?;
    order_event::publish(txn, now_ms, order_event::CLOSED, order)
}

/// Pays an order: reserved stock becomes sold and the close timer is cancelled. An order past its
/// deadline is closed instead, so no order is ever paid after `expires_at`.
fn pay_order(txn: &mut Txn<'_>, ctx: &Ctx, pay: &PayOrder) -> Result<Outcome, StoreError> {
    let Some(mut order) = load_order(txn, &pay.order_id)? else {
        return Ok(Err(order_not_found(&pay.order_id)));
    };
    match order.state {
        OrderState::Paid if order.payment_ref.as_deref() == Some(pay.payment_ref.as_str()) => {
            Ok(Ok(Applied::Order(order)))
        }
        OrderState::PendingPayment if ctx.now_ms >= order.expires_at_ms => {
            close_unpaid(txn, &mut order, CloseReason::Expired, ctx.now_ms)?;
            Ok(Err(invalid_state(&order, "pay")))
        }
        OrderState::PendingPayment => {
            move_reserved(txn, &order, |sku, qty| {
                sku.reserved = sku.reserved.checked_sub(qty)?;
                sku.sold = sku.sold.checked_add(qty)?;
                Some(())
            })?;
            timers::disarm(txn, close_timer(&order))?;
            order.state = OrderState::Paid;
            order.payment_ref = Some(pay.payment_ref.clone());
            order.paid_at_ms = Some(ctx.now_ms);
            save_order(txn, &order, Some(OrderState::PendingPayment))?;
            order_event::publish(txn, ctx.now_ms, order_event::PAID, &order)?;
            Ok(Ok(Applied::Order(order)))
        }
        _ => Ok(Err(invalid_state(&order, "pay"))),
    }
}

/// Cancels an unpaid order; cancelling a cancelled order answers it again.
fn cancel_order(txn: &mut Txn<'_>, ctx: &Ctx, cancel: &CancelOrder) -> Result<Outcome, StoreError> {
    let Some(mut order) = load_order(txn, &cancel.order_id)? else {
        return Ok(Err(order_not_found(&cancel.order_id)));
    };
    match (order.state, order.close_reason) {
        (OrderState::Closed, Some(CloseReason::Cancelled)) => Ok(Ok(Applied::Order(order))),
        (OrderState::PendingPayment, _) => {
            close_unpaid(txn, &mut order, CloseReason::Cancelled, ctx.now_ms)?;
            Ok(Ok(Applied::Order(order)))
        }
        _ => Ok(Err(invalid_state(&order, "cancel"))),
    }
}

/// Publishes a client's message, never into a reserved topic; its delivery time is the later of `deliver_at` and the delay
/// from the batch clock.
fn publish_message(
    txn: &mut Txn<'_>,
    now_ms: i64,
    publish: &Publish,
) -> Result<Outcome, StoreError> {
    if publish.topic.is_empty() {
        return Ok(Err(Rejection::Invalid("empty topic".into())));
    }
    if crate::reserved_topics::is_reserved(&publish.topic) {
        return Ok(Err(Rejection::ReservedTopic {
            topic: publish.topic.clone(),
        }));
    }
    let Ok(payload) = serde_json::from_str(&publish.payload_json) else {
        return Ok(Err(Rejection::Invalid("payload is not JSON".into())));
    };
    let delay = i64::try_from(publish.delay_ms).unwrap_or(i64::MAX);
    let message = queue::publish(
        txn,
        now_ms,
        NewMessage {
            topic: &publish.topic,
            key: &publish.key,
            payload,
            deliver_at_ms: now_ms.saturating_add(delay).max(publish.deliver_at_ms),
        },
    )?;
    Ok(Ok(Applied::Published(message)))
}
