//! Batch endpoints: many order creations (`POST /v1/orders/batch`) or publishes
//! (`POST /v1/topics/{topic}/messages/batch`) in one request, each item its own command with its
//! own idempotency key and its own answer.
//!
//! Consensus is what an order costs most of; TigerBeetle amortises it over thousands of transfers
//! per request. Here a batch's commands are handed to the cluster all at once, so the node's
//! batcher (which takes everything waiting into one `CommandBatch`) puts them into one Raft entry,
//! or a few when the batch is larger than `max_batch`, instead of one round trip per item. From a
//! follower they travel to the leader the same way, in one forwarded batch.
//!
//! To ensure correctness:
//! - An item is what the single endpoint would have been sent: validated by the same code
//!   ([`OrderBody::into_command`], [`PublishBody::into_command`]), hashed for idempotency as that
//!   request ([`idempotency::item_hash`]: the single path, the item without its key), and
//!   answered with the single endpoint's body byte for byte (the same [`outcome_reply`] and
//!   [`ApiError::into_reply`]). So a retry of an item through either endpoint, with the same key
//!   and content, gets the first answer.
//! - A body or any item that fails validation refuses the whole batch (400) before anything is
//!   proposed: what the spec refuses is refused whole. Only the state machine's decisions (stock,
//!   a reused key) and the cluster's (overloaded) are answered item by item.
//! - Items are independent commands: one's refusal does not undo another's. They reach the
//!   batcher in item order and usually share one entry, applied in that order; when they span
//!   entries their relative order is not promised, as for concurrent single requests.

use std::collections::HashSet;

use futures::future::join_all;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sm::command::{Action, Command};

use crate::cluster::{Cluster, HttpReply, HttpRequest};
use crate::error::ApiError;
use crate::handler::{outcome_reply, Api};
use crate::idempotency;
use crate::request::{self, OrderBody, PublishBody};

/// Most items one batch request carries. With the 1 MiB body cap this bounds a batch's commands
/// well within one entry's `max_batch_bytes` (2 MiB by default).
pub const MAX_BATCH_ITEMS: usize = 1000;

/// The field of an item that carries its idempotency key (the single endpoint's header).
pub const KEY_FIELD: &str = "idempotency_key";

/// What a batch path adds to its single endpoint's path; the single path is what an item is
/// hashed under.
const BATCH_SUFFIX: &str = "/batch";

/// Body of `POST /v1/orders/batch`: each item is an order body plus its `idempotency_key`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderBatchBody {
    /// The orders, 1 to [`MAX_BATCH_ITEMS`], answered in this order.
    pub orders: Vec<Map<String, Value>>,
}

/// Body of `POST /v1/topics/{topic}/messages/batch`: each item is a publish body, with an
/// optional `idempotency_key`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBatchBody {
    /// The messages, 1 to [`MAX_BATCH_ITEMS`], answered in this order.
    pub messages: Vec<Map<String, Value>>,
}

/// Whether each item must carry an idempotency key: the rule of its single endpoint's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRule {
    /// Every item names its key (orders: a retried batch must never order twice).
    Required,
    /// An item may go without (publishes: the single publish takes the header optionally).
    Optional,
}

/// One item taken apart: its key, and the body its single endpoint would have received.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItem {
    /// The checked idempotency key, if the item has one.
    pub key: Option<String>,
    /// The item without its key, as the single request's body.
    pub body: Value,
}

/// Refuses an `Idempotency-Key` header on a batch: each item names its own key, and a client
/// that sent one for the whole batch would believe it protected by it.
fn refuse_batch_header(req: &HttpRequest) -> Result<(), ApiError> {
    match req.header("idempotency-key") {
        Some(_) => Err(ApiError::invalid(format!(
            "a batch takes no Idempotency-Key header: each item names its own {KEY_FIELD}"
        ))),
        None => Ok(()),
    }
}

/// Takes the items of a batch's `field` apart: 1 to [`MAX_BATCH_ITEMS`] of them, each key
/// checked as the header is (1-255 printable ASCII), required by `rule`, and unique in the batch
/// (two items under one key would make the second a retry of the first, which no client means).
pub fn take_items(
    field: &str,
    items: Vec<Map<String, Value>>,
    rule: KeyRule,
) -> Result<Vec<BatchItem>, ApiError> {
    if items.is_empty() || items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::invalid(format!(
            "{field} must hold 1 to {MAX_BATCH_ITEMS} items"
        )));
    }
    let mut seen = HashSet::new();
    let mut taken = Vec::with_capacity(items.len());
    for (index, mut item) in items.into_iter().enumerate() {
        let key = match item.remove(KEY_FIELD) {
            Some(Value::String(key)) => {
                idempotency::check_key(&key).map_err(at(field, index))?;
                if !seen.insert(key.clone()) {
                    return Err(ApiError::invalid(format!(
                        "{field}[{index}]: {KEY_FIELD} {key:?} is used by an earlier item; keys \
                         are unique within a batch"
                    )));
                }
                Some(key)
            }
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "{field}[{index}]: {KEY_FIELD} must be a string"
                )))
            }
            None if rule == KeyRule::Required => {
                return Err(ApiError::invalid(format!(
                    "{field}[{index}]: {KEY_FIELD} is required"
                )))
            }
            None => None,
        };
        taken.push(BatchItem {
            key,
            body: Value::Object(item),
        });
    }
    Ok(taken)
}

