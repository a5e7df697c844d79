//! The [`Cluster`]'s domain verbs that go through any running node: stock, orders and the
//! queue, as a user who does not care which node answers.
//!
//! Each sends the request of [`crate::requests`] with [`Cluster::send_to_any`], so it is
//! retried through elections and busy nodes, and decodes a 2xx answer; any other answer is
//! [`crate::Error::Api`]. A test that wants one particular node uses the same verb on
//! [`Cluster::client`]; a test that looks at a refusal sends the request itself.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::client::{decode, Request};
use crate::cluster::Cluster;
use crate::error::Result;
use crate::model::{NewOrder, Order, OrderState, Sku, SkuSettings, TimerStats};
use crate::queue::{
    Acked, DeadLetterPage, Leased, Nacked, NewMessage, Published, Receive, Redriven, Removed,
    Subscribed, Subscription, SubscriptionList, SubscriptionStats,
};
use crate::requests;
use crate::wait::poll_until;

/// How many orders [`Cluster::paid_orders`] creates and pays at once: enough to load the
/// leader's batcher, few enough not to trip its queue depth.
const PAYING_WRITERS: usize = 32;

impl Cluster {
    /// Sends `request` with [`Cluster::send_to_any`] and decodes a 2xx body as `T`; any other
    /// status is [`crate::Error::Api`].
    pub async fn call_any<T: DeserializeOwned>(&self, request: Request) -> Result<T> {
        let label = format!("{} {}", request.method, request.path);
        decode(label, self.send_to_any(request).await?)
    }

    /// `PUT /admin/skus/{sku}`: loads (or reloads) a SKU.
    pub async fn load_sku(&self, sku: &str, settings: &SkuSettings) -> Result<Sku> {
        self.call_any(requests::put_sku(sku, settings)).await
    }

    /// `POST /v1/orders`, with an `Idempotency-Key` when given (a retry on another node is then
    /// the same order).
    pub async fn place_order(&self, order: &NewOrder, key: Option<&str>) -> Result<Order> {
        let mut request = requests::create_order(order);
        if let Some(key) = key {
            request = request.idempotency_key(key);
        }
        self.call_any(request).await
    }

    /// `POST /v1/orders/{id}/pay`, with an `Idempotency-Key` when given.
    pub async fn pay_order(&self, id: &str, payment_ref: &str, key: Option<&str>) -> Result<Order> {
        let mut request = requests::pay(id, payment_ref);
        if let Some(key) = key {
            request = request.idempotency_key(key);
        }
        self.call_any(request).await
    }

    /// `POST /v1/orders/{id}/refund`: the order as it stands once the refund was asked for.
    pub async fn refund(&self, id: &str, reason: &str) -> Result<Order> {
        self.call_any(requests::refund(id, reason)).await
    }

    /// `GET /v1/orders/{id}`, linearizable.
    pub async fn order(&self, id: &str) -> Result<Order> {
        self.call_any(requests::get_order(id)).await
    }

