//! Push delivery: one HTTP POST of a message to a group's webhook, as the contract describes it,
//! signed with the group's key when it has one (`webhook_signature`).
//! A 2xx acknowledges; any other status, a connection error or no answer within the group's
//! timeout is a failed attempt, described in a short error string kept with the dead letter
//! ([`PushFailure`]'s text). Whether the answer was lost (no answer, or the connection broke)
//! matters to refunds: the provider may have made the refund all the same (`refund_status`).

use std::time::Duration;

use serde_json::json;
use sm::order::REFUND_GROUP;
use sm::queue::Message;
use sm::queue::PushTarget;

/// Why a push attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushFailure {
    /// The webhook policy refuses the URL; nothing was sent.
    #[error("refused: {0}")]
    Refused(String),
    /// The receiver answered with a status other than 2xx.
    #[error("http status {0}")]
    Status(u16),
    /// No answer within the group's timeout: the receiver may have acted on it.
    #[error("no answer within {0} ms")]
    NoAnswer(u64),
    /// The request could not be sent or its answer not read: it may have arrived.
    #[error("request failed: {0}")]
    Connection(String),
}

impl PushFailure {
    /// Whether the attempt's answer was lost: the receiver may have acted on the call.
    pub fn answer_lost(&self) -> bool {
        matches!(self, PushFailure::NoAnswer(_) | PushFailure::Connection(_))
    }
}

/// Posts `message` (its `attempt`-th delivery) for `group` to `target`, if `policy` lets a
/// webhook reach it.
pub async fn deliver(
    http: &reqwest::Client,
    policy: &api::webhook_target::WebhookPolicy,
    group: &str,
    target: &PushTarget,
    message: &Message,
    attempt: u32,
) -> Result<(), PushFailure> {
    let body = json!({
        "id": message.id,
        "topic": message.topic,
        "key": message.key,
        "payload": message.payload,
        "attempt": attempt,
        "published_at": sm::order::rfc3339(message.published_at_ms),
    });
    // Checked again at call time: a group put before link-local URLs were refused keeps its URL.
    if let Err(e) = policy.check_url(&target.url) {
        return Err(PushFailure::Refused(e.message));
    }
    let body = body.to_string();
    let mut request = http
        .post(&target.url)
        .timeout(Duration::from_millis(target.timeout_ms.max(1)))
        .header("content-type", "application/json")
        .header("x-orderq-message-id", message.id.as_str())
        .header("x-orderq-attempt", attempt.to_string());
    if !target.signing_secret.is_empty() {
        let now = crate::clock::now_ms();
        let signature = crate::webhook_signature::sign(
            &crate::webhook_signature::keys_of(target, now),
            now.div_euclid(1000),
            body.as_bytes(),
        );
        request = request.header(crate::webhook_signature::SIGNATURE_HEADER, signature);
    }
    if group == REFUND_GROUP {
        // The provider deduplicates refunds by order: a refund delivered twice is paid once.
        request = request.header("idempotency-key", message.key.as_str());
    }
    match request.body(body).send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(PushFailure::Status(response.status().as_u16())),
        Err(e) if e.is_timeout() => Err(PushFailure::NoAnswer(target.timeout_ms)),
        Err(e) => Err(PushFailure::Connection(e.to_string())),
    }
}
