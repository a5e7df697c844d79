//! The Raft peer protocol's bodies: prost messages for openraft's three RPCs, and their
//! conversions. Entries and votes reuse `sm::log_codec`, so the wire and the disk agree.

use api::ClusterError;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::SnapshotSegmentId;
use sm::command::Command;
use sm::log_codec::{LogIdRecord, LogRecord, VoteRecord};
use sm::outcome::Outcome;
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

/// The leader's answers to a [`ProposeMsg`], one per command, in order.
///
/// Tag 1 carried the answers as JSON before and is not reused: a reply from a node that still
/// sends it decodes as no answers, which the follower reports as an unknown outcome.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProposeReplyMsg {
    /// The answers.
    #[prost(message, repeated, tag = "2")]
    pub answers: Vec<AnswerMsg>,
}

/// The leader's answer to one forwarded command: what applying it answered, or why the cluster
/// could not get it applied there.
///
/// The outcome is `sm::outcome::Outcome`, the state machine's own serde type (the entity a
/// command changed, or its typed rejection), carried as CBOR (RFC 8949): a binary,
/// self-describing encoding of the same serde model the state machine already defines, which
/// carries a published message's JSON payload natively and every field the state machine adds
/// with no change here. Mirroring each record (`Order`, `Sku`, `Message`, `Subscription`, ...)
/// as prost messages would be a second schema of all of them, to be kept in step by hand with
/// every field added; the part the follower acts on, the cluster error, is a prost message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnswerMsg {
    /// Which kind of answer.
    #[prost(oneof = "AnswerKind", tags = "1, 2")]
    pub kind: Option<AnswerKind>,
}

/// The two kinds of [`AnswerMsg`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AnswerKind {
    /// The command was applied: its `Outcome` (applied or rejected), CBOR-encoded.
    #[prost(bytes = "vec", tag = "1")]
    OutcomeCbor(Vec<u8>),
    /// The command was not applied, or its outcome is unknown.
    #[prost(message, tag = "2")]
    Error(ClusterErrorMsg),
}

/// `api::ClusterError` on the wire: a kind and the fields of that kind.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClusterErrorMsg {
    /// The variant.
    #[prost(enumeration = "ClusterErrorKind", tag = "1")]
    pub kind: i32,
    /// The explanation (every kind but `ForwardTo`).
    #[prost(string, tag = "2")]
    pub message: String,
    /// `ForwardTo`: the leader's id.
    #[prost(uint64, tag = "3")]
    pub leader_id: u64,
    /// `ForwardTo`: the leader's API `host:port`.
    #[prost(string, tag = "4")]
    pub api_addr: String,
}

/// The variants of `api::ClusterError`, one for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ClusterErrorKind {
    /// Not sent; a message without a kind is malformed.
    Unspecified = 0,
    /// `ClusterError::ForwardTo`.
    ForwardTo = 1,
    /// `ClusterError::NoLeader`.
    NoLeader = 2,
    /// `ClusterError::Overloaded`.
    Overloaded = 3,
    /// `ClusterError::Unavailable`.
    Unavailable = 4,
    /// `ClusterError::TooLarge`.
    TooLarge = 5,
    /// `ClusterError::Refused`.
    Refused = 6,
    /// `ClusterError::NotPullGroup`.
    NotPullGroup = 7,
    /// `ClusterError::UnknownGroup`.
    UnknownGroup = 8,
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

impl AnswerMsg {
    /// Encodes one command's answer. An outcome that cannot be encoded (nothing the state machine
    /// answers fails to) is sent as `Unavailable`: applied, but not relayable.
    pub fn from_answer(answer: &Result<Outcome, ClusterError>) -> Self {
        let kind = match answer {
            Ok(outcome) => {
                let mut cbor = Vec::new();
                match ciborium::into_writer(outcome, &mut cbor) {
                    Ok(()) => AnswerKind::OutcomeCbor(cbor),
                    Err(e) => {
                        AnswerKind::Error(ClusterErrorMsg::from_error(&ClusterError::Unavailable(
                            format!("the outcome could not be encoded: {e}"),
                        )))
                    }
                }
            }
            Err(error) => AnswerKind::Error(ClusterErrorMsg::from_error(error)),
        };
        AnswerMsg { kind: Some(kind) }
    }

