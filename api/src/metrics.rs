//! The node's one metrics registry and the `/metrics` text rendered from it.
//!
//! Families are registered once at start: the API's own (HTTP requests, state and queue gauges,
//! build info), then the node's through [`crate::Cluster::register_metrics`]. Values that are
//! read at scrape time (Raft state, counts in RocksDB, `/proc`) are collectors; values measured
//! as things happen (latencies) are histograms the code observes into. Every family has a
//! `# HELP`, and the encoder writes each family's samples together.
//!
//! The text is the Prometheus text format 0.0.4, which `promtool check metrics` lints and every
//! scraper reads (OpenMetrics names a counter's family without its `_total`, which the 0.0.4
//! linters reject).

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The prefix of every orderq family (process families are the standard unprefixed ones).
pub const PREFIX: &str = "orderq";

/// The registry of one node. Registration needs `&mut`, so it happens before the API serves;
/// rendering only reads.
#[derive(Debug, Default)]
pub struct Metrics {
    /// The root registry: standard families at the root, orderq's under [`PREFIX`].
    registry: Registry,
}

impl Metrics {
    /// The root registry, for registering unprefixed standard families (`process_*`).
    pub fn root(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// A registry whose families are named `orderq_*`.
    pub fn orderq(&mut self) -> &mut Registry {
        self.registry.sub_registry_with_prefix(PREFIX)
    }

    /// Registers `orderq_build_info{version, profile} 1`: which build a node runs, to join onto
    /// other series in queries and to see a rolling upgrade's progress.
    pub fn register_build_info(&mut self) {
        let info: prometheus_client::metrics::family::Family<BuildLabels, Gauge> =
            Default::default();
        info.get_or_create(&BuildLabels {
            version: env!("CARGO_PKG_VERSION"),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        })
        .set(1);
        self.orderq().register(
            "build_info",
            "The orderq build this node runs, always 1",
            info,
        );
    }

    /// The Prometheus text of every registered family.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Labels of `orderq_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct BuildLabels {
    /// The crate version (the workspace's).
    version: &'static str,
    /// `debug` or `release`: debug builds carry assertions and run slower.
    profile: &'static str,
}

/// Writes one unlabelled gauge from a collector.
pub fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeGaugeValue + Clone + std::fmt::Debug + Send + Sync + 'static,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// Writes one unlabelled counter from a collector, of a count or of seconds (the encoder adds
/// `_total` to `name`).
pub fn counter<N: EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error> {
    ConstCounter::new(value).encode(encoder.encode_descriptor(
        name,
        help,
        None,
        MetricType::Counter,
    )?)
}

/// Writes one gauge family from a collector, a sample per row (no row: only its HELP and TYPE).
pub fn gauge_family<L, V>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, V)>,
) -> Result<(), std::fmt::Error>
where
    L: EncodeLabelSet,
    V: EncodeGaugeValue + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes one counter family from a collector (the encoder adds `_total` to `name`).
pub fn counter_family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}
