//! Request bodies and query strings, with the validation that happens before anything is
//! proposed. Unknown fields and wrong types are refused by serde; ranges here.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use sm::command::{OrderLine, Publish, PutSku, PutSubscription};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cluster::ReceiveLimits;

use crate::error::ApiError;

/// Longest id (user, SKU, order, group, topic, payment reference) accepted, in characters
/// (Unicode scalar values, as the spec's `maxLength` counts them; at most 512 bytes of UTF-8).
pub const MAX_ID_LEN: usize = 128;
/// Largest quantity of one line.
pub const MAX_QTY: u64 = 1_000_000;
/// Most lines in one order.
pub const MAX_ITEMS: usize = 100;
/// Largest stock of a SKU.
pub const MAX_STOCK: u64 = 1_000_000_000_000;
/// Largest unit price: a trillion cents keeps any order amount far from overflow.
pub const MAX_PRICE_CENTS: u64 = 1_000_000_000_000;
/// Longest payment window: ten years.
pub const MAX_PAY_WITHIN_SECS: u64 = 10 * 365 * 86_400;

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

/// Parses a JSON body into `T`, refusing unknown fields and wrong types with 400. Every body of
/// the contract is an object: serde would also read a struct from an array of its fields in
/// order (`[]` as a body with every field absent), so anything else is refused first.
pub fn parse_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid("invalid JSON body: expected an object"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
}

/// Reads an optional body field that may be absent but not `null` (use with
/// `#[serde(default, deserialize_with = "non_null")]`): the spec names these fields without
/// `nullable`, so a `null` is refused like any other wrong type rather than read as absent.
pub fn non_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Checks an id: 1 to [`MAX_ID_LEN`] characters, no control characters (Unicode `Cc`: U+0000 to
/// U+001F and U+007F to U+009F; the spec's `Id` pattern says the same).
pub fn check_id(what: &str, id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.chars().count() > MAX_ID_LEN {
        return Err(ApiError::invalid(format!(
            "{what} must be 1 to {MAX_ID_LEN} characters"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

/// Checks that `value` of field `what` lies in `min..=max`, or answers 400 naming the range.
pub fn check_range(what: &str, value: u64, min: u64, max: u64) -> Result<(), ApiError> {
    if value < min || value > max {
        return Err(ApiError::invalid(format!(
            "{what} must be between {min} and {max}"
        )));
    }
    Ok(())
}

/// Body of `PUT /admin/skus/{sku}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkuBody {
    /// Total loaded stock.
    pub stock: u64,
    /// Unit price in cents.
    pub price_cents: u64,
    /// Per-user limit, 0 for none.
    #[serde(default)]
    pub per_user_limit: u64,
}

impl SkuBody {
    /// The validated command for SKU `sku`.
    pub fn into_command(self, sku: &str) -> Result<PutSku, ApiError> {
        check_id("sku", sku)?;
        check_range("stock", self.stock, 0, MAX_STOCK)?;
        check_range("price_cents", self.price_cents, 0, MAX_PRICE_CENTS)?;
        check_range("per_user_limit", self.per_user_limit, 0, MAX_STOCK)?;
        Ok(PutSku {
            sku: sku.to_string(),
            stock: self.stock,
            price_cents: self.price_cents,
            per_user_limit: self.per_user_limit,
        })
    }
}

/// One line of an order body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemBody {
    /// SKU id.
    pub sku: String,
    /// Units.
    pub qty: u64,
}

/// Body of `POST /v1/orders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderBody {
    /// The buyer.
    pub user_id: String,
    /// The lines.
    pub items: Vec<ItemBody>,
    /// Payment window; the configured default when absent.
    #[serde(default, deserialize_with = "non_null")]
    pub pay_within_secs: Option<u64>,
}

impl OrderBody {
    /// The validated command, with `default_pay_within_secs` when the body names none.
    pub fn into_command(
        self,
        default_pay_within_secs: u64,
    ) -> Result<sm::command::CreateOrder, ApiError> {
        check_id("user_id", &self.user_id)?;
        if self.items.is_empty() || self.items.len() > MAX_ITEMS {
            return Err(ApiError::invalid(format!(
                "items must hold 1 to {MAX_ITEMS} lines"
            )));
        }
        for item in &self.items {
            check_id("sku", &item.sku)?;
            check_range("qty", item.qty, 1, MAX_QTY)?;
        }
        let pay_within_secs = self.pay_within_secs.unwrap_or(default_pay_within_secs);
        check_range("pay_within_secs", pay_within_secs, 1, MAX_PAY_WITHIN_SECS)?;
        Ok(sm::command::CreateOrder {
            user_id: self.user_id,
            items: self
                .items
                .into_iter()
                .map(|i| OrderLine {
                    sku: i.sku,
                    qty: i.qty,
                })
                .collect(),
            pay_within_secs,
        })
    }
}

/// Body of `POST /v1/orders/{id}/pay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayBody {
    /// The payment provider's reference.
    pub payment_ref: String,
}

/// Body of `POST /v1/orders/{id}/cancel` (empty object).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {}

/// Most voters one membership change may name.
pub const MAX_VOTERS: usize = 9;
/// Largest node id: the spec's ids are int64, and every status answer lists them.
pub const MAX_NODE_ID: u64 = i64::MAX as u64;

fn check_node_id(id: u64) -> Result<(), ApiError> {
    check_range("node_id", id, 0, MAX_NODE_ID)
}

/// Body of `POST /admin/cluster/learners`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnerBody {
    /// The new member's id; never one a wiped node used before (see `ops/README.md`).
    pub node_id: u64,
    /// Its public API `host:port` (an IP), where followers forward and consumers read.
    pub api_addr: String,
    /// Its Raft peer `host:port` (an IP), where the leader replicates to it.
    pub raft_addr: String,
}

impl LearnerBody {
    /// Checks the id is at most [`MAX_NODE_ID`] and the addresses are `ip:port`, as the node's
    /// own config requires.
    pub fn check(&self) -> Result<(), ApiError> {
        check_node_id(self.node_id)?;
        for (name, addr) in [("api_addr", &self.api_addr), ("raft_addr", &self.raft_addr)] {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(ApiError::invalid(format!(
                    "{name} {addr:?} is not host:port with an IP"
                )));
            }
        }
        Ok(())
    }
}

