//! The Raft network, server side: the peer port. Refuses any request without the cluster secret
//! (401; compared in constant time, and an empty secret never passes, so a lone node without
//! one refuses every peer request) and hands decoded RPCs to openraft.

use std::net::SocketAddr;

use bytes::Bytes;
use futures::FutureExt;
use openraft::error::{InstallSnapshotError, RaftError};
use prost::Message;
use sm::raft_types::{NodeId, Raft};
use warp::http::{Response, StatusCode};
use warp::hyper::Body;
use warp::Filter;

use crate::batcher::Batcher;
use crate::peer_wire::{
    AnswerMsg, AppendMsg, AppendReplyMsg, ClockReplyMsg, ProposeMsg, ProposeReplyMsg, SnapshotMsg,
    SnapshotReplyMsg, VoteMsg, VoteReplyMsg, WireError, SECRET_HEADER, TARGET_HEADER,
};
use crate::secrets::Secret;

/// Largest peer message accepted: snapshot chunks and entry batches stay far below it.
const MAX_PEER_BODY: u64 = 256 << 20;

fn reply(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
}

fn failure(status: StatusCode, message: impl std::fmt::Display) -> Response<Body> {
    reply(status, message.to_string().into_bytes())
}

/// Answers a follower's forwarded batch: each command through this node's batcher, never
/// forwarded again; all answered together, in order.
async fn propose(batcher: &Batcher, msg: ProposeMsg) -> Vec<u8> {
    let answers = futures::future::join_all(
        msg.commands
            .into_iter()
            .map(|command| batcher.submit_forwarded(command)),
    )
    .await;
    ProposeReplyMsg {
        answers: answers.iter().map(AnswerMsg::from_answer).collect(),
    }
    .encode_to_vec()
}

async fn handle(
    raft: Raft,
    batcher: Batcher,
    rpc: String,
    body: Bytes,
) -> Result<Vec<u8>, (StatusCode, String)> {
    let bad = |e: WireError| (StatusCode::BAD_REQUEST, e.to_string());
    let decode_err = |e: prost::DecodeError| (StatusCode::BAD_REQUEST, e.to_string());
    let failed = |e: String| (StatusCode::SERVICE_UNAVAILABLE, e);
    match rpc.as_str() {
        crate::peer_wire::APPEND_PATH => {
            let req = AppendMsg::decode(body)
                .map_err(decode_err)?
                .into_raft()
                .map_err(bad)?;
            let resp = raft
                .append_entries(req)
                .await
                .map_err(|e| failed(e.to_string()))?;
            Ok(AppendReplyMsg::from_raft(&resp).encode_to_vec())
        }
        crate::peer_wire::VOTE_PATH => {
            let req = VoteMsg::decode(body)
                .map_err(decode_err)?
                .into_raft()
                .map_err(bad)?;
            let resp = raft.vote(req).await.map_err(|e| failed(e.to_string()))?;
            Ok(VoteReplyMsg::from_raft(&resp).encode_to_vec())
        }
        crate::peer_wire::SNAPSHOT_PATH => {
            let req = SnapshotMsg::decode(body)
                .map_err(decode_err)?
                .into_raft()
                .map_err(bad)?;
            // openraft writes a chunk at the position it last left the file and keeps its own
            // offset beside it; a chunk cancelled half-written (the sender gave up and closed
            // the connection, dropping this handler) leaves the two apart, and every later chunk
            // lands in the wrong place. So a chunk, once started, runs to its end on its own task.
            let raft = raft.clone();
            let installed = tokio::spawn(async move { raft.install_snapshot(req).await })
                .await
                .map_err(|e| failed(e.to_string()))?;
            match installed {
                Ok(resp) => Ok(SnapshotReplyMsg::from_raft(&resp).encode_to_vec()),
                Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m))) => {
                    Ok(SnapshotReplyMsg::mismatch(&m.expect, &m.got).encode_to_vec())
                }
                Err(e) => Err(failed(e.to_string())),
            }
        }
        crate::peer_wire::CLOCK_PATH => Ok(ClockReplyMsg {
            now_ms: crate::clock::now_ms(),
        }
        .encode_to_vec()),
        crate::peer_wire::PROPOSE_PATH => {
            let msg = ProposeMsg::decode(body).map_err(decode_err)?;
            Ok(propose(&batcher, msg).await)
        }
        other => Err((StatusCode::NOT_FOUND, format!("no peer RPC {other}"))),
    }
}

/// Binds the peer port on `addr` and serves it until `shutdown` resolves. RPCs meant for another
/// node id are refused: a member registered at this node's address under another id must look
/// unreachable, never like a second node (openraft panics when a leader hears itself).
pub fn bind(
    node_id: NodeId,
    raft: Raft,
    batcher: Batcher,
    secret: Secret,
    addr: SocketAddr,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, futures::future::BoxFuture<'static, ()>)> {
    let routes = warp::post()
        .and(warp::path("raft"))
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::header::optional::<String>(SECRET_HEADER))
        .and(warp::header::optional::<String>(TARGET_HEADER))
        .and(warp::body::content_length_limit(MAX_PEER_BODY))
        .and(warp::body::bytes())
        .then(
            move |rpc: String, presented: Option<String>, target: Option<String>, body: Bytes| {
                let raft = raft.clone();
                let batcher = batcher.clone();
                let secret = secret.clone();
                async move {
                    // Constant time; an empty secret (a lone node) or an empty header never passes.
                    if !presented.as_deref().is_some_and(|p| secret.matches(p)) {
                        return failure(
                            StatusCode::UNAUTHORIZED,
                            "missing or wrong cluster secret",
                        );
                    }
                    if let Some(target) = target.filter(|t| *t != node_id.to_string()) {
                        return failure(
                            StatusCode::MISDIRECTED_REQUEST,
                            format!("this is node {node_id}, not node {target}"),
                        );
                    }
                    match handle(raft, batcher, rpc, body).await {
                        Ok(bytes) => reply(StatusCode::OK, bytes),
                        Err((status, message)) => failure(status, message),
                    }
                }
            },
        );
    match tls {
        // Mutual TLS: the handshake already refused a client without a certificate signed by
        // the cluster CA; the secret is still checked.
        Some(tls) => crate::tls::serve(warp::service(routes), addr, tls, shutdown)
            .map(|(bound, server)| (bound, server.boxed())),
        None => warp::serve(routes)
            .try_bind_with_graceful_shutdown(addr, shutdown)
            .map(|(bound, server)| (bound, server.boxed()))
            .map_err(std::io::Error::other),
    }
}
