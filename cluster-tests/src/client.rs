//! A typed HTTP client for one node's API.
//!
//! Two layers: [`NodeClient::send`] returns whatever the node answered as an [`ApiResponse`]
//! (tests of bad input look at statuses and error codes), and the typed verbs (`put_sku`,
//! `create_order`, `pay`, ...) decode a 2xx into the contract's types and turn anything else
//! into [`Error::Api`].

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::model::{
    BackupTaken, ChangePage, ClusterStatus, NewOrder, Order, OrderPage, Sku, SkuSettings,
    SnapshotTaken, StateDigest, TimerStats,
};
use crate::requests;

/// The header that makes a POST retry-safe.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// How long one request may take before the client gives up on it. Long enough for a
/// follower to forward through an election, short enough that a test notices a hang.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting may take; on 127.0.0.1 anything longer means the node is gone.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One request to send with [`NodeClient::send`]: everything about it can be malformed on
/// purpose.
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// Path and query, starting with `/`.
    pub path: String,
    /// Raw body bytes; sent with `Content-Type: application/json` when present.
    pub body: Option<Vec<u8>>,
    /// Extra headers as raw bytes, so tests can send values a well-behaved client would not.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Whether to add the fixture's admin token (if it has one) as a bearer token.
    pub with_admin_token: bool,
}

impl Request {
    /// A `GET` of `path`.
    pub fn get(path: impl Into<String>) -> Self {
        Request {
            method: Method::GET,
            path: path.into(),
            body: None,
            headers: Vec::new(),
            with_admin_token: true,
        }
    }

    /// A request with a JSON body serialised from `body`.
    pub fn json(method: Method, path: impl Into<String>, body: &impl Serialize) -> Self {
        // Serialising our own plain structs and `serde_json::Value`s cannot fail.
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        Request::raw(method, path, bytes)
    }

    /// A request with `body` sent as is, labelled as JSON.
    pub fn raw(method: Method, path: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Request {
            method,
            path: path.into(),
            body: Some(body.into()),
            headers: Vec::new(),
            with_admin_token: true,
        }
    }

    /// Adds a header with a raw value.
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Adds `Idempotency-Key: key`.
    pub fn idempotency_key(self, key: &str) -> Self {
        self.header(IDEMPOTENCY_KEY, key)
    }

    /// Adds `Idempotency-Key: key` when there is one: for verbs whose caller decides.
    pub fn maybe_idempotency_key(self, key: Option<&str>) -> Self {
        match key {
            Some(key) => self.idempotency_key(key),
            None => self,
        }
    }

    /// Sends `Authorization: Bearer token` instead of the fixture's admin token (a client's
    /// token, or a wrong one).
    pub fn bearer(self, token: &str) -> Self {
        self.without_admin_token()
            .header("authorization", format!("Bearer {token}"))
    }

    /// Does not add the admin token (to test that `/admin/*` refuses).
    pub fn without_admin_token(mut self) -> Self {
        self.with_admin_token = false;
        self
    }
}

/// What a node answered, undecoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    /// HTTP status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

