//! The node's side of `api::Cluster`: writes through the batcher, linearizable reads through
//! openraft, forwarding over HTTP to the leader's API, membership changes (learners, voters),
//! status and metrics from Raft's metrics.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use sm::command::Command;
use sm::outcome::Outcome;
use sm::raft_types::{NodeId, PeerAddr, Raft};
use sm::StateReader;

use api::handler::FORWARDED_HEADER;
use api::{
    Cluster, ClusterError, ClusterStatus, HttpReply, HttpRequest, LiveDeliveries, NodeStatus,
    PulledMessage, ReceiveLimits,
};
use tokio::sync::{mpsc, oneshot};

use crate::batcher::Batcher;
use crate::clock_watch::ClockWatch;
use crate::queue_handle::{PullRequest, QueueHandle};
use crate::quorum_contact::QuorumContact;
use crate::timer_service::TimerLag;

/// How long `POST /admin/snapshot` waits for the snapshot to be built.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(60);

/// How long `POST /admin/cluster/learners` waits for the learner to catch up.
const LEARNER_CATCH_UP_WAIT: Duration = Duration::from_secs(300);
/// How long `POST /admin/cluster/voters` waits for the change to commit.
const MEMBERSHIP_WAIT: Duration = Duration::from_secs(60);

/// Maps openraft's membership-change error to what the API acts on: forward to the leader, or a
/// refusal the operator must fix (409), or unavailable.
fn membership_error(e: RaftError<NodeId, ClientWriteError<NodeId, PeerAddr>>) -> ClusterError {
    match e {
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ClusterError::Refused(e.to_string())
        }
        other => crate::batcher::write_error(other),
    }
}

/// The cluster as this node's API sees it.
pub struct RaftCluster {
    /// The Raft handle.
    raft: Raft,
    /// Group commit for writes.
    batcher: Batcher,
    /// This node's applied state.
    reader: StateReader,
    /// Client for forwarding to the leader's API.
    http: reqwest::Client,
    /// Timer firing lag measured by this node's time wheel while it leads.
    timer_lag: Arc<TimerLag>,
    /// The consumer scheduler's pull requests and stats, while this node leads.
    queue: Arc<QueueHandle>,
    /// Whether this node, when it leads, still hears from a quorum.
    quorum: Arc<QuorumContact>,
    /// This node's clock offsets to the other voters.
    clock: Arc<ClockWatch>,
    /// `http` or `https`: how members' APIs are reached.
    api_scheme: &'static str,
    /// What this node measures beyond Raft's own state, registered with the API's registry.
    observed: Option<Observed>,
}

/// The node's series measured outside this type, handed in by `serve` for registration.
pub struct Observed {
    /// WAL sync and apply durations, committed index.
    pub store: sm::StoreMetrics,
    /// The scheduler's per-group histograms.
    pub deliveries: crate::delivery_metrics::DeliveryMetrics,
    /// The data directory, whose filesystem's free space is reported.
    pub data_dir: std::path::PathBuf,
}

impl RaftCluster {
    /// The cluster view over `raft`; forwarded requests leave from `raft_addr`'s IP.
    #[allow(clippy::too_many_arguments)] // each is a separate part of the node
    pub fn new(
        raft: Raft,
        batcher: Batcher,
        reader: StateReader,
        timer_lag: Arc<TimerLag>,
        quorum: Arc<QuorumContact>,
        clock: Arc<ClockWatch>,
        api_tls: crate::tls::ApiClientTls,
        raft_addr: std::net::SocketAddr,
    ) -> Result<Self, reqwest::Error> {
        // Forwarded requests leave from the Raft IP, like every other connection to a peer, so a
        // partition cuts API forwarding too (`network::peer_client_builder`).
        let http = api_tls
            .apply(crate::network::peer_client_builder(raft_addr))
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()?;
        Ok(RaftCluster {
            raft,
            batcher,
            reader,
            http,
            timer_lag,
            queue: Arc::new(QueueHandle::default()),
            quorum,
            clock,
            api_scheme: api_tls.scheme(),
            observed: None,
        })
    }

    /// Registers `observed` with the rest of the node's metrics.
    pub fn with_observed(self, observed: Observed) -> Self {
        RaftCluster {
            observed: Some(observed),
            ..self
        }
    }

