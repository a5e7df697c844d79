//! A push group's signing key as a PUT gives it, or as the API draws it when the PUT names none.
//!
//! The key is drawn here, on the node that took the request, and travels in the command: `apply`
//! never draws randomness. A group that already has a key keeps it when the PUT names none
//! (`signing_secret_drawn`), so changing a setting does not rotate the key under a receiver.

use crate::error::ApiError;

/// Shortest key accepted from a PUT: 16 characters.
pub const MIN_KEY_LEN: usize = 16;
/// Longest key accepted from a PUT.
pub const MAX_KEY_LEN: usize = 256;
/// What a drawn key starts with, so a leaked one is recognisable.
const DRAWN_PREFIX: &str = "whsec_";

/// Checks a key a PUT named: 16 to 256 visible ASCII characters.
pub fn check(key: &str) -> Result<(), ApiError> {
    let visible = key.bytes().all(|b| b.is_ascii_graphic());
    if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) || !visible {
        return Err(ApiError::invalid(format!(
            "signing_secret must be {MIN_KEY_LEN} to {MAX_KEY_LEN} visible ASCII characters"
        )));
    }
    Ok(())
}

/// A fresh key: 256 bits from the operating system, hex-encoded.
pub fn draw() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| ApiError::internal(format!("no random bytes for a signing key: {e}")))?;
    let mut key = String::from(DRAWN_PREFIX);
    for byte in bytes {
        key.push_str(&format!("{byte:02x}"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_keys_are_fresh_and_valid() {
        let (a, b) = (draw().unwrap(), draw().unwrap());
        assert_ne!(a, b);
        assert!(check(&a).is_ok());
        assert!(check("short").is_err());
        assert!(check("has a space in it, 16+").is_err());
    }
}
