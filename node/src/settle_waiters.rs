//! Pull consumers' `ack` and `nack` calls waiting for their outcomes to commit.
//!
//! The scheduler decides an ack in memory and proposes it through Raft with the group's other
//! outcomes. Answering the consumer at once would tell it "acknowledged" for an ack that a leader
//! change can still lose (the message then comes back). So the answer waits until the proposal
//! that carries the call's outcomes has committed, and says so only then.
//!
//! To ensure correctness:
//! - A call's outcomes are decided in one scheduler step, so they all travel in the same
//!   proposal: the call is answered when that proposal's commit (or failure) is reported.
//! - A proposal that did not commit answers 503 `no_leader`: those messages are delivered
//!   again, and the consumer knows its call did not take.
//! - A call whose group is removed before its outcomes were proposed is answered at once, so no
//!   caller waits on outcomes that will never be proposed.

use api::ClusterError;
use sm::command::RecordDeliveries;
use tokio::sync::oneshot;

/// One `ack`/`nack` call waiting for its outcomes to commit.
struct Settling {
    /// The group.
    group: String,
    /// The offsets the call decided (each has its outcome in exactly one proposal).
    offsets: Vec<u64>,
    /// The caller, answered with how many receipts were settled.
    reply: oneshot::Sender<Result<u64, ClusterError>>,
}

/// Every call waiting, in arrival order.
#[derive(Default)]
pub struct SettleWaiters {
    waiting: Vec<Settling>,
}

impl SettleWaiters {
    /// Waits for the outcomes of `offsets` in `group` to commit before answering `reply`; a call
    /// that decided nothing is answered at once.
    pub fn wait(
        &mut self,
        group: String,
        offsets: Vec<u64>,
        reply: oneshot::Sender<Result<u64, ClusterError>>,
    ) {
        if offsets.is_empty() {
            let _ = reply.send(Ok(0));
            return;
        }
        self.waiting.push(Settling {
            group,
            offsets,
            reply,
        });
    }

    /// Answers the calls whose outcomes travelled in `sent`: settled if it committed, 503 if not.
    pub fn proposal_finished(&mut self, sent: &RecordDeliveries, committed: bool) {
        let carried = |offset: u64| {
            sent.acks.contains(&offset) || sent.failures.iter().any(|f| f.offset == offset)
        };
        let (answered, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| w.group == sent.group && w.offsets.first().is_some_and(|&o| carried(o)));
        self.waiting = still;
        for waiter in answered {
            let answer = if committed {
                Ok(waiter.offsets.len() as u64)
            } else {
                Err(ClusterError::NoLeader(
                    "the outcome did not commit (leader change?); the messages will be delivered \
                     again"
                        .into(),
                ))
            };
            let _ = waiter.reply.send(answer);
        }
    }

    /// Answers the calls of groups `kept` rejects: their subscription was removed.
    pub fn drop_groups(&mut self, kept: impl Fn(&str) -> bool) {
        let (still, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| kept(&w.group));
        self.waiting = still;
        for waiter in gone {
            let _ = waiter.reply.send(Err(ClusterError::UnknownGroup(format!(
                "subscription {} was removed",
                waiter.group
            ))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sm::command::FailedDelivery;

    fn sent(group: &str, acks: Vec<u64>, failed: Vec<u64>) -> RecordDeliveries {
        RecordDeliveries {
            group: group.into(),
            acks,
            failures: failed
                .into_iter()
                .map(|offset| FailedDelivery {
                    offset,
                    error: "nack".into(),
                    retry_at_ms: 0,
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn a_call_is_answered_by_the_proposal_that_carried_its_outcomes() {
        let mut waiters = SettleWaiters::default();
        let (ack, acked) = oneshot::channel();
        let (nack, nacked) = oneshot::channel();
        let (other, other_answer) = oneshot::channel();
        waiters.wait("g".into(), vec![3, 4], ack);
        waiters.wait("g".into(), vec![7], nack);
        waiters.wait("h".into(), vec![3], other);

        waiters.proposal_finished(&sent("g", vec![3, 4], vec![]), true);
        assert_eq!(acked.await.unwrap().unwrap(), 2);

        waiters.proposal_finished(&sent("g", vec![], vec![7]), false);
        assert!(matches!(
            nacked.await.unwrap(),
            Err(ClusterError::NoLeader(_))
        ));

        waiters.drop_groups(|group| group != "h");
        assert!(matches!(
            other_answer.await.unwrap(),
            Err(ClusterError::UnknownGroup(_))
        ));
    }

    #[tokio::test]
    async fn a_call_that_decided_nothing_is_answered_at_once() {
        let mut waiters = SettleWaiters::default();
        let (reply, answer) = oneshot::channel();
        waiters.wait("g".into(), vec![], reply);
        assert_eq!(answer.await.unwrap().unwrap(), 0);
    }
}
