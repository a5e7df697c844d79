//! The checkers: each judges the [`History`] of a run, together with the state read after every
//! fault was healed, and gives a [`Verdict`].
//!
//! - [`durability`]: no acknowledged write lost; nothing read or stored that was never written.
//! - [`stock`]: per SKU, `available + reserved + sold == stock`, none negative, reserved and
//!   sold equal to what the orders hold, per-user limits kept; at every read and at the end.
//! - [`transitions`]: order states only move forward, closed at most once, never both paid and
//!   closed, one payment.
//! - [`convergence`]: every node holds the same state at the same applied index.
//! - [`linearizable`]: the single-order operations (create, pay, cancel, linearizable read)
//!   have a legal sequential order within their real-time intervals (a WGL search).
//! - [`progress`]: after each fault heals, writes are acknowledged again within a bound, and
//!   the healthy time of the run acknowledged at least a floor of writes per minute.
//!
//! - [`paid_events`]: every paid order's `order.paid` reached the webhook at least once.
//! - [`publishes`]: every acknowledged publish reached its subscription at least once, and
//!   nothing arrived that nobody published.
//! - [`refunds`]: every refund requested ended `refunded` or `refund_failed`, and every
//!   `refunded` order was acknowledged by the payment provider.
//!
//! - [`pulls`]: every message a crashed pull consumer leased came again, and every
//!   acknowledged publish reached the pull group.
//! - [`timers`]: no order closed before its deadline (by the cluster's clock and the client's),
//!   every unpaid order closed within two seconds of it while the cluster is healthy, none lost.
//!
//! The queue checkers share [`delivery`]: what arrived per message, duplicates counted.

pub mod convergence;
pub mod delivery;
pub mod durability;
pub mod linearizable;
pub mod paid_events;
pub mod progress;
pub mod publishes;
pub mod pulls;
pub mod refunds;
pub mod stock;
pub mod timers;
pub mod transitions;

use std::collections::BTreeMap;

use serde::Serialize;

use super::history::{History, OpKind, Operation, Outcome};
use super::workload::WorkloadPlan;
use crate::model::{Order, OrderState, Sku};
use crate::queue::SubscriptionStats;
use crate::receiver::Received;

/// How many problems a verdict lists (it counts them all).
const MAX_LISTED: usize = 20;

/// One checker's judgement.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The checker's name.
    pub checker: &'static str,
    /// Whether every property it checks held.
    pub passed: bool,
    /// How many things it looked at (orders, reads, SKUs, nodes).
    pub checked: u64,
    /// How many problems it found.
    pub problems: u64,
    /// The first problems, in words.
    pub examples: Vec<String>,
    /// Anything the reader should know (what was skipped and why).
    pub note: String,
    /// Named figures the checker adds up (the queue checkers: delivered, missing, duplicates),
    /// so a passing run still shows how much at-least-once delivery had to repeat.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<&'static str, u64>,
}

impl Verdict {
    /// A verdict collecting problems as they are found.
    pub fn new(checker: &'static str) -> Self {
        Verdict {
            checker,
            passed: true,
            checked: 0,
            problems: 0,
            examples: Vec::new(),
            note: String::new(),
            counts: BTreeMap::new(),
        }
    }

    /// A verdict that could not be reached because the final state could not be read.
    pub fn not_judged(checker: &'static str) -> Self {
        let mut verdict = Verdict::new(checker);
        verdict.problem("not judged: the final state could not be read (see the incidents)".into());
        verdict
    }

    /// Records one problem.
    pub fn problem(&mut self, what: String) {
        self.passed = false;
        self.problems += 1;
        if self.examples.len() < MAX_LISTED {
            self.examples.push(what);
        }
    }
}

/// What one node holds after healing, read from its own applied state.
#[derive(Debug, Clone, Serialize)]
pub struct NodeState {
    /// Node id.
    pub node: u64,
    /// Its `last_applied` when read (the same before and after reading).
    pub applied: u64,
    /// A hash of every order and SKU it serves locally.
    pub digest: String,
    /// Orders it holds.
    pub orders: usize,
    /// The server's own digest (`GET /admin/digest`) when it has one.
    pub server_digest: Option<String>,
}

/// The state after every fault was healed and the cluster settled.
#[derive(Debug, Clone, Default)]
pub struct FinalState {
    /// Whether the orders and SKUs below were read at all. When not, the checkers that compare
    /// against them say so instead of reporting every order lost.
    pub read: bool,
    /// When (run milliseconds) the final state was read: deadlines long past by then must
    /// have closed their orders.
    pub read_ms: u64,
    /// Every order of every workload user, as the first node holds them at the settled index.
    pub orders: BTreeMap<String, Order>,
    /// Every workload SKU, at the same index.
    pub skus: BTreeMap<String, Sku>,
    /// Each node's local state.
    pub nodes: Vec<NodeState>,
    /// The nodes running when the state was read: each must be in `nodes`, or convergence
    /// fails (a node that cannot show its state is not proven equal).
    pub live: Vec<u64>,
    /// What the harness's webhook receiver and payment provider received.
    pub deliveries: Deliveries,
}

