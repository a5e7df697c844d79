//! The order life cycle: placing an order (stock reserved, close timer armed), paying it (stock
//! sold), cancelling or closing it unpaid (stock released), each with its event.
//!
//! To ensure correctness:
//! - Nothing here reads a clock: time is the batch's, ids come from the log index and the
//!   command's position ([`Ctx`]).
//! - Every refusal is a [`Rejection`]; a refused command changes nothing, except a payment that
//!   arrives after the deadline, which closes the expired order it was refused for, so no order is
//!   ever paid after `expires_at`.
//! - An order's state, its per-state count, its stock, its close timer and its event change in
//!   the same batch.

use std::collections::BTreeMap;

use crate::command::{CancelOrder, CreateOrder, PayOrder};
use crate::counters;
use crate::error::StoreError;
use crate::keys::{self, TimerKind, CF_ORDERS, CF_USER_ORDERS};
use crate::outcome::{Applied, Outcome, Rejection};
use crate::timers;
use crate::txn::Txn;

use super::event;
use super::record::{CloseReason, Order, OrderItem, OrderState};
use super::stock;
use super::user_limit;

/// Most lines an order may have (the API allows far fewer).
pub const MAX_ORDER_LINES: usize = 1_000;

/// Where and when a command is applied.
pub struct Ctx {
    /// Log index of the entry carrying the command.
    pub log_index: u64,
    /// The command's position in its batch.
    pub position: usize,
    /// The batch's clock.
    pub now_ms: i64,
}

/// The order `order_id`, as this batch sees it.
pub(crate) fn load_order(txn: &Txn<'_>, order_id: &str) -> Result<Option<Order>, StoreError> {
    txn.get(CF_ORDERS, order_id.as_bytes())
}

/// Stores `order`, which was in state `was` (`None`: new), keeping the per-state counts.
pub(crate) fn save_order(
    txn: &mut Txn<'_>,
    order: &Order,
    was: Option<OrderState>,
) -> Result<(), StoreError> {
    if was != Some(order.state) {
        if let Some(was) = was {
            counters::add(txn, &keys::order_count(was.name()), -1)?;
        }
        counters::add(txn, &keys::order_count(order.state.name()), 1)?;
    }
    match was {
        // A new order's id names the log position that created it: never written before.
        None => txn.put_new(CF_ORDERS, order.id.as_bytes().to_vec(), order),
        Some(_) => txn.put(CF_ORDERS, order.id.as_bytes().to_vec(), order),
    }
}

/// The refusal for an order that does not exist.
pub(crate) fn order_not_found(order_id: &str) -> Rejection {
    Rejection::NotFound {
        kind: "order".into(),
        id: order_id.into(),
    }
}

/// The refusal of `action` on `order` in its current state.
pub(crate) fn invalid_state(order: &Order, action: &str) -> Rejection {
    Rejection::InvalidState {
        order_id: order.id.clone(),
        state: order.state.name().into(),
        action: action.into(),
    }
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
        let Some(mut sku) = stock::load_sku(txn, sku_id)? else {
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
        stock::save_sku(txn, sku)?;
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
    event::publish(txn, ctx.now_ms, event::CREATED, &order)?;
    Ok(Ok(Applied::OrderCreated(order)))
}

fn close_timer(order: &Order) -> Vec<u8> {
    keys::timer(order.expires_at_ms, TimerKind::CloseOrder, &order.id)
}

/// Releases an unpaid order's stock, disarms its close timer and closes it.
pub(crate) fn close_unpaid(
    txn: &mut Txn<'_>,
    order: &mut Order,
    reason: CloseReason,
    now_ms: i64,
) -> Result<(), StoreError> {
    stock::move_reserved(txn, order, |sku, qty| {
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
    event::publish(txn, now_ms, event::CLOSED, order)
}

/// Pays an order: reserved stock becomes sold and the close timer is cancelled. An order past its
/// deadline is closed instead, so no order is ever paid after `expires_at`.
pub(crate) fn pay_order(
    txn: &mut Txn<'_>,
    ctx: &Ctx,
    pay: &PayOrder,
) -> Result<Outcome, StoreError> {
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
            stock::move_reserved(txn, &order, |sku, qty| {
                sku.reserved = sku.reserved.checked_sub(qty)?;
                sku.sold = sku.sold.checked_add(qty)?;
                Some(())
            })?;
            timers::disarm(txn, close_timer(&order))?;
            order.state = OrderState::Paid;
            order.payment_ref = Some(pay.payment_ref.clone());
            order.paid_at_ms = Some(ctx.now_ms);
            save_order(txn, &order, Some(OrderState::PendingPayment))?;
            event::publish(txn, ctx.now_ms, event::PAID, &order)?;
            Ok(Ok(Applied::Order(order)))
        }
        _ => Ok(Err(invalid_state(&order, "pay"))),
    }
}

/// Cancels an unpaid order; cancelling a cancelled order answers it again.
pub(crate) fn cancel_order(
    txn: &mut Txn<'_>,
    ctx: &Ctx,
    cancel: &CancelOrder,
) -> Result<Outcome, StoreError> {
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

/// A close timer fired: closes the order if it is still unpaid at its deadline; anything else
/// (paid, cancelled, gone) is left alone.
pub(crate) fn close_expired(
    txn: &mut Txn<'_>,
    now_ms: i64,
    order_id: &str,
) -> Result<(), StoreError> {
    let Some(mut order) = load_order(txn, order_id)? else {
        return Ok(());
    };
    if order.state == OrderState::PendingPayment && order.expires_at_ms <= now_ms {
        close_unpaid(txn, &mut order, CloseReason::Expired, now_ms)?;
    }
    Ok(())
}
