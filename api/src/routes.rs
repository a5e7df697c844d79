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
    ("POST", "/admin/backup"),
    ("GET", "/admin/timers"),
    ("GET", "/admin/digest"),
    ("PUT", "/admin/skus/{sku}"),
    ("GET", "/v1/skus/{sku}"),
    ("POST", "/v1/orders"),
    ("POST", "/v1/orders/batch"),
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
    ("POST", "/v1/topics/{topic}/messages/batch"),
    ("GET", "/admin/subscriptions"),
    ("PUT", "/admin/subscriptions/{group}"),
    ("DELETE", "/admin/subscriptions/{group}"),
    ("GET", "/admin/subscriptions/{group}/dead"),
    ("POST", "/admin/subscriptions/{group}/dead/redrive"),
    ("POST", "/v1/subscriptions/{group}/receive"),
    ("POST", "/v1/subscriptions/{group}/ack"),
    ("POST", "/v1/subscriptions/{group}/nack"),
    ("GET", "/admin/topics"),
    ("GET", "/admin/skus"),
    ("GET", "/admin/orders/{id}/trace"),
    ("POST", "/admin/subscriptions/{group}/dead/purge"),
    ("POST", "/admin/subscriptions/{group}/pause"),
    ("POST", "/admin/subscriptions/{group}/resume"),
    ("POST", "/admin/subscriptions/{group}/reset"),
    ("GET", "/console"),
    ("GET", "/console/{asset}"),
    ("GET", "/admin/orders"),
    ("GET", "/admin/seckill"),
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
    /// `POST /admin/backup`: a consistent copy of this node's state into a new directory.
    Backup,
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
    /// `POST /v1/orders/batch`: many orders, each created as `POST /v1/orders` would.
    CreateOrderBatch,
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
    /// `POST /v1/topics/{topic}/messages/batch`: many messages, each published as the single
    /// publish would.
    PublishBatch(String),
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
    /// `GET /admin/topics`: every topic's head, retention floor and recent publish rate.
    Topics,
    /// `GET /admin/skus`: a page of SKUs with their stock.
    ListSkus,
    /// `GET /admin/orders/{id}/trace`: the order's changes, messages and their deliveries.
    OrderTrace(String),
    /// `POST /admin/subscriptions/{group}/dead/purge`
    Purge(String),
    /// `POST /admin/subscriptions/{group}/pause`
    Pause(String),
    /// `POST /admin/subscriptions/{group}/resume`
    Resume(String),
    /// `POST /admin/subscriptions/{group}/reset`: moves the group's position.
    Reset(String),
    /// `GET /console`: the operator console (one HTML page; it asks for the admin token).
    Console,
    /// `GET /console/{asset}`: the console's script and styles, embedded in the binary.
    ConsoleAsset(String),
    /// `GET /admin/orders?user_id=`: a user's orders, for operators (`/v1/orders` needs a
    /// client's `orders:read`).
    AdminListOrders,
    /// `GET /admin/seckill`: this node's flash-sale answers by outcome since it started.
    SeckillAnswers,
}

