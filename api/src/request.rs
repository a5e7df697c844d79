//! Request bodies and query strings, with the validation that happens before anything is
//! proposed. Unknown fields and wrong types are refused by serde; ranges here.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use sm::command::{OrderLine, PutSku};

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

/// Parses a JSON body into `T`, refusing unknown fields and wrong types with 400.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
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

fn check_range(what: &str, value: u64, min: u64, max: u64) -> Result<(), ApiError> {
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
    /// `GET /v1/orders`: the last id of the previous page.
    pub after: Option<String>,
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

#[cfg(test)]
mod tests {
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
