//! The contract's errors, `{"error": {"code", "message"}}`, and the one place that maps internal
//! errors to them.

use sm::backup::BackupError;
use sm::changes::ChangesError;
use sm::outcome::Rejection;
use sm::StoreError;

use crate::cluster::{ClusterError, HttpReply};

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable snake_case code of the contract.
    pub code: &'static str,
    /// A human sentence.
    pub message: String,
    /// Seconds the client should wait before retrying, when it should.
    pub retry_after: Option<u32>,
    /// The methods the path accepts, sent as `Allow` with a 405 (RFC 9110 requires it).
    pub allow: Option<&'static str>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            allow: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(401, "unauthorized", "missing or wrong bearer token")
    }

    /// 403 `forbidden`: the bearer token is valid but lacks the scope this call needs.
    pub fn forbidden(scope: &str) -> Self {
        Self::new(
            403,
            "forbidden",
            format!("this token lacks the scope {scope}"),
        )
    }

    /// 403 `reserved_topic`: only orderq itself writes this topic.
    pub fn reserved_topic(topic: &str) -> Self {
        Self::new(
            403,
            "reserved_topic",
            format!("topic {topic} is written by orderq only; it cannot be published to"),
        )
    }

    /// 409 `not_pull_group`: `ack`/`nack` are for pull groups; push groups (and the built-in
    /// refund group) are settled by orderq's own deliveries.
    pub fn not_pull_group(message: impl Into<String>) -> Self {
        Self::new(409, "not_pull_group", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    /// 405 `method_not_allowed`, with `allow` (such as `"GET, POST"`) as the `Allow` header.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        ApiError {
            allow: Some(allow),
            ..Self::new(
                405,
                "method_not_allowed",
                format!("this path accepts only {allow}"),
            )
        }
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large() -> Self {
        Self::new(
            413,
            "payload_too_large",
            "request bodies are limited to 1 MiB",
        )
    }

    /// 409 `invalid_state`: the cluster's membership does not allow the change asked for.
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(409, "invalid_state", message)
    }

    /// 410 `offset_expired`: the change stream no longer holds changes after that offset.
    pub fn offset_expired(message: impl Into<String>) -> Self {
        Self::new(410, "offset_expired", message)
    }

    /// 503 `no_leader`, retry after a second.
    pub fn no_leader(message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(503, "no_leader", message)
        }
    }

    /// 503 `restoring`: this node is installing a snapshot and its state is not readable until
    /// it is done; retry after a second (or ask another node).
    pub fn restoring() -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(
                503,
                "restoring",
                "this node is installing a snapshot from the leader; retry shortly",
            )
        }
    }

    /// 503 `shutting_down`: this node is stopping (SIGTERM) and takes no new request, and a long
    /// poll it was serving ended; retry after a second on another node.
    pub fn shutting_down() -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(
                503,
                "shutting_down",
                "this node is shutting down; retry on another node",
            )
        }
    }

    /// 409 `sold_out`: the flash sale has no unit left.
    pub fn sold_out(sku: &str) -> Self {
        Self::new(409, "sold_out", format!("sku {sku} is sold out"))
    }

    /// 429 `overloaded`, retry after a second.
    pub fn overloaded(message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(429, "overloaded", message)
        }
    }

    /// 500 `internal`: the node's own storage failed (never bad input).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }

    /// The HTTP reply carrying this error. The body is written straight from borrowed fields
    /// (no `serde_json::Value` built first): most answers of a sold-out sale are this reply.
    pub fn into_reply(self) -> HttpReply {
        /// `{"error": {...}}`.
        #[derive(serde::Serialize)]
        struct Body<'a> {
            error: Fields<'a>,
        }
        /// `{"code", "message"}`.
        #[derive(serde::Serialize)]
        struct Fields<'a> {
            code: &'a str,
            message: &'a str,
        }
        let body = serde_json::to_vec(&Body {
            error: Fields {
                code: self.code,
                message: &self.message,
            },
        })
        .unwrap_or_default();
        let mut reply = HttpReply::json(self.status, body);
        if let Some(secs) = self.retry_after {
            reply
                .headers
                .push(("retry-after".to_string(), secs.to_string()));
        }
        if let Some(allow) = self.allow {
            reply.headers.push(("allow".to_string(), allow.to_string()));
        }
        reply
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        let message = rejection.to_string();
        match rejection {
            Rejection::InsufficientStock { .. } => Self::new(409, "insufficient_stock", message),
            Rejection::InvalidState { .. } | Rejection::Conflict(_) => {
                Self::new(409, "invalid_state", message)
            }
            Rejection::SoldOut { .. } => Self::new(409, "sold_out", message),
            Rejection::LimitExceeded { .. } => Self::new(409, "limit_exceeded", message),
            Rejection::NotFound { .. } => Self::new(404, "not_found", message),
            Rejection::IdempotencyKeyReused => Self::new(422, "idempotency_key_reused", message),
            Rejection::ReservedTopic { .. } => Self::new(403, "reserved_topic", message),
            Rejection::Invalid(_) => Self::new(400, "invalid_request", message),
            Rejection::EntryFull => Self::overloaded(message),
        }
    }
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::ForwardTo { leader_id, .. } => Self::no_leader(format!(
                "node {leader_id} leads but the request could not be forwarded"
            )),
            ClusterError::NoLeader(m) => Self::no_leader(m),
            ClusterError::Overloaded(m) => Self::overloaded(m),
            ClusterError::Unavailable(m) => Self::no_leader(format!(
                "outcome unknown, retry with the same Idempotency-Key: {m}"
            )),
            ClusterError::Refused(m) => Self::invalid_state(m),
            ClusterError::UnknownGroup(m) => Self::not_found(m),
            ClusterError::TooLarge(m) => Self::new(413, "payload_too_large", m),
            ClusterError::NotPullGroup(m) => Self::not_pull_group(m),
        }
    }
}

impl From<ChangesError> for ApiError {
    fn from(e: ChangesError) -> Self {
        match e {
            ChangesError::Expired { .. } => Self::offset_expired(e.to_string()),
            ChangesError::Store(e) => e.into(),
        }
    }
}

impl From<BackupError> for ApiError {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::Store(e) => e.into(),
            refused => Self::invalid(refused.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::internal(e.to_string())
    }
}
