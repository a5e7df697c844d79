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
/// else 16 random hex digits. Recorded in `request`'s headers, so a forward carries it.
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

/// 16 random hex digits; from the clock and a counter if the OS gives no random bytes (an id
/// only has to be unlikely to repeat, not secret).
fn random_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes = (nanos ^ n.rotate_left(48)).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
}
