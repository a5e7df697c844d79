//! Histograms of the leader's consumer scheduler, per group: how long a pushed message waited
//! from becoming deliverable to its webhook's 2xx (delivery latency), and how long each webhook
//! call took, whatever its answer (call duration). Observed on the node that leads at the time;
//! sum over nodes in queries.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label of the per-group families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabel {
    /// The consumer group.
    pub group: String,
}

/// The scheduler's histograms; clones share the series (one per node, kept across terms).
#[derive(Clone, Debug)]
pub struct DeliveryMetrics {
    /// Seconds from a message's delivery time to the 2xx that acknowledged it.
    pub delivery_latency: Family<GroupLabel, Histogram>,
    /// Seconds of each webhook call.
    pub webhook_duration: Family<GroupLabel, Histogram>,
}

impl Default for DeliveryMetrics {
    fn default() -> Self {
        DeliveryMetrics {
            // 5 ms to about 3 hours: retries with backoff make some deliveries late by design.
            delivery_latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 4.0, 12))
            }),
            // 1 ms to about 16 s: beyond the longest webhook timeout worth setting.
            webhook_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 15))
            }),
        }
    }
}

impl DeliveryMetrics {
    /// Registers both families in `registry` (the `orderq` registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "queue_delivery_latency_seconds",
            "Seconds from a pushed message becoming deliverable to its acknowledgement, per group",
            self.delivery_latency.clone(),
        );
        registry.register(
            "queue_webhook_duration_seconds",
            "Seconds of each webhook call, whatever its answer, per group",
            self.webhook_duration.clone(),
        );
    }

    /// Records one webhook call of `group` that took `seconds`, and, when it acknowledged the
    /// message, how late that was after `deliver_at_ms` (at `now_ms`).
    pub fn record_push(
        &self,
        group: &str,
        seconds: f64,
        acknowledged: bool,
        deliver_at_ms: i64,
        now_ms: i64,
    ) {
        let label = GroupLabel {
            group: group.to_string(),
        };
        self.webhook_duration.get_or_create(&label).observe(seconds);
        if acknowledged {
            let late = (now_ms - deliver_at_ms).max(0) as f64 / 1000.0;
            self.delivery_latency.get_or_create(&label).observe(late);
        }
    }
}