/// Body of `POST /admin/backup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupBody {
    /// Where the backup goes on the node's machine: a new directory, by absolute path (checked
    /// by `sm::backup::create`).
    pub dir: String,
}

/// Body of `POST /admin/cluster/voters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VotersBody {
    /// The complete new set of voters; each must already be a member (a learner to promote).
    pub voters: Vec<u64>,
}

impl VotersBody {
    /// The voters as a set: 1 to [`MAX_VOTERS`] distinct ids, each at most [`MAX_NODE_ID`].
    pub fn into_set(self) -> Result<std::collections::BTreeSet<u64>, ApiError> {
        for id in &self.voters {
            check_node_id(*id)?;
        }
        let set: std::collections::BTreeSet<u64> = self.voters.iter().copied().collect();
        if set.is_empty() || set.len() > MAX_VOTERS || set.len() != self.voters.len() {
            return Err(ApiError::invalid(format!(
                "voters must list 1 to {MAX_VOTERS} distinct node ids"
            )));
        }
        Ok(set)
    }
}

/// Query of `GET` routes of state.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// `linearizable` (default) or `local`.
    pub consistency: Option<String>,
    /// `GET /v1/orders`: whose orders.
    pub user_id: Option<String>,
    /// `GET /v1/orders`: page size, 1 to 1000.
    pub limit: Option<usize>,
    /// `GET /v1/orders`: the last id of the previous page (the last SKU for `/admin/skus`, the
    /// last message id for dead letters, the last change offset for a trace).
    pub after: Option<String>,
    /// Dead letters: text the key or payload must contain.
    pub q: Option<String>,
}

impl ReadQuery {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        serde_urlencoded_like(raw.unwrap_or(""))
    }

    /// Whether the read may come from this node's own state.
    pub fn is_local(&self) -> Result<bool, ApiError> {
        match self.consistency.as_deref() {
            None | Some("linearizable") => Ok(false),
            Some("local") => Ok(true),
            Some(other) => Err(ApiError::invalid(format!(
                "consistency must be linearizable or local, not {other:?}"
            ))),
        }
    }
}

/// Decodes `a=1&b=x` into `T` through a JSON object of strings (numbers parsed where `T` wants
/// them), so query strings get the same unknown-field and type checks as bodies.
fn serde_urlencoded_like<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    let mut map = serde_json::Map::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| ApiError::invalid("query is not UTF-8"))
        };
        let (name, value) = (decode(name)?, decode(value)?);
        let value = match value.parse::<u64>() {
            Ok(n) if name == "limit" => serde_json::Value::from(n),
            _ => serde_json::Value::String(value),
        };
        if map.insert(name.clone(), value).is_some() {
            return Err(ApiError::invalid(format!(
                "query parameter {name} given twice"
            )));
        }
    }
    serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| ApiError::invalid(format!("invalid query: {e}")))
}

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
    #[serde(default, deserialize_with = "non_null")]
    pub delay_secs: Option<u64>,
    /// Earliest delivery time, RFC 3339.
    #[serde(default, deserialize_with = "non_null")]
    pub deliver_at: Option<String>,
}

