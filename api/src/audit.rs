//! The audit log: every admin write (SKUs, subscriptions, dead-letter redrives, membership,
//! snapshots), with who made it and what it asked for, as `tracing` events of target `audit`.
//!
//! To ensure correctness: the log names the caller ([`Caller`]: a client's name, or which token),
//! never a token; a signing secret in a subscription's body is replaced by `"<hidden>"` before
//! the body is logged.

use serde_json::Value;

use crate::auth::Caller;
use crate::cluster::HttpRequest;
use crate::routes::Route;

/// Body fields that carry secrets and are never logged.
const SECRET_FIELDS: &[&str] = &["signing_secret", "token"];

/// Whether `route` changes state under `/admin` and so is audited.
pub fn is_admin_write(route: &Route) -> bool {
    matches!(
        route,
        Route::PutSku(_)
            | Route::PutSubscription(_)
            | Route::RemoveSubscription(_)
            | Route::Redrive(_)
            | Route::Purge(_)
            | Route::Pause(_)
            | Route::Resume(_)
            | Route::Reset(_)
            | Route::AddLearner
            | Route::ChangeVoters
            | Route::Snapshot
            | Route::Backup
    )
}

/// Logs one admin write by `caller` and how it was answered.
pub fn record(caller: &Caller, route: &Route, req: &HttpRequest, status: u16) {
    let change = redacted_body(&req.body);
    tracing::info!(
        target: "audit",
        caller = %caller,
        method = %req.method,
        path = %req.path,
        route = route.template(),
        change = %change,
        status,
        forwarded = req.header(crate::cluster::FORWARDED_HEADER).is_some(),
        "admin write"
    );
}

/// The request body as logged: JSON with secret fields hidden, or a note of its size.
fn redacted_body(body: &[u8]) -> String {
    if body.is_empty() {
        return "{}".into();
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(mut value) => {
            hide_secrets(&mut value);
            value.to_string()
        }
        Err(_) => format!("<{} bytes, not JSON>", body.len()),
    }
}

fn hide_secrets(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                if SECRET_FIELDS.contains(&name.as_str()) {
                    *field = Value::String("<hidden>".into());
                } else {
                    hide_secrets(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(hide_secrets),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_bodies_are_hidden() {
        let logged =
            redacted_body(br#"{"topic": "t", "push": {"url": "u"}, "signing_secret": "s3"}"#);
        assert!(!logged.contains("s3"), "{logged}");
        assert!(logged.contains("<hidden>"));
        assert!(logged.contains("\"topic\":\"t\""));
        assert_eq!(redacted_body(b""), "{}");
        assert_eq!(redacted_body(b"xx"), "<2 bytes, not JSON>");
    }
}
