//! Configuration: one struct with defaults, filled from a TOML file, then `ORDERQ_*` environment
//! variables, then flags (each later source wins).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use api::webhook_target::Cidr;
use api::{ClientToken, Scope};
use clap::Args;
use serde::Deserialize;
use sm::raft_types::PeerAddr;

use crate::secrets::{Secret, SecretError};

/// A cluster member as configured: `[[peers]]` in the file, `--peer ID=RAFT_ADDR,API_ADDR` as a flag.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Node id.
    pub id: u64,
    /// Raft peer `host:port`.
    pub raft_addr: String,
    /// Public API `host:port`.
    pub api_addr: String,
}

/// `[payment]` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    /// The payment provider's refund endpoint (used by the refund flow).
    #[serde(default)]
    pub refund_url: String,
    /// Where the provider answers whether it made a refund (`GET {refund_status_url}/{order
    /// id}`): asked before a refund is given up and after an attempt whose answer was lost, so a
    /// refund the provider made is never recorded failed. Empty: never asked.
    #[serde(default)]
    pub refund_status_url: String,
    /// The key refund calls are signed with (`X-Orderq-Signature`), so the provider can tell
    /// orderq's refunds from forgeries; empty leaves them unsigned.
    #[serde(default)]
    pub signing_secret: Secret,
    /// A file holding `signing_secret`.
    #[serde(default)]
    pub signing_secret_file: Option<PathBuf>,
}

/// `[tls]` settings: every path is a PEM file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Extra roots trusted for outbound `https://` (push webhooks, the refund call), beside the
    /// system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// This node's certificate chain: with `key_file`, the API serves https, and with
    /// `peer_ca_file` it is the certificate this node presents to its peers.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The cluster CA: the Raft port serves https and requires a client certificate signed by
    /// it; peers are reached over https and must present one too.
    #[serde(default)]
    pub peer_ca_file: Option<PathBuf>,
}

/// A `[[clients]]` entry: a service of the shop with its own token and what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    /// Its name, which the audit log records (never the token).
    pub name: String,
    /// Its bearer token; or give `token_file`.
    #[serde(default)]
    pub token: Secret,
    /// A file holding its bearer token, so the token stays out of the config file.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// What it may do: `orders:read`, `orders:write`, `orders:pay`, `orders:refund`,
    /// `seckill`, `publish:<topic glob>`, `consume:<group glob>`, `changes:read`, `admin`.
    pub scopes: Vec<Scope>,
}

