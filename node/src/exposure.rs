//! The start-up guard: a node that can be reached from beyond its own machine, or that talks to
//! peers, does not start without the secrets that protect it.
//!
//! - Any node with peers (or joining a cluster) needs `cluster_secret`: without it anyone who
//!   reaches its Raft port could vote, append entries or install a snapshot.
//! - A node whose API or Raft address is not loopback also needs `admin_token` and at least one
//!   `[[clients]]` entry: otherwise its API is open to the network.
//! - A lone node on loopback (`make run`) may run open, and says so in its log.
//!
//! The refusal is one line naming every missing setting, and the process exits 2 (as for any
//! bad configuration).

use std::net::SocketAddr;

use crate::config::Config;

/// Why a node may not start as configured: one line, naming the missing settings.
#[derive(Debug, thiserror::Error)]
#[error("refusing to start: {reason}; missing {}", missing.join(", "))]
pub struct Exposed {
    /// What makes the node need them (an address that is not loopback, peers).
    pub reason: String,
    /// The settings to add.
    pub missing: Vec<&'static str>,
}

fn is_loopback(addr: &str) -> bool {
    addr.parse::<SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
}

/// The first of the node's listening addresses that is not loopback, as `setting addr`.
fn exposed_address(config: &Config) -> Option<String> {
    [
        ("api_addr", &config.api_addr),
        ("raft_addr", &config.raft_addr),
    ]
    .into_iter()
    .find(|(_, addr)| !is_loopback(addr))
    .map(|(name, addr)| format!("{name} {addr} is not a loopback address"))
}

/// Whether the node talks to other nodes: more than itself among the peers, or joining.
fn has_peers(config: &Config) -> bool {
    config.join || config.peers.iter().any(|p| p.id != config.node_id)
}

/// Refuses a configuration that would leave a reachable node, or a cluster, unprotected.
pub fn check(config: &Config) -> Result<(), Exposed> {
    if let Some(reason) = exposed_address(config) {
        let missing: Vec<&'static str> = [
            ("cluster_secret", config.cluster_secret.is_empty()),
            ("admin_token", config.admin_token.is_empty()),
            ("[[clients]] (at least one)", config.clients.is_empty()),
        ]
        .into_iter()
        .filter_map(|(name, absent)| absent.then_some(name))
        .collect();
        if !missing.is_empty() {
            return Err(Exposed { reason, missing });
        }
    }
    if has_peers(config) && config.cluster_secret.is_empty() {
        return Err(Exposed {
            reason: "this node has peers".into(),
            missing: vec!["cluster_secret"],
        });
    }
    Ok(())
}

/// The parts of the API open to callers without a token (as `api::Access` decides): only on a
/// lone loopback node without tokens is anything open ([`check`] lets no other start that way).
pub fn open_parts(config: &Config) -> Vec<&'static str> {
    let mut open = Vec::new();
    if config.clients.is_empty() {
        open.push("/v1");
    }
    // With clients configured, /admin needs the admin token or a client with the admin scope.
    if config.admin_token.is_empty() && config.clients.is_empty() {
        open.push("/admin");
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Peer;
    use crate::secrets::Secret;

    fn lone() -> Config {
        let mut config = Config::default();
        config.peers.push(Peer {
            id: 1,
            raft_addr: config.raft_addr.clone(),
            api_addr: config.api_addr.clone(),
        });
        config
    }

    #[test]
    fn a_lone_loopback_node_may_run_open() {
        assert!(check(&lone()).is_ok());
        assert_eq!(open_parts(&lone()), vec!["/v1", "/admin"]);
    }

    #[test]
    fn a_reachable_node_needs_every_secret() {
        let mut config = lone();
        config.api_addr = "0.0.0.0:8080".into();
        let refused = check(&config).unwrap_err().to_string();
        assert_eq!(
            refused,
            "refusing to start: api_addr 0.0.0.0:8080 is not a loopback address; missing \
             cluster_secret, admin_token, [[clients]] (at least one)"
        );
        config.cluster_secret = Secret::from("s".to_string());
        config.admin_token = Secret::from("a".to_string());
        let refused = check(&config).unwrap_err();
        assert_eq!(refused.missing, vec!["[[clients]] (at least one)"]);
    }

    #[test]
    fn a_node_with_peers_needs_the_cluster_secret_even_on_loopback() {
        let mut config = lone();
        config.peers.push(Peer {
            id: 2,
            raft_addr: "127.0.0.1:9082".into(),
            api_addr: "127.0.0.1:8082".into(),
        });
        assert_eq!(check(&config).unwrap_err().missing, vec!["cluster_secret"]);
        config.cluster_secret = Secret::from("s".to_string());
        assert!(check(&config).is_ok());
    }
}
