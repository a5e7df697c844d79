//! Refunds through the payment provider, as a built-in push subscription.
//!
//! `POST /v1/orders/{id}/refund` moves a paid order to `refund_requested` and publishes
//! `order.refund_requested`. The group [`REFUND_GROUP`] delivers that topic to the provider's
//! refund endpoint (the leader's scheduler creates it from `[payment] refund_url`). Its ack moves
//! the order to `refunded` in the same apply that records the ack; its dead letter moves it to
//! `refund_failed`; a redriven dead letter that is then acknowledged moves it to `refunded`.
//!
//! The queue knows nothing of refunds: the dispatcher hands [`RefundHook`] to the queue's
//! delivery recording ([`crate::queue::SettleHook`]), the one seam between the two wings.

use serde_json::Value;

use crate::command::{RefundOrder, RemoveSubscription};
use crate::error::StoreError;
use crate::outcome::{Applied, Outcome, Rejection};
use crate::queue::{self, Message, NewMessage, SettleHook};
use crate::txn::Txn;

use super::event::{self, REFUNDED, REFUND_FAILED, REFUND_REQUESTED};
use super::lifecycle::{invalid_state, load_order, order_not_found, save_order};
use super::record::{Order, OrderState};

/// The built-in group delivering refunds to the payment provider.
pub const REFUND_GROUP: &str = "payment.refund";

/// Asks for the refund of a paid order; asking again while it is pending answers the order.
pub fn request(
    txn: &mut Txn<'_>,
    now_ms: i64,
    refund: &RefundOrder,
) -> Result<Outcome, StoreError> {
    let Some(mut order) = load_order(txn, &refund.order_id)? else {
        return Ok(Err(order_not_found(&refund.order_id)));
    };
    match order.state {
        OrderState::RefundRequested => Ok(Ok(Applied::RefundRequested(order))),
        OrderState::Paid => {
            order.state = OrderState::RefundRequested;
            save_order(txn, &order, Some(OrderState::Paid))?;
            let mut payload = event::order_json(&order);
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
        _ => Ok(Err(invalid_state(&order, "refund"))),
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
    load_order(txn, &message.key)
}

/// The refund group's side of the seam: what the queue's delivery recording tells the order wing.
pub struct RefundHook;

impl SettleHook for RefundHook {
    fn watches(&self, group: &str) -> bool {
        group == REFUND_GROUP
    }

    /// The provider acknowledged the refund in `message`: the order is refunded.
    fn delivered(
        &self,
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
            event::publish(txn, now_ms, REFUNDED, &order)?;
        }
        Ok(())
    }

    /// The refund in `message` became a dead letter: the order's refund failed (until redriven).
    fn dead(
        &self,
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
            event::publish(txn, now_ms, REFUND_FAILED, &order)?;
        }
        Ok(())
    }
}

/// Refuses removing the built-in refund group (the refunds in flight depend on it); `None` for
/// any other group.
pub fn refuse_removal(remove: &RemoveSubscription) -> Option<Rejection> {
    (remove.group == REFUND_GROUP).then(|| {
        Rejection::Conflict(format!(
            "{REFUND_GROUP} is the built-in refund group; it cannot be removed"
        ))
    })
}
