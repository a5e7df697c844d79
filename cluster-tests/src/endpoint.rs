//! [`Endpoint`]: where a test's requests go, one node ([`NodeClient`]) or any running node of a
//! [`Cluster`], and the queue and refund verbs written once for both.
//!
//! A test says `cluster.publish(..)` when any node will do (the request is retried through
//! elections and busy nodes, as a user would), and `cluster.client(id).receive(..)` when the
//! node matters (a follower forwarding to the leader, a leader cut off from its quorum). Either
//! way the same request of [`crate::requests`] is sent and the same answer decoded: a 2xx into
//! the contract's type, anything else into [`crate::Error::Api`]. A test that looks at a refusal
//! sends the request itself.
//!
//! The verbs are `async fn`s of a trait: tests await them in place, and nothing spawns them, so
//! their futures need not be `Send`.

#![allow(async_fn_in_trait)]

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::json;

use crate::client::{decode, ApiResponse, NodeClient, Request};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::model::{Order, OrderState};
use crate::queue::{
    Acked, DeadLetterPage, Leased, Nacked, NewMessage, Published, Receive, Redriven, Removed,
    Subscribed, Subscription, SubscriptionList, SubscriptionStats,
};
use crate::requests;
use crate::wait::poll_until;

/// Something that answers the contract's requests, with the verbs tests use on it.
///
/// # To ensure correctness
/// An implementer answers what a node answered, undecoded, and fails only when no answer came.
/// Retrying a request is its own business (a [`Cluster`] retries through unavailable nodes, a
/// [`NodeClient`] does not), never a verb's: a verb sends once, so a test on one node sees that
/// node's answer. Only the waits (`wait_*`) ask again, until their condition holds.
pub trait Endpoint {
    /// Sends `request` and answers whatever came back.
    async fn answer(&self, request: Request) -> Result<ApiResponse>;

    /// `request` in words for an error: its method, and where it went.
    fn describe(&self, request: &Request) -> String;

    /// Sends `request` and decodes a 2xx body as `T`; any other status is
    /// [`crate::Error::Api`].
    async fn call<T: DeserializeOwned>(&self, request: Request) -> Result<T> {
        let label = self.describe(&request);
        decode(label, self.answer(request).await?)
    }

    /// `POST /v1/orders/{id}/refund`: the order as it stands once the refund was asked for
    /// (`refund_requested`, answered 202).
    async fn refund(&self, id: &str, reason: &str) -> Result<Order> {
        self.call(requests::refund(id, reason)).await
    }

    /// `GET /v1/orders/{id}`, linearizable.
    async fn order(&self, id: &str) -> Result<Order> {
        self.call(requests::get_order(id)).await
    }

    /// Waits until order `id` reads (linearizably) in `state`; answers it. The timeout names
    /// the state it was last seen in; a read refused for good (404, ...) fails at once.
    async fn wait_order_state(
        &self,
        id: &str,
        state: OrderState,
        limit: Duration,
    ) -> Result<Order> {
        poll_until(&format!("order {id} to be {state:?}"), limit, || async {
            match self.order(id).await {
                Ok(order) if order.state == state => Ok(Ok(order)),
                Ok(order) => Err(format!("{:?}", order.state)),
                Err(e) if e.is_retryable() => Err(e.to_string()),
                Err(e) => Ok(Err(e)),
            }
        })
        .await?
    }

    /// `POST /v1/topics/{topic}/messages`.
    async fn publish(&self, topic: &str, message: &NewMessage) -> Result<Published> {
        self.call(requests::publish(topic, message)).await
    }

    /// Publishes `n` messages to `topic`, one after another: payload `{"n": i}`, key
    /// `k{i % keys}` (so `keys` distinct keys), idempotency key `{topic}-{i}` so a retry through
    /// another node publishes nothing twice.
    async fn publish_numbered(&self, topic: &str, n: usize, keys: usize) -> Result<Vec<Published>> {
        let mut published = Vec::with_capacity(n);
        for i in 0..n {
            let message = NewMessage::keyed(format!("k{}", i % keys.max(1)), json!({ "n": i }));
            let request =
                requests::publish(topic, &message).idempotency_key(&format!("{topic}-{i}"));
            published.push(self.call(request).await?);
        }
        Ok(published)
    }