/// `push` of a subscription body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushBody {
    /// The webhook, `http://` or `https://`.
    pub url: String,
    /// Per-attempt timeout, default 5000.
    #[serde(default, deserialize_with = "non_null")]
    pub timeout_ms: Option<u64>,
}

/// `backoff` of a subscription body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffBody {
    /// First retry delay, default 1000.
    #[serde(default, deserialize_with = "non_null")]
    pub initial_ms: Option<u64>,
    /// Largest retry delay, default two hours.
    #[serde(default, deserialize_with = "non_null")]
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
    #[serde(default, deserialize_with = "non_null")]
    pub max_attempts: Option<u32>,
    /// Retry delays.
    #[serde(default, deserialize_with = "non_null")]
    pub backoff: Option<BackoffBody>,
    /// Most unsettled deliveries, default 64.
    #[serde(default, deserialize_with = "non_null")]
    pub max_in_flight: Option<u32>,
    /// Deliveries per second, default 0 (no limit).
    #[serde(default, deserialize_with = "non_null")]
    pub rate_per_sec: Option<u32>,
    /// One message per key at a time, default false.
    #[serde(default, deserialize_with = "non_null")]
    pub ordered_by_key: Option<bool>,
    /// `earliest` (default) or `latest`.
    #[serde(default, deserialize_with = "non_null")]
    pub start: Option<String>,
    /// Push groups: the key deliveries are signed with. Absent: a new group gets a drawn key
    /// (answered once), an existing group keeps its own.
    pub signing_secret: Option<String>,
}

impl SubscriptionBody {
    /// The validated command for group `group`.
    pub fn into_command(self, group: &str) -> Result<PutSubscription, ApiError> {
        check_id("group", group)?;
        check_id("topic", &self.topic)?;
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
    #[serde(default, deserialize_with = "non_null")]
    pub ids: Option<Vec<String>>,
}

/// Body of `POST .../dead/purge`: the dead letters' ids, or none for all.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    /// Message ids; absent for every dead letter of the group.
    #[serde(default, deserialize_with = "non_null")]
    pub ids: Option<Vec<String>>,
}

/// Body of `POST .../pause` and `.../resume`: nothing (an empty object).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

/// Body of `POST /admin/subscriptions/{group}/reset`: exactly one of `to`, `offset`, `time`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    /// `earliest` (the oldest message retention kept) or `latest` (the topic's head).
    #[serde(default, deserialize_with = "non_null")]
    pub to: Option<String>,
    /// The next message delivered is the one after this offset.
    #[serde(default, deserialize_with = "non_null")]
    pub offset: Option<u64>,
    /// The next message delivered is the first published at or after this RFC 3339 time.
    #[serde(default, deserialize_with = "non_null")]
    pub time: Option<String>,
}

/// Where a reset moves a group, once its body is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    /// The oldest message still held.
    Earliest,
    /// The topic's head: only later messages are delivered.
    Latest,
    /// A cursor: every offset up to it counts as settled.
    Offset(u64),
    /// The first message published at or after this time (ms since the epoch).
    Time(i64),
}

impl ResetBody {
    /// The target, or 400 unless exactly one form is given.
    pub fn target(self) -> Result<ResetTarget, ApiError> {
        match (self.to.as_deref(), self.offset, self.time) {
            (Some("earliest"), None, None) => Ok(ResetTarget::Earliest),
            (Some("latest"), None, None) => Ok(ResetTarget::Latest),
            (Some(other), None, None) => Err(ApiError::invalid(format!(
                "to must be earliest or latest, not {other:?}"
            ))),
            // The spec's offsets are int64, as the change stream's are.
            (None, Some(offset), None) if offset > crate::changes::MAX_OFFSET => {
                Err(ApiError::invalid(format!(
                    "offset must be between 0 and {}",
                    crate::changes::MAX_OFFSET
                )))
            }
            (None, Some(offset), None) => Ok(ResetTarget::Offset(offset)),
            (None, None, Some(time)) => {
                let at = OffsetDateTime::parse(&time, &Rfc3339)
                    .map_err(|_| ApiError::invalid("time must be an RFC 3339 time"))?;
                let ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
                    .map_err(|_| ApiError::invalid("time out of range"))?;
                Ok(ResetTarget::Time(ms))
            }
            _ => Err(ApiError::invalid("give exactly one of to, offset or time")),
        }
    }
}

/// Body of `POST /v1/subscriptions/{group}/receive`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveBody {
    /// Most messages, default 100.
    #[serde(default, deserialize_with = "non_null")]
    pub max: Option<usize>,
    /// Long poll, default 10000.
    #[serde(default, deserialize_with = "non_null")]
    pub wait_ms: Option<u64>,
    /// Lease, default 30000.
    #[serde(default, deserialize_with = "non_null")]
    pub visibility_ms: Option<u64>,
}

