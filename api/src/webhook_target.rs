//! Where a webhook may point. A push URL on a link-local address (169.254.0.0/16, where cloud
//! metadata services answer, or fe80::/10) is refused when the subscription is put: orderq would
//! otherwise fetch the cloud's credentials for whoever may create a subscription.
//!
//! Only addresses written in the URL are checked here; the scheduler's HTTP client follows no
//! redirects, so a receiver cannot bounce a delivery elsewhere.

use std::net::{IpAddr, Ipv6Addr};

use crate::error::ApiError;

/// The host of an `http(s)://` URL as written: between `://` (after any `user@`) and the port,
/// path, query or fragment; an IPv6 literal without its brackets.
fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split_once(']').map(|(host, _)| host);
    }
    host_port.split(':').next()
}

/// Whether `ip` is link-local, an IPv4 one mapped into IPv6 included.
pub fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
        }
    }
}

fn parse_ip(host: &str) -> Option<IpAddr> {
    host.parse::<IpAddr>()
        .ok()
        .or_else(|| host.parse::<Ipv6Addr>().ok().map(IpAddr::V6))
}

/// Refuses a push URL whose host is a link-local address (400 `invalid_request`).
pub fn check_push_url(url: &str) -> Result<(), ApiError> {
    let host = host_of(url).ok_or_else(|| ApiError::invalid("push.url has no host"))?;
    if host.is_empty() {
        return Err(ApiError::invalid("push.url has no host"));
    }
    // A zone id (`fe80::1%eth0`) is link-local by nature.
    let bare = host.split('%').next().unwrap_or(host);
    if host.contains('%') || parse_ip(bare).is_some_and(is_link_local) {
        return Err(ApiError::invalid(format!(
            "push.url points at the link-local address {host}, which webhooks may not reach"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_hosts_are_refused() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.1.1:8080/x",
            "http://user@169.254.169.254/",
            "http://[fe80::1]/hook",
            "http://[fe80::1%25eth0]:80/hook",
            "http://[febf::1]/",
            "http://[::ffff:169.254.169.254]/",
        ] {
            assert!(check_push_url(url).is_err(), "{url}");
        }
    }

    #[test]
    fn other_hosts_pass() {
        for url in [
            "http://127.0.0.1:9900/hook",
            "https://hooks.example.com/x?y=1",
            "http://[::1]:80/",
            "http://169.255.0.1/",
            "http://[fec0::1]/",
        ] {
            assert!(check_push_url(url).is_ok(), "{url}");
        }
    }
}
