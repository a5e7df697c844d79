//! Stock of one SKU.

use serde::{Deserialize, Serialize};

/// Stock and price of one SKU. Invariant kept by `apply`:
/// `available + reserved + sold == stock`, none negative (they are unsigned and every change is
/// checked before it is made).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sku {
    /// The SKU id.
    pub sku: String,
    /// Unit price in cents for new orders.
    pub price_cents: u64,
    /// Total loaded stock.
    pub stock: u64,
    /// Units that can still be ordered.
    pub available: u64,
    /// Units held by unpaid orders.
    pub reserved: u64,
    /// Units of paid orders.
    pub sold: u64,
    /// Most units one user may buy; 0 means no limit.
    pub per_user_limit: u64,
}

impl Sku {
    /// Whether the stock invariant holds.
    pub fn is_consistent(&self) -> bool {
        self.available
            .checked_add(self.reserved)
            .and_then(|n| n.checked_add(self.sold))
            == Some(self.stock)
    }
}
