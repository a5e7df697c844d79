//! `Idempotency-Key` checks and the request hash that detects a key reused for another request.

use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// Checks the header's value: 1 to 255 printable ASCII characters.
pub fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| (0x20..=0x7e).contains(&b))
    {
        return Err(ApiError::invalid(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} printable ASCII characters"
        )));
    }
    Ok(())
}

/// Hash of a request: method, path and the body in canonical JSON (keys sorted, no spacing), so
/// a retry that formats the same body differently is still the same request.
pub fn request_hash(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| v.to_string().into_bytes())
        .unwrap_or_else(|_| body.to_vec());
    canonical_hash(method, path, &canonical)
}

/// Hash of one item of a batch as if it had been sent alone: `method`, the single endpoint's
/// `path` and the item's fields (its idempotency key taken out) in canonical JSON. The same as
/// [`request_hash`] of that single request, so a retry through either endpoint with the same key
/// and content is recognised as the same request.
pub fn item_hash(method: &str, path: &str, item: &serde_json::Value) -> Vec<u8> {
    canonical_hash(method, path, item.to_string().as_bytes())
}

/// Hash of `method`, `path` and a body already in canonical JSON.
fn canonical_hash(method: &str, path: &str, canonical: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b" ");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical);
    hasher.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(check_key("abc-123").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key(&"k".repeat(256)).is_err());
        assert!(check_key("tab\there").is_err());
        assert!(check_key("caf\u{e9}").is_err());
    }

    #[test]
    fn formatting_does_not_change_the_hash() {
        let a = request_hash("POST", "/v1/orders", br#"{"a":1,"b":2}"#);
        let b = request_hash("POST", "/v1/orders", b"{ \"b\": 2, \"a\": 1 }");
        assert_eq!(a, b);
        assert_ne!(a, request_hash("POST", "/v1/orders", br#"{"a":1,"b":3}"#));
        assert_ne!(a, request_hash("POST", "/v1/other", br#"{"a":1,"b":2}"#));
    }

    #[test]
    fn an_item_hashes_as_the_same_request_sent_alone() {
        let item: serde_json::Value = serde_json::from_str(r#"{"b": 2, "a": 1}"#).unwrap();
        assert_eq!(
            item_hash("POST", "/v1/orders", &item),
            request_hash("POST", "/v1/orders", br#"{"a":1,"b":2}"#)
        );
    }
}
