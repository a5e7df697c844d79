//! Linearizable single-order operations: a Wing-Gong-Lowe search per order.
//!
//! An order is a small register with a life cycle. Its operations are the create that made it,
//! pays, cancels, refund requests and linearizable reads, each with its real-time interval `[invoked,
//! completed]`. The history is linearizable if some total order of the operations respects
//! real time (an operation that completed before another was invoked comes first) and replays
//! on the sequential model below to exactly the answers the clients got. Operations whose
//! outcome is unknown may take effect at any point after their invocation, or never.
//!
//! The model allows one spontaneous step: a pending order may close as expired at any moment
//! (the leader's time wheel, or a pay arriving after `expires_at`, does that). The refund states
//! are one model state: the provider's answer moves an order among them on its own.
//!
//! A pay carries no idempotency key: when it was retried and ended 409, an earlier attempt may
//! have paid the order before a refund request made the retry's answer 409, so such a pay is
//! judged as one that may or may not have taken effect within its interval.
//!
//! An order the search cannot decide (too many operations, or too many steps) fails the check:
//! a history nobody judged proves nothing.

use std::collections::{BTreeMap, HashSet};

use super::Verdict;
use crate::chaos::history::{OpKind, Operation, Outcome};
use crate::model::{Order, OrderState};

/// Orders with more operations than this are not searched: each is a problem.
const MAX_OPS: usize = 120;

/// Search steps per order before giving up as undecided: each undecided order is a problem.
const MAX_STEPS: u64 = 2_000_000;

/// The sequential model's state of one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum State {
    /// Not created yet.
    Absent,
    /// Created, unpaid.
    Pending,
    /// Paid with payment reference number `n` (references are numbered per order).
    Paid(u8),
    /// Closed; `true` when it expired, `false` when cancelled.
    Closed(bool),
    /// Paid with reference `n`, then a refund was requested (refund requested, refunded or
    /// refund failed).
    Refunding(u8),
}

/// What an operation did and what it answered, in the model's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Create answered with the new pending order.
    Create,
    /// Pay with reference `n` answered `Some(state)` (2xx) or refused with 409 (`None`).
    Pay(u8, Option<State>),
    /// Cancel answered `Some(state)` or refused with 409 (`None`).
    Cancel(Option<State>),
    /// A linearizable read (or a 404 on any operation: `Absent`) saw this.
    Read(State),
    /// A pay whose outcome is unknown.
    MaybePay(u8),
    /// A cancel whose outcome is unknown.
    MaybeCancel,
    /// A refund request answered `Some(state)` (2xx) or refused with 409 (`None`).
    Refund(Option<State>),
    /// A refund request whose outcome is unknown.
    MaybeRefund,
}

/// One operation in the search.
#[derive(Debug, Clone, Copy)]
struct Event {
    /// When it was invoked.
    invoked: u64,
    /// When it completed; `None` for unknown outcomes (it may land any time later, or never).
    completed: Option<u64>,
    /// Its effect and answer.
    step: Step,
}

/// The states `step` may lead to from `state`; empty when the answer is impossible there.
fn apply(state: State, step: Step) -> Vec<State> {
    use State::*;
    match (step, state) {
        (Step::Create, Absent) => vec![Pending],
        (Step::Create, _) => vec![],
        (Step::Read(seen), s) => {
            if seen == s {
                vec![s]
            } else {
                vec![]
            }
        }
        (Step::Pay(r, Some(Paid(a))), Pending) if a == r => vec![Paid(r)],
        (Step::Pay(r, Some(Paid(a))), Paid(b)) if a == r && b == r => vec![Paid(r)],
        (Step::Pay(_, Some(_)), _) => vec![],
        (Step::Pay(r, None), Paid(b)) if b != r => vec![state],
        (Step::Pay(_, None), Closed(_) | Refunding(_)) => vec![state],
        (Step::Pay(_, None), _) => vec![],
        (Step::Cancel(Some(Closed(false))), Pending | Closed(false)) => vec![Closed(false)],
        (Step::Cancel(Some(_)), _) => vec![],
        (Step::Cancel(None), Paid(_) | Closed(true) | Refunding(_)) => vec![state],
        (Step::Cancel(None), _) => vec![],
        (Step::MaybePay(r), Pending) => vec![Paid(r), Pending],
        (Step::MaybeCancel, Pending) => vec![Closed(false), Pending],
        // Asking again while the refund is pending answers the order; once the provider
        // answered (refunded, refund failed) it is refused: both are one model state.
        (Step::Refund(Some(Refunding(a))), Paid(b) | Refunding(b)) if a == b => vec![Refunding(a)],
        (Step::Refund(Some(_)), _) => vec![],
        (Step::Refund(None), Pending | Closed(_) | Refunding(_)) => vec![state],
        (Step::Refund(None), _) => vec![],
        (Step::MaybeRefund, Paid(r)) => vec![Refunding(r), state],
        (Step::MaybePay(_) | Step::MaybeCancel | Step::MaybeRefund, s) => vec![s],
    }
}

