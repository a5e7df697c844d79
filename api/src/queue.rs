//! The queue's HTTP surface: publishing, subscriptions and their stats, dead letters and redrive,
//! pull receive/ack/nack, and the refund request that starts the refund flow.
//!
//! Publishing, subscriptions, redrive and refunds are ordinary proposals. Pull is different:
//! leases live in the leader's memory (its consumer scheduler), so receive/ack/nack are served by
//! the leader and forwarded there from a follower.

use serde::Deserialize;
use serde_json::{json, Value};
use sm::command::{Action, PutSubscription, Redrive, RefundOrder, RemoveSubscription};
use sm::subscription::{DeadLetter, QueueReads, Subscription};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cluster::{Cluster, ClusterError, HttpReply, HttpRequest, ReceiveLimits};
use crate::error::ApiError;
use crate::handler::{json_reply, Api};
use crate::request::{self, parse_body, ReadQuery};
use crate::routes::Route;
use crate::view;

/// Longest a publisher may delay a message: one year.
pub const MAX_DELAY_SECS: u64 = 365 * 86_400;
/// Longest message key, in characters (as the spec's `maxLength` counts them).
pub const MAX_KEY_LEN: usize = 1024;
/// Longest refund reason, in characters.
pub const MAX_REASON_LEN: usize = 1024;
/// Most messages one receive answers.
pub const MAX_RECEIVE: usize = 1000;
/// Longest receive long poll: under the 30 s a follower waits for the leader it forwards to.
pub const MAX_WAIT_MS: u64 = 25_000;
/// Longest visibility lease and nack delay: twelve hours.
pub const MAX_VISIBILITY_MS: u64 = 12 * 3_600_000;

/// Body of `POST /v1/topics/{topic}/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    /// Ordering key; empty when absent.
    #[serde(default)]
    pub key: String,
    /// Any JSON.
    pub payload: Value,
    /// Seconds before the message may be delivered.
    #[serde(default, deserialize_with = "request::non_null")]
    pub delay_secs: Option<u64>,
    /// Earliest delivery time, RFC 3339.
    #[serde(default, deserialize_with = "request::non_null")]
    pub deliver_at: Option<String>,
}

/// `push` of a subscription body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushBody {
    /// The webhook, `http://` or `https://`.
    pub url: String,
    /// Per-attempt timeout, default 5000.
    #[serde(default, deserialize_with = "request::non_null")]
    pub timeout_ms: Option<u64>,
}

/// `backoff` of a subscription body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffBody {
    /// First retry delay, default 1000.
    #[serde(default, deserialize_with = "request::non_null")]
    pub initial_ms: Option<u64>,
    /// Largest retry delay, default two hours.
    #[serde(default, deserialize_with = "request::non_null")]
    pub max_ms: Option<u64>,
}

/// Body of `PUT /admin/subscriptions/{group}`; absent settings take the contract's defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionBody {
    /// The topic consumed.
    pub topic: String,
    /// The webhook; absent for a pulled group.
    pub push: Option<PushBody>,
    /// Attempts before a dead letter, default 16.
    #[serde(default, deserialize_with = "request::non_null")]
    pub max_attempts: Option<u32>,
    /// Retry delays.
    #[serde(default, deserialize_with = "request::non_null")]
    pub backoff: Option<BackoffBody>,
    /// Most unsettled deliveries, default 64.
    #[serde(default, deserialize_with = "request::non_null")]
    pub max_in_flight: Option<u32>,
    /// Deliveries per second, default 0 (no limit).
    #[serde(default, deserialize_with = "request::non_null")]
    pub rate_per_sec: Option<u32>,
    /// One message per key at a time, default false.
    #[serde(default, deserialize_with = "request::non_null")]
    pub ordered_by_key: Option<bool>,
    /// `earliest` (default) or `latest`.
    #[serde(default, deserialize_with = "request::non_null")]
    pub start: Option<String>,
    /// Push groups: the key deliveries are signed with. Absent: a new group gets a drawn key
    /// (answered once), an existing group keeps its own.
    pub signing_secret: Option<String>,
}

