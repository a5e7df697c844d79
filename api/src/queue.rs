//! The queue's request handlers: publishing, subscriptions and their stats, dead letters and
//! redrive, pull receive/ack/nack, and the refund request that starts the refund flow. Each is
//! called from the one route dispatch ([`crate::handler`]); their bodies are in
//! [`crate::request`], their JSON shapes in [`crate::view`].
//!
//! Publishing, subscriptions, redrive and refunds are ordinary proposals. Pull is different:
//! leases live in the leader's memory (its consumer scheduler), so receive/ack/nack are served by
//! the leader and forwarded there from a follower.

use serde_json::{json, Value};
use sm::command::{Action, PurgeDead, Redrive, RefundOrder, RemoveSubscription};

use crate::cluster::{Cluster, HttpReply, HttpRequest};
use crate::error::ApiError;
use crate::handler::{json_reply, Api};
use crate::request::{
    self, message_offset, parse_body, PublishBody, PurgeBody, ReadQuery, ReceiptsBody, ReceiveBody,
    RedriveBody, RefundBody, SubscriptionBody, MAX_REASON_LEN, MAX_RECEIVE, MAX_VISIBILITY_MS,
};
use crate::view;

/// Dead letters one search request examines: the bound on its work, whatever the group holds.
const DEAD_SEARCH_BUDGET: usize = 10_000;
/// Longest search text.
const MAX_SEARCH_LEN: usize = 200;

/// Checks that clients may publish to `topic`: a valid id, and not a reserved topic (403), which
/// the state machine alone writes. Shared by the single and the batch publish.
pub(crate) fn check_publish_topic(topic: &str) -> Result<(), ApiError> {
    request::check_id("topic", topic)?;
    if sm::order::is_reserved(topic) {
        return Err(ApiError::reserved_topic(topic));
    }
    Ok(())
}

impl<C: Cluster> Api<C> {
    /// `POST /v1/topics/{topic}/messages`: publishes one message (never into a reserved topic).
    pub(crate) async fn publish(
        &self,
        req: &HttpRequest,
        topic: String,
    ) -> Result<HttpReply, ApiError> {
        check_publish_topic(&topic)?;
        let body = parse_body::<PublishBody>(&req.body)?;
        let publish = body.into_command(topic)?;
        self.propose(req, Action::Publish(publish)).await
    }

    /// `POST /v1/orders/{id}/refund`: asks for a paid order's refund.
    pub(crate) async fn refund_order(
        &self,
        req: &HttpRequest,
        order_id: String,
    ) -> Result<HttpReply, ApiError> {
        request::check_id("order id", &order_id)?;
        let body = parse_body::<RefundBody>(&req.body)?;
        if body.reason.chars().count() > MAX_REASON_LEN {
            return Err(ApiError::invalid(format!(
                "reason is limited to {MAX_REASON_LEN} characters"
            )));
        }
        let refund = RefundOrder {
            order_id,
            reason: body.reason,
        };
        self.propose(req, Action::RefundOrder(refund)).await
    }

    /// `PUT /admin/subscriptions/{group}`: creates or changes a consumer group; a push URL may not
    /// point at a cluster member or outside the webhook policy.
    pub(crate) async fn put_subscription(
        &self,
        req: &HttpRequest,
        group: String,
    ) -> Result<HttpReply, ApiError> {
        let put = parse_body::<SubscriptionBody>(&req.body)?.into_command(&group)?;
        let status = self.cluster.status();
        let members = status
            .nodes
            .iter()
            .flat_map(|n| [n.api_addr.as_str(), n.raft_addr.as_str()]);
        crate::webhook_target::check_not_member(&put.push_url, members)?;
        if !put.push_url.is_empty() {
            self.config.webhook_policy.check_url(&put.push_url)?;
        }
        self.propose(req, Action::PutSubscription(put)).await
    }

    /// `DELETE /admin/subscriptions/{group}`: removes a group (in bounded steps).
    pub(crate) async fn remove_subscription(
        &self,
        req: &HttpRequest,
        group: String,
    ) -> Result<HttpReply, ApiError> {
        request::check_id("group", &group)?;
        let remove = RemoveSubscription { group };
        self.propose(req, Action::RemoveSubscription(remove)).await
    }

