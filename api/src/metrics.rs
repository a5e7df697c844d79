//! HTTP metrics in Prometheus text: requests and a latency histogram by route and status.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Counts of one (route, status).
#[derive(Default)]
struct Series {
    /// Per bucket of [`BUCKETS`], requests at or under its bound.
    buckets: [u64; BUCKETS.len()],
    /// All requests.
    count: u64,
    /// Sum of latencies in seconds.
    sum: f64,
}

/// The HTTP metrics of one node.
#[derive(Default)]
pub struct HttpMetrics {
    /// Series keyed by (method, route template, status).
    series: Mutex<BTreeMap<(String, &'static str, u16), Series>>,
}

impl HttpMetrics {
    /// Records one answered request.
    pub fn observe(&self, method: &str, route: &'static str, status: u16, latency: Duration) {
        let secs = latency.as_secs_f64();
        let Ok(mut series) = self.series.lock() else {
            return;
        };
        let s = series
            .entry((method.to_string(), route, status))
            .or_default();
        s.count += 1;
        s.sum += secs;
        for (bucket, bound) in s.buckets.iter_mut().zip(BUCKETS) {
            if secs <= *bound {
                *bucket += 1;
            }
        }
    }

    /// Prometheus text of every series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# TYPE orderq_http_requests_total counter\n");
        out.push_str("# TYPE orderq_http_request_duration_seconds histogram\n");
        let Ok(series) = self.series.lock() else {
            return out;
        };
        for ((method, route, status), s) in series.iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            let _ = writeln!(out, "orderq_http_requests_total{{{labels}}} {}", s.count);
            for (bucket, bound) in s.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(out, "orderq_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {bucket}");
            }
            let _ = writeln!(
                out,
                "orderq_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "orderq_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "orderq_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out
    }
}
