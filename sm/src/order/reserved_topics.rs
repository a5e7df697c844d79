//! Topics only the state machine writes: the order life cycle's events (`order.*`) and every
//! topic a built-in group consumes (the refund group's `order.refund_requested`).
//!
//! A message in one of them is acted on as a fact (an `order.paid` ships goods; an
//! `order.refund_requested` makes the payment provider pay money back), so a client's publish
//! into one would forge that fact. `apply` refuses such a publish itself, not only the API: the
//! decision is a pure function of the topic name, the same on every replica.

use super::event::REFUND_REQUESTED;
use super::refund::REFUND_GROUP;

/// Prefix of the order life cycle's topics.
pub const ORDER_EVENT_PREFIX: &str = "order.";

/// Every built-in group with the topic it consumes.
pub const BUILT_IN_GROUPS: &[(&str, &str)] = &[(REFUND_GROUP, REFUND_REQUESTED)];

/// Whether `topic` is written only by `apply`, never by a client's publish.
pub fn is_reserved(topic: &str) -> bool {
    topic.starts_with(ORDER_EVENT_PREFIX)
        || BUILT_IN_GROUPS
            .iter()
            .any(|(_, consumed)| *consumed == topic)
}

/// Whether `group` is a built-in group, which only the state machine settles.
pub fn is_built_in_group(group: &str) -> bool {
    BUILT_IN_GROUPS
        .iter()
        .any(|(built_in, _)| *built_in == group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_events_and_built_in_topics_are_reserved() {
        assert!(is_reserved("order.paid"));
        assert!(is_reserved("order.refund_requested"));
        assert!(is_reserved("order.anything"));
        assert!(!is_reserved("orders"));
        assert!(!is_reserved("shipping.order.paid"));
        assert!(is_built_in_group(REFUND_GROUP));
        assert!(!is_built_in_group("points"));
    }
}
