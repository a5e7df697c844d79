//! Who may do what: bearer tokens and their scopes, checked before a request is dispatched.
//!
//! Three kinds of caller: clients (`[[clients]]`, each a name, a token and scopes), the operator
//! (`admin_token`, for `/admin/*`), and a scraper (`metrics_token`, for `/metrics`). A node with
//! no client configured leaves `/v1` open, and one with neither an admin token nor a client
//! leaves `/admin` open too (the lone loopback node of `make run`; the node refuses to start
//! that way anywhere else).
//!
//! To ensure correctness:
//! - Every route names the one [`Permission`] it needs ([`Permission::of`]); a new route must be
//!   added there, so no route is open by omission.
//! - Tokens are compared in constant time (`subtle`), against every configured token, so the
//!   time an answer takes does not tell which token, or how much of one, was right.
//! - A follower forwards a request with its `Authorization` header, and the leader checks it
//!   again against the same configuration.

use subtle::ConstantTimeEq;

use crate::cluster::HttpRequest;
use crate::error::ApiError;
use crate::routes::Route;

/// What a client token may be allowed. Read from configuration as its contract string
/// (`"orders:read"`, `"publish:shop.*"`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Scope {
    /// `orders:read`: read orders and SKUs.
    OrdersRead,
    /// `orders:write`: create and cancel orders.
    OrdersWrite,
    /// `orders:pay`: record payments.
    OrdersPay,
    /// `orders:refund`: ask for refunds.
    OrdersRefund,
    /// `seckill`: buy in a flash sale.
    Seckill,
    /// `publish:<topic glob>`: publish to the topics the glob matches.
    Publish(String),
    /// `consume:<group glob>`: receive, ack and nack in the pull groups the glob matches.
    Consume(String),
    /// `changes:read`: read the change stream.
    ChangesRead,
    /// `admin`: everything under `/admin`, as the admin token.
    Admin,
}

/// A scope string that is not one of the contract's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}: expected orders:read, orders:write, orders:pay, orders:refund, seckill, publish:<topic glob>, consume:<group glob>, changes:read or admin")]
pub struct UnknownScope(pub String);

impl std::str::FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownScope(text.to_string());
        Ok(match text {
            "orders:read" => Scope::OrdersRead,
            "orders:write" => Scope::OrdersWrite,
            "orders:pay" => Scope::OrdersPay,
            "orders:refund" => Scope::OrdersRefund,
            "seckill" => Scope::Seckill,
            "changes:read" => Scope::ChangesRead,
            "admin" => Scope::Admin,
            _ => match text.split_once(':') {
                Some(("publish", glob)) if !glob.is_empty() => Scope::Publish(glob.to_string()),
                Some(("consume", glob)) if !glob.is_empty() => Scope::Consume(glob.to_string()),
                _ => return Err(unknown()),
            },
        })
    }
}

impl TryFrom<String> for Scope {
    type Error = UnknownScope;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::OrdersRead => f.write_str("orders:read"),
            Scope::OrdersWrite => f.write_str("orders:write"),
            Scope::OrdersPay => f.write_str("orders:pay"),
            Scope::OrdersRefund => f.write_str("orders:refund"),
            Scope::Seckill => f.write_str("seckill"),
            Scope::Publish(glob) => write!(f, "publish:{glob}"),
            Scope::Consume(glob) => write!(f, "consume:{glob}"),
            Scope::ChangesRead => f.write_str("changes:read"),
            Scope::Admin => f.write_str("admin"),
        }
    }
}

/// A configured client: who it is (for the audit log), its token, what it may do.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientToken {
    /// The client's name, logged with what it changes; never the token.
    pub name: String,
    /// Its bearer token.
    pub token: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
}

impl std::fmt::Debug for ClientToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientToken")
            .field("name", &self.name)
            .field("token", &"<hidden>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// What a route needs from its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permission {
    /// Nothing (`/healthz`, `/readyz`).
    Open,
    /// The metrics token, when one is configured.
    Metrics,
    /// The admin token, or a client with the `admin` scope.
    Admin,
    /// A client token with this scope.
    Client(Needed),
}