    /// Waits until order `id` reads (linearizably) in `state`; answers it. The timeout names
    /// the state it was last seen in; a read refused for good (404, ...) fails at once.
    pub async fn wait_order_state(
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

    /// Creates and pays `n` orders of one unit of `sku` (users `u0..`, payment refs `p0..`),
    /// [`PAYING_WRITERS`] at a time, each under its own idempotency key so a retry through
    /// another node is the same order; answers their ids in creation order. `sku` must hold
    /// `n` units.
    pub async fn paid_orders(&self, sku: &str, n: usize) -> Result<Vec<String>> {
        let mut ids = Vec::with_capacity(n);
        for chunk in (0..n).collect::<Vec<_>>().chunks(PAYING_WRITERS) {
            let calls = chunk.iter().map(|i| async move {
                let order = NewOrder::single(format!("u{i}"), sku, 1);
                let created = self
                    .place_order(&order, Some(&format!("order-{i}")))
                    .await?;
                self.pay_order(&created.id, &format!("p{i}"), Some(&format!("pay-{i}")))
                    .await?;
                Ok(created.id)
            });
            for id in futures::future::join_all(calls).await {
                ids.push(id?);
            }
        }
        Ok(ids)
    }

    /// `GET /admin/timers`: pending and fired timers, as the answering node has applied them.
    pub async fn timer_stats(&self) -> Result<TimerStats> {
        self.call_any(requests::timers()).await
    }

    /// `POST /v1/topics/{topic}/messages`.
    pub async fn publish(&self, topic: &str, message: &NewMessage) -> Result<Published> {
        self.call_any(requests::publish(topic, message)).await
    }

    /// Publishes `n` messages to `topic`, one after another: payload `{"n": i}`, key
    /// `k{i % keys}` (so `keys` distinct keys), idempotency key `{topic}-{i}` so a retry through
    /// another node publishes nothing twice.
    pub async fn publish_numbered(
        &self,
        topic: &str,
        n: usize,
        keys: usize,
    ) -> Result<Vec<Published>> {
        let mut published = Vec::with_capacity(n);
        for i in 0..n {
            let message = NewMessage::keyed(
                format!("k{}", i % keys.max(1)),
                serde_json::json!({ "n": i }),
            );
            let request =
                requests::publish(topic, &message).idempotency_key(&format!("{topic}-{i}"));
            published.push(self.call_any(request).await?);
        }
        Ok(published)
    }

    /// `PUT /admin/subscriptions/{group}`: creates a push or pull group as `subscription` says,
    /// or changes its settings.
    pub async fn subscribe(&self, group: &str, subscription: &Subscription) -> Result<Subscribed> {
        self.call_any(requests::subscribe(group, subscription))
            .await
    }

    /// A pull group `group` on `topic` with the server's defaults.
    pub async fn subscribe_pull(&self, group: &str, topic: &str) -> Result<Subscribed> {
        self.subscribe(group, &Subscription::pull(topic)).await
    }

    /// `DELETE /admin/subscriptions/{group}`: whether there was such a group.
    pub async fn remove_subscription(&self, group: &str) -> Result<bool> {
        let removed: Removed = self.call_any(requests::remove_subscription(group)).await?;
        Ok(removed.removed)
    }

    /// `group`'s figures from `GET /admin/subscriptions` (linearizable); `None` when there is
    /// no such group.
    pub async fn subscription_stats(&self, group: &str) -> Result<Option<SubscriptionStats>> {
        let list: SubscriptionList = self.call_any(requests::subscriptions(false)).await?;
        Ok(list.group(group))
    }

    /// `POST /v1/subscriptions/{group}/receive`: leases what is visible (long poll).
    pub async fn receive(&self, group: &str, receive: &Receive) -> Result<Leased> {
        self.call_any(requests::receive(group, receive)).await
    }

    /// `POST /v1/subscriptions/{group}/ack`: how many of the leases it settled.
    pub async fn ack(&self, group: &str, receipts: &[String]) -> Result<u64> {
        let acked: Acked = self.call_any(requests::ack(group, receipts)).await?;
        Ok(acked.acked)
    }

    /// `POST /v1/subscriptions/{group}/nack`: how many leases it handed back.
    pub async fn nack(
        &self,
        group: &str,
        receipts: &[String],
        delay_ms: Option<u64>,
    ) -> Result<u64> {
        let nacked: Nacked = self
            .call_any(requests::nack(group, receipts, delay_ms))
            .await?;
        Ok(nacked.nacked)
    }

    /// `GET /admin/subscriptions/{group}/dead`: the first page of its dead letters.
    pub async fn dead_letters(&self, group: &str, limit: Option<u32>) -> Result<DeadLetterPage> {
        self.call_any(requests::dead_letters(group, limit)).await
    }

    /// `POST /admin/subscriptions/{group}/dead/redrive` of `ids` (all when `None`): how many
    /// letters go back to be delivered.
    pub async fn redrive(&self, group: &str, ids: Option<&[String]>) -> Result<u64> {
        let redriven: Redriven = self.call_any(requests::redrive(group, ids)).await?;
        Ok(redriven.redriven)
    }
}
