//! Stock: loading and changing SKUs, and moving an order's units between `available`,
//! `reserved` and `sold`.
//!
//! To ensure correctness: stock moves only with checked arithmetic, so
//! `available + reserved + sold == stock` holds after every command; a SKU's total may not drop
//! below what is reserved and sold.

use crate::command::PutSku;
use crate::error::StoreError;
use crate::keys::CF_SKUS;
use crate::outcome::{Applied, Outcome, Rejection};
use crate::txn::Txn;

use super::record::Order;
use super::sku::Sku;

/// The SKU `sku`, as this batch sees it.
pub(crate) fn load_sku(txn: &Txn<'_>, sku: &str) -> Result<Option<Sku>, StoreError> {
    txn.get(CF_SKUS, sku.as_bytes())
}

/// Stores `sku`.
pub(crate) fn save_sku(txn: &mut Txn<'_>, sku: &Sku) -> Result<(), StoreError> {
    txn.put(CF_SKUS, sku.sku.as_bytes().to_vec(), sku)
}

/// Loads or changes a SKU; the total may not drop below what is reserved and sold.
pub(crate) fn put_sku(txn: &mut Txn<'_>, put: &PutSku) -> Result<Outcome, StoreError> {
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

/// Moves the reserved units of `order` with `moved`, which returns `None` when the stock does not
/// hold them (a broken invariant: reported as corruption rather than silently repaired).
pub(crate) fn move_reserved(
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
