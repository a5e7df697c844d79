//! Admission control: a bounded budget of writes per lane, refused at once when spent.
//!
//! Without a bound, a flood of requests queues in front of Raft and every caller's latency grows
//! without limit. Each write takes a permit from its lane's budget before it is queued and gives
//! it back when its outcome is answered, so a lane never holds more than its depth of queued and
//! in-flight writes; when the budget is spent the caller hears 429 `overloaded` with
//! `Retry-After` immediately.
//!
//! Flash-sale purchases have their own lane ([`Lane::Seckill`]): a sale can spend its own budget
//! but never the one normal writes use, so ordinary order creation keeps working during a flood
//! (the usual answer, a separate cluster for flash sales, costs a second deployment).
//!
//! The leader's own proposals (timer firings, delivery outcomes, retention and group-removal
//! steps) have a lane of their own too ([`Lane::Leader`]), taken first into every batch: a client
//! flood can neither spend their budget nor make them wait behind it, so unpaid orders close on
//! time and acknowledged deliveries are recorded while clients are being turned away.
//!
//! To ensure correctness:
//! - A permit is held from before the command is queued until its caller is answered (or gives
//!   up), so the depth counts queued plus in-flight writes, and the lane's queue can never be
//!   full when a permit was granted.
//! - Refusing admits nothing: an overloaded request was never proposed, so a retry with the same
//!   `Idempotency-Key` is safe.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use api::ClusterError;
use sm::command::{Action, Command};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Which budget a write spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Everything but flash-sale purchases.
    Normal,
    /// Flash-sale purchases (`POST /v1/seckill/{sku}`).
    Seckill,
    /// Proposals of the leader's own services, which no client request makes.
    Leader,
}

/// How many of the leader services' proposals may be queued or in flight at once.
pub const LEADER_LANE_DEPTH: usize = 1024;

impl Lane {
    /// Every lane, for metrics.
    pub const ALL: [Lane; 3] = [Lane::Normal, Lane::Seckill, Lane::Leader];

    /// The lane of `command`.
    pub fn of(command: &Command) -> Lane {
        match command.action {
            Some(Action::Seckill(_)) => Lane::Seckill,
            Some(
                Action::FireTimers(_)
                | Action::RecordDeliveries(_)
                | Action::TrimMessages(_)
                | Action::RemoveSubscription(_),
            ) => Lane::Leader,
            _ => Lane::Normal,
        }
    }

    /// The lane's metric label.
    pub fn label(self) -> &'static str {
        match self {
            Lane::Normal => "normal",
            Lane::Seckill => "seckill",
            Lane::Leader => "leader",
        }
    }
}

/// One lane's budget.
#[derive(Debug)]
struct Budget {
    /// Free permits; a write holds one while queued or in flight.
    permits: Arc<Semaphore>,
    /// The configured depth.
    depth: usize,
    /// Writes refused because the budget was spent.
    refused: AtomicU64,
}

impl Budget {
    fn new(depth: usize) -> Self {
        Budget {
            permits: Arc::new(Semaphore::new(depth)),
            depth,
            refused: AtomicU64::new(0),
        }
    }
}

/// The admission budgets of one node.
#[derive(Debug)]
pub struct Admission {
    /// The normal lane.
    normal: Budget,
    /// The flash-sale lane.
    seckill: Budget,
    /// The leader services' lane.
    leader: Budget,
}

impl Admission {
    /// Budgets of `normal_depth` and `seckill_depth` queued-or-in-flight writes.
    pub fn new(normal_depth: usize, seckill_depth: usize) -> Self {
        Admission {
            normal: Budget::new(normal_depth.max(1)),
            seckill: Budget::new(seckill_depth.max(1)),
            leader: Budget::new(LEADER_LANE_DEPTH),
        }
    }

    fn budget(&self, lane: Lane) -> &Budget {
        match lane {
            Lane::Normal => &self.normal,
            Lane::Seckill => &self.seckill,
            Lane::Leader => &self.leader,
        }
    }

    /// A permit of `lane`, or [`ClusterError::Overloaded`] at once when the budget is spent.
    pub fn admit(&self, lane: Lane) -> Result<OwnedSemaphorePermit, ClusterError> {
        let budget = self.budget(lane);
        budget.permits.clone().try_acquire_owned().map_err(|_| {
            budget.refused.fetch_add(1, Ordering::Relaxed);
            ClusterError::Overloaded(format!(
                "{} writes queued or in flight on this node; retry shortly",
                budget.depth
            ))
        })
    }

    /// The configured depth of `lane`.
    pub fn depth(&self, lane: Lane) -> usize {
        self.budget(lane).depth
    }

    /// Writes of `lane` queued or in flight now.
    pub fn in_use(&self, lane: Lane) -> usize {
        let budget = self.budget(lane);
        budget
            .depth
            .saturating_sub(budget.permits.available_permits())
    }

    /// Writes of `lane` answered 429 overloaded since the node started.
    pub fn refused(&self, lane: Lane) -> u64 {
        self.budget(lane).refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sm::command::{CancelOrder, FireTimers, Seckill};

    #[test]
    fn a_spent_lane_refuses_at_once_and_leaves_the_other_alone() {
        let admission = Admission::new(2, 1);
        let held: Vec<_> = (0..2)
            .map(|_| admission.admit(Lane::Normal).unwrap())
            .collect();
        assert!(matches!(
            admission.admit(Lane::Normal),
            Err(ClusterError::Overloaded(_))
        ));
        let sale = admission.admit(Lane::Seckill).unwrap();
        assert!(admission.admit(Lane::Seckill).is_err());
        assert_eq!(admission.in_use(Lane::Normal), 2);
        drop(held);
        drop(sale);
        assert_eq!(admission.in_use(Lane::Normal), 0);
        assert!(admission.admit(Lane::Normal).is_ok());
        assert_eq!(admission.refused(Lane::Normal), 1);
    }

    #[test]
    fn purchases_take_the_seckill_lane_and_leader_proposals_their_own() {
        let buy = Command::new(Action::Seckill(Seckill::default()));
        let cancel = Command::new(Action::CancelOrder(CancelOrder::default()));
        let fire = Command::new(Action::FireTimers(FireTimers::default()));
        assert_eq!(Lane::of(&buy), Lane::Seckill);
        assert_eq!(Lane::of(&cancel), Lane::Normal);
        assert_eq!(Lane::of(&fire), Lane::Leader);
    }
}
