//! The Raft peer protocol's bodies: prost messages for openraft's three RPCs, and their
//! conversions. Entries and votes reuse `sm::log_codec`, so the wire and the disk agree.

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::SnapshotSegmentId;
use sm::command::Command;
use sm::log_codec::{LogIdRecord, LogRecord, VoteRecord};
use sm::raft_types::{LogId, NodeId, SnapshotMeta, TypeConfig, Vote};
use sm::StoreError;

/// Path of the append-entries RPC.
pub const APPEND_PATH: &str = "append";
/// Path of the vote RPC.
pub const VOTE_PATH: &str = "vote";
/// Path of the install-snapshot RPC.
pub const SNAPSHOT_PATH: &str = "snapshot";
/// Path of the propose RPC: a follower's batch of client commands for the leader.
pub const PROPOSE_PATH: &str = "propose";
/// Path of the clock RPC: the peer's wall clock, for measuring offsets (see `clock_watch`).
pub const CLOCK_PATH: &str = "clock";
/// Header carrying the cluster secret on every peer request.
pub const SECRET_HEADER: &str = "x-orderq-cluster-secret";
/// Header naming the node id an RPC is meant for; a node refuses RPCs meant for another id.
pub const TARGET_HEADER: &str = "x-orderq-target-node";

/// `AppendEntries` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AppendMsg {
    /// The leader's vote.
    #[prost(message, optional, tag = "1")]
    pub vote: Option<VoteRecord>,
    /// The entry before `entries`.
    #[prost(message, optional, tag = "2")]
    pub prev_log_id: Option<LogIdRecord>,
    /// Entries to append.
    #[prost(message, repeated, tag = "3")]
    pub entries: Vec<LogRecord>,
    /// The leader's committed log id.
    #[prost(message, optional, tag = "4")]
    pub leader_commit: Option<LogIdRecord>,
}

/// `AppendEntries` reply.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AppendReplyMsg {
    /// 0 success, 1 partial success, 2 conflict, 3 higher vote.
    #[prost(uint32, tag = "1")]
    pub kind: u32,
    /// Matched log id of a partial success.
    #[prost(message, optional, tag = "2")]
    pub matched: Option<LogIdRecord>,
    /// The higher vote seen.
    #[prost(message, optional, tag = "3")]
    pub vote: Option<VoteRecord>,
}

/// `Vote` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VoteMsg {
    /// The candidate's vote.
    #[prost(message, optional, tag = "1")]
    pub vote: Option<VoteRecord>,
    /// The candidate's last log id.
    #[prost(message, optional, tag = "2")]
    pub last_log_id: Option<LogIdRecord>,
}

/// `Vote` reply.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VoteReplyMsg {
    /// The voter's vote.
    #[prost(message, optional, tag = "1")]
    pub vote: Option<VoteRecord>,
    /// Whether the vote was granted.
    #[prost(bool, tag = "2")]
    pub granted: bool,
    /// The voter's last log id.
    #[prost(message, optional, tag = "3")]
    pub last_log_id: Option<LogIdRecord>,
}

/// One chunk of a snapshot.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotMsg {
    /// The leader's vote.
    #[prost(message, optional, tag = "1")]
    pub vote: Option<VoteRecord>,
    /// The snapshot's metadata, as JSON (rare, and carries the membership).
    #[prost(string, tag = "2")]
    pub meta_json: String,
    /// Offset of this chunk.
    #[prost(uint64, tag = "3")]
    pub offset: u64,
    /// The chunk.
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
    /// Whether this is the last chunk.
    #[prost(bool, tag = "5")]
    pub done: bool,
}

/// Reply to a snapshot chunk: the receiver's vote, or the segment it expected instead.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotReplyMsg {
    /// The receiver's vote.
    #[prost(message, optional, tag = "1")]
    pub vote: Option<VoteRecord>,
    /// Set on a mismatch: the snapshot id the receiver expected.
    #[prost(string, optional, tag = "2")]
    pub expect_id: Option<String>,
    /// Set on a mismatch: the offset the receiver expected.
    #[prost(uint64, tag = "3")]
    pub expect_offset: u64,
    /// Set on a mismatch: the snapshot id received.
    #[prost(string, tag = "4")]
    pub got_id: String,
    /// Set on a mismatch: the offset received.
    #[prost(uint64, tag = "5")]
    pub got_offset: u64,
}

