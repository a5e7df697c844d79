//! The openraft type configuration shared by the storage (here) and the node's wiring.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::command::CommandBatch;
use crate::outcome::BatchOutcome;

/// A Raft node id.
pub type NodeId = u64;

/// How to reach a cluster member: its peer (Raft) address and its public API address. Stored in
/// the membership, so every node can forward clients to the leader's API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAddr {
    /// `host:port` of the Raft peer port.
    pub raft_addr: String,
    /// `host:port` of the public HTTP API.
    pub api_addr: String,
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft={} api={}", self.raft_addr, self.api_addr)
    }
}

openraft::declare_raft_types!(
    /// orderq's Raft types: entries carry a [`CommandBatch`], applying one answers a
    /// [`BatchOutcome`], snapshots are files streamed in chunks.
    pub TypeConfig:
        D = CommandBatch,
        R = BatchOutcome,
        NodeId = NodeId,
        Node = PeerAddr,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A log entry of this cluster.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id of this cluster.
pub type LogId = openraft::LogId<NodeId>;
/// A vote of this cluster.
pub type Vote = openraft::Vote<NodeId>;
/// The storage error openraft expects.
pub type StorageError = openraft::StorageError<NodeId>;
/// Snapshot metadata of this cluster.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, PeerAddr>;
/// A membership as stored with its log id.
pub type StoredMembership = openraft::StoredMembership<NodeId, PeerAddr>;
/// The Raft handle of this cluster.
pub type Raft = openraft::Raft<TypeConfig>;

crate::json_meta!(
    /// The log id of the last applied entry (kept with the state, in the batch that applies it).
    LastApplied,
    crate::keys::CF_SM_META,
    crate::keys::SM_LAST_APPLIED,
    LogId
);
crate::json_meta!(
    /// The membership as of the last membership entry applied.
    Membership,
    crate::keys::CF_SM_META,
    crate::keys::SM_MEMBERSHIP,
    StoredMembership
);
crate::json_meta!(
    /// This node's vote, synced before it is acted on.
    SavedVote,
    crate::keys::CF_RAFT_META,
    crate::keys::META_VOTE,
    Vote
);
crate::json_meta!(
    /// The log id of the last purged entry.
    LastPurged,
    crate::keys::CF_RAFT_META,
    crate::keys::META_LAST_PURGED,
    LogId
);
crate::json_meta!(
    /// The committed log id openraft asked to keep (`save_committed`).
    Committed,
    crate::keys::CF_RAFT_META,
    crate::keys::META_COMMITTED,
    Option<LogId>
);
