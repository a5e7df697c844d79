//! [`PullConsumers`]: the harness's pull consumers of the workload's topic (group
//! [`PULL_GROUP`]). One healthy consumer receives and acks all through the run and the drain;
//! the `consumer-crash` fault adds consumers that lease messages and die without acking. Every
//! lease is logged, so the `pulls` checker can tell that each abandoned message was delivered
//! again and that every acknowledged publish reached the group.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::client::{NodeClient, Request};

/// The pull group on the workload's topic.
pub const PULL_GROUP: &str = "chaos.pulled";

/// How long the healthy consumer's leases last: long enough to ack, short enough that a lost
/// ack is delivered again within the drain.
const HEALTHY_VISIBILITY_MS: u64 = 5_000;

/// How long a crashing consumer's leases last before the messages must come again.
const CRASHED_VISIBILITY_MS: u64 = 2_000;

/// How long crashing consumers keep leasing before they die.
const CRASHING_FOR: Duration = Duration::from_secs(2);

/// One lease a consumer got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The message id.
    pub message_id: String,
    /// The publish it came from (the payload's `publish` field).
    pub publish: Option<String>,
    /// Wall-clock milliseconds since the epoch when the lease was received.
    pub at_ms: i64,
    /// Whether the consumer died holding it (never acked).
    pub abandoned: bool,
}

/// The consumers and their shared log.
pub struct PullConsumers {
    /// Every lease so far, in the order received.
    log: Arc<Mutex<Vec<Lease>>>,
    /// The healthy consumer's loop.
    healthy: JoinHandle<()>,
}

impl Drop for PullConsumers {
    fn drop(&mut self) {
        self.healthy.abort();
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Receives up to `max` messages through `client` with leases of `visibility_ms`, logging them
/// (as `abandoned` when the consumer will not ack); answers their receipts.
async fn receive(
    client: &NodeClient,
    log: &Mutex<Vec<Lease>>,
    max: u64,
    visibility_ms: u64,
    abandoned: bool,
) -> Vec<String> {
    let request = Request::json(
        Method::POST,
        format!("/v1/subscriptions/{PULL_GROUP}/receive"),
        &json!({"max": max, "wait_ms": 1000, "visibility_ms": visibility_ms}),
    );
    let Ok(response) = client.send(request).await else {
        return Vec::new();
    };
    if !response.is_success() {
        return Vec::new();
    }
    let body = response.json();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let mut receipts = Vec::new();
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    for message in messages {
        log.push(Lease {
            message_id: message["id"].as_str().unwrap_or_default().to_owned(),
            publish: message["payload"]["publish"].as_str().map(str::to_owned),
            at_ms: now_ms(),
            abandoned,
        });
        if let Some(receipt) = message["receipt"].as_str() {
            receipts.push(receipt.to_owned());
        }
    }
    receipts
}

impl PullConsumers {
    /// Starts the healthy consumer, going round `clients` (one per node; a dead node just
    /// answers nothing). The group must exist.
    pub fn start(clients: Vec<NodeClient>) -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = log.clone();
        let healthy = tokio::spawn(async move {
            let mut turn = 0usize;
            loop {
                let client = &clients[turn % clients.len().max(1)];
                turn += 1;
                let receipts = receive(client, &shared, 32, HEALTHY_VISIBILITY_MS, false).await;
                if receipts.is_empty() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                // A lost ack only means the message comes again.
                let _ = client
                    .send(Request::json(
                        Method::POST,
                        format!("/v1/subscriptions/{PULL_GROUP}/ack"),
                        &json!({"receipts": receipts}),
                    ))
                    .await;
            }
        });
        PullConsumers { log, healthy }
    }

    /// `consumers` consumers lease messages through `clients` for [`CRASHING_FOR`] (competing
    /// with the healthy one) and die holding them; answers how many messages they took.
    pub async fn crash(&self, clients: &[NodeClient], consumers: u64) -> usize {
        let until = tokio::time::Instant::now() + CRASHING_FOR;
        let mut taken = 0;
        let mut turn = 0usize;
        while tokio::time::Instant::now() < until {
            for i in 0..consumers {
                let client = &clients[(turn + i as usize) % clients.len().max(1)];
                taken += receive(client, &self.log, 16, CRASHED_VISIBILITY_MS, true)
                    .await
                    .len();
            }
            turn += 1;
        }
        taken
    }

    /// Every lease so far.
    pub fn leases(&self) -> Vec<Lease> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