/// Client commands a follower forwards to the leader in one request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProposeMsg {
    /// The commands, each answered on its own.
    #[prost(message, repeated, tag = "1")]
    pub commands: Vec<Command>,
}

/// The leader's answers to a [`ProposeMsg`]: JSON of `Vec<Result<Outcome, ClusterError>>`, one per
/// command in order (outcomes are serde types of the state machine, not prost).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProposeReplyMsg {
    /// The answers.
    #[prost(bytes = "vec", tag = "1")]
    pub answers_json: Vec<u8>,
}

/// A node's wall clock when it answered a clock RPC.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClockReplyMsg {
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "1")]
    pub now_ms: i64,
}

/// A message that does not decode into what openraft needs.
#[derive(Debug, thiserror::Error)]
#[error("malformed peer message: {0}")]
pub struct WireError(pub String);

fn vote_of(v: Option<&VoteRecord>) -> Result<Vote, WireError> {
    v.map(Vote::from)
        .ok_or_else(|| WireError("missing vote".into()))
}

fn log_id_of(r: Option<&LogIdRecord>) -> Option<LogId> {
    r.map(LogId::from)
}

fn store(e: StoreError) -> WireError {
    WireError(e.to_string())
}

impl AppendMsg {
    /// Encodes openraft's request, or as many of its first entries as fit in `max_bytes` (always
    /// at least one). When entries were left out, also answers the log id of the last one sent:
    /// the caller reports a partial success up to it and openraft sends the rest next.
    ///
    /// To ensure correctness: openraft 0.9 sends heartbeats in the same stream as the entries,
    /// with the heartbeat interval as the RPC's timeout, so one append must stay small enough
    /// to reach a follower and be synced there well within it, however large the backlog.
    pub fn from_raft(
        req: &AppendEntriesRequest<TypeConfig>,
        max_bytes: usize,
    ) -> Result<(Self, Option<LogId>), WireError> {
        let mut entries = Vec::new();
        let mut bytes = 0;
        let mut cut_after = None;
        for (i, entry) in req.entries.iter().enumerate() {
            let record = LogRecord::from_entry(entry).map_err(store)?;
            bytes += prost::Message::encoded_len(&record);
            if i > 0 && bytes > max_bytes {
                cut_after = Some(req.entries[i - 1].log_id);
                break;
            }
            entries.push(record);
        }
        // A follower learns no commit past what it was sent.
        let leader_commit = match (req.leader_commit, cut_after) {
            (Some(commit), Some(last)) if commit.index > last.index => Some(last),
            (commit, _) => commit,
        };
        let msg = AppendMsg {
            vote: Some(VoteRecord::from(&req.vote)),
            prev_log_id: req.prev_log_id.as_ref().map(LogIdRecord::from),
            entries,
            leader_commit: leader_commit.as_ref().map(LogIdRecord::from),
        };
        Ok((msg, cut_after))
    }

    /// Decodes into openraft's request.
    pub fn into_raft(self) -> Result<AppendEntriesRequest<TypeConfig>, WireError> {
        Ok(AppendEntriesRequest {
            vote: vote_of(self.vote.as_ref())?,
            prev_log_id: log_id_of(self.prev_log_id.as_ref()),
            entries: self
                .entries
                .into_iter()
                .map(LogRecord::into_entry)
                .collect::<Result<_, _>>()
                .map_err(store)?,
            leader_commit: log_id_of(self.leader_commit.as_ref()),
        })
    }
}

