//! The operators' routes beyond the contract's basics: every topic at a glance, the stock list
//! in pages, an order's trace (its changes, the messages it caused and each group's delivery of
//! each), and a group's pause, resume and position reset. Called from the one route dispatch
//! ([`crate::handler`]); what the console and `orderq admin` stand on.
//!
//! Every answer is bounded work: pages for lists, a bounded scan of the change stream for a
//! trace (with `next` to go on), point lookups and a binary search for rates and resets.

use serde_json::{json, Value};
use sm::command::{Action, PauseSubscription, ResetSubscription};

use crate::cluster::{Cluster, HttpReply, HttpRequest};
use crate::error::ApiError;
use crate::handler::{json_reply, Api};
use crate::request::{self, parse_body, EmptyBody, ReadQuery, ResetBody, ResetTarget};
use crate::view;

/// Change records one trace request examines: the bound on its work (a few tens of ms).
pub const TRACE_SCAN_BUDGET: usize = 100_000;
/// The window a topic's publish rate is measured over.
const RATE_WINDOW_MS: i64 = 60_000;

impl<C: Cluster> Api<C> {
    /// `GET /admin/topics`: each topic's head, retention floor, messages held, subscriptions and
    /// publish rate over the last minute.
    pub(crate) async fn topics(&self, req: &HttpRequest) -> Result<HttpReply, ApiError> {
        let now = self.cluster.now_ms();
        self.read(req, |reader| {
            let reads = reader.queue();
            let subs = reads.subscriptions()?;
            let mut topics = Vec::new();
            for topic in reads.topics()? {
                let head = reads.head(&topic)?;
                let floor = reads.floor(&topic)?;
                let before_window = reads.offset_before_time(&topic, now - RATE_WINDOW_MS)?;
                let published = head.saturating_sub(before_window);
                let groups: Vec<&str> = subs
                    .iter()
                    .filter(|s| s.topic == topic)
                    .map(|s| s.group.as_str())
                    .collect();
                topics.push(json!({
                    "topic": topic,
                    "head": head,
                    "floor": floor,
                    "held": head.saturating_sub(floor),
                    "published_last_minute": published,
                    "publish_rate_per_sec": published as f64 * 1000.0 / RATE_WINDOW_MS as f64,
                    "subscriptions": groups,
                }));
            }
            Ok(json_reply(200, &json!({"topics": topics})))
        })
        .await
    }

    /// `GET /admin/skus?after=&limit=&q=`: a page of SKUs in id order with their stock; with
    /// `q`, only SKUs whose id starts with it.
    pub(crate) async fn list_skus(&self, req: &HttpRequest) -> Result<HttpReply, ApiError> {
        let query = ReadQuery::parse(req.query.as_deref())?;
        let limit = query.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::invalid("limit must be between 1 and 1000"));
        }
        if let Some(after) = &query.after {
            request::check_id("after", after)?;
        }
        if query.user_id.is_some() {
            return Err(ApiError::invalid(
                "skus take only after, limit, q and consistency",
            ));
        }
        let prefix = query.q.clone().unwrap_or_default();
        if prefix.chars().count() > request::MAX_ID_LEN {
            // No SKU id is longer, so a longer prefix is a mistake, not an empty page.
            return Err(ApiError::invalid(format!(
                "q is limited to {} characters",
                request::MAX_ID_LEN
            )));
        }
        self.read(req, |reader| {
            let (skus, more) = reader.skus_after(query.after.as_deref(), &prefix, limit)?;
            let next = if more {
                skus.last().map(|s| s.sku.clone())
            } else {
                None
            };
            let skus: Vec<Value> = skus.iter().map(view::sku_stock).collect();
            Ok(json_reply(200, &json!({"skus": skus, "next": next})))
        })
        .await
    }

    /// `GET /admin/orders/{id}/trace?after=OFFSET`: the order, its changes with before and after,
    /// the messages keyed by its id and each group's delivery of each. One call examines at most
    /// [`TRACE_SCAN_BUDGET`] change records from the order's creation (or `after`); `next` and
    /// `complete` say whether to go on.
    pub(crate) async fn order_trace(
        &self,
        req: &HttpRequest,
        order_id: String,
    ) -> Result<HttpReply, ApiError> {
        request::check_id("order id", &order_id)?;
        let query = ReadQuery::parse(req.query.as_deref())?;
        if query.user_id.is_some() || query.q.is_some() || query.limit.is_some() {
            return Err(ApiError::invalid(
                "a trace takes only after and consistency",
            ));
        }
        let after = match &query.after {
            None => None,
            Some(text) => Some(
                text.parse::<u64>()
                    .map_err(|_| ApiError::invalid("after must be a change offset"))?,
            ),
        };
        self.read(req, |reader| {
            let Some(order) = reader.order(&order_id)? else {
                return Err(ApiError::not_found(format!("order {order_id} not found")));
            };
            let trace = reader.order_trace(&order_id, after, TRACE_SCAN_BUDGET)?;
            let mut changes = Vec::new();
            for change in &trace.changes {
                let mut out = Vec::new();
                view::write_change(change, &mut out)?;
                changes.push(
                    serde_json::from_slice::<Value>(&out)
                        .map_err(|e| ApiError::internal(e.to_string()))?,
                );
            }
            let reads = reader.queue();
            let subs = reads.subscriptions()?;
            let mut messages = Vec::new();
            for message in &trace.messages {
                let mut deliveries = Vec::new();
                for sub in subs.iter().filter(|s| s.topic == message.topic) {
                    let status = reads.delivery_status(sub, message.offset)?;
                    deliveries.push(view::delivery_status(&sub.group, &status));
                }
                messages.push(view::traced_message(message, deliveries));
            }
            Ok(json_reply(
                200,
                &json!({
                    "order": view::order(&order),
                    "changes": changes,
                    "messages": messages,
                    "next": trace.next,
                    "complete": trace.complete,
                    "pruned": trace.pruned,
                }),
            ))
        })
        .await
    }

    /// `POST .../pause` and `.../resume`: stops or restarts a group's deliveries.
    pub(crate) async fn pause(
        &self,
        req: &HttpRequest,
        group: String,
        paused: bool,
    ) -> Result<HttpReply, ApiError> {
        request::check_id("group", &group)?;
        parse_body::<EmptyBody>(&req.body)?;
        self.propose(
            req,
            Action::PauseSubscription(PauseSubscription { group, paused }),
        )
        .await
    }

    /// `POST .../reset`: moves a group's position to the earliest or latest message, after an
    /// offset, or to the first message published at or after a time, resolved on the leader.
    pub(crate) async fn reset(
        &self,
        req: &HttpRequest,
        group: String,
    ) -> Result<HttpReply, ApiError> {
        request::check_id("group", &group)?;
        let target = parse_body::<ResetBody>(&req.body)?.target()?;
        if let Err(e) = self.cluster.linearizable().await {
            return self.forward_or_fail(req, e).await;
        }
        let reads = self.cluster.reader().queue();
        let sub = reads
            .subscription(&group)?
            .ok_or_else(|| ApiError::not_found(format!("subscription {group} not found")))?;
        let cursor = match target {
            ResetTarget::Earliest => reads.floor(&sub.topic)?,
            ResetTarget::Latest => reads.head(&sub.topic)?,
            ResetTarget::Offset(offset) => offset,
            ResetTarget::Time(at_ms) => reads.offset_before_time(&sub.topic, at_ms)?,
        };
        self.propose(
            req,
            Action::ResetSubscription(ResetSubscription { group, cursor }),
        )
        .await
    }
}