    /// Serves pull requests through `queue` (shared with the leader's scheduler).
    pub fn with_queue(self, queue: Arc<QueueHandle>) -> Self {
        RaftCluster { queue, ..self }
    }

    /// The running scheduler's queue, or where to send the request instead.
    /// Sends the request `make` builds around its reply channel to the scheduler and waits for
    /// the answer.
    async fn ask_scheduler<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, ClusterError>>) -> PullRequest,
    ) -> Result<T, ClusterError> {
        let (reply, answer) = oneshot::channel();
        self.scheduler()?
            .send(make(reply))
            .await
            .map_err(|_| scheduler_gone())?;
        answer.await.map_err(|_| scheduler_gone())?
    }

    fn scheduler(&self) -> Result<mpsc::Sender<PullRequest>, ClusterError> {
        if let Some(requests) = self.queue.requests() {
            return Ok(requests);
        }
        let m = self.raft.metrics().borrow().clone();
        match m.current_leader {
            Some(leader) if leader != m.id => {
                let node = m.membership_config.membership().get_node(&leader).cloned();
                match node {
                    Some(node) => Err(ClusterError::ForwardTo {
                        leader_id: leader,
                        api_addr: node.api_addr,
                    }),
                    None => Err(ClusterError::NoLeader("leader address unknown".into())),
                }
            }
            Some(_) => Err(ClusterError::NoLeader(
                "the consumer scheduler is starting".into(),
            )),
            None => Err(ClusterError::NoLeader("no leader known yet".into())),
        }
    }
}

fn scheduler_gone() -> ClusterError {
    ClusterError::Unavailable("leadership changed while serving the request".into())
}

#[async_trait]
impl Cluster for RaftCluster {
    async fn write(&self, command: Command) -> Result<Outcome, ClusterError> {
        self.batcher.submit(command).await
    }

