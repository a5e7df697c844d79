//! [`Subscribers`]: the harness's end of the durable queue. A webhook receiver subscribed to
//! `order.paid` and to the workload's topic, and a fake payment provider behind the nodes'
//! `[payment] refund_url`; both fail a share of their calls, so deliveries and refunds are
//! retried while the faults play. A pull group on the workload's topic is consumed by the
//! harness's [`PullConsumers`]. After the run, [`Subscribers::drain`] waits until no group
//! has anything left to deliver, and [`Subscribers::deliveries`] hands what arrived to the
//! checkers.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::check::Deliveries;
use super::pull_consumers::{PullConsumers, PULL_GROUP};
use crate::client::Request;
use crate::cluster::Cluster;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::queue::SubscriptionStats;
use crate::receiver::{Receiver, ReceiverOptions};
use crate::wait::{poll_until, retry_while_unavailable};

/// The group delivering `order.paid` to the webhook receiver.
pub const PAID_GROUP: &str = "chaos.paid";

/// The group delivering the workload's published topic to the webhook receiver.
pub const PUBLISHED_GROUP: &str = "chaos.published";

/// The server's built-in refund group (`sm::refund::REFUND_GROUP`): the harness sets it up
/// itself, with short backoffs, so refunds settle within a run.
pub const REFUND_GROUP: &str = "payment.refund";

/// The topic the order life cycle publishes on payment.
pub const PAID_TOPIC: &str = "order.paid";

/// The topic refunds are published on (the refund group's topic).
const REFUND_TOPIC: &str = "order.refund_requested";

/// Share of webhook calls answered 500: every delivery is retried now and then.
const WEBHOOK_FAIL_RATE: f64 = 0.2;

/// Attempts before a webhook message is dead. The contract allows a dead letter instead of a
/// delivery; with a receiver that fails one call in five, a thousand failures in a row do not
/// happen, so a dead letter here means the cluster gave up wrongly (the checkers count it
/// missing).
const WEBHOOK_MAX_ATTEMPTS: u32 = 1000;

/// Share of refund calls the fake provider answers 500.
const PROVIDER_FAIL_RATE: f64 = 0.3;

/// Attempts before a refund gives up: low enough that some refunds end `refund_failed`
/// (0.3^4, about one in a hundred), so both ends of a refund are exercised.
const REFUND_MAX_ATTEMPTS: u32 = 4;

/// How long one push may take before it counts as a failed attempt.
const PUSH_TIMEOUT_MS: u64 = 2000;

/// How long subscribing may take (the cluster has just started: a leader is known).
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the queue may take to drain after healing: delayed messages, backoffs of up to a
/// second, and refunds going through the provider.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// The webhook receiver and the payment provider of a run.
pub struct Subscribers {
    /// Receives `order.paid` ([`PAID_GROUP`]) and the published topic ([`PUBLISHED_GROUP`]).
    webhooks: Receiver,
    /// The nodes' `refund_url`: records every refund call, whether it answered 2xx.
    provider: Receiver,
    /// The pull consumers of [`PULL_GROUP`], once subscribed.
    pulls: Option<PullConsumers>,
    /// How the webhook receiver answered before it went dark.
    webhook_options: ReceiverOptions,
}

impl Subscribers {
    /// Starts both servers on free ports of 127.0.0.1 (the nodes reach them over loopback).
    pub async fn start() -> Result<Self> {
        let webhooks = Receiver::start(
            0,
            ReceiverOptions {
                fail_rate: WEBHOOK_FAIL_RATE,
                ..ReceiverOptions::default()
            },
        )
        .await?;
        let provider = Receiver::start(
            0,
            ReceiverOptions {
                fail_rate: PROVIDER_FAIL_RATE,
                ..ReceiverOptions::default()
            },
        )
        .await?;
        Ok(Subscribers {
            webhook_options: webhooks.options(),
            webhooks,
            provider,
            pulls: None,
        })
    }

    /// The node flags that point refunds at the provider (`[payment] refund_url`).
    pub fn node_args(&self) -> Vec<String> {
        vec!["--payment-refund-url".to_owned(), self.provider.url()]
    }

    /// The node environment that points refund status lookups at the provider (`[payment]
    /// refund_status_url`); the environment rather than a flag, so a binary that predates the
    /// setting still starts (and is judged without the lookup).
    pub fn node_env(&self) -> Vec<(String, String)> {
        vec![(
            "ORDERQ_PAYMENT_REFUND_STATUS_URL".to_owned(),
            self.provider.status_url(),
        )]
    }

