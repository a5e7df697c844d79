//! Membership changes are checked before they are proposed: a change openraft would accept but
//! that cannot work (a learner at another member's address, a voter that has not caught up, no
//! voter at all) is refused with 409 and changes nothing.
//!
//! To ensure correctness: a membership entry, once committed, is replayed on every restart. A
//! learner registered at this node's own Raft address under a new id made the leader replicate
//! to itself and panic in openraft on every start; such a change must never reach the log.

use std::collections::BTreeSet;

use api::ClusterError;
use openraft::{Membership, RaftMetrics};
use sm::raft_types::{NodeId, PeerAddr};

/// How far behind the leader's log a learner may be and still be made a voter.
pub const MAX_VOTER_LAG: u64 = 1_000;

/// Refuses adding `node_id` at `node` as a learner unless the id is new, or a retry with the
/// same addresses, and neither address is already another member's.
pub fn check_learner(
    membership: &Membership<NodeId, PeerAddr>,
    node_id: NodeId,
    node: &PeerAddr,
) -> Result<(), ClusterError> {
    if node.raft_addr == node.api_addr {
        return Err(ClusterError::Refused(
            "raft_addr and api_addr must be different ports".into(),
        ));
    }
    for (id, existing) in membership.nodes() {
        if *id == node_id {
            // Same addresses: a retry, answered once caught up. Other addresses: a different
            // machine under a taken id, which openraft cannot tell from a wiped node.
            if existing != node {
                return Err(ClusterError::Refused(format!(
                    "node {node_id} is already a member at {existing}; pick an unused id"
                )));
            }
            continue;
        }
        let taken = [&existing.raft_addr, &existing.api_addr];
        if taken.contains(&&node.raft_addr) || taken.contains(&&node.api_addr) {
            return Err(ClusterError::Refused(format!(
                "node {id} is already at {existing}; a new member needs addresses of its own"
            )));
        }
    }
    Ok(())
}

/// Refuses a voter set that is empty, names a node that is not a member, or makes a voter of a
/// learner that has not caught up with the leader's log. Only the leader knows how far learners
/// are; elsewhere the change goes on to the leader, which checks it.
pub fn check_voters(
    m: &RaftMetrics<NodeId, PeerAddr>,
    voters: &BTreeSet<NodeId>,
) -> Result<(), ClusterError> {
    if voters.is_empty() {
        return Err(ClusterError::Refused(
            "a cluster needs at least one voter".into(),
        ));
    }
    if m.state != openraft::ServerState::Leader {
        return Ok(());
    }
    let membership = m.membership_config.membership();
    let current: BTreeSet<NodeId> = membership.voter_ids().collect();
    let last_log = m.last_log_index.unwrap_or(0);
    for id in voters.difference(&current) {
        if membership.get_node(id).is_none() {
            return Err(ClusterError::Refused(format!(
                "node {id} is not a member; add it as a learner first"
            )));
        }
        // A learner that never acknowledged an append (an unreachable address) has no matched
        // index at all. Counting it as index 0 made it "caught up" while the log was short, and
        // promoting it left a single node in a joint configuration it could never commit.
        let Some(matched) = m
            .replication
            .as_ref()
            .and_then(|progress| progress.get(id).cloned().flatten())
            .map(|log_id| log_id.index)
        else {
            return Err(ClusterError::Refused(format!(
                "learner {id} has not acknowledged any of the leader's log yet; \
                 wait until it caught up"
            )));
        };
        if last_log.saturating_sub(matched) > MAX_VOTER_LAG {
            return Err(ClusterError::Refused(format!(
                "learner {id} is at index {matched}, {} behind the leader's {last_log}; \
                 wait until it caught up",
                last_log - matched
            )));
        }
    }
    Ok(())
}
