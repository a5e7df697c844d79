//! The leader's queue trimmer: proposes `TrimMessages` for topics whose oldest messages every
//! subscription has settled and that are older than `queue_retention_secs`, so the queue's
//! storage stays bounded by what is unsettled or recent.
//!
//! To ensure correctness: it only proposes; `apply` (`sm::retention`) re-checks the cursors and
//! the age with the batch clock, so a stale view or a deposed leader removes nothing it should
//! not.

use std::time::Duration;

use sm::command::{Action, Command, TrimMessages};
use sm::outcome::Applied;
use sm::subscription::QueueReads;
use sm::StateReader;
use tokio::sync::watch;

use crate::batcher::Batcher;
use crate::clock::now_ms;

/// How often topics are looked at: every tenth of the retention, between these bounds.
const PERIOD_MIN: Duration = Duration::from_millis(500);
/// See [`PERIOD_MIN`].
const PERIOD_MAX: Duration = Duration::from_secs(10);
/// Most trims proposed per topic per round (each removes up to `sm::retention::MAX_TRIM`).
const TRIMS_PER_ROUND: usize = 50;

/// The trimmer of one leadership term.
pub struct QueueTrimmer {
    /// The node's applied state.
    reader: StateReader,
    /// Where trims are proposed.
    batcher: Batcher,
    /// Messages younger than this stay.
    retention_ms: u64,
}

impl QueueTrimmer {
    /// A trimmer reading `reader`, proposing through `batcher`.
    pub fn new(reader: StateReader, batcher: Batcher, retention_ms: u64) -> Self {
        QueueTrimmer {
            reader,
            batcher,
            retention_ms,
        }
    }

    /// Runs until `stop` turns true (leadership lost) or the node shuts down.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let period = Duration::from_millis(self.retention_ms / 10).clamp(PERIOD_MIN, PERIOD_MAX);
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => break,
                _ = ticker.tick() => {}
            }
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "queue retention round failed; trying again later");
            }
        }
    }

    /// One pass over every topic.
    async fn round(&self) -> Result<(), String> {
        let reads = QueueReads {
            db: self.reader.db(),
        };
        for topic in reads.topics().map_err(|e| e.to_string())? {
            for _ in 0..TRIMS_PER_ROUND {
                let Some(up_to) = reads
                    .trimmable(&topic, self.retention_ms, now_ms())
                    .map_err(|e| e.to_string())?
                else {
                    break;
                };
                let trim = TrimMessages {
                    topic: topic.clone(),
                    up_to_offset: up_to,
                    retention_ms: self.retention_ms,
                };
                let before = reads.floor(&topic).map_err(|e| e.to_string())?;
                match self
                    .batcher
                    .submit(Command::new(Action::TrimMessages(trim)))
                    .await
                {
                    Ok(Ok(Applied::Trimmed(floor))) if floor > before => {
                        tracing::debug!(%topic, floor, "queue messages removed by retention");
                    }
                    Ok(_) => break,
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        Ok(())
    }
}
