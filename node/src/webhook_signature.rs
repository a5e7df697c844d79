//! The signature on every webhook call: `X-Orderq-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256(key, "<t>." + raw body)>`, the scheme receivers know from payment providers.
//!
//! A receiver recomputes the MAC over the timestamp and the body it got with the group's key,
//! compares in constant time, and refuses a timestamp too far from its clock (a replay).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-orderq-signature";

/// How long after a key change deliveries are also signed with the replaced key: a receiver
/// has this long to switch to the new key without refusing a call.
pub const ROTATION_GRACE_MS: i64 = 24 * 3_600_000;

fn tag(key: &str, unix_secs: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` fails only for fixed-size MACs.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(format!("{unix_secs}.").as_bytes());
    mac.update(body);
    let mut hex = String::with_capacity(64);
    for byte in mac.finalize().into_bytes() {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// The header value signing `body` at `unix_secs` under each of `keys` (the current key first,
/// then, during a rotation's grace period, the replaced one): `t=..,v1=..[,v1=..]`.
pub fn sign(keys: &[&str], unix_secs: i64, body: &[u8]) -> String {
    let mut value = format!("t={unix_secs}");
    for key in keys.iter().filter(|k| !k.is_empty()) {
        value.push_str(",v1=");
        value.push_str(&tag(key, unix_secs, body));
    }
    value
}

/// The keys a delivery at `now_ms` is signed with for `target`: its key, and the replaced key
/// while the rotation's grace period lasts.
pub fn keys_of(target: &sm::queue::PushTarget, now_ms: i64) -> Vec<&str> {
    let mut keys = vec![target.signing_secret.expose()];
    let in_grace = now_ms.saturating_sub(target.rotated_at_ms) < ROTATION_GRACE_MS;
    if in_grace && !target.previous_signing_secret.is_empty() {
        keys.push(target.previous_signing_secret.expose());
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_known_vector() {
        // HMAC-SHA256("key", "1.{}") computed independently (python: hmac.new(b"key",
        // b"1.{}", hashlib.sha256).hexdigest()).
        assert_eq!(
            sign(&["key"], 1, b"{}"),
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }

    #[test]
    fn a_replaced_key_signs_too_during_the_grace_period() {
        let target = sm::queue::PushTarget {
            url: "http://x/".into(),
            timeout_ms: 1,
            signing_secret: "new".to_string().into(),
            previous_signing_secret: "old".to_string().into(),
            rotated_at_ms: 1_000,
        };
        assert_eq!(
            keys_of(&target, 1_000 + ROTATION_GRACE_MS - 1),
            vec!["new", "old"]
        );
        assert_eq!(keys_of(&target, 1_000 + ROTATION_GRACE_MS), vec!["new"]);
        let both = sign(&["new", "old"], 5, b"b");
        assert_eq!(both.matches(",v1=").count(), 2, "{both}");
    }
}
