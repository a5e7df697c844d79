//! Gauges read from this node's applied state at scrape time: orders by state, stock per SKU,
//! timers, and per consumer group its backlog, in-flight deliveries, dead letters, totals and
//! the age of its oldest unacknowledged message. Read from the local state, so every node (a
//! follower or learner too) answers them, and they agree once applied to the same index.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};

use crate::cluster::Cluster;
use crate::metrics::{counter, counter_family, gauge, gauge_family};

/// Most SKUs whose stock `/metrics` lists (label cardinality stays bounded).
const STOCK_METRIC_SKUS: usize = 1_000;

/// Label of per-group families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    /// The consumer group.
    group: String,
}

/// Label of `orderq_orders`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    /// The order state.
    state: String,
}

/// Labels of `orderq_stock`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StockLabels {
    /// The SKU.
    sku: String,
    /// `available`, `reserved` or `sold`.
    kind: &'static str,
}

/// One group's numbers at scrape time.
struct GroupRow {
    /// The group.
    group: String,
    /// Published and not yet settled.
    backlog: u64,
    /// Handed out and unsettled, in the leader's memory (0 off the leader).
    in_flight: u64,
    /// Dead letters held.
    dead: u64,
    /// Acknowledged so far.
    delivered: u64,
    /// Failed attempts so far.
    failures: u64,
    /// Seconds since the oldest unsettled message became deliverable; 0 with none.
    oldest_unacked_age: f64,
}

/// The collector over a cluster's applied state.
pub struct StateMetrics<C: Cluster> {
    /// The cluster whose reader and live deliveries are read.
    cluster: Arc<C>,
}

impl<C: Cluster> StateMetrics<C> {
    /// The collector over `cluster`.
    pub fn new(cluster: Arc<C>) -> Self {
        StateMetrics { cluster }
    }

    fn groups(&self) -> Result<Vec<GroupRow>, sm::StoreError> {
        let reads = self.cluster.reader().queue();
        let live = self.cluster.live_deliveries();
        let now_ms = self.cluster.now_ms();
        let mut rows = Vec::new();
        for sub in reads.subscriptions()? {
            let head = reads.head(&sub.topic)?;
            let settled = reads.settled_beyond_cursor(&sub)?;
            let backlog = head.saturating_sub(sub.cursor).saturating_sub(settled);
            // Everything up to the cursor is settled, so the message after it is the oldest
            // that may not be (its delivery time, not its publication, starts the clock).
            let oldest_unacked_age = match backlog {
                0 => 0.0,
                _ => reads
                    .message(&sub.topic, sub.cursor + 1)?
                    .map_or(0.0, |m| (now_ms - m.deliver_at_ms).max(0) as f64 / 1000.0),
            };
            rows.push(GroupRow {
                backlog,
                in_flight: live.get(&sub.group).map_or(0, |l| l.in_flight),
                dead: sub.dead,
                delivered: sub.delivered,
                failures: sub.failures,
                oldest_unacked_age,
                group: sub.group,
            });
        }
        Ok(rows)
    }

    fn encode_state(&self, mut encoder: DescriptorEncoder) -> Result<(), StateMetricsError> {
        let reader = self.cluster.reader();
        let timers = reader.timer_stats()?;
        gauge(
            &mut encoder,
            "timers_pending",
            "Timers armed and not yet fired or cancelled.",
            timers.pending as i64,
        )?;
        counter(
            &mut encoder,
            "timers_fired",
            "Timers fired since the cluster began.",
            timers.fired,
        )?;
        gauge_family(
            &mut encoder,
            "orders",
            "Orders by state.",
            reader
                .order_counts()?
                .into_iter()
                .map(|(state, count)| (StateLabel { state }, count as i64)),
        )?;
        let skus = reader.skus(STOCK_METRIC_SKUS)?;
        gauge_family(
            &mut encoder,
            "stock",
            "Units of a SKU by where they are (the first 1000 SKUs).",
            skus.iter().flat_map(|s| {
                [
                    ("available", s.available),
                    ("reserved", s.reserved),
                    ("sold", s.sold),
                ]
                .map(|(kind, units)| {
                    (
                        StockLabels {
                            sku: s.sku.clone(),
                            kind,
                        },
                        units as i64,
                    )
                })
            }),
        )?;
        let groups = self.groups()?;
        let label = |row: &GroupRow| GroupLabel {
            group: row.group.clone(),
        };
        let per_group = |f: fn(&GroupRow) -> u64| {
            groups
                .iter()
                .map(move |row| (label(row), f(row) as i64))
                .collect::<Vec<_>>()
        };
        gauge_family(
            &mut encoder,
            "queue_backlog",
            "Messages published and not yet settled, per group.",
            per_group(|r| r.backlog),
        )?;
        gauge_family(
            &mut encoder,
            "queue_in_flight",
            "Deliveries unsettled in the leader's memory, per group (0 off the leader).",
            per_group(|r| r.in_flight),
        )?;
        gauge_family(
            &mut encoder,
            "queue_dead",
            "Dead letters held, per group.",
            per_group(|r| r.dead),
        )?;
        gauge_family(
            &mut encoder,
            "queue_oldest_unacked_age_seconds",
            "Seconds since the group's oldest unsettled message became deliverable; 0 with none.",
            groups.iter().map(|r| (label(r), r.oldest_unacked_age)),
        )?;
        counter_family(
            &mut encoder,
            "queue_delivered",
            "Messages acknowledged, per group.",
            groups.iter().map(|r| (label(r), r.delivered)),
        )?;
        counter_family(
            &mut encoder,
            "queue_failures",
            "Failed delivery attempts, per group.",
            groups.iter().map(|r| (label(r), r.failures)),
        )?;
        Ok(())
    }
}

/// Why a scrape of the state failed: a read, or the text being written.
#[derive(Debug, thiserror::Error)]
enum StateMetricsError {
    /// The state could not be read.
    #[error("reading the state: {0}")]
    Store(#[from] sm::StoreError),
    /// The encoder failed.
    #[error("encoding: {0}")]
    Encode(#[from] fmt::Error),
}

impl<C: Cluster> fmt::Debug for StateMetrics<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMetrics").finish_non_exhaustive()
    }
}

impl<C: Cluster> Collector for StateMetrics<C> {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        self.encode_state(encoder).map_err(|e| {
            tracing::warn!(error = %e, "/metrics could not read the state");
            fmt::Error
        })
    }
}
