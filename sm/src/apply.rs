//! The deterministic state transition, `(state, command batch) → (state', outcomes)`: a
//! dispatcher from each command to the wing that decides it ([`crate::order`], [`crate::queue`]).
//!
//! To ensure correctness:
//! - Nothing in `apply` reads a clock, a random source or anything outside the [`Txn`]: time is
//!   the batch's clock ([`crate::batch_clock`]), ids come from the log index and the command's
//!   position.
//! - Every refusal is a [`Rejection`] returned as the command's outcome, never a panic.
//! - Nothing depends on how entries are grouped into calls: every read goes through the `Txn`,
//!   which sees the writes staged earlier in the same call.

use crate::command::{Action, Command, CommandBatch, FireTimers};
use crate::error::StoreError;
use crate::idempotency::{self, IdempotencyRecord};
use crate::keys::TimerKind;
use crate::order::{self, lifecycle, refund, stock};
use crate::outcome::{Applied, FiredTimers, Outcome, Rejection};
use crate::queue::{self, timers::GroupsByTopic};
use crate::timers::{self, Firing};
use crate::txn::Txn;

/// Change records an entry may have staged and still take another command: far more than any one
/// command records (an order of [`order::MAX_ORDER_LINES`], a redrive of [`queue::MAX_REDRIVE`],
/// a trim of [`queue::retention::MAX_TRIM`]), and far below the `2^20` one entry's offsets can
/// number.
const CHANGES_BEFORE_ENTRY_FULL: u64 = crate::changes::MAX_CHANGES_PER_ENTRY / 2;

/// Applies every command of `batch`, found at `log_index`, answering each. The batch runs at
/// its stamped time, or at the last batch's if that is later; its changes are recorded under
/// `log_index`.
pub fn apply_batch(
    txn: &mut Txn<'_>,
    log_index: u64,
    batch: &CommandBatch,
) -> Result<Vec<Outcome>, StoreError> {
    let now_ms = crate::batch_clock::advance(txn, batch.now_ms)?;
    txn.begin_entry(log_index, now_ms);
    idempotency::forget_expired(txn, now_ms)?;
    let mut outcomes = Vec::with_capacity(batch.commands.len());
    for (position, command) in batch.commands.iter().enumerate() {
        let ctx = lifecycle::Ctx {
            log_index,
            position,
            now_ms,
        };
        outcomes.push(apply_command(txn, &ctx, command)?);
    }
    Ok(outcomes)
}

/// Applies one command, honouring its idempotency key.
fn apply_command(
    txn: &mut Txn<'_>,
    ctx: &lifecycle::Ctx,
    command: &Command,
) -> Result<Outcome, StoreError> {
    if txn.changes_recorded() >= CHANGES_BEFORE_ENTRY_FULL {
        // Decided by the entry alone, so the same on every replica; not remembered under the
        // idempotency key, so a retry in a later entry is applied.
        return Ok(Err(Rejection::EntryFull));
    }
    let key = command.idempotency_key.as_bytes();
    if !key.is_empty() {
        if let Some(record) = idempotency::recall(txn, key)? {
            return Ok(if record.request_hash == command.request_hash {
                record.outcome
            } else {
                Err(Rejection::IdempotencyKeyReused)
            });
        }
    }
    let outcome = match &command.action {
        None => Err(Rejection::Invalid("command without an action".into())),
        Some(action) => dispatch(txn, ctx, action)?,
    };
    if !key.is_empty() {
        let record = IdempotencyRecord {
            request_hash: command.request_hash.clone(),
            outcome: outcome.clone(),
            at_ms: ctx.now_ms,
        };
        idempotency::remember(txn, key, &record)?;
    }
    Ok(outcome)
}

/// Hands `action` to the wing that decides it.
fn dispatch(
    txn: &mut Txn<'_>,
    ctx: &lifecycle::Ctx,
    action: &Action,
) -> Result<Outcome, StoreError> {
    let now_ms = ctx.now_ms;
    match action {
        Action::PutSku(put) => stock::put_sku(txn, put),
        Action::CreateOrder(create) => lifecycle::create_order(txn, ctx, create),
        Action::PayOrder(pay) => lifecycle::pay_order(txn, ctx, pay),
        Action::CancelOrder(cancel) => lifecycle::cancel_order(txn, ctx, cancel),
        Action::Seckill(buy) => order::seckill::buy_one(txn, ctx, buy),
        Action::RefundOrder(refund) => refund::request(txn, now_ms, refund),
        Action::FireTimers(fire) => fire_timers(txn, now_ms, fire),
        Action::Publish(publish) if order::is_reserved(&publish.topic) => {
            Ok(Err(Rejection::ReservedTopic {
                topic: publish.topic.clone(),
            }))
        }
        Action::Publish(publish) => queue::topic::publish_command(txn, now_ms, publish),
        Action::PutSubscription(put) => queue::subscribe::put(txn, now_ms, put),
        Action::RecordDeliveries(results) => {
            queue::delivery::record(txn, now_ms, results, &refund::RefundHook)
        }
        Action::Redrive(redrive) => queue::delivery::redrive(txn, redrive),
        Action::PurgeDead(purge) => queue::delivery::purge(txn, purge),
        Action::PauseSubscription(pause) => queue::group_control::pause(txn, pause),
        Action::ResetSubscription(reset) => queue::group_control::reset(txn, reset),
        Action::TrimMessages(trim) => queue::retention::trim(txn, now_ms, trim),
        Action::RemoveSubscription(remove) => match refund::refuse_removal(remove) {
            Some(refused) => Ok(Err(refused)),
            None => queue::group_removal::remove(txn, remove),
        },
    }
}

/// Fires the timers of `command` that are still pending and due at `now_ms`, each by its kind.
fn fire_timers(
    txn: &mut Txn<'_>,
    now_ms: i64,
    command: &FireTimers,
) -> Result<Outcome, StoreError> {
    let mut result = FiredTimers::default();
    let mut groups = GroupsByTopic::default();
    for key in &command.keys {
        let timer = match timers::firing(txn, now_ms, key)? {
            Firing::Due(timer) => timer,
            Firing::Gone => {
                result.gone += 1;
                continue;
            }
            Firing::Early => {
                result.early.push(key.clone());
                continue;
            }
        };
        match timer.kind {
            TimerKind::CloseOrder => lifecycle::close_expired(txn, now_ms, timer.target)?,
            TimerKind::DeliverMessage => {
                queue::timers::fire_delivery(txn, timer.target, &mut groups)?
            }
            TimerKind::RetryDelivery => queue::timers::fire_retry(txn, timer.due_ms, timer.target)?,
        }
        timers::fired(txn, key)?;
        result.fired.push(key.clone());
    }
    Ok(Ok(Applied::TimersFired(result)))
}