/// Names item `index` of `field` in an error's message, so the client knows which one to fix.
fn at(field: &str, index: usize) -> impl Fn(ApiError) -> ApiError + '_ {
    move |mut e| {
        e.message = format!("{field}[{index}]: {}", e.message);
        e
    }
}

/// Parses an item's body as its single endpoint parses a body (unknown fields and wrong types
/// refused); the caller names the item.
fn parse_item<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(|e| ApiError::invalid(format!("invalid item: {e}")))
}

/// `action` under the item's key and its request hash, when it has a key.
fn item_command(key_and_hash: Option<(String, Vec<u8>)>, action: Action) -> Command {
    let mut command = Command::new(action);
    if let Some((key, hash)) = key_and_hash {
        command.idempotency_key = key;
        command.request_hash = hash;
    }
    command
}

/// The single endpoint's path for a batch request's path.
fn single_path(req: &HttpRequest) -> &str {
    req.path.strip_suffix(BATCH_SUFFIX).unwrap_or(&req.path)
}

/// Builds each item's command with `build` (the single endpoint's validation), after hashing
/// the item as that endpoint's request; the first invalid item refuses the batch.
fn item_commands(
    req: &HttpRequest,
    field: &str,
    items: Vec<BatchItem>,
    mut build: impl FnMut(Value) -> Result<Action, ApiError>,
) -> Result<Vec<Command>, ApiError> {
    let path = single_path(req);
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let key_and_hash = item.key.map(|key| {
                let hash = idempotency::item_hash(&req.method, path, &item.body);
                (key, hash)
            });
            let action = build(item.body).map_err(at(field, index))?;
            Ok(item_command(key_and_hash, action))
        })
        .collect()
}

/// One item's answer: `{"status": S, "<field>": <the single endpoint's body>}` for a success,
/// `{"status": S, "error": {...}}` (the single endpoint's error object) for a refusal.
#[derive(Debug)]
pub struct ItemAnswer {
    /// The status the single endpoint would have answered.
    status: u16,
    /// `order`, `message` or `error`.
    field: &'static str,
    /// The single endpoint's body (or its `error` object), embedded unchanged.
    body: Box<RawValue>,
}

/// What an error reply's body holds, read without re-encoding it.
#[derive(Deserialize)]
struct ErrorBody {
    /// The `{"code", "message"}` object.
    error: Box<RawValue>,
}

impl ItemAnswer {
    /// The answer embedding `reply`, which the single endpoint would have sent; a success's body
    /// goes under `field`.
    pub fn of(reply: HttpReply, field: &'static str) -> Result<Self, ApiError> {
        let unreadable =
            |e: serde_json::Error| ApiError::internal(format!("an answer is not JSON: {e}"));
        let (field, body) = if (200..300).contains(&reply.status) {
            let text = String::from_utf8(reply.body.to_vec())
                .map_err(|e| ApiError::internal(format!("an answer is not UTF-8: {e}")))?;
            (field, RawValue::from_string(text).map_err(unreadable)?)
        } else {
            let body: ErrorBody = serde_json::from_slice(&reply.body).map_err(unreadable)?;
            ("error", body.error)
        };
        Ok(ItemAnswer {
            status: reply.status,
            field,
            body,
        })
    }
}

impl Serialize for ItemAnswer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("status", &self.status)?;
        map.serialize_entry(self.field, &self.body)?;
        map.end()
    }
}

/// The whole answer, `{"results": [...]}` in item order.
#[derive(Serialize)]
struct BatchAnswer {
    /// One answer per item.
    results: Vec<ItemAnswer>,
}

impl<C: Cluster> Api<C> {
    /// `POST /v1/orders/batch`: creates each order as `POST /v1/orders` would, proposed
    /// together.
    pub(crate) async fn create_order_batch(
        &self,
        req: &HttpRequest,
    ) -> Result<HttpReply, ApiError> {
        refuse_batch_header(req)?;
        let body = request::parse_body::<OrderBatchBody>(&req.body)?;
        let items = take_items("orders", body.orders, KeyRule::Required)?;
        let default_pay_within_secs = self.config.default_pay_within_secs;
        let commands = item_commands(req, "orders", items, |body| {
            let order: OrderBody = parse_item(body)?;
            Ok(Action::CreateOrder(
                order.into_command(default_pay_within_secs)?,
            ))
        })?;
        self.propose_items(commands, "order").await
    }

