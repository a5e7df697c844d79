//! The consumer scheduler: the leader-only service that delivers messages to subscriptions.
//!
//! Per group it keeps a [`ConsumerLane`] in memory, refilled from the committed state: push groups
//! get HTTP POSTs (within `max_in_flight` and `rate_per_sec`), pull groups lease messages to
//! `receive` calls. Outcomes (acks, failed attempts with the retry time the leader drew) are
//! proposed back through Raft in batches per group; `apply` settles them, counts attempts, makes
//! dead letters and moves refunded orders.
//!
//! To ensure correctness:
//! - It runs only while this node leads (see `leadership`); it changes state only by proposals,
//!   which a deposed leader cannot commit and which `apply` re-checks (an outcome about a message
//!   no longer pending is ignored).
//! - Memory is rebuilt from the committed state at start: every message not settled is pending
//!   again, so anything a previous leader delivered but did not commit is delivered again (at
//!   least once, never lost).
//! - A proposal that fails puts its messages back to pending: they are delivered again.
//! - A pull consumer's `ack`/`nack` is answered only once the proposal carrying it committed
//!   ([`SettleWaiters`]): an acknowledged ack is never lost to a leader change.
//! - Only pull groups lease to callers: `receive`, `ack` and `nack` on a push group or a built-in
//!   group are refused (`not_pull_group`), and a receipt settles only the lease it names in the
//!   group it was issued for (its MAC, `receipt`, is checked before anything else).
//! - Delayed messages and retries wait in the time wheel (`sm::queue` (its timers)): their timers are
//!   armed by `apply` with the publish or the failed attempt, and when one fires `apply` marks
//!   the message ready and this scheduler loads it. Only ordered groups hold waiting messages in
//!   memory (they block their key), released at their due time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api::webhook_target::WebhookPolicy;
use api::{ClusterError, LiveDeliveries, PulledMessage};
use sm::command::{Action, Command, PutSubscription, RecordDeliveries};
use sm::order::REFUND_GROUP;
use sm::order::REFUND_REQUESTED;
use sm::outcome::Applied;
use sm::queue::{DeliveriesRecorded, QueueReads, Subscription};
use sm::StateReader;
use tokio::sync::{mpsc, watch};

use crate::batcher::Batcher;
use crate::clock::now_ms;
use crate::consumer_lane::ConsumerLane;
use crate::delivery_metrics::DeliveryMetrics;
use crate::queue_handle::{PullRequest, QueueHandle};
use crate::receipt::{Receipt, ReceiptKey};
use crate::refund_status::{ProviderRefundStatus, RefundStatusLookup};
use crate::settle_waiters::SettleWaiters;

/// Loop period when nothing happens.
const TICK_MS: u64 = 10;
/// How often subscriptions are re-read (new groups, changed settings, redrives).
const REFRESH_MS: i64 = 200;
/// Proposals of one group in flight at once.
const PROPOSALS_PER_GROUP: usize = 2;
/// Delay before messages of a proposal that did not commit are delivered again.
const UNCOMMITTED_RETRY_MS: i64 = 500;
/// Most pushes in flight across all groups.
const MAX_PUSHES: usize = 4096;
/// Most `receive` long polls waiting at once; more are answered 429 at once, so parked polls
/// cannot grow the leader's memory without bound.
const MAX_PARKED: usize = 4096;

/// A small xorshift generator for retry jitter: the leader draws it and puts the retry time in
/// the command, so `apply` stays deterministic.
struct Jitter(u64);

impl Jitter {
    fn seeded() -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Jitter(seed | 1)
    }

    /// A value in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What the loop hears from the tasks it spawned and from the API.
enum Event {
    /// A push finished.
    Pushed {
        /// The group.
        group: String,
        /// The message's offset.
        offset: u64,
        /// Its outcome.
        result: Result<(), String>,
    },
    /// A proposal of outcomes finished.
    Committed {
        /// What was proposed.
        sent: RecordDeliveries,
        /// What `apply` did, or why it did not commit.
        result: Result<DeliveriesRecorded, String>,
    },
    /// A pull consumer's request.
    Pull(PullRequest),
}

/// A `receive` waiting for messages.
struct Parked {
    /// The group.
    group: String,
    /// Most messages.
    max: usize,
    /// Lease length.
    visibility_ms: u64,
    /// When to answer empty.
    deadline_ms: i64,
    /// Where the answer goes.
    reply: tokio::sync::oneshot::Sender<Result<Vec<PulledMessage>, ClusterError>>,
}

