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
//! - On a follower, a batch goes to the leader in one peer request ([`WriteForwarder`]) instead
//!   of one HTTP request per write; the leader batches forwarded commands with its own.
//! - An entry holds at most `max_batch` commands and `max_batch_bytes` bytes of them, so no
//!   entry is too large to replicate within the append timeout; a command larger than a whole
//!   entry is refused before it is queued.
//! - Every request is admitted by [`Admission`] before it is queued, so each lane's queue is
//!   bounded and a full one answers 429 at once. Each batch takes normal writes first up to half
//!   of `max_batch`, then flash-sale purchases, then more normal writes: a flood of purchases
//!   (many of one hot SKU in one entry, decided in order by `apply`) cannot starve normal writes,
//!   nor can they starve it.

use std::sync::Arc;
use std::time::Instant;

use openraft::error::{ClientWriteError, RaftError};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use sm::command::{Command, CommandBatch};
use sm::outcome::Outcome;
use sm::raft_types::{NodeId, PeerAddr, Raft};
use tokio::sync::{mpsc, oneshot, Semaphore};

use api::ClusterError;

use crate::admission::{Admission, Lane};
use crate::clock::now_ms;
use crate::clock_watch::ClockWatch;
use crate::write_forwarder::WriteForwarder;

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
    /// Whether this node's clock is off from the others': then it stamps no batch.
    clock: Arc<ClockWatch>,
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

/// The leader this node knows, when it is another node: its id and addresses.
fn other_leader(raft: &Raft) -> Option<(NodeId, PeerAddr)> {
    let metrics = raft.metrics();
    let m = metrics.borrow();
    let leader = m.current_leader.filter(|leader| *leader != m.id)?;
    let node = m.membership_config.membership().get_node(&leader)?.clone();
    Some((leader, node))
}

async fn propose(proposer: &Proposer, waiting: Vec<Pending>) {
    if let Some((leader_id, leader)) = other_leader(&proposer.raft) {
        forward(proposer, leader_id, leader, waiting).await;
        return;
    }
    if proposer.clock.is_skewed() {
        // Its clock would become every replica's time for this entry.
        for pending in waiting {
            let _ = pending.reply.send(Err(ClusterError::NoLeader(
                "this node's clock is off from the other voters'; it does not lead".into(),
            )));
        }
        return;
    }
    let (commands, replies): (Vec<Command>, Vec<_>) =
        waiting.into_iter().map(|p| (p.command, p.reply)).unzip();
    let batch = CommandBatch {
        now_ms: now_ms(),
        commands,
    };
    let proposed = Instant::now();
    match proposer.raft.client_write(batch).await {
        Ok(written) => {
            proposer
                .commit_latency
                .observe(proposed.elapsed().as_secs_f64());
            let mut outcomes = written.data.0.into_iter();
            for reply in replies {
                let outcome = outcomes.next().ok_or_else(|| {
                    ClusterError::Unavailable("batch answered fewer outcomes than commands".into())
                });
                let _ = reply.send(outcome);
            }
        }
        Err(e) => {
            // Leadership moved between the check and the proposal: the callers are told where
            // the leader is (the API forwards the request there).
            let error = write_error(e);
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

/// Sends the forwardable commands of a batch to the leader in one request and relays each
/// answer; commands that were forwarded here already are answered `ForwardTo` instead.
async fn forward(proposer: &Proposer, leader_id: NodeId, leader: PeerAddr, waiting: Vec<Pending>) {
    let (forwardable, local): (Vec<Pending>, Vec<Pending>) =
        waiting.into_iter().partition(|p| p.forwardable);
    for pending in local {
        let _ = pending.reply.send(Err(ClusterError::ForwardTo {
            leader_id,
            api_addr: leader.api_addr.clone(),
        }));
    }
    if forwardable.is_empty() {
        return;
    }
    let (commands, replies): (Vec<Command>, Vec<_>) = forwardable
        .into_iter()
        .map(|p| (p.command, p.reply))
        .unzip();
    match proposer
        .forwarder
        .forward(&leader.raft_addr, commands)
        .await
    {
        Ok(answers) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
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
