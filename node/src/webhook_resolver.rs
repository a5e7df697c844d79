//! Name resolution for webhook calls that never yields a link-local address.
//!
//! A push URL with a link-local IP literal is refused when the group is put (`api::webhook_target`)
//! and again before each call (`push`); a host *name* is only known to be harmless once it is
//! resolved, so the scheduler's HTTP client resolves through [`NoLinkLocal`]: link-local
//! addresses (169.254.0.0/16, where cloud metadata answers, and fe80::/10) are dropped, and a name
//! that resolves to nothing else fails the attempt.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Resolve, Resolving};
use warp::hyper::client::connect::dns::Name;

/// The system resolver, minus link-local addresses.
#[derive(Debug, Default)]
pub struct NoLinkLocal;

/// The addresses of `host` a webhook may be sent to.
async fn allowed_addresses(host: String) -> Result<Vec<SocketAddr>, String> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?
        .collect();
    let allowed: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|a| !api::webhook_target::is_link_local(a.ip()))
        .collect();
    if allowed.is_empty() {
        return Err(format!(
            "{host} resolves only to link-local addresses, which webhooks may not reach"
        ));
    }
    Ok(allowed)
}

impl Resolve for NoLinkLocal {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let allowed = allowed_addresses(host).await?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn link_local_addresses_are_never_answered() {
        assert!(allowed_addresses("169.254.169.254".into()).await.is_err());
        assert!(allowed_addresses("fe80::1".into()).await.is_err());
        let local = allowed_addresses("127.0.0.1".into()).await.unwrap();
        assert!(local.iter().all(|a| a.ip().is_loopback()));
    }
}