    /// Decodes into the answer the caller of the batcher gets.
    pub fn into_answer(self) -> Result<Result<Outcome, ClusterError>, WireError> {
        match self.kind {
            Some(AnswerKind::OutcomeCbor(cbor)) => ciborium::from_reader(cbor.as_slice())
                .map(Ok)
                .map_err(|e| WireError(format!("outcome: {e}"))),
            Some(AnswerKind::Error(error)) => Ok(Err(error.into_error()?)),
            None => Err(WireError("answer without a kind".into())),
        }
    }
}

impl ClusterErrorMsg {
    /// Encodes `error`.
    pub fn from_error(error: &ClusterError) -> Self {
        let (kind, message) = match error {
            ClusterError::ForwardTo {
                leader_id,
                api_addr,
            } => {
                return ClusterErrorMsg {
                    kind: ClusterErrorKind::ForwardTo.into(),
                    message: String::new(),
                    leader_id: *leader_id,
                    api_addr: api_addr.clone(),
                }
            }
            ClusterError::NoLeader(m) => (ClusterErrorKind::NoLeader, m),
            ClusterError::Overloaded(m) => (ClusterErrorKind::Overloaded, m),
            ClusterError::Unavailable(m) => (ClusterErrorKind::Unavailable, m),
            ClusterError::TooLarge(m) => (ClusterErrorKind::TooLarge, m),
            ClusterError::Refused(m) => (ClusterErrorKind::Refused, m),
            ClusterError::NotPullGroup(m) => (ClusterErrorKind::NotPullGroup, m),
            ClusterError::UnknownGroup(m) => (ClusterErrorKind::UnknownGroup, m),
        };
        ClusterErrorMsg {
            kind: kind.into(),
            message: message.clone(),
            ..Default::default()
        }
    }

