//! Forwarding a follower's writes to the leader in batches, over the peer port.
//!
//! A write that reaches a follower used to travel on to the leader as its own HTTP request. Now
//! the follower's batcher coalesces its writes like the leader's does and sends each batch to the
//! leader in one [`ProposeMsg`]; the leader feeds the commands to its own batcher and answers each.
//!
//! This is the only way a write travels to the leader: the API never re-sends a write's HTTP
//! request. The answers are typed (see [`crate::peer_wire::AnswerMsg`]).
//!
//! To ensure correctness: one call sends a batch once. The leader submits forwarded commands so
//! that they are never forwarded again (a leader that has just lost leadership answers
//! `ForwardTo` instead, for a command it did not commit), so a batch cannot bounce between two
//! nodes that each believe the other leads; the follower's batcher alone retries, a bounded
//! number of times within the batch's deadline. A forward whose answer is lost leaves each
//! command's outcome unknown (`Unavailable`), is never retried, and the client retries with its
//! `Idempotency-Key`.

use std::time::Duration;

use api::ClusterError;
use prost::Message;
use sm::command::Command;
use sm::outcome::Outcome;
use tokio::time::Instant;

use crate::peer_wire::{AnswerMsg, ProposeMsg, ProposeReplyMsg, PROPOSE_PATH, SECRET_HEADER};

/// How long forwarding a batch may take in all, every try included: the batch's deadline.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// One command's answer as relayed from the leader.
pub type Answer = Result<Outcome, ClusterError>;

/// Sends batches of commands to the leader's peer port.
#[derive(Clone)]
pub struct WriteForwarder {
    /// Pooled HTTP client.
    http: reqwest::Client,
    /// The cluster secret the leader checks.
    secret: String,
    /// `http` or `https`.
    scheme: &'static str,
}

impl WriteForwarder {
    /// A forwarder presenting `secret`, connecting from this node's Raft address like every
    /// other peer connection (see [`crate::network::PeerTransport`]).
    pub fn new(
        secret: String,
        transport: &crate::network::PeerTransport,
    ) -> Result<Self, reqwest::Error> {
        let http = transport
            .client_builder()
            .connect_timeout(Duration::from_millis(500))
            .timeout(FORWARD_TIMEOUT)
            .tcp_nodelay(true)
            .build()?;
        Ok(WriteForwarder {
            http,
            secret,
            scheme: transport.scheme(),
        })
    }

    /// Proposes `commands` through the leader at `raft_addr`, waiting for its answer until
    /// `deadline`; answers one result per command.
    pub async fn forward(
        &self,
        raft_addr: &str,
        commands: Vec<Command>,
        deadline: Instant,
    ) -> Result<Vec<Answer>, ClusterError> {
        let count = commands.len();
        let unknown = |e: String| {
            ClusterError::Unavailable(format!("forwarding to the leader at {raft_addr}: {e}"))
        };
        let body = ProposeMsg { commands }.encode_to_vec();
        let response = self
            .http
            .post(format!("{}://{raft_addr}/raft/{PROPOSE_PATH}", self.scheme))
            .timeout(deadline.saturating_duration_since(Instant::now()))
            .header(SECRET_HEADER, &self.secret)
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    // Nothing was sent: the leader is unreachable, so there is no leader for us.
                    ClusterError::NoLeader(format!("leader at {raft_addr} unreachable: {e}"))
                } else {
                    unknown(e.to_string())
                }
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| unknown(e.to_string()))?;
        if !status.is_success() {
            return Err(unknown(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let reply = ProposeReplyMsg::decode(body).map_err(|e| unknown(e.to_string()))?;
        let answers = reply
            .answers
            .into_iter()
            .map(AnswerMsg::into_answer)
            .collect::<Result<Vec<Answer>, _>>()
            .map_err(|e| unknown(e.to_string()))?;
        if answers.len() != count {
            return Err(unknown(format!(
                "{} answers for {count} commands",
                answers.len()
            )));
        }
        Ok(answers)
    }
}
