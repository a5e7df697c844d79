//! Dispatch: from an [`HttpRequest`] to an [`HttpReply`]. Validation happens here, before anything
//! is proposed. Writes reach the leader through [`Cluster::write`] alone (the node forwards the
//! command, and follows the leader when it moves); linearizable reads, pull requests and
//! membership changes that reach a follower are forwarded to the leader's API.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use sm::command::{Action, CancelOrder, Command, PayOrder};
use sm::outcome::{Applied, Outcome};
use sm::StateReader;

use crate::access_log;
use crate::audit;
use crate::auth::Access;
use crate::changes::{self, ChangeStream, ChangesQuery};
use crate::cluster::{Cluster, ClusterError, ClusterStatus, HttpReply, HttpRequest};
use crate::drain::Drain;
use crate::error::ApiError;
use crate::http_metrics::HttpMetrics;
use crate::idempotency;
use crate::metrics::Metrics;
use crate::request::{
    self, BackupBody, CancelBody, LearnerBody, OrderBody, PayBody, ReadQuery, SkuBody, VotersBody,
};
use crate::request_id;
use crate::routes::Route;
use crate::seckill_answers::SeckillAnswers;
use crate::state_metrics::StateMetrics;
use crate::view;

/// How many of the latest closed orders `GET /admin/timers` lists.
const RECENT_CLOSES: u64 = 10;

pub use crate::cluster::FORWARDED_HEADER;

/// Settings of the API layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The tokens callers present (admin, clients with scopes, metrics); none leaves the node
    /// open (a lone node on loopback).
    pub access: Access,
    /// Payment window of orders that name none.
    pub default_pay_within_secs: u64,
    /// Payment window of flash-sale orders: short, so unpaid units return to the sale soon.
    pub seckill_pay_within_secs: u64,
    /// Most dead letters one redrive step moves (at most `sm::queue::MAX_REDRIVE`): a redrive of
    /// any size is proposed as bounded steps, one entry each.
    pub redrive_step: usize,
    /// Where push URLs may point (never link-local; within `webhook_allow` when set).
    pub webhook_policy: crate::webhook_target::WebhookPolicy,
    /// Which requests get an access line.
    pub access_log: access_log::AccessLog,
}

/// The API of one node.
pub struct Api<C: Cluster> {
    /// The cluster behind the API.
    pub(crate) cluster: Arc<C>,
    /// Settings.
    pub(crate) config: ApiConfig,
    /// Request counters and latencies (also registered in `registry`).
    http_metrics: HttpMetrics,
    /// The node's one registry, rendered by `/metrics`.
    registry: Metrics,
    /// Set once the node stops: no new request, long polls and streams end.
    drain: Drain,
    /// This node's flash-sale answers by outcome, for `GET /admin/seckill`.
    pub(crate) seckill_answers: SeckillAnswers,
}

pub(crate) fn json_reply(status: u16, body: &Value) -> HttpReply {
    HttpReply::json(status, body.to_string())
}

pub(crate) fn outcome_reply(outcome: Outcome) -> Result<HttpReply, ApiError> {
    match outcome? {
        Applied::Sku(sku) => Ok(json_reply(200, &view::sku(&sku))),
        Applied::OrderCreated(order) => Ok(json_reply(201, &view::order(&order))),
        Applied::Order(order) => Ok(json_reply(200, &view::order(&order))),
        Applied::TimersFired(fired) => Ok(json_reply(200, &json!({"fired": fired.fired.len()}))),
        Applied::Published(message) => Ok(json_reply(
            201,
            &json!({
                "id": message.id,
                "topic": message.topic,
                "offset": message.offset,
                "deliver_at": view::rfc3339(message.deliver_at_ms),
            }),
        )),
        Applied::Subscription(sub) => Ok(json_reply(200, &crate::view::subscription(&sub))),
        Applied::SubscriptionSigned {
            subscription,
            signing_secret,
        } => {
            let mut view = crate::view::subscription(&subscription);
            view["signing_secret"] = Value::String(signing_secret);
            Ok(json_reply(200, &view))
        }
        Applied::DeliveriesRecorded(done) => Ok(json_reply(
            200,
            &json!({"acked": done.acked.len(), "retrying": done.retrying.len(), "dead": done.dead.len()}),
        )),
        Applied::Redriven(n) => Ok(json_reply(200, &json!({"redriven": n}))),
        Applied::Purged(n) => Ok(json_reply(200, &json!({"purged": n}))),
        Applied::Trimmed(floor) => Ok(json_reply(200, &json!({"trimmed_through": floor}))),
        Applied::SubscriptionRemoved(_) => Ok(json_reply(200, &json!({"removed": true}))),
        Applied::RefundRequested(order) => Ok(json_reply(202, &view::order(&order))),
    }
}