    /// Decodes into `api::ClusterError`.
    pub fn into_error(self) -> Result<ClusterError, WireError> {
        let kind = ClusterErrorKind::try_from(self.kind)
            .map_err(|_| WireError(format!("unknown cluster error kind {}", self.kind)))?;
        Ok(match kind {
            ClusterErrorKind::ForwardTo => ClusterError::ForwardTo {
                leader_id: self.leader_id,
                api_addr: self.api_addr,
            },
            ClusterErrorKind::NoLeader => ClusterError::NoLeader(self.message),
            ClusterErrorKind::Overloaded => ClusterError::Overloaded(self.message),
            ClusterErrorKind::Unavailable => ClusterError::Unavailable(self.message),
            ClusterErrorKind::TooLarge => ClusterError::TooLarge(self.message),
            ClusterErrorKind::Refused => ClusterError::Refused(self.message),
            ClusterErrorKind::NotPullGroup => ClusterError::NotPullGroup(self.message),
            ClusterErrorKind::UnknownGroup => ClusterError::UnknownGroup(self.message),
            ClusterErrorKind::Unspecified => {
                return Err(WireError("cluster error without a kind".into()))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use serde_json::json;
    use sm::outcome::{Applied, Rejection};

    /// The name of an applied variant. Exhaustive: a variant added to `Applied` fails to compile
    /// here until [`outcomes`] sends it over the wire too.
    fn applied_kind(applied: &Applied) -> &'static str {
        match applied {
            Applied::Sku(_) => "sku",
            Applied::OrderCreated(_) => "order_created",
            Applied::Order(_) => "order",
            Applied::TimersFired(_) => "timers_fired",
            Applied::Published(_) => "published",
            Applied::Subscription(_) => "subscription",
            Applied::SubscriptionSigned { .. } => "subscription_signed",
            Applied::DeliveriesRecorded(_) => "deliveries_recorded",
            Applied::Redriven(_) => "redriven",
            Applied::Purged(_) => "purged",
            Applied::RefundRequested(_) => "refund_requested",
            Applied::Trimmed(_) => "trimmed",
            Applied::SubscriptionRemoved(_) => "subscription_removed",
        }
    }

    /// The name of a rejection variant; exhaustive like [`applied_kind`].
    fn rejection_kind(rejection: &Rejection) -> &'static str {
        match rejection {
            Rejection::InsufficientStock { .. } => "insufficient_stock",
            Rejection::SoldOut { .. } => "sold_out",
            Rejection::LimitExceeded { .. } => "limit_exceeded",
            Rejection::InvalidState { .. } => "invalid_state",
            Rejection::NotFound { .. } => "not_found",
            Rejection::ReservedTopic { .. } => "reserved_topic",
            Rejection::IdempotencyKeyReused => "idempotency_key_reused",
            Rejection::Conflict(_) => "conflict",
            Rejection::EntryFull => "entry_full",
            Rejection::Invalid(_) => "invalid",
        }
    }

    /// One outcome of every kind, built from the state machine's own serde shape (so the test
    /// names no module that may move), with every optional field set and a payload of every
    /// JSON kind.
    fn outcomes() -> Vec<Outcome> {
        let order = json!({
            "id": "o-1", "user_id": "u-1",
            "items": [{"sku": "s-1", "qty": 2, "price_cents": 150}],
            "amount_cents": 300, "state": "closed", "close_reason": "cancelled",
            "payment_ref": "pay-1", "created_at_ms": 1, "expires_at_ms": 2,
            "paid_at_ms": 3, "closed_at_ms": 4, "refunded_at_ms": null,
        });
        let subscription = json!({
            "group": "g", "topic": "order.paid",
            "push": {"url": "https://example.test/hook", "timeout_ms": 5000,
                     "signing_secret": "k2", "previous_signing_secret": "k1",
                     "rotated_at_ms": 7},
            "max_attempts": 5, "backoff_initial_ms": 100, "backoff_max_ms": 1000,
            "max_in_flight": 8, "rate_per_sec": 0, "ordered_by_key": true,
            "start": "earliest", "cursor": 9, "delivered": 10, "dead": 1, "failures": 2,
            "redrives": 3, "ready_marks": 4,
        });
        let applied = [
            json!({"sku": {"sku": "s-1", "price_cents": 150, "stock": 10, "available": 7,
                           "reserved": 2, "sold": 1, "per_user_limit": 3}}),
            json!({"order_created": order}),
            json!({"order": order}),
            json!({"timers_fired": {"fired": [[0, 1, 255]], "gone": 2, "early": [[7]]}}),
            json!({"published": {"id": "t:1", "topic": "t", "offset": 1, "key": "k",
                   "payload": {"n": -3, "big": u64::MAX, "f": 1.5, "s": "é", "b": true,
                               "null": null, "list": [1, "two", {"three": 3}]},
                   "published_at_ms": -1, "deliver_at_ms": i64::MAX}}),
            json!({"subscription": subscription}),
            json!({"subscription_signed": {"subscription": subscription,
                                           "signing_secret": "k3"}}),
            json!({"deliveries_recorded": {"acked": [1], "retrying": [2, 3], "waiting": [3],
                                           "dead": [4], "ignored": [5]}}),
            json!({"redriven": 12}),
            json!({"purged": 7}),
            json!({"refund_requested": order}),
            json!({"trimmed": 40}),
            json!({"subscription_removed": true}),
        ];
        let rejected = [
            json!({"insufficient_stock": {"sku": "s", "available": 1, "wanted": 2}}),
            json!({"sold_out": {"sku": "s"}}),
            json!({"limit_exceeded": {"sku": "s", "user_id": "u", "limit": 1, "held": 1,
                                      "wanted": 1}}),
            json!({"invalid_state": {"order_id": "o", "state": "paid", "action": "pay"}}),
            json!({"not_found": {"kind": "order", "id": "o"}}),
            json!({"reserved_topic": {"topic": "order.paid"}}),
            json!("idempotency_key_reused"),
            json!({"conflict": "being removed"}),
            json!("entry_full"),
            json!({"invalid": "bad"}),
        ];
        applied
            .into_iter()
            .map(|a| json!({ "Ok": a }))
            .chain(rejected.into_iter().map(|r| json!({ "Err": r })))
            .map(|o| serde_json::from_value(o).expect("a well-formed outcome"))
            .collect()
    }

    fn errors() -> Vec<ClusterError> {
        vec![
            ClusterError::ForwardTo {
                leader_id: 3,
                api_addr: "10.0.0.3:8080".into(),
            },
            ClusterError::NoLeader("election".into()),
            ClusterError::Overloaded("queue full".into()),
            ClusterError::Unavailable("lost".into()),
            ClusterError::TooLarge("big".into()),
            ClusterError::Refused("no".into()),
            ClusterError::NotPullGroup("push".into()),
            ClusterError::UnknownGroup("gone".into()),
        ]
    }

    /// Sends `answers` the whole way: encoded, in a reply's bytes, decoded.
    fn over_the_wire(
        answers: &[Result<Outcome, ClusterError>],
    ) -> Vec<Result<Outcome, ClusterError>> {
        let bytes = ProposeReplyMsg {
            answers: answers.iter().map(AnswerMsg::from_answer).collect(),
        }
        .encode_to_vec();
        ProposeReplyMsg::decode(bytes.as_slice())
            .map(|reply| reply.answers)
            .expect("a reply")
            .into_iter()
            .map(|answer| answer.into_answer().expect("a well-formed answer"))
            .collect()
    }

    #[test]
    fn every_outcome_kind_round_trips() {
        let outcomes = outcomes();
        let mut kinds: Vec<&str> = outcomes
            .iter()
            .map(|o| match o {
                Ok(a) => applied_kind(a),
                Err(r) => rejection_kind(r),
            })
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), 23, "one outcome of each of the 13 + 10 kinds");
        let answers: Vec<_> = outcomes.into_iter().map(Ok).collect();
        let back = over_the_wire(&answers);
        assert_eq!(back.len(), answers.len());
        for (sent, got) in answers.iter().zip(&back) {
            assert_eq!(sent.as_ref().ok(), got.as_ref().ok());
        }
    }