/// The model state an answered order shows, numbering payment references in `refs`.
fn state_of(order: &Order, refs: &mut Vec<String>) -> State {
    match order.state {
        OrderState::PendingPayment => State::Pending,
        OrderState::Closed => State::Closed(order.close_reason.as_deref() == Some("expired")),
        OrderState::Paid => {
            State::Paid(ref_number(order.payment_ref.as_deref().unwrap_or(""), refs))
        }
        OrderState::RefundRequested | OrderState::Refunded | OrderState::RefundFailed => {
            State::Refunding(ref_number(order.payment_ref.as_deref().unwrap_or(""), refs))
        }
    }
}

/// The number of payment reference `r` within one order.
fn ref_number(r: &str, refs: &mut Vec<String>) -> u8 {
    match refs.iter().position(|known| known == r) {
        Some(n) => n as u8,
        None => {
            refs.push(r.to_owned());
            (refs.len() - 1) as u8
        }
    }
}

/// Runs the checker over every order operated on.
pub fn check(operations: &[Operation]) -> Verdict {
    let mut verdict = Verdict::new("linearizable");
    let mut per_order: BTreeMap<String, Vec<&Operation>> = BTreeMap::new();
    for operation in operations {
        let id = match (&operation.kind, &operation.outcome) {
            (OpKind::CreateOrder { .. } | OpKind::Seckill { .. }, Outcome::Ok { body, .. }) => {
                body.get("id").and_then(|v| v.as_str()).map(str::to_owned)
            }
            (OpKind::ReadOrder { local: true, .. }, _) => None,
            (kind, _) => kind.order_id().map(str::to_owned),
        };
        if let Some(id) = id {
            per_order.entry(id).or_default().push(operation);
        }
    }
    let (mut skipped, mut undecided) = (0, 0);
    for (id, ops) in per_order {
        let events = events_of(&ops);
        verdict.checked += 1;
        if events.len() > MAX_OPS {
            skipped += 1;
            verdict.problem(format!(
                "order {id}: {} operations, more than the {MAX_OPS} the search takes",
                events.len()
            ));
            continue;
        }
        match search(&events) {
            Some(true) => {}
            Some(false) => verdict.problem(format!(
                "order {id}: no legal order of its {} operations: {}",
                events.len(),
                describe(&ops)
            )),
            None => {
                undecided += 1;
                verdict.problem(format!(
                    "order {id}: undecided after {MAX_STEPS} search steps ({} operations)",
                    events.len()
                ));
            }
        }
    }
    verdict.note = format!(
        "{skipped} orders with more than {MAX_OPS} operations skipped, {undecided} undecided \
         after {MAX_STEPS} steps"
    );
    verdict
}