impl Route {
    /// The route for `method` and `path`: 404 for an unknown path, 405 (with the methods it
    /// accepts, for `Allow`) for a known path with another method, 400 for a parameter that is not valid UTF-8 once decoded.
    pub fn parse(method: &str, path: &str) -> Result<Route, ApiError> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let param = |raw: &str| -> Result<String, ApiError> {
            percent_decode_str(raw)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| ApiError::invalid("path parameter is not UTF-8"))
        };
        // Each known path with the methods it accepts (its `Allow` header) and the route meant
        // by `method`, if it is one of them.
        let by_path: Option<(&'static str, Option<Result<Route, ApiError>>)> = match segments
            .as_slice()
        {
            ["healthz"] => Some(only("GET", method, || Ok(Route::Healthz))),
            ["readyz"] => Some(only("GET", method, || Ok(Route::Readyz))),
            ["metrics"] => Some(only("GET", method, || Ok(Route::Metrics))),
            ["admin", "cluster"] => Some(only("GET", method, || Ok(Route::ClusterStatus))),
            ["admin", "snapshot"] => Some(only("POST", method, || Ok(Route::Snapshot))),
            ["admin", "backup"] => Some(only("POST", method, || Ok(Route::Backup))),
            ["admin", "timers"] => Some(only("GET", method, || Ok(Route::Timers))),
            ["admin", "digest"] => Some(only("GET", method, || Ok(Route::Digest))),
            ["admin", "skus", sku] => Some(only("PUT", method, || param(sku).map(Route::PutSku))),
            ["v1", "skus", sku] => Some(only("GET", method, || param(sku).map(Route::GetSku))),
            ["v1", "orders"] => Some((
                "GET, POST",
                match method {
                    "GET" => Some(Ok(Route::ListOrders)),
                    "POST" => Some(Ok(Route::CreateOrder)),
                    _ => None,
                },
            )),
            // Before `{id}`: a concrete path wins over a template (OpenAPI says so too), and
            // order ids are made by the state machine, never `batch`.
            ["v1", "orders", "batch"] => Some(only("POST", method, || Ok(Route::CreateOrderBatch))),
            ["v1", "orders", id] => Some(only("GET", method, || param(id).map(Route::GetOrder))),
            ["v1", "orders", id, "pay"] => {
                Some(only("POST", method, || param(id).map(Route::PayOrder)))
            }
            ["v1", "orders", id, "cancel"] => {
                Some(only("POST", method, || param(id).map(Route::CancelOrder)))
            }
            ["v1", "changes"] => Some(only("GET", method, || Ok(Route::Changes))),
            ["v1", "changes", "stream"] => Some(only("GET", method, || Ok(Route::ChangeStream))),
            ["admin", "cluster", "learners"] => {
                Some(only("POST", method, || Ok(Route::AddLearner)))
            }
            ["admin", "cluster", "voters"] => {
                Some(only("POST", method, || Ok(Route::ChangeVoters)))
            }
            ["v1", "seckill", sku] => Some(only("POST", method, || param(sku).map(Route::Seckill))),
            ["v1", "orders", id, "refund"] => {
                Some(only("POST", method, || param(id).map(Route::RefundOrder)))
            }
            ["v1", "topics", topic, "messages"] => {
                Some(only("POST", method, || param(topic).map(Route::Publish)))
            }
            ["v1", "topics", topic, "messages", "batch"] => Some(only("POST", method, || {
                param(topic).map(Route::PublishBatch)
            })),
            ["admin", "subscriptions"] => {
                Some(only("GET", method, || Ok(Route::ListSubscriptions)))
            }
            ["admin", "subscriptions", group] => Some((
                "PUT, DELETE",
                match method {
                    "PUT" => Some(param(group).map(Route::PutSubscription)),
                    "DELETE" => Some(param(group).map(Route::RemoveSubscription)),
                    _ => None,
                },
            )),
            ["admin", "subscriptions", group, "dead"] => {
                Some(only("GET", method, || param(group).map(Route::DeadLetters)))
            }
            ["admin", "subscriptions", group, "dead", "redrive"] => {
                Some(only("POST", method, || param(group).map(Route::Redrive)))
            }
            ["v1", "subscriptions", group, "receive"] => {
                Some(only("POST", method, || param(group).map(Route::Receive)))
            }
            ["v1", "subscriptions", group, "ack"] => {
                Some(only("POST", method, || param(group).map(Route::Ack)))
            }
            ["v1", "subscriptions", group, "nack"] => {
                Some(only("POST", method, || param(group).map(Route::Nack)))
            }
            ["admin", "topics"] => Some(only("GET", method, || Ok(Route::Topics))),
            ["admin", "skus"] => Some(only("GET", method, || Ok(Route::ListSkus))),
            ["admin", "orders", id, "trace"] => {
                Some(only("GET", method, || param(id).map(Route::OrderTrace)))
            }
            ["admin", "subscriptions", group, "dead", "purge"] => {
                Some(only("POST", method, || param(group).map(Route::Purge)))
            }
            ["admin", "subscriptions", group, "pause"] => {
                Some(only("POST", method, || param(group).map(Route::Pause)))
            }
            ["admin", "subscriptions", group, "resume"] => {
                Some(only("POST", method, || param(group).map(Route::Resume)))
            }
            ["admin", "subscriptions", group, "reset"] => {
                Some(only("POST", method, || param(group).map(Route::Reset)))
            }
            ["console"] | ["console", ""] => Some(only("GET", method, || Ok(Route::Console))),
            ["console", asset] => Some(only("GET", method, || {
                param(asset).map(Route::ConsoleAsset)
            })),
            ["admin", "orders"] => Some(only("GET", method, || Ok(Route::AdminListOrders))),
            ["admin", "seckill"] => Some(only("GET", method, || Ok(Route::SeckillAnswers))),
            _ => None,
        };
        match by_path {
            None => Err(ApiError::not_found(format!("no route for {path}"))),
            Some((allow, None)) => Err(ApiError::method_not_allowed(allow)),
            Some((_, Some(route))) => route,
        }
    }

    /// A wait for something to happen that changes nothing itself (a pull receive, a change
    /// page with `wait_ms`): what draining may end early.
    pub fn is_long_poll(&self) -> bool {
        matches!(self, Route::Receive(_) | Route::Changes)
    }

    /// What a draining node still answers: liveness and metrics, so a supervisor and a scraper
    /// see it to the end. Everything else gets 503 `shutting_down`, `/readyz` included, so a
    /// load balancer takes the node out.
    pub fn answers_while_draining(&self) -> bool {
        matches!(self, Route::Healthz | Route::Metrics)
    }

    /// The OpenAPI template of this route, the label of its metrics and access log lines.
    pub fn template(&self) -> &'static str {
        match self {
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::ClusterStatus => "/admin/cluster",
            Route::Snapshot => "/admin/snapshot",
            Route::Backup => "/admin/backup",
            Route::Timers => "/admin/timers",
            Route::Digest => "/admin/digest",
            Route::PutSku(_) => "/admin/skus/{sku}",
            Route::GetSku(_) => "/v1/skus/{sku}",
            Route::CreateOrder | Route::ListOrders => "/v1/orders",
            Route::CreateOrderBatch => "/v1/orders/batch",
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
            Route::PublishBatch(_) => "/v1/topics/{topic}/messages/batch",
            Route::ListSubscriptions => "/admin/subscriptions",
            Route::PutSubscription(_) | Route::RemoveSubscription(_) => {
                "/admin/subscriptions/{group}"
            }
            Route::DeadLetters(_) => "/admin/subscriptions/{group}/dead",
            Route::Redrive(_) => "/admin/subscriptions/{group}/dead/redrive",
            Route::Receive(_) => "/v1/subscriptions/{group}/receive",
            Route::Ack(_) => "/v1/subscriptions/{group}/ack",
            Route::Nack(_) => "/v1/subscriptions/{group}/nack",
            Route::Topics => "/admin/topics",
            Route::ListSkus => "/admin/skus",
            Route::OrderTrace(_) => "/admin/orders/{id}/trace",
            Route::Purge(_) => "/admin/subscriptions/{group}/dead/purge",
            Route::Pause(_) => "/admin/subscriptions/{group}/pause",
            Route::Resume(_) => "/admin/subscriptions/{group}/resume",
            Route::Reset(_) => "/admin/subscriptions/{group}/reset",
            Route::Console => "/console",
            Route::ConsoleAsset(_) => "/console/{asset}",
            Route::AdminListOrders => "/admin/orders",
            Route::SeckillAnswers => "/admin/seckill",
        }
    }
}

/// A path that accepts only `allow`: its route when `method` is that one.
fn only(
    allow: &'static str,
    method: &str,
    route: impl FnOnce() -> Result<Route, ApiError>,
) -> (&'static str, Option<Result<Route, ApiError>>) {
    (allow, (method == allow).then(route))
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
        let refused = Route::parse("DELETE", "/v1/orders/1").unwrap_err();
        assert_eq!((refused.status, refused.allow), (405, Some("GET")));
        let refused = Route::parse("PATCH", "/admin/subscriptions/g").unwrap_err();
        assert_eq!(refused.allow, Some("PUT, DELETE"));
        let refused = Route::parse("TRACE", "/v1/orders").unwrap_err();
        assert_eq!(refused.allow, Some("GET, POST"));
        let refused = Route::parse("GET", "/v1/orders/batch").unwrap_err();
        assert_eq!((refused.status, refused.allow), (405, Some("POST")));
    }
}