/// Everything a node is configured with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This node's id.
    pub node_id: u64,
    /// Where the database and snapshots live.
    pub data_dir: PathBuf,
    /// Public HTTP API address.
    pub api_addr: String,
    /// Raft peer port address.
    pub raft_addr: String,
    /// The initial voters, this node included; empty means a single-node cluster of this node.
    pub peers: Vec<Peer>,
    /// Bearer token required on `/admin/*`; empty leaves admin open (only allowed for a lone
    /// node on loopback, see `exposure`).
    pub admin_token: Secret,
    /// A file holding `admin_token`.
    pub admin_token_file: Option<PathBuf>,
    /// Secret every peer must present on the Raft port; required with peers.
    pub cluster_secret: Secret,
    /// A file holding `cluster_secret`.
    pub cluster_secret_file: Option<PathBuf>,
    /// Bearer token required on `/metrics`; empty leaves it open.
    pub metrics_token: Secret,
    /// A file holding `metrics_token`.
    pub metrics_token_file: Option<PathBuf>,
    /// The clients and their scopes; with any, every `/v1` call needs a client token.
    pub clients: Vec<Client>,
    /// Address ranges webhooks (push groups, refunds) may reach, such as `10.0.0.0/8`; empty:
    /// anywhere but link-local addresses.
    pub webhook_allow: Vec<Cidr>,
    /// Payment provider settings.
    pub payment: Payment,
    /// TLS settings; none: plain HTTP on both ports, outbound https with the system's roots.
    pub tls: Tls,
    /// Election timeout (the lower bound; the upper is twice it).
    pub election_timeout_ms: u64,
    /// Leader heartbeat interval.
    pub heartbeat_ms: u64,
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot (for followers slightly behind).
    pub keep_logs_after_snapshot: u64,
    /// Most commands per Raft entry; 1 turns batching off.
    pub max_batch: usize,
    /// Most bytes of commands per Raft entry, and of entries per `AppendEntries` to a peer: a
    /// large entry would miss the heartbeat-long append timeout and churn elections. A single
    /// command larger than this is refused with 413 before it is proposed.
    pub max_batch_bytes: usize,
    /// Most batches proposed at once. One by default: every entry costs each node a fixed
    /// amount (an append, its sync, a replication round, a pass of openraft's loop) whatever it
    /// holds, and with one in flight the requests that arrive meanwhile all form the next entry.
    /// Beside etcd and NATS on two cores, going from 2 to 1 took entries from about 17 orders to
    /// about 25, CPU per order from 1.15x etcd's to 0.99-1.01x and per publish from 2.33x NATS's
    /// to 1.77-1.84x, with p99 no worse.
    pub max_in_flight: usize,
    /// Payment window of orders that name none.
    pub default_pay_within_secs: u64,
    /// This node joins an existing cluster (as a learner, added with
    /// `POST /admin/cluster/learners` on any member): it never initialises a cluster and needs
    /// no `peers`. Without it, a node with empty `peers` would initialise a cluster of its own.
    pub join: bool,
    /// Change-stream records older than this many seconds are pruned on this node; 0 keeps them
    /// regardless of age. Node-local: an analytics learner may keep more than the voters.
    pub changes_retention_secs: u64,
    /// At most this many of the newest change-stream records are kept on this node; 0 keeps
    /// them regardless of count.
    pub changes_retention_count: u64,
    /// Payment window of flash-sale orders: short, so unpaid units return to the sale soon.
    pub seckill_pay_within_secs: u64,
    /// Most normal writes queued or in flight on this node; more are answered 429 at once.
    pub queue_depth: usize,
    /// Most flash-sale purchases queued or in flight on this node (their own budget, so a sale
    /// cannot crowd out normal writes); more are answered 429 at once.
    pub seckill_queue_depth: usize,
    /// Queue messages that every subscription of their topic has settled are removed once they
    /// are this many seconds old (dead letters keep their own copy); 0 keeps every message.
    pub queue_retention_secs: u64,
    /// Most dead letters one step of a redrive moves (1 to 1000): a redrive of any size is
    /// proposed as bounded steps.
    pub redrive_step: usize,
    /// Largest clock offset to the other voters a node may have and still lead: a node off from
    /// more than half of them by more does not campaign and gives up leadership.
    pub max_clock_offset_ms: u64,
    /// Which requests get an access line: `all`, `errors` (5xx only) or `off`. A flash sale's
    /// sold-out answers each cost a line under `all`.
    pub access_log: api::access_log::AccessLog,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            data_dir: PathBuf::from("./orderq-data"),
            api_addr: "127.0.0.1:8080".into(),
            raft_addr: "127.0.0.1:9080".into(),
            peers: Vec::new(),
            admin_token: Secret::default(),
            admin_token_file: None,
            cluster_secret: Secret::default(),
            cluster_secret_file: None,
            metrics_token: Secret::default(),
            metrics_token_file: None,
            clients: Vec::new(),
            webhook_allow: Vec::new(),
            payment: Payment::default(),
            tls: Tls::default(),
            election_timeout_ms: 1000,
            heartbeat_ms: 200,
            snapshot_every: 10_000,
            keep_logs_after_snapshot: 1_000,
            max_batch: 512,
            max_batch_bytes: 2 << 20,
            max_in_flight: 1,
            default_pay_within_secs: 86_400,
            join: false,
            changes_retention_secs: 7 * 86_400,
            changes_retention_count: 10_000_000,
            seckill_pay_within_secs: 900,
            queue_depth: 4096,
            seckill_queue_depth: 2048,
            queue_retention_secs: 3 * 86_400,
            redrive_step: 1_000,
            max_clock_offset_ms: 500,
            access_log: api::access_log::AccessLog::All,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`Config`].
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A secret file could not be used.
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// `orderq serve` flags. Each has an `ORDERQ_<KEY>` environment variable; flags beat the
/// environment, which beats the file.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "ORDERQ_CONFIG")]
    pub config: Option<PathBuf>,
    /// This node's id.
    #[arg(long, env = "ORDERQ_NODE_ID")]
    pub node_id: Option<u64>,
    /// Data directory.
    #[arg(long, env = "ORDERQ_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Public API address (host:port).
    #[arg(long, env = "ORDERQ_API_ADDR")]
    pub api_addr: Option<String>,
    /// Raft peer address (host:port).
    #[arg(long, env = "ORDERQ_RAFT_ADDR")]
    pub raft_addr: Option<String>,
    /// An initial voter, `ID=RAFT_ADDR,API_ADDR`; repeat for each (this node included).
    /// The environment variable takes them separated by spaces.
    #[arg(long = "peer", env = "ORDERQ_PEERS", value_delimiter = ' ')]
    pub peers: Vec<String>,
    /// Bearer token for /admin/*. Prefer the environment variable or --admin-token-file: a
    /// value on the command line is visible to every user of the machine.
    #[arg(long, env = "ORDERQ_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// A file holding the admin token.
    #[arg(long, env = "ORDERQ_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Secret peers present on the Raft port. Prefer the environment variable or
    /// --cluster-secret-file.
    #[arg(long, env = "ORDERQ_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// A file holding the cluster secret.
    #[arg(long, env = "ORDERQ_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Address ranges webhooks may reach (`10.0.0.0/8,2001:db8::/32`); none: anywhere but
    /// link-local addresses.
    #[arg(long, env = "ORDERQ_WEBHOOK_ALLOW", value_delimiter = ',')]
    pub webhook_allow: Vec<Cidr>,
    /// Bearer token for /metrics (none: /metrics is open).
    #[arg(long, env = "ORDERQ_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// A file holding the metrics token.
    #[arg(long, env = "ORDERQ_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// The payment provider's refund endpoint.
    #[arg(long, env = "ORDERQ_PAYMENT_REFUND_URL")]
    pub payment_refund_url: Option<String>,
    /// Where the payment provider answers a refund's status (`GET {url}/{order id}`).
    #[arg(long, env = "ORDERQ_PAYMENT_REFUND_STATUS_URL")]
    pub payment_refund_status_url: Option<String>,
    /// The key refund calls to the payment provider are signed with.
    #[arg(long, env = "ORDERQ_PAYMENT_SIGNING_SECRET", hide_env_values = true)]
    pub payment_signing_secret: Option<String>,
    /// A file holding the key refund calls are signed with.
    #[arg(long, env = "ORDERQ_PAYMENT_SIGNING_SECRET_FILE")]
    pub payment_signing_secret_file: Option<PathBuf>,
    /// Extra roots (PEM) trusted for outbound https, beside the system's.
    #[arg(long, env = "ORDERQ_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// Certificate chain (PEM) the API serves https with, and peers are shown.
    #[arg(long, env = "ORDERQ_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert-file.
    #[arg(long, env = "ORDERQ_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// Cluster CA (PEM): the Raft port requires client certificates signed by it (mutual TLS).
    #[arg(long, env = "ORDERQ_TLS_PEER_CA_FILE")]
    pub tls_peer_ca_file: Option<PathBuf>,
    /// Election timeout in milliseconds.
    #[arg(long, env = "ORDERQ_ELECTION_TIMEOUT_MS")]
    pub election_timeout_ms: Option<u64>,
    /// Heartbeat interval in milliseconds.
    #[arg(long, env = "ORDERQ_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u64>,
    /// Log entries between snapshots.
    #[arg(long, env = "ORDERQ_SNAPSHOT_EVERY")]
    pub snapshot_every: Option<u64>,
    /// Log entries kept behind a snapshot.
    #[arg(long, env = "ORDERQ_KEEP_LOGS_AFTER_SNAPSHOT")]
    pub keep_logs_after_snapshot: Option<u64>,
    /// Most commands per Raft entry (1 = batching off).
    #[arg(long, env = "ORDERQ_MAX_BATCH")]
    pub max_batch: Option<usize>,
    /// Most bytes of commands per Raft entry and per append to a peer.
    #[arg(long, env = "ORDERQ_MAX_BATCH_BYTES")]
    pub max_batch_bytes: Option<usize>,
    /// Most batches proposed at once.
    #[arg(long, env = "ORDERQ_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,
    /// Default payment window of an order, in seconds.
    #[arg(long, env = "ORDERQ_DEFAULT_PAY_WITHIN_SECS")]
    pub default_pay_within_secs: Option<u64>,
    /// Join an existing cluster instead of initialising one: start the node, then add it with
    /// `POST /admin/cluster/learners` on any member. No --peer needed. Never reuse the id of a
    /// node whose data directory was wiped.
    #[arg(long, env = "ORDERQ_JOIN")]
    pub join: bool,
    /// Keep change-stream records at most this many seconds on this node (0 = no age limit).
    #[arg(long, env = "ORDERQ_CHANGES_RETENTION_SECS")]
    pub changes_retention_secs: Option<u64>,
    /// Keep at most this many change-stream records on this node (0 = no count limit).
    #[arg(long, env = "ORDERQ_CHANGES_RETENTION_COUNT")]
    pub changes_retention_count: Option<u64>,
    /// Payment window of a flash-sale order, in seconds.
    #[arg(long, env = "ORDERQ_SECKILL_PAY_WITHIN_SECS")]
    pub seckill_pay_within_secs: Option<u64>,
    /// Most normal writes queued or in flight before 429.
    #[arg(long, env = "ORDERQ_QUEUE_DEPTH")]
    pub queue_depth: Option<usize>,
    /// Most flash-sale purchases queued or in flight before 429.
    #[arg(long, env = "ORDERQ_SECKILL_QUEUE_DEPTH")]
    pub seckill_queue_depth: Option<usize>,
    /// Remove settled queue messages after this many seconds (0 = keep them).
    #[arg(long, env = "ORDERQ_QUEUE_RETENTION_SECS")]
    pub queue_retention_secs: Option<u64>,
    /// Most dead letters one redrive step moves (1 to 1000).
    #[arg(long, env = "ORDERQ_REDRIVE_STEP")]
    pub redrive_step: Option<usize>,
    /// Largest clock offset to the other voters a node may have and still lead, in ms.
    #[arg(long, env = "ORDERQ_MAX_CLOCK_OFFSET_MS")]
    pub max_clock_offset_ms: Option<u64>,
    /// Which requests get an access line: all, errors (5xx only) or off.
    #[arg(long, env = "ORDERQ_ACCESS_LOG")]
    pub access_log: Option<api::access_log::AccessLog>,
}

