//! Every node holds the same state at the same applied index.
//!
//! After healing, each node's own applied state is read (`?consistency=local`) while its
//! `last_applied` stays put, and hashed; the hashes must be equal wherever the applied indexes
//! are. Where the server offers `GET /admin/digest` (a hash of its replicated column families
//! from one RocksDB snapshot, node-local data excluded), those must be equal too.

use super::{FinalState, Verdict};

/// Runs the checker.
pub fn check(final_state: &FinalState) -> Verdict {
    let mut verdict = Verdict::new("convergence");
    let Some(first) = final_state.nodes.first() else {
        verdict.problem("no node's state could be read after healing".to_owned());
        return verdict;
    };
    for node in &final_state.nodes {
        verdict.checked += 1;
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
    if final_state.nodes.iter().all(|n| n.server_digest.is_none()) {
        verdict.note =
            "compared orders and SKUs read locally; the server has no /admin/digest".into();
    }
    verdict
}
