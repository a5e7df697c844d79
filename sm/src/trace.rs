//! An order's story, read from this node's change stream: every change of the order with its
//! before and after, and every message published with the order id as key (its `order.*` events,
//! the refund call). What an operator opens when a customer says "I paid and got no points".
//!
//! The change stream has no index by key, so the trace is a bounded scan: it starts where the
//! order was created (an order id is derived from the log index of its creation, see
//! [`crate::keys::order_id`], so nothing before it needs reading) and examines at most `budget`
//! records per call. A long-lived order in a busy cluster takes several calls; `next` says where
//! the next one starts, and `complete` says the scan reached the end of the stream.

use rocksdb::{Direction, IteratorMode, ReadOptions, DB};

use crate::changes::{self, Change, Table};
use crate::db::cf;
use crate::error::StoreError;
use crate::keys::{self, CF_CHANGES};
use crate::meta::{self, ChangesFloor};
use crate::queue::Message;

/// What one call of [`order_trace`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderTrace {
    /// Changes of the order's record, in stream order.
    pub changes: Vec<Change>,
    /// Messages published with the order id as key, in stream order.
    pub messages: Vec<Message>,
    /// The last offset examined: pass it as `after` to go on.
    pub next: u64,
    /// The scan reached the end of the stream (nothing later to examine now).
    pub complete: bool,
    /// Retention had already pruned changes from where the order began: its oldest changes
    /// are gone from this node's stream.
    pub pruned: bool,
}

/// The order's changes and messages after offset `after` (from the order's creation when
/// `None`), examining at most `budget` change records.
pub fn order_trace(
    db: &DB,
    order_id: &str,
    after: Option<u64>,
    budget: usize,
) -> Result<OrderTrace, StoreError> {
    let created_at = order_id
        .get(..16)
        .and_then(|index| u64::from_str_radix(index, 16).ok())
        .unwrap_or(0);
    let start = after.unwrap_or_else(|| changes::offset(created_at, 0).saturating_sub(1));
    let view = db.snapshot();
    let mut opts = ReadOptions::default();
    opts.set_snapshot(&view);
    let floor = meta::read_with::<ChangesFloor>(db, &opts)?.unwrap_or(0);
    let mut trace = OrderTrace {
        changes: Vec::new(),
        messages: Vec::new(),
        next: start.max(floor),
        complete: true,
        pruned: after.is_none() && floor > start,
    };
    let Some(first) = trace.next.checked_add(1) else {
        return Ok(trace);
    };
    let mut opts = ReadOptions::default();
    opts.set_snapshot(&view);
    let records = db.iterator_cf_opt(
        cf(db, CF_CHANGES)?,
        opts,
        IteratorMode::From(&keys::change(first), Direction::Forward),
    );
    for (examined, item) in records.enumerate() {
        if examined == budget {
            trace.complete = false;
            break;
        }
        let (key, value) = item?;
        let offset = keys::parse_change(&key)
            .ok_or_else(|| StoreError::corrupt("change key", "not 8 bytes"))?;
        trace.next = offset;
        let change = Change::decode(offset, &value)?;
        match change.table {
            Table::Orders if change.key == order_id.as_bytes() => trace.changes.push(change),
            Table::Messages if change.before.is_none() => {
                let Some(after) = &change.after else { continue };
                let message: Message =
                    serde_json::from_slice(after).map_err(|e| StoreError::corrupt("message", e))?;
                if message.key == order_id {
                    trace.messages.push(message);
                }
            }
            _ => {}
        }
    }
    Ok(trace)
}
