//! What the API needs from the cluster, as a trait so the HTTP layer can be tested without Raft.

use std::collections::BTreeSet;

use async_trait::async_trait;
use bytes::Bytes;
use sm::command::Command;
use sm::outcome::Outcome;
use sm::StateReader;

/// Why the cluster could not serve a write or a linearizable read here. A follower relays the
/// leader's answer to a forwarded write as this (the node's peer wire carries each variant).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    /// Another node leads; the request should go to its API address.
    #[error("node {leader_id} leads")]
    ForwardTo {
        /// The leader's id.
        leader_id: u64,
        /// The leader's API `host:port`.
        api_addr: String,
    },
    /// No leader is known (election in progress, or no quorum).
    #[error("no leader: {0}")]
    NoLeader(String),
    /// The node's admission budget for this kind of write is spent: the client should retry
    /// after `retry_after_secs` rather than queue behind a backlog.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The request was accepted but its outcome is unknown (the node stopped, a timeout).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The command is larger than one Raft entry may be (`max_batch_bytes`): it can never be
    /// proposed, so it is refused before it is.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The cluster refused a membership change that cannot be made as asked (a voter that is not
    /// a member, a node id already taken by other addresses).
    #[error("refused: {0}")]
    Refused(String),
    /// The leader's scheduler has no consumer group of that name (never created, or removed).
    #[error("unknown group: {0}")]
    UnknownGroup(String),
    /// `ack`/`nack` named a group that is not pulled (a push group, or a built-in group that
    /// only orderq settles): its receipts are never the caller's to settle.
    #[error("not a pull group: {0}")]
    NotPullGroup(String),
}

/// Header marking a request already forwarded once, so a stale leader hint cannot loop.
pub const FORWARDED_HEADER: &str = "x-orderq-forwarded";

/// An HTTP request as the API received it, kept whole so it can be forwarded to the leader.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// Upper-case method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The headers that matter for forwarding and handling, lower-case names.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl HttpRequest {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Extra headers (`Retry-After`, content type).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl HttpReply {
    /// A reply whose body is JSON already encoded: every JSON answer carries the same
    /// content type.
    pub fn json(status: u16, body: impl Into<Bytes>) -> Self {
        HttpReply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        }
    }
}

/// A summary of this node's view of the cluster, for `GET /admin/cluster`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterStatus {
    /// This node.
    pub node_id: u64,
    /// This node leads but has not heard from a quorum within an election timeout: it may have
    /// been cut off, and another node may lead already.
    pub quorum_lost: bool,
    /// This node's clock is off from the other voters' by more than `max_clock_offset_ms`: it
    /// does not lead.
    pub clock_skewed: bool,
    /// The leader this node knows, if any.
    pub leader_id: Option<u64>,
    /// Current term.
    pub term: u64,
    /// Voter ids.
    pub voters: Vec<u64>,
    /// Learner ids.
    pub learners: Vec<u64>,
    /// Index of the last log entry.
    pub last_log_index: Option<u64>,
    /// Index of the last applied entry.
    pub last_applied: Option<u64>,
    /// Last index covered by the current snapshot.
    pub snapshot_index: Option<u64>,
    /// Last purged log index.
    pub last_purged_index: Option<u64>,
    /// Every member with its addresses and, on the leader, its replication progress.
    pub nodes: Vec<NodeStatus>,
}

/// One member in [`ClusterStatus`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeStatus {
    /// Node id.
    pub id: u64,
    /// Public API `host:port`.
    pub api_addr: String,
    /// Raft peer `host:port`.
    pub raft_addr: String,
    /// Its clock minus this node's, as this node last measured it, in milliseconds.
    pub clock_offset_ms: Option<i64>,
    /// Highest log index known replicated to it (leader only).
    pub matched_index: Option<u64>,
}

/// A message handed to a pull consumer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PulledMessage {
    /// The message id (`topic:offset`).
    pub id: String,
    /// Its topic.
    pub topic: String,
    /// Its key.
    pub key: String,
    /// The publisher's JSON.
    pub payload: serde_json::Value,
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// What `ack` / `nack` name it by; valid while this lease lasts.
    pub receipt: String,
}

