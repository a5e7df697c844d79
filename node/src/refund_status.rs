//! Asking the payment provider whether it made a refund, the way RocketMQ checks back on a
//! transaction whose outcome it did not hear: `GET {refund_status_url}/{order id}` answers
//! `{"status": "refunded" | "failed" | "unknown"}`.
//!
//! The scheduler asks after a refund attempt whose answer was lost (no answer in time, a broken
//! connection) and before the last attempt is given up. "refunded" settles the delivery as if the
//! provider had answered 2xx: the ack and the order's move to `refunded` commit together, through
//! the usual `RecordDeliveries`. Anything else (including no answer) leaves the failed attempt as
//! it was: retried, or dead-lettered with the order `refund_failed`.
//!
//! To ensure correctness:
//! - Only "refunded" changes anything, and it only turns a failed attempt into an ack; a lookup
//!   can never make a refund fail that would otherwise succeed.
//! - The lookup names the order (the refund message's key), which is also the `Idempotency-Key`
//!   the refund call carries, so the provider answers about the very refund orderq asked for.

use std::time::Duration;

use serde::Deserialize;

/// How long the provider may take to answer a status lookup; past that it counts as "unknown".
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// What the provider says about one order's refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderRefundStatus {
    /// The provider made the refund: the customer has the money back.
    Refunded,
    /// The provider did not make it and will not without another call.
    Failed,
    /// The provider does not know the refund, or could not be asked.
    Unknown,
}

/// The provider's answer body.
#[derive(Debug, Deserialize)]
struct StatusAnswer {
    /// The refund's status.
    status: ProviderRefundStatus,
}

/// Where and how refund statuses are looked up (`[payment] refund_status_url`).
#[derive(Debug, Clone)]
pub struct RefundStatusLookup {
    /// The base URL; the order id is appended as the last path segment.
    pub url: String,
    /// The key lookups are signed with (`[payment] signing_secret`, over an empty body); empty
    /// leaves them unsigned.
    pub signing_secret: String,
}

impl RefundStatusLookup {
    /// The lookup for `url`, or none when no status URL is configured.
    pub fn configured(url: &str, signing_secret: &str) -> Option<Self> {
        (!url.is_empty()).then(|| RefundStatusLookup {
            url: url.trim_end_matches('/').to_owned(),
            signing_secret: signing_secret.to_owned(),
        })
    }

    /// Asks the provider about the refund of `order_id`; any failure to get a clear answer
    /// (policy refusal, no answer, a non-2xx, a body that does not parse) is `Unknown`.
    pub async fn ask(
        &self,
        http: &reqwest::Client,
        policy: &api::webhook_target::WebhookPolicy,
        order_id: &str,
    ) -> ProviderRefundStatus {
        let url = format!("{}/{}", self.url, urlencoding_segment(order_id));
        if policy.check_url(&url).is_err() {
            return ProviderRefundStatus::Unknown;
        }
        let mut request = http.get(&url).timeout(LOOKUP_TIMEOUT);
        if !self.signing_secret.is_empty() {
            let now = crate::clock::now_ms();
            request = request.header(
                crate::webhook_signature::SIGNATURE_HEADER,
                crate::webhook_signature::sign(&[&self.signing_secret], now.div_euclid(1000), b""),
            );
        }
        let answer = match request.send().await {
            Ok(response) if response.status().is_success() => response.json::<StatusAnswer>().await,
            Ok(response) => {
                tracing::debug!(status = %response.status(), order_id, "refund status lookup refused");
                return ProviderRefundStatus::Unknown;
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok(answer) => answer.status,
            Err(e) => {
                tracing::debug!(error = %e, order_id, "refund status lookup failed");
                ProviderRefundStatus::Unknown
            }
        }
    }
}

/// `segment` with everything but unreserved URL characters percent-encoded (order ids are
/// plain, but the key of a message is whatever was stored).
fn urlencoding_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_and_ids_are_one_segment() {
        let answer: StatusAnswer = serde_json::from_str(r#"{"status": "refunded"}"#).unwrap();
        assert_eq!(answer.status, ProviderRefundStatus::Refunded);
        let answer: StatusAnswer = serde_json::from_str(r#"{"status": "unknown"}"#).unwrap();
        assert_eq!(answer.status, ProviderRefundStatus::Unknown);
        assert_eq!(urlencoding_segment("o-12_a.b~"), "o-12_a.b~");
        assert_eq!(urlencoding_segment("a/b c"), "a%2Fb%20c");
        assert!(RefundStatusLookup::configured("", "").is_none());
        assert_eq!(
            RefundStatusLookup::configured("http://p/refunds/", "")
                .map(|l| l.url)
                .as_deref(),
            Some("http://p/refunds")
        );
    }
}