/// The scheduler of one leadership term.
pub struct Scheduler {
    /// The node's applied state.
    reader: StateReader,
    /// Where outcomes are proposed.
    batcher: Batcher,
    /// Shared with the API: pull requests in, stats out.
    handle: Arc<QueueHandle>,
    /// The payment provider's refund endpoint; empty when refunds are not configured.
    refund_url: String,
    /// The key refund calls are signed with; empty leaves the group's key as it is.
    refund_signing_secret: String,
    /// Where the provider is asked whether it made a refund (`[payment] refund_status_url`).
    refund_status: Option<Arc<RefundStatusLookup>>,
    /// Client for webhooks.
    http: reqwest::Client,
    /// What pull receipts are made and checked under.
    receipt_key: ReceiptKey,
    /// Where webhooks may go.
    webhook_policy: Arc<WebhookPolicy>,
    /// Webhook call durations and delivery latencies, per group.
    metrics: DeliveryMetrics,
}

impl Scheduler {
    /// A scheduler reading `reader`, proposing through `batcher`; webhooks may use https with
    /// the system's roots and `extra_roots`.
    #[allow(clippy::too_many_arguments)] // each is a separate setting of the node
    pub fn new(
        reader: StateReader,
        batcher: Batcher,
        handle: Arc<QueueHandle>,
        refund_url: String,
        refund_signing_secret: String,
        refund_status: Option<RefundStatusLookup>,
        receipt_key: ReceiptKey,
        webhook_policy: WebhookPolicy,
        extra_roots: &[reqwest::Certificate],
        metrics: DeliveryMetrics,
    ) -> Result<Self, reqwest::Error> {
        // https with the system's roots plus `[tls] ca_file`.
        let http = crate::tls::with_roots(reqwest::Client::builder(), extra_roots)
            .connect_timeout(Duration::from_secs(2))
            // A webhook's answer is its own: a redirect would send the delivery (and, for the
            // refund group, the refund) to wherever the receiver points.
            .redirect(reqwest::redirect::Policy::none())
            // Names resolve only to addresses webhooks may reach (never cloud metadata).
            .dns_resolver(Arc::new(crate::webhook_resolver::Permitted {
                policy: webhook_policy.clone(),
            }))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()?;
        Ok(Scheduler {
            reader,
            batcher,
            handle,
            refund_url,
            refund_signing_secret,
            refund_status: refund_status.map(Arc::new),
            http,
            receipt_key,
            webhook_policy: Arc::new(webhook_policy),
            metrics,
        })
    }

