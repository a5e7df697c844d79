//! The flash sale's purchase: one unit, decided in log order inside `apply`.
//!
//! A seckill is an ordinary one-line order (same stock move, close timer, user index and
//! per-user limit) whose refusals speak the flash sale's language: no unit left is `sold_out`
//! rather than `insufficient_stock`. Because the write batcher puts many purchases of one hot
//! SKU into one Raft entry and `apply` reads its own staged writes, each purchase in the entry
//! sees the stock the ones before it left: the entry never sells more than there is.

use crate::command::{CreateOrder, OrderLine, Seckill};
use crate::error::StoreError;
use crate::outcome::{Outcome, Rejection};
use crate::txn::Txn;

use super::lifecycle::{create_order, Ctx};

/// Buys one unit of `buy.sku` for `buy.user_id`, or refuses with `sold_out` / `limit_exceeded`.
pub(crate) fn buy_one(txn: &mut Txn<'_>, ctx: &Ctx, buy: &Seckill) -> Result<Outcome, StoreError> {
    let create = CreateOrder {
        user_id: buy.user_id.clone(),
        items: vec![OrderLine {
            sku: buy.sku.clone(),
            qty: 1,
        }],
        pay_within_secs: buy.pay_within_secs,
    };
    Ok(match create_order(txn, ctx, &create)? {
        Err(Rejection::InsufficientStock { sku, .. }) => Err(Rejection::SoldOut { sku }),
        other => other,
    })
}