fn check_range(what: &str, value: u64, min: u64, max: u64) -> Result<(), ApiError> {
    if value < min || value > max {
        return Err(ApiError::invalid(format!(
            "{what} must be between {min} and {max}"
        )));
    }
    Ok(())
}

impl SubscriptionBody {
    /// The validated command for group `group`.
    pub fn into_command(self, group: &str) -> Result<PutSubscription, ApiError> {
        request::check_id("group", group)?;
        request::check_id("topic", &self.topic)?;
        let (signing_secret, signing_secret_drawn) = match (&self.push, self.signing_secret) {
            (None, Some(_)) => {
                return Err(ApiError::invalid(
                    "signing_secret belongs to push groups; pulled messages are not signed",
                ))
            }
            (None, None) => (String::new(), false),
            (Some(_), Some(key)) => {
                crate::signing_key::check(&key)?;
                (key, false)
            }
            (Some(_), None) => (crate::signing_key::draw()?, true),
        };
        let (push_url, timeout_ms) = match self.push {
            Some(push) => {
                if !(push.url.starts_with("http://") || push.url.starts_with("https://"))
                    || push.url.len() > 2048
                {
                    return Err(ApiError::invalid("push.url must be an http(s) URL"));
                }
                let timeout = push.timeout_ms.unwrap_or(5000);
                check_range("push.timeout_ms", timeout, 1, 600_000)?;
                (push.url, timeout)
            }
            None => (String::new(), 0),
        };
        let max_attempts = self.max_attempts.unwrap_or(16);
        check_range("max_attempts", max_attempts.into(), 1, 1000)?;
        let initial = self
            .backoff
            .as_ref()
            .and_then(|b| b.initial_ms)
            .unwrap_or(1000);
        let max = self
            .backoff
            .as_ref()
            .and_then(|b| b.max_ms)
            .unwrap_or(7_200_000);
        check_range("backoff.initial_ms", initial, 1, 86_400_000)?;
        check_range("backoff.max_ms", max, initial, 86_400_000)?;
        let max_in_flight = self.max_in_flight.unwrap_or(64);
        check_range("max_in_flight", max_in_flight.into(), 1, 10_000)?;
        let rate_per_sec = self.rate_per_sec.unwrap_or(0);
        check_range("rate_per_sec", rate_per_sec.into(), 0, 1_000_000)?;
        let start_latest = match self.start.as_deref() {
            None | Some("earliest") => false,
            Some("latest") => true,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "start must be earliest or latest, not {other:?}"
                )))
            }
        };
        Ok(PutSubscription {
            group: group.to_string(),
            topic: self.topic,
            push_url,
            timeout_ms,
            max_attempts,
            backoff_initial_ms: initial,
            backoff_max_ms: max,
            max_in_flight,
            rate_per_sec,
            ordered_by_key: self.ordered_by_key.unwrap_or(false),
            start_latest,
            signing_secret,
            signing_secret_drawn,
        })
    }
}

/// Body of `POST .../dead/redrive`: the dead letters' ids, or none for all.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedriveBody {
    /// Message ids; absent for every dead letter of the group.
    #[serde(default, deserialize_with = "request::non_null")]
    pub ids: Option<Vec<String>>,
}

/// Body of `POST /v1/subscriptions/{group}/receive`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveBody {
    /// Most messages, default 100.
    #[serde(default, deserialize_with = "request::non_null")]
    pub max: Option<usize>,
    /// Long poll, default 10000.
    #[serde(default, deserialize_with = "request::non_null")]
    pub wait_ms: Option<u64>,
    /// Lease, default 30000.
    #[serde(default, deserialize_with = "request::non_null")]
    pub visibility_ms: Option<u64>,
}

