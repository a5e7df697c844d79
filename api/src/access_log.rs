//! The access log: one line per request (target `access`) with its method, route template,
//! status, duration and request id, and, for a 5xx, its cause. What it never holds: the path's
//! ids, the query, the body or any header but the request id, so no token, secret or
//! `Authorization` value can reach a log through it.

use std::time::Duration;

use crate::cluster::HttpReply;

/// Logs one answered request. A 5xx is logged at `warn` (503: no leader, shutting down,
/// restoring; the client retries) or `error` (anything else: a node fault) with the error
/// message the client got as its cause.
pub fn record(method: &str, route: &str, reply: &HttpReply, took: Duration, request_id: &str) {
    let status = reply.status;
    let duration_ms = took.as_secs_f64() * 1000.0;
    if status < 500 {
        tracing::info!(target: "access", method, route, status, duration_ms, request_id, "request");
        return;
    }
    let cause = cause(reply);
    if status == 503 {
        tracing::warn!(target: "access", method, route, status, duration_ms, request_id, %cause, "request unavailable");
    } else {
        tracing::error!(target: "access", method, route, status, duration_ms, request_id, %cause, "request failed");
    }
}

/// The contract's `error.code: error.message` of an error reply, or a note that it has none.
fn cause(reply: &HttpReply) -> String {
    serde_json::from_slice::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|body| {
            let error = body.get("error")?;
            Some(format!(
                "{}: {}",
                error.get("code")?.as_str()?,
                error.get("message")?.as_str()?
            ))
        })
        .unwrap_or_else(|| "no error body".to_string())
}