impl ApiResponse {
    /// The body parsed as JSON, `Value::Null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// `error.code` when the body has the contract's error shape
    /// `{"error": {"code", "message"}}` with both strings non-empty.
    pub fn error_code(&self) -> Option<String> {
        let body = self.json();
        let error = body.get("error")?;
        let code = error.get("code")?.as_str()?;
        let message = error.get("message")?.as_str()?;
        (!code.is_empty() && !message.is_empty()).then(|| code.to_owned())
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A client bound to one node's API base URL.
#[derive(Debug, Clone)]
pub struct NodeClient {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    base: String,
    /// Shared connection pool.
    http: reqwest::Client,
    /// Sent as a bearer token on requests that ask for it.
    admin_token: Option<String>,
}

impl NodeClient {
    /// A client for the node at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: impl Into<String>, admin_token: Option<String>) -> Result<Self> {
        let http = build_http(
            reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .connect_timeout(CONNECT_TIMEOUT),
        )?;
        Ok(Self::with_http(base, admin_token, http))
    }

    /// A client sharing an existing connection pool (the load generator uses one pool for all).
    pub fn with_http(
        base: impl Into<String>,
        admin_token: Option<String>,
        http: reqwest::Client,
    ) -> Self {
        NodeClient {
            base: base.into().trim_end_matches('/').to_owned(),
            http,
            admin_token,
        }
    }

    /// The base URL this client talks to.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `request` and returns whatever came back. Fails only when no answer came.
    pub async fn send(&self, request: Request) -> Result<ApiResponse> {
        let label = format!("{} {}{}", request.method, self.base, request.path);
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| Error::Usage(format!("{label}: bad header name {name:?}: {e}")))?;
            let value = HeaderValue::from_bytes(value).map_err(|e| {
                Error::Usage(format!(
                    "{label}: header value {value:?} cannot be sent: {e}"
                ))
            })?;
            headers.append(name, value);
        }
        if let (true, Some(token)) = (request.with_admin_token, &self.admin_token) {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| Error::Usage(format!("admin token cannot be sent: {e}")))?;
            headers.insert(AUTHORIZATION, value);
        }
        let mut builder = self
            .http
            .request(request.method, format!("{}{}", self.base, request.path))
            .headers(headers);
        if let Some(body) = request.body {
            builder = builder.header(CONTENT_TYPE, "application/json").body(body);
        }
        let transport = |source| Error::Transport {
            request: label.clone(),
            source,
        };
        let response = builder.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(transport)?;
        Ok(ApiResponse { status, body })
    }

    /// Sends `request` and decodes a 2xx body as `T`; any other status is [`Error::Api`]
    /// ([`Endpoint::call`], here without importing the trait).
    pub async fn call<T: DeserializeOwned>(&self, request: Request) -> Result<T> {
        Endpoint::call(self, request).await
    }

    /// `GET /healthz` answered 200.
    pub async fn is_healthy(&self) -> bool {
        matches!(self.send(Request::get("/healthz")).await, Ok(r) if r.status == 200)
    }

    /// `GET /readyz` answered 200: the node knows a leader.
    pub async fn is_ready(&self) -> bool {
        matches!(self.send(Request::get("/readyz")).await, Ok(r) if r.status == 200)
    }

    /// `PUT /admin/skus/{sku}`: loads (or reloads) a SKU's stock and price.
    pub async fn put_sku(&self, sku: &str, settings: &SkuSettings) -> Result<Sku> {
        self.call(requests::put_sku(sku, settings)).await
    }

    /// `GET /v1/skus/{sku}`, linearizable or (with `local`) from this node's applied state.
    pub async fn get_sku(&self, sku: &str, local: bool) -> Result<Sku> {
        self.call(Request::get(with_consistency(
            format!("/v1/skus/{sku}"),
            local,
        )))
        .await
    }

    /// `POST /v1/orders`, with an `Idempotency-Key` when given.
    pub async fn create_order(&self, order: &NewOrder, key: Option<&str>) -> Result<Order> {
        self.call(requests::create_order(order).maybe_idempotency_key(key))
            .await
    }

    /// `GET /v1/orders/{id}`, linearizable or (with `local`) from this node's applied state.
    pub async fn get_order(&self, id: &str, local: bool) -> Result<Order> {
        self.call(Request::get(with_consistency(
            format!("/v1/orders/{id}"),
            local,
        )))
        .await
    }

    /// `GET /v1/orders?user_id=&limit=&after=`: one page of a user's orders.
    pub async fn list_orders(
        &self,
        user_id: &str,
        limit: u32,
        after: Option<&str>,
    ) -> Result<OrderPage> {
        let mut path = format!("/v1/orders?user_id={user_id}&limit={limit}");
        if let Some(after) = after {
            path.push_str("&after=");
            path.push_str(after);
        }
        self.call(Request::get(path)).await
    }

    /// `POST /v1/orders/{id}/pay`.
    pub async fn pay(&self, id: &str, payment_ref: &str) -> Result<Order> {
        self.call(requests::pay(id, payment_ref)).await
    }

    /// `POST /v1/orders/{id}/cancel`.
    pub async fn cancel(&self, id: &str) -> Result<Order> {
        self.call(requests::cancel(id)).await
    }

    /// `POST /v1/seckill/{sku}` for `user_id`, with an `Idempotency-Key` when given. Answers
    /// whatever came back undecoded: most answers of a sale are 409 `sold_out` or 429.
    pub async fn seckill(
        &self,
        sku: &str,
        user_id: &str,
        key: Option<&str>,
    ) -> Result<ApiResponse> {
        self.send(requests::seckill(sku, user_id).maybe_idempotency_key(key))
            .await
    }

    /// Every order of `user_id` (all pages), read linearizably.
    pub async fn all_orders_of(&self, user_id: &str) -> Result<Vec<Order>> {
        let mut orders = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.list_orders(user_id, 1000, after.as_deref()).await?;
            orders.extend(page.orders);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(orders),
            }
        }
    }

    /// `GET /admin/cluster`: this node's view of the cluster.
    pub async fn cluster_status(&self) -> Result<ClusterStatus> {
        self.call(Request::get("/admin/cluster")).await
    }

    /// `GET /admin/timers`: pending and fired timers, firing lag.
    pub async fn timers(&self) -> Result<TimerStats> {
        self.call(requests::timers()).await
    }

    /// `GET /v1/changes?after=&limit=&wait_ms=`: one page of this node's change stream.
    pub async fn changes(
        &self,
        after: Option<u64>,
        limit: u32,
        wait_ms: u64,
    ) -> Result<ChangePage> {
        self.call(changes_request(after, limit, wait_ms)).await
    }

    /// [`NodeClient::changes`] with each change's JSON kept as it came, for a consumer that
    /// stores changes without reading them.
    pub async fn changes_raw(
        &self,
        after: Option<u64>,
        limit: u32,
        wait_ms: u64,
    ) -> Result<ChangePage<Box<RawValue>>> {
        self.call(changes_request(after, limit, wait_ms)).await
    }

    /// `POST /admin/cluster/learners`: adds a learner; answers once it caught up.
    pub async fn add_learner(
        &self,
        node_id: u64,
        api_addr: &str,
        raft_addr: &str,
    ) -> Result<ClusterStatus> {
        self.call(Request::json(
            Method::POST,
            "/admin/cluster/learners",
            &serde_json::json!({"node_id": node_id, "api_addr": api_addr, "raft_addr": raft_addr}),
        ))
        .await
    }

    /// `POST /admin/backup`: a backup of this node's state into the new directory `dir`.
    pub async fn backup(&self, dir: &std::path::Path) -> Result<BackupTaken> {
        self.call(crate::requests::backup(dir)).await
    }

    /// `GET /admin/digest`: a hash of this node's replicated state, with its applied index.
    pub async fn digest(&self) -> Result<StateDigest> {
        self.call(crate::requests::digest()).await
    }

    /// `POST /admin/snapshot`: builds a snapshot now.
    pub async fn snapshot(&self) -> Result<SnapshotTaken> {
        self.call(Request::json(
            Method::POST,
            "/admin/snapshot",
            &serde_json::json!({}),
        ))
        .await
    }
}