/// Body of `ack` and `nack`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptsBody {
    /// Receipts from `receive`.
    pub receipts: Vec<String>,
    /// `nack` only: delay before the message comes back, default 0.
    #[serde(default, deserialize_with = "request::non_null")]
    pub delay_ms: Option<u64>,
}

/// Body of `POST /v1/orders/{id}/refund`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// Why the buyer wants the money back.
    #[serde(default)]
    pub reason: String,
}

/// A subscription's settings as the contract shows them.
pub fn subscription_view(sub: &Subscription) -> Value {
    json!({
        "group": sub.group,
        "topic": sub.topic,
        "push": sub.push.as_ref().map(|p| json!({"url": p.url, "timeout_ms": p.timeout_ms})),
        "max_attempts": sub.max_attempts,
        "backoff": {"initial_ms": sub.backoff_initial_ms, "max_ms": sub.backoff_max_ms},
        "max_in_flight": sub.max_in_flight,
        "rate_per_sec": sub.rate_per_sec,
        "ordered_by_key": sub.ordered_by_key,
        "start": sub.start,
    })
}

fn dead_view(dead: &DeadLetter) -> Value {
    json!({
        "id": dead.message.id,
        "topic": dead.message.topic,
        "key": dead.message.key,
        "payload": dead.message.payload,
        "published_at": view::rfc3339(dead.message.published_at_ms),
        "attempts": dead.attempts.iter().map(|a| json!({"at": view::rfc3339(a.at_ms), "error": a.error})).collect::<Vec<_>>(),
        "dead_at": view::rfc3339(dead.dead_at_ms),
    })
}

fn wall_clock_ms() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

