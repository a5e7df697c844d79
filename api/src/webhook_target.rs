//! Where a webhook may point. A push URL on a link-local address (169.254.0.0/16, where cloud
//! metadata services answer, or fe80::/10) is refused when the subscription is put: orderq would
//! otherwise fetch the cloud's credentials for whoever may create a subscription. So is a URL on
//! a member's own API or Raft port: deliveries would be requests to the cluster itself.
//!
//! With `webhook_allow` (a list of address ranges) configured, webhooks go only there.
//!
//! Only addresses written in the URL are checked here; a host name is checked when the scheduler
//! resolves it (its resolver answers only addresses [`WebhookPolicy::permits`]), and its HTTP
//! client follows no redirects, so a receiver cannot bounce a delivery elsewhere.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::error::ApiError;

/// An address range: `ip/prefix` (`10.0.0.0/8`, `2001:db8::/32`) or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    /// The range's first address (host bits cleared).
    network: IpAddr,
    /// Leading bits that must match.
    prefix: u8,
}

/// A range that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address range (ip/prefix, such as 10.0.0.0/8 or 2001:db8::/32)")]
pub struct InvalidCidr(pub String);

/// The IPv4 address an IPv4-mapped IPv6 address stands for, else `ip` itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

/// The top `prefix` bits of a `width`-bit address (`prefix <= width`).
fn mask(prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    (u128::MAX << (128 - u32::from(prefix))) >> (128 - u32::from(width))
}

impl std::str::FromStr for Cidr {
    type Err = InvalidCidr;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidCidr(text.to_string());
        let (ip, prefix) = match text.trim().split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (text.trim(), None),
        };
        let ip = canonical(ip.parse::<IpAddr>().map_err(|_| invalid())?);
        let (value, width) = bits(ip);
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| invalid())?,
            None => width,
        };
        if prefix > width {
            return Err(invalid());
        }
        let network = value & mask(prefix, width);
        let network = match ip {
            IpAddr::V4(_) => IpAddr::V4(u32::try_from(network).map_err(|_| invalid())?.into()),
            IpAddr::V6(_) => IpAddr::V6(network.into()),
        };
        Ok(Cidr { network, prefix })
    }
}

impl TryFrom<String> for Cidr {
    type Error = InvalidCidr;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    /// Whether `ip` lies in the range (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let ((value, width), (network, network_width)) = (bits(ip), bits(self.network));
        width == network_width && value & mask(self.prefix, width) == network
    }
}

/// Where webhooks may go: never to a link-local address, and only into `webhook_allow` when it
/// names any range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookPolicy {
    /// The ranges webhooks are restricted to; empty: anywhere but link-local.
    allow: Vec<Cidr>,
}

impl WebhookPolicy {
    /// A policy restricting webhooks to `allow` (empty: no restriction beyond link-local).
    pub fn new(allow: Vec<Cidr>) -> Self {
        WebhookPolicy { allow }
    }

    /// Whether a webhook may be sent to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !is_link_local(ip) && (self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip)))
    }

    /// Refuses a push URL whose host is an address this policy does not permit, or that has no
    /// host (400 `invalid_request`). A host name passes here; it is checked when resolved.
    pub fn check_url(&self, url: &str) -> Result<(), ApiError> {
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
        if parse_ip(bare).is_some_and(|ip| !self.permits(ip)) {
            return Err(ApiError::invalid(format!(
                "push.url points at {host}, outside webhook_allow"
            )));
        }
        Ok(())
    }
}

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
            assert!(WebhookPolicy::default().check_url(url).is_err(), "{url}");
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
    fn ranges_parse_and_contain() {
        let ten: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(ten.to_string(), "10.0.0.0/8");
        assert!(ten.contains("10.200.0.1".parse().unwrap()));
        assert!(ten.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!ten.contains("11.0.0.1".parse().unwrap()));
        let one: Cidr = "192.168.1.7".parse().unwrap();
        assert!(one.contains("192.168.1.7".parse().unwrap()));
        assert!(!one.contains("192.168.1.8".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "x/8", "10.0.0.0/", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_allow_list_restricts_literal_hosts() {
        let policy = WebhookPolicy::new(vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(policy.check_url("http://10.2.3.4/hook").is_ok());
        assert!(policy.check_url("http://127.0.0.1:9900/hook").is_err());
        assert!(
            policy.check_url("http://hooks.example.com/").is_ok(),
            "names wait for resolution"
        );
        assert!(!policy.permits("169.254.169.254".parse().unwrap()));
        let open = WebhookPolicy::default();
        assert!(open.permits("127.0.0.1".parse().unwrap()));
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
            assert!(WebhookPolicy::default().check_url(url).is_ok(), "{url}");
        }
    }
}
