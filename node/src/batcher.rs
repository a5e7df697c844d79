//! The write batcher: group commit on our side of openraft.
//!
//! openraft 0.9 writes and syncs each `client_write` on its own, so one request per entry tops
//! out near one fsync per request. The batcher coalesces the requests waiting at a moment into one
//! [`CommandBatch`] (one entry, one fsync, one replication round) and answers each caller with
//! its own outcome.
//!
//! To ensure correctness:
//! - Each caller gets exactly the outcome at its command's position in the applied batch.
//! - `now_ms` is stamped once per batch on the proposing node; `apply` never reads a clock. A
//!   node whose clock is off from the other voters' ([`ClockWatch`]) proposes nothing.
//! - At most `max_in_flight` batches are proposed at once; while they are in flight, new requests
//!   queue up and form the next batch, so batches grow with load and stay small when idle.
//!   A proposal whose entry openraft stops tracking still ends, so it holds no slot for good: a
//!   snapshot from the leader installed while a batch is in flight answers its commands
//!   `Unavailable` (outcome unknown), because openraft never answers an entry such a snapshot
//!   replaced.
//! - On a follower, a batch goes to the leader in one peer request ([`WriteForwarder`]) instead
//!   of one HTTP request per write; the leader batches forwarded commands with its own. This is
//!   the only way a write reaches the leader: when the leader moved meanwhile (a `ForwardTo`
//!   answer, given only for a command that was not committed), the batcher sends the command on
//!   to the leader named, a bounded number of times (see `propose`).
//! - An entry holds at most `max_batch` commands and `max_batch_bytes` bytes of them, so no
//!   entry is too large to replicate within the append timeout; a command larger than a whole
//!   entry is refused before it is queued.
//! - Every request is admitted by [`Admission`] before it is queued, so each lane's queue is
//!   bounded and a full one answers 429 at once. Each batch takes normal writes first up to half
//!   of `max_batch`, then flash-sale purchases, then more normal writes: a flood of purchases
//!   (many of one hot SKU in one entry, decided in order by `apply`) cannot starve normal writes,
//!   nor can they starve it.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use sm::command::{Command, CommandBatch};
use sm::outcome::Outcome;
use sm::raft_types::{NodeId, PeerAddr, Raft};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::Instant;

use api::ClusterError;

use crate::admission::{Admission, Lane};
use crate::clock_watch::ClockWatch;
use crate::write_forwarder::{WriteForwarder, FORWARD_TIMEOUT};

/// Most tries to get a batch proposed: the first, and resends toward a leader named by a
/// `ForwardTo` answer (the leader moved while the batch was on its way).
const ROUTE_TRIES: usize = 3;

/// Pause before a resend toward a newly named leader, which may still be taking over.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// A command waiting to be proposed, with where to send its outcome.
struct Pending {
    /// The command.
    command: Command,
    /// The caller.
    reply: oneshot::Sender<Result<Outcome, ClusterError>>,
    /// Whether a follower may forward it to the leader (false for commands that were forwarded
    /// here already, so none travels twice).
    forwardable: bool,
    /// The command's encoded size, counted against the entry's byte budget.
    bytes: usize,
}

/// The handle callers submit through. Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    /// The queue of waiting normal writes.
    normal: mpsc::Sender<Pending>,
    /// The queue of waiting flash-sale purchases.
    seckill: mpsc::Sender<Pending>,
    /// The queue of the leader services' own proposals.
    leader: mpsc::Sender<Pending>,
    /// The per-lane budgets that bound both queues.
    admission: Arc<Admission>,
    /// Most bytes of commands per entry; a larger command is refused.
    max_batch_bytes: usize,
    /// Seconds from proposing an entry to its being applied here (leader only), shared with the
    /// proposer.
    commit_latency: Histogram,
}