    /// Creates the three push groups, `start: earliest`, before the workload begins: every
    /// `order.paid`, every published message and every refund of the run is theirs.
    pub async fn subscribe(&mut self, cluster: &Cluster, topic: &str) -> Result<()> {
        let webhook = |topic: &str| {
            json!({
                "topic": topic,
                "push": {"url": self.webhooks.url(), "timeout_ms": PUSH_TIMEOUT_MS},
                "max_attempts": WEBHOOK_MAX_ATTEMPTS,
                "backoff": {"initial_ms": 50, "max_ms": 1000},
                "start": "earliest",
            })
        };
        let refunds = json!({
            "topic": REFUND_TOPIC,
            "push": {"url": self.provider.url(), "timeout_ms": PUSH_TIMEOUT_MS},
            "max_attempts": REFUND_MAX_ATTEMPTS,
            "backoff": {"initial_ms": 100, "max_ms": 400},
            "start": "earliest",
        });
        for (group, body) in [
            (PAID_GROUP, webhook(PAID_TOPIC)),
            (PUBLISHED_GROUP, webhook(topic)),
            (REFUND_GROUP, refunds),
            (
                PULL_GROUP,
                json!({"topic": topic, "max_attempts": WEBHOOK_MAX_ATTEMPTS, "start": "earliest"}),
            ),
        ] {
            let leader = cluster.wait_for_leader().await?;
            let request =
                Request::json(Method::PUT, format!("/admin/subscriptions/{group}"), &body);
            retry_while_unavailable(&format!("subscription {group}"), SUBSCRIBE_TIMEOUT, || {
                cluster
                    .client(leader)
                    .call::<serde_json::Value>(request.clone())
            })
            .await?;
        }
        self.pulls = Some(PullConsumers::start(cluster.clients()));
        Ok(())
    }

    /// The `consumer-crash` fault: `consumers` pull consumers lease messages and die without
    /// acking; answers how many messages they took.
    pub async fn crash_pull_consumers(&self, cluster: &Cluster, consumers: u64) -> usize {
        match &self.pulls {
            Some(pulls) => pulls.crash(&cluster.clients(), consumers).await,
            None => 0,
        }
    }

    /// The `receiver-kill` fault: the webhook receiver slows down so calls are in flight, then
    /// dies with them (they are not acted on and get no answer).
    pub async fn kill_webhook_receiver(&self) {
        self.webhooks.set_options(ReceiverOptions {
            latency_ms: 300,
            ..self.webhook_options
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        self.webhooks.go_dark();
    }

    /// Heals `receiver-kill`: the webhook receiver is back, answering as before.
    pub fn restart_webhook_receiver(&self) {
        self.webhooks.set_options(self.webhook_options);
        self.webhooks.come_back();
    }

    /// Waits until every group the harness made has nothing left to deliver (no backlog, nothing
    /// in flight), asking the running nodes in turn; answers the groups' last figures.
    pub async fn drain(&self, cluster: &Cluster) -> Result<Vec<SubscriptionStats>> {
        let nodes = cluster.running_ids();
        if nodes.is_empty() {
            return Err(Error::Usage(
                "no running node to ask about the queue".to_owned(),
            ));
        }
        let mut asked = 0usize;
        poll_until("every subscription to drain", DRAIN_TIMEOUT, || {
            let client = cluster.client(nodes[asked % nodes.len()]).clone();
            asked += 1;
            async move {
                let all = client
                    .subscriptions(false)
                    .await
                    .map_err(|e| e.to_string())?;
                let ours: Vec<SubscriptionStats> = all
                    .into_iter()
                    .filter(|s| {
                        [PAID_GROUP, PUBLISHED_GROUP, REFUND_GROUP, PULL_GROUP]
                            .contains(&s.group.as_str())
                    })
                    .collect();
                if ours.len() < 4 {
                    return Err(format!("only these groups exist: {ours:?}"));
                }
                let pending: Vec<String> = ours
                    .iter()
                    .filter(|s| s.backlog > 0 || s.in_flight > 0)
                    .map(|s| {
                        format!(
                            "{}: backlog {}, in flight {}",
                            s.group, s.backlog, s.in_flight
                        )
                    })
                    .collect();
                if pending.is_empty() {
                    Ok(ours)
                } else {
                    Err(pending.join("; "))
                }
            }
        })
        .await
    }

    /// Everything both servers received so far, with the groups' figures (`None` when the
    /// queue did not drain: the checkers then still judge what arrived).
    pub fn deliveries(&self, groups: Option<Vec<SubscriptionStats>>) -> Deliveries {
        Deliveries {
            drained: groups.is_some(),
            webhook_calls: self.webhooks.received(),
            provider_calls: self.provider.received(),
            groups: groups.unwrap_or_default(),
            pull_leases: self
                .pulls
                .as_ref()
                .map(PullConsumers::leases)
                .unwrap_or_default(),
        }
    }
}