impl<C: Cluster> Api<C> {
    /// The API over `cluster`.
    pub fn new(cluster: Arc<C>, config: ApiConfig) -> Self {
        let http_metrics = HttpMetrics::default();
        let mut registry = Metrics::default();
        registry.register_build_info();
        http_metrics.register(registry.orderq());
        registry
            .orderq()
            .register_collector(Box::new(StateMetrics::new(cluster.clone())));
        cluster.register_metrics(&mut registry);
        Api {
            cluster,
            config,
            http_metrics,
            registry,
            drain: Drain::never(),
            seckill_answers: SeckillAnswers::default(),
        }
    }

    /// The same API, draining once `drain` starts: new requests get 503 `shutting_down`, long
    /// polls and change streams end, requests in progress finish.
    pub fn draining_on(self, drain: Drain) -> Self {
        Api { drain, ..self }
    }

    /// The drain this API obeys (the server ends open streams with it).
    pub fn drain(&self) -> &Drain {
        &self.drain
    }

    /// Answers one request; never panics on input and never answers 5xx for bad input.
    pub async fn handle(&self, mut request: HttpRequest) -> HttpReply {
        let started = Instant::now();
        let request_id = request_id::take_or_make(&mut request);
        let (template, reply) = match Route::parse(&request.method, &request.path) {
            Ok(route) => {
                let template = route.template();
                let reply = match self.config.access.authorize(&route, &request) {
                    Err(e) => e.into_reply(),
                    Ok(_) if self.drain.is_draining() && !route.answers_while_draining() => {
                        ApiError::shutting_down().into_reply()
                    }
                    Ok(caller) => {
                        let reply = self
                            .dispatch_until_drained(route.clone(), &request)
                            .await
                            .unwrap_or_else(ApiError::into_reply);
                        if audit::is_admin_write(&route) {
                            audit::record(&caller, &route, &request, reply.status);
                        }
                        reply
                    }
                };
                (template, reply)
            }
            Err(e) => ("unmatched", e.into_reply()),
        };
        let took = started.elapsed();
        self.http_metrics
            .observe(&request.method, template, reply.status, took);
        access_log::record(
            self.config.access_log,
            &request.method,
            template,
            &reply,
            took,
            &request_id,
        );
        let mut reply = reply;
        reply
            .headers
            .push((request_id::REQUEST_ID_HEADER.to_string(), request_id));
        reply
    }

    /// `GET /v1/changes/stream` as an open stream, for transports that can stream (the warp
    /// server); `None` for every other request, which goes to [`Api::handle`]. An expired offset
    /// or a bad query is an ordinary error reply.
    pub fn open_change_stream(
        &self,
        request: &HttpRequest,
    ) -> Option<Result<ChangeStream, HttpReply>> {
        if Route::parse(&request.method, &request.path) != Ok(Route::ChangeStream) {
            return None;
        }
        let started = Instant::now();
        let reader = self.cluster.reader();
        let opened = self
            .config
            .access
            .authorize(&Route::ChangeStream, request)
            .and_then(|_| ChangesQuery::parse(request.query.as_deref()))
            .and_then(|query| {
                if self.drain.is_draining() {
                    return Err(ApiError::shutting_down());
                }
                if reader.restoring()? {
                    return Err(ApiError::restoring());
                }
                changes::open_stream(reader, query)
            });
        let status = opened.as_ref().map_or_else(|e| e.status, |_| 200);
        let took = started.elapsed();
        self.http_metrics.observe(
            &request.method,
            Route::ChangeStream.template(),
            status,
            took,
        );
        let request_id = request.header(request_id::REQUEST_ID_HEADER).unwrap_or("");
        let opened = opened.map_err(|e| {
            let mut reply = e.into_reply();
            reply.headers.push((
                request_id::REQUEST_ID_HEADER.to_string(),
                request_id.to_string(),
            ));
            reply
        });
        let logged = opened.as_ref().err().cloned().unwrap_or(HttpReply {
            status,
            headers: Vec::new(),
            body: Default::default(),
        });
        access_log::record(
            self.config.access_log,
            &request.method,
            Route::ChangeStream.template(),
            &logged,
            took,
            request_id,
        );
        Some(opened)
    }

