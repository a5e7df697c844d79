//! The leader's time wheel driver: keeps the near future of the `timers` column family in a
//! [`TimingWheel`], refills it from RocksDB as time advances, and proposes due timers in batches.
//!
//! To ensure correctness:
//! - It runs only while this node leads (see `leadership`); whatever it decides is proposed
//!   through Raft and re-checked by `apply` (a timer that is gone or not yet due does nothing).
//! - Every pending timer due within the horizon is in the wheel: the horizon is loaded from disk,
//!   and timers armed later with an earlier due time arrive through the state machine's
//!   notifications. A missed notification (`Lagged`) forces a reload from disk.
//! - A proposal that fails leaves its timers scheduled to be proposed again; duplicates are
//!   harmless because `apply` skips timers that are gone.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use sm::command::{Action, Command, FireTimers};
use sm::keys::parse_timer;
use sm::outcome::Applied;
use sm::StateReader;
use tokio::sync::{broadcast, mpsc, watch, Semaphore};

use crate::batcher::Batcher;
use crate::clock::now_ms;
use crate::timing_wheel::TimingWheel;

/// Wheel resolution.
const TICK_MS: i64 = 10;
/// How far ahead the wheel holds timers in memory.
const HORIZON_MS: i64 = 60_000;
/// How much further than the horizon one refill reads, so refills are occasional.
const REFILL_MS: i64 = 30_000;
/// Most timers read from disk in one refill step.
const LOAD_LIMIT: usize = 200_000;
/// Most timers in one `FireTimers` command.
const FIRE_CHUNK: usize = 1_000;
/// Most `FireTimers` commands proposed at once.
const FIRE_IN_FLIGHT: usize = 4;
/// Delay before timers of a failed proposal are proposed again.
const RETRY_MS: i64 = 500;
/// Firing lags kept for the p99.
const LAG_SAMPLES: usize = 10_000;

/// Firing lag (due → applied) as measured by the node that fired the timers while it led: a
/// histogram for `/metrics` (kept across terms, so every node that ever fired has one) and the
/// recent samples behind `/admin/timers`' p99.
pub struct TimerLag {
    /// The most recent lags in milliseconds.
    samples: Mutex<VecDeque<u64>>,
    /// Every lag, in seconds.
    histogram: Histogram,
}

impl Default for TimerLag {
    fn default() -> Self {
        TimerLag {
            samples: Mutex::default(),
            // 1 ms to about 65 s.
            histogram: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
        }
    }
}

impl TimerLag {
    /// Registers `orderq_timer_lag_seconds` in `registry` (the `orderq` registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "timer_lag_seconds",
            "Seconds from a timer's due time to its firing being applied, on the node that fired it",
            self.histogram.clone(),
        );
    }

    fn record(&self, lags: impl IntoIterator<Item = u64>) {
        let Ok(mut samples) = self.samples.lock() else {
            return;
        };
        for lag in lags {
            self.histogram.observe(lag as f64 / 1000.0);
            if samples.len() == LAG_SAMPLES {
                samples.pop_front();
            }
            samples.push_back(lag);
        }
    }

    /// The 99th percentile of recent firing lags, if any timer fired on this node as leader.
    pub fn p99_ms(&self) -> Option<u64> {
        let samples = self.samples.lock().ok()?;
        if samples.is_empty() {
            return None;
        }
        let mut sorted: Vec<u64> = samples.iter().copied().collect();
        sorted.sort_unstable();
        let rank = (sorted.len() * 99).div_ceil(100).saturating_sub(1);
        sorted.get(rank).copied()
    }
}

/// What came back from one `FireTimers` proposal.
struct FireResult {
    /// Keys done with: fired, or gone.
    settled: Vec<Vec<u8>>,
    /// Keys not yet due at the batch's clock: scheduled again at their due time.
    early: Vec<Vec<u8>>,
    /// Keys of a proposal that failed: scheduled again after [`RETRY_MS`].
    failed: Vec<Vec<u8>>,
}

/// The driver of one leadership term.
pub struct TimerService {
    /// The node's applied state.
    reader: StateReader,
    /// Where proposals go.
    batcher: Batcher,
    /// Timers armed by applied batches.
    armed: broadcast::Receiver<Arc<Vec<Vec<u8>>>>,
    /// Lag measurements shared with the API.
    lag: Arc<TimerLag>,
}

impl TimerService {
    /// A driver reading `reader`, proposing through `batcher`, told of new timers by `armed`.
    pub fn new(
        reader: StateReader,
        batcher: Batcher,
        armed: broadcast::Receiver<Arc<Vec<Vec<u8>>>>,
        lag: Arc<TimerLag>,
    ) -> Self {
        TimerService {
            reader,
            batcher,
            armed,
            lag,
        }
    }

