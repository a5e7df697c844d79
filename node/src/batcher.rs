//! The write batcher: group commit on our side of openraft.
//!
//! openraft 0.9 writes and syncs each `client_write` on its own, so one request per entry tops
//! out near one fsync per request. The batcher coalesces the requests waiting at a moment into one
//! [`CommandBatch`] (one entry, one fsync, one replication round) and answers each caller with
//! its own outcome.
//!
//! To ensure correctness:
//! - Each caller gets exactly the outcome at its command's position in the applied batch.
//! - `now_ms` is stamped once per batch on the proposing node; `apply` never reads a clock.
//! - At most `max_in_flight` batches are proposed at once; while they are in flight, new requests
//!   queue up and form the next batch, so batches grow with load and stay small when idle.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};
use sm::command::{Command, CommandBatch};
use sm::outcome::Outcome;
use sm::raft_types::{NodeId, Raft};
use tokio::sync::{mpsc, oneshot, Semaphore};

use api::ClusterError;

/// A command waiting to be proposed, with where to send its outcome.
struct Pending {
    /// The command.
    command: Command,
    /// The caller.
    reply: oneshot::Sender<Result<Outcome, ClusterError>>,
}

/// The handle callers submit through. Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    /// The queue of waiting commands.
    queue: mpsc::Sender<Pending>,
}

impl Batcher {
    /// Starts the batcher task proposing to `raft`: at most `max_batch` commands per entry and
    /// `max_in_flight` entries proposed at once.
    pub fn start(raft: Raft, max_batch: usize, max_in_flight: usize) -> Self {
        let (queue, pending) = mpsc::channel(max_batch.max(1) * max_in_flight.max(1) * 4);
        tokio::spawn(run(raft, pending, max_batch.max(1), max_in_flight.max(1)));
        Batcher { queue }
    }

    /// Proposes `command` and waits for its outcome.
    pub async fn submit(&self, command: Command) -> Result<Outcome, ClusterError> {
        let (reply, outcome) = oneshot::channel();
        self.queue
            .send(Pending { command, reply })
            .await
            .map_err(|_| ClusterError::Unavailable("node is shutting down".into()))?;
        outcome
            .await
            .map_err(|_| ClusterError::Unavailable("the proposal was dropped".into()))?
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn run(
    raft: Raft,
    mut pending: mpsc::Receiver<Pending>,
    max_batch: usize,
    max_in_flight: usize,
) {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = pending.recv().await else {
            return;
        };
        let mut waiting = vec![first];
        while waiting.len() < max_batch {
            match pending.try_recv() {
                Ok(next) => waiting.push(next),
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            propose(&raft, waiting).await;
            drop(slot);
        });
    }
}

async fn propose(raft: &Raft, waiting: Vec<Pending>) {
    let (commands, replies): (Vec<Command>, Vec<_>) =
        waiting.into_iter().map(|p| (p.command, p.reply)).unzip();
    let batch = CommandBatch {
        now_ms: now_ms(),
        commands,
    };
    match raft.client_write(batch).await {
        Ok(written) => {
            let mut outcomes = written.data.0.into_iter();
            for reply in replies {
                let outcome = outcomes.next().ok_or_else(|| {
                    ClusterError::Unavailable("batch answered fewer outcomes than commands".into())
                });
                let _ = reply.send(outcome);
            }
        }
        Err(e) => {
            let error = write_error(e);
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
