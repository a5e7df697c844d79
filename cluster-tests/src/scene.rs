//! [`OperatorScene`]: what an operator looks at, set up on a running cluster: a paid order whose
//! event a push group delivered, and a group whose failing webhook left dead letters, one with a
//! needle in its payload. The admin-route, CLI and console tests all start from it.

use std::time::Duration;

use serde_json::json;

use crate::cluster::Cluster;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::model::{NewOrder, SkuSettings};
use crate::queue::{NewMessage, Subscription};
use crate::receiver::Receiver;
use crate::wait::poll_until;

/// The group delivering `order.paid` to [`OperatorScene::points`].
pub const POINTS_GROUP: &str = "points";
/// The topic of the jobs that end as dead letters.
pub const JOBS_TOPIC: &str = "jobs";
/// The group whose webhook ([`OperatorScene::jobs`]) fails every call, with one attempt.
pub const JOBS_GROUP: &str = "jobs-hook";
/// The payload text of the one dead letter a search finds (searched for in lower case).
pub const NEEDLE_TEXT: &str = "has the NEEDLE inside";
/// The SKUs loaded, 10 units at 100 cents each; the order buys 2 of the first.
pub const SKUS: [&str; 3] = ["A", "B", "C"];
/// How long the scene waits for its deliveries and dead letters.
const SETTLE_LIMIT: Duration = Duration::from_secs(20);

/// The scene, with the webhook receivers that keep it going.
pub struct OperatorScene {
    /// The paid order (user `u1`, 2 units of SKU `A`).
    pub order_id: String,
    /// Acknowledges every call: the `points` group's webhook.
    pub points: Receiver,
    /// Fails every call (until a test changes its options): the `jobs-hook` group's webhook.
    pub jobs: Receiver,
    /// An order the buyer cancelled (user `u2`): the latest close.
    pub closed_order_id: String,
    /// The id of the dead letter whose payload holds [`NEEDLE_TEXT`].
    pub needle_id: String,
    /// Every dead letter's message id, in publish order.
    pub dead_ids: Vec<String>,
}

impl OperatorScene {
    /// Sets the scene up through any node and waits until the paid event is acknowledged and
    /// the three jobs are dead letters.
    pub async fn set_up(cluster: &Cluster) -> Result<OperatorScene> {
        let points = Receiver::acking().await?;
        let jobs = Receiver::failing(1.0).await?;
        for sku in SKUS {
            cluster.load_sku(sku, &SkuSettings::new(10, 100)).await?;
        }
        cluster
            .subscribe(
                POINTS_GROUP,
                &Subscription::push("order.paid", points.url()),
            )
            .await?;
        let order = cluster
            .place_order(&NewOrder::single("u1", SKUS[0], 2), Some("scene-order"))
            .await?;
        cluster
            .pay_order(&order.id, "p-1", Some("scene-pay"))
            .await?;
        points.wait_acked(1, SETTLE_LIMIT).await?;
        let cancelled = cluster
            .place_order(&NewOrder::single("u2", SKUS[0], 1), Some("scene-cancelled"))
            .await?;
        let leader = cluster.wait_for_leader().await?;
        cluster.cancel(leader, &cancelled.id).await?;
        cluster
            .subscribe(
                JOBS_GROUP,
                &Subscription::push(JOBS_TOPIC, jobs.url()).max_attempts(1),
            )
            .await?;
        let mut dead_ids = Vec::new();
        for text in ["plain", NEEDLE_TEXT, "plain again"] {
            let published = cluster
                .publish(JOBS_TOPIC, &NewMessage::keyed("k", json!({ "text": text })))
                .await?;
            dead_ids.push(published.id);
        }
        poll_until("3 dead letters", SETTLE_LIMIT, || async {
            let page = cluster
                .dead_letters(JOBS_GROUP, Some(10))
                .await
                .map_err(|e| e.to_string())?;
            if page.dead.len() == dead_ids.len() {
                Ok(())
            } else {
                Err(format!("{} dead letters", page.dead.len()))
            }
        })
        .await?;
        let needle_id = dead_ids
            .get(1)
            .cloned()
            .ok_or_else(|| Error::Usage("no needle published".into()))?;
        Ok(OperatorScene {
            order_id: order.id,
            closed_order_id: cancelled.id,
            points,
            jobs,
            needle_id,
            dead_ids,
        })
    }
}