    /// `PUT /admin/subscriptions/{group}`: creates a push or pull group as `subscription` says,
    /// or changes its settings.
    async fn subscribe(&self, group: &str, subscription: &Subscription) -> Result<Subscribed> {
        self.call(requests::subscribe(group, subscription)).await
    }

    /// A pull group `group` on `topic` with the server's defaults.
    async fn subscribe_pull(&self, group: &str, topic: &str) -> Result<Subscribed> {
        self.subscribe(group, &Subscription::pull(topic)).await
    }

    /// `DELETE /admin/subscriptions/{group}`: whether there was such a group.
    async fn remove_subscription(&self, group: &str) -> Result<bool> {
        let removed: Removed = self.call(requests::remove_subscription(group)).await?;
        Ok(removed.removed)
    }

    /// `GET /admin/subscriptions`: every group's figures, linearizable or (with `local`) from
    /// the answering node's applied state.
    async fn subscriptions(&self, local: bool) -> Result<Vec<SubscriptionStats>> {
        let list: SubscriptionList = self.call(requests::subscriptions(local)).await?;
        Ok(list.subscriptions)
    }

    /// The figures of `group` from [`Endpoint::subscriptions`]; `None` when there is no such
    /// group.
    async fn subscription_stats(
        &self,
        group: &str,
        local: bool,
    ) -> Result<Option<SubscriptionStats>> {
        let list: SubscriptionList = self.call(requests::subscriptions(local)).await?;
        Ok(list.group(group))
    }

    /// Waits until `group` counts at least `at_least` failed delivery attempts (a webhook the
    /// node cannot, or must not, reach); answers the count. Any failure to read the figures, or
    /// a group that does not exist, fails at once.
    async fn wait_failures(&self, group: &str, at_least: u64, limit: Duration) -> Result<u64> {
        poll_until(
            &format!("{at_least} failed attempts in group {group}"),
            limit,
            || async {
                match self.subscription_stats(group, false).await {
                    Ok(Some(stats)) if stats.failures >= at_least => Ok(Ok(stats.failures)),
                    Ok(Some(stats)) => Err(format!("{} failed attempts", stats.failures)),
                    Ok(None) => Ok(Err(Error::Usage(format!("no group {group}")))),
                    Err(e) => Ok(Err(e)),
                }
            },
        )
        .await?
    }

    /// `POST /v1/subscriptions/{group}/receive`: leases what is visible (long poll).
    async fn receive(&self, group: &str, receive: &Receive) -> Result<Leased> {
        self.call(requests::receive(group, receive)).await
    }

    /// `POST /v1/subscriptions/{group}/ack`: how many of the leases it settled.
    async fn ack(&self, group: &str, receipts: &[String]) -> Result<u64> {
        let acked: Acked = self.call(requests::ack(group, receipts)).await?;
        Ok(acked.acked)
    }

    /// `POST /v1/subscriptions/{group}/nack`: how many leases it handed back.
    async fn nack(&self, group: &str, receipts: &[String], delay_ms: Option<u64>) -> Result<u64> {
        let nacked: Nacked = self.call(requests::nack(group, receipts, delay_ms)).await?;
        Ok(nacked.nacked)
    }

    /// `GET /admin/subscriptions/{group}/dead`: the first page of its dead letters.
    async fn dead_letters(&self, group: &str, limit: Option<u32>) -> Result<DeadLetterPage> {
        self.call(requests::dead_letters(group, limit)).await
    }

    /// `POST /admin/subscriptions/{group}/dead/redrive` of `ids` (all when `None`): how many
    /// letters go back to be delivered.
    async fn redrive(&self, group: &str, ids: Option<&[String]>) -> Result<u64> {
        let redriven: Redriven = self.call(requests::redrive(group, ids)).await?;
        Ok(redriven.redriven)
    }
}

/// One node: no retries, so a test sees exactly what that node answered.
impl Endpoint for NodeClient {
    async fn answer(&self, request: Request) -> Result<ApiResponse> {
        self.send(request).await
    }

    fn describe(&self, request: &Request) -> String {
        format!("{} {}{}", request.method, self.base(), request.path)
    }
}

/// Any running node, retried through unavailable ones ([`Cluster::send_to_any`]).
impl Endpoint for Cluster {
    async fn answer(&self, request: Request) -> Result<ApiResponse> {
        self.send_to_any(request).await
    }

    fn describe(&self, request: &Request) -> String {
        format!("{} {} (any running node)", request.method, request.path)
    }
}