/// Where the batcher proposes: Raft here, or the leader through the forwarder when this node
/// follows.
#[derive(Clone)]
struct Proposer {
    /// This node's Raft.
    raft: Raft,
    /// Sends batches to the leader when this node follows.
    forwarder: WriteForwarder,
    /// Stamps each batch, and refuses to while this node's clock is not confirmed by the others.
    clock: Arc<ClockWatch>,
    /// Changes when this node installs a snapshot from a leader, which may drop a proposed
    /// entry without openraft ever answering for it.
    installs: watch::Receiver<u64>,
    /// Where each proposal's time to commit and apply is observed.
    commit_latency: Histogram,
}

/// How the batcher forms and proposes batches.
#[derive(Debug, Clone, Copy)]
pub struct BatcherConfig {
    /// Most commands per entry.
    pub max_batch: usize,
    /// Most bytes of commands per entry (at least one command goes in each).
    pub max_batch_bytes: usize,
    /// Most entries proposed at once.
    pub max_in_flight: usize,
    /// Most normal writes queued or in flight.
    pub queue_depth: usize,
    /// Most flash-sale purchases queued or in flight.
    pub seckill_queue_depth: usize,
}

impl Batcher {
    /// Starts the batcher task proposing to `raft`, or through `forwarder` to the leader while
    /// this node follows.
    pub fn start(
        raft: Raft,
        forwarder: WriteForwarder,
        clock: Arc<ClockWatch>,
        installs: watch::Receiver<u64>,
        config: BatcherConfig,
    ) -> Self {
        let admission = Arc::new(Admission::new(
            config.queue_depth,
            config.seckill_queue_depth,
        ));
        // A permit is taken before queueing, so a lane's channel never holds more than its depth.
        let (normal, normal_rx) = mpsc::channel(admission.depth(Lane::Normal));
        let (seckill, seckill_rx) = mpsc::channel(admission.depth(Lane::Seckill));
        let (leader, leader_rx) = mpsc::channel(admission.depth(Lane::Leader));
        // 100 µs to about 6.5 s.
        let commit_latency = Histogram::new(exponential_buckets(0.0001, 2.0, 17));
        tokio::spawn(run(
            Proposer {
                raft,
                forwarder,
                clock,
                installs,
                commit_latency: commit_latency.clone(),
            },
            Lanes {
                normal: normal_rx,
                seckill: seckill_rx,
                leader: leader_rx,
                held: None,
            },
            Limits {
                commands: config.max_batch.max(1),
                bytes: config.max_batch_bytes,
            },
            config.max_in_flight.max(1),
        ));
        Batcher {
            normal,
            seckill,
            leader,
            admission,
            max_batch_bytes: config.max_batch_bytes,
            commit_latency,
        }
    }

    /// Registers `orderq_commit_latency_seconds` in `registry` (the `orderq` registry).
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "commit_latency_seconds",
            "Seconds from proposing an entry to its being committed and applied, on the leader",
            self.commit_latency.clone(),
        );
    }

    /// Proposes `command` and waits for its outcome; [`ClusterError::Overloaded`] at once when
    /// its lane's budget is spent. On a follower the command is forwarded to the leader.
    pub async fn submit(&self, command: Command) -> Result<Outcome, ClusterError> {
        self.enqueue(command, true).await
    }

    /// Like [`Batcher::submit`] for a command a follower forwarded here: never forwarded again;
    /// if this node no longer leads, the answer is `ForwardTo`.
    pub async fn submit_forwarded(&self, command: Command) -> Result<Outcome, ClusterError> {
        self.enqueue(command, false).await
    }

    async fn enqueue(&self, command: Command, forwardable: bool) -> Result<Outcome, ClusterError> {
        let bytes = prost::Message::encoded_len(&command);
        if bytes > self.max_batch_bytes {
            return Err(ClusterError::TooLarge(format!(
                "the command takes {bytes} bytes; an entry holds at most {} (max_batch_bytes)",
                self.max_batch_bytes
            )));
        }
        let lane = Lane::of(&command);
        let _permit = self.admission.admit(lane)?;
        let queue = match lane {
            Lane::Normal => &self.normal,
            Lane::Seckill => &self.seckill,
            Lane::Leader => &self.leader,
        };
        let (reply, outcome) = oneshot::channel();
        queue
            .try_send(Pending {
                command,
                reply,
                forwardable,
                bytes,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    ClusterError::Overloaded("the write queue is full".into())
                }
                mpsc::error::TrySendError::Closed(_) => {
                    ClusterError::Unavailable("node is shutting down".into())
                }
            })?;
        outcome
            .await
            .map_err(|_| ClusterError::Unavailable("the proposal was dropped".into()))?
    }

    /// The admission budgets, for metrics.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }
}