    /// [`Api::dispatch`], except that a long poll (which changes nothing) ends with 503
    /// `shutting_down` once the node starts to stop; everything else runs to its end.
    async fn dispatch_until_drained(
        &self,
        route: Route,
        req: &HttpRequest,
    ) -> Result<HttpReply, ApiError> {
        if !route.is_long_poll() {
            return self.dispatch(route, req).await;
        }
        // Biased, drain first: the stop also ends the leader's services, which fails a waiting
        // receive with `no_leader`; both are ready in the same poll, and the client must hear
        // why (t35 saw `no_leader` in one run of four when the choice was random).
        tokio::select! {
            biased;
            () = self.drain.started() => Err(ApiError::shutting_down()),
            reply = self.dispatch(route, req) => reply,
        }
    }

    async fn dispatch(&self, route: Route, req: &HttpRequest) -> Result<HttpReply, ApiError> {
        match route {
            Route::Healthz => Ok(json_reply(200, &json!({"status": "ok"}))),
            Route::Readyz => match self.cluster.status() {
                status if status.quorum_lost => Err(ApiError::no_leader(
                    "this node leads but has not heard from a quorum within an election timeout",
                )),
                status if status.clock_skewed => Err(ApiError::no_leader(
                    "this node's clock is off from the other voters' by more than max_clock_offset_ms",
                )),
                ClusterStatus {
                    leader_id: Some(leader),
                    ..
                } => Ok(json_reply(
                    200,
                    &json!({"status": "ready", "leader_id": leader}),
                )),
                _ => Err(ApiError::no_leader("no leader known yet")),
            },
            Route::Metrics => Ok(HttpReply {
                status: 200,
                headers: vec![(
                    "content-type".into(),
                    crate::metrics::CONTENT_TYPE.into(),
                )],
                body: self
                    .registry
                    .render()
                    .map_err(|_| ApiError::internal("the metrics could not be rendered"))?
                    .into(),
            }),
            Route::ClusterStatus => Ok(json_reply(200, &json!(self.cluster.status()))),
            Route::Timers => {
                let reader = self.cluster.reader();
                let stats = reader.timer_stats()?;
                let recent_closes: Vec<Value> = reader
                    .queue()
                    .latest(sm::order::CLOSED, RECENT_CLOSES)?
                    .iter()
                    .map(view::closed_order)
                    .collect();
                Ok(json_reply(
                    200,
                    &json!({
                        "pending": stats.pending,
                        "next_due_at": stats.next_due_ms.map(view::rfc3339),
                        "fired": stats.fired,
                        "lag_ms_p99": self.cluster.timer_lag_p99_ms(),
                        "recent_closes": recent_closes,
                    }),
                ))
            }
            Route::Digest => {
                let digest = self.cluster.reader().state_digest()?;
                Ok(json_reply(
                    200,
                    &json!({"applied_index": digest.applied_index, "digest": digest.digest}),
                ))
            }
            Route::Snapshot => {
                let index = self.cluster.snapshot().await?;
                Ok(json_reply(200, &json!({"index": index})))
            }
            Route::Backup => {
                let dir = request::parse_body::<BackupBody>(&req.body)?.dir;
                let db = self.cluster.reader().db().clone();
                let target = std::path::PathBuf::from(&dir);
                let manifest =
                    tokio::task::spawn_blocking(move || sm::backup::create(&db, &target))
                        .await
                        .map_err(|e| ApiError::internal(format!("the backup task failed: {e}")))??;
                Ok(json_reply(
                    200,
                    &json!({
                        "dir": dir,
                        "applied_index": manifest.applied_index,
                        "digest": manifest.digest,
                    }),
                ))
            }
            Route::PutSku(sku) => {
                let put = request::parse_body::<SkuBody>(&req.body)?.into_command(&sku)?;
                self.propose(req, Action::PutSku(put)).await
            }
            Route::CreateOrder => {
                let body = request::parse_body::<OrderBody>(&req.body)?;
                let create = body.into_command(self.config.default_pay_within_secs)?;
                self.propose(req, Action::CreateOrder(create)).await
            }
            Route::PayOrder(order_id) => {
                request::check_id("order id", &order_id)?;
                let body = request::parse_body::<PayBody>(&req.body)?;
                request::check_id("payment_ref", &body.payment_ref)?;
                let pay = PayOrder {
                    order_id,
                    payment_ref: body.payment_ref,
                };
                self.propose(req, Action::PayOrder(pay)).await
            }
            Route::CancelOrder(order_id) => {
                request::check_id("order id", &order_id)?;
                request::parse_body::<CancelBody>(&req.body)?;
                self.propose(req, Action::CancelOrder(CancelOrder { order_id }))
                    .await
            }
            Route::CreateOrderBatch => self.create_order_batch(req).await,
            Route::Seckill(sku) => self.seckill(req, sku).await,
            Route::RefundOrder(order_id) => self.refund_order(req, order_id).await,
            Route::Publish(topic) => self.publish(req, topic).await,
            Route::PublishBatch(topic) => self.publish_batch(req, topic).await,
            Route::ListSubscriptions => self.list_subscriptions(req).await,
            Route::PutSubscription(group) => self.put_subscription(req, group).await,
            Route::RemoveSubscription(group) => self.remove_subscription(req, group).await,
            Route::DeadLetters(group) => self.dead_letters(req, group).await,
            Route::Redrive(group) => self.redrive(req, group).await,
            Route::Receive(group) => self.receive(req, group).await,
            Route::Ack(group) | Route::Nack(group) => self.settle(req, group).await,
            Route::Topics => self.topics(req).await,
            Route::ListSkus => self.list_skus(req).await,
            Route::OrderTrace(order_id) => self.order_trace(req, order_id).await,
            Route::Purge(group) => self.purge(req, group).await,
            Route::Pause(group) => self.pause(req, group, true).await,
            Route::Resume(group) => self.pause(req, group, false).await,
            Route::Reset(group) => self.reset(req, group).await,
            Route::Console => Ok(crate::console::page()),
            Route::GetSku(sku) => {
                request::check_id("sku", &sku)?;
                self.read(req, |reader| match reader.sku(&sku)? {
                    Some(s) => Ok(json_reply(200, &view::sku(&s))),
                    None => Err(ApiError::not_found(format!("sku {sku} not found"))),
                })
                .await
            }
            Route::GetOrder(order_id) => {
                request::check_id("order id", &order_id)?;
                self.read(req, |reader| match reader.order(&order_id)? {
                    Some(o) => Ok(json_reply(200, &view::order(&o))),
                    None => Err(ApiError::not_found(format!("order {order_id} not found"))),
                })
                .await
            }
            Route::Changes => {
                let query = ChangesQuery::parse(req.query.as_deref())?;
                if self.cluster.reader().restoring()? {
                    return Err(ApiError::restoring());
                }
                Ok(HttpReply::json(
                    200,
                    changes::long_poll(self.cluster.reader(), query).await?,
                ))
            }
            Route::ChangeStream => {
                let query = ChangesQuery::parse(req.query.as_deref())?;
                if self.cluster.reader().restoring()? {
                    return Err(ApiError::restoring());
                }
                Ok(HttpReply {
                    status: 200,
                    headers: vec![("content-type".into(), "application/x-ndjson".into())],
                    body: changes::one_page_ndjson(self.cluster.reader(), query)?,
                })
            }
            Route::AddLearner => {
                let body = request::parse_body::<LearnerBody>(&req.body)?;
                body.check()?;
                let added = self
                    .cluster
                    .add_learner(body.node_id, body.api_addr, body.raft_addr)
                    .await;
                match added {
                    Ok(()) => Ok(json_reply(200, &json!(self.cluster.status()))),
                    Err(e) => self.forward_or_fail(req, e).await,
                }
            }
            Route::ChangeVoters => {
                let voters = request::parse_body::<VotersBody>(&req.body)?.into_set()?;
                match self.cluster.change_voters(voters).await {
                    Ok(()) => Ok(json_reply(200, &json!(self.cluster.status()))),
                    Err(e) => self.forward_or_fail(req, e).await,
                }
            }
            Route::ListOrders | Route::AdminListOrders => self.list_orders(req).await,
            Route::SeckillAnswers => Ok(json_reply(
                200,
                &self.seckill_answers.view(self.cluster.status().node_id),
            )),
            Route::ConsoleAsset(name) => crate::console::asset(&name),
        }
    }