    #[test]
    fn every_cluster_error_round_trips() {
        let answers: Vec<Result<Outcome, ClusterError>> = errors().into_iter().map(Err).collect();
        for (sent, got) in answers.iter().zip(over_the_wire(&answers)) {
            // `ClusterError` has no `PartialEq`; its variant and fields show in `Debug`.
            assert_eq!(format!("{sent:?}"), format!("{got:?}"));
        }
    }

    #[test]
    fn a_malformed_answer_is_refused() {
        let no_kind = AnswerMsg { kind: None };
        assert!(no_kind.into_answer().is_err());
        let unknown_error = AnswerMsg {
            kind: Some(AnswerKind::Error(ClusterErrorMsg {
                kind: 99,
                ..Default::default()
            })),
        };
        assert!(unknown_error.into_answer().is_err());
        let unspecified_error = AnswerMsg {
            kind: Some(AnswerKind::Error(ClusterErrorMsg::default())),
        };
        assert!(unspecified_error.into_answer().is_err());
        let not_cbor = AnswerMsg {
            kind: Some(AnswerKind::OutcomeCbor(vec![0xff, 0x00])),
        };
        assert!(not_cbor.into_answer().is_err());
    }

    #[test]
    fn a_reply_of_the_json_era_decodes_as_no_answers() {
        // Tag 1, length-delimited: what a node that sent `answers_json` answered.
        let old = [0x0a, 0x02, b'[', b']'];
        let reply = ProposeReplyMsg::decode(old.as_slice()).expect("a reply");
        assert!(reply.answers.is_empty());
    }
}
