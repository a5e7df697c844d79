//! Timings and positions the storage measures itself, for the node's `/metrics`: how long the WAL
//! sync behind every log append takes, how long applying a batch of entries takes, and the
//! committed index openraft reports. Only durations and positions: nothing here feeds `apply`,
//! so measuring with a monotonic clock here keeps `apply` a pure function of state and command.

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Bucket bounds (seconds) for storage work: 100 µs to about 3 s.
fn storage_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0001, 2.0, 16)
}

/// What the log store and the state machine measure. Clones share the same series, so the
/// storage keeps one copy and the node registers another.
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    /// Seconds of each WAL sync (one per group of appends waiting for it): the floor of every
    /// write's latency, and the first sign of a slow disk.
    pub log_sync: Histogram,
    /// Seconds to apply each group of entries openraft hands the state machine, up to and
    /// including its one `WriteBatch`.
    pub apply_batch: Histogram,
    /// The highest log index this node knows committed (openraft's `save_committed`).
    pub committed_index: Gauge,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            log_sync: Histogram::new(storage_buckets()),
            apply_batch: Histogram::new(storage_buckets()),
            committed_index: Gauge::default(),
        }
    }
}

impl StoreMetrics {
    /// Registers the series in `registry` (the node's `orderq` registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "log_sync_duration_seconds",
            "Seconds of each WAL sync that makes a group of log appends durable",
            self.log_sync.clone(),
        );
        registry.register(
            "apply_batch_duration_seconds",
            "Seconds to apply one group of committed entries to the state, write included",
            self.apply_batch.clone(),
        );
        registry.register(
            "raft_committed_index",
            "Highest log index this node knows committed",
            self.committed_index.clone(),
        );
    }
}
