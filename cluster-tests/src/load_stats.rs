//! What a load run saw, per outcome: counts, latency percentiles and rates, for the load
//! generator's report.
//!
//! An outcome is a label such as `seckill 201` or `seckill 409 sold_out`: the flash sale's
//! purchase path and its sold-out path have very different costs, so each is measured on its
//! own rather than blended into one latency figure.

use std::collections::BTreeMap;
use std::time::Duration;

/// The answers of one outcome.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Latency of every answer, in microseconds (sorted by [`LoadStats::finish`]).
    pub latencies_us: Vec<u32>,
    /// When the first of them was sent, from the start of the run.
    pub first_sent: Option<Duration>,
    /// When the last of them was answered, from the start of the run.
    pub last_answered: Duration,
}

impl Series {
    /// The `p` quantile (0..=1) in milliseconds; the latencies must be sorted.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        f64::from(percentile_us(&self.latencies_us, p)) / 1000.0
    }

    /// Answers per second over the window in which this outcome occurred (first sent to last
    /// answered): the rate of the purchase path while units lasted, not diluted by the
    /// sold-out phase after it.
    pub fn rate_in_window(&self) -> f64 {
        let window = self
            .last_answered
            .saturating_sub(self.first_sent.unwrap_or_default());
        if window.is_zero() {
            return 0.0;
        }
        self.latencies_us.len() as f64 / window.as_secs_f64()
    }
}

/// Everything one run saw, by outcome label.
#[derive(Debug, Clone, Default)]
pub struct LoadStats {
    /// Series by outcome label.
    pub outcomes: BTreeMap<String, Series>,
}

impl LoadStats {
    /// Records one answer: its label, when it was sent and when answered (from the run's start).
    pub fn record(&mut self, label: impl Into<String>, sent: Duration, answered: Duration) {
        let series = self.outcomes.entry(label.into()).or_default();
        let micros = answered.saturating_sub(sent).as_micros();
        series
            .latencies_us
            .push(u32::try_from(micros).unwrap_or(u32::MAX));
        series.first_sent = Some(series.first_sent.map_or(sent, |first| first.min(sent)));
        series.last_answered = series.last_answered.max(answered);
    }

    /// Adds another client's stats.
    pub fn merge(&mut self, other: LoadStats) {
        for (label, theirs) in other.outcomes {
            let ours = self.outcomes.entry(label).or_default();
            ours.latencies_us.extend(theirs.latencies_us);
            ours.first_sent = match (ours.first_sent, theirs.first_sent) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            ours.last_answered = ours.last_answered.max(theirs.last_answered);
        }
    }

    /// Sorts every series' latencies, for percentiles.
    pub fn finish(&mut self) {
        for series in self.outcomes.values_mut() {
            series.latencies_us.sort_unstable();
        }
    }

    /// Answers counted under labels starting with `prefix`.
    pub fn count(&self, prefix: &str) -> u64 {
        self.outcomes
            .iter()
            .filter(|(label, _)| label.starts_with(prefix))
            .map(|(_, s)| s.latencies_us.len() as u64)
            .sum()
    }

    /// Every answer.
    pub fn total(&self) -> u64 {
        self.count("")
    }

    /// One line per outcome: count, rate over the run, rate in its window, p50/p99/p99.9.
    pub fn render(&self, elapsed: Duration) -> String {
        let mut out = format!(
            "{:<34} {:>9} {:>11} {:>11} {:>9} {:>9} {:>9}\n",
            "outcome", "count", "req/s run", "req/s win", "p50 ms", "p99 ms", "p99.9 ms"
        );
        for (label, s) in &self.outcomes {
            out.push_str(&format!(
                "{:<34} {:>9} {:>11.1} {:>11.1} {:>9.2} {:>9.2} {:>9.2}\n",
                label,
                s.latencies_us.len(),
                s.latencies_us.len() as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
                s.rate_in_window(),
                s.percentile_ms(0.50),
                s.percentile_ms(0.99),
                s.percentile_ms(0.999),
            ));
        }
        out
    }

    /// The same as JSON.
    pub fn to_json(&self, elapsed: Duration) -> serde_json::Value {
        let outcomes: serde_json::Map<String, serde_json::Value> = self
            .outcomes
            .iter()
            .map(|(label, s)| {
                let value = serde_json::json!({
                    "count": s.latencies_us.len(),
                    "per_sec_run": s.latencies_us.len() as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
                    "per_sec_window": s.rate_in_window(),
                    "latency_ms": {
                        "p50": s.percentile_ms(0.50),
                        "p99": s.percentile_ms(0.99),
                        "p99_9": s.percentile_ms(0.999),
                        "max": s.percentile_ms(1.0),
                    },
                });
                (label.clone(), value)
            })
            .collect();
        serde_json::Value::Object(outcomes)
    }
}

/// The `p` quantile (0..=1) of sorted `values`, nearest-rank; 0 when empty.
pub fn percentile_us(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile_us(&sorted, 0.50), 50);
        assert_eq!(percentile_us(&sorted, 0.99), 99);
        assert_eq!(percentile_us(&sorted, 1.0), 100);
        assert_eq!(percentile_us(&[7], 0.5), 7);
        assert_eq!(percentile_us(&[], 0.5), 0);
    }

    #[test]
    fn outcomes_merge_with_their_windows() {
        let ms = Duration::from_millis;
        let mut a = LoadStats::default();
        a.record("x 201", ms(10), ms(12));
        let mut b = LoadStats::default();
        b.record("x 201", ms(5), ms(1005));
        b.record("x 409 sold_out", ms(0), ms(1));
        a.merge(b);
        a.finish();
        let x = &a.outcomes["x 201"];
        assert_eq!(x.latencies_us, vec![2_000, 1_000_000]);
        assert_eq!(x.first_sent, Some(ms(5)));
        assert!((x.rate_in_window() - 2.0).abs() < 1e-9);
        assert_eq!(a.count("x 4"), 1);
        assert_eq!(a.total(), 3);
    }
}
