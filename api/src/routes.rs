//! The route table: every public path, parsed from method and path. `docs/openapi.yaml` is checked
//! against [`ROUTES`] by a test, so the document cannot drift from what is served.

use percent_encoding::percent_decode_str;

use crate::error::ApiError;

/// Every route served, as (method, OpenAPI path template).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/admin/cluster"),
    ("POST", "/admin/snapshot"),
    ("GET", "/admin/timers"),
    ("GET", "/admin/digest"),
    ("PUT", "/admin/skus/{sku}"),
    ("GET", "/v1/skus/{sku}"),
    ("POST", "/v1/orders"),
    ("GET", "/v1/orders"),
    ("GET", "/v1/orders/{id}"),
    ("POST", "/v1/orders/{id}/pay"),
    ("POST", "/v1/orders/{id}/cancel"),
    ("GET", "/v1/changes"),
    ("GET", "/v1/changes/stream"),
    ("POST", "/admin/cluster/learners"),
    ("POST", "/admin/cluster/voters"),
    ("POST", "/v1/seckill/{sku}"),
    ("POST", "/v1/orders/{id}/refund"),
    ("POST", "/v1/topics/{topic}/messages"),
    ("GET", "/admin/subscriptions"),
    ("PUT", "/admin/subscriptions/{group}"),
    ("DELETE", "/admin/subscriptions/{group}"),
    ("GET", "/admin/subscriptions/{group}/dead"),
    ("POST", "/admin/subscriptions/{group}/dead/redrive"),
    ("POST", "/v1/subscriptions/{group}/receive"),
    ("POST", "/v1/subscriptions/{group}/ack"),
    ("POST", "/v1/subscriptions/{group}/nack"),
];

/// A parsed route with its path parameters (percent-decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /healthz`
    Healthz,
    /// `GET /readyz`
    Readyz,
    /// `GET /metrics`
    Metrics,
    /// `GET /admin/cluster`
    ClusterStatus,
    /// `POST /admin/snapshot`
    Snapshot,
    /// `GET /admin/timers`
    Timers,
    /// `GET /admin/digest`: a hash of the replicated state, to compare replicas.
    Digest,
    /// `PUT /admin/skus/{sku}`
    PutSku(String),
    /// `GET /v1/skus/{sku}`
    GetSku(String),
    /// `POST /v1/orders`
    CreateOrder,
    /// `GET /v1/orders`
    ListOrders,
    /// `GET /v1/orders/{id}`
    GetOrder(String),
    /// `POST /v1/orders/{id}/pay`
    PayOrder(String),
    /// `POST /v1/orders/{id}/cancel`
    CancelOrder(String),
    /// `GET /v1/changes`: a page of the change stream (long poll).
    Changes,
    /// `GET /v1/changes/stream`: the change stream as NDJSON over one open response.
    ChangeStream,
    /// `POST /admin/cluster/learners`: add a non-voting member.
    AddLearner,
    /// `POST /admin/cluster/voters`: replace the set of voters.
    ChangeVoters,
    /// `POST /v1/seckill/{sku}`
    Seckill(String),
    /// `POST /v1/orders/{id}/refund`
    RefundOrder(String),
    /// `POST /v1/topics/{topic}/messages`
    Publish(String),
    /// `GET /admin/subscriptions`
    ListSubscriptions,
    /// `PUT /admin/subscriptions/{group}`
    PutSubscription(String),
    /// `DELETE /admin/subscriptions/{group}`
    RemoveSubscription(String),
    /// `GET /admin/subscriptions/{group}/dead`
    DeadLetters(String),
    /// `POST /admin/subscriptions/{group}/dead/redrive`
    Redrive(String),
    /// `POST /v1/subscriptions/{group}/receive`
    Receive(String),
    /// `POST /v1/subscriptions/{group}/ack`
    Ack(String),
    /// `POST /v1/subscriptions/{group}/nack`
    Nack(String),
}