/// The scope a `/v1` route needs, with the topic or group it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needed {
    /// `orders:read`.
    OrdersRead,
    /// `orders:write`.
    OrdersWrite,
    /// `orders:pay`.
    OrdersPay,
    /// `orders:refund`.
    OrdersRefund,
    /// `seckill`.
    Seckill,
    /// `publish:<glob>` matching this topic.
    Publish(String),
    /// `consume:<glob>` matching this group.
    Consume(String),
    /// `changes:read`.
    ChangesRead,
}

impl Needed {
    fn granted_by(&self, scope: &Scope) -> bool {
        match (self, scope) {
            (Needed::OrdersRead, Scope::OrdersRead)
            | (Needed::OrdersWrite, Scope::OrdersWrite)
            | (Needed::OrdersPay, Scope::OrdersPay)
            | (Needed::OrdersRefund, Scope::OrdersRefund)
            | (Needed::Seckill, Scope::Seckill)
            | (Needed::ChangesRead, Scope::ChangesRead) => true,
            (Needed::Publish(topic), Scope::Publish(glob)) => glob_matches(glob, topic),
            (Needed::Consume(group), Scope::Consume(glob)) => glob_matches(glob, group),
            _ => false,
        }
    }

    fn name(&self) -> String {
        match self {
            Needed::OrdersRead => "orders:read".into(),
            Needed::OrdersWrite => "orders:write".into(),
            Needed::OrdersPay => "orders:pay".into(),
            Needed::OrdersRefund => "orders:refund".into(),
            Needed::Seckill => "seckill".into(),
            Needed::Publish(topic) => format!("publish:<glob matching {topic}>"),
            Needed::Consume(group) => format!("consume:<glob matching {group}>"),
            Needed::ChangesRead => "changes:read".into(),
        }
    }
}

impl Permission {
    /// What `route` needs. Every route is listed, so none is open by omission.
    pub fn of(route: &Route) -> Permission {
        match route {
            // The console page holds no data: it asks for the admin token and sends it with
            // every call it makes.
            Route::Healthz | Route::Readyz | Route::Console | Route::ConsoleAsset(_) => {
                Permission::Open
            }
            Route::Metrics => Permission::Metrics,
            Route::ClusterStatus
            | Route::Snapshot
            | Route::Backup
            | Route::Timers
            | Route::Digest
            | Route::PutSku(_)
            | Route::AddLearner
            | Route::ChangeVoters
            | Route::ListSubscriptions
            | Route::PutSubscription(_)
            | Route::RemoveSubscription(_)
            | Route::DeadLetters(_)
            | Route::Redrive(_)
            | Route::Topics
            | Route::ListSkus
            | Route::OrderTrace(_)
            | Route::Purge(_)
            | Route::Pause(_)
            | Route::Resume(_)
            | Route::Reset(_)
            | Route::AdminListOrders
            | Route::SeckillAnswers => Permission::Admin,
            Route::GetSku(_) | Route::ListOrders | Route::GetOrder(_) => {
                Permission::Client(Needed::OrdersRead)
            }
            Route::CreateOrder | Route::CreateOrderBatch | Route::CancelOrder(_) => {
                Permission::Client(Needed::OrdersWrite)
            }
            Route::PayOrder(_) => Permission::Client(Needed::OrdersPay),
            Route::RefundOrder(_) => Permission::Client(Needed::OrdersRefund),
            Route::Seckill(_) => Permission::Client(Needed::Seckill),
            Route::Changes | Route::ChangeStream => Permission::Client(Needed::ChangesRead),
            Route::Publish(topic) | Route::PublishBatch(topic) => {
                Permission::Client(Needed::Publish(topic.clone()))
            }
            Route::Receive(group) | Route::Ack(group) | Route::Nack(group) => {
                Permission::Client(Needed::Consume(group.clone()))
            }
        }
    }
}

/// Who made a request, as the audit log names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No token was needed (an open node) or asked for (an open route).
    Anonymous,
    /// The holder of the admin token.
    Operator,
    /// A configured client, by name.
    Client(String),
    /// The holder of the metrics token.
    Scraper,
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caller::Anonymous => f.write_str("anonymous"),
            Caller::Operator => f.write_str("admin_token"),
            Caller::Client(name) => write!(f, "client:{name}"),
            Caller::Scraper => f.write_str("metrics_token"),
        }
    }
}