/// The search events of one order's operations.
fn events_of(ops: &[&Operation]) -> Vec<Event> {
    let mut refs = Vec::new();
    let mut events = Vec::new();
    for operation in ops {
        let answered: Option<State> = match &operation.outcome {
            Outcome::Ok { body, .. } => serde_json::from_value::<Order>(body.clone())
                .ok()
                .map(|o| state_of(&o, &mut refs)),
            _ => None,
        };
        let step = match (&operation.kind, &operation.outcome) {
            (OpKind::CreateOrder { .. } | OpKind::Seckill { .. }, _) => Step::Create,
            (_, Outcome::Failed { status: 404, .. }) => Step::Read(State::Absent),
            (OpKind::Pay { payment_ref, .. }, Outcome::Ok { .. }) => {
                Step::Pay(ref_number(payment_ref, &mut refs), answered)
            }
            (OpKind::Pay { payment_ref, .. }, Outcome::Failed { status: 409, .. })
                if operation.attempts > 1 =>
            {
                Step::MaybePay(ref_number(payment_ref, &mut refs))
            }
            (OpKind::Pay { payment_ref, .. }, Outcome::Failed { status: 409, .. }) => {
                Step::Pay(ref_number(payment_ref, &mut refs), None)
            }
            (OpKind::Pay { payment_ref, .. }, Outcome::Unknown { .. }) => {
                Step::MaybePay(ref_number(payment_ref, &mut refs))
            }
            (OpKind::Cancel { .. }, Outcome::Ok { .. }) => Step::Cancel(answered),
            (OpKind::Cancel { .. }, Outcome::Failed { status: 409, .. }) => Step::Cancel(None),
            (OpKind::Cancel { .. }, Outcome::Unknown { .. }) => Step::MaybeCancel,
            (OpKind::Refund { .. }, Outcome::Ok { .. }) => Step::Refund(answered),
            (OpKind::Refund { .. }, Outcome::Failed { status: 409, .. }) => Step::Refund(None),
            (OpKind::Refund { .. }, Outcome::Unknown { .. }) => Step::MaybeRefund,
            (OpKind::ReadOrder { .. }, Outcome::Ok { .. }) => match answered {
                Some(state) => Step::Read(state),
                None => continue,
            },
            _ => continue,
        };
        let completed = match operation.outcome {
            Outcome::Unknown { .. } => None,
            _ => Some(operation.completed_ms),
        };
        events.push(Event {
            invoked: operation.invoked_ms,
            completed,
            step,
        });
    }
    events
}

/// Depth-first WGL search with memoisation of (operations done, state). `Some(true)` when a
/// legal order exists, `Some(false)` when none does, `None` when the step budget ran out.
fn search(events: &[Event]) -> Option<bool> {
    let definite: u128 = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.completed.is_some())
        .fold(0, |mask, (i, _)| mask | (1 << i));
    let mut seen: HashSet<(u128, State)> = HashSet::new();
    let mut stack = vec![(0u128, State::Absent)];
    let mut steps = 0u64;
    while let Some((done, state)) = stack.pop() {
        if done & definite == definite {
            return Some(true);
        }
        steps += 1;
        if steps > MAX_STEPS {
            return None;
        }
        // An operation may go next only if it was invoked before every pending definite
        // operation completed.
        let horizon = events
            .iter()
            .enumerate()
            .filter(|(i, e)| done & (1 << i) == 0 && e.completed.is_some())
            .filter_map(|(_, e)| e.completed)
            .min()
            .unwrap_or(u64::MAX);
        let starts = match state {
            State::Pending => vec![state, State::Closed(true)],
            _ => vec![state],
        };
        for (i, event) in events.iter().enumerate() {
            if done & (1 << i) != 0 || event.invoked > horizon {
                continue;
            }
            for &start in &starts {
                for next in apply(start, event.step) {
                    let key = (done | (1 << i), next);
                    if seen.insert(key) {
                        stack.push(key);
                    }
                }
            }
        }
    }
    Some(false)
}

