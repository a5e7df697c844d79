//! `POST /v1/seckill/{sku}`: the flash sale's purchase.
//!
//! Once a SKU is gone, almost every request of a sale is answered here, from the node's
//! in-memory sold-out set (kept by the state machine from its applied state), without a Raft
//! round trip and without forwarding to the leader. Only requests for a SKU that still has
//! units are proposed; `apply` then decides them in log order, so none oversells whatever this
//! set says.

use serde::Deserialize;
use sm::command::{Action, Seckill};

use crate::cluster::{Cluster, HttpReply, HttpRequest};
use crate::error::ApiError;
use crate::handler::{outcome_reply, Api};
use crate::request::{self, parse_body};

/// Body of `POST /v1/seckill/{sku}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeckillBody {
    /// The buyer.
    pub user_id: String,
}

impl<C: Cluster> Api<C> {
    /// Buys one unit of `sku`: 201 order, 409 `sold_out` / `limit_exceeded`, 429 `overloaded`;
    /// each answer counted in [`crate::seckill_answers`].
    pub(crate) async fn seckill(
        &self,
        req: &HttpRequest,
        sku: String,
    ) -> Result<HttpReply, ApiError> {
        let answer = self.buy_one(req, sku).await;
        self.seckill_answers.record(&answer);
        answer
    }

    async fn buy_one(&self, req: &HttpRequest, sku: String) -> Result<HttpReply, ApiError> {
        request::check_id("sku", &sku)?;
        let body = parse_body::<SeckillBody>(&req.body)?;
        request::check_id("user_id", &body.user_id)?;
        let command = Self::command(
            req,
            Action::Seckill(Seckill {
                sku: sku.clone(),
                user_id: body.user_id,
                pay_within_secs: self.config.seckill_pay_within_secs,
            }),
        )?;
        let reader = self.cluster.reader();
        if reader.sold_out().contains(&sku) {
            // A retry of a request this node already applied gets its first answer, as the
            // contract promises for every Idempotency-Key, even when the SKU is gone since.
            if !command.idempotency_key.is_empty() {
                if let Some(record) = reader.idempotency_record(&command.idempotency_key)? {
                    if record.request_hash != command.request_hash {
                        return Err(sm::outcome::Rejection::IdempotencyKeyReused.into());
                    }
                    return outcome_reply(record.outcome);
                }
            }
            return Err(ApiError::sold_out(&sku));
        }
        self.propose_command(command).await
    }
}