    /// Runs until `stop` turns true (leadership lost) or the node shuts down.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut wheel = TimingWheel::new(TICK_MS, now_ms());
        let mut scheduled: HashSet<Vec<u8>> = HashSet::new();
        // Everything due before `loaded_until` that is pending on disk is in the wheel.
        let mut loaded_until: Option<i64> = None;
        let (results_tx, mut results) = mpsc::unbounded_channel::<FireResult>();
        let slots = Arc::new(Semaphore::new(FIRE_IN_FLIGHT));
        let mut ticker = tokio::time::interval(Duration::from_millis(TICK_MS as u64));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tracing::info!("time wheel started");
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => break,
                _ = ticker.tick() => {}
            }
            self.take_armed(&mut wheel, &mut scheduled, &mut loaded_until);
            while let Ok(result) = results.try_recv() {
                for key in result.settled {
                    scheduled.remove(&key);
                }
                for key in result.early {
                    if let Some(timer) = parse_timer(&key) {
                        wheel.insert(timer.due_ms.max(now_ms() + TICK_MS), key);
                    }
                }
                for key in result.failed {
                    wheel.insert(now_ms() + RETRY_MS, key);
                }
            }
            let now = now_ms();
            if loaded_until.is_none_or(|until| until < now + HORIZON_MS) {
                match self.refill(&mut wheel, &mut scheduled, loaded_until, now) {
                    Ok(until) => loaded_until = Some(until),
                    Err(e) => tracing::warn!(error = %e, "time wheel refill failed"),
                }
            }
            let due = wheel.advance(now);
            for chunk in due.chunks(FIRE_CHUNK) {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let batcher = self.batcher.clone();
                let lag = self.lag.clone();
                let results_tx = results_tx.clone();
                let keys = chunk.to_vec();
                tokio::spawn(async move {
                    let result = propose(&batcher, keys, &lag).await;
                    let _ = results_tx.send(result);
                    drop(slot);
                });
            }
        }
        tracing::info!("time wheel stopped");
    }

    /// Adds the timers armed since the last tick that fall before what was loaded from disk.
    fn take_armed(
        &mut self,
        wheel: &mut TimingWheel<Vec<u8>>,
        scheduled: &mut HashSet<Vec<u8>>,
        loaded_until: &mut Option<i64>,
    ) {
        loop {
            match self.armed.try_recv() {
                Ok(keys) => {
                    let Some(until) = *loaded_until else { continue };
                    for key in keys.iter() {
                        if let Some(timer) = parse_timer(key) {
                            if timer.due_ms < until && scheduled.insert(key.clone()) {
                                wheel.insert(timer.due_ms, key.clone());
                            }
                        }
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "time wheel fell behind the armed timers; reloading from disk"
                    );
                    *loaded_until = None;
                }
                Err(_) => return,
            }
        }
    }

    /// Loads pending timers from `from` (the start when `None`) to past the horizon; answers how
    /// far the wheel now covers.
    fn refill(
        &self,
        wheel: &mut TimingWheel<Vec<u8>>,
        scheduled: &mut HashSet<Vec<u8>>,
        from: Option<i64>,
        now: i64,
    ) -> Result<i64, sm::StoreError> {
        let until = now + HORIZON_MS + REFILL_MS;
        let keys = self
            .reader
            .timers_due(from.unwrap_or(0), until, LOAD_LIMIT)?;
        let full = keys.len() == LOAD_LIMIT;
        let mut last_due = from.unwrap_or(0);
        for key in keys {
            if let Some(timer) = parse_timer(&key) {
                last_due = timer.due_ms;
                if scheduled.insert(key.clone()) {
                    wheel.insert(timer.due_ms, key);
                }
            }
        }
        // A full read may have stopped inside one due time: the next refill starts there again
        // (what is already scheduled is not added twice).
        Ok(if full { last_due } else { until })
    }
}

/// Proposes one chunk of due timers and sorts the keys by what `apply` did with them.
async fn propose(batcher: &Batcher, keys: Vec<Vec<u8>>, lag: &TimerLag) -> FireResult {
    let command = Command::new(Action::FireTimers(FireTimers { keys: keys.clone() }));
    match batcher.submit(command).await {
        Ok(Ok(Applied::TimersFired(fired))) => {
            let applied_at = now_ms();
            lag.record(fired.fired.iter().filter_map(|key| {
                parse_timer(key).map(|t| u64::try_from(applied_at - t.due_ms).unwrap_or(0))
            }));
            let early: HashSet<&Vec<u8>> = fired.early.iter().collect();
            let settled = keys
                .iter()
                .filter(|k| !early.contains(k))
                .cloned()
                .collect();
            FireResult {
                settled,
                early: fired.early,
                failed: Vec::new(),
            }
        }
        other => {
            tracing::debug!(outcome = ?other, "firing timers failed; will retry");
            FireResult {
                settled: Vec::new(),
                early: Vec::new(),
                failed: keys,
            }
        }
    }
}