    /// `GET /admin/subscriptions`: every group with its backlog, in-flight count and oldest unacked age.
    pub(crate) async fn list_subscriptions(
        &self,
        req: &HttpRequest,
    ) -> Result<HttpReply, ApiError> {
        self.read(req, |reader| {
            let live = self.cluster.live_deliveries();
            let reads = reader.queue();
            let now = self.cluster.now_ms();
            let mut out = Vec::new();
            for sub in reads.subscriptions()? {
                let head = reads.head(&sub.topic)?;
                let settled = reads.settled_beyond_cursor(&sub)?;
                let oldest = reads.pending_after(&sub, 0, 1)?;
                let mut view = view::subscription(&sub);
                if let Value::Object(fields) = &mut view {
                    let stats = json!({
                        "backlog": head.saturating_sub(sub.cursor).saturating_sub(settled),
                        "in_flight": live.get(&sub.group).map_or(0, |l| l.in_flight),
                        "delivered": sub.delivered,
                        "dead": sub.dead,
                        "failures": sub.failures,
                        "cursor": sub.cursor,
                        "head": head,
                        "oldest_unacked_age_ms": oldest.messages.first().map(|p| (now - p.message.published_at_ms).max(0)),
                    });
                    if let Value::Object(stats) = stats {
                        fields.extend(stats);
                    }
                }
                out.push(view);
            }
            Ok(json_reply(200, &json!({"subscriptions": out})))
        })
        .await
    }

