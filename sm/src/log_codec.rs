//! The binary form of log entries and votes, used both on disk (the `raft_log` CF) and on the peer
//! wire. Prost keeps it compact; the rare membership payload is JSON inside it.

use openraft::{CommittedLeaderId, EntryPayload, Membership};
use prost::Message;

use crate::command::CommandBatch;
use crate::error::StoreError;
use crate::raft_types::{Entry, LogId, NodeId, PeerAddr, Vote};

/// A log entry as stored and sent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogRecord {
    /// Term of the leader that proposed the entry.
    #[prost(uint64, tag = "1")]
    pub term: u64,
    /// Node id of that leader.
    #[prost(uint64, tag = "2")]
    pub leader_node: u64,
    /// Log index.
    #[prost(uint64, tag = "3")]
    pub index: u64,
    /// The payload.
    #[prost(oneof = "RecordPayload", tags = "4, 5, 6")]
    pub payload: Option<RecordPayload>,
}

/// A log entry's payload.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum RecordPayload {
    /// A blank entry (a new leader's first).
    #[prost(bool, tag = "4")]
    Blank(bool),
    /// Client commands.
    #[prost(message, tag = "5")]
    Normal(CommandBatch),
    /// A membership change, as JSON.
    #[prost(string, tag = "6")]
    Membership(String),
}

/// A log id on the wire; `present` distinguishes "none" from index 0.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogIdRecord {
    /// Term of the proposing leader.
    #[prost(uint64, tag = "1")]
    pub term: u64,
    /// Node id of the proposing leader.
    #[prost(uint64, tag = "2")]
    pub leader_node: u64,
    /// Log index.
    #[prost(uint64, tag = "3")]
    pub index: u64,
}

/// A vote on the wire.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VoteRecord {
    /// Term.
    #[prost(uint64, tag = "1")]
    pub term: u64,
    /// The candidate or leader voted for.
    #[prost(uint64, tag = "2")]
    pub node_id: u64,
    /// Whether a quorum granted it.
    #[prost(bool, tag = "3")]
    pub committed: bool,
}

impl From<&LogId> for LogIdRecord {
    fn from(id: &LogId) -> Self {
        LogIdRecord {
            term: id.leader_id.term,
            leader_node: id.leader_id.node_id,
            index: id.index,
        }
    }
}

impl From<&LogIdRecord> for LogId {
    fn from(r: &LogIdRecord) -> Self {
        LogId::new(CommittedLeaderId::new(r.term, r.leader_node), r.index)
    }
}

impl From<&Vote> for VoteRecord {
    fn from(v: &Vote) -> Self {
        VoteRecord {
            term: v.leader_id.term,
            node_id: v.leader_id.node_id,
            committed: v.committed,
        }
    }
}

impl From<&VoteRecord> for Vote {
    fn from(r: &VoteRecord) -> Self {
        if r.committed {
            Vote::new_committed(r.term, r.node_id)
        } else {
            Vote::new(r.term, r.node_id)
        }
    }
}

impl LogRecord {
    /// The record of `entry`.
    pub fn from_entry(entry: &Entry) -> Result<Self, StoreError> {
        let payload = match &entry.payload {
            EntryPayload::Blank => RecordPayload::Blank(true),
            EntryPayload::Normal(batch) => RecordPayload::Normal(batch.clone()),
            EntryPayload::Membership(m) => RecordPayload::Membership(
                serde_json::to_string(m).map_err(|e| StoreError::corrupt("membership", e))?,
            ),
        };
        Ok(LogRecord {
            term: entry.log_id.leader_id.term,
            leader_node: entry.log_id.leader_id.node_id,
            index: entry.log_id.index,
            payload: Some(payload),
        })
    }

    /// The entry this record holds.
    pub fn into_entry(self) -> Result<Entry, StoreError> {
        let payload = match self.payload {
            None | Some(RecordPayload::Blank(_)) => EntryPayload::Blank,
            Some(RecordPayload::Normal(batch)) => EntryPayload::Normal(batch),
            Some(RecordPayload::Membership(json)) => {
                let m: Membership<NodeId, PeerAddr> = serde_json::from_str(&json)
                    .map_err(|e| StoreError::corrupt("membership", e))?;
                EntryPayload::Membership(m)
            }
        };
        Ok(Entry {
            log_id: LogId::new(
                CommittedLeaderId::new(self.term, self.leader_node),
                self.index,
            ),
            payload,
        })
    }
}

/// Encodes an entry for the log column family or the wire.
pub fn encode_entry(entry: &Entry) -> Result<Vec<u8>, StoreError> {
    Ok(LogRecord::from_entry(entry)?.encode_to_vec())
}

/// Decodes what [`encode_entry`] wrote.
pub fn decode_entry(bytes: &[u8]) -> Result<Entry, StoreError> {
    LogRecord::decode(bytes)
        .map_err(|e| StoreError::corrupt("log entry", e))?
        .into_entry()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Action, Command, PutSku};

    #[test]
    fn entries_round_trip() {
        let batch = CommandBatch {
            now_ms: 7,
            commands: vec![Command::new(Action::PutSku(PutSku {
                sku: "A".into(),
                stock: 3,
                price_cents: 100,
                per_user_limit: 0,
            }))],
        };
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(2, 1), 9),
            payload: EntryPayload::Normal(batch),
        };
        let back = decode_entry(&encode_entry(&entry).unwrap()).unwrap();
        assert_eq!(back.log_id, entry.log_id);
        assert!(
            matches!(back.payload, EntryPayload::Normal(ref b) if b.now_ms == 7 && b.commands.len() == 1)
        );
    }

    #[test]
    fn votes_round_trip() {
        let vote = Vote::new_committed(5, 3);
        assert_eq!(Vote::from(&VoteRecord::from(&vote)), vote);
    }
}