    async fn linearizable(&self) -> Result<(), ClusterError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                match (f.leader_id, f.leader_node) {
                    (Some(leader_id), Some(node)) => Err(ClusterError::ForwardTo {
                        leader_id,
                        api_addr: node.api_addr,
                    }),
                    _ => Err(ClusterError::NoLeader("no leader known yet".into())),
                }
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
                Err(ClusterError::NoLeader(e.to_string()))
            }
            Err(RaftError::Fatal(e)) => Err(ClusterError::Unavailable(e.to_string())),
        }
    }

    fn reader(&self) -> &StateReader {
        &self.reader
    }

    async fn forward(
        &self,
        api_addr: &str,
        request: &HttpRequest,
    ) -> Result<HttpReply, ClusterError> {
        let mut url = format!("{}://{api_addr}{}", self.api_scheme, request.path);
        if let Some(query) = &request.query {
            url.push('?');
            url.push_str(query);
        }
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        let mut builder = self.http.request(method, url).header(FORWARDED_HEADER, "1");
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let response = builder
            .body(request.body.clone())
            .send()
            .await
            .map_err(|e| {
                ClusterError::NoLeader(format!("leader at {api_addr} unreachable: {e}"))
            })?;
        let status = response.status().as_u16();
        let headers = ["content-type", "retry-after"]
            .iter()
            .filter_map(|name| {
                let value = response.headers().get(*name)?.to_str().ok()?;
                Some((name.to_string(), value.to_string()))
            })
            .collect();
        let body = response
            .bytes()
            .await
            .map_err(|e| ClusterError::Unavailable(format!("leader's answer was cut: {e}")))?;
        Ok(HttpReply {
            status,
            headers,
            body,
        })
    }

    fn now_ms(&self) -> i64 {
        crate::clock::now_ms()
    }

    fn status(&self) -> ClusterStatus {
        let m = self.raft.metrics().borrow().clone();
        let offsets = self.clock.offsets();
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let learners: Vec<u64> = membership.learner_ids().collect();
        let nodes = membership
            .nodes()
            .map(|(id, addr)| NodeStatus {
                id: *id,
                api_addr: addr.api_addr.clone(),
                raft_addr: addr.raft_addr.clone(),
                matched_index: m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id).cloned().flatten())
                    .map(|l| l.index),
                clock_offset_ms: offsets.get(id).copied(),
            })
            .collect();
        ClusterStatus {
            quorum_lost: !self.quorum.in_contact(&m),
            clock_skewed: self.clock.is_skewed(),
            node_id: m.id,
            leader_id: m.current_leader,
            term: m.current_term,
            voters,
            learners,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            last_purged_index: m.purged.map(|l| l.index),
            nodes,
        }
    }

    async fn snapshot(&self) -> Result<u64, ClusterError> {
        let target = self
            .raft
            .metrics()
            .borrow()
            .last_applied
            .map(|l| l.index)
            .unwrap_or(0);
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        let built = self
            .raft
            .wait(Some(SNAPSHOT_WAIT))
            .metrics(
                |m| m.snapshot.is_some_and(|s| s.index >= target),
                "snapshot covers the applied state",
            )
            .await
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        Ok(built.snapshot.map(|s| s.index).unwrap_or(0))
    }

    async fn add_learner(
        &self,
        node_id: u64,
        api_addr: String,
        raft_addr: String,
    ) -> Result<(), ClusterError> {
        let node = PeerAddr {
            raft_addr,
            api_addr,
        };
        let membership = self.raft.metrics().borrow().membership_config.clone();
        crate::membership_check::check_learner(membership.membership(), node_id, &node)?;
        let added = tokio::time::timeout(
            LEARNER_CATCH_UP_WAIT,
            self.raft.add_learner(node_id, node, true),
        )
        .await
        .map_err(|_| {
            ClusterError::Unavailable(format!(
                "node {node_id} was added but has not caught up within {LEARNER_CATCH_UP_WAIT:?}; \
                 see GET /admin/cluster"
            ))
        })?;
        added.map(|_| ()).map_err(membership_error)
    }

    async fn change_voters(&self, voters: BTreeSet<u64>) -> Result<(), ClusterError> {
        crate::membership_check::check_voters(&self.raft.metrics().borrow(), &voters)?;
        let changed =
            tokio::time::timeout(MEMBERSHIP_WAIT, self.raft.change_membership(voters, false))
                .await
                .map_err(|_| {
                    ClusterError::Unavailable(format!(
                        "the membership change did not commit within {MEMBERSHIP_WAIT:?}"
                    ))
                })?;
        changed.map(|_| ()).map_err(membership_error)
    }

    async fn receive(
        &self,
        group: &str,
        limits: ReceiveLimits,
    ) -> Result<Vec<PulledMessage>, ClusterError> {
        self.ask_scheduler(|reply| PullRequest::Receive {
            group: group.to_string(),
            limits,
            reply,
        })
        .await
    }

    async fn settle_receipts(
        &self,
        group: &str,
        receipts: Vec<String>,
        nack_delay_ms: Option<u64>,
    ) -> Result<u64, ClusterError> {
        self.ask_scheduler(|reply| PullRequest::Settle {
            group: group.to_string(),
            receipts,
            nack_delay_ms,
            reply,
        })
        .await
    }

    fn live_deliveries(&self) -> std::collections::HashMap<String, LiveDeliveries> {
        self.queue.live()
    }

    fn timer_lag_p99_ms(&self) -> Option<u64> {
        self.timer_lag.p99_ms()
    }

    fn register_metrics(&self, metrics: &mut api::metrics::Metrics) {
        metrics
            .root()
            .register_collector(Box::new(crate::process_metrics::ProcessMetrics));
        let orderq = metrics.orderq();
        orderq.register_collector(Box::new(crate::raft_metrics::RaftMetrics {
            raft: self.raft.clone(),
            batcher: self.batcher.clone(),
            reader: self.reader.clone(),
            clock: self.clock.clone(),
            quorum: self.quorum.clone(),
        }));
        self.batcher.register_metrics(orderq);
        self.timer_lag.register(orderq);
        if let Some(observed) = &self.observed {
            observed.store.register(orderq);
            observed.deliveries.register(orderq);
            orderq.register_collector(Box::new(crate::storage_metrics::StorageMetrics {
                reader: self.reader.clone(),
                data_dir: observed.data_dir.clone(),
            }));
        }
    }
}