/// The node's tokens, and the check of a request against them. Its `Debug` names which tokens
/// are configured, never their values.
#[derive(Clone, Default)]
pub struct Access {
    /// The operator's token for `/admin`; `None` when not configured.
    admin_token: Option<String>,
    /// Configured clients; none leaves `/v1` open.
    clients: Vec<ClientToken>,
    /// The scraper's token for `/metrics`; `None` leaves `/metrics` open.
    metrics_token: Option<String>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |t: &Option<String>| if t.is_some() { "<hidden>" } else { "<unset>" };
        f.debug_struct("Access")
            .field("admin_token", &shown(&self.admin_token))
            .field("clients", &self.clients)
            .field("metrics_token", &shown(&self.metrics_token))
            .finish()
    }
}

impl Access {
    /// Access under these tokens; empty tokens count as not configured.
    pub fn new(
        admin_token: Option<String>,
        clients: Vec<ClientToken>,
        metrics_token: Option<String>,
    ) -> Self {
        Access {
            admin_token: admin_token.filter(|t| !t.is_empty()),
            clients: clients
                .into_iter()
                .filter(|c| !c.token.is_empty())
                .collect(),
            metrics_token: metrics_token.filter(|t| !t.is_empty()),
        }
    }

    /// Whether any client token is configured (and so `/v1` is closed to anyone without one).
    pub fn has_clients(&self) -> bool {
        !self.clients.is_empty()
    }

    /// Who sent `req`, if they may call `route`: 401 `unauthorized` for a missing or unknown
    /// token, 403 `forbidden` for a known one without the permission.
    pub fn authorize(&self, route: &Route, req: &HttpRequest) -> Result<Caller, ApiError> {
        let presented = bearer(req);
        match Permission::of(route) {
            Permission::Open => Ok(Caller::Anonymous),
            Permission::Metrics => match &self.metrics_token {
                None => Ok(Caller::Anonymous),
                Some(token) if presented.is_some_and(|p| same_secret(p, token)) => {
                    Ok(Caller::Scraper)
                }
                Some(_) => Err(ApiError::unauthorized()),
            },
            Permission::Admin => {
                if self.admin_token.is_none() && self.clients.is_empty() {
                    return Ok(Caller::Anonymous);
                }
                let presented = presented.ok_or_else(ApiError::unauthorized)?;
                if self
                    .admin_token
                    .as_ref()
                    .is_some_and(|t| same_secret(presented, t))
                {
                    return Ok(Caller::Operator);
                }
                let client = self.client(presented).ok_or_else(ApiError::unauthorized)?;
                if client.scopes.contains(&Scope::Admin) {
                    Ok(Caller::Client(client.name.clone()))
                } else {
                    Err(ApiError::forbidden("admin"))
                }
            }
            Permission::Client(needed) => {
                if self.clients.is_empty() {
                    return Ok(Caller::Anonymous);
                }
                let presented = presented.ok_or_else(ApiError::unauthorized)?;
                let client = self.client(presented).ok_or_else(ApiError::unauthorized)?;
                if client.scopes.iter().any(|s| needed.granted_by(s)) {
                    Ok(Caller::Client(client.name.clone()))
                } else {
                    Err(ApiError::forbidden(&needed.name()))
                }
            }
        }
    }

    /// The client whose token is `presented`. Every token is compared, whichever matches.
    fn client(&self, presented: &str) -> Option<&ClientToken> {
        let mut found = None;
        for client in &self.clients {
            if same_secret(presented, &client.token) && found.is_none() {
                found = Some(client);
            }
        }
        found
    }
}

/// The bearer token of `req`, if it carries a non-empty one.
fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.header("authorization")?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?
        .trim();
    (!token.is_empty()).then_some(token)
}

/// Whether `presented` equals `secret`, compared in constant time; an empty secret never
/// matches.
pub fn same_secret(presented: &str, secret: &str) -> bool {
    !secret.is_empty() && bool::from(presented.as_bytes().ct_eq(secret.as_bytes()))
}