    /// `GET /v1/orders` and `GET /admin/orders`: a page of a user's orders.
    async fn list_orders(&self, req: &HttpRequest) -> Result<HttpReply, ApiError> {
        let query = ReadQuery::parse(req.query.as_deref())?;
        let user_id = query
            .user_id
            .clone()
            .ok_or_else(|| ApiError::invalid("user_id is required"))?;
        request::check_id("user_id", &user_id)?;
        let limit = query.limit.unwrap_or(50);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::invalid("limit must be between 1 and 1000"));
        }
        if let Some(after) = &query.after {
            request::check_id("after", after)?;
        }
        self.read(req, |reader| {
            let page = reader.orders_of_user(&user_id, query.after.as_deref(), limit)?;
            let orders: Vec<Value> = page.orders.iter().map(view::order).collect();
            Ok(json_reply(
                200,
                &json!({"orders": orders, "next": page.next}),
            ))
        })
        .await
    }

    /// Proposes `action` with the request's idempotency key.
    pub(crate) async fn propose(
        &self,
        req: &HttpRequest,
        action: Action,
    ) -> Result<HttpReply, ApiError> {
        let command = Self::command(req, action)?;
        self.propose_command(command).await
    }

    /// `action` carrying the request's checked idempotency key and hash, if it has a key.
    pub(crate) fn command(req: &HttpRequest, action: Action) -> Result<Command, ApiError> {
        let mut command = Command::new(action);
        if let Some(key) = req.header("idempotency-key") {
            idempotency::check_key(key)?;
            command.idempotency_key = key.to_string();
            command.request_hash = idempotency::request_hash(&req.method, &req.path, &req.body);
        }
        Ok(command)
    }

    /// Proposes `command`. Never re-sends the request to the leader: [`Cluster::write`] is the
    /// one way a write gets there, so a `ForwardTo` it answers means it could not (503).
    pub(crate) async fn propose_command(&self, command: Command) -> Result<HttpReply, ApiError> {
        outcome_reply(self.cluster.write(command).await?)
    }

    /// Serves a read of state: from this node when `consistency=local`, else after confirming
    /// leadership (forwarding to the leader from a follower).
    pub(crate) async fn read(
        &self,
        req: &HttpRequest,
        answer: impl FnOnce(&StateReader) -> Result<HttpReply, ApiError>,
    ) -> Result<HttpReply, ApiError> {
        let query = ReadQuery::parse(req.query.as_deref())?;
        if !query.is_local()? {
            if let Err(e) = self.cluster.linearizable().await {
                return self.forward_or_fail(req, e).await;
            }
        }
        let reader = self.cluster.reader();
        if reader.restoring()? {
            return Err(ApiError::restoring());
        }
        answer(reader)
    }

    /// Sends the request to the leader's API when `e` names one, else fails with `e`. For what
    /// only the leader can serve and is not a Raft command through [`Cluster::write`]:
    /// linearizable reads, pull receive/ack/nack (the leader's scheduler holds the leases in
    /// memory) and membership changes (openraft's `change_membership`, not the batcher).
    pub(crate) async fn forward_or_fail(
        &self,
        req: &HttpRequest,
        e: ClusterError,
    ) -> Result<HttpReply, ApiError> {
        match e {
            ClusterError::ForwardTo { api_addr, .. } if req.header(FORWARDED_HEADER).is_none() => {
                Ok(self.cluster.forward(&api_addr, req).await?)
            }
            e => Err(e.into()),
        }
    }
}