/// Parses `ID=RAFT_ADDR,API_ADDR`.
pub fn parse_peer(spec: &str) -> Result<Peer, ConfigError> {
    let bad = || ConfigError::Invalid(format!("peer {spec:?} is not ID=RAFT_ADDR,API_ADDR"));
    let (id, addrs) = spec.split_once('=').ok_or_else(bad)?;
    let (raft_addr, api_addr) = addrs.split_once(',').ok_or_else(bad)?;
    Ok(Peer {
        id: id.trim().parse().map_err(|_| bad())?,
        raft_addr: raft_addr.trim().to_string(),
        api_addr: api_addr.trim().to_string(),
    })
}

impl Config {
    /// The configuration from the file named by `args` (if any), overridden by `args`.
    pub fn load(args: &ServeArgs) -> Result<Self, ConfigError> {
        let mut config = match &args.config {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
        };
        macro_rules! override_with {
            ($($field:ident),*) => {$(if let Some(v) = &args.$field { config.$field = v.clone(); })*};
        }
        override_with!(
            node_id,
            data_dir,
            api_addr,
            raft_addr,
            election_timeout_ms,
            heartbeat_ms,
            snapshot_every,
            keep_logs_after_snapshot,
            max_batch,
            max_batch_bytes,
            max_in_flight,
            default_pay_within_secs,
            changes_retention_secs,
            changes_retention_count,
            seckill_pay_within_secs,
            queue_depth,
            seckill_queue_depth,
            queue_retention_secs,
            redrive_step,
            max_clock_offset_ms,
            access_log
        );
        for (file, flag) in [
            (&mut config.admin_token_file, &args.admin_token_file),
            (&mut config.cluster_secret_file, &args.cluster_secret_file),
            (&mut config.metrics_token_file, &args.metrics_token_file),
        ] {
            if flag.is_some() {
                file.clone_from(flag);
            }
        }
        for (secret, flag) in [
            (&mut config.admin_token, &args.admin_token),
            (&mut config.cluster_secret, &args.cluster_secret),
            (&mut config.metrics_token, &args.metrics_token),
        ] {
            if let Some(value) = flag {
                *secret = Secret::from(value.clone());
            }
        }
        if !args.webhook_allow.is_empty() {
            config.webhook_allow.clone_from(&args.webhook_allow);
        }
        if args.join {
            config.join = true;
        }
        if let Some(url) = &args.payment_refund_url {
            config.payment.refund_url = url.clone();
        }
        if let Some(url) = &args.payment_refund_status_url {
            config.payment.refund_status_url = url.clone();
        }
        if let Some(key) = &args.payment_signing_secret {
            config.payment.signing_secret = Secret::from(key.clone());
        }
        if args.payment_signing_secret_file.is_some() {
            config
                .payment
                .signing_secret_file
                .clone_from(&args.payment_signing_secret_file);
        }
        for (file, flag) in [
            (&mut config.tls.ca_file, &args.tls_ca_file),
            (&mut config.tls.cert_file, &args.tls_cert_file),
            (&mut config.tls.key_file, &args.tls_key_file),
            (&mut config.tls.peer_ca_file, &args.tls_peer_ca_file),
        ] {
            if flag.is_some() {
                file.clone_from(flag);
            }
        }
        if !args.peers.is_empty() {
            config.peers = args
                .peers
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| parse_peer(s))
                .collect::<Result<_, _>>()?;
        }
        config.read_secret_files()?;
        config.validate()?;
        Ok(config)
    }

    /// Fills each secret named by a `*_file` setting from its file.
    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        self.admin_token
            .fill_from_file(self.admin_token_file.as_deref(), "admin_token")?;
        self.cluster_secret
            .fill_from_file(self.cluster_secret_file.as_deref(), "cluster_secret")?;
        self.metrics_token
            .fill_from_file(self.metrics_token_file.as_deref(), "metrics_token")?;
        self.payment.signing_secret.fill_from_file(
            self.payment.signing_secret_file.as_deref(),
            "payment.signing_secret",
        )?;
        for client in &mut self.clients {
            client
                .token
                .fill_from_file(client.token_file.as_deref(), "token")?;
        }
        Ok(())
    }

    /// Where webhooks may go, as the API and the scheduler check it.
    pub fn webhook_policy(&self) -> api::webhook_target::WebhookPolicy {
        api::webhook_target::WebhookPolicy::new(self.webhook_allow.clone())
    }

    /// The configured clients as the API checks them.
    pub fn client_tokens(&self) -> Vec<ClientToken> {
        self.clients
            .iter()
            .map(|c| ClientToken {
                name: c.name.clone(),
                token: c.token.expose().to_string(),
                scopes: c.scopes.clone(),
            })
            .collect()
    }

    fn validate(&mut self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        for (name, addr) in [("api_addr", &self.api_addr), ("raft_addr", &self.raft_addr)] {
            if addr.parse::<SocketAddr>().is_err() {
                return invalid(format!("{name} {addr:?} is not host:port with an IP"));
            }
        }
        if self.peers.is_empty() && !self.join {
            self.peers.push(Peer {
                id: self.node_id,
                raft_addr: self.raft_addr.clone(),
                api_addr: self.api_addr.clone(),
            });
        }
        if !self.join && !self.peers.iter().any(|p| p.id == self.node_id) {
            return invalid(format!("node_id {} is not among the peers", self.node_id));
        }
        if self.heartbeat_ms == 0 || self.election_timeout_ms <= self.heartbeat_ms {
            return invalid("election_timeout_ms must exceed heartbeat_ms > 0".into());
        }
        if self.max_batch == 0 || self.max_in_flight == 0 || self.snapshot_every == 0 {
            return invalid(
                "max_batch, max_in_flight and snapshot_every must be at least 1".into(),
            );
        }
        if self.max_batch_bytes < 4096 {
            return invalid("max_batch_bytes must be at least 4096".into());
        }
        if self.default_pay_within_secs == 0 || self.seckill_pay_within_secs == 0 {
            return invalid(
                "default_pay_within_secs and seckill_pay_within_secs must be at least 1".into(),
            );
        }
        if !(1..=sm::queue::MAX_REDRIVE).contains(&self.redrive_step) {
            return invalid(format!(
                "redrive_step must be between 1 and {}",
                sm::queue::MAX_REDRIVE
            ));
        }
        if self.queue_depth == 0 || self.seckill_queue_depth == 0 {
            return invalid("queue_depth and seckill_queue_depth must be at least 1".into());
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return invalid("[tls] cert_file and key_file go together".into());
        }
        if self.tls.peer_ca_file.is_some() && self.tls.cert_file.is_none() {
            return invalid("[tls] peer_ca_file needs cert_file and key_file".into());
        }
        let mut names = std::collections::HashSet::new();
        for client in &self.clients {
            if client.name.trim().is_empty() {
                return invalid("every [[clients]] entry needs a name".into());
            }
            if !names.insert(client.name.as_str()) {
                return invalid(format!("client name {:?} is used twice", client.name));
            }
            if client.token.is_empty() {
                return invalid(format!(
                    "client {:?} has no token or token_file",
                    client.name
                ));
            }
            if client.scopes.is_empty() {
                return invalid(format!("client {:?} has no scopes", client.name));
            }
        }
        for (i, a) in self.clients.iter().enumerate() {
            if self.clients[i + 1..].iter().any(|b| b.token == a.token) {
                return invalid(format!(
                    "client {:?} shares its token with another client",
                    a.name
                ));
            }
        }
        Ok(())
    }

    /// Whether this node initialises a new cluster on its first start: it does not join one and
    /// has the lowest id among the peers.
    pub fn initialises(&self) -> bool {
        !self.join && self.node_id == self.initialiser()
    }

    /// The initial voters with their addresses, as a membership names them.
    pub fn members(&self) -> BTreeMap<u64, PeerAddr> {
        self.peers
            .iter()
            .map(|p| {
                (
                    p.id,
                    PeerAddr {
                        raft_addr: p.raft_addr.clone(),
                        api_addr: p.api_addr.clone(),
                    },
                )
            })
            .collect()
    }

    /// The node that initialises a new cluster: the lowest id among the peers.
    pub fn initialiser(&self) -> u64 {
        self.peers
            .iter()
            .map(|p| p.id)
            .min()
            .unwrap_or(self.node_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.toml");
        std::fs::write(
            &path,
            r#"
node_id = 2
api_addr = "127.0.0.1:8082"
raft_addr = "127.0.0.1:9082"
cluster_secret = "s"
[[peers]]
id = 1
raft_addr = "127.0.0.1:9081"
api_addr = "127.0.0.1:8081"
[[peers]]
id = 2
raft_addr = "127.0.0.1:9082"
api_addr = "127.0.0.1:8082"
[payment]
refund_url = "http://127.0.0.1:1/refund"
refund_status_url = "http://127.0.0.1:1/refunds"
"#,
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            max_batch: Some(1),
            ..Default::default()
        };
        let config = Config::load(&args).unwrap();
        assert_eq!(config.node_id, 2);
        assert_eq!(config.max_batch, 1);
        assert_eq!(config.initialiser(), 1);
        assert_eq!(config.payment.refund_url, "http://127.0.0.1:1/refund");
        assert_eq!(
            config.payment.refund_status_url,
            "http://127.0.0.1:1/refunds"
        );
    }

    #[test]
    fn the_access_log_comes_from_the_file_and_the_flag() {
        use api::access_log::AccessLog;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.toml");
        std::fs::write(&path, "access_log = \"errors\"\n").unwrap();
        let from_file = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        assert_eq!(
            Config::load(&from_file).unwrap().access_log,
            AccessLog::Errors
        );
        let flag = ServeArgs {
            config: Some(path.clone()),
            access_log: Some(AccessLog::Off),
            ..Default::default()
        };
        assert_eq!(Config::load(&flag).unwrap().access_log, AccessLog::Off);
        std::fs::write(&path, "access_log = \"some\"\n").unwrap();
        assert!(
            Config::load(&from_file).is_err(),
            "an unknown value is refused"
        );
        assert_eq!(
            Config::load(&ServeArgs::default()).unwrap().access_log,
            AccessLog::All
        );
    }

    #[test]
    fn defaults_make_a_single_node() {
        let config = Config::load(&ServeArgs::default()).unwrap();
        assert_eq!(config.peers.len(), 1);
        assert_eq!(config.api_addr, "127.0.0.1:8080");
        assert_eq!(config.default_pay_within_secs, 86_400);
    }

    #[test]
    fn a_joining_node_needs_no_peers_and_never_initialises() {
        let args = ServeArgs {
            node_id: Some(4),
            join: true,
            cluster_secret: Some("s".into()),
            ..Default::default()
        };
        let config = Config::load(&args).unwrap();
        assert!(config.join);
        assert!(config.peers.is_empty());
        assert!(!config.initialises());
        assert!(Config::load(&ServeArgs::default()).unwrap().initialises());
    }

    #[test]
    fn clients_take_their_tokens_from_files_and_must_be_distinct() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "from-file\n").unwrap();
        let path = dir.path().join("n.toml");
        let write = |clients: &str| {
            std::fs::write(
                &path,
                clients.replace("TOKEN_FILE", &token.display().to_string()),
            )
            .unwrap();
        };
        let args = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        write(
            r#"
[[clients]]
name = "a"
token_file = "TOKEN_FILE"
scopes = ["orders:read", "publish:shop.*"]
[[clients]]
name = "b"
token = "inline"
scopes = ["admin"]
"#,
        );
        let config = Config::load(&args).unwrap();
        let tokens = config.client_tokens();
        assert_eq!(tokens[0].token, "from-file");
        assert_eq!(tokens[1].scopes, vec![Scope::Admin]);
        assert!(
            !format!("{config:?}").contains("inline"),
            "Debug hides tokens"
        );
        write("[[clients]]\nname = \"a\"\ntoken = \"t\"\nscopes = [\"orders:delete\"]\n");
        assert!(Config::load(&args).is_err(), "unknown scope");
        write(
            "[[clients]]\nname = \"a\"\ntoken = \"t\"\nscopes = [\"seckill\"]\n\
             [[clients]]\nname = \"b\"\ntoken = \"t\"\nscopes = [\"seckill\"]\n",
        );
        assert!(Config::load(&args).is_err(), "shared token");
        write("[[clients]]\nname = \"a\"\nscopes = [\"seckill\"]\n");
        assert!(Config::load(&args).is_err(), "no token");
    }

    #[test]
    fn tls_comes_from_the_file_and_flags_and_must_be_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.toml");
        std::fs::write(
            &path,
            "[tls]\nca_file = \"/ca.pem\"\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            tls_ca_file: Some(PathBuf::from("/other-ca.pem")),
            ..Default::default()
        };
        let config = Config::load(&args).unwrap();
        assert_eq!(config.tls.ca_file, Some(PathBuf::from("/other-ca.pem")));
        assert_eq!(config.tls.cert_file, Some(PathBuf::from("/c.pem")));
        std::fs::write(&path, "[tls]\ncert_file = \"/c.pem\"\n").unwrap();
        assert!(
            Config::load(&args).is_err(),
            "a certificate without its key"
        );
        let peer_ca_alone = ServeArgs {
            tls_peer_ca_file: Some(PathBuf::from("/ca.pem")),
            ..Default::default()
        };
        assert!(
            Config::load(&peer_ca_alone).is_err(),
            "mTLS without a certificate"
        );
        assert!(toml::from_str::<Config>("[tls]\nbogus = 1").is_err());
    }

    #[test]
    fn bad_peers_and_unknown_keys_are_refused() {
        assert!(parse_peer("x=1,2").is_err());
        assert!(parse_peer("1=127.0.0.1:1").is_err());
        assert!(toml::from_str::<Config>("bogus = 1").is_err());
    }
}
