//! Pull receipts: what a `receive` hands out and `ack`/`nack` present back.
//!
//! A receipt is `<offset>.<lease>.<mac>`: the message's offset in its topic, the lease's number
//! (drawn by the scheduler, so a receipt of an older lease of the same message does not settle
//! the newer one), and the first 128 bits of HMAC-SHA256 over the group, offset and lease under
//! [`ReceiptKey`], a random key this node draws from the OS when it starts. Without the key
//! nobody can make a receipt: not from another receipt (the lease numbers are predictable, the
//! MAC is not), not for another group (the group is inside the MAC), not by changing any
//! character (the text is parsed strictly, one spelling per receipt).
//!
//! To ensure correctness:
//! - Receipts are made and checked only by the leader's scheduler, never by `apply`: the key is
//!   node-local memory, and a receipt is worth nothing once the lease is gone (a new leader
//!   delivers again).
//! - The MAC is compared in constant time (`hmac`'s verification), so timing does not tell how
//!   much of a guess was right.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the MAC a receipt carries: 128 bits.
const TAG_BYTES: usize = 16;

/// The key receipts are made under; drawn from the OS once per node start.
#[derive(Clone)]
pub struct ReceiptKey([u8; 32]);

impl std::fmt::Debug for ReceiptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReceiptKey(..)")
    }
}

/// The fields a valid receipt names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The message's offset in the group's topic.
    pub offset: u64,
    /// The lease it was handed out with.
    pub lease: u64,
}

impl ReceiptKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key)?;
        Ok(ReceiptKey(key))
    }

    fn mac(&self, group: &str, offset: u64, lease: u64) -> Hmac<Sha256> {
        // A 32-byte key is always a valid HMAC key; `new_from_slice` only fails for fixed-size
        // MACs, which HMAC is not.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(&(group.len() as u64).to_be_bytes());
        mac.update(group.as_bytes());
        mac.update(&offset.to_be_bytes());
        mac.update(&lease.to_be_bytes());
        mac
    }

    /// The receipt of lease `lease` of the message at `offset` in `group`.
    pub fn issue(&self, group: &str, offset: u64, lease: u64) -> String {
        let tag = self.mac(group, offset, lease).finalize().into_bytes();
        let mut out = format!("{offset}.{lease}.");
        for byte in &tag[..TAG_BYTES] {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }

    /// What `receipt` names, if this node issued it for `group`; `None` for anything else
    /// (another group's receipt, another node's, a changed or made-up one).
    pub fn verify(&self, group: &str, receipt: &str) -> Option<Receipt> {
        let mut parts = receipt.split('.');
        let (offset, lease, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || tag.len() != TAG_BYTES * 2 {
            return None;
        }
        let offset = canonical_u64(offset)?;
        let lease = canonical_u64(lease)?;
        let mut presented = [0u8; TAG_BYTES];
        for (i, byte) in presented.iter_mut().enumerate() {
            *byte = lower_hex_byte(&tag[i * 2..i * 2 + 2])?;
        }
        self.mac(group, offset, lease)
            .verify_truncated_left(&presented)
            .ok()
            .map(|()| Receipt { offset, lease })
    }
}

/// A decimal number in its one spelling: digits only, no leading zero (except `0` itself).
fn canonical_u64(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

/// Two lower-case hex digits.
fn lower_hex_byte(pair: &str) -> Option<u8> {
    let lower = pair
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !lower {
        return None;
    }
    u8::from_str_radix(pair, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ReceiptKey {
        ReceiptKey::generate().expect("the OS has a random source")
    }

    #[test]
    fn a_receipt_verifies_for_its_group_only() {
        let key = key();
        let receipt = key.issue("a", 7, 42);
        assert_eq!(
            key.verify("a", &receipt),
            Some(Receipt {
                offset: 7,
                lease: 42
            })
        );
        assert_eq!(key.verify("b", &receipt), None);
        assert_eq!(key_other().verify("a", &receipt), None);
    }

    fn key_other() -> ReceiptKey {
        key()
    }

    #[test]
    fn every_single_character_change_is_refused() {
        let key = key();
        let receipt = key.issue("g", 1234, 99);
        for i in 0..receipt.len() {
            for replacement in ['0', '1', '9', 'a', 'f', 'A', '.', 'x'] {
                let mut changed: Vec<char> = receipt.chars().collect();
                if changed[i] == replacement {
                    continue;
                }
                changed[i] = replacement;
                let changed: String = changed.into_iter().collect();
                assert_eq!(key.verify("g", &changed), None, "{changed}");
            }
            let mut inserted = receipt.clone();
            inserted.insert(i, '0');
            assert_eq!(key.verify("g", &inserted), None, "{inserted}");
        }
        assert_eq!(key.verify("g", &format!("{receipt}0")), None);
        assert_eq!(key.verify("g", &receipt.to_uppercase()), None);
    }

    #[test]
    fn numbers_have_one_spelling() {
        assert_eq!(canonical_u64("0"), Some(0));
        assert_eq!(canonical_u64("10"), Some(10));
        assert_eq!(canonical_u64("010"), None);
        assert_eq!(canonical_u64("+1"), None);
        assert_eq!(canonical_u64(""), None);
    }
}