/// A compact listing of an order's operations for a failure message.
fn describe(ops: &[&Operation]) -> String {
    ops.iter()
        .map(|o| {
            let answer = match &o.outcome {
                Outcome::Ok { body, .. } => format!(
                    "{}{}",
                    body.get("state").and_then(|s| s.as_str()).unwrap_or("?"),
                    body.get("close_reason")
                        .and_then(|s| s.as_str())
                        .map(|r| format!("/{r}"))
                        .unwrap_or_default()
                ),
                Outcome::Failed { status, code } => format!("{status} {code}"),
                Outcome::Unknown { .. } => "unknown".to_owned(),
            };
            format!(
                "[{}..{} c{} {} -> {answer}]",
                o.invoked_ms,
                o.completed_ms,
                o.client,
                o.kind.name()
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(invoked: u64, completed: Option<u64>, step: Step) -> Event {
        Event {
            invoked,
            completed,
            step,
        }
    }

    #[test]
    fn a_sequential_history_is_linearizable() {
        let events = [
            event(0, Some(1), Step::Create),
            event(2, Some(3), Step::Pay(0, Some(State::Paid(0)))),
            event(4, Some(5), Step::Read(State::Paid(0))),
            event(6, Some(7), Step::Cancel(None)),
        ];
        assert_eq!(search(&events), Some(true));
    }

    #[test]
    fn a_stale_read_after_a_completed_pay_is_not() {
        let events = [
            event(0, Some(1), Step::Create),
            event(2, Some(3), Step::Pay(0, Some(State::Paid(0)))),
            event(4, Some(5), Step::Read(State::Pending)),
        ];
        assert_eq!(search(&events), Some(false));
    }

    #[test]
    fn concurrent_operations_may_go_either_way() {
        let events = [
            event(0, Some(1), Step::Create),
            event(2, Some(10), Step::Pay(0, Some(State::Paid(0)))),
            event(3, Some(4), Step::Read(State::Paid(0))),
            event(5, Some(6), Step::Cancel(None)),
        ];
        assert_eq!(search(&events), Some(true));
    }

    #[test]
    fn an_unknown_pay_may_land_late_or_never() {
        let late = [
            event(0, Some(1), Step::Create),
            event(2, None, Step::MaybePay(0)),
            event(3, Some(4), Step::Read(State::Pending)),
            event(5, Some(6), Step::Read(State::Paid(0))),
        ];
        assert_eq!(search(&late), Some(true));
        let never = [
            event(0, Some(1), Step::Create),
            event(2, None, Step::MaybePay(0)),
            event(3, Some(4), Step::Read(State::Pending)),
        ];
        assert_eq!(search(&never), Some(true));
        let before_invoked = [
            event(0, Some(1), Step::Create),
            event(2, Some(3), Step::Read(State::Paid(0))),
            event(4, None, Step::MaybePay(0)),
        ];
        assert_eq!(search(&before_invoked), Some(false));
    }

    #[test]
    fn a_refund_needs_a_paid_order_and_stays_on_the_paid_branch() {
        let refunded = [
            event(0, Some(1), Step::Create),
            event(2, Some(3), Step::Pay(0, Some(State::Paid(0)))),
            event(4, Some(5), Step::Refund(Some(State::Refunding(0)))),
            event(6, Some(7), Step::Pay(0, None)),
            event(8, Some(9), Step::Read(State::Refunding(0))),
        ];
        assert_eq!(search(&refunded), Some(true));
        let unpaid = [
            event(0, Some(1), Step::Create),
            event(2, Some(3), Step::Refund(Some(State::Refunding(0)))),
        ];
        assert_eq!(search(&unpaid), Some(false));
        let back_to_paid = [
            event(0, Some(1), Step::Create),
            event(2, Some(3), Step::Pay(0, Some(State::Paid(0)))),
            event(4, Some(5), Step::Refund(Some(State::Refunding(0)))),
            event(6, Some(7), Step::Read(State::Paid(0))),
        ];
        assert_eq!(search(&back_to_paid), Some(false));
    }

    #[test]
    fn an_order_may_expire_but_not_after_it_was_paid() {
        let expired = [
            event(0, Some(1), Step::Create),
            event(2, Some(3), Step::Pay(0, None)),
            event(4, Some(5), Step::Read(State::Closed(true))),
        ];
        assert_eq!(search(&expired), Some(true));
        let paid_then_expired = [
            event(0, Some(1), Step::Create),
            event(2, Some(3), Step::Pay(0, Some(State::Paid(0)))),
            event(4, Some(5), Step::Read(State::Closed(true))),
        ];
        assert_eq!(search(&paid_then_expired), Some(false));
    }
}
