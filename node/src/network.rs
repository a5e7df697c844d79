//! The Raft network, client side: openraft's RPCs as HTTP POSTs with prost bodies to the peer's
//! Raft port, each carrying the cluster secret.

use std::net::SocketAddr;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, SnapshotMismatch,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::SnapshotSegmentId;
use prost::Message;
use sm::raft_types::{NodeId, PeerAddr, TypeConfig};

use crate::peer_wire::{
    AppendMsg, AppendReplyMsg, SnapshotMsg, SnapshotReplyMsg, VoteMsg, VoteReplyMsg, WireError,
    APPEND_PATH, SECRET_HEADER, SNAPSHOT_PATH, TARGET_HEADER, VOTE_PATH,
};

/// How this node reaches peers' Raft ports: from its Raft address (see [`peer_client_builder`]),
/// over mutual TLS when `[tls] peer_ca_file` is set.
#[derive(Clone)]
pub struct PeerTransport {
    /// This node's Raft address.
    raft_addr: SocketAddr,
    /// This node's certificate and the cluster CA; `None`: plain HTTP.
    tls: Option<crate::tls::PeerClientTls>,
}

impl PeerTransport {
    /// Connections from `raft_addr`, over mutual TLS with `tls`.
    pub fn new(raft_addr: SocketAddr, tls: Option<crate::tls::PeerClientTls>) -> Self {
        PeerTransport { raft_addr, tls }
    }

    /// A client builder for a peer's Raft port.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let builder = peer_client_builder(self.raft_addr);
        match &self.tls {
            Some(tls) => tls.apply(builder),
            None => builder,
        }
    }

    /// `https` with mutual TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Builds one [`PeerClient`] per target; they share one HTTP connection pool.
#[derive(Clone)]
pub struct PeerNetwork {
    /// Pooled HTTP client.
    http: reqwest::Client,
    /// The cluster secret presented to peers.
    secret: String,
    /// Most bytes of entries one `AppendEntries` carries (see [`AppendMsg::from_raft`]).
    max_append_bytes: usize,
    /// `http` or `https`.
    scheme: &'static str,
}

impl PeerNetwork {
    /// A network presenting `secret` over `transport`, connecting from this node's Raft IP when
    /// it is a loopback address.
    ///
    /// Binding the source IP lets a test give each node its own loopback address (127.0.0.11,
    /// 127.0.0.12, ...) and tell, at a proxy in front of a peer, which node a connection comes
    /// from, so single links can be cut. Only loopback IPs are bound: a node listening on a
    /// routable or unspecified address keeps the kernel's choice of source, exactly as before.
    pub fn new(
        secret: String,
        transport: &PeerTransport,
        max_append_bytes: usize,
    ) -> Result<Self, reqwest::Error> {
        let http = transport
            .client_builder()
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()?;
        Ok(PeerNetwork {
            http,
            secret,
            max_append_bytes,
            scheme: transport.scheme(),
        })
    }
}

/// An HTTP client builder for any connection to a peer's Raft port (Raft RPCs, forwarded writes,
/// clock probes): it connects from `raft_addr`'s IP when that is a loopback address, so a proxy
/// in front of a peer tells every connection of this node by its source and a partition cuts
/// all of them; it never goes through an HTTP proxy from the environment.
pub fn peer_client_builder(raft_addr: SocketAddr) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder().no_proxy();
    if raft_addr.ip().is_loopback() {
        builder.local_address(raft_addr.ip())
    } else {
        builder
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &PeerAddr) -> Self::Network {
        PeerClient {
            http: self.http.clone(),
            secret: self.secret.clone(),
            max_append_bytes: self.max_append_bytes,
            target,
            base: format!("{}://{}/raft/", self.scheme, node.raft_addr),
        }
    }
}

/// The connection to one peer.
pub struct PeerClient {
    /// Pooled HTTP client.
    http: reqwest::Client,
    /// The cluster secret.
    secret: String,
    /// Most bytes of entries one `AppendEntries` carries.
    max_append_bytes: usize,
    /// The peer's node id.
    target: NodeId,
    /// `http://raft_addr/raft/`.
    base: String,
}

/// What can go wrong on one RPC before openraft's own error types are chosen.
enum CallError {
    /// The peer could not be reached.
    Unreachable(String),
    /// The peer answered something unusable.
    Network(String),
}

impl<E: std::error::Error> From<CallError> for RPCError<NodeId, PeerAddr, E> {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Unreachable(m) => {
                RPCError::Unreachable(Unreachable::new(&std::io::Error::other(m)))
            }
            CallError::Network(m) => {
                RPCError::Network(NetworkError::new(&std::io::Error::other(m)))
            }
        }
    }
}

impl From<WireError> for CallError {
    fn from(e: WireError) -> Self {
        CallError::Network(e.to_string())
    }
}

impl PeerClient {
    async fn call<Req: Message, Resp: Message + Default>(
        &self,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(SECRET_HEADER, &self.secret)
            .header(TARGET_HEADER, self.target.to_string())
            .header("content-type", "application/x-protobuf")
            .timeout(timeout)
            .body(req.encode_to_vec())
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    CallError::Unreachable(e.to_string())
                } else {
                    CallError::Network(e.to_string())
                }
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| CallError::Network(e.to_string()))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(CallError::Network(format!(
                "peer {} answered {status}: {text}",
                self.target
            )));
        }
        Resp::decode(body).map_err(|e| CallError::Network(e.to_string()))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, PeerAddr, RaftError<NodeId>>> {
        let (msg, sent_up_to) =
            AppendMsg::from_raft(&rpc, self.max_append_bytes).map_err(CallError::from)?;
        let reply: AppendReplyMsg = self.call(APPEND_PATH, &msg, option.hard_ttl()).await?;
        let reply = reply.into_raft().map_err(CallError::from)?;
        Ok(match (reply, sent_up_to) {
            (AppendEntriesResponse::Success, Some(last)) => {
                AppendEntriesResponse::PartialSuccess(Some(last))
            }
            (reply, _) => reply,
        })
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, PeerAddr, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let msg = SnapshotMsg::from_raft(&rpc).map_err(CallError::from)?;
        let reply: SnapshotReplyMsg = self.call(SNAPSHOT_PATH, &msg, option.hard_ttl()).await?;
        if let Some(expect_id) = reply.expect_id {
            let mismatch = SnapshotMismatch {
                expect: SnapshotSegmentId {
                    id: expect_id,
                    offset: reply.expect_offset,
                },
                got: SnapshotSegmentId {
                    id: reply.got_id,
                    offset: reply.got_offset,
                },
            };
            let err = RaftError::APIError(InstallSnapshotError::SnapshotMismatch(mismatch));
            return Err(RPCError::RemoteError(RemoteError::new(self.target, err)));
        }
        let vote = reply
            .vote
            .as_ref()
            .map(sm::raft_types::Vote::from)
            .ok_or_else(|| CallError::Network("snapshot reply without vote".into()))?;
        Ok(InstallSnapshotResponse { vote })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, PeerAddr, RaftError<NodeId>>> {
        let reply: VoteReplyMsg = self
            .call(VOTE_PATH, &VoteMsg::from_raft(&rpc), option.hard_ttl())
            .await?;
        Ok(reply.into_raft().map_err(CallError::from)?)
    }
}
