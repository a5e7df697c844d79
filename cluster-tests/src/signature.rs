//! Checking `X-Orderq-Signature` as a webhook receiver does: `t=<unix seconds>,v1=<hex
//! HMAC-SHA256(key, "<t>." + raw body)>`, compared in constant time, the timestamp within a
//! tolerance of the receiver's clock so an old call cannot be replayed.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a signature's timestamp may be from the receiver's clock, in seconds.
pub const TOLERANCE_SECS: i64 = 300;

/// Whether `header` signs `body` under `key`, at a time within [`TOLERANCE_SECS`] of `now_secs`.
pub fn verify(header: &str, key: &str, body: &[u8], now_secs: i64) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", hex)) => signatures.push(hex),
            _ => {}
        }
    }
    let Some(t) = timestamp else {
        return false;
    };
    if (now_secs - t).abs() > TOLERANCE_SECS {
        return false;
    }
    signatures.into_iter().any(|hex| {
        let Some(tag) = decode_hex(hex) else {
            return false;
        };
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()) else {
            return false;
        };
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&tag).is_ok()
    })
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_signature_verifies_and_changes_do_not() {
        let header = "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224";
        assert!(verify(header, "key", b"{}", 1));
        assert!(!verify(header, "key", b"{ }", 1));
        assert!(!verify(header, "other", b"{}", 1));
        assert!(!verify(header, "key", b"{}", 1 + TOLERANCE_SECS + 1));
        assert!(!verify("t=1", "key", b"{}", 1));
    }
}