/// Whether `name` matches `glob`, where `*` stands for any run of characters (dots included)
/// and every other character for itself.
pub fn glob_matches(glob: &str, name: &str) -> bool {
    let (glob, name) = (glob.as_bytes(), name.as_bytes());
    // Iterative match with one backtrack point: linear in practice, never exponential.
    let (mut g, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if g < glob.len() && glob[g] == b'*' {
            star = Some((g, n));
            g += 1;
        } else if g < glob.len() && glob[g] == name[n] {
            g += 1;
            n += 1;
        } else if let Some((star_g, star_n)) = star {
            g = star_g + 1;
            n = star_n + 1;
            star = Some((star_g, star_n + 1));
        } else {
            return false;
        }
    }
    glob[g..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, token: Option<&str>) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            path: path.into(),
            query: None,
            headers: token
                .map(|t| vec![("authorization".to_string(), format!("Bearer {t}"))])
                .unwrap_or_default(),
            body: Default::default(),
        }
    }

    fn access() -> Access {
        Access::new(
            Some("admin-secret".into()),
            vec![
                ClientToken {
                    name: "shop".into(),
                    token: "shop-token".into(),
                    scopes: vec![
                        Scope::OrdersRead,
                        "publish:shop.*".parse().unwrap(),
                        "consume:shop-*".parse().unwrap(),
                    ],
                },
                ClientToken {
                    name: "ops".into(),
                    token: "ops-token".into(),
                    scopes: vec![Scope::Admin],
                },
            ],
            Some("scrape".into()),
        )
    }

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_matches("*", "anything.at.all"));
        assert!(glob_matches("shop.*", "shop.paid"));
        assert!(!glob_matches("shop.*", "shopx.paid"));
        assert!(glob_matches("a*c*e", "abcde"));
        assert!(!glob_matches("a*c", "abcd"));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("exact", "exactly"));
    }

    #[test]
    fn scopes_parse_and_print_back() {
        for text in [
            "orders:read",
            "seckill",
            "publish:a.*",
            "consume:*",
            "admin",
        ] {
            assert_eq!(text.parse::<Scope>().unwrap().to_string(), text);
        }
        assert!("publish:".parse::<Scope>().is_err());
        assert!("orders:delete".parse::<Scope>().is_err());
    }

    #[test]
    fn tokens_are_checked_by_scope() {
        let access = access();
        let route = |method, path| Route::parse(method, path).unwrap();
        let get_order = route("GET", "/v1/orders/1");
        assert_eq!(
            access
                .authorize(&get_order, &request("/", Some("shop-token")))
                .unwrap(),
            Caller::Client("shop".into())
        );
        let status = |r: Result<Caller, ApiError>| r.map(|_| 200).unwrap_or_else(|e| e.status);
        assert_eq!(
            status(access.authorize(&get_order, &request("/", None))),
            401
        );
        assert_eq!(
            status(access.authorize(&get_order, &request("/", Some("nope")))),
            401
        );
        assert_eq!(
            status(access.authorize(&get_order, &request("/", Some("ops-token")))),
            403
        );
        let publish = route("POST", "/v1/topics/shop.paid/messages");
        let other = route("POST", "/v1/topics/billing/messages");
        let shop = request("/", Some("shop-token"));
        assert_eq!(status(access.authorize(&publish, &shop)), 200);
        assert_eq!(status(access.authorize(&other, &shop)), 403);
        let admin = route("GET", "/admin/cluster");
        assert_eq!(status(access.authorize(&admin, &shop)), 403);
        assert_eq!(
            status(access.authorize(&admin, &request("/", Some("ops-token")))),
            200
        );
        assert_eq!(
            status(access.authorize(&admin, &request("/", Some("admin-secret")))),
            200
        );
        let metrics = route("GET", "/metrics");
        assert_eq!(status(access.authorize(&metrics, &shop)), 401);
        assert_eq!(
            status(access.authorize(&metrics, &request("/", Some("scrape")))),
            200
        );
        let health = route("GET", "/healthz");
        assert_eq!(status(access.authorize(&health, &request("/", None))), 200);
    }

    #[test]
    fn a_node_without_tokens_is_open() {
        let open = Access::default();
        let admin = Route::parse("GET", "/admin/cluster").unwrap();
        let publish = Route::parse("POST", "/v1/topics/t/messages").unwrap();
        assert!(open.authorize(&admin, &request("/", None)).is_ok());
        assert!(open.authorize(&publish, &request("/", None)).is_ok());
    }

    #[test]
    fn debug_shows_no_token() {
        let shown = format!("{:?}", access());
        for token in ["admin-secret", "shop-token", "ops-token", "scrape"] {
            assert!(!shown.contains(token), "{shown}");
        }
    }

    #[test]
    fn empty_secrets_never_match() {
        assert!(!same_secret("", ""));
        assert!(same_secret("a", "a"));
        assert!(!same_secret("a", "ab"));
    }
}
