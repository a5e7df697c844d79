//! Every node holds the same state at the same applied index.
//!
//! After healing, each node's own applied state is read (`?consistency=local`) while its
//! `last_applied` stays put, and hashed; the hashes must be equal wherever the applied indexes
//! are. Where the server offers `GET /admin/digest` (a hash of its replicated column families
//! from one RocksDB snapshot, node-local data excluded), those must be equal too. A running node
//! whose state or digest cannot be read fails the check: nothing proves it equal.

use super::{FinalState, Verdict};

/// Runs the checker.
pub fn check(final_state: &FinalState) -> Verdict {
    let mut verdict = Verdict::new("convergence");
    let Some(first) = final_state.nodes.first() else {
        verdict.problem("no node's state could be read after healing".to_owned());
        return verdict;
    };
    for live in &final_state.live {
        if !final_state.nodes.iter().any(|n| n.node == *live) {
            verdict.problem(format!("node {live} runs but its state could not be read"));
        }
    }
    for node in &final_state.nodes {
        verdict.checked += 1;
        if node.server_digest.is_none() {
            verdict.problem(format!(
                "node {} at applied index {} gave no /admin/digest",
                node.node, node.applied
            ));
        }
        if node.applied != first.applied {
            verdict.problem(format!(
                "node {} settled at applied index {}, node {} at {}",
                node.node, node.applied, first.node, first.applied
            ));
            continue;
        }
        if node.digest != first.digest || node.orders != first.orders {
            verdict.problem(format!(
                "at applied index {}: node {} has {} orders (digest {}), node {} has {} ({})",
                node.applied,
                node.node,
                node.orders,
                node.digest,
                first.node,
                first.orders,
                first.digest
            ));
        }
        if node.server_digest != first.server_digest {
            verdict.problem(format!(
                "at applied index {}: node {} /admin/digest {:?}, node {} {:?}",
                node.applied, node.node, node.server_digest, first.node, first.server_digest
            ));
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::check::NodeState;

    fn node(node: u64, server_digest: Option<&str>) -> NodeState {
        NodeState {
            node,
            applied: 7,
            digest: "d".to_owned(),
            orders: 1,
            server_digest: server_digest.map(str::to_owned),
        }
    }

    #[test]
    fn equal_nodes_converge() {
        let state = FinalState {
            nodes: vec![node(1, Some("x")), node(2, Some("x"))],
            live: vec![1, 2],
            ..FinalState::default()
        };
        assert!(check(&state).passed);
    }

    #[test]
    fn a_live_node_without_its_state_or_digest_fails() {
        let unread = FinalState {
            nodes: vec![node(1, Some("x")), node(2, Some("x"))],
            live: vec![1, 2, 3],
            ..FinalState::default()
        };
        assert!(!check(&unread).passed);
        let no_digest = FinalState {
            nodes: vec![node(1, None), node(2, None)],
            live: vec![1, 2],
            ..FinalState::default()
        };
        assert_eq!(check(&no_digest).problems, 2);
    }
}