/// What arrived at the harness's end of the queue after the queue drained.
#[derive(Debug, Clone, Default)]
pub struct Deliveries {
    /// Whether every group had drained (nothing waiting, retrying or in flight) when these were
    /// taken; when not, a missing delivery may still have been on its way (see the incidents).
    pub drained: bool,
    /// Every call the webhook receiver got (`order.paid` and the published topic).
    pub webhook_calls: Vec<Received>,
    /// Every refund call the payment provider got.
    pub provider_calls: Vec<Received>,
    /// The harness's groups as `GET /admin/subscriptions` last showed them.
    pub groups: Vec<SubscriptionStats>,
    /// Every lease the harness's pull consumers got, crashed consumers' included.
    pub pull_leases: Vec<crate::chaos::pull_consumers::Lease>,
}

/// Runs every checker; `faults` are the faults injected, in order, into a workload that ran
/// until `workload_end_ms`.
pub fn run_all(
    history: &History,
    plan: &WorkloadPlan,
    final_state: &FinalState,
    faults: &[progress::FaultWindow],
    workload_end_ms: u64,
) -> Vec<Verdict> {
    let operations = history.operations();
    let (durability, stock) = if final_state.read {
        (
            durability::check(&operations, final_state),
            stock::check(&operations, plan, final_state),
        )
    } else {
        (
            Verdict::not_judged("durability"),
            Verdict::not_judged("stock"),
        )
    };
    let spans = progress::unhealthy_spans(&operations, faults, workload_end_ms);
    vec![
        durability,
        stock,
        transitions::check(&operations, final_state),
        convergence::check(final_state),
        linearizable::check(&operations),
        progress::check(&operations, faults, workload_end_ms),
        paid_events::check(&operations, final_state),
        publishes::check(&operations, plan, final_state),
        refunds::check(&operations, final_state),
        pulls::check(&operations, final_state),
        timers::check(
            &operations,
            final_state,
            &spans,
            history.started_epoch_ms(),
            workload_end_ms,
            final_state.read_ms,
        ),
    ]
}

/// The order an operation's answer carries (creates, seckills, pays, cancels, refunds and order
/// reads answer with the order).
pub fn answered_order(operation: &Operation) -> Option<Order> {
    match (&operation.kind, &operation.outcome) {
        (OpKind::ReadSku { .. } | OpKind::Publish { .. }, _) => None,
        (_, Outcome::Ok { body, .. }) => serde_json::from_value(body.clone()).ok(),
        _ => None,
    }
}

/// How far along its life an order is: pending 0, closed or paid 1, refund states 2 and 3.
pub fn rank(state: OrderState) -> u8 {
    match state {
        OrderState::PendingPayment => 0,
        OrderState::Paid | OrderState::Closed => 1,
        OrderState::RefundRequested => 2,
        OrderState::Refunded | OrderState::RefundFailed => 3,
    }
}

/// Whether a state is on the paid branch (paid and the refund states).
pub fn is_paid_branch(state: OrderState) -> bool {
    matches!(
        state,
        OrderState::Paid
            | OrderState::RefundRequested
            | OrderState::Refunded
            | OrderState::RefundFailed
    )
}

/// Builders shared by the checkers' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// An order `id` of user `u1` for 2 units of `A`, in `state`.
    pub fn order(id: &str, state: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut order = serde_json::json!({
            "id": id, "user_id": "u1", "items": [{"sku": "A", "qty": 2, "price_cents": 10}],
            "amount_cents": 20, "state": state, "close_reason": null, "payment_ref": null,
            "created_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-01T00:10:00Z",
            "paid_at": null, "closed_at": null, "refunded_at": null
        });
        if let (Some(order), Some(extra)) = (order.as_object_mut(), extra.as_object()) {
            order.extend(extra.clone());
        }
        order
    }

    /// A finished operation by client 0.
    pub fn op(kind: OpKind, at: (u64, u64), outcome: Outcome) -> Operation {
        Operation {
            client: 0,
            node: 1,
            kind,
            invoked_ms: at.0,
            completed_ms: at.1,
            attempts: 1,
            outcome,
        }
    }

    /// A 2xx outcome with `body`.
    pub fn ok(body: serde_json::Value) -> Outcome {
        Outcome::Ok { status: 200, body }
    }

    /// The create of [`order`] `id`, acknowledged.
    pub fn created(id: &str) -> Operation {
        op(
            OpKind::CreateOrder {
                key: format!("k-{id}"),
                user_id: "u1".into(),
                items: vec![("A".into(), 2)],
                pay_within_secs: 600,
            },
            (0, 1),
            ok(order(id, "pending_payment", serde_json::json!({}))),
        )
    }

    /// A final state holding `orders` (as JSON) and nothing else.
    pub fn final_state(orders: &[serde_json::Value]) -> FinalState {
        let mut state = FinalState {
            read: true,
            ..FinalState::default()
        };
        for order in orders {
            let order: Order = serde_json::from_value(order.clone()).expect("an order");
            state.orders.insert(order.id.clone(), order);
        }
        state
    }
}
