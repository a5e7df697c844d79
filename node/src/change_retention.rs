//! Node-local retention of the change stream: every so often, prune the records beyond the
//! configured age and count (`changes_retention_secs`, `changes_retention_count`).
//!
//! Pruning is not replicated: each node keeps what its own config says (an analytics learner can
//! keep more than the voters), and a consumer whose offset falls behind the answering node's
//! retention gets 410 `offset_expired` from it. Offsets themselves stay the same on every node.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sm::changes::{self, Retention};
use sm::StateReader;

/// How often retention is enforced; records may outlive their limit by this much.
pub const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// Prunes now and every [`PRUNE_EVERY`] until `shutdown` resolves.
pub async fn run(reader: StateReader, retention: Retention, shutdown: impl Future<Output = ()>) {
    if retention.max_age_ms == 0 && retention.max_count == 0 {
        return;
    }
    tokio::pin!(shutdown);
    let mut ticks = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        let db = reader.db().clone();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        match tokio::task::spawn_blocking(move || changes::prune(&db, now_ms, retention)).await {
            Ok(Ok(Some(floor))) => tracing::info!(floor, "change stream pruned"),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "pruning the change stream failed"),
            Err(e) => tracing::warn!(error = %e, "the pruning task failed"),
        }
    }
}
