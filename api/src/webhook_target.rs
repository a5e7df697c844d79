//! Where a webhook may point. A push URL on a link-local address (169.254.0.0/16, where cloud
//! metadata services answer, or fe80::/10) is refused when the subscription is put: orderq would
//! otherwise fetch the cloud's credentials for whoever may create a subscription. So is a URL on
//! a member's own API or Raft port: deliveries would be requests to the cluster itself.
//!
//! Only addresses written in the URL are checked here; the scheduler's HTTP client follows no
//! redirects, so a receiver cannot bounce a delivery elsewhere.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

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

/// The address a URL names when its host is an IP literal: the port given, or the scheme's.
fn literal_address(url: &str) -> Option<SocketAddr> {
    let ip = parse_ip(host_of(url)?)?;
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.1.strip_prefix(':'),
        None => host_port.split_once(':').map(|(_, port)| port),
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None if url.starts_with("https://") => 443,
        None => 80,
    };
    Some(SocketAddr::new(ip, port))
}

/// Whether a URL at `target` reaches a node listening on `member`: the same port, and the same
/// IP, or a member listening on every address, or both on loopback.
fn reaches(target: SocketAddr, member: SocketAddr) -> bool {
    target.port() == member.port()
        && (target.ip() == member.ip()
            || member.ip().is_unspecified()
            || (target.ip().is_loopback() && member.ip().is_loopback()))
}

/// Refuses a push URL on one of `members`' addresses (`host:port`, API and Raft ports of every
/// member) with 400 `invalid_request`.
pub fn check_not_member<'a>(
    url: &str,
    members: impl IntoIterator<Item = &'a str>,
) -> Result<(), ApiError> {
    let Some(target) = literal_address(url) else {
        return Ok(());
    };
    for member in members {
        if member
            .parse::<SocketAddr>()
            .is_ok_and(|m| reaches(target, m))
        {
            return Err(ApiError::invalid(format!(
                "push.url points at {member}, a port of this cluster's own nodes"
            )));
        }
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
    fn a_members_own_ports_are_refused() {
        let members = ["127.0.0.1:8081", "127.0.0.1:9081", "0.0.0.0:8090"];
        for url in [
            "http://127.0.0.1:8081/v1/orders",
            "http://127.0.0.2:9081/raft/vote",
            "http://10.0.0.5:8090/",
        ] {
            assert!(check_not_member(url, members).is_err(), "{url}");
        }
        for url in [
            "http://127.0.0.1:9900/hook",
            "http://10.0.0.5:8081/",
            "https://hooks.example.com:8081/",
            "http://[::1]:8082/",
        ] {
            assert!(check_not_member(url, members).is_ok(), "{url}");
        }
        assert_eq!(
            literal_address("http://[::1]:8082/x"),
            Some("[::1]:8082".parse().unwrap())
        );
        assert_eq!(
            literal_address("https://10.0.0.1/x"),
            Some("10.0.0.1:443".parse().unwrap())
        );
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