/// How large one entry may grow.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Most commands.
    commands: usize,
    /// Most bytes of encoded commands (a single larger command was refused at submission).
    bytes: usize,
}

/// The receiving ends of both lanes.
struct Lanes {
    /// Normal writes.
    normal: mpsc::Receiver<Pending>,
    /// Flash-sale purchases.
    seckill: mpsc::Receiver<Pending>,
    /// The leader services' proposals.
    leader: mpsc::Receiver<Pending>,
    /// A command taken from a lane that did not fit in the last batch's bytes: it starts the
    /// next batch.
    held: Option<Pending>,
}

impl Lanes {
    /// Waits for the first waiting command (one held over first, then the leader's, then normal
    /// writes); `None` once every lane is closed.
    async fn first(&mut self) -> Option<Pending> {
        if let Some(held) = self.held.take() {
            return Some(held);
        }
        tokio::select! {
            biased;
            Some(p) = self.leader.recv() => Some(p),
            Some(p) = self.normal.recv() => Some(p),
            Some(p) = self.seckill.recv() => Some(p),
            else => None,
        }
    }

    /// Fills `batch` from what is waiting now: the leader's own proposals first, then normal
    /// writes up to half of the command limit, then purchases, then normal writes again, so
    /// neither client lane starves the other; stops at the first command that would pass the
    /// byte limit and holds it for the next batch.
    fn fill(&mut self, batch: &mut Vec<Pending>, limits: Limits) {
        let mut bytes: usize = batch.iter().map(|p| p.bytes).sum();
        for (lane, upto) in [
            (Lane::Leader, limits.commands),
            (Lane::Normal, limits.commands.div_ceil(2)),
            (Lane::Seckill, limits.commands),
            (Lane::Normal, limits.commands),
        ] {
            while batch.len() < upto {
                let queue = match lane {
                    Lane::Normal => &mut self.normal,
                    Lane::Seckill => &mut self.seckill,
                    Lane::Leader => &mut self.leader,
                };
                let Ok(next) = queue.try_recv() else {
                    break;
                };
                if bytes + next.bytes > limits.bytes {
                    self.held = Some(next);
                    return;
                }
                bytes += next.bytes;
                batch.push(next);
            }
        }
    }
}

async fn run(proposer: Proposer, mut lanes: Lanes, limits: Limits, max_in_flight: usize) {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = lanes.first().await else {
            return;
        };
        let mut waiting = vec![first];
        lanes.fill(&mut waiting, limits);
        let proposer = proposer.clone();
        tokio::spawn(async move {
            propose(&proposer, waiting).await;
            drop(slot);
        });
    }
}

/// Where a batch goes: this node's Raft, or the leader `NodeId` at `PeerAddr`.
enum Route {
    /// This node proposes it (it leads, or knows no other leader: then Raft answers why not).
    Here,
    /// Another node leads: the batch is forwarded to it.
    Leader(NodeId, PeerAddr),
}

/// The route to the leader named by `hint` (the last `ForwardTo` answer, newer than this node's
/// own view) or else to the one this node knows.
fn route(raft: &Raft, hint: Option<NodeId>) -> Route {
    let metrics = raft.metrics();
    let m = metrics.borrow();
    match hint.or(m.current_leader) {
        Some(leader) if leader != m.id => {
            match m.membership_config.membership().get_node(&leader) {
                Some(node) => Route::Leader(leader, node.clone()),
                None => Route::Here,
            }
        }
        _ => Route::Here,
    }
}

