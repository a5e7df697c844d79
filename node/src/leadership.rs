//! Leader-only services: started when this node gains leadership, stopped when it loses it.
//!
//! To ensure correctness:
//! - A service may act only through Raft proposals, which a deposed leader cannot commit, and
//!   whose effects `apply` re-checks; so a service that runs a moment too long after losing
//!   leadership changes nothing it should not.
//! - Services also stop while the leader is cut off from a quorum ([`QuorumContact`]): what they
//!   do outside Raft (webhook and payment provider calls) must not go on from an isolated leader
//!   for a whole partition; and while this node's clock is off from the other voters'
//!   ([`ClockWatch`]), whose deadlines it would misjudge.

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use sm::raft_types::Raft;
use sm::{StateMachine, StateReader};
use tokio::sync::watch;

use crate::batcher::Batcher;
use crate::clock_watch::ClockWatch;
use crate::queue_handle::QueueHandle;
use crate::queue_housekeeping::QueueHousekeeping;
use crate::quorum_contact::QuorumContact;
use crate::refund_status::RefundStatusLookup;
use crate::scheduler::Scheduler;
use crate::timer_service::{TimerLag, TimerService};

/// What leader services need.
pub struct LeaderServices {
    /// The Raft handle, watched for leadership.
    pub raft: Raft,
    /// The state machine, for armed-timer notifications.
    pub state: StateMachine,
    /// The applied state.
    pub reader: StateReader,
    /// Where services propose.
    pub batcher: Batcher,
    /// Timer lag shared with the API.
    pub timer_lag: Arc<TimerLag>,
    /// Pull requests and delivery stats shared with the API.
    pub queue: Arc<QueueHandle>,
    /// The payment provider's refund endpoint (`[payment] refund_url`), empty for none.
    pub refund_url: String,
    /// Where the provider answers a refund's status (`[payment] refund_status_url`), empty for
    /// none.
    pub refund_status_url: String,
    /// Settled queue messages older than this are removed; 0 keeps them.
    pub queue_retention_ms: u64,
    /// Whether this leader still hears from a quorum (shared with `/readyz`).
    pub quorum: Arc<QuorumContact>,
    /// Whether this node's clock is off from the other voters' (then it runs no service).
    pub clock: Arc<ClockWatch>,
    /// The key refund calls are signed with (`[payment] signing_secret`), empty for none.
    pub refund_signing_secret: String,
    /// Where webhooks may go.
    pub webhook_policy: api::webhook_target::WebhookPolicy,
    /// The key this node's pull receipts are made under.
    pub receipt_key: crate::receipt::ReceiptKey,
    /// Extra roots for outbound https (`[tls] ca_file`).
    pub extra_roots: Vec<reqwest::Certificate>,
    /// The scheduler's per-group histograms (shared with `/metrics`, kept across terms).
    pub delivery_metrics: crate::delivery_metrics::DeliveryMetrics,
}

/// How often leadership and quorum contact are looked at when nothing else changes.
const CONTACT_CHECK: Duration = Duration::from_millis(100);

impl LeaderServices {
    /// Watches leadership until `shutdown` turns true, running the services while leading.
    ///
    /// openraft publishes its full metrics on every turn of its loop (each append, commit and
    /// apply), and waking for each cost a follower about 4% of its CPU under load, mostly in
    /// waking a parked thread. So only a node in the leader state follows every publication (the
    /// quorum's acknowledgements come with them, see [`QuorumContact`]); any other node wakes
    /// when its server state, leader, vote or membership changes, and on the periodic check.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut metrics = self.raft.metrics();
        let mut server = self.raft.server_metrics();
        let mut check = tokio::time::interval(CONTACT_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut running: Option<watch::Sender<bool>> = None;
        self.quorum.observe(&metrics.borrow());
        loop {
            // The server metrics are published just before the full ones: a node that has just
            // become leader may still look like a follower in the full metrics, so either one in
            // the leader state means following every publication.
            let (leading, follow_all) = {
                let m = metrics.borrow_and_update();
                let server_leads = server.borrow_and_update().state == ServerState::Leader;
                let leads = m.state == ServerState::Leader;
                (
                    leads && self.quorum.in_contact(&m) && self.clock.is_trusted(),
                    leads || server_leads,
                )
            };
            match (leading, running.is_some()) {
                (true, false) => running = Some(self.start()),
                (false, true) => {
                    tracing::info!(
                        "leader services stopped: not leading, or no quorum heard lately"
                    );
                    if let Some(stop) = running.take() {
                        let _ = stop.send(true);
                    }
                }
                _ => {}
            }
            tokio::select! {
                changed = metrics.changed(), if follow_all => {
                    if changed.is_err() {
                        break;
                    }
                    self.quorum.observe(&metrics.borrow());
                }
                changed = server.changed(), if !follow_all => {
                    if changed.is_err() {
                        break;
                    }
                    self.quorum.observe(&metrics.borrow());
                }
                _ = check.tick() => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        if let Some(stop) = running {
            let _ = stop.send(true);
        }
    }

    fn start(&self) -> watch::Sender<bool> {
        let (stop, stopped) = watch::channel(false);
        // Subscribe before the first refill reads the disk, so no timer armed in between is missed.
        let timers = TimerService::new(
            self.reader.clone(),
            self.batcher.clone(),
            self.state.subscribe_armed_timers(),
            self.timer_lag.clone(),
        );
        tokio::spawn(timers.run(stopped.clone()));
        let housekeeping = QueueHousekeeping::new(
            self.reader.clone(),
            self.batcher.clone(),
            self.queue_retention_ms,
        );
        tokio::spawn(housekeeping.run(stopped.clone()));
        match Scheduler::new(
            self.reader.clone(),
            self.batcher.clone(),
            self.queue.clone(),
            self.refund_url.clone(),
            self.refund_signing_secret.clone(),
            RefundStatusLookup::configured(&self.refund_status_url, &self.refund_signing_secret),
            self.receipt_key.clone(),
            self.webhook_policy.clone(),
            &self.extra_roots,
            self.delivery_metrics.clone(),
        ) {
            Ok(scheduler) => {
                tokio::spawn(scheduler.run(stopped));
            }
            Err(e) => tracing::error!(error = %e, "consumer scheduler could not start"),
        }
        stop
    }
}