impl Route {
    /// The route for `method` and `path`: 404 for an unknown path, 405 for a known path with
    /// another method, 400 for a parameter that is not valid UTF-8 once decoded.
    pub fn parse(method: &str, path: &str) -> Result<Route, ApiError> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let param = |raw: &str| -> Result<String, ApiError> {
            percent_decode_str(raw)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| ApiError::invalid("path parameter is not UTF-8"))
        };
        let by_path: Option<(&str, Route)> = match segments.as_slice() {
            ["healthz"] => Some(("GET", Route::Healthz)),
            ["readyz"] => Some(("GET", Route::Readyz)),
            ["metrics"] => Some(("GET", Route::Metrics)),
            ["admin", "cluster"] => Some(("GET", Route::ClusterStatus)),
            ["admin", "snapshot"] => Some(("POST", Route::Snapshot)),
            ["admin", "timers"] => Some(("GET", Route::Timers)),
            ["admin", "digest"] => Some(("GET", Route::Digest)),
            ["admin", "skus", sku] => Some(("PUT", Route::PutSku(param(sku)?))),
            ["v1", "skus", sku] => Some(("GET", Route::GetSku(param(sku)?))),
            ["v1", "orders"] => match method {
                "POST" => Some(("POST", Route::CreateOrder)),
                _ => Some(("GET", Route::ListOrders)),
            },
            ["v1", "orders", id] => Some(("GET", Route::GetOrder(param(id)?))),
            ["v1", "orders", id, "pay"] => Some(("POST", Route::PayOrder(param(id)?))),
            ["v1", "orders", id, "cancel"] => Some(("POST", Route::CancelOrder(param(id)?))),
            ["v1", "changes"] => Some(("GET", Route::Changes)),
            ["v1", "changes", "stream"] => Some(("GET", Route::ChangeStream)),
            ["admin", "cluster", "learners"] => Some(("POST", Route::AddLearner)),
            ["admin", "cluster", "voters"] => Some(("POST", Route::ChangeVoters)),
            ["v1", "seckill", sku] => Some(("POST", Route::Seckill(param(sku)?))),
            ["v1", "orders", id, "refund"] => Some(("POST", Route::RefundOrder(param(id)?))),
            ["v1", "topics", topic, "messages"] => Some(("POST", Route::Publish(param(topic)?))),
            ["admin", "subscriptions"] => Some(("GET", Route::ListSubscriptions)),
            ["admin", "subscriptions", group] => match method {
                "DELETE" => Some(("DELETE", Route::RemoveSubscription(param(group)?))),
                _ => Some(("PUT", Route::PutSubscription(param(group)?))),
            },
            ["admin", "subscriptions", group, "dead"] => {
                Some(("GET", Route::DeadLetters(param(group)?)))
            }
            ["admin", "subscriptions", group, "dead", "redrive"] => {
                Some(("POST", Route::Redrive(param(group)?)))
            }
            ["v1", "subscriptions", group, "receive"] => {
                Some(("POST", Route::Receive(param(group)?)))
            }
            ["v1", "subscriptions", group, "ack"] => Some(("POST", Route::Ack(param(group)?))),
            ["v1", "subscriptions", group, "nack"] => Some(("POST", Route::Nack(param(group)?))),
            _ => None,
        };
        match by_path {
            None => Err(ApiError::not_found(format!("no route for {path}"))),
            Some((expected, route)) if expected == method => Ok(route),
            Some(_) => Err(ApiError::method_not_allowed()),
        }
    }

    /// The OpenAPI template of this route, the label of its metrics.
    pub fn template(&self) -> &'static str {
        match self {
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::ClusterStatus => "/admin/cluster",
            Route::Snapshot => "/admin/snapshot",
            Route::Timers => "/admin/timers",
            Route::Digest => "/admin/digest",
            Route::PutSku(_) => "/admin/skus/{sku}",
            Route::GetSku(_) => "/v1/skus/{sku}",
            Route::CreateOrder | Route::ListOrders => "/v1/orders",
            Route::GetOrder(_) => "/v1/orders/{id}",
            Route::PayOrder(_) => "/v1/orders/{id}/pay",
            Route::CancelOrder(_) => "/v1/orders/{id}/cancel",
            Route::Changes => "/v1/changes",
            Route::ChangeStream => "/v1/changes/stream",
            Route::AddLearner => "/admin/cluster/learners",
            Route::ChangeVoters => "/admin/cluster/voters",
            Route::Seckill(_) => "/v1/seckill/{sku}",
            Route::RefundOrder(_) => "/v1/orders/{id}/refund",
            Route::Publish(_) => "/v1/topics/{topic}/messages",
            Route::ListSubscriptions => "/admin/subscriptions",
            Route::PutSubscription(_) | Route::RemoveSubscription(_) => {
                "/admin/subscriptions/{group}"
            }
            Route::DeadLetters(_) => "/admin/subscriptions/{group}/dead",
            Route::Redrive(_) => "/admin/subscriptions/{group}/dead/redrive",
            Route::Receive(_) => "/v1/subscriptions/{group}/receive",
            Route::Ack(_) => "/v1/subscriptions/{group}/ack",
            Route::Nack(_) => "/v1/subscriptions/{group}/nack",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_to_its_route() {
        for (method, template) in ROUTES {
            let path = template
                .replace("{sku}", "A%20B")
                .replace("{id}", "0001")
                .replace("{topic}", "t.1")
                .replace("{group}", "g");
            let route =
                Route::parse(method, &path).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            assert_eq!(route.template(), *template);
        }
    }

    #[test]
    fn parameters_are_decoded() {
        assert_eq!(
            Route::parse("GET", "/v1/skus/A%20B").unwrap(),
            Route::GetSku("A B".into())
        );
    }

    #[test]
    fn unknown_paths_and_methods_are_refused() {
        assert_eq!(Route::parse("GET", "/v2/x").unwrap_err().status, 404);
        assert_eq!(
            Route::parse("DELETE", "/v1/orders/1").unwrap_err().status,
            405
        );
    }
}
