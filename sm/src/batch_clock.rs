//! The batch clock: the time `apply` decides with, which never goes backwards.
//!
//! The leader stamps each entry with its wall clock, and a new leader's clock may be behind the
//! old one's (or a clock may be stepped back). Every deadline `apply` checks (an order's close,
//! a delayed message, a retry) must see time move forward only, or an order closed at one index
//! could look unexpired at the next. So `apply` runs each entry at the later of its stamp and
//! the last entry's time, and keeps that time in the state: a pure function of the log, equal on
//! every replica and carried by snapshots.

use crate::error::StoreError;
use crate::meta::BatchClock;
use crate::txn::Txn;

/// The time an entry stamped `stamped_ms` is applied at: never before the previous entry's.
pub fn advance(txn: &mut Txn<'_>, stamped_ms: i64) -> Result<i64, StoreError> {
    if let Some(skew) = crate::failpoints::value_point(crate::failpoints::APPLY_CLOCK_SKEW) {
        return Ok(stamped_ms.saturating_add(skew.parse().unwrap_or(0)));
    }
    match txn.meta::<BatchClock>()? {
        Some(last) if last >= stamped_ms => Ok(last),
        _ => {
            txn.put_meta::<BatchClock>(&stamped_ms)?;
            Ok(stamped_ms)
        }
    }
}
