//! Whether this leader has heard from a quorum lately: openraft 0.9 has no leader lease, so a
//! leader cut off from its followers stays leader in its own eyes until it hears a higher term.
//!
//! To ensure correctness:
//! - A leader that has not had a quorum's acknowledgement within an election timeout is treated
//!   as cut off: its leader services (time wheel, consumer scheduler, housekeeping) stop, so it
//!   calls no webhook and no payment provider, and `/readyz` answers 503. By then the others may
//!   have elected a new leader, which does all of that instead.
//! - The time of the last quorum acknowledgement is taken from openraft's metrics when they are
//!   published (`millis_since_quorum_ack` at that moment) and aged with this node's monotonic
//!   clock, so metrics that stop changing (nothing is acknowledged any more) still age.
//! - A lone voter is its own quorum and is never cut off.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use openraft::{RaftMetrics, ServerState};
use sm::raft_types::{NodeId, PeerAddr};

/// The last quorum acknowledgement this node saw while leading.
#[derive(Debug)]
pub struct QuorumContact {
    /// How long a leader may go without a quorum's acknowledgement: the election timeout.
    limit: Duration,
    /// When a quorum last acknowledged this leader, while it leads a group of more than one voter.
    last_ack: Mutex<Option<Instant>>,
}

impl QuorumContact {
    /// Contact that is lost after `limit` without an acknowledgement.
    pub fn new(limit: Duration) -> Self {
        QuorumContact {
            limit,
            last_ack: Mutex::new(None),
        }
    }

    /// Takes in newly published metrics.
    pub fn observe(&self, m: &RaftMetrics<NodeId, PeerAddr>) {
        let now = Instant::now();
        let acked = match m.state {
            ServerState::Leader if !is_lone_voter(m) => m
                .millis_since_quorum_ack
                .and_then(|ms| now.checked_sub(Duration::from_millis(ms))),
            _ => None,
        };
        *self.lock() = acked;
    }

    /// Whether `m`, a leader's metrics, belong to a leader that a quorum heard from within the
    /// limit (always true for a lone voter, which is its own quorum).
    pub fn in_contact(&self, m: &RaftMetrics<NodeId, PeerAddr>) -> bool {
        if m.state != ServerState::Leader || is_lone_voter(m) {
            return true;
        }
        self.lock()
            .is_some_and(|acked| acked.elapsed() <= self.limit)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.last_ack
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether this node is the only voter.
fn is_lone_voter(m: &RaftMetrics<NodeId, PeerAddr>) -> bool {
    let mut voters = m.membership_config.membership().voter_ids();
    voters.next() == Some(m.id) && voters.next().is_none()
}