/// Commands that were not committed because the node they reached (this one or the leader they
/// were forwarded to) named another leader: they may go there.
struct Redirected {
    /// The leader named.
    leader_id: NodeId,
    /// Its API address, for the `ForwardTo` answered if they go no further.
    api_addr: String,
    /// The commands, each still waiting for its answer.
    waiting: Vec<Pending>,
}

impl Redirected {
    /// Adds `pending`, redirected by `ForwardTo { leader_id, api_addr }`.
    fn push(redirected: &mut Option<Self>, pending: Pending, leader_id: NodeId, api_addr: String) {
        redirected
            .get_or_insert_with(|| Redirected {
                leader_id,
                api_addr,
                waiting: Vec::new(),
            })
            .waiting
            .push(pending);
    }
}

/// Proposes a batch here or forwards it to the leader, and goes after the leader when it moved.
///
/// To ensure correctness: a command is resent only after a `ForwardTo` answer, which openraft
/// gives for a write it never appended or whose entry it truncated, so none is committed twice;
/// each try proposes it at most once. At most [`ROUTE_TRIES`] tries within [`FORWARD_TIMEOUT`],
/// after which the last `ForwardTo` is the answer; any other answer, a lost one included
/// (`Unavailable`), is final.
async fn propose(proposer: &Proposer, mut waiting: Vec<Pending>) {
    let deadline = Instant::now() + FORWARD_TIMEOUT;
    let mut hint = None;
    for tries_left in (0..ROUTE_TRIES).rev() {
        let redirected = match route(&proposer.raft, hint) {
            Route::Here => propose_here(proposer, waiting).await,
            Route::Leader(leader_id, leader) => {
                forward(proposer, leader_id, leader, waiting, deadline).await
            }
        };
        let Some(redirected) = redirected else {
            return;
        };
        if tries_left == 0 || Instant::now() + RETRY_PAUSE >= deadline {
            for pending in redirected.waiting {
                let _ = pending.reply.send(Err(ClusterError::ForwardTo {
                    leader_id: redirected.leader_id,
                    api_addr: redirected.api_addr.clone(),
                }));
            }
            return;
        }
        tracing::info!(
            leader_id = redirected.leader_id,
            commands = redirected.waiting.len(),
            "the leader moved while a batch was on its way; sending it on"
        );
        // The new leader may still be taking over.
        tokio::time::sleep(RETRY_PAUSE).await;
        hint = Some(redirected.leader_id);
        waiting = redirected.waiting;
    }
}

/// Proposes a batch to this node's Raft and answers each command; answers `Some` with the
/// forwardable commands when Raft names another leader.
async fn propose_here(proposer: &Proposer, waiting: Vec<Pending>) -> Option<Redirected> {
    let Some(now_ms) = proposer.clock.stamp() else {
        // Its clock would become every replica's time for this entry, and (the batch clock
        // never goes back) for every entry after it.
        for pending in waiting {
            let _ = pending.reply.send(Err(ClusterError::NoLeader(
                "this node's clock is not confirmed by the other voters' (off, stepped, or not \
                 read yet); it does not lead"
                    .into(),
            )));
        }
        return None;
    };
    let commands = waiting.iter().map(|p| p.command.clone()).collect();
    let batch = CommandBatch { now_ms, commands };
    let proposed = Instant::now();
    let mut installs = proposer.installs.clone();
    installs.mark_unchanged();
    let written = tokio::select! {
        // An answer that is there wins over an install seen at the same moment.
        biased;
        written = proposer.raft.client_write(batch) => written,
        () = snapshot_installed(&mut installs) => {
            tracing::warn!(
                commands = waiting.len(),
                "a snapshot from the leader was installed while a batch proposed here was in \
                 flight: its outcome is unknown"
            );
            for pending in waiting {
                // The API says "outcome unknown, retry with the same Idempotency-Key" first.
                let _ = pending.reply.send(Err(ClusterError::Unavailable(
                    "this node was caught up by a snapshot while the write was in flight".into(),
                )));
            }
            return None;
        }
    };
    match written {
        Ok(written) => {
            proposer
                .commit_latency
                .observe(proposed.elapsed().as_secs_f64());
            let mut outcomes = written.data.0.into_iter();
            for pending in waiting {
                let outcome = outcomes.next().ok_or_else(|| {
                    ClusterError::Unavailable("batch answered fewer outcomes than commands".into())
                });
                let _ = pending.reply.send(outcome);
            }
            None
        }
        Err(e) => {
            // Leadership moved between the check and the proposal: nothing was committed;
            // forwardable commands follow the leader, the others tell their follower where it is.
            let error = write_error(e);
            let mut redirected = None;
            for pending in waiting {
                match &error {
                    ClusterError::ForwardTo {
                        leader_id,
                        api_addr,
                    } if pending.forwardable => {
                        Redirected::push(&mut redirected, pending, *leader_id, api_addr.clone())
                    }
                    _ => {
                        let _ = pending.reply.send(Err(error.clone()));
                    }
                }
            }
            redirected
        }
    }
}

