//! Reads of the node's own applied state, for the API. Reads see whole applied batches only,
//! because each batch is one atomic `WriteBatch`.

use std::sync::Arc;

use rocksdb::{Direction, IteratorMode, DB};

use crate::apply::IdempotencyRecord;
use crate::db::cf;
use crate::error::StoreError;
use crate::keys::{self, CF_IDEMPOTENCY, CF_ORDERS, CF_SKUS, CF_TIMERS, CF_USER_ORDERS};
use crate::order::Order;
use crate::sku::Sku;
use crate::sold_out::SoldOut;
use crate::txn::Txn;

/// A page of a user's orders.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderPage {
    /// Orders in id (creation) order.
    pub orders: Vec<Order>,
    /// The id to pass as `after` for the next page, when there may be one.
    pub next: Option<String>,
}

/// Read access to the applied state. Cheap to clone.
#[derive(Clone)]
pub struct StateReader {
    /// The node's database.
    db: Arc<DB>,
    /// The state machine's sold-out set, for the flash sale's answer without Raft.
    sold_out: SoldOut,
}

impl StateReader {
    /// A reader over `db` whose sold-out set stays empty (nothing applies through it).
    pub fn new(db: Arc<DB>) -> Self {
        StateReader {
            db,
            sold_out: SoldOut::default(),
        }
    }

    /// A reader over `db` sharing the state machine's sold-out set.
    pub fn with_sold_out(db: Arc<DB>, sold_out: SoldOut) -> Self {
        StateReader { db, sold_out }
    }

    /// SKUs with nothing available in this node's applied state.
    pub fn sold_out(&self) -> &SoldOut {
        &self.sold_out
    }

    /// The applied answer to a request made with `Idempotency-Key` `key`, if this node has it:
    /// a retry answered from memory (a sold-out flash sale) must still get its first answer.
    pub fn idempotency_record(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Txn::new(&self.db).get(CF_IDEMPOTENCY, key.as_bytes())
    }

    /// The SKU, if loaded.
    pub fn sku(&self, sku: &str) -> Result<Option<Sku>, StoreError> {
        Txn::new(&self.db).get(CF_SKUS, sku.as_bytes())
    }

    /// The order, if it exists.
    pub fn order(&self, order_id: &str) -> Result<Option<Order>, StoreError> {
        Txn::new(&self.db).get(CF_ORDERS, order_id.as_bytes())
    }

    /// Up to `limit` of the user's orders with ids after `after`, oldest first.
    pub fn orders_of_user(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<OrderPage, StoreError> {
        let prefix = keys::user_prefix(user_id);
        let start = match after {
            // The smallest key strictly after `after`'s key.
            Some(after) => {
                let mut key = keys::user_order(user_id, after);
                key.push(0);
                key
            }
            None => prefix.clone(),
        };
        let mut orders = Vec::new();
        let mut more = false;
        for item in self.db.iterator_cf(
            cf(&self.db, CF_USER_ORDERS)?,
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (key, _) = item?;
            let Some(order_id) = key.strip_prefix(prefix.as_slice()) else {
                break;
            };
            if orders.len() == limit {
                more = true;
                break;
            }
            let order_id = std::str::from_utf8(order_id)
                .map_err(|e| StoreError::corrupt("user order key", e))?;
            if let Some(order) = self.order(order_id)? {
                orders.push(order);
            }
        }
        let next = if more {
            orders.last().map(|o| o.id.clone())
        } else {
            None
        };
        Ok(OrderPage { orders, next })
    }

    /// Number of pending timers and the earliest due time (ms), for operators.
    pub fn pending_timers(&self) -> Result<(u64, Option<i64>), StoreError> {
        let mut count = 0u64;
        let mut first = None;
        for item in self
            .db
            .iterator_cf(cf(&self.db, CF_TIMERS)?, IteratorMode::Start)
        {
            let (key, _) = item?;
            if first.is_none() {
                first = key
                    .first_chunk::<8>()
                    .map(|due| i64::try_from(u64::from_be_bytes(*due)).unwrap_or(i64::MAX));
            }
            count += 1;
        }
        Ok((count, first))
    }
}
