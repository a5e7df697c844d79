//! The [`Cluster`]'s stock and order verbs through any running node, as a user who does not
//! care which node answers (the queue's are [`Endpoint`]'s, shared with one node's client).
//!
//! Each sends the request of [`crate::requests`] with [`Cluster::send_to_any`], so it is
//! retried through elections and busy nodes, and decodes a 2xx answer; any other answer is
//! [`crate::Error::Api`]. The verbs of the same name with a node id (`put_sku`,
//! `create_order`, `pay`) go to that node.

use crate::cluster::Cluster;
use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::model::{NewOrder, Order, Sku, SkuSettings, TimerStats};
use crate::requests;

/// How many orders [`Cluster::paid_orders`] creates and pays at once: enough to load the
/// leader's batcher, few enough not to trip its queue depth.
const PAYING_WRITERS: usize = 32;

impl Cluster {
    /// `PUT /admin/skus/{sku}`: loads (or reloads) a SKU.
    pub async fn load_sku(&self, sku: &str, settings: &SkuSettings) -> Result<Sku> {
        self.call(requests::put_sku(sku, settings)).await
    }

    /// `POST /v1/orders`, with an `Idempotency-Key` when given (a retry on another node is then
    /// the same order).
    pub async fn place_order(&self, order: &NewOrder, key: Option<&str>) -> Result<Order> {
        self.call(requests::create_order(order).maybe_idempotency_key(key))
            .await
    }

    /// `POST /v1/orders/{id}/pay`, with an `Idempotency-Key` when given.
    pub async fn pay_order(&self, id: &str, payment_ref: &str, key: Option<&str>) -> Result<Order> {
        self.call(requests::pay(id, payment_ref).maybe_idempotency_key(key))
            .await
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
        self.call(requests::timers()).await
    }
}