    /// `POST /v1/topics/{topic}/messages/batch`: publishes each message as the single publish
    /// would (never into a reserved topic), proposed together.
    pub(crate) async fn publish_batch(
        &self,
        req: &HttpRequest,
        topic: String,
    ) -> Result<HttpReply, ApiError> {
        crate::queue::check_publish_topic(&topic)?;
        refuse_batch_header(req)?;
        let body = request::parse_body::<PublishBatchBody>(&req.body)?;
        let items = take_items("messages", body.messages, KeyRule::Optional)?;
        let commands = item_commands(req, "messages", items, |body| {
            let message: PublishBody = parse_item(body)?;
            Ok(Action::Publish(message.into_command(topic.clone())?))
        })?;
        self.propose_items(commands, "message").await
    }

    /// Hands every command to the cluster at once (so they share entries) and answers each in
    /// order. When none reached the state machine (no leader, overloaded, the outcome unknown),
    /// the batch is answered with the first item's error, `Retry-After` included: the client
    /// retries the batch as a whole.
    async fn propose_items(
        &self,
        commands: Vec<Command>,
        field: &'static str,
    ) -> Result<HttpReply, ApiError> {
        let outcomes = join_all(commands.into_iter().map(|c| self.cluster.write(c))).await;
        if outcomes.iter().all(Result::is_err) {
            if let Some(Err(e)) = outcomes.into_iter().next() {
                return Err(e.into());
            }
            return Err(ApiError::invalid("a batch holds at least one item"));
        }
        let results = outcomes
            .into_iter()
            .map(|written| {
                let reply = written
                    .map_err(ApiError::from)
                    .and_then(outcome_reply)
                    .unwrap_or_else(ApiError::into_reply);
                ItemAnswer::of(reply, field)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let body = serde_json::to_vec(&BatchAnswer { results })
            .map_err(|e| ApiError::internal(format!("the batch answer: {e}")))?;
        Ok(HttpReply::json(200, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(json: &str) -> Vec<Map<String, Value>> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn keys_are_taken_out_checked_and_unique() {
        let taken = take_items(
            "orders",
            items(r#"[{"idempotency_key":"k1","user_id":"u1"},{"idempotency_key":"k2"}]"#),
            KeyRule::Required,
        )
        .unwrap();
        assert_eq!(taken[0].key.as_deref(), Some("k1"));
        assert_eq!(taken[0].body, serde_json::json!({"user_id": "u1"}));

        let refused = |json: &str, rule| take_items("orders", items(json), rule).unwrap_err();
        let duplicate = refused(
            r#"[{"idempotency_key":"k"},{"idempotency_key":"k"}]"#,
            KeyRule::Optional,
        );
        assert!(duplicate.message.starts_with("orders[1]:"), "{duplicate}");
        assert_eq!(refused("[{}]", KeyRule::Required).status, 400);
        assert_eq!(
            refused(r#"[{"idempotency_key":7}]"#, KeyRule::Optional).status,
            400
        );
        assert_eq!(
            refused(r#"[{"idempotency_key":""}]"#, KeyRule::Optional).status,
            400
        );
        assert_eq!(refused("[]", KeyRule::Optional).status, 400);
        let too_many = format!("[{}]", vec!["{}"; MAX_BATCH_ITEMS + 1].join(","));
        assert_eq!(refused(&too_many, KeyRule::Optional).status, 400);

        let keyless = take_items("messages", items("[{},{}]"), KeyRule::Optional).unwrap();
        assert!(keyless.iter().all(|item| item.key.is_none()));
    }

    #[test]
    fn an_answer_embeds_the_single_body_unchanged() {
        let created = HttpReply {
            status: 201,
            headers: Vec::new(),
            body: r#"{"id":"1","z":1,"a":2}"#.into(),
        };
        let answer = serde_json::to_string(&ItemAnswer::of(created, "order").unwrap()).unwrap();
        assert_eq!(answer, r#"{"status":201,"order":{"id":"1","z":1,"a":2}}"#);

        let refused = ApiError::from(sm::outcome::Rejection::IdempotencyKeyReused).into_reply();
        let error = serde_json::from_slice::<Value>(&refused.body).unwrap()["error"].to_string();
        let answer = serde_json::to_string(&ItemAnswer::of(refused, "order").unwrap()).unwrap();
        assert_eq!(answer, format!(r#"{{"status":422,"error":{error}}}"#));
    }
}