    /// Runs until `stop` turns true (leadership lost) or the node shuts down.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let (events_tx, mut events) = mpsc::channel::<Event>(65_536);
        let (pull_tx, mut pulls) = mpsc::channel::<PullRequest>(1024);
        self.handle.attach(pull_tx.clone());
        let mut state = LoopState {
            lanes: HashMap::new(),
            parked: Vec::new(),
            token: Jitter::seeded().0 >> 16,
            jitter: Jitter::seeded(),
            pushes: 0,
            refreshed_at: 0,
            refund_proposed_at: 0,
            settling: SettleWaiters::default(),
        };
        let mut ticker = tokio::time::interval(Duration::from_millis(TICK_MS));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tracing::info!("consumer scheduler started");
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => break,
                _ = ticker.tick() => {}
                Some(event) = events.recv() => self.on_event(&mut state, event),
                Some(pull) = pulls.recv() => self.on_event(&mut state, Event::Pull(pull)),
            }
            while let Ok(event) = events.try_recv() {
                self.on_event(&mut state, event);
            }
            while let Ok(pull) = pulls.try_recv() {
                self.on_event(&mut state, Event::Pull(pull));
            }
            let now = now_ms();
            if now - state.refreshed_at >= REFRESH_MS {
                state.refreshed_at = now;
                if let Err(e) = self.refresh(&mut state, now) {
                    tracing::warn!(error = %e, "scheduler refresh failed");
                }
            }
            self.step(&mut state, now, &events_tx);
        }
        self.handle.detach(&pull_tx);
        tracing::info!("consumer scheduler stopped");
    }

    fn reads(&self) -> QueueReads<'_> {
        self.reader.queue()
    }

    /// Re-reads subscriptions: new lanes, new settings, redriven messages; the built-in refund
    /// group.
    /// The lane of pull group `group`, re-reading the subscriptions first if it is not known (it
    /// may have been created since the last refresh); an unknown or push group is refused.
    fn pulled_lane<'s>(
        &self,
        state: &'s mut LoopState,
        group: &str,
        now: i64,
    ) -> Result<&'s mut ConsumerLane, ClusterError> {
        if !state.lanes.contains_key(group) {
            if let Err(e) = self.refresh(state, now) {
                tracing::warn!(error = %e, "scheduler refresh failed");
            }
        }
        let lane = state
            .lanes
            .get_mut(group)
            .ok_or_else(|| ClusterError::UnknownGroup(format!("subscription {group} not found")))?;
        pulled_group(lane)?;
        Ok(lane)
    }

    fn refresh(&self, state: &mut LoopState, now: i64) -> Result<(), sm::StoreError> {
        let subs = self.reads().subscriptions()?;
        self.ensure_refund_group(state, &subs, now);
        // A removed group's lane goes; what it had in flight is answered into nothing.
        state
            .lanes
            .retain(|group, _| subs.iter().any(|sub| &sub.group == group));
        state
            .settling
            .drop_groups(|group| state.lanes.contains_key(group));
        for sub in subs {
            // A reset moved the group's position: what the lane read past the old one goes
            // (anything it had in flight is delivered again: at least once).
            if state
                .lanes
                .get(&sub.group)
                .is_some_and(|lane| lane.sub.resets != sub.resets)
            {
                state.lanes.remove(&sub.group);
            }
            let lane = state
                .lanes
                .entry(sub.group.clone())
                .or_insert_with(|| ConsumerLane::new(sub.clone(), now));
            let redrives = sub.redrives;
            lane.sub = sub;
            if lane.redrives_seen != redrives {
                let redriven = self.reads().redriven(&lane.sub)?;
                lane.add_loaded(redriven);
                lane.redrives_seen = redrives;
            }
            if lane.wants_ready() {
                let ready_marks = lane.sub.ready_marks;
                let (room, bytes) = lane.room();
                // Ready messages are loaded by count; over the byte budget, none are.
                let room = if bytes == 0 { 0 } else { room };
                let (ready, more) =
                    self.reads()
                        .ready(&lane.sub, |offset| lane.holds(offset), room)?;
                lane.add_loaded(ready);
                lane.ready_loaded(ready_marks, more);
            }
        }
        let live = state
            .lanes
            .iter()
            .map(|(group, lane)| {
                (
                    group.clone(),
                    LiveDeliveries {
                        in_flight: lane.in_flight() as u64,
                    },
                )
            })
            .collect();
        self.handle.publish_live(live);
        Ok(())
    }

    /// Creates the refund group from `[payment] refund_url`, or points it at a changed URL.
    fn ensure_refund_group(&self, state: &mut LoopState, subs: &[Subscription], now: i64) {
        if self.refund_url.is_empty() || now - state.refund_proposed_at < 2_000 {
            return;
        }
        let existing = subs.iter().find(|s| s.group == REFUND_GROUP);
        let put = match existing {
            Some(sub)
                if sub.push.as_ref().is_some_and(|p| {
                    p.url == self.refund_url
                        && (self.refund_signing_secret.is_empty()
                            || p.signing_secret.expose() == self.refund_signing_secret)
                }) =>
            {
                return
            }
            Some(sub) => PutSubscription {
                group: sub.group.clone(),
                topic: sub.topic.clone(),
                push_url: self.refund_url.clone(),
                timeout_ms: sub.push.as_ref().map_or(5000, |p| p.timeout_ms),
                max_attempts: sub.max_attempts,
                backoff_initial_ms: sub.backoff_initial_ms,
                backoff_max_ms: sub.backoff_max_ms,
                max_in_flight: sub.max_in_flight,
                rate_per_sec: sub.rate_per_sec,
                ordered_by_key: sub.ordered_by_key,
                start_latest: false,
                signing_secret: self.refund_signing_secret.clone(),
                signing_secret_drawn: false,
            },
            None => PutSubscription {
                group: REFUND_GROUP.into(),
                topic: REFUND_REQUESTED.into(),
                push_url: self.refund_url.clone(),
                timeout_ms: 5000,
                max_attempts: 16,
                backoff_initial_ms: 1000,
                backoff_max_ms: 7_200_000,
                max_in_flight: 64,
                rate_per_sec: 0,
                ordered_by_key: false,
                start_latest: false,
                signing_secret: self.refund_signing_secret.clone(),
                signing_secret_drawn: false,
            },
        };
        state.refund_proposed_at = now;
        let batcher = self.batcher.clone();
        tokio::spawn(async move {
            let command = Command::new(Action::PutSubscription(put));
            if let Err(e) = batcher.submit(command).await {
                tracing::warn!(error = %e, "creating the refund subscription failed; will retry");
            }
        });
    }

    fn on_event(&self, state: &mut LoopState, event: Event) {
        let now = now_ms();
        match event {
            Event::Pushed {
                group,
                offset,
                result,
            } => {
                state.pushes = state.pushes.saturating_sub(1);
                let jitter = state.jitter.next();
                if let Some(lane) = state.lanes.get_mut(&group) {
                    let outcome = result.map_err(|error| {
                        let failed = lane.failed_before(offset).unwrap_or(0) + 1;
                        (error, lane.retry_at(now, failed, jitter))
                    });
                    lane.decide(offset, None, outcome);
                }
            }
            Event::Committed { sent, result } => {
                state.settling.proposal_finished(&sent, result.is_ok());
                if let Some(lane) = state.lanes.get_mut(&sent.group) {
                    lane.proposing = lane.proposing.saturating_sub(1);
                    match result {
                        Ok(done) => lane.committed(&sent, &done),
                        Err(e) => {
                            tracing::debug!(group = %sent.group, error = %e, "outcomes not committed; delivering again");
                            lane.not_committed(&sent, now + UNCOMMITTED_RETRY_MS);
                        }
                    }
                }
            }
            Event::Pull(PullRequest::Receive {
                group,
                limits,
                reply,
            }) => {
                if let Err(e) = self.pulled_lane(state, &group, now) {
                    let _ = reply.send(Err(e));
                    return;
                }
                if state.parked.len() >= MAX_PARKED {
                    let _ = reply.send(Err(ClusterError::Overloaded(format!(
                        "{MAX_PARKED} receives are already waiting on this node; retry shortly"
                    ))));
                    return;
                }
                state.parked.push(Parked {
                    group,
                    max: limits.max,
                    visibility_ms: limits.visibility_ms,
                    deadline_ms: now.saturating_add(i64::try_from(limits.wait_ms).unwrap_or(0)),
                    reply,
                });
            }
            Event::Pull(PullRequest::Settle {
                group,
                receipts,
                nack_delay_ms,
                reply,
            }) => {
                let lane = match self.pulled_lane(state, &group, now) {
                    Ok(lane) => lane,
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                };
                let mut settled = Vec::new();
                for receipt in receipts {
                    // Anything this node did not issue for this group settles nothing.
                    let Some(Receipt { offset, lease }) = self.receipt_key.verify(&group, &receipt)
                    else {
                        continue;
                    };
                    let outcome = match nack_delay_ms {
                        None => Ok(()),
                        Some(delay) => Err((
                            "nack".to_string(),
                            now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX)),
                        )),
                    };
                    if lane.decide(offset, Some(lease), outcome) {
                        settled.push(offset);
                    }
                }
                // Answered once the proposal carrying these outcomes commits.
                state.settling.wait(group, settled, reply);
            }
        }
    }

    /// One pass: load, expire leases, push, answer receives, propose outcomes.
    fn step(&self, state: &mut LoopState, now: i64, events: &mpsc::Sender<Event>) {
        let reads = self.reads();
        for lane in state.lanes.values_mut() {
            if lane.wants_more() {
                match reads.head(&lane.sub.topic) {
                    Ok(head) if head > lane.scanned() => {
                        let (messages, bytes) = lane.room();
                        match reads.pending_after_within(&lane.sub, lane.scanned(), messages, bytes)
                        {
                            Ok(scan) => {
                                lane.scanned_to(scan.through);
                                if scan.complete {
                                    lane.scanned_to(head);
                                }
                                lane.add_loaded(scan.messages);
                            }
                            Err(e) => tracing::warn!(error = %e, "reading messages failed"),
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "reading a topic head failed"),
                }
            }
            for offset in lane.expired(now) {
                let failed = lane.failed_before(offset).unwrap_or(0) + 1;
                let retry = lane.retry_at(now, failed, 0.0).min(now);
                lane.decide(offset, None, Err(("visibility timeout".into(), retry)));
            }
            if let Some(target) = lane.sub.push.clone() {
                let room = MAX_PUSHES.saturating_sub(state.pushes);
                for (offset, lease) in lane.hand_out(now, room, None, &mut state.token) {
                    state.pushes += 1;
                    let http = self.http.clone();
                    let policy = self.webhook_policy.clone();
                    let group = lane.sub.group.clone();
                    let target = target.clone();
                    let events = events.clone();
                    let refund_status =
                        self.refund_status.clone().filter(|_| group == REFUND_GROUP);
                    let last_attempt = lease.failed + 1 >= lane.sub.max_attempts;
                    let metrics = self.metrics.clone();
                    tokio::spawn(async move {
                        let started = std::time::Instant::now();
                        let mut result = crate::push::deliver(
                            &http,
                            &policy,
                            &group,
                            &target,
                            &lease.message,
                            lease.failed + 1,
                        )
                        .await;
                        let call_secs = started.elapsed().as_secs_f64();
                        if let (Err(failure), Some(lookup)) = (&result, refund_status) {
                            // Before giving up, and when the answer was lost, the provider says
                            // whether it made the refund: a made refund is never recorded failed.
                            if (failure.answer_lost() || last_attempt)
                                && lookup.ask(&http, &policy, &lease.message.key).await
                                    == ProviderRefundStatus::Refunded
                            {
                                tracing::info!(order_id = %lease.message.key, %failure, "the provider made the refund whose attempt failed; recorded refunded");
                                result = Ok(());
                            }
                        }
                        metrics.record_push(
                            &group,
                            call_secs,
                            result.is_ok(),
                            lease.message.deliver_at_ms,
                            now_ms(),
                        );
                        let result = result.map_err(|failure| failure.to_string());
                        let _ = events
                            .send(Event::Pushed {
                                group,
                                offset,
                                result,
                            })
                            .await;
                    });
                }
            }
            if lane.proposing < PROPOSALS_PER_GROUP {
                if let Some(sent) = lane.take_outcomes() {
                    lane.proposing += 1;
                    let batcher = self.batcher.clone();
                    let events = events.clone();
                    tokio::spawn(async move {
                        let command = Command::new(Action::RecordDeliveries(sent.clone()));
                        let result = match batcher.submit(command).await {
                            Ok(Ok(Applied::DeliveriesRecorded(done))) => Ok(done),
                            other => Err(format!("{other:?}")),
                        };
                        let _ = events.send(Event::Committed { sent, result }).await;
                    });
                }
            }
        }
        self.answer_receives(state, now);
    }

    fn answer_receives(&self, state: &mut LoopState, now: i64) {
        let parked = std::mem::take(&mut state.parked);
        for p in parked {
            if p.reply.is_closed() {
                continue;
            }
            let Some(lane) = state.lanes.get_mut(&p.group) else {
                let _ = p.reply.send(Err(ClusterError::UnknownGroup(format!(
                    "subscription {} not found",
                    p.group
                ))));
                continue;
            };
            let expires = now.saturating_add(i64::try_from(p.visibility_ms).unwrap_or(i64::MAX));
            let leased = if lane.sub.push.is_none() {
                lane.hand_out(now, p.max, Some(expires), &mut state.token)
            } else {
                Vec::new()
            };
            if leased.is_empty() && now < p.deadline_ms {
                state.parked.push(p);
                continue;
            }
            let messages = leased
                .into_iter()
                .map(|(offset, lease)| PulledMessage {
                    id: lease.message.id.clone(),
                    topic: lease.message.topic.clone(),
                    key: lease.message.key.clone(),
                    payload: lease.message.payload.clone(),
                    attempt: lease.failed + 1,
                    receipt: self.receipt_key.issue(&p.group, offset, lease.token),
                })
                .collect();
            let _ = p.reply.send(Ok(messages));
        }
    }
}

/// Refuses a group whose messages are not the caller's to lease or settle: a push group (its
/// webhook settles them) or a built-in group (only orderq settles them).
fn pulled_group(lane: &ConsumerLane) -> Result<(), ClusterError> {
    let group = &lane.sub.group;
    if lane.sub.push.is_some() || sm::order::is_built_in_group(group) {
        return Err(ClusterError::NotPullGroup(format!(
            "{group} is not a pull group; its deliveries are settled by orderq"
        )));
    }
    Ok(())
}

/// The loop's memory.
struct LoopState {
    /// One lane per group.
    lanes: HashMap<String, ConsumerLane>,
    /// Receives waiting for messages.
    parked: Vec<Parked>,
    /// Last lease token handed out (seeded per term so receipts of another term never match).
    token: u64,
    /// Retry jitter.
    jitter: Jitter,
    /// Pushes in flight.
    pushes: usize,
    /// When subscriptions were last re-read.
    refreshed_at: i64,
    /// When the refund group was last proposed.
    refund_proposed_at: i64,
    /// Pull `ack`/`nack` calls waiting for their outcomes to commit.
    settling: SettleWaiters,
}
