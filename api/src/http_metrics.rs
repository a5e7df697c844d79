//! HTTP request metrics: a counter per (method, route template, status) and a latency histogram
//! per (method, route template, status class). Route templates (`/v1/orders/{id}`), never raw
//! paths, keep the label sets bounded whatever clients send.

use std::borrow::Cow;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Labels of `orderq_http_requests_total`: the exact status, so 429s and 503s can be told apart.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// Upper-case method.
    method: Cow<'static, str>,
    /// The route template, or `unmatched`.
    route: &'static str,
    /// The status code.
    status: u16,
}

/// Labels of `orderq_http_request_duration_seconds`: the status class (`2xx`..`5xx`), so a
/// histogram's dozen buckets are not multiplied by every status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    /// Upper-case method.
    method: Cow<'static, str>,
    /// The route template, or `unmatched`.
    route: &'static str,
    /// `1xx` to `5xx`.
    status_class: &'static str,
}

/// The HTTP metrics of one node.
#[derive(Debug)]
pub struct HttpMetrics {
    /// Answered requests.
    requests: Family<RequestLabels, Counter>,
    /// Time from receiving a request to its reply (forwarding included).
    latency: Family<LatencyLabels, Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
        }
    }
}

/// The method as a label value: the contract's methods without a copy (a label set is built for
/// every request, and only the first of each is kept), any other as it came.
fn method_label(method: &str) -> Cow<'static, str> {
    match method {
        "GET" => Cow::Borrowed("GET"),
        "POST" => Cow::Borrowed("POST"),
        "PUT" => Cow::Borrowed("PUT"),
        "DELETE" => Cow::Borrowed("DELETE"),
        other => Cow::Owned(other.to_string()),
    }
}

/// The class of a status code, as a label value.
fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl HttpMetrics {
    /// Registers both families in `registry` (the `orderq` registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Seconds from an HTTP request to its reply, by method, route template and status class",
            self.latency.clone(),
        );
    }

    /// Records one answered request.
    pub fn observe(&self, method: &str, route: &'static str, status: u16, latency: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method_label(method),
                route,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                method: method_label(method),
                route,
                status_class: status_class(status),
            })
            .observe(latency.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_counted_by_status_and_timed_by_status_class() {
        let http = HttpMetrics::default();
        let mut registry = Registry::with_prefix("orderq");
        http.register(&mut registry);
        http.observe("GET", "/healthz", 200, Duration::from_millis(3));
        http.observe("POST", "/v1/orders", 429, Duration::from_millis(1));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
            .expect("encodes");
        assert!(text.contains(
            "orderq_http_requests_total{method=\"POST\",route=\"/v1/orders\",status=\"429\"} 1"
        ));
        assert!(text.contains(
            "orderq_http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",status_class=\"2xx\",le=\"0.005\"} 1"
        ), "{text}");
        assert!(text.contains("# HELP orderq_http_requests_total "));
    }
}
