//! The bridge between the API and the leader's consumer scheduler: pull requests go to the
//! scheduler of this leadership term; the scheduler publishes its in-flight counts for stats.
//!
//! To ensure correctness: the handle holds a sender only while this node's scheduler runs (set
//! when it starts, cleared when it stops), so a node that does not lead never serves a lease from
//! stale memory; callers get `None` and forward to the leader.

use std::collections::HashMap;
use std::sync::Mutex;

use api::{ClusterError, LiveDeliveries, PulledMessage, ReceiveLimits};
use tokio::sync::{mpsc, oneshot};

/// A pull consumer's request to the scheduler.
pub enum PullRequest {
    /// Lease up to `limits.max` messages of `group`.
    Receive {
        /// The group.
        group: String,
        /// How many, how long to wait, how long to lease.
        limits: ReceiveLimits,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Vec<PulledMessage>, ClusterError>>,
    },
    /// Acknowledge (no delay) or nack (with delay) leased messages by receipt.
    Settle {
        /// The group.
        group: String,
        /// Receipts from `Receive`.
        receipts: Vec<String>,
        /// `Some(delay)` for a nack.
        nack_delay_ms: Option<u64>,
        /// How many receipts were current.
        reply: oneshot::Sender<Result<u64, ClusterError>>,
    },
}

/// Shared between the API side (`RaftCluster`) and the running scheduler.
#[derive(Default)]
pub struct QueueHandle {
    /// The running scheduler's request queue, while this node leads.
    requests: Mutex<Option<mpsc::Sender<PullRequest>>>,
    /// In-flight counts per group, as the running scheduler last published them.
    live: Mutex<HashMap<String, LiveDeliveries>>,
}

impl QueueHandle {
    /// Called by a starting scheduler.
    pub fn attach(&self, requests: mpsc::Sender<PullRequest>) {
        if let Ok(mut slot) = self.requests.lock() {
            *slot = Some(requests);
        }
    }

    /// Called by a stopping scheduler with the sender it attached: a scheduler of a newer term
    /// that attached meanwhile (leadership lost and regained quickly) stays attached.
    pub fn detach(&self, attached: &mpsc::Sender<PullRequest>) {
        if let Ok(mut slot) = self.requests.lock() {
            if !slot.as_ref().is_some_and(|s| s.same_channel(attached)) {
                return;
            }
            *slot = None;
        }
        if let Ok(mut live) = self.live.lock() {
            live.clear();
        }
    }

    /// The running scheduler's queue, if this node's scheduler runs.
    pub fn requests(&self) -> Option<mpsc::Sender<PullRequest>> {
        self.requests.lock().ok().and_then(|slot| slot.clone())
    }

    /// Publishes the scheduler's in-flight counts.
    pub fn publish_live(&self, live: HashMap<String, LiveDeliveries>) {
        if let Ok(mut slot) = self.live.lock() {
            *slot = live;
        }
    }

    /// The in-flight counts last published.
    pub fn live(&self) -> HashMap<String, LiveDeliveries> {
        self.live.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_scheduler_does_not_detach_a_newer_one() {
        let handle = QueueHandle::default();
        let (old, _old_rx) = mpsc::channel(1);
        let (new, _new_rx) = mpsc::channel(1);
        handle.attach(old.clone());
        handle.attach(new.clone());
        handle.detach(&old);
        assert!(handle.requests().is_some_and(|s| s.same_channel(&new)));
        handle.detach(&new);
        assert!(handle.requests().is_none());
    }
}