/// Resolves when this node installs a snapshot from a leader; never, if it cannot learn of one.
///
/// openraft 0.9 keeps the answer channel of a proposed entry until the entry is applied or
/// truncated. A snapshot that covers the entry purges it without either (the node led, was cut
/// off with the entry in flight, and the new leader had purged past it by the time the link
/// came back), so the channel is never answered; waiting for it alone held the batcher's
/// in-flight slot, and so every later write on this node, forever.
async fn snapshot_installed(installs: &mut watch::Receiver<u64>) {
    if installs.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Sends the forwardable commands of a batch to the leader in one request and relays each
/// answer, except `ForwardTo`: those commands are answered `Some` to be sent on. Commands that
/// were forwarded here already are answered `ForwardTo` at once (their follower sends them on).
async fn forward(
    proposer: &Proposer,
    leader_id: NodeId,
    leader: PeerAddr,
    waiting: Vec<Pending>,
    deadline: Instant,
) -> Option<Redirected> {
    let (forwardable, local): (Vec<Pending>, Vec<Pending>) =
        waiting.into_iter().partition(|p| p.forwardable);
    for pending in local {
        let _ = pending.reply.send(Err(ClusterError::ForwardTo {
            leader_id,
            api_addr: leader.api_addr.clone(),
        }));
    }
    if forwardable.is_empty() {
        return None;
    }
    let commands = forwardable.iter().map(|p| p.command.clone()).collect();
    match proposer
        .forwarder
        .forward(&leader.raft_addr, commands, deadline)
        .await
    {
        Ok(answers) => {
            let mut redirected = None;
            for (pending, answer) in forwardable.into_iter().zip(answers) {
                match answer {
                    Err(ClusterError::ForwardTo {
                        leader_id,
                        api_addr,
                    }) => Redirected::push(&mut redirected, pending, leader_id, api_addr),
                    answer => {
                        let _ = pending.reply.send(answer);
                    }
                }
            }
            redirected
        }
        Err(error) => {
            for pending in forwardable {
                let _ = pending.reply.send(Err(error.clone()));
            }
            None
        }
    }
}

/// Maps openraft's write error to what the API acts on.
pub fn write_error(
    e: RaftError<NodeId, ClientWriteError<NodeId, sm::raft_types::PeerAddr>>,
) -> ClusterError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            match (f.leader_id, f.leader_node) {
                (Some(leader_id), Some(node)) => ClusterError::ForwardTo {
                    leader_id,
                    api_addr: node.api_addr,
                },
                _ => ClusterError::NoLeader("no leader known yet".into()),
            }
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ClusterError::Unavailable(e.to_string())
        }
        RaftError::Fatal(e) => ClusterError::Unavailable(e.to_string()),
    }
}
