//! Refusing to start a node whose data was lost while the cluster still counts it as a member.
//!
//! A node restarted under the same id with an empty data directory has forgotten its vote and
//! the entries it acknowledged. Letting it rejoin can undo a committed write (its old votes made
//! up a quorum), and openraft's leader panics when a follower's log goes backwards. So a node
//! that starts with no Raft state first asks its peers whether the leader has already replicated
//! entries to it (its matched index); if so, it stops with an explanation instead of rejoining.
//! The operator removes the lost member and adds the machine back under a new id. A member that
//! never received anything (a cluster's first start, where the initialiser lists every voter at
//! once) has no matched index and starts normally.
//!
//! `orderq restore` asks the same question before it seeds a data directory: a restored node
//! starts with a vote and a log position of its own, so the check at start would not catch it.
//!
//! Peers that cannot be reached say nothing: on a cluster's very first start nobody answers yet,
//! and the check must not block it.

use std::time::Duration;

use openraft::storage::RaftLogStorage;
use serde::Deserialize;
use sm::LogStore;

use crate::config::Config;

/// How long each peer gets to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// A node that must not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "node {node_id} has no Raft data, but the leader at {peer} has replicated entries up to \
     {matched_index} to it: its data directory was lost or wiped. Remove it from the cluster \
     (POST /admin/cluster/voters without {node_id}) and add this machine under a new id"
)]
pub struct WipedMember {
    /// This node.
    pub node_id: u64,
    /// The leader's API that remembers it.
    pub peer: String,
    /// What the leader had replicated to it.
    pub matched_index: u64,
}

/// The part of `GET /admin/cluster` the check reads.
#[derive(Deserialize)]
struct PeerView {
    /// Every member, with the leader's replication progress.
    nodes: Vec<MemberView>,
}

/// One member in [`PeerView`].
#[derive(Deserialize)]
struct MemberView {
    /// Its id.
    id: u64,
    /// What the leader has replicated to it (only the leader reports it).
    matched_index: Option<u64>,
}

/// Whether `log` holds nothing at all: no vote, no entry, nothing purged.
async fn is_empty(log: &LogStore) -> bool {
    let mut log = log.clone();
    let vote = log.read_vote().await.ok().flatten();
    let state = log.get_log_state().await.ok();
    vote.is_none()
        && state.is_some_and(|s| s.last_log_id.is_none() && s.last_purged_log_id.is_none())
}

/// Fails when this node starts empty while the leader has already replicated entries to it.
pub async fn check(config: &Config, log: &LogStore) -> Result<(), WipedMember> {
    if !is_empty(log).await {
        return Ok(());
    }
    ask_peers(config).await
}

/// Fails when a peer's leader reports having replicated entries to this node id: a live cluster
/// counts it as a member. Asked before a node starts with no Raft state, and before a restore
/// gives a node id data of its own.
pub async fn ask_peers(config: &Config) -> Result<(), WipedMember> {
    let Ok(api_tls) = crate::tls::ApiClientTls::from_config(&config.tls) else {
        return Ok(());
    };
    let Ok(http) = api_tls
        .apply(reqwest::Client::builder())
        .timeout(ASK_TIMEOUT)
        .no_proxy()
        .build()
    else {
        return Ok(());
    };
    for peer in config.peers.iter().filter(|p| p.id != config.node_id) {
        let mut request = http.get(format!(
            "{}://{}/admin/cluster",
            api_tls.scheme(),
            peer.api_addr
        ));
        if !config.admin_token.is_empty() {
            request = request.bearer_auth(config.admin_token.expose());
        }
        let Ok(response) = request.send().await else {
            continue;
        };
        let Ok(view) = response.json::<PeerView>().await else {
            continue;
        };
        let matched = view
            .nodes
            .iter()
            .find(|n| n.id == config.node_id)
            .and_then(|n| n.matched_index)
            .unwrap_or(0);
        if matched > 0 {
            return Err(WipedMember {
                node_id: config.node_id,
                peer: peer.api_addr.clone(),
                matched_index: matched,
            });
        }
    }
    Ok(())
}