impl<C: Cluster> Api<C> {
    /// Dispatches the queue's routes.
    pub(crate) async fn queue(
        &self,
        route: Route,
        req: &HttpRequest,
    ) -> Result<HttpReply, ApiError> {
        match route {
            Route::Publish(topic) => {
                request::check_id("topic", &topic)?;
                if sm::reserved_topics::is_reserved(&topic) {
                    return Err(ApiError::reserved_topic(&topic));
                }
                let body = parse_body::<PublishBody>(&req.body)?;
                let publish = publish_command(topic, body)?;
                self.propose(req, Action::Publish(publish)).await
            }
            Route::RefundOrder(order_id) => {
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
            Route::PutSubscription(group) => {
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
            Route::RemoveSubscription(group) => {
                request::check_id("group", &group)?;
                let remove = RemoveSubscription { group };
                self.propose(req, Action::RemoveSubscription(remove)).await
            }
            Route::ListSubscriptions => {
                self.read(req, |reader| {
                    let live = self.cluster.live_deliveries();
                    let reads = QueueReads { db: reader.db() };
                    let now = wall_clock_ms();
                    let mut out = Vec::new();
                    for sub in reads.subscriptions()? {
                        let head = reads.head(&sub.topic)?;
                        let settled = reads.settled_beyond_cursor(&sub)?;
                        let oldest = reads.pending_after(&sub, 0, 1)?;
                        let mut view = subscription_view(&sub);
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
            Route::DeadLetters(group) => {
                request::check_id("group", &group)?;
                let query = ReadQuery::parse(req.query.as_deref())?;
                let limit = query.limit.unwrap_or(100);
                if !(1..=1000).contains(&limit) {
                    return Err(ApiError::invalid("limit must be between 1 and 1000"));
                }
                self.read(req, |reader| {
                    let reads = QueueReads { db: reader.db() };
                    let sub = reads
                        .subscription(&group)?
                        .ok_or_else(|| ApiError::not_found(format!("subscription {group} not found")))?;
                    let after = match &query.after {
                        None => 0,
                        Some(id) => message_offset(&sub.topic, id)?,
                    };
                    let (dead, more) = reads.dead_letters(&group, after, limit)?;
                    let next = if more { dead.last().map(|d| d.message.id.clone()) } else { None };
                    let dead: Vec<Value> = dead.iter().map(dead_view).collect();
                    Ok(json_reply(200, &json!({"dead": dead, "next": next})))
                })
                .await
            }
            Route::Redrive(group) => {
                request::check_id("group", &group)?;
                let body = parse_body::<RedriveBody>(&req.body)?;
                // Ids are resolved against the leader's state, so "all" means all it holds.
                if let Err(e) = self.cluster.linearizable().await {
                    return self.forward_or_fail(req, e).await;
                }
                let reads = QueueReads {
                    db: self.cluster.reader().db(),
                };
                let sub = reads
                    .subscription(&group)?
                    .ok_or_else(|| ApiError::not_found(format!("subscription {group} not found")))?;
                let step = self.config.redrive_step.clamp(1, sm::apply::MAX_REDRIVE);
                let mut redriven = 0;
                match body.ids {
                    Some(ids) => {
                        let offsets = ids
                            .iter()
                            .map(|id| message_offset(&sub.topic, id))
                            .collect::<Result<Vec<u64>, ApiError>>()?;
                        for offsets in offsets.chunks(step) {
                            redriven += self.redrive_step(&group, offsets.to_vec()).await?;
                        }
                    }
                    // Every letter, a bounded page at a time: each step removes the letters it
                    // moves, so the next page starts after the last one seen.
                    None => {
                        let mut after = 0;
                        loop {
                            let (letters, _) = reads.dead_letters(&group, after, step)?;
                            let Some(last) = letters.last() else { break };
                            after = last.message.offset;
                            let offsets = letters.iter().map(|d| d.message.offset).collect();
                            redriven += self.redrive_step(&group, offsets).await?;
                        }
                    }
                }
                Ok(json_reply(200, &json!({"redriven": redriven})))
            }
            Route::Receive(group) => {
                request::check_id("group", &group)?;
                let body = parse_body::<ReceiveBody>(&req.body)?;
                let limits = ReceiveLimits {
                    max: body.max.unwrap_or(100),
                    wait_ms: body.wait_ms.unwrap_or(10_000),
                    visibility_ms: body.visibility_ms.unwrap_or(30_000),
                };
                check_range("max", limits.max as u64, 1, MAX_RECEIVE as u64)?;
                check_range("wait_ms", limits.wait_ms, 0, MAX_WAIT_MS)?;
                check_range("visibility_ms", limits.visibility_ms, 1, MAX_VISIBILITY_MS)?;
                match self.cluster.receive(&group, limits).await {
                    Ok(messages) => Ok(json_reply(200, &json!({"messages": messages}))),
                    Err(e) => self.queue_error(req, e).await,
                }
            }
            Route::Ack(group) | Route::Nack(group) => {
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
                    check_range("delay_ms", delay, 0, MAX_VISIBILITY_MS)?;
                }
                match self.cluster.settle_receipts(&group, body.receipts, delay).await {
                    Ok(n) => Ok(json_reply(
                        200,
                        &json!({ if nack { "nacked" } else { "acked" }: n }),
                    )),
                    Err(e) => self.queue_error(req, e).await,
                }
            }
            _ => Err(ApiError::not_found("not a queue route")),
        }
    }

    /// Prometheus text of every group's backlog, in-flight count (leader only), dead letters,
    /// deliveries and failed attempts, from this node's applied state.
    pub(crate) fn queue_metrics(&self) -> Result<String, ApiError> {
        let reads = QueueReads {
            db: self.cluster.reader().db(),
        };
        let live = self.cluster.live_deliveries();
        let families: [(&str, &str, &str); 5] = [
            (
                "orderq_queue_backlog",
                "gauge",
                "Messages published and not yet settled.",
            ),
            (
                "orderq_queue_in_flight",
                "gauge",
                "Deliveries unsettled in the leader's memory.",
            ),
            ("orderq_queue_dead", "gauge", "Dead letters held."),
            (
                "orderq_queue_delivered_total",
                "counter",
                "Messages acknowledged.",
            ),
            (
                "orderq_queue_failures_total",
                "counter",
                "Failed delivery attempts.",
            ),
        ];
        let mut rows: Vec<[u64; 5]> = Vec::new();
        let subs = reads.subscriptions()?;
        for sub in &subs {
            let head = reads.head(&sub.topic)?;
            let settled = reads.settled_beyond_cursor(sub)?;
            rows.push([
                head.saturating_sub(sub.cursor).saturating_sub(settled),
                live.get(&sub.group).map_or(0, |l| l.in_flight),
                sub.dead,
                sub.delivered,
                sub.failures,
            ]);
        }
        let mut out = String::new();
        for (i, (name, kind, help)) in families.iter().enumerate() {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (sub, row) in subs.iter().zip(&rows) {
                let group = sub.group.replace('\\', "\\\\").replace('"', "\\\"");
                out.push_str(&format!("{name}{{group=\"{group}\"}} {}\n", row[i]));
            }
        }
        Ok(out)
    }

    /// Proposes one bounded step of a redrive; answers how many letters it moved.
    async fn redrive_step(&self, group: &str, offsets: Vec<u64>) -> Result<u64, ApiError> {
        let command = sm::command::Command::new(Action::Redrive(Redrive {
            group: group.to_string(),
            offsets,
        }));
        match self.cluster.write(command).await? {
            Ok(sm::outcome::Applied::Redriven(moved)) => Ok(moved),
            Ok(other) => Err(ApiError::internal(format!("a redrive answered {other:?}"))),
            Err(refused) => Err(refused.into()),
        }
    }

    /// A scheduler refusal names an unknown group (404); anything else forwards or fails.
    async fn queue_error(&self, req: &HttpRequest, e: ClusterError) -> Result<HttpReply, ApiError> {
        match e {
            ClusterError::Refused(m) => Err(ApiError::not_found(m)),
            e => self.forward_or_fail(req, e).await,
        }
    }
}

/// The offset of message `id` of `topic`: 400 when `id` is not shaped `topic:offset` (the spec's
/// `MessageId`), 404 when it is but names another topic, which holds no message of this group.
fn message_offset(topic: &str, id: &str) -> Result<u64, ApiError> {
    let shaped = id.rsplit_once(':').is_some_and(|(t, offset)| {
        request::check_id("topic", t).is_ok()
            && (1..=19).contains(&offset.len())
            && offset.bytes().all(|b| b.is_ascii_digit())
    });
    if !shaped {
        return Err(ApiError::invalid(format!(
            "{id:?} is not a message id (topic:offset)"
        )));
    }
    sm::queue::parse_message_id(topic, id)
        .ok_or_else(|| ApiError::not_found(format!("{id:?} is not a message of topic {topic}")))
}

fn publish_command(topic: String, body: PublishBody) -> Result<sm::command::Publish, ApiError> {
    if body.key.chars().count() > MAX_KEY_LEN || body.key.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "key must be at most {MAX_KEY_LEN} characters without control characters"
        )));
    }
    let (delay_ms, deliver_at_ms) = match (body.delay_secs, body.deliver_at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("give delay_secs or deliver_at, not both"))
        }
        (Some(secs), None) => {
            check_range("delay_secs", secs, 0, MAX_DELAY_SECS)?;
            (secs * 1000, 0)
        }
        (None, Some(at)) => {
            let at = OffsetDateTime::parse(&at, &Rfc3339)
                .map_err(|_| ApiError::invalid("deliver_at must be an RFC 3339 time"))?;
            let ms = at.unix_timestamp_nanos() / 1_000_000;
            let ms = i64::try_from(ms).map_err(|_| ApiError::invalid("deliver_at out of range"))?;
            (0, ms.max(0))
        }
        (None, None) => (0, 0),
    };
    Ok(sm::command::Publish {
        topic,
        key: body.key,
        payload_json: body.payload.to_string(),
        delay_ms,
        deliver_at_ms,
    })
}