/// Body of `ack` and `nack`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptsBody {
    /// Receipts from `receive`.
    pub receipts: Vec<String>,
    /// `nack` only: delay before the message comes back, default 0.
    #[serde(default, deserialize_with = "non_null")]
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

impl ReceiveBody {
    /// The receive's limits, defaults filled in, or 400 naming what is out of range.
    pub fn into_limits(self) -> Result<ReceiveLimits, ApiError> {
        let limits = ReceiveLimits {
            max: self.max.unwrap_or(100),
            wait_ms: self.wait_ms.unwrap_or(10_000),
            visibility_ms: self.visibility_ms.unwrap_or(30_000),
        };
        check_range("max", limits.max as u64, 1, MAX_RECEIVE as u64)?;
        check_range("wait_ms", limits.wait_ms, 0, MAX_WAIT_MS)?;
        check_range("visibility_ms", limits.visibility_ms, 1, MAX_VISIBILITY_MS)?;
        Ok(limits)
    }
}

impl PublishBody {
    /// The publish command for `topic`, or 400 naming what is wrong.
    pub fn into_command(self, topic: String) -> Result<Publish, ApiError> {
        let body = self;
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
                let ms =
                    i64::try_from(ms).map_err(|_| ApiError::invalid("deliver_at out of range"))?;
                (0, ms.max(0))
            }
            (None, None) => (0, 0),
        };
        Ok(Publish {
            topic,
            key: body.key,
            payload_json: body.payload.to_string(),
            delay_ms,
            deliver_at_ms,
        })
    }
}

/// The offset of message `id` of `topic`: 400 when `id` is not shaped `topic:offset` (the spec's
/// `MessageId`), 404 when it is but names another topic, which holds no message of this group.
pub fn message_offset(topic: &str, id: &str) -> Result<u64, ApiError> {
    let shaped = id.rsplit_once(':').is_some_and(|(t, offset)| {
        check_id("topic", t).is_ok()
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

#[cfg(test)]
mod tests {

    #[test]
    fn a_reset_offset_past_int64_is_refused() {
        let body = |offset: u64| ResetBody {
            to: None,
            offset: Some(offset),
            time: None,
        };
        let max = crate::changes::MAX_OFFSET;
        assert_eq!(body(max).target().unwrap(), ResetTarget::Offset(max));
        assert_eq!(body(max + 1).target().unwrap_err().status, 400);
    }

    use super::*;

    #[test]
    fn order_bodies_are_checked() {
        let ok: OrderBody =
            parse_body(br#"{"user_id":"u1","items":[{"sku":"A","qty":2}]}"#).unwrap();
        assert_eq!(ok.into_command(60).unwrap().pay_within_secs, 60);
        assert!(parse_body::<OrderBody>(br#"{"user_id":"u1","items":[],"x":1}"#).is_err());
        assert!(
            parse_body::<OrderBody>(br#"{"user_id":"u1","items":[{"sku":"A","qty":-1}]}"#).is_err()
        );
        let null_window =
            br#"{"user_id":"u1","items":[{"sku":"A","qty":1}],"pay_within_secs":null}"#;
        assert!(parse_body::<OrderBody>(null_window).is_err());
        let zero: OrderBody =
            parse_body(br#"{"user_id":"u1","items":[{"sku":"A","qty":0}]}"#).unwrap();
        assert_eq!(zero.into_command(60).unwrap_err().code, "invalid_request");
        let long = format!(
            r#"{{"user_id":"{}","items":[{{"sku":"A","qty":1}}]}}"#,
            "u".repeat(129)
        );
        assert!(parse_body::<OrderBody>(long.as_bytes())
            .unwrap()
            .into_command(60)
            .is_err());
    }

    #[test]
    fn a_body_is_an_object_never_an_array_of_its_fields() {
        assert!(parse_body::<EmptyBody>(b" {} ").is_ok());
        assert!(
            parse_body::<EmptyBody>(b"").is_ok(),
            "no body: every field absent"
        );
        let array = parse_body::<EmptyBody>(b"[]").unwrap_err();
        assert_eq!(array.code, "invalid_request");
        assert!(parse_body::<BackupBody>(br#"["/backups/a"]"#).is_err());
    }

    #[test]
    fn queries_are_checked() {
        let q = ReadQuery::parse(Some("user_id=u%201&limit=5&consistency=local")).unwrap();
        assert_eq!(q.user_id.as_deref(), Some("u 1"));
        assert_eq!(q.limit, Some(5));
        assert!(q.is_local().unwrap());
        assert!(ReadQuery::parse(Some("bogus=1")).is_err());
        assert!(ReadQuery::parse(Some("limit=x")).is_err());
        assert!(ReadQuery::parse(Some("consistency=eventual"))
            .unwrap()
            .is_local()
            .is_err());
    }
}