impl AppendReplyMsg {
    /// Encodes openraft's reply.
    pub fn from_raft(resp: &AppendEntriesResponse<NodeId>) -> Self {
        let mut msg = AppendReplyMsg::default();
        match resp {
            AppendEntriesResponse::Success => msg.kind = 0,
            AppendEntriesResponse::PartialSuccess(matched) => {
                msg.kind = 1;
                msg.matched = matched.as_ref().map(LogIdRecord::from);
            }
            AppendEntriesResponse::Conflict => msg.kind = 2,
            AppendEntriesResponse::HigherVote(vote) => {
                msg.kind = 3;
                msg.vote = Some(VoteRecord::from(vote));
            }
        }
        msg
    }

    /// Decodes into openraft's reply.
    pub fn into_raft(self) -> Result<AppendEntriesResponse<NodeId>, WireError> {
        match self.kind {
            0 => Ok(AppendEntriesResponse::Success),
            1 => Ok(AppendEntriesResponse::PartialSuccess(log_id_of(
                self.matched.as_ref(),
            ))),
            2 => Ok(AppendEntriesResponse::Conflict),
            3 => Ok(AppendEntriesResponse::HigherVote(vote_of(
                self.vote.as_ref(),
            )?)),
            other => Err(WireError(format!("unknown append reply kind {other}"))),
        }
    }
}

impl VoteMsg {
    /// Encodes openraft's request.
    pub fn from_raft(req: &VoteRequest<NodeId>) -> Self {
        VoteMsg {
            vote: Some(VoteRecord::from(&req.vote)),
            last_log_id: req.last_log_id.as_ref().map(LogIdRecord::from),
        }
    }

    /// Decodes into openraft's request.
    pub fn into_raft(self) -> Result<VoteRequest<NodeId>, WireError> {
        Ok(VoteRequest {
            vote: vote_of(self.vote.as_ref())?,
            last_log_id: log_id_of(self.last_log_id.as_ref()),
        })
    }
}

impl VoteReplyMsg {
    /// Encodes openraft's reply.
    pub fn from_raft(resp: &VoteResponse<NodeId>) -> Self {
        VoteReplyMsg {
            vote: Some(VoteRecord::from(&resp.vote)),
            granted: resp.vote_granted,
            last_log_id: resp.last_log_id.as_ref().map(LogIdRecord::from),
        }
    }

    /// Decodes into openraft's reply.
    pub fn into_raft(self) -> Result<VoteResponse<NodeId>, WireError> {
        Ok(VoteResponse {
            vote: vote_of(self.vote.as_ref())?,
            vote_granted: self.granted,
            last_log_id: log_id_of(self.last_log_id.as_ref()),
        })
    }
}

impl SnapshotMsg {
    /// Encodes openraft's request.
    pub fn from_raft(req: &InstallSnapshotRequest<TypeConfig>) -> Result<Self, WireError> {
        Ok(SnapshotMsg {
            vote: Some(VoteRecord::from(&req.vote)),
            meta_json: serde_json::to_string(&req.meta).map_err(|e| WireError(e.to_string()))?,
            offset: req.offset,
            data: req.data.clone(),
            done: req.done,
        })
    }

    /// Decodes into openraft's request.
    pub fn into_raft(self) -> Result<InstallSnapshotRequest<TypeConfig>, WireError> {
        let meta: SnapshotMeta =
            serde_json::from_str(&self.meta_json).map_err(|e| WireError(e.to_string()))?;
        Ok(InstallSnapshotRequest {
            vote: vote_of(self.vote.as_ref())?,
            meta,
            offset: self.offset,
            data: self.data,
            done: self.done,
        })
    }
}

impl SnapshotReplyMsg {
    /// Encodes a successful reply.
    pub fn from_raft(resp: &InstallSnapshotResponse<NodeId>) -> Self {
        SnapshotReplyMsg {
            vote: Some(VoteRecord::from(&resp.vote)),
            ..Default::default()
        }
    }

    /// Encodes a segment mismatch.
    pub fn mismatch(expect: &SnapshotSegmentId, got: &SnapshotSegmentId) -> Self {
        SnapshotReplyMsg {
            vote: None,
            expect_id: Some(expect.id.clone()),
            expect_offset: expect.offset,
            got_id: got.id.clone(),
            got_offset: got.offset,
        }
    }
}
