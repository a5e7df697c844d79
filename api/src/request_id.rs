//! `X-Request-Id`: the id that ties one request's log lines together across nodes. Taken from
//! the request when it carries a usable one (a load balancer's, or the node that forwarded it),
//! else made here; returned in the response and carried when the request is forwarded to the
//! leader, so the follower's and the leader's access lines share it.

use crate::cluster::HttpRequest;

/// The header, lower-case as [`HttpRequest::header`] looks it up.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest request id taken from a caller; a longer one is replaced, so a caller cannot make
/// log lines arbitrarily large.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The request's id: the caller's when it is 1 to [`MAX_REQUEST_ID_LEN`] characters of
/// letters, digits, `-`, `_`, `.` or `:` (nothing a log reader could mistake for structure),
/// else 16 hex digits made here. Recorded in `request`'s headers, so a forward carries it.
pub fn take_or_make(request: &mut HttpRequest) -> String {
    let usable = |id: &str| {
        (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    };
    if let Some(id) = request.header(REQUEST_ID_HEADER).filter(|id| usable(id)) {
        return id.to_string();
    }
    let id = random_id();
    request
        .headers
        .retain(|(name, _)| name != REQUEST_ID_HEADER);
    request
        .headers
        .push((REQUEST_ID_HEADER.to_string(), id.clone()));
    id
}

/// 16 hex digits, unique in this process and not guessable from the ones before: a counter
/// through a keyed permutation of 64-bit numbers (a four-round Feistel network whose round
/// function is SipHash, keyed from the OS once per process). A permutation of distinct counts
/// never repeats, as random ids could; and it costs no system call, where a `getrandom` per
/// request did. An id only has to tell requests apart in the logs, not be a secret.
fn random_id() -> String {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    static KEYS: OnceLock<std::hash::RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let keys = KEYS.get_or_init(std::hash::RandomState::new);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let (mut left, mut right) = ((n >> 32) as u32, n as u32);
    for round in 0..4u32 {
        let mixed = keys.hash_one((round, right)) as u32;
        (left, right) = (right, left ^ mixed);
    }
    let id = (u64::from(left) << 32) | u64::from(right);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(16);
    for shift in (0..16).rev() {
        text.push(char::from(HEX[(id >> (shift * 4)) as usize & 0xf]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            path: "/healthz".into(),
            query: None,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Default::default(),
        }
    }

    #[test]
    fn a_usable_id_is_kept_and_others_are_replaced() {
        let mut given = request(&[(REQUEST_ID_HEADER, "lb-42.a:b_c")]);
        assert_eq!(take_or_make(&mut given), "lb-42.a:b_c");
        for bad in [
            "",
            "has space",
            "quote\"",
            &"x".repeat(MAX_REQUEST_ID_LEN + 1),
        ] {
            let mut req = request(&[(REQUEST_ID_HEADER, bad)]);
            let id = take_or_make(&mut req);
            assert_eq!(id.len(), 16, "{bad:?} replaced by a made id");
            assert_eq!(req.header(REQUEST_ID_HEADER), Some(id.as_str()));
        }
        let mut none = request(&[]);
        let made = take_or_make(&mut none);
        assert_eq!(none.header(REQUEST_ID_HEADER), Some(made.as_str()));
        assert_ne!(made, take_or_make(&mut request(&[])), "made ids differ");
    }

    #[test]
    fn made_ids_are_hex_and_do_not_repeat() {
        let made: std::collections::HashSet<String> = (0..100_000).map(|_| random_id()).collect();
        assert_eq!(made.len(), 100_000, "no id repeats");
        for id in made.iter().take(100) {
            assert_eq!(id.len(), 16, "{id}");
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
        let leading: std::collections::HashSet<&str> = made.iter().map(|id| &id[..2]).collect();
        assert!(
            leading.len() > 200,
            "successive ids do not share a prefix: {}",
            leading.len()
        );
    }
}