/// Finishes `builder` as every client of the nodes is built: never through a proxy (the nodes
/// listen on loopback; an `HTTP_PROXY` in the environment must not interfere), and a failure to
/// build as [`Error::Transport`].
pub fn build_http(builder: reqwest::ClientBuilder) -> Result<reqwest::Client> {
    builder
        .no_proxy()
        .build()
        .map_err(|source| Error::Transport {
            request: "building the HTTP client".to_owned(),
            source,
        })
}

/// Decodes a 2xx `response` to the request `label` as `T`; any other status is [`Error::Api`].
pub(crate) fn decode<T: DeserializeOwned>(label: String, response: ApiResponse) -> Result<T> {
    if !response.is_success() {
        return Err(Error::Api {
            request: label,
            status: response.status,
            code: response.error_code().unwrap_or_default(),
            body: response.body,
        });
    }
    serde_json::from_str(&response.body).map_err(|source| Error::Decode {
        request: label,
        source,
        body: response.body,
    })
}

/// `GET /v1/changes` after `after` (from the start of what the node holds when `None`).
fn changes_request(after: Option<u64>, limit: u32, wait_ms: u64) -> Request {
    let mut path = format!("/v1/changes?limit={limit}&wait_ms={wait_ms}");
    if let Some(after) = after {
        path.push_str(&format!("&after={after}"));
    }
    Request::get(path)
}

/// Appends `?consistency=local` when asked for.
fn with_consistency(path: String, local: bool) -> String {
    if local {
        format!("{path}?consistency=local")
    } else {
        path
    }
}

/// Creates `order` under idempotency key `key`, retrying with the same key and body while the
/// answer is retryable (no answer, 503, 429, ...), moving to the next node in `clients` on each
/// attempt, starting at `first`. Gives up after `limit`; a non-retryable answer fails at once.
///
/// Because every attempt carries the same key, the order exists at most once however many
/// attempts reached the cluster: this is how a well-behaved client rides through a failover.
pub async fn create_order_retrying(
    clients: &[NodeClient],
    first: usize,
    order: &NewOrder,
    key: &str,
    limit: Duration,
) -> Result<Order> {
    if clients.is_empty() {
        return Err(Error::Usage("no nodes to send the order to".to_owned()));
    }
    let mut attempt = 0;
    crate::wait::retry_while_unavailable(&format!("order {key} to be acknowledged"), limit, || {
        let client = &clients[(first + attempt) % clients.len()];
        attempt += 1;
        client.create_order(order, Some(key))
    })
    .await
}

/// Writes a trickle of orders of `order` through `clients` (keys `{key_prefix}-0`, `-1`, ...,
/// each tried on `clients[0]` first and acknowledged within 10 s) until `leader` says its log is
/// purged past `index`, for up to `limit`; answers the orders acknowledged.
///
/// A leader purges its log only when an entry gives it occasion after a snapshot, as real
/// traffic does: a test that needs a follower caught up by a snapshot, not by the log, waits here.
pub async fn write_until_purged_past(
    clients: &[NodeClient],
    leader: &NodeClient,
    index: u64,
    order: &NewOrder,
    key_prefix: &str,
    limit: Duration,
) -> Result<Vec<Order>> {
    let written = std::sync::Mutex::new(Vec::new());
    let lock = || {
        written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    crate::wait::poll_until(
        &format!("the leader to purge its log past index {index}"),
        limit,
        || async {
            let key = format!("{key_prefix}-{}", lock().len());
            let acked = create_order_retrying(clients, 0, order, &key, Duration::from_secs(10))
                .await
                .map_err(|e| e.to_string())?;
            lock().push(acked);
            let status = leader.cluster_status().await.map_err(|e| e.to_string())?;
            match status.last_purged_index {
                Some(purged) if purged > index => Ok(()),
                other => Err(format!("last_purged_index {other:?}")),
            }
        },
    )
    .await?;
    let orders = std::mem::take(&mut *lock());
    Ok(orders)
}