/// What a pull consumer asks `receive` for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveLimits {
    /// Most messages answered.
    pub max: usize,
    /// How long to wait for the first one.
    pub wait_ms: u64,
    /// How long each stays leased before it is delivered again.
    pub visibility_ms: u64,
}

/// The leader's in-memory view of one group's deliveries, for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveDeliveries {
    /// Messages handed out and not yet settled.
    pub in_flight: u64,
}

/// The cluster as the API sees it.
#[async_trait]
pub trait Cluster: Send + Sync + 'static {
    /// Proposes `command` and answers its outcome once committed and applied. The one way a write
    /// reaches the leader: from a follower the cluster carries the command there itself, so
    /// `ForwardTo` here means it could not, and the API does not re-send the request.
    async fn write(&self, command: Command) -> Result<Outcome, ClusterError>;

    /// Returns once this node may serve a linearizable read from its own state.
    async fn linearizable(&self) -> Result<(), ClusterError>;

    /// This node's applied state.
    fn reader(&self) -> &StateReader;

    /// Sends `request` to the API at `api_addr` (the leader) and answers its reply.
    async fn forward(
        &self,
        api_addr: &str,
        request: &HttpRequest,
    ) -> Result<HttpReply, ClusterError>;

    /// This node's view of the cluster.
    fn status(&self) -> ClusterStatus;

    /// The node's wall clock in milliseconds since the epoch: the one clock the API reads (ages
    /// it shows), the same the leader stamps batches with.
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }

    /// Builds a snapshot now; answers the index it covers.
    async fn snapshot(&self) -> Result<u64, ClusterError>;

    /// The 99th percentile of recent timer firing lags (due → applied), measured while this
    /// node led; `None` when it has fired none.
    fn timer_lag_p99_ms(&self) -> Option<u64>;

    /// Registers the node's own metrics (Raft state, replication, storage, latencies, process)
    /// in the node's registry, once, before the API serves. The default registers none.
    fn register_metrics(&self, metrics: &mut crate::metrics::Metrics) {
        let _ = metrics;
    }

    /// Leases up to `limits.max` messages of pull group `group` (long poll). Served by the leader's
    /// scheduler; a follower answers `ForwardTo`. The default refuses.
    async fn receive(
        &self,
        group: &str,
        limits: ReceiveLimits,
    ) -> Result<Vec<PulledMessage>, ClusterError> {
        let _ = (group, limits);
        Err(ClusterError::Refused("this cluster has no queue".into()))
    }

    /// Settles leased messages of pull group `group` by receipt: acknowledges them, or with
    /// `nack_delay_ms` fails them to come back after that delay. Answers how many receipts were
    /// current. The default refuses.
    async fn settle_receipts(
        &self,
        group: &str,
        receipts: Vec<String>,
        nack_delay_ms: Option<u64>,
    ) -> Result<u64, ClusterError> {
        let _ = (group, receipts, nack_delay_ms);
        Err(ClusterError::Refused("this cluster has no queue".into()))
    }

    /// The leader scheduler's in-flight counts per group (empty off the leader).
    fn live_deliveries(&self) -> std::collections::HashMap<String, LiveDeliveries> {
        std::collections::HashMap::new()
    }

    /// Adds node `node_id` as a learner (a member that replicates and serves local reads and the
    /// change stream but never votes) and returns once it has caught up. The default refuses:
    /// only a Raft cluster changes membership.
    async fn add_learner(
        &self,
        node_id: u64,
        api_addr: String,
        raft_addr: String,
    ) -> Result<(), ClusterError> {
        let _ = (node_id, api_addr, raft_addr);
        Err(ClusterError::Refused(
            "this cluster does not change membership".into(),
        ))
    }

    /// Makes `voters` the voters (promoting learners, removing voters not named) and returns once
    /// the change is committed. The default refuses, as for [`Cluster::add_learner`].
    async fn change_voters(&self, voters: BTreeSet<u64>) -> Result<(), ClusterError> {
        let _ = voters;
        Err(ClusterError::Refused(
            "this cluster does not change membership".into(),
        ))
    }
}
