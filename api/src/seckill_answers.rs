//! [`SeckillAnswers`]: how this node answered flash-sale purchases since it started, by outcome,
//! so the console can show a sale's live rates (purchases/s, sold-out answers/s). Counted where
//! the answer is made: most sold-out answers never reach Raft, so no replicated count has them.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use crate::cluster::HttpReply;
use crate::error::ApiError;

/// Counters of one node's `POST /v1/seckill/{sku}` answers.
#[derive(Debug, Default)]
pub struct SeckillAnswers {
    /// 201: an order was created.
    created: AtomicU64,
    /// 409 `sold_out`, from memory or from `apply`.
    sold_out: AtomicU64,
    /// 409 `limit_exceeded`.
    limit_exceeded: AtomicU64,
    /// 429 `overloaded`.
    overloaded: AtomicU64,
    /// Anything else (bad input, no leader, an idempotent replay's refusal).
    other: AtomicU64,
}

impl SeckillAnswers {
    /// Counts one answer.
    pub fn record(&self, answer: &Result<HttpReply, ApiError>) {
        let counter = match answer {
            Ok(reply) if reply.status == 201 => &self.created,
            Ok(_) => &self.other,
            Err(e) => match e.code {
                "sold_out" => &self.sold_out,
                "limit_exceeded" => &self.limit_exceeded,
                "overloaded" => &self.overloaded,
                _ => &self.other,
            },
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The `GET /admin/seckill` answer of node `node_id`.
    pub fn view(&self, node_id: u64) -> Value {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "node_id": node_id,
            "created": read(&self.created),
            "sold_out": read(&self.sold_out),
            "limit_exceeded": read(&self.limit_exceeded),
            "overloaded": read(&self.overloaded),
            "other": read(&self.other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_outcome() {
        let answers = SeckillAnswers::default();
        let created = HttpReply {
            status: 201,
            headers: Vec::new(),
            body: bytes::Bytes::new(),
        };
        answers.record(&Ok(created));
        answers.record(&Err(ApiError::sold_out("A")));
        answers.record(&Err(ApiError::sold_out("A")));
        answers.record(&Err(ApiError::invalid("bad")));
        let view = answers.view(3);
        assert_eq!(view["node_id"], 3);
        assert_eq!(view["created"], 1);
        assert_eq!(view["sold_out"], 2);
        assert_eq!(view["other"], 1);
        assert_eq!(view["overloaded"], 0);
    }
}
