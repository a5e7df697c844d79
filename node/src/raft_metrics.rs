//! Gauges of this node's Raft state, read from openraft's metrics at scrape time: term, leader,
//! log, applied and snapshot indexes, replication lag per follower (on the leader), clock offsets
//! to the other voters, quorum contact, and the write batcher's admission budgets.

use std::fmt;
use std::sync::Arc;

use api::metrics::{counter_family, gauge, gauge_family};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use sm::raft_types::Raft;
use sm::StateReader;

use crate::admission::Lane;
use crate::batcher::Batcher;
use crate::clock_watch::ClockWatch;
use crate::quorum_contact::QuorumContact;

/// Label naming another member.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    /// The follower's node id.
    node: u64,
}

/// Label naming a voter whose clock was measured.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    /// The voter's node id.
    peer: u64,
}

/// Label naming an admission lane.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneLabel {
    /// `normal`, `seckill` or `leader`.
    lane: &'static str,
}

/// The collector of a node's Raft state.
pub struct RaftMetrics {
    /// The Raft handle whose metrics are read.
    pub raft: Raft,
    /// The write batcher, for its admission budgets.
    pub batcher: Batcher,
    /// This node's applied state, for the sold-out set.
    pub reader: StateReader,
    /// Clock offsets to the other voters.
    pub clock: Arc<ClockWatch>,
    /// Whether this leader hears from a quorum.
    pub quorum: Arc<QuorumContact>,
}

impl fmt::Debug for RaftMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftMetrics").finish_non_exhaustive()
    }
}

/// A log index as a gauge value (indexes never approach `i64::MAX`).
fn index(value: Option<u64>) -> i64 {
    i64::try_from(value.unwrap_or(0)).unwrap_or(i64::MAX)
}

impl Collector for RaftMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let m = self.raft.metrics().borrow().clone();
        let e = &mut encoder;
        gauge(
            e,
            "raft_term",
            "Current Raft term.",
            index(Some(m.current_term)),
        )?;
        gauge(
            e,
            "raft_leader_id",
            "Known leader id, 0 when none.",
            index(m.current_leader),
        )?;
        gauge(
            e,
            "raft_is_leader",
            "1 on the leader, 0 elsewhere.",
            i64::from(m.current_leader == Some(m.id)),
        )?;
        gauge(
            e,
            "raft_last_log_index",
            "Index of the last log entry.",
            index(m.last_log_index),
        )?;
        gauge(
            e,
            "raft_applied_index",
            "Index of the last applied entry.",
            index(m.last_applied.map(|l| l.index)),
        )?;
        gauge(
            e,
            "raft_snapshot_index",
            "Last index in the current snapshot.",
            index(m.snapshot.map(|l| l.index)),
        )?;
        let last = m.last_log_index.unwrap_or(0);
        let lags = m.replication.iter().flat_map(|replication| {
            replication
                .iter()
                .filter(|(id, _)| **id != m.id)
                .map(|(id, matched)| {
                    let matched = matched.map(|l| l.index).unwrap_or(0);
                    (
                        NodeLabel { node: *id },
                        index(Some(last.saturating_sub(matched))),
                    )
                })
        });
        gauge_family(
            e,
            "raft_replication_lag",
            "Entries a follower is behind the leader's log (on the leader only).",
            lags.collect::<Vec<_>>(),
        )?;
        gauge(
            e,
            "leader_quorum_lost",
            "1 while this node leads without a quorum's acknowledgement within an election timeout.",
            i64::from(!self.quorum.in_contact(&m)),
        )?;
        gauge(
            e,
            "clock_skewed",
            "1 while this node's clock is off from the other voters' (it does not lead).",
            i64::from(self.clock.is_skewed()),
        )?;
        gauge_family(
            e,
            "clock_offset_seconds",
            "Each voter's clock minus this node's, as last measured.",
            self.clock
                .offsets()
                .into_iter()
                .map(|(peer, ms)| (PeerLabel { peer }, ms as f64 / 1000.0))
                .collect::<Vec<_>>(),
        )?;
        gauge(
            e,
            "seckill_sold_out_skus",
            "SKUs this node answers sold_out from memory.",
            index(Some(self.reader.sold_out().len() as u64)),
        )?;
        let admission = self.batcher.admission();
        let lanes = |value: &dyn Fn(Lane) -> u64| {
            Lane::ALL
                .iter()
                .map(|lane| (LaneLabel { lane: lane.label() }, value(*lane)))
                .collect::<Vec<_>>()
        };
        gauge_family(
            e,
            "admission_queue_depth",
            "Writes queued or in flight, per lane.",
            lanes(&|lane| admission.in_use(lane) as u64)
                .into_iter()
                .map(|(l, v)| (l, index(Some(v)))),
        )?;
        gauge_family(
            e,
            "admission_queue_capacity",
            "Configured admission depth, per lane.",
            lanes(&|lane| admission.depth(lane) as u64)
                .into_iter()
                .map(|(l, v)| (l, index(Some(v)))),
        )?;
        counter_family(
            e,
            "admission_refused",
            "Writes answered 429 overloaded, per lane.",
            lanes(&|lane| admission.refused(lane)),
        )?;
        Ok(())
    }
}
