//! `POST /v1/seckill/{sku}`: the flash sale's purchase.
//!
//! Once a SKU is gone, almost every request of a sale is answered here, from the node's
//! in-memory sold-out set (kept by the state machine from its applied state), without a Raft
//! round trip and without forwarding to the leader. Only requests for a SKU that still has
//! units are proposed; `apply` then decides them in log order, so none oversells whatever this
//! set says.

use std::borrow::Cow;

use serde::Deserialize;
use sm::command::{Action, Seckill};

use crate::cluster::{Cluster, HttpReply, HttpRequest};
use crate::error::ApiError;
use crate::handler::{outcome_reply, Api};
use crate::idempotency;
use crate::request::{self, parse_body};

/// Body of `POST /v1/seckill/{sku}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeckillBody<'a> {
    /// The buyer; borrowed from the body unless it holds escapes (a sold-out answer copies
    /// nothing out of it).
    #[serde(borrow)]
    pub user_id: Cow<'a, str>,
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

    /// The answer to one purchase. Checks in the contract's order (the SKU, the body, the
    /// user, the `Idempotency-Key`), then the sold-out set; only a purchase that may succeed
    /// builds its command and hashes its request.
    async fn buy_one(&self, req: &HttpRequest, sku: String) -> Result<HttpReply, ApiError> {
        request::check_id("sku", &sku)?;
        let body = parse_body::<SeckillBody>(&req.body)?;
        request::check_id("user_id", &body.user_id)?;
        let key = req.header("idempotency-key");
        if let Some(key) = key {
            idempotency::check_key(key)?;
        }
        let reader = self.cluster.reader();
        if reader.sold_out().contains(&sku) {
            // A retry of a request this node already applied gets its first answer, as the
            // contract promises for every Idempotency-Key, even when the SKU is gone since.
            if let Some(record) = key
                .map(|k| reader.idempotency_record(k))
                .transpose()?
                .flatten()
            {
                if record.request_hash
                    != idempotency::request_hash(&req.method, &req.path, &req.body)
                {
                    return Err(sm::outcome::Rejection::IdempotencyKeyReused.into());
                }
                return outcome_reply(record.outcome);
            }
            return Err(ApiError::sold_out(&sku));
        }
        let command = Self::command(
            req,
            Action::Seckill(Seckill {
                sku,
                user_id: body.user_id.into_owned(),
                pay_within_secs: self.config.seckill_pay_within_secs,
            }),
        )?;
        self.propose_command(command).await
    }
}
