//! Name resolution for webhook calls that yields only addresses webhooks may reach.
//!
//! A push URL with an IP literal the policy refuses is refused when the group is put
//! (`api::webhook_target`) and again before each call (`push`); a host *name* is only known to be
//! harmless once it is resolved, so the scheduler's HTTP client resolves through [`Permitted`]:
//! link-local addresses (169.254.0.0/16, where cloud metadata answers, and fe80::/10) and, with
//! `webhook_allow`, addresses outside it are dropped, and a name that resolves to nothing else
//! fails the attempt.

use std::net::SocketAddr;

use api::webhook_target::WebhookPolicy;
use reqwest::dns::{Addrs, Resolve, Resolving};
use warp::hyper::client::connect::dns::Name;

/// The system resolver, minus the addresses the policy refuses.
#[derive(Debug, Default)]
pub struct Permitted {
    /// Which addresses webhooks may reach.
    pub policy: WebhookPolicy,
}

/// The addresses of `host` a webhook may be sent to under `policy`.
async fn allowed_addresses(
    policy: &WebhookPolicy,
    host: String,
) -> Result<Vec<SocketAddr>, String> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?
        .collect();
    let allowed: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|a| policy.permits(a.ip()))
        .collect();
    if allowed.is_empty() {
        return Err(format!(
            "{host} resolves only to addresses webhooks may not reach (link-local or outside \
             webhook_allow)"
        ));
    }
    Ok(allowed)
}

impl Resolve for Permitted {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        let policy = self.policy.clone();
        Box::pin(async move {
            let allowed = allowed_addresses(&policy, host).await?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_addresses_are_never_answered() {
        let open = WebhookPolicy::default();
        assert!(allowed_addresses(&open, "169.254.169.254".into())
            .await
            .is_err());
        assert!(allowed_addresses(&open, "fe80::1".into()).await.is_err());
        let local = allowed_addresses(&open, "127.0.0.1".into()).await.unwrap();
        assert!(local.iter().all(|a| a.ip().is_loopback()));
        let ten = WebhookPolicy::new(vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(allowed_addresses(&ten, "localhost".into()).await.is_err());
    }
}
