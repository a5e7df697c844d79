//! [`OrderWriters`]: well-behaved clients creating orders without pause while a test does
//! something to the cluster (restarts, a backup), recording what was acknowledged and when.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::client::{create_order_retrying, NodeClient};
use crate::model::{NewOrder, Order};

/// One acknowledged order.
#[derive(Debug, Clone)]
pub struct AckedOrder {
    /// The order as its creation was answered.
    pub order: Order,
    /// When its first attempt was sent.
    pub sent_at: Instant,
    /// When its acknowledgement arrived.
    pub acked_at: Instant,
}

/// What the writers saw.
#[derive(Debug, Default)]
pub struct Writes {
    /// Every acknowledged order, in no particular order across writers.
    pub acked: Vec<AckedOrder>,
    /// Writes that failed after all their retries, with why.
    pub failed: Vec<String>,
}

impl Writes {
    /// The longest time between two acknowledgements (any writer's): how long writes paused.
    pub fn longest_pause(&self) -> Duration {
        let mut acked_at: Vec<Instant> = self.acked.iter().map(|a| a.acked_at).collect();
        acked_at.sort();
        acked_at
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .max()
            .unwrap_or_default()
    }
}

/// Writers creating one-unit orders of one SKU, one after another, each as its own user: every
/// order under its own `Idempotency-Key`, retried across the nodes on 503s, 429s and timeouts
/// (see [`create_order_retrying`]) for up to a retry limit before it counts as failed.
pub struct OrderWriters {
    /// Set to end the writers after their current order.
    stop: Arc<AtomicBool>,
    /// What they saw so far.
    writes: Arc<Mutex<Writes>>,
    /// The writer tasks.
    tasks: Vec<JoinHandle<()>>,
}

impl OrderWriters {
    /// Starts one writer per user in `users`, ordering `sku` through `clients`.
    pub fn start(
        clients: Vec<NodeClient>,
        sku: &str,
        users: &[String],
        retry_limit: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(Mutex::new(Writes::default()));
        let tasks = users
            .iter()
            .map(|user| {
                tokio::spawn(write_orders(
                    clients.clone(),
                    NewOrder::single(user.clone(), sku, 1),
                    retry_limit,
                    stop.clone(),
                    writes.clone(),
                ))
            })
            .collect();
        OrderWriters {
            stop,
            writes,
            tasks,
        }
    }

    /// How many orders have been acknowledged so far.
    pub fn acked(&self) -> usize {
        self.writes.lock().map(|w| w.acked.len()).unwrap_or(0)
    }

    /// Stops the writers after their current order and answers everything they saw.
    pub async fn stop(self) -> Writes {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            if let Err(e) = task.await {
                eprintln!("cluster-tests: a writer task failed: {e}");
            }
        }
        let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *writes)
    }
}

/// Creates `order` again and again, each time under a new key, until `stop`.
async fn write_orders(
    clients: Vec<NodeClient>,
    order: NewOrder,
    retry_limit: Duration,
    stop: Arc<AtomicBool>,
    writes: Arc<Mutex<Writes>>,
) {
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("{}-{i}", order.user_id);
        let sent_at = Instant::now();
        let result = create_order_retrying(&clients, i, &order, &key, retry_limit).await;
        let mut writes = writes.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(order) => writes.acked.push(AckedOrder {
                order,
                sent_at,
                acked_at: Instant::now(),
            }),
            Err(e) => writes.failed.push(format!("{key}: {e}")),
        }
        i += 1;
    }
}