    /// `GET /admin/subscriptions/{group}/dead`: a page of a group's dead letters; with `q`, only
    /// those whose key or payload contains the text.
    pub(crate) async fn dead_letters(
        &self,
        req: &HttpRequest,
        group: String,
    ) -> Result<HttpReply, ApiError> {
        request::check_id("group", &group)?;
        let query = ReadQuery::parse(req.query.as_deref())?;
        let limit = query.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::invalid("limit must be between 1 and 1000"));
        }
        self.read(req, |reader| {
            let reads = reader.queue();
            let sub = reads
                .subscription(&group)?
                .ok_or_else(|| ApiError::not_found(format!("subscription {group} not found")))?;
            let after = match &query.after {
                None => 0,
                Some(id) => message_offset(&sub.topic, id)?,
            };
            let (dead, next) = match &query.q {
                None => {
                    let (dead, more) = reads.dead_letters(&group, after, limit)?;
                    let next = more.then(|| dead.last().map(|d| d.message.id.clone()));
                    (dead, next.flatten())
                }
                // A search examines a bounded run of letters; `next` goes on from where it
                // stopped, even when this page found nothing.
                Some(needle) => {
                    if needle.chars().count() > MAX_SEARCH_LEN {
                        return Err(ApiError::invalid(format!(
                            "q is limited to {MAX_SEARCH_LEN} characters"
                        )));
                    }
                    let found = reads.search_dead_letters(
                        &group,
                        needle,
                        after,
                        limit,
                        DEAD_SEARCH_BUDGET,
                    )?;
                    let next = found.next.map(|o| sm::queue::message_id(&sub.topic, o));
                    (found.letters, next)
                }
            };
            let dead: Vec<Value> = dead.iter().map(view::dead_letter).collect();
            Ok(json_reply(200, &json!({"dead": dead, "next": next})))
        })
        .await
    }

    /// `POST .../dead/redrive`: moves the named dead letters (or all) back to delivery, in bounded
    /// steps resolved against the leader's state.
    pub(crate) async fn redrive(
        &self,
        req: &HttpRequest,
        group: String,
    ) -> Result<HttpReply, ApiError> {
        request::check_id("group", &group)?;
        let body = parse_body::<RedriveBody>(&req.body)?;
        let redriven = match self
            .dead_letter_steps(req, &group, body.ids, |group, offsets| {
                Action::Redrive(Redrive { group, offsets })
            })
            .await?
        {
            Stepped::Done(n) => n,
            Stepped::Forwarded(reply) => return Ok(reply),
        };
        Ok(json_reply(200, &json!({"redriven": redriven})))
    }

    /// `POST .../dead/purge`: deletes the named dead letters (or all) for good, in bounded steps
    /// resolved against the leader's state.
    pub(crate) async fn purge(
        &self,
        req: &HttpRequest,
        group: String,
    ) -> Result<HttpReply, ApiError> {
        request::check_id("group", &group)?;
        let body = parse_body::<PurgeBody>(&req.body)?;
        let purged = match self
            .dead_letter_steps(req, &group, body.ids, |group, offsets| {
                Action::PurgeDead(PurgeDead { group, offsets })
            })
            .await?
        {
            Stepped::Done(n) => n,
            Stepped::Forwarded(reply) => return Ok(reply),
        };
        Ok(json_reply(200, &json!({"purged": purged})))
    }

    /// Resolves `ids` (or, when absent, every dead letter of `group`, a bounded page at a time)
    /// on the leader and proposes one `step` command per chunk; answers how many letters the
    /// steps changed. Each step removes the letters it handles, so the next page of "all"
    /// starts after the last one seen.
    async fn dead_letter_steps(
        &self,
        req: &HttpRequest,
        group: &str,
        ids: Option<Vec<String>>,
        step: impl Fn(String, Vec<u64>) -> Action,
    ) -> Result<Stepped, ApiError> {
        // Ids are resolved against the leader's state, so "all" means all it holds.
        if let Err(e) = self.cluster.linearizable().await {
            return self.forward_or_fail(req, e).await.map(Stepped::Forwarded);
        }
        let reads = self.cluster.reader().queue();
        let sub = reads
            .subscription(group)?
            .ok_or_else(|| ApiError::not_found(format!("subscription {group} not found")))?;
        let chunk = self.config.redrive_step.clamp(1, sm::queue::MAX_REDRIVE);
        let mut changed = 0;
        match ids {
            Some(ids) => {
                let offsets = ids
                    .iter()
                    .map(|id| message_offset(&sub.topic, id))
                    .collect::<Result<Vec<u64>, ApiError>>()?;
                for offsets in offsets.chunks(chunk) {
                    changed += self
                        .dead_letter_step(step(group.into(), offsets.to_vec()))
                        .await?;
                }
            }
            None => {
                let mut after = 0;
                loop {
                    let (letters, _) = reads.dead_letters(group, after, chunk)?;
                    let Some(last) = letters.last() else { break };
                    after = last.message.offset;
                    let offsets = letters.iter().map(|d| d.message.offset).collect();
                    changed += self.dead_letter_step(step(group.into(), offsets)).await?;
                }
            }
        }
        Ok(Stepped::Done(changed))
    }

    /// `POST /v1/subscriptions/{group}/receive`: leases messages of a pull group (long poll),
    /// served by the leader's scheduler.
    pub(crate) async fn receive(
        &self,
        req: &HttpRequest,
        group: String,
    ) -> Result<HttpReply, ApiError> {
        request::check_id("group", &group)?;
        let body = parse_body::<ReceiveBody>(&req.body)?;
        let limits = body.into_limits()?;
        match self.cluster.receive(&group, limits).await {
            Ok(messages) => Ok(json_reply(200, &json!({"messages": messages}))),
            Err(e) => self.forward_or_fail(req, e).await,
        }
    }

    /// `ack` and `nack` of a pull group's receipts, served by the leader's scheduler.
    pub(crate) async fn settle(
        &self,
        req: &HttpRequest,
        group: String,
    ) -> Result<HttpReply, ApiError> {
        request::check_id("group", &group)?;
        let body = parse_body::<ReceiptsBody>(&req.body)?;
        if body.receipts.len() > MAX_RECEIVE {
            return Err(ApiError::invalid(format!("at most {MAX_RECEIVE} receipts")));
        }
        let nack = req.path.ends_with("/nack");
        if !nack && body.delay_ms.is_some() {
            return Err(ApiError::invalid("delay_ms belongs to nack"));
        }
        let delay = nack.then(|| body.delay_ms.unwrap_or(0));
        if let Some(delay) = delay {
            request::check_range("delay_ms", delay, 0, MAX_VISIBILITY_MS)?;
        }
        match self
            .cluster
            .settle_receipts(&group, body.receipts, delay)
            .await
        {
            Ok(n) => Ok(json_reply(
                200,
                &json!({ if nack { "nacked" } else { "acked" }: n }),
            )),
            Err(e) => self.forward_or_fail(req, e).await,
        }
    }

    /// Proposes one bounded step of a redrive or purge; answers how many letters it changed.
    async fn dead_letter_step(&self, action: Action) -> Result<u64, ApiError> {
        match self.cluster.write(sm::Command::new(action)).await? {
            Ok(sm::Applied::Redriven(n) | sm::Applied::Purged(n)) => Ok(n),
            Ok(other) => Err(ApiError::internal(format!(
                "a dead-letter step answered {other:?}"
            ))),
            Err(refused) => Err(refused.into()),
        }
    }
}

/// How a stepped dead-letter operation ended on this node.
enum Stepped {
    /// This node led: the letters changed.
    Done(u64),
    /// A follower passed the request to the leader: its answer.
    Forwarded(HttpReply),
}
