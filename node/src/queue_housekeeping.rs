//! The leader's queue housekeeping, so the queue's storage stays bounded by what is unsettled or
//! recent: it proposes `TrimMessages` for topics whose oldest messages every subscription has
//! settled and that are older than `queue_retention_secs`, and repeats `RemoveSubscription` for
//! groups whose removal has records left.
//!
//! To ensure correctness: it only proposes; `apply` (`sm::queue` (retention, group removal))
//! re-checks the cursors, the age and the markers, so a stale view or a deposed leader removes
//! nothing it should not.

use std::time::Duration;

use sm::command::{Action, Command, RemoveSubscription, TrimMessages};
use sm::outcome::Applied;
use sm::StateReader;
use tokio::sync::watch;

use crate::batcher::Batcher;
use crate::clock::now_ms;

/// How often topics are looked at: every tenth of the retention, between these bounds.
const PERIOD_MIN: Duration = Duration::from_millis(500);
/// See [`PERIOD_MIN`].
const PERIOD_MAX: Duration = Duration::from_secs(10);
/// Most trims proposed per topic per round (each removes up to `sm::queue::MAX_TRIM`).
const TRIMS_PER_ROUND: usize = 50;
/// Most removal steps proposed per group per round.
const REMOVALS_PER_ROUND: usize = 20;

/// The queue housekeeping of one leadership term.
pub struct QueueHousekeeping {
    /// The node's applied state.
    reader: StateReader,
    /// Where trims are proposed.
    batcher: Batcher,
    /// Messages younger than this stay; 0 keeps them all.
    retention_ms: u64,
}

impl QueueHousekeeping {
    /// Housekeeping reading `reader`, proposing through `batcher`.
    pub fn new(reader: StateReader, batcher: Batcher, retention_ms: u64) -> Self {
        QueueHousekeeping {
            reader,
            batcher,
            retention_ms,
        }
    }

    /// Runs until `stop` turns true (leadership lost) or the node shuts down.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let period = match self.retention_ms {
            0 => PERIOD_MAX,
            ms => Duration::from_millis(ms / 10).clamp(PERIOD_MIN, PERIOD_MAX),
        };
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => break,
                _ = ticker.tick() => {}
            }
            if let Err(e) = self.finish_removals().await {
                tracing::warn!(error = %e, "removing a group failed; trying again later");
            }
            if self.retention_ms > 0 {
                if let Err(e) = self.trim().await {
                    tracing::warn!(error = %e, "queue retention failed; trying again later");
                }
            }
        }
    }

    /// Takes the next steps of every group removal under way.
    async fn finish_removals(&self) -> Result<(), String> {
        let reads = self.reader.queue();
        for group in reads.removing_groups().map_err(|e| e.to_string())? {
            for _ in 0..REMOVALS_PER_ROUND {
                let remove = RemoveSubscription {
                    group: group.clone(),
                };
                match self
                    .batcher
                    .submit(Command::new(Action::RemoveSubscription(remove)))
                    .await
                {
                    Ok(Ok(Applied::SubscriptionRemoved(true))) => {}
                    Ok(_) => break,
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        Ok(())
    }

    /// One retention pass over every topic.
    async fn trim(&self) -> Result<(), String> {
        let reads = self.reader.queue();
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
