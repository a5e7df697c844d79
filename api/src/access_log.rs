//! The access log: one line per request (target `access`) with its method, route template,
//! status, duration and request id, and, for a 5xx, its cause. What it never holds: the path's
//! ids, the query, the body or any header but the request id, so no token, secret or
//! `Authorization` value can reach a log through it.
//!
//! Which requests get a line is the operator's choice ([`AccessLog`]): every one by default; a
//! flash sale answering tens of thousands of sold-out purchases a second may keep only the
//! failures.

use std::time::Duration;

use crate::cluster::HttpReply;

/// Which answered requests get an access line (`access_log` in the node's configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLog {
    /// One line per request.
    #[default]
    All,
    /// Only requests answered 5xx: the node's own failures and unavailability, the lines
    /// logged at `warn` and `error`.
    Errors,
    /// No access line; the request metrics still count every request.
    Off,
}

impl AccessLog {
    /// Whether a request answered `status` gets a line.
    pub fn logs(self, status: u16) -> bool {
        match self {
            AccessLog::All => true,
            AccessLog::Errors => status >= 500,
            AccessLog::Off => false,
        }
    }
}

impl std::str::FromStr for AccessLog {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "all" => Ok(AccessLog::All),
            "errors" => Ok(AccessLog::Errors),
            "off" => Ok(AccessLog::Off),
            other => Err(format!(
                "access_log {other:?} is not one of all, errors, off"
            )),
        }
    }
}

/// Logs one answered request, if `which` says it is logged. A 5xx is logged at `warn` (503: no
/// leader, shutting down, restoring; the client retries) or `error` (anything else: a node
/// fault) with the error message the client got as its cause.
pub fn record(
    which: AccessLog,
    method: &str,
    route: &str,
    reply: &HttpReply,
    took: Duration,
    request_id: &str,
) {
    let status = reply.status;
    if !which.logs(status) {
        return;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_chooses_which_answers_are_logged() {
        for (which, logged) in [
            (AccessLog::All, [true, true, true]),
            (AccessLog::Errors, [false, false, true]),
            (AccessLog::Off, [false, false, false]),
        ] {
            let got = [200, 409, 503].map(|status| which.logs(status));
            assert_eq!(got, logged, "{which:?}");
        }
        assert_eq!("errors".parse(), Ok(AccessLog::Errors));
        assert!("some".parse::<AccessLog>().is_err());
        assert_eq!(AccessLog::default(), AccessLog::All);
    }
}
