//! Refunds through the payment provider, as a built-in push subscription.
//!
//! `POST /v1/orders/{id}/refund` moves a paid order to `refund_requested` and publishes
//! `order.refund_requested`. The group [`REFUND_GROUP`] delivers that topic to the provider's
//! refund endpoint (the leader's scheduler creates it from `[payment] refund_url`). Its ack moves
//! the order to `refunded` in the same apply that records the ack; its dead letter moves it to
//! `refund_failed`; a redriven dead letter that is then acknowledged moves it to `refunded`.

use serde_json::Value;

use crate::apply::save_order;
use crate::command::RefundOrder;
use crate::error::StoreError;
use crate::keys::CF_ORDERS;
use crate::order::{Order, OrderState};
use crate::order_event::{self, REFUNDED, REFUND_FAILED, REFUND_REQUESTED};
use crate::outcome::{Applied, Outcome, Rejection};
use crate::queue::{self, Message, NewMessage};
use crate::txn::Txn;

/// The built-in group delivering refunds to the payment provider.
pub const REFUND_GROUP: &str = "payment.refund";

fn load(txn: &Txn<'_>, order_id: &str) -> Result<Option<Order>, StoreError> {
    txn.get(CF_ORDERS, order_id.as_bytes())
}

/// Asks for the refund of a paid order; asking again while it is pending answers the order.
pub fn request(
    txn: &mut Txn<'_>,
    now_ms: i64,
    refund: &RefundOrder,
) -> Result<Outcome, StoreError> {
    let Some(mut order) = load(txn, &refund.order_id)? else {
        return Ok(Err(Rejection::NotFound {
            kind: "order".into(),
            id: refund.order_id.clone(),
        }));
    };
    match order.state {
        OrderState::RefundRequested => Ok(Ok(Applied::RefundRequested(order))),
        OrderState::Paid => {
            order.state = OrderState::RefundRequested;
            save_order(txn, &order, Some(OrderState::Paid))?;
            let mut payload = order_event::order_json(&order);
            if let Value::Object(fields) = &mut payload {
                fields.insert("refund_reason".into(), Value::String(refund.reason.clone()));
            }
            queue::publish(
                txn,
                now_ms,
                NewMessage {
                    topic: REFUND_REQUESTED,
                    key: &order.id,
                    payload,
                    deliver_at_ms: now_ms,
                },
            )?;
            Ok(Ok(Applied::RefundRequested(order)))
        }
        state => Ok(Err(Rejection::InvalidState {
            order_id: order.id.clone(),
            state: serde_json::to_value(state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            action: "refund".into(),
        })),
    }
}

/// The order whose refund `message` carries, when it is a refund of the built-in group.
fn refunded_order(
    txn: &Txn<'_>,
    group: &str,
    message: &Message,
) -> Result<Option<Order>, StoreError> {
    if group != REFUND_GROUP || message.topic != REFUND_REQUESTED {
        return Ok(None);
    }
    load(txn, &message.key)
}

/// The provider acknowledged the refund in `message`: the order is refunded.
pub fn on_delivered(
    txn: &mut Txn<'_>,
    now_ms: i64,
    group: &str,
    message: &Message,
) -> Result<(), StoreError> {
    let Some(mut order) = refunded_order(txn, group, message)? else {
        return Ok(());
    };
    if matches!(
        order.state,
        OrderState::RefundRequested | OrderState::RefundFailed
    ) {
        let was = order.state;
        order.state = OrderState::Refunded;
        order.refunded_at_ms = Some(now_ms);
        save_order(txn, &order, Some(was))?;
        order_event::publish(txn, now_ms, REFUNDED, &order)?;
    }
    Ok(())
}

/// The refund in `message` became a dead letter: the order's refund failed (until redriven).
pub fn on_dead(
    txn: &mut Txn<'_>,
    now_ms: i64,
    group: &str,
    message: &Message,
) -> Result<(), StoreError> {
    let Some(mut order) = refunded_order(txn, group, message)? else {
        return Ok(());
    };
    if order.state == OrderState::RefundRequested {
        order.state = OrderState::RefundFailed;
        save_order(txn, &order, Some(OrderState::RefundRequested))?;
        order_event::publish(txn, now_ms, REFUND_FAILED, &order)?;
    }
    Ok(())
}
