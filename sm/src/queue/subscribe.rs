//! Creating and changing a consumer group, and loading and storing its record.
//!
//! A new group's cursor is resolved in log order (`earliest`: the oldest message retention has
//! not removed; `latest`: after the topic's head), so every replica starts it at the same place.

use crate::command::PutSubscription;
use crate::error::StoreError;
use crate::outcome::{Applied, Outcome, Rejection};
use crate::txn::Txn;

use super::signing_secret::SigningSecret;
use super::store;
use super::subscription::{PushTarget, Subscription};

/// Creates or changes a subscription. A new one's cursor is resolved here, in log order:
/// `earliest` from the topic's beginning, `latest` after its current head. A new signing key
/// replaces the old one, which is kept as the previous key from `now_ms` on.
pub fn put(txn: &mut Txn<'_>, now_ms: i64, put: &PutSubscription) -> Result<Outcome, StoreError> {
    if put.group.is_empty() || put.topic.is_empty() || put.max_attempts == 0 {
        return Ok(Err(Rejection::Invalid(
            "a subscription needs a group, a topic and max_attempts >= 1".into(),
        )));
    }
    if store::is_removing(txn, &put.group)? {
        return Ok(Err(Rejection::Conflict(format!(
            "group {} is still being removed; create it again shortly",
            put.group
        ))));
    }
    let existing = store::subscription(txn, &put.group)?;
    let old_push = existing.as_ref().and_then(|s| s.push.clone());
    // The key a push group keeps: its current one, unless this PUT names a new one.
    let current_key = old_push
        .as_ref()
        .map(|p| p.signing_secret.clone())
        .filter(|k| !k.is_empty());
    let keeps_key = put.signing_secret_drawn || put.signing_secret.is_empty();
    let push = (!put.push_url.is_empty()).then(|| match (&old_push, &current_key) {
        (Some(old), Some(_)) if keeps_key || old.signing_secret.expose() == put.signing_secret => {
            PushTarget {
                url: put.push_url.clone(),
                timeout_ms: put.timeout_ms,
                ..old.clone()
            }
        }
        _ => PushTarget {
            url: put.push_url.clone(),
            timeout_ms: put.timeout_ms,
            signing_secret: SigningSecret::from(put.signing_secret.clone()),
            previous_signing_secret: current_key.clone().unwrap_or_default(),
            rotated_at_ms: if current_key.is_some() { now_ms } else { 0 },
        },
    });
    let new_key = push.as_ref().filter(|p| {
        !p.signing_secret.is_empty() && Some(&p.signing_secret) != current_key.as_ref()
    });
    let signing_secret = new_key.map(|p| p.signing_secret.expose().to_string());
    let base = match existing {
        Some(old) if old.topic != put.topic => {
            return Ok(Err(Rejection::Invalid(format!(
                "group {} consumes {}; its topic cannot change",
                old.group, old.topic
            ))))
        }
        Some(old) => old,
        None => Subscription {
            group: put.group.clone(),
            topic: put.topic.clone(),
            start: if put.start_latest {
                "latest"
            } else {
                "earliest"
            }
            .into(),
            cursor: if put.start_latest {
                store::head(txn, &put.topic)?
            } else {
                // The oldest message retention has not removed.
                store::floor(txn, &put.topic)?
            },
            ..Subscription::default()
        },
    };
    // The settings a PUT sets, on a new group or an existing one alike.
    let sub = Subscription {
        push,
        max_attempts: put.max_attempts,
        backoff_initial_ms: put.backoff_initial_ms,
        backoff_max_ms: put.backoff_max_ms,
        max_in_flight: put.max_in_flight,
        rate_per_sec: put.rate_per_sec,
        ordered_by_key: put.ordered_by_key,
        ..base
    };
    store::save(txn, &sub)?;
    if let Some(signing_secret) = signing_secret {
        return Ok(Ok(Applied::SubscriptionSigned {
            subscription: sub,
            signing_secret,
        }));
    }
    Ok(Ok(Applied::Subscription(sub)))
}
